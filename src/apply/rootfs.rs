//! The container's rootfs, reached only through a directory fd and `openat2(RESOLVE_IN_ROOT)`:
//! every path is resolved as if the rootfs were `/`, so no symlink in the (hostile) image can
//! send a mount or a write outside it. What gets created is recorded so a failed run can take
//! it back.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::ApplyError;
use crate::inventory::{open_root_dir, resolve_in_root};

/// What must be at a mount target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    /// Anything but a directory (an empty regular file is created when absent).
    NonDirectory,
    Directory,
}

/// Filesystems a bind mount must never land on through a symlink in the image.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;
const TMPFS_MAGIC: i64 = 0x0102_1994;

pub struct Rootfs {
    path: PathBuf,
    fd: OwnedFd,
    /// Paths (inside the rootfs) this run created, in creation order.
    created: Vec<(PathBuf, TargetType)>,
}

impl Rootfs {
    pub fn open(path: &Path) -> Result<Rootfs, ApplyError> {
        let fd = open_root_dir(path).map_err(|e| {
            ApplyError::io(format!("open the container rootfs {}", path.display()), e)
        })?;
        Ok(Rootfs {
            path: path.to_path_buf(),
            fd,
            created: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Whether `inner` exists (following symlinks inside the rootfs).
    pub fn exists(&self, inner: &Path) -> bool {
        resolve_in_root(&self.fd, inner).is_ok()
    }

    /// The names in directory `inner` (resolved inside the rootfs); empty when it is not a
    /// readable directory. Only names are read: nothing of the image is opened or run.
    pub fn file_names(&self, inner: &Path) -> Vec<String> {
        let Ok(path_fd) = resolve_in_root(&self.fd, inner) else {
            return Vec::new();
        };
        let Ok(dir_fd) = rustix::fs::openat(
            &path_fd,
            ".",
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) else {
            return Vec::new();
        };
        let Ok(dir) = rustix::fs::Dir::read_from(&dir_fd) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str().ok().map(str::to_string))
            .filter(|name| name != "." && name != "..")
            .collect()
    }

    /// Opens the mount target `inner`, creating it (and missing parent directories) when
    /// absent. The returned `O_PATH` fd is what gets mounted on: never a re-resolved string.
    pub fn mount_target(
        &mut self,
        inner: &Path,
        wanted: TargetType,
    ) -> Result<OwnedFd, ApplyError> {
        let inner = normalized(inner)?;
        self.open_or_create(&inner, wanted)
    }

    /// Opens `inner`, creating it and missing parents one component at a time, and checks it
    /// is of the wanted type and not on procfs or sysfs.
    fn open_or_create(&mut self, inner: &Path, wanted: TargetType) -> Result<OwnedFd, ApplyError> {
        let fd = match resolve_in_root(&self.fd, inner) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let (Some(parent), Some(name)) = (inner.parent(), inner.file_name()) else {
                    return Err(ApplyError::Target {
                        path: inner.to_path_buf(),
                        problem: "cannot be created".into(),
                    });
                };
                let parent_fd = self.open_or_create(parent, TargetType::Directory)?;
                self.create(&parent_fd, name, inner, wanted)?;
                resolve_in_root(&self.fd, inner).map_err(|e| resolve_error(inner, e))?
            }
            Err(e) => return Err(resolve_error(inner, e)),
        };
        check_target(&fd, inner, wanted)?;
        Ok(fd)
    }

