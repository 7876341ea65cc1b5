//! The container a hook works on, resolved once and verified before anything is done to it.
//!
//! A runtime hands its hooks a pid and a bundle: a number that can be stale (the container died
//! and the pid was reused) or name a process that is no container at all, and a path.
//! [`ContainerHandle::open`] turns them into descriptors, checked once:
//! 1. `/proc/<pid>` is opened as a directory and a pidfd is taken; a read through the directory
//!    after the pidfd exists proves both name the same live process (a reused pid leaves the
//!    directory stale);
//! 2. its mount namespace is not the hook's own (that would put every mount on the host), and
//!    the user namespace owning it was made by root or by the user the hook runs as: an
//!    unprivileged user's `unshare -Urm` namespace is refused;
//! 3. the rootfs, opened inside that namespace, is the bundle's rootfs (same device and inode as
//!    seen from the hook's own namespace), so a namespace with something else mounted at the
//!    bundle's path is refused.
//!
//! Every later step (the device cgroup, entering the namespace, mounts, the ldconfig child and
//! cleanup) goes through this handle; nothing reads `/proc/<pid>` by number again.

pub mod idmap;
pub mod mounts;
pub mod ns;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, PidfdFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::inventory::open_root_dir;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(
        "container process {pid} is gone (did the container exit before its hooks ran?): {source}"
    )]
    Gone { pid: i32, source: std::io::Error },
    #[error("container process {pid} is in the host's own mount namespace, the hook's (not a container, or its pid was reused after it exited); gpuhook will not mount on the host")]
    HostNamespace { pid: i32 },
    #[error("container process {pid} is in a mount namespace owned by a user namespace that uid {owner} created, not root: not a container this runtime made; refused")]
    ForeignUserNamespace { pid: i32, owner: u32 },
    #[error("the rootfs {path} seen in the mount namespace of container process {pid} is not the bundle's rootfs; refused")]
    RootfsMismatch { pid: i32, path: PathBuf },
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Unprivileged(#[from] crate::userns::UnprivilegedHook),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

/// A verified container: its process, mount namespace and rootfs, as descriptors.
pub struct ContainerHandle {
    pid: i32,
    proc_dir: OwnedFd,
    pidfd: OwnedFd,
    mount_ns: File,
    host_mount_ns: File,
    rootfs_path: PathBuf,
    rootfs: OwnedFd,
    root_ids: (u32, u32),
    /// The container process's network, IPC, UTS and user namespaces, opened while the hook
    /// still may (opening them needs ptrace access to runc's non-dumpable init).
    other_namespaces: Vec<(&'static str, File)>,
}

/// The namespaces besides the mount namespace a confined helper may join.
pub const JOINABLE_NAMESPACES: [(&str, libc::c_int); 4] = [
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("user", libc::CLONE_NEWUSER),
];

impl ContainerHandle {
    /// Resolves and verifies `pid` as the container whose rootfs is `rootfs` (see the module
    /// docs). Leaves the calling thread in its own mount namespace.
    pub fn open(pid: i32, rootfs: &Path) -> Result<ContainerHandle, ContainerError> {
        crate::userns::require_privileges()?;
        let gone = |source| ContainerError::Gone { pid, source };
        let proc_dir = rustix::fs::open(
            format!("/proc/{pid}"),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| gone(e.into()))?;
        let raw_pid =
            Pid::from_raw(pid).ok_or_else(|| gone(std::io::ErrorKind::NotFound.into()))?;
        let pidfd = rustix::process::pidfd_open(raw_pid, PidfdFlags::empty())
            .map_err(|e| gone(e.into()))?;
        // The pidfd names whichever process has the pid now; the directory, the one it had
        // when opened. Reading through the directory succeeds only if that one still lives,
        // so both name the same process from here on.
        read_at(&proc_dir, "stat").map_err(gone)?;
        let mount_ns = open_at(&proc_dir, "ns/mnt").map_err(gone)?;
        let host_mount_ns = File::open("/proc/thread-self/ns/mnt")
            .map_err(io("open the hook's own mount namespace"))?;
        let same = |a: &File, b: &File| -> Result<bool, ContainerError> {
            Ok(ns::identity(a).map_err(io("stat a namespace"))?
                == ns::identity(b).map_err(io("stat a namespace"))?)
        };
        if same(&mount_ns, &host_mount_ns)? {
            return Err(ContainerError::HostNamespace { pid });
        }
        check_namespace_owner(pid, &mount_ns)?;
        let host_rootfs = open_root_dir(rootfs)
            .map_err(|e| io(format!("open the container rootfs {}", rootfs.display()))(e.into()))?;
        enter(&mount_ns, pid)?;
        let inside = open_root_dir(rootfs);
        enter(&host_mount_ns, pid)?;
        let inside = inside.map_err(|_| ContainerError::RootfsMismatch {
            pid,
            path: rootfs.to_path_buf(),
        })?;
        if ns::identity(&inside).map_err(io("stat the rootfs"))?
            != ns::identity(&host_rootfs).map_err(io("stat the rootfs"))?
        {
            return Err(ContainerError::RootfsMismatch {
                pid,
                path: rootfs.to_path_buf(),
            });
        }
        let other_namespaces = JOINABLE_NAMESPACES
            .iter()
            .map(|(name, _)| Ok((*name, open_at(&proc_dir, &format!("ns/{name}"))?)))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(gone)?;
        let root_ids = container_root_ids(&proc_dir, &other_namespaces).map_err(gone)?;
        Ok(ContainerHandle {
            pid,
            proc_dir,
            pidfd,
            mount_ns,
            host_mount_ns,
            rootfs_path: rootfs.to_path_buf(),
            rootfs: inside,
            root_ids,
            other_namespaces,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    /// The rootfs as the runtime named it (for messages and the ldconfig child's chroot).
    pub fn rootfs_path(&self) -> &Path {
        &self.rootfs_path
    }

    /// The rootfs, opened inside the container's mount namespace (`O_PATH`).
    pub fn rootfs(&self) -> &OwnedFd {
        &self.rootfs
    }

    /// The host uid and gid the container's root stands for (0, 0 without a user namespace).
    pub fn root_ids(&self) -> (u32, u32) {
        self.root_ids
    }

    /// A file of the container process's `/proc` directory (`cgroup`, `uid_map`, ...).
    pub fn read_proc(&self, name: &str) -> Result<String, ContainerError> {
        read_at(&self.proc_dir, name).map_err(|source| ContainerError::Gone {
            pid: self.pid,
            source,
        })
    }

    /// The container process's namespace `name` (one of [`JOINABLE_NAMESPACES`]).
    pub fn namespace(&self, name: &str) -> Option<&File> {
        self.other_namespaces
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f)
    }

    /// Runs `work` in the container's mount namespace and comes back to the hook's own,
    /// whatever `work` returns.
    pub fn in_mount_namespace<T>(&self, work: impl FnOnce() -> T) -> Result<T, ContainerError> {
        enter(&self.mount_ns, self.pid)?;
        let result = work();
        enter(&self.host_mount_ns, self.pid)?;
        Ok(result)
    }
}

/// The user namespace owning `mount_ns` must be ours, or one made by root (or by the user the
/// hook runs as, for rootless engines).
fn check_namespace_owner(pid: i32, mount_ns: &File) -> Result<(), ContainerError> {
    let owner_ns = ns::owning_user_namespace(mount_ns).map_err(io(format!(
        "find the user namespace of container process {pid}"
    )))?;
    let own_ns = File::open("/proc/thread-self/ns/user")
        .map_err(io("open the hook's own user namespace"))?;
    if ns::identity(&owner_ns).map_err(io("stat a namespace"))?
        == ns::identity(&own_ns).map_err(io("stat a namespace"))?
    {
        return Ok(());
    }
    let owner = ns::owner_uid(&owner_ns).map_err(io(format!(
        "find who made the user namespace of process {pid}"
    )))?;
    if owner == 0 || owner == rustix::process::getuid().as_raw() {
        return Ok(());
    }
    Err(ContainerError::ForeignUserNamespace { pid, owner })
}

fn enter(namespace: &File, pid: i32) -> Result<(), ContainerError> {
    // setns(CLONE_NEWNS) needs a filesystem context no other thread shares; threads started
    // since the last call (NVML starts some) share the calling thread's, so unshare it each time.
    // SAFETY: CLONE_FS only: no file descriptor table is unshared.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS) }
        .map_err(|e| io("unshare the filesystem context")(e.into()))?;
    rustix::thread::move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Mount))
        .map_err(|e| {
            io(format!(
                "enter the mount namespace of container process {pid}"
            ))(e.into())
        })
}

fn open_at(dir: &OwnedFd, name: &str) -> std::io::Result<File> {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    Ok(File::from(fd))
}

/// Small procfs files only; `/proc/<pid>/*` text files are at most a few pages.
fn read_at(dir: &OwnedFd, name: &str) -> std::io::Result<String> {
    let mut text = String::new();
    open_at(dir, name)?
        .take(1 << 20)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// What uid and gid 0 inside the container are in the hook's namespace.
///
/// A container in the hook's own user namespace (a rootless engine runs its runtime, and so
/// the hook, in the user namespace it gives its containers) has the hook's ids: 0 is 0. Its
/// `uid_map`, read from inside that namespace, would name the parent namespace's ids instead
/// (user_namespaces(7)), which mean nothing here.
fn container_root_ids(
    proc_dir: &OwnedFd,
    namespaces: &[(&'static str, File)],
) -> std::io::Result<(u32, u32)> {
    let own = File::open("/proc/thread-self/ns/user")?;
    if let Some((_, theirs)) = namespaces.iter().find(|(name, _)| *name == "user") {
        if ns::identity(theirs)? == ns::identity(&own)? {
            return Ok((0, 0));
        }
    }
    let unmapped = || std::io::Error::other("the container's root is not mapped to any host id");
    let uid = idmap::outside_id(&read_at(proc_dir, "uid_map")?, 0).ok_or_else(unmapped)?;
    let gid = idmap::outside_id(&read_at(proc_dir, "gid_map")?, 0).ok_or_else(unmapped)?;
    Ok((uid, gid))
}
