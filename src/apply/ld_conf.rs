//! The `ld.so.conf.d` drop-in of the CDI `update-ldcache` hook. A CDI spec mounts the libraries
//! into one directory whatever the image (the multiarch one), which an in-container `ldconfig`
//! on a RHEL-family image does not index by itself: it would drop them from the cache the hook
//! built. `/etc/ld.so.conf.d/00-gpuhook-cdi.conf`, listing those directories, keeps them.
//!
//! Written like every other write of the applier: the directory resolved inside the rootfs
//! (`RESOLVE_IN_ROOT`), on the image's own filesystem only (never a volume: a symlinked
//! `/etc/ld.so.conf.d` cannot aim the write at a host directory), the file opened with
//! `O_NOFOLLOW` through that directory's fd, as the container's root. An image without
//! `/etc/ld.so.conf.d` gets nothing: its `ld.so.conf` reads no drop-ins.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::rootfs::{resolve_error, retry, FsIdentity, Rootfs};
use super::ApplyError;
use crate::inventory::resolve_in_root;

/// Where the drop-in goes; `00-` so it is read before the image's own files.
pub const CONF_DIR: &str = "/etc/ld.so.conf.d";
pub const CONF_NAME: &str = "00-gpuhook-cdi.conf";

/// Writes the drop-in listing `dirs`; returns whether it was written (not when the image has
/// no `/etc/ld.so.conf.d`).
pub fn write_drop_in(rootfs: &mut Rootfs, dirs: &[PathBuf]) -> Result<bool, ApplyError> {
    let conf_dir = Path::new(CONF_DIR);
    let dir_path = match resolve_in_root(rootfs.fd(), conf_dir) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(resolve_error(conf_dir, e)),
    };
    rootfs.rules.check(&dir_path, conf_dir)?;
    let inner = conf_dir.join(CONF_NAME);
    let fail = |problem: String| ApplyError::Target {
        path: inner.clone(),
        problem,
    };
    let io = |what: &str, e: Errno| ApplyError::io(format!("{what} {}", inner.display()), e);
    let dir = retry(|| {
        rustix::fs::openat(
            &dir_path,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    })
    .map_err(|e| match e {
        Errno::NOTDIR => fail("has a parent that is not a directory in the image".into()),
        e => io("open the directory of", e),
    })?;
    let name = OsStr::new(CONF_NAME);
    let (file, created) = open_file(&dir, name, rootfs.owner()).map_err(|e| match e {
        Errno::LOOP => fail("is a symlink in the image (never followed)".into()),
        e => io("open", e),
    })?;
    if created {
        let parent = dir.try_clone().map_err(|e| ApplyError::Io {
            what: "duplicate a descriptor".into(),
            source: e,
        })?;
        rootfs.record_created(parent, name);
    }
    let stat = rustix::fs::fstat(&file).map_err(|e| io("stat", e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_nlink != 1 {
        return Err(fail(
            "is not a regular file of one link in the image; gpuhook will not write it".into(),
        ));
    }
    rustix::fs::ftruncate(&file, 0).map_err(|e| io("truncate", e))?;
    let mut text = String::from("# gpuhook: the driver libraries a CDI spec mounted\n");
    for dir in dirs {
        text.push_str(&dir.to_string_lossy());
        text.push('\n');
    }
    std::fs::File::from(file)
        .write_all(text.as_bytes())
        .map_err(|source| ApplyError::Io {
            what: format!("write {}", inner.display()),
            source,
        })?;
    Ok(true)
}

/// Opens (creating it when absent, as the container's root) `name` in `dir` for writing,
/// never through a symlink, never blocking on a FIFO an image put there; and whether this call
/// created it.
fn open_file(
    dir: &OwnedFd,
    name: &OsStr,
    owner: (u32, u32),
) -> rustix::io::Result<(OwnedFd, bool)> {
    let base = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let created = {
        let _as_owner = FsIdentity::become_(owner);
        retry(|| {
            rustix::fs::openat(
                dir,
                name,
                base | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o644),
            )
        })
    };
    match created {
        Ok(fd) => Ok((fd, true)),
        Err(Errno::EXIST) => {
            retry(|| rustix::fs::openat(dir, name, base, Mode::empty())).map(|fd| (fd, false))
        }
        Err(e) => Err(e),
    }
}