    /// Creates one entry in `parent_fd`, never following a symlink already named so (a
    /// dangling symlink makes this fail with EEXIST: the image put it there, we do not chase it).
    fn create(
        &mut self,
        parent_fd: &OwnedFd,
        name: &std::ffi::OsStr,
        inner: &Path,
        kind: TargetType,
    ) -> Result<(), ApplyError> {
        let result = match kind {
            TargetType::Directory => {
                rustix::fs::mkdirat(parent_fd, name, Mode::from_raw_mode(0o755))
            }
            TargetType::NonDirectory => rustix::fs::openat(
                parent_fd,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map(drop),
        };
        result.map_err(|e| match e {
            // Only a dangling symlink can be there: resolution just said nothing exists.
            Errno::EXIST => ApplyError::Target {
                path: inner.to_path_buf(),
                problem: "is a symlink in the image to a path that does not exist inside the \
                          container (it is never followed out of the rootfs)"
                    .into(),
            },
            e => ApplyError::io(format!("create {} in the container", inner.display()), e),
        })?;
        self.created.push((inner.to_path_buf(), kind));
        Ok(())
    }

    /// Everything this run created, newest first (for taking it back after a failure).
    pub fn take_created(&mut self) -> Vec<(PathBuf, TargetType)> {
        let mut created = std::mem::take(&mut self.created);
        created.reverse();
        created
    }
}

/// Removes entries a failed run created, resolving each again inside the rootfs (from the
/// host's mount namespace, where the container's mounts do not pin them).
pub fn remove_created(rootfs: &Path, created: &[(PathBuf, TargetType)]) {
    let Ok(root_fd) = open_root_dir(rootfs) else {
        return;
    };
    for (inner, kind) in created {
        let (Some(parent), Some(name)) = (inner.parent(), inner.file_name()) else {
            continue;
        };
        let Ok(parent_fd) = resolve_in_root(&root_fd, parent) else {
            continue;
        };
        let flags = match kind {
            TargetType::Directory => rustix::fs::AtFlags::REMOVEDIR,
            TargetType::NonDirectory => rustix::fs::AtFlags::empty(),
        };
        // Best effort: a failure here must not hide the error that caused the cleanup.
        let _ = rustix::fs::unlinkat(&parent_fd, name, flags);
    }
}

/// A resolution failure, worded for the two an image causes on purpose.
fn resolve_error(inner: &Path, errno: Errno) -> ApplyError {
    let problem = match errno {
        Errno::NOTDIR => "has a path component that is not a directory in the image",
        // RESOLVE_NO_MAGICLINKS reports a /proc/<pid>/... link as a loop.
        Errno::LOOP => {
            "is reached through a symlink loop or a /proc magic link in the image (neither \
             is followed)"
        }
        e => return ApplyError::io(format!("resolve {} in the container", inner.display()), e),
    };
    ApplyError::Target {
        path: inner.to_path_buf(),
        problem: problem.into(),
    }
}

/// Absolute, no `.`/`..` components: plans only hold such paths, this enforces it.
fn normalized(inner: &Path) -> Result<PathBuf, ApplyError> {
    let mut out = PathBuf::from("/");
    for component in inner.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ApplyError::Target {
                    path: inner.to_path_buf(),
                    problem: "contains `..`".into(),
                })
            }
        }
    }
    Ok(out)
}

fn check_target(fd: &impl AsFd, inner: &Path, wanted: TargetType) -> Result<(), ApplyError> {
    let stat = rustix::fs::fstat(fd)
        .map_err(|e| ApplyError::io(format!("stat {}", inner.display()), e))?;
    let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
    match (wanted, is_dir) {
        (TargetType::NonDirectory, true) => {
            return Err(ApplyError::Target {
                path: inner.to_path_buf(),
                problem: "is a directory in the image, where a file is expected".into(),
            })
        }
        (TargetType::Directory, false) => {
            return Err(ApplyError::Target {
                path: inner.to_path_buf(),
                problem: "is not a directory in the image".into(),
            })
        }
        _ => {}
    }
    check_filesystem(fd, inner)
}

/// Refuses targets (and the directories holding them) on procfs or sysfs: only a symlink in
/// the image can lead a driver file there, and a mount there would shadow kernel files.
fn check_filesystem(fd: &impl AsFd, inner: &Path) -> Result<(), ApplyError> {
    let fs = rustix::fs::fstatfs(fd)
        .map_err(|e| ApplyError::io(format!("statfs {}", inner.display()), e))?;
    let magic = fs.f_type as i64;
    if magic == PROC_SUPER_MAGIC || magic == SYSFS_MAGIC {
        return Err(ApplyError::Target {
            path: inner.to_path_buf(),
            problem: "leads into /proc or /sys through a symlink in the image".into(),
        });
    }
    Ok(())
}

/// `/proc/driver/nvidia` (or `/proc/driver`) inside the container's procfs, for the mask;
/// `None` when an earlier run's mask is already there (the hook run twice for one container).
pub fn proc_mask_target(rootfs: &Rootfs, inner: &Path) -> Result<Option<OwnedFd>, ApplyError> {
    let fd = resolve_in_root(rootfs.fd(), inner).map_err(|e| resolve_error(inner, e))?;
    let fs = rustix::fs::fstatfs(&fd)
        .map_err(|e| ApplyError::io(format!("statfs {}", inner.display()), e))?;
    let magic = fs.f_type as i64;
    // runc refuses the spec's mounts below /proc (but for a few lxcfs files) and masks paths
    // only after the hooks ran: a read-only tmpfs mounted right here was put there by a hook.
    let read_only = fs.f_flags as u64 & libc::ST_RDONLY != 0;
    if magic == TMPFS_MAGIC && read_only && super::mount::is_mount_root(&fd).is_some() {
        return Ok(None);
    }
    if magic != PROC_SUPER_MAGIC {
        return Err(ApplyError::Target {
            path: inner.to_path_buf(),
            problem: "is not on the container's procfs".into(),
        });
    }
    Ok(Some(fd))
}
