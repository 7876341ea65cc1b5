//! The apply stage for the OCI hook (legacy mode): make a plan real inside a container that
//! runc has created but not yet started.
//!
//! Order matters for safety and for cleanup:
//! 1. on the host: open every source as a detached mount with its final flags, build the
//!    `/proc/driver/nvidia` mask, open the host ldconfig, add the device cgroup rules;
//! 2. drop every capability the rest does not need (see [`privileges`]), enter the container's
//!    mount namespace and attach each mount onto a target resolved inside the rootfs;
//! 3. rebuild the container's ld cache with a confined host ldconfig.
//!
//! All mounts live in the container's mount namespace and vanish with it. If anything fails,
//! the placeholder files and directories this run created in the rootfs are removed.

mod bpf;
pub mod cgroup;
pub mod ldconfig;
mod mount;
pub mod privileges;
pub mod rootfs;
mod seccomp;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use crate::config::Config;
use crate::inventory::cuda_compat::newest_libcuda_version;
use crate::plan::{ContainerLayout, CudaCompat, InjectionPlan, MountKind, ProcDriverView};
use mount::DetachedMount;
use rootfs::{Rootfs, TargetType};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "container process {pid} is gone (did the container exit before its hooks ran?): {source}"
    )]
    Gone { pid: i32, source: std::io::Error },
    #[error("{path} in the container {problem}; gpuhook will not mount over it")]
    Target { path: PathBuf, problem: String },
    #[error("device cgroup {path}: {message}; set hook.no-cgroups = true if the runtime manages device rules")]
    Cgroup { path: PathBuf, message: String },
    #[error("ld cache update: {message}")]
    Ldconfig { message: String },
    #[error("cannot drop privileges: {message}")]
    Privileges { message: String },
    #[error("container process {pid} is in the host's own mount namespace (not a container, or its pid was reused after it exited); gpuhook will not mount on the host")]
    HostNamespace { pid: i32 },
}

impl ApplyError {
    fn io(what: String, errno: rustix::io::Errno) -> ApplyError {
        ApplyError::Io {
            what,
            source: errno.into(),
        }
    }
}

/// The container being changed: runc's init process and its rootfs path.
#[derive(Debug, Clone)]
pub struct Container {
    pub pid: i32,
    pub rootfs: PathBuf,
}

/// Reads the library layout from the image (host-side view of its rootfs): its library
/// directories, and the newest `libcuda.so.<version>` in `cuda_compat_dir` (by name only).
pub fn container_layout(
    rootfs: &Path,
    cuda_compat_dir: &Path,
) -> Result<ContainerLayout, ApplyError> {
    let root = Rootfs::open(rootfs)?;
    let mut layout = ContainerLayout::for_rootfs(root.exists(Path::new("/etc/debian_version")));
    if !cuda_compat_dir.as_os_str().is_empty() {
        let names = root.file_names(cuda_compat_dir);
        let newest = newest_libcuda_version(names.iter().map(String::as_str));
        layout.cuda_compat = newest.map(|version| CudaCompat {
            dir: cuda_compat_dir.to_path_buf(),
            version: version.to_string(),
        });
    }
    Ok(layout)
}

