//! Rebuilding the container's ld cache with the host's ldconfig: the policy. How the child is
//! confined is [`super::confined`]'s business; what it may do is decided here.
//! - The host's binary runs, never the image's, and only a static one (a dynamic one would load
//!   the image's `ld.so` once chrooted); Ubuntu's `/sbin/ldconfig` script is skipped for its
//!   `ldconfig.real`. It is opened on the host and executed from that fd.
//! - Before it runs: `/etc` and the directories it indexes are on the image's own filesystem
//!   (never a volume, never a mount gpuhook made), `/etc` belongs to the container's root (the
//!   child runs as that user, without privileges), and the image's `/etc/ld.so.conf` and
//!   `/etc/ld.so.conf.d/*.conf` are regular files of at most [`MAX_CONF_BYTES`] (a FIFO would
//!   hang ldconfig, a huge sparse file eat host memory).
//! - It runs as the container's root with no capability, in new mount, pid and cgroup
//!   namespaces and the container's (or new) network, IPC and UTS ones, seeing only the image's
//!   files and what gpuhook mounted (volumes, procfs, sysfs and the rest are not there), under an
//!   allow-list seccomp filter ([`super::seccomp`]), bounded memory, file size, open files and
//!   CPU time, and killed after `hook.ldconfig-timeout` seconds.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FileType;

use super::confined::{self, Limits, Namespaces};
use super::mount::c_path;
use super::rootfs::{resolve_error, Rootfs};
use super::{seccomp, ApplyError};
use crate::container::{ns, ContainerHandle, JOINABLE_NAMESPACES};
use crate::inventory::resolve_in_root;

/// The largest `ld.so.conf` (or `ld.so.conf.d/*.conf` file) accepted from an image: real ones
/// are a few lines.
pub const MAX_CONF_BYTES: u64 = 1 << 20;
/// At most this many entries in `/etc/ld.so.conf.d`.
const MAX_CONF_ENTRIES: usize = 4096;

/// Enough address space to map the largest libraries of CUDA images (ldconfig maps each file
/// whole), little heap, and a cache file far larger than any real one.
const LIMITS: Limits = Limits {
    address_space: 8 << 30,
    data: 512 << 20,
    file_size: 256 << 20,
    open_files: 256,
    cpu_seconds: 60,
};

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

    /// Runs `ldconfig <dirs>` on the container's rootfs (`ids`: the host ids of the container's
    /// root, who must own `/etc`); returns the child's peak RSS in KiB. Must be called from
    /// inside the container's mount namespace, after gpuhook's mounts are attached.
    pub fn run(
        &self,
        handle: &ContainerHandle,
        rootfs: &Rootfs,
        dirs: &[PathBuf],
        ids: (u32, u32),
        timeout: Duration,
    ) -> Result<u64, ApplyError> {
        let fail = |message: String| ApplyError::Ldconfig { message };
        precheck(rootfs, dirs, ids)?;
        let root = c_path(rootfs.rules.rootfs_path())?;
        let root_stat = rustix::fs::fstat(rootfs.fd())
            .map_err(|e| fail(format!("cannot stat the rootfs: {e}")))?;
        let keep = rootfs
            .rules
            .kept_mounts(dirs)
            .map_err(|e| fail(format!("cannot read the container's mount table: {e}")))?
            .iter()
            .map(|p| c_path(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv = vec![CString::from(c"ldconfig")];
        for dir in dirs {
            argv.push(c_path(dir)?);
        }
        let filter = seccomp::file_tool_filter()?;
        let command = confined::Command {
            program: &self.file,
            argv: &argv,
            root: &root,
            root_id: (root_stat.st_dev, root_stat.st_ino),
            keep: &keep,
            // The container's root: uid 0 of its user namespace, which the child joins.
            ids: (0, 0),
            namespaces: child_namespaces(handle)?,
            limits: LIMITS,
            timeout,
            filter: &filter,
        };
        let finished =
            confined::run(&command).map_err(|e| fail(format!("{}: {e}", self.path.display())))?;
        if !finished.status.success() {
            let text = String::from_utf8_lossy(&finished.stderr);
            // ldconfig warns about odd files as it goes; the reason it stopped comes last.
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            return Err(fail(format!(
                "{} failed ({}): {last}",
                self.path.display(),
                finished.status
            )));
        }
        Ok(finished.max_rss_kib)
    }
}

/// The container's network, IPC, UTS and user namespaces are joined; where one of them is the
/// hook's own (a host-network container, one without a user namespace), the child gets a new
/// one instead, or (user) stays where it is.
fn child_namespaces(handle: &ContainerHandle) -> Result<Namespaces, ApplyError> {
    let mut namespaces = Namespaces::default();
    for (name, flag) in JOINABLE_NAMESPACES {
        let io = |e: std::io::Error| ApplyError::Io {
            what: format!("stat the {name} namespaces"),
            source: e,
        };
        let theirs = handle
            .namespace(name)
            .ok_or_else(|| io(std::io::Error::other("not opened by the container handle")))?;
        let ours = File::open(format!("/proc/thread-self/ns/{name}")).map_err(io)?;
        let shared = ns::identity(theirs).map_err(io)? == ns::identity(&ours).map_err(io)?;
        match (flag, shared) {
            (libc::CLONE_NEWUSER, true) => {}
            (libc::CLONE_NEWUSER, false) => namespaces.user = Some(theirs.as_raw_fd()),
            (_, true) => namespaces.fresh |= flag,
            (_, false) => namespaces.join.push(theirs.as_raw_fd()),
        }
    }
    Ok(namespaces)
}

/// What must hold before ldconfig may run (see the module docs).
fn precheck(rootfs: &Rootfs, dirs: &[PathBuf], ids: (u32, u32)) -> Result<(), ApplyError> {
    let fail = |message: String| ApplyError::Ldconfig { message };
    check_etc(rootfs, ids)?;
    check_dirs(rootfs, dirs)?;
    check_conf_file(rootfs, Path::new("/etc/ld.so.conf"))?;
    let conf_d = Path::new("/etc/ld.so.conf.d");
    let names = directory_names(rootfs, conf_d)?;
    if names.len() > MAX_CONF_ENTRIES {
        return Err(fail(format!(
            "the image's {} holds {} entries (at most {MAX_CONF_ENTRIES})",
            conf_d.display(),
            names.len()
        )));
    }
    for name in names.iter().filter(|n| n.ends_with(".conf")) {
        check_conf_file(rootfs, &conf_d.join(name))?;
    }
    Ok(())
}

/// The image's `/etc` (an `O_PATH` fd), checked: a directory on the image's own filesystem
/// that the container's root (`ids`) owns, where the ld cache may be written as that user.
pub(super) fn check_etc(rootfs: &Rootfs, ids: (u32, u32)) -> Result<OwnedFd, ApplyError> {
    let fail = |message: String| ApplyError::Ldconfig { message };
    let etc = Path::new("/etc");
    let etc_fd = resolve_in_root(rootfs.fd(), etc).map_err(|e| resolve_error(etc, e))?;
    rootfs.rules.check(&etc_fd, etc)?;
    let stat = rustix::fs::fstat(&etc_fd).map_err(|e| fail(format!("cannot stat /etc: {e}")))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(fail("the image's /etc is not a directory".into()));
    }
    if stat.st_uid != ids.0 && stat.st_mode & 0o002 == 0 {
        return Err(fail(format!(
            "the image's /etc belongs to uid {}, not to the container's root (uid {}): the ld cache is written as the container's root without privileges and could not be written to /etc/ld.so.cache",
            stat.st_uid, ids.0
        )));
    }
    Ok(etc_fd)
}

