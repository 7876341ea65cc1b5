//! Which of the container's mounts may hold what gpuhook creates and mounts: the image's own
//! rootfs, and the tmpfs mounts the runtime made fresh for this container (its `/dev`, a
//! `--tmpfs /tmp`). Never a volume or other bind mount (a directory of the host or of another
//! container: a placeholder made there outlives the container), never procfs, sysfs or any
//! other mount, never a mount this run of gpuhook made (so nothing is resolved through one).
//!
//! Mounts are told apart by id (`statx` `STATX_MNT_ID`), looked up in the container's mount
//! table; the fresh tmpfs mounts are the spec's `tmpfs` destinations, found at exactly
//! `<rootfs>/<destination>` with their whole filesystem mounted.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, StatxFlags};

use super::ApplyError;
use crate::container::mounts::{self, Mount};
use crate::inventory::resolve_in_root;

pub struct MountRules {
    table: Vec<Mount>,
    rootfs_path: PathBuf,
    rootfs_mount: u64,
    fresh: Vec<u64>,
    ours: Vec<u64>,
}

/// The id of the mount `fd` is on (or whose root it is).
pub fn mount_id(fd: &impl AsFd) -> rustix::io::Result<u64> {
    let stat = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    Ok(stat.stx_mnt_id)
}

impl MountRules {
    /// Reads the mount table. Must be called inside the container's mount namespace.
    pub fn read(rootfs: &impl AsFd, fresh_tmpfs: &[PathBuf]) -> Result<MountRules, ApplyError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| ApplyError::Io { what, source: e }
        };
        let table = mounts::current().map_err(io("read the container's mount table"))?;
        let rootfs_path = fd_path(rootfs).map_err(io("find the rootfs path"))?;
        let rootfs_mount = mount_id(rootfs).map_err(|e| io("stat the rootfs mount")(e.into()))?;
        let fresh = fresh_tmpfs
            .iter()
            .filter_map(|dest| {
                let fd = resolve_in_root(rootfs, dest).ok()?;
                let id = mount_id(&fd).ok()?;
                let mount = mounts::by_id(&table, id)?;
                let expected = rootfs_path.join(dest.strip_prefix("/").unwrap_or(dest));
                (mount.fs_type == "tmpfs"
                    && mount.root == Path::new("/")
                    && mount.point == expected)
                    .then_some(id)
            })
            .collect();
        Ok(MountRules {
            table,
            rootfs_path,
            rootfs_mount,
            fresh,
            ours: Vec::new(),
        })
    }

    /// A mount this run made (or found already made by an earlier run for the same file).
    pub fn add_ours(&mut self, id: u64) {
        self.ours.push(id);
    }

    /// Refuses `fd` (a directory that will hold a target, or an existing target) unless it is
    /// on the rootfs or a fresh tmpfs; `inner` names it in the error.
    pub fn check(&self, fd: &impl AsFd, inner: &Path) -> Result<(), ApplyError> {
        let id = mount_id(fd)
            .map_err(|e| ApplyError::io(format!("stat the mount of {}", inner.display()), e))?;
        if self.ours.contains(&id) {
            return Err(ApplyError::Target {
                path: inner.to_path_buf(),
                problem: "is reached through a mount gpuhook made for another file (a symlink \
                          in the image leads there)"
                    .into(),
            });
        }
        if id == self.rootfs_mount || self.fresh.contains(&id) {
            return Ok(());
        }
        let (mount, fs_type) = match mounts::by_id(&self.table, id) {
            Some(m) => (self.in_container(&m.point), m.fs_type.clone()),
            None => (
                PathBuf::from("?"),
                "a mount made after the container's".into(),
            ),
        };
        Err(ApplyError::Placement {
            path: inner.to_path_buf(),
            mount,
            fs_type,
        })
    }

    /// Refuses a directory target that would cover a mount this run made already (reached
    /// through a symlink in the image: the plan's own targets never overlap).
    pub fn check_covers_none_of_ours(
        &self,
        fd: &impl AsFd,
        inner: &Path,
    ) -> Result<(), ApplyError> {
        let io = |e: std::io::Error| ApplyError::Io {
            what: "read the container's mount table".into(),
            source: e,
        };
        let dir = fd_path(fd).map_err(io)?;
        let table = mounts::current().map_err(io)?;
        match table
            .iter()
            .find(|m| self.ours.contains(&m.id) && m.point.starts_with(&dir))
        {
            Some(covered) => Err(ApplyError::Target {
                path: inner.to_path_buf(),
                problem: format!(
                    "would cover {}, which gpuhook mounted already (a symlink in the image leads there)",
                    self.in_container(&covered.point).display()
                ),
            }),
            None => Ok(()),
        }
    }

    /// The mounts below the rootfs the ldconfig child keeps, parents first: the fresh tmpfs
    /// mounts, ours, and single files mounted directly in one of `indexed` (the directories
    /// ldconfig reads: a CDI spec's library mounts, which the runtime made). Volumes, procfs,
    /// sysfs and the rest are left out. Read again now: ours were attached after `read`.
    pub fn kept_mounts(&self, indexed: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
        let table = mounts::current()?;
        let indexed: Vec<PathBuf> = indexed
            .iter()
            .map(|d| self.rootfs_path.join(d.strip_prefix("/").unwrap_or(d)))
            .collect();
        let library_file = |m: &Mount| {
            m.point
                .parent()
                .is_some_and(|dir| indexed.iter().any(|d| d == dir))
                && std::fs::symlink_metadata(&m.point).is_ok_and(|meta| meta.is_file())
        };
        let mut kept: Vec<&Mount> = mounts::below(&table, &self.rootfs_path)
            .into_iter()
            .filter(|m| self.fresh.contains(&m.id) || self.ours.contains(&m.id) || library_file(m))
            .collect();
        kept.sort_by_key(|m| m.point.components().count());
        Ok(kept.into_iter().map(|m| m.point.clone()).collect())
    }

    /// The rootfs as the mount table names it (the ldconfig child's chroot).
    pub fn rootfs_path(&self) -> &Path {
        &self.rootfs_path
    }

    fn in_container(&self, point: &Path) -> PathBuf {
        point
            .strip_prefix(&self.rootfs_path)
            .map(|p| Path::new("/").join(p))
            .unwrap_or_else(|_| point.to_path_buf())
    }
}

/// The path an fd stands for in the current mount namespace (its `/proc/thread-self/fd` link).
fn fd_path(fd: &impl AsFd) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/thread-self/fd/{}", fd.as_fd().as_raw_fd()))
}
