//! The apply stage for the OCI hook (legacy mode): make a plan real inside a container that
//! runc has created but not yet started, through a verified [`ContainerHandle`].
//!
//! Order matters for safety and for cleanup:
//! 1. on the host: open every source as a detached mount with the plan's flags, build the
//!    `/proc/driver/nvidia` mask, open the host ldconfig, add the device cgroup rules (of the
//!    verified container, never of a pid read again);
//! 2. drop every capability the rest does not need (see [`privileges`]), enter the container's
//!    mount namespace and attach each mount, in the plan's order, onto a target resolved inside
//!    the rootfs on a mount [`placement`] allows;
//! 3. rebuild the container's ld cache with a confined host ldconfig ([`ldconfig`],
//!    [`confined`]).
//!
//! All mounts live in the container's mount namespace and vanish with it. If anything fails,
//! the placeholder files and directories this run created in the rootfs are removed through
//! the directory fds they were made in.

mod bpf;
pub mod cgroup;
pub mod confined;
mod fs_identity;
pub mod ld_cache;
pub mod ld_conf;
pub mod ldconfig;
mod mount;
pub mod placement;
pub mod privileges;
mod proc_mask;
pub mod rootfs;
mod seccomp;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, LdcacheUpdate};
use crate::container::{ContainerError, ContainerHandle};
use crate::plan::{InjectionPlan, MountEntry, Placement, ProcDriverView, ProcMaskTarget};
use mount::DetachedMount;
use proc_mask::ProcMask;
use rootfs::Rootfs;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{path} in the container {problem}; gpuhook will not mount over it")]
    Target { path: PathBuf, problem: String },
    #[error("{path} in the container is on {mount} ({fs_type}), a volume or other mount that is not the image's own filesystem: gpuhook places driver files only in the image's rootfs and the container's own tmpfs mounts")]
    Placement {
        path: PathBuf,
        mount: PathBuf,
        fs_type: String,
    },
    #[error("device cgroup {path}: {message}; set hook.no-cgroups = true if the runtime manages device rules")]
    Cgroup { path: PathBuf, message: String },
    #[error("ld cache update: {message}")]
    Ldconfig { message: String },
    #[error("cannot drop privileges: {message}")]
    Privileges { message: String },
}

impl ApplyError {
    fn io(what: String, errno: rustix::io::Errno) -> ApplyError {
        ApplyError::Io {
            what,
            source: errno.into(),
        }
    }
}

/// What applying did besides the plan's mounts: the optional ones it left out (and why), how
/// the ld cache was updated, and the ldconfig child's peak RSS in KiB when it ran.
#[derive(Debug, Default)]
pub struct Applied {
    pub skipped: Vec<String>,
    /// `in-process`, or `ldconfig` and why (see [`ld_cache`]); none without libraries.
    pub ldcache: Option<String>,
    pub ldconfig_rss_kib: Option<u64>,
}

/// The image's system directories a directory target may not be (through symlinks).
fn system_dirs(plan: &InjectionPlan) -> Vec<PathBuf> {
    crate::plan::targets::SYSTEM_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(plan.ldcache_dirs.iter().cloned())
        .collect()
}

/// Makes `plan` real in the container behind `handle`.
pub fn apply(
    plan: &InjectionPlan,
    handle: &ContainerHandle,
    config: &Config,
) -> Result<Applied, ApplyError> {
    // 1. Host side.
    let mounts = plan
        .mounts
        .iter()
        .map(|m| Ok((m, DetachedMount::bind(&m.host_path, m.flags)?)))
        .collect::<Result<Vec<_>, ApplyError>>()?;
    let proc_mask = plan
        .proc_mask
        .as_ref()
        .map(|target| ProcMask::build(&plan.proc_driver, target.nested).map(|m| (m, &target.path)))
        .transpose()?;
    // Opened on the host, where it is; only needed (and only an error) if ldconfig runs.
    let ldconfig = match plan.ldcache_dirs.is_empty() {
        true => None,
        false => Some(ldconfig::HostLdconfig::open(config.host_ldconfig())),
    };
    let mut skipped = Vec::new();
    if !config.hook.no_cgroups && !plan.device_rules.is_empty() {
        // A rootless engine's hook can neither add device rules nor needs to (see userns).
        match crate::userns::HookContext::current().device_cgroup_skipped() {
            Some(reason) => skipped.push(reason.to_string()),
            None => {
                let cgroup = cgroup::container_cgroup(handle, &config.hook.cgroup_root)?;
                cgroup::allow_devices(&cgroup, &plan.device_rules)?;
            }
        }
    }
    // Everything that needs the host's privileges is open by now.
    privileges::drop_all_but(privileges::CONTAINER_WORK)?;

    // 2. and 3. Inside the container's mount namespace.
    let timeout = Duration::from_secs(config.hook.ldconfig_timeout);
    in_container(handle, &plan.fresh_tmpfs, system_dirs(plan), |rootfs| {
        let mut applied = attach_all(rootfs, &mounts, proc_mask.as_ref())?;
        applied.skipped.append(&mut skipped);
        if let Some(ldconfig) = ldconfig {
            let mode = config.hook.ldcache_update;
            (applied.ldcache, applied.ldconfig_rss_kib) =
                update_ld_cache(rootfs, handle, plan, mode, ldconfig, timeout)?;
        }
        Ok(applied)
    })
}