/// The indexed directories that exist are on the image's own filesystem.
fn check_dirs(rootfs: &Rootfs, dirs: &[PathBuf]) -> Result<(), ApplyError> {
    for dir in dirs {
        if let Ok(fd) = resolve_in_root(rootfs.fd(), dir) {
            rootfs.rules.check(&fd, dir)?;
        }
    }
    Ok(())
}

/// An absent file is fine; a present one is a regular file of at most `MAX_CONF_BYTES`.
fn check_conf_file(rootfs: &Rootfs, inner: &Path) -> Result<(), ApplyError> {
    let Ok(fd) = resolve_in_root(rootfs.fd(), inner) else {
        return Ok(());
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| ApplyError::Ldconfig {
        message: format!("cannot stat the image's {}: {e}", inner.display()),
    })?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    let problem = if kind != FileType::RegularFile {
        format!("is a {kind:?}, not a regular file (ldconfig would read it)")
    } else if stat.st_size as u64 > MAX_CONF_BYTES {
        format!("holds {} bytes (at most {MAX_CONF_BYTES})", stat.st_size)
    } else {
        return Ok(());
    };
    Err(ApplyError::Ldconfig {
        message: format!("the image's {} {problem}", inner.display()),
    })
}

fn directory_names(rootfs: &Rootfs, inner: &Path) -> Result<Vec<String>, ApplyError> {
    let Ok(fd) = resolve_in_root(rootfs.fd(), inner) else {
        return Ok(Vec::new());
    };
    let flags =
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let Ok(dir_fd) = rustix::fs::openat(&fd, ".", flags, rustix::fs::Mode::empty()) else {
        return Ok(Vec::new());
    };
    let dir = rustix::fs::Dir::read_from(&dir_fd).map_err(|e| ApplyError::Ldconfig {
        message: format!("cannot read the image's {}: {e}", inner.display()),
    })?;
    Ok(dir
        .filter_map(Result::ok)
        .take(MAX_CONF_ENTRIES + 1)
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
        .filter(|n| n != "." && n != "..")
        .collect())
}
