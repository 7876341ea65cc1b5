//! Rebuilding the container's ld cache with the host's ldconfig, safely.
//!
//! The host's binary runs (never the image's), as a static executable (a dynamic one would
//! load the image's `ld.so` once chrooted), with an empty environment (no `LD_PRELOAD` from
//! anywhere), in a private copy of the container's mount namespace from which the rootfs's
//! `/proc` and `/sys` are detached (so no `/proc/<pid>/root` magic link in the image can lead
//! a write out of the chroot), chrooted into the rootfs by ldconfig's own `-r`.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::mount::c_path;
use super::ApplyError;

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
        if !is_static_elf(&head) {
            return Err(ApplyError::Ldconfig {
                message: format!(
                    "{} is not a static executable; it would run the container's own loader or shell as root: set hook.ldconfig to a static ldconfig",
                    path.display()
                ),
            });
        }
        Ok(HostLdconfig { file, path })
    }

    /// Runs `ldconfig -r <rootfs> <dirs>` as described above. Must be called from inside the
    /// container's mount namespace.
    pub fn run(&self, rootfs: &Path, dirs: &[PathBuf]) -> Result<(), ApplyError> {
        let detach = pseudo_filesystems_under(rootfs)?;
        let program = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let mut command = Command::new(program);
        command
            .arg("-r")
            .arg(rootfs)
            .args(dirs)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only makes syscalls
        // (no allocation: every string was built before the fork).
        unsafe {
            command.pre_exec(move || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                for target in &detach {
                    nix::mount::umount2(target.as_c_str(), nix::mount::MntFlags::MNT_DETACH)?;
                }
                nix::sys::prctl::set_no_new_privs()?;
                Ok(())
            });
        }
        let output = command.output().map_err(|e| ApplyError::Ldconfig {
            message: format!("cannot run {}: {e}", self.path.display()),
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            return Err(ApplyError::Ldconfig {
                message: format!(
                    "{} failed ({}): {first}",
                    self.path.display(),
                    output.status
                ),
            });
        }
        Ok(())
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

/// An ELF executable with no `PT_INTERP` program header. Hand-written: one header field and
/// one program-header scan, for which an ELF crate would be a large dependency.
pub fn is_static_elf(head: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return false; // not a little-endian 64-bit ELF
    }
    let u16_at = |at: usize| u16::from_le_bytes([head[at], head[at + 1]]) as usize;
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    if phentsize < 4 {
        return false;
    }
    for i in 0..phnum {
        let Some(at) = i.checked_mul(phentsize).and_then(|x| x.checked_add(phoff)) else {
            return false;
        };
        let Some(entry) = head.get(at..at + 4) else {
            return false;
        };
        if u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) == PT_INTERP {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str) -> Vec<u8> {
        let mut head = vec![0u8; 4096];
        let n = File::open(path).unwrap().read(&mut head).unwrap();
        head.truncate(n);
        head
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        assert!(
            is_static_elf(&head("/sbin/ldconfig")),
            "Debian's ldconfig is static"
        );
        assert!(!is_static_elf(&head("/bin/sh")), "a dynamic executable");
        assert!(!is_static_elf(b"#!/bin/sh\nexec ldconfig.real \"$@\"\n"));
        assert!(!is_static_elf(&[]));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b\\134c"), PathBuf::from("/a b\\c"));
        assert_eq!(unescape("/plain\\09"), PathBuf::from("/plain\\09"));
    }
}
