//! Detached mounts: made on the host side with `open_tree`/`fsmount`, given their final flags
//! with `mount_setattr` before anything can see them, then attached inside the container with
//! `move_mount` onto a target fd. No mount ever goes through a path string the image controls.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, StatxAttributes, StatxFlags, CWD};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::ApplyError;
use crate::plan::{MountFlags, ProcDriverView};

/// `struct mount_attr` of `mount_setattr(2)` (also used by the ldconfig child).
#[repr(C)]
pub(super) struct MountAttr {
    pub(super) attr_set: u64,
    pub(super) attr_clr: u64,
    pub(super) propagation: u64,
    pub(super) userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `mount_setattr(2)` on a mount fd. rustix and nix do not wrap this syscall yet (kernel 5.12);
/// it is one call with a four-field struct.
fn mount_setattr(fd: &impl AsFd, set: u64, clear: u64) -> rustix::io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: valid fd, NUL-terminated empty path, a correctly sized and initialised struct.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        ))
    }
}

/// A mount not yet attached anywhere.
pub struct DetachedMount {
    fd: OwnedFd,
}

impl DetachedMount {
    /// A bind mount of a host file with the plan's flags for it.
    pub fn bind(host_path: &Path, flags: MountFlags) -> Result<DetachedMount, ApplyError> {
        let fd = rustix::mount::open_tree(
            CWD,
            host_path,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(|e| ApplyError::io(format!("open {} for mounting", host_path.display()), e))?;
        let bit = |on: bool, attr: u64| if on { attr } else { 0 };
        let set = bit(flags.read_only, MOUNT_ATTR_RDONLY)
            | bit(flags.nosuid, MOUNT_ATTR_NOSUID)
            | bit(flags.nodev, MOUNT_ATTR_NODEV)
            | bit(flags.noexec, MOUNT_ATTR_NOEXEC);
        let all = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        mount_setattr(&fd, set, all & !set).map_err(|e| {
            ApplyError::io(format!("set mount flags on {}", host_path.display()), e)
        })?;
        Ok(DetachedMount { fd })
    }

    /// The mount's fd (its root, once attached).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// This mount's id (the same once attached).
    pub fn id(&self) -> rustix::io::Result<u64> {
        super::placement::mount_id(&self.fd)
    }

    /// A read-only tmpfs holding the container's view of `/proc/driver/nvidia`: the driver's
    /// `version`, `params` with `ModifyDeviceFiles: 0`, an empty `gpus/<bus id>` for each
    /// selected GPU (see `proc_mask`), and the `capabilities/...` files of the given MIG
    /// devices. With
    /// `nested`, the files sit in an `nvidia/` subdirectory (the mask then covers
    /// `/proc/driver`, for hosts whose procfs has no `driver/nvidia` to cover).
    pub fn proc_driver_view(
        view: &ProcDriverView,
        nested: bool,
    ) -> Result<DetachedMount, ApplyError> {
        let io = |what: &str, e| {
            ApplyError::io(format!("build the /proc/driver/nvidia mask: {what}"), e)
        };
        let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| io("fsopen", e))?;
        rustix::mount::fsconfig_set_string(&fs, "mode", "0555").map_err(|e| io("mode", e))?;
        rustix::mount::fsconfig_set_string(&fs, "size", "1m").map_err(|e| io("size", e))?;
        rustix::mount::fsconfig_create(&fs).map_err(|e| io("create", e))?;
        let mnt =
            rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
                .map_err(|e| io("fsmount", e))?;
        let top = if nested {
            make_dir(&mnt, "nvidia").map_err(|e| io("mkdir nvidia", e))?
        } else {
            reopen_dir(&mnt).map_err(|e| io("open", e))?
        };
        write_file(&top, "version", &view.version).map_err(|e| io("version", e))?;
        write_file(&top, "params", &view.params).map_err(|e| io("params", e))?;
        let gpus = make_dir(&top, "gpus").map_err(|e| io("mkdir gpus", e))?;
        for (bus_id, _) in &view.gpus {
            make_dir(&gpus, bus_id).map_err(|e| io("mkdir gpu", e))?;
        }
        for (path, text) in &view.mig_capabilities {
            write_nested(&top, path, text).map_err(|e| io("MIG capability", e))?;
        }
        mount_setattr(
            &mnt,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            0,
        )
        .map_err(|e| io("read-only", e))?;
        Ok(DetachedMount { fd: mnt })
    }

    /// Attaches the mount on `target` (an `O_PATH` fd in the current mount namespace).
    pub fn attach(&self, target: &impl AsFd, what: &Path) -> Result<(), ApplyError> {
        rustix::mount::move_mount(
            &self.fd,
            c"",
            target,
            c"",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| ApplyError::io(format!("mount {} in the container", what.display()), e))
    }

    /// Whether this very file is already mounted on `target` (the hook run twice for one
    /// container: a second mount would only stack a copy on top).
    pub fn is_mounted_at(&self, target: &impl AsFd) -> bool {
        let Ok(source) = rustix::fs::fstat(&self.fd) else {
            return false;
        };
        is_mount_root(target).is_some_and(|(dev, ino)| (dev, ino) == (source.st_dev, source.st_ino))
    }
}

/// The (device, inode) of `fd` when it is the root of a mount, else `None`.
pub fn is_mount_root(fd: &impl AsFd) -> Option<(u64, u64)> {
    let stat = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS).ok()?;
    let root = StatxAttributes::MOUNT_ROOT;
    (stat.stx_attributes_mask.contains(root) && stat.stx_attributes.contains(root)).then(|| {
        (
            rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
            stat.stx_ino,
        )
    })
}

fn make_dir(parent: &OwnedFd, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o555))?;
    rustix::fs::openat(
        parent,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
}

/// Writes `path` (relative, plain names only) under `top`, making missing directories.
fn write_nested(top: &OwnedFd, path: &Path, contents: &str) -> rustix::io::Result<()> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::Normal(name) => names.push(name),
            // The paths are the plan's own; anything else is a bug, never a traversal.
            _ => return Err(rustix::io::Errno::INVAL),
        }
    }
    let Some((file, dirs)) = names.split_last() else {
        return Err(rustix::io::Errno::INVAL);
    };
    let mut dir = reopen_dir(top)?;
    for name in dirs {
        match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o555)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        dir = rustix::fs::openat(
            &dir,
            *name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )?;
    }
    write_file(&dir, &file.to_string_lossy(), contents)
}

fn reopen_dir(fd: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        fd,
        ".",
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
}

fn write_file(dir: &OwnedFd, name: &str, contents: &str) -> rustix::io::Result<()> {
    let file = rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )?;
    let mut rest = contents.as_bytes();
    while !rest.is_empty() {
        let n = super::rootfs::retry(|| rustix::io::write(&file, rest))?;
        rest = &rest[n..];
    }
    Ok(())
}

/// A path as a C string, for the few raw calls that take one.
pub fn c_path(path: &Path) -> Result<CString, ApplyError> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| ApplyError::Target {
        path: path.to_path_buf(),
        problem: "contains a NUL byte".into(),
    })
}
