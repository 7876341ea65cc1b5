//! The container's rootfs, reached only through the handle's directory fd and
//! `openat2(RESOLVE_IN_ROOT)`: every path is resolved as if the rootfs were `/`, so no symlink
//! in the (hostile) image can send a mount or a write outside it. Targets are created one
//! component at a time through directory fds, only on mounts [`MountRules`] allows, and each
//! created entry is recorded with the directory fd it was made in, so a failed run removes
//! exactly those entries through the same descriptors, never by path.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

pub(super) use super::fs_identity::FsIdentity;
use super::placement::MountRules;
use super::ApplyError;
use crate::inventory::resolve_in_root;
use crate::plan::TargetType;

/// Filesystems a bind mount must never land on through a symlink in the image.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// An entry this run created: the directory it is in, its name, what it is.
pub struct Created {
    parent: Rc<OwnedFd>,
    name: OsString,
    kind: TargetType,
}

/// A mount target opened by [`Rootfs::mount_target`]; `created`: this run just made it (so
/// nothing can be mounted on it yet).
pub struct Target {
    pub fd: OwnedFd,
    pub created: bool,
}

pub struct Rootfs {
    fd: OwnedFd,
    pub rules: MountRules,
    created: Vec<Created>,
    /// Parent directories of file targets already opened and checked in this run (libraries
    /// share a few): a fd pins the directory itself. Cleared before a directory target, whose
    /// mount could cover one (plan targets never overlap, so it never does).
    parents: Vec<(PathBuf, Rc<OwnedFd>)>,
    /// (device, inode) of the image's system directories, for directory targets.
    protected: Option<Vec<((u64, u64), PathBuf)>>,
    system_dirs: Vec<PathBuf>,
    /// The host ids of the container's root: placeholders are created as that user, so they
    /// belong to the container (and can be created at all on a filesystem its user
    /// namespace owns, where host root has no id: its `/dev` tmpfs).
    owner: (u32, u32),
}

