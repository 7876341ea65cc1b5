//! Rebuilding the container's ld cache with the host's ldconfig, safely.
//!
//! The host's binary runs (never the image's), as a static executable (a dynamic one would
//! load the image's `ld.so` once chrooted), executed from the fd opened on the host
//! (`execveat`, no path resolved in the container), with an empty environment (no
//! `LD_PRELOAD` from anywhere), in a private copy of the container's mount namespace from which
//! the rootfs's `/proc` and `/sys` are detached (so no `/proc/<pid>/root` magic link in the
//! image can lead a write out) and whose rootfs mounts are nosuid, nodev, noexec. The child
//! chroots into the rootfs itself, then gives up everything before `exec`: an empty bounding
//! set, the uid and gid owning the rootfs's `/etc` and no capability at all, `no_new_privs`,
//! and a seccomp deny-list (see [`super::seccomp`]). ldconfig parses the image's ELF files; if
//! that parsing is ever exploited, the exploit holds nothing a container process does not.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use seccompiler::sock_filter;

use super::mount::{c_path, MountAttr};
use super::{seccomp, ApplyError};
use crate::inventory::{open_root_dir, resolve_in_root};

/// The host ldconfig, opened and checked before entering the container.
pub struct HostLdconfig {
    file: File,
    path: PathBuf,
}

impl HostLdconfig {
    /// Opens `configured`, preferring its `.real` sibling (Ubuntu's `/sbin/ldconfig` is a
    /// shell script wrapping `/sbin/ldconfig.real`, and a script would run the image's shell).
    pub fn open(configured: &Path) -> Result<HostLdconfig, ApplyError> {
        let mut real = configured.as_os_str().to_owned();
        real.push(".real");
        let path = [PathBuf::from(real), configured.to_path_buf()]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| ApplyError::Ldconfig {
                message: format!(
                    "{} not found on the host: set hook.ldconfig to the host's ldconfig",
                    configured.display()
                ),
            })?;
        let mut file = File::open(&path).map_err(|e| ApplyError::Ldconfig {
            message: format!("cannot open {}: {e}", path.display()),
        })?;
        let mut head = vec![0u8; 4096];
        let n = file.read(&mut head).map_err(|e| ApplyError::Ldconfig {
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        head.truncate(n);
        if !crate::elf::is_static_elf(&head) {
            return Err(ApplyError::Ldconfig {
                message: format!(
                    "{} is not a static executable; it would run the container's own loader or shell as root: set hook.ldconfig to a static ldconfig",
                    path.display()
                ),
            });
        }
        Ok(HostLdconfig { file, path })
    }

    /// Runs `ldconfig <dirs>` chrooted in `rootfs`, confined as described above. Must be
    /// called from inside the container's mount namespace.
    pub fn run(&self, rootfs: &Path, dirs: &[PathBuf]) -> Result<(), ApplyError> {
        let fail = |message: String| ApplyError::Ldconfig { message };
        let detach = pseudo_filesystems_under(rootfs)?;
        let root_fd = open_root_dir(rootfs)
            .map_err(|e| fail(format!("cannot open the rootfs {}: {e}", rootfs.display())))?;
        let root_stat = rustix::fs::fstat(&root_fd)
            .map_err(|e| fail(format!("cannot stat the rootfs {}: {e}", rootfs.display())))?;
        let (uid, gid) = owner_of_etc(&root_fd).unwrap_or((root_stat.st_uid, root_stat.st_gid));
        let rootfs_c = c_path(rootfs)?;
        let mut args = vec![CString::from(c"ldconfig")];
        for dir in dirs {
            args.push(c_path(dir)?);
        }
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let filter = seccomp::ldconfig_filter()?;
        let devnull = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| fail(format!("cannot open /dev/null: {e}")))?;
        let (output, stderr) = pipe().map_err(|e| fail(format!("cannot make a pipe: {e}")))?;
        let child = Confinement {
            detach: &detach,
            rootfs: &rootfs_c,
            rootfs_id: (root_stat.st_dev, root_stat.st_ino),
            uid,
            gid,
            program: self.file.as_raw_fd(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            filter: &filter,
            devnull: devnull.as_raw_fd(),
            stderr: stderr.as_raw_fd(),
        };
        // SAFETY: fork in a process whose other threads (if NVML started any) do not hold
        // locks the child needs: the child only makes raw syscalls on data built above, and
        // ends in execveat or _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the forked child, see above.
            unsafe { child.confine_and_exec() }
        }
        if pid < 0 {
            return Err(fail(format!(
                "cannot fork: {}",
                std::io::Error::last_os_error()
            )));
        }
        drop(stderr);
        let messages = read_tail(output);
        let status = wait(pid).map_err(|e| fail(format!("cannot wait for ldconfig: {e}")))?;
        if !status.success() {
            let text = String::from_utf8_lossy(&messages);
            // ldconfig warns about odd files as it goes; the reason it stopped comes last.
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            return Err(fail(format!(
                "{} failed ({status}): {last}",
                self.path.display()
            )));
        }
        Ok(())
    }
}