/// Makes `plan` real in `container`.
pub fn apply(
    plan: &InjectionPlan,
    container: &Container,
    config: &Config,
) -> Result<(), ApplyError> {
    // The container must still be there before anything is prepared for it.
    if !Path::new(&format!("/proc/{}/ns/mnt", container.pid)).exists() {
        return Err(ApplyError::Gone {
            pid: container.pid,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    // 1. Host side.
    let mounts = plan
        .mounts
        .iter()
        .map(|m| Ok((m, DetachedMount::bind(&m.host_path, m.kind)?)))
        .collect::<Result<Vec<_>, ApplyError>>()?;
    // The container's procfs shows the host kernel's /proc/driver: cover `nvidia` there, or
    // all of `/proc/driver` when the kernel has none (a driver simulated by config).
    let kernel_has_proc_nvidia = Path::new("/proc/driver/nvidia").is_dir();
    let proc_mask = DetachedMount::proc_driver_view(&plan.proc_driver, !kernel_has_proc_nvidia)?;
    let proc_target = if kernel_has_proc_nvidia {
        "/proc/driver/nvidia"
    } else {
        "/proc/driver"
    };
    let ldconfig = match plan.ldcache_dirs.is_empty() {
        true => None,
        false => Some(ldconfig::HostLdconfig::open(config.host_ldconfig())?),
    };
    if !config.hook.no_cgroups && !plan.device_rules.is_empty() {
        let cgroup = cgroup::container_cgroup(container.pid, &config.hook.cgroup_root)?;
        cgroup::allow_devices(&cgroup, &plan.device_rules)?;
    }

    // 2. and 3. Inside the container's mount namespace.
    in_container(container, |rootfs| {
        attach_all(rootfs, &mounts, &proc_mask, Path::new(proc_target))?;
        ldconfig
            .as_ref()
            .map_or(Ok(()), |l| l.run(&container.rootfs, &plan.ldcache_dirs))
    })
}

/// Masks `/proc/driver/nvidia` in `container` so that only `view`'s GPUs appear (the CDI
/// `mask-proc-driver` hook).
pub fn mask_proc_driver(view: &ProcDriverView, container: &Container) -> Result<(), ApplyError> {
    let kernel_has_proc_nvidia = Path::new("/proc/driver/nvidia").is_dir();
    let proc_mask = DetachedMount::proc_driver_view(view, !kernel_has_proc_nvidia)?;
    let proc_target = if kernel_has_proc_nvidia {
        "/proc/driver/nvidia"
    } else {
        "/proc/driver"
    };
    in_container(container, |rootfs| {
        match rootfs::proc_mask_target(rootfs, Path::new(proc_target))? {
            Some(target) => proc_mask.attach(&target, Path::new(proc_target)),
            None => Ok(()),
        }
    })
}

/// Rebuilds `container`'s ld cache for `dirs` with the host's ldconfig (the CDI
/// `update-ldcache` hook).
pub fn update_ldcache(
    dirs: &[PathBuf],
    container: &Container,
    config: &Config,
) -> Result<(), ApplyError> {
    if let Some(relative) = dirs.iter().find(|d| !d.is_absolute()) {
        return Err(ApplyError::Ldconfig {
            message: format!("folder {} is not an absolute path", relative.display()),
        });
    }
    let ldconfig = ldconfig::HostLdconfig::open(config.host_ldconfig())?;
    in_container(container, |_| ldconfig.run(&container.rootfs, dirs))
}

/// Runs `work` inside the container's mount namespace with its rootfs open, holding only the
/// capabilities that work needs. If it fails, the placeholders this run created in the rootfs
/// are removed (from the host's namespace).
fn in_container(
    container: &Container,
    work: impl FnOnce(&mut Rootfs) -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    let host_ns = File::open("/proc/self/ns/mnt").map_err(|e| ApplyError::Io {
        what: "open the host mount namespace".into(),
        source: e,
    })?;
    let container_ns = File::open(format!("/proc/{}/ns/mnt", container.pid)).map_err(|source| {
        ApplyError::Gone {
            pid: container.pid,
            source,
        }
    })?;
    // A pid that is not a container's (runc's state names a process that exited and whose pid
    // was reused) would make every mount below land on the host.
    if same_file(&host_ns, &container_ns)? {
        return Err(ApplyError::HostNamespace { pid: container.pid });
    }
    // Everything that needs the host's privileges is open by now.
    privileges::drop_all_but(privileges::CONTAINER_WORK)?;
    // A process sharing its filesystem context with other threads cannot change mount
    // namespace: unshare it first.
    nix::sched::unshare(CloneFlags::CLONE_FS).map_err(|e| ApplyError::Io {
        what: "unshare the filesystem context".into(),
        source: e.into(),
    })?;
    enter(&container_ns, container.pid)?;
    let mut rootfs = Rootfs::open(&container.rootfs)?;
    let result = work(&mut rootfs);
    if result.is_err() {
        let created = rootfs.take_created();
        drop(rootfs);
        if enter(&host_ns, container.pid).is_ok() {
            rootfs::remove_created(&container.rootfs, &created);
        }
    }
    result
}

fn same_file(a: &File, b: &File) -> Result<bool, ApplyError> {
    let stat = |f: &File| {
        rustix::fs::fstat(f).map_err(|e| ApplyError::io("stat a mount namespace".into(), e))
    };
    let (a, b) = (stat(a)?, stat(b)?);
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

fn enter(namespace: &File, pid: i32) -> Result<(), ApplyError> {
    nix::sched::setns(namespace.as_fd(), CloneFlags::CLONE_NEWNS).map_err(|e| ApplyError::Io {
        what: format!("enter the mount namespace of container process {pid}"),
        source: e.into(),
    })
}

fn attach_all(
    rootfs: &mut Rootfs,
    mounts: &[(&crate::plan::MountEntry, DetachedMount)],
    proc_mask: &DetachedMount,
    proc_target: &Path,
) -> Result<(), ApplyError> {
    for (entry, detached) in mounts {
        let wanted = match entry.kind {
            MountKind::Ipc if entry.host_path.is_dir() => TargetType::Directory,
            _ => TargetType::NonDirectory,
        };
        let target = rootfs.mount_target(&entry.container_path, wanted)?;
        detached.attach(&target, &entry.container_path)?;
    }
    match rootfs::proc_mask_target(rootfs, proc_target)? {
        Some(target) => proc_mask.attach(&target, proc_target),
        None => Ok(()),
    }
}