impl Rootfs {
    /// The rootfs behind `fd` (the handle's, opened inside the container's mount namespace).
    /// Must be called inside that namespace (it reads its mount table).
    pub fn new(
        fd: &OwnedFd,
        fresh_tmpfs: &[PathBuf],
        system_dirs: Vec<PathBuf>,
        owner: (u32, u32),
    ) -> Result<Rootfs, ApplyError> {
        let fd = fd.try_clone().map_err(|e| ApplyError::Io {
            what: "duplicate the rootfs descriptor".into(),
            source: e,
        })?;
        let rules = MountRules::read(&fd, fresh_tmpfs)?;
        Ok(Rootfs {
            fd,
            rules,
            created: Vec::new(),
            parents: Vec::new(),
            protected: None,
            system_dirs,
            owner,
        })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Opens the mount target `inner`, creating it (and missing parent directories) when
    /// absent, on allowed mounts only. The returned `O_PATH` fd is what gets mounted on.
    pub fn mount_target(&mut self, inner: &Path, wanted: TargetType) -> Result<Target, ApplyError> {
        let inner = normalized(inner)?;
        if wanted == TargetType::Directory {
            self.parents.clear();
        }
        let target = self.open_or_create(&inner, wanted)?;
        if wanted == TargetType::Directory {
            self.check_not_system_dir(&target.fd, &inner)?;
            self.rules.check_covers_none_of_ours(&target.fd, &inner)?;
        }
        Ok(target)
    }

    /// Opens `inner`, creating it and missing parents one component at a time, and checks it
    /// is of the wanted type and not on procfs or sysfs.
    ///
    /// A created file is not checked again: its fd is the one `O_CREAT|O_EXCL|O_NOFOLLOW`
    /// returned (a new regular file, never an entry swapped in after), made in a directory
    /// that passed these checks and [`MountRules::check`], on whose mount it then is.
    fn open_or_create(&mut self, inner: &Path, wanted: TargetType) -> Result<Target, ApplyError> {
        let target = match resolve_in_root(&self.fd, inner) {
            Ok(fd) => Target { fd, created: false },
            Err(Errno::NOENT) => {
                let (Some(parent), Some(name)) = (inner.parent(), inner.file_name()) else {
                    return Err(ApplyError::Target {
                        path: inner.to_path_buf(),
                        problem: "cannot be created".into(),
                    });
                };
                let parent_fd = self.checked_parent(parent)?;
                let made = self.create(&parent_fd, name, inner, wanted)?;
                self.parents
                    .push((parent.to_path_buf(), Rc::clone(&parent_fd)));
                if let Some(fd) = made {
                    return Ok(Target { fd, created: true });
                }
                // The directory just made, through the directory it was made in (never
                // followed).
                let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = retry(|| rustix::fs::openat(&*parent_fd, name, flags, Mode::empty()))
                    .map_err(|e| resolve_error(inner, e))?;
                Target { fd, created: true }
            }
            Err(e) => return Err(resolve_error(inner, e)),
        };
        check_target(&target.fd, inner, wanted)?;
        Ok(target)
    }

    /// The directory `parent` (created when missing) on an allowed mount: from this run's
    /// cache, else opened and checked now.
    fn checked_parent(&mut self, parent: &Path) -> Result<Rc<OwnedFd>, ApplyError> {
        if let Some(at) = self.parents.iter().position(|(p, _)| p == parent) {
            return Ok(self.parents.swap_remove(at).1);
        }
        let target = self.open_or_create(parent, TargetType::Directory)?;
        if !target.created {
            self.rules.check(&target.fd, parent)?;
        }
        Ok(Rc::new(target.fd))
    }

    /// Creates one entry in `parent_fd`, never following a symlink already named so (a
    /// dangling symlink makes this fail with EEXIST: the image put it there, we do not chase it).
    /// Returns the fd of a created file (a mount target as good as an `O_PATH` one).
    fn create(
        &mut self,
        parent_fd: &Rc<OwnedFd>,
        name: &OsStr,
        inner: &Path,
        kind: TargetType,
    ) -> Result<Option<OwnedFd>, ApplyError> {
        let _as_owner = FsIdentity::become_(self.owner);
        let result = match kind {
            TargetType::Directory => {
                retry(|| rustix::fs::mkdirat(&**parent_fd, name, Mode::from_raw_mode(0o755)))
                    .map(|()| None)
            }
            TargetType::NonDirectory => retry(|| {
                rustix::fs::openat(
                    &**parent_fd,
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(Some)
            }),
        };
        let made = result.map_err(|e| match e {
            // Only a dangling symlink can be there: resolution just said nothing exists.
            Errno::EXIST => ApplyError::Target {
                path: inner.to_path_buf(),
                problem: "is a symlink in the image to a path that does not exist inside the \
                          container (it is never followed out of the rootfs)"
                    .into(),
            },
            e => ApplyError::io(format!("create {} in the container", inner.display()), e),
        })?;
        self.created.push(Created {
            parent: Rc::clone(parent_fd),
            name: name.to_os_string(),
            kind,
        });
        Ok(made)
    }

    /// A directory target must not be (through a symlink in the image) one of the image's
    /// system directories: a mount there would cover it.
    fn check_not_system_dir(&mut self, fd: &OwnedFd, inner: &Path) -> Result<(), ApplyError> {
        let stat = rustix::fs::fstat(fd)
            .map_err(|e| ApplyError::io(format!("stat {}", inner.display()), e))?;
        let root = &self.fd;
        let dirs = &self.system_dirs;
        let protected = self.protected.get_or_insert_with(|| {
            dirs.iter()
                .filter_map(|dir| {
                    let fd = resolve_in_root(root, dir).ok()?;
                    let s = rustix::fs::fstat(&fd).ok()?;
                    Some(((s.st_dev, s.st_ino), dir.clone()))
                })
                .collect()
        });
        match protected
            .iter()
            .find(|(id, _)| *id == (stat.st_dev, stat.st_ino))
        {
            Some((_, dir)) => Err(ApplyError::Target {
                path: inner.to_path_buf(),
                problem: format!(
                    "is the container's system directory {} (through a symlink in the image)",
                    dir.display()
                ),
            }),
            None => Ok(()),
        }
    }

    /// Records an entry made in `parent` by another part of the applier (the ld.so.conf.d
    /// drop-in), so a failed run takes it back like the placeholders.
    pub(super) fn record_created(&mut self, parent: OwnedFd, name: &OsStr) {
        self.created.push(Created {
            parent: Rc::new(parent),
            name: name.to_os_string(),
            kind: TargetType::NonDirectory,
        });
    }

    /// The host ids entries are created as (the container's root).
    pub(super) fn owner(&self) -> (u32, u32) {
        self.owner
    }

    /// Everything this run created, newest first (for taking it back after a failure).
    pub fn take_created(&mut self) -> Vec<Created> {
        let mut created = std::mem::take(&mut self.created);
        created.reverse();
        created
    }
}

/// Removes entries a failed run created, through the directory fds they were made in. Run
/// from the hook's own mount namespace, where the container's mounts do not pin them.
pub fn remove_created(created: Vec<Created>) {
    for entry in created {
        let flags = match entry.kind {
            TargetType::Directory => AtFlags::REMOVEDIR,
            TargetType::NonDirectory => AtFlags::empty(),
        };
        // Best effort: a failure here must not hide the error that caused the cleanup.
        let _ = retry(|| rustix::fs::unlinkat(&*entry.parent, &entry.name, flags));
    }
}

/// Retries a call the kernel interrupted.
pub fn retry<T>(mut call: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match call() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// A resolution failure, worded for the two an image causes on purpose.
pub fn resolve_error(inner: &Path, errno: Errno) -> ApplyError {
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
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind == FileType::Symlink {
        // Resolution follows links; only an entry swapped after this run created it is one.
        return Err(ApplyError::Target {
            path: inner.to_path_buf(),
            problem: "became a symlink after gpuhook created it".into(),
        });
    }
    let is_dir = kind == FileType::Directory;
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