/// Everything the forked child needs, prepared before the fork (the child must not allocate).
struct Confinement<'a> {
    detach: &'a [CString],
    rootfs: &'a CStr,
    rootfs_id: (u64, u64),
    uid: u32,
    gid: u32,
    program: RawFd,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    filter: &'a [sock_filter],
    devnull: RawFd,
    stderr: RawFd,
}

impl Confinement<'_> {
    /// In the forked child: confine, then exec ldconfig. Never returns.
    ///
    /// # Safety
    /// Only in a freshly forked child of `HostLdconfig::run`.
    unsafe fn confine_and_exec(&self) -> ! {
        let check = |ok: bool, what: &str| {
            if !ok {
                child_fail(self.stderr, what)
            }
        };
        check(libc::dup2(self.devnull, 0) == 0, "stdin");
        check(libc::dup2(self.devnull, 1) == 1, "stdout");
        check(libc::dup2(self.stderr, 2) == 2, "stderr");
        // A private copy of the container's mount namespace, without the rootfs's pseudo
        // filesystems, the rest nosuid, nodev, noexec (ldconfig runs nothing from the image).
        check(libc::unshare(libc::CLONE_NEWNS) == 0, "unshare");
        let private = libc::MS_REC | libc::MS_PRIVATE;
        check(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                private,
                std::ptr::null(),
            ) == 0,
            "make mounts private",
        );
        for target in self.detach {
            check(
                libc::umount2(target.as_ptr(), libc::MNT_DETACH) == 0,
                "detach /proc or /sys",
            );
        }
        let attr = MountAttr {
            attr_set: 0x2 | 0x4 | 0x8, // MOUNT_ATTR_NOSUID | NODEV | NOEXEC
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        check(
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                self.rootfs.as_ptr(),
                libc::AT_RECURSIVE as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            ) == 0,
            "mount_setattr",
        );
        // Into the rootfs, checked to be the directory opened before (not a path swapped
        // since), and chrooted there by the child itself: ldconfig gets no -r and no
        // CAP_SYS_CHROOT.
        check(libc::chdir(self.rootfs.as_ptr()) == 0, "chdir");
        let mut here: libc::stat = std::mem::zeroed();
        check(libc::stat(c".".as_ptr(), &mut here) == 0, "stat");
        check(
            (here.st_dev, here.st_ino) == self.rootfs_id,
            "the rootfs changed",
        );
        check(libc::chroot(c".".as_ptr()) == 0, "chroot");
        check(libc::chdir(c"/".as_ptr()) == 0, "chdir /");
        // No capability can come back: empty bounding and ambient sets, then the owner's ids.
        for cap in 0..64 {
            // EINVAL: past the kernel's last capability.
            let ok = libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) == 0
                || *libc::__errno_location() == libc::EINVAL;
            check(ok, "drop the bounding set");
        }
        check(
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ) == 0,
            "clear the ambient set",
        );
        check(libc::setgroups(0, std::ptr::null()) == 0, "setgroups");
        check(
            libc::setresgid(self.gid, self.gid, self.gid) == 0,
            "setresgid",
        );
        check(
            libc::setresuid(self.uid, self.uid, self.uid) == 0,
            "setresuid",
        );
        // A uid 0 owner keeps its capabilities through setresuid: clear them.
        let header = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [CapData::default(); 2];
        check(
            libc::syscall(libc::SYS_capset, &header, data.as_ptr()) == 0,
            "clear capabilities",
        );
        // Sets no_new_privs, then installs the filter.
        check(seccompiler::apply_filter(self.filter).is_ok(), "seccomp");
        libc::syscall(
            libc::SYS_execveat,
            self.program,
            c"".as_ptr(),
            self.argv,
            self.envp,
            libc::AT_EMPTY_PATH,
        );
        child_fail(self.stderr, "execveat")
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Reports `what` and errno on `fd` and ends the child, without allocating.
fn child_fail(fd: RawFd, what: &str) -> ! {
    // SAFETY: errno location of this thread; plain writes to an fd; _exit.
    unsafe {
        let errno = *libc::__errno_location();
        let mut line = [0u8; 160];
        let mut len = 0;
        for part in [
            b"gpuhook: cannot confine ldconfig: ".as_slice(),
            what.as_bytes(),
            b" failed (errno ".as_slice(),
        ] {
            for &b in part {
                if len < line.len() - 12 {
                    line[len] = b;
                    len += 1;
                }
            }
        }
        let mut digits = [0u8; 10];
        let mut n = errno.unsigned_abs();
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 || count == digits.len() {
                break;
            }
        }
        for i in (0..count).rev() {
            line[len] = digits[i];
            len += 1;
        }
        line[len] = b')';
        line[len + 1] = b'\n';
        len += 2;
        libc::write(fd, line.as_ptr().cast(), len);
        libc::_exit(127)
    }
}