/// The container's ld cache updated in-process, or by the host's ldconfig where that is
/// configured or needed; returns how (for the log) and ldconfig's peak RSS when it ran.
fn update_ld_cache(
    rootfs: &mut Rootfs,
    handle: &ContainerHandle,
    plan: &InjectionPlan,
    mode: LdcacheUpdate,
    ldconfig: Result<ldconfig::HostLdconfig, ApplyError>,
    timeout: Duration,
) -> Result<(Option<String>, Option<u64>), ApplyError> {
    let (dirs, ids) = (&plan.ldcache_dirs, plan.ldconfig_ids);
    let reason = match mode {
        LdcacheUpdate::InProcess => {
            match ld_cache::update(rootfs, &plan.ldcache_libraries, dirs, ids)? {
                ld_cache::Update::InProcess { entries } => {
                    return Ok((Some(format!("in-process({entries})")), None))
                }
                ld_cache::Update::Ldconfig { reason } => reason,
            }
        }
        LdcacheUpdate::Ldconfig => "hook.ldcache-update = \"ldconfig\"".to_string(),
    };
    let rss = ldconfig?.run(handle, rootfs, dirs, ids, timeout)?;
    Ok((Some(format!("ldconfig({reason})")), Some(rss)))
}

/// Masks `/proc/driver/nvidia` in the container so that only `view`'s GPUs appear (the CDI
/// `mask-proc-driver` hook).
pub fn mask_proc_driver(
    view: &ProcDriverView,
    target: &ProcMaskTarget,
    handle: &ContainerHandle,
) -> Result<(), ApplyError> {
    let proc_mask = ProcMask::build(view, target.nested)?;
    in_container(
        handle,
        &[],
        Vec::new(),
        |rootfs| match rootfs::proc_mask_target(rootfs, &target.path)? {
            Some(fd) => proc_mask.attach(&fd, &target.path),
            None => Ok(()),
        },
    )
}

/// Rebuilds the container's ld cache for `dirs` with the host's ldconfig (the CDI
/// `update-ldcache` hook), after writing the `ld.so.conf.d` drop-in that lists `conf_dirs`
/// (see [`ld_conf`]); returns whether the drop-in was written.
pub fn update_ldcache(
    dirs: &[PathBuf],
    conf_dirs: &[PathBuf],
    handle: &ContainerHandle,
    config: &Config,
    fresh_tmpfs: &[PathBuf],
) -> Result<bool, ApplyError> {
    if let Some(relative) = dirs.iter().find(|d| !d.is_absolute()) {
        return Err(ApplyError::Ldconfig {
            message: format!("folder {} is not an absolute path", relative.display()),
        });
    }
    let ldconfig = ldconfig::HostLdconfig::open(config.host_ldconfig())?;
    let timeout = Duration::from_secs(config.hook.ldconfig_timeout);
    in_container(handle, fresh_tmpfs, Vec::new(), |rootfs| {
        let written = ld_conf::write_drop_in(rootfs, conf_dirs)?;
        ldconfig.run(handle, rootfs, dirs, handle.root_ids(), timeout)?;
        Ok(written)
    })
}

/// Runs `work` inside the container's mount namespace on its rootfs. If it fails, the
/// placeholders this run created are removed, from the hook's own namespace, through the
/// directory fds they were made in.
fn in_container<T>(
    handle: &ContainerHandle,
    fresh_tmpfs: &[PathBuf],
    system_dirs: Vec<PathBuf>,
    work: impl FnOnce(&mut Rootfs) -> Result<T, ApplyError>,
) -> Result<T, ApplyError> {
    let owner = handle.root_ids();
    let (result, created) = handle.in_mount_namespace(|| {
        let mut rootfs = match Rootfs::new(handle.rootfs(), fresh_tmpfs, system_dirs, owner) {
            Ok(rootfs) => rootfs,
            Err(e) => return (Err(e), Vec::new()),
        };
        let result = work(&mut rootfs);
        let created = match result {
            Ok(_) => Vec::new(),
            Err(_) => rootfs.take_created(),
        };
        (result, created)
    })?;
    rootfs::remove_created(created);
    result
}

/// Attaches each mount in the plan's order, then the `/proc/driver` mask (when there is one).
fn attach_all(
    rootfs: &mut Rootfs,
    mounts: &[(&MountEntry, DetachedMount)],
    proc_mask: Option<&(ProcMask, &PathBuf)>,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::default();
    for (entry, detached) in mounts {
        let placed = rootfs
            .mount_target(&entry.container_path, entry.target)
            .and_then(|target| attach_one(rootfs, entry, detached, target));
        match placed {
            Err(e @ ApplyError::Placement { .. }) if entry.placement == Placement::Optional => {
                applied.skipped.push(e.to_string());
            }
            other => other?,
        }
    }
    let Some((proc_mask, proc_target)) = proc_mask else {
        return Ok(applied);
    };
    if let Some(target) = rootfs::proc_mask_target(rootfs, proc_target)? {
        proc_mask.attach(&target, proc_target)?;
    }
    Ok(applied)
}

/// Attaches one mount onto its target, unless this very mount is there already (the hook run
/// twice for one container), and records it as ours.
fn attach_one(
    rootfs: &mut Rootfs,
    entry: &MountEntry,
    detached: &DetachedMount,
    target: rootfs::Target,
) -> Result<(), ApplyError> {
    let stat_error = |e| ApplyError::io("stat a mount".into(), e);
    if !target.created && detached.is_mounted_at(&target.fd) {
        let id = placement::mount_id(&target.fd).map_err(stat_error)?;
        rootfs.rules.add_ours(id);
        return Ok(());
    }
    // A target this run created is on its checked parent's mount (see `Rootfs::open_or_create`).
    if !target.created {
        rootfs.rules.check(&target.fd, &entry.container_path)?;
    }
    detached.attach(&target.fd, &entry.container_path)?;
    let id = detached.id().map_err(stat_error)?;
    rootfs.rules.add_ours(id);
    Ok(())
}