/// The uid and gid owning the rootfs's `/etc` (resolved inside the rootfs): whoever may write
/// the ld cache there, root for most images, the mapped root for a user-namespaced one.
fn owner_of_etc(root_fd: &impl std::os::fd::AsFd) -> Option<(u32, u32)> {
    let etc = resolve_in_root(root_fd, Path::new("/etc")).ok()?;
    let stat = rustix::fs::fstat(&etc).ok()?;
    (FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
        .then_some((stat.st_uid, stat.st_gid))
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> std::io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: a two-int array for pipe2.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just made and are owned here only.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Everything written to `pipe` until it closes, keeping the last 256 KiB (ldconfig can warn
/// about each of thousands of odd files; what ends a failed run is at the end).
fn read_tail(mut pipe: File) -> Vec<u8> {
    const KEEP: usize = 256 * 1024;
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * KEEP {
                    kept.drain(..kept.len() - KEEP);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    kept
}

/// Waits for `pid` to end.
fn wait(pid: libc::pid_t) -> std::io::Result<std::process::ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: our own child; a valid int for the status.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(std::process::ExitStatus::from_raw(status));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `proc`, `sysfs` and similar mounts at or below `rootfs`, deepest first, from the current
/// namespace's mountinfo.
fn pseudo_filesystems_under(rootfs: &Path) -> Result<Vec<CString>, ApplyError> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| ApplyError::Ldconfig {
            message: format!("cannot read /proc/self/mountinfo: {e}"),
        })?;
    let mut targets: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = unescape(left.split(' ').nth(4)?);
            let fs_type = right.split(' ').next()?;
            let pseudo = matches!(
                fs_type,
                "proc" | "sysfs" | "cgroup" | "cgroup2" | "securityfs" | "debugfs"
            );
            (pseudo && mount_point.starts_with(rootfs) && mount_point != rootfs)
                .then_some(mount_point)
        })
        .collect();
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    targets.dedup();
    targets.iter().map(|p| c_path(p)).collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b\\134c"), PathBuf::from("/a b\\c"));
        assert_eq!(unescape("/plain\\09"), PathBuf::from("/plain\\09"));
    }
}
