//! Per-container GPU memory caps and compute shares, in the hook.
//!
//! The container's request (`request::memory`) and the operator's policy ([`config`],
//! [`policy`], plus what a runtime name imposes through the hook's own environment) give each
//! of its GPUs a cap. Memory caps are enforced by NVML's memory limits on the container's
//! cgroup where the driver has them ([`nvml`], r615+), else, like compute shares, by the MPS
//! control daemon of the container's pool (`crate::mps`), whose pipe directory is mounted where
//! the container's CUDA looks for one. A capped container never gets the host's own MPS
//! directory. Containers of no cap are not touched here at all.

pub mod config;
pub mod nvml;
pub mod policy;

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::container::{ContainerError, ContainerHandle};
use crate::inventory::Inventory;
use crate::mps::{
    self, MpsError, MpsRoot, PoolGpu, PoolKey, ProcessId, RegisteredGpu, Registration,
};
use crate::plan::{
    ContainerLayout, InjectionPlan, MountEntry, MountKind, Placement, PlanError, TargetOrigin,
    TargetType,
};
use crate::request::memory::{parse_compute_limit, parse_size, MemoryError, MemoryRequest};
use crate::request::{ContainerRequest, DriverCapability, MPS_PIPE_ENV};
pub use config::{Enforcement, ImposedCaps, MemoryConfig};
use nvml::NvmlLimitError;
pub use policy::{Caps, Limits, Policy, PolicyError};

/// The hook's environment variables through which the runtime shim passes what its runtime
/// name imposes (`memory.runtimes`): set in the spec's hook entry, which a container cannot
/// write, and read only from the hook's own environment.
pub const IMPOSED_MEMORY_ENV: &str = "GPUHOOK_IMPOSED_MEMORY_LIMIT";
pub const IMPOSED_COMPUTE_ENV: &str = "GPUHOOK_IMPOSED_COMPUTE_LIMIT";
/// Where CUDA looks for the MPS pipes when `CUDA_MPS_PIPE_DIRECTORY` is unset.
pub const DEFAULT_MPS_PIPE_DIR: &str = "/tmp/nvidia-mps";

#[derive(Debug, thiserror::Error)]
pub enum CapError {
    #[error(transparent)]
    Request(#[from] MemoryError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{variable}={value:?} in the hook's environment (the runtime shim sets it from memory.runtimes in the config): {problem}")]
    Imposed {
        variable: &'static str,
        value: String,
        problem: String,
    },
    #[error(transparent)]
    Mps(#[from] MpsError),
    #[error(transparent)]
    Nvml(#[from] NvmlLimitError),
    #[error("GPU memory caps need {what}: {fix}")]
    Unavailable { what: String, fix: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// The operator's policy, with `imposed` from the runtime name.
pub fn policy(config: &MemoryConfig, imposed: Limits) -> Policy {
    let percent = |p: u8| (p < 100).then_some(p);
    Policy {
        default: Limits {
            memory_bytes: config.default_limit.0,
            compute_percent: percent(config.default_compute_limit),
        },
        max: Limits {
            memory_bytes: config.max_limit.0,
            compute_percent: percent(config.max_compute_limit),
        },
        imposed,
    }
}

/// What the hook's environment imposes.
pub fn imposed_from_env() -> Result<Limits, CapError> {
    let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let memory_bytes = var(IMPOSED_MEMORY_ENV)
        .map(|v| {
            parse_size(v.trim()).map_err(|problem| CapError::Imposed {
                variable: IMPOSED_MEMORY_ENV,
                value: v.clone(),
                problem,
            })
        })
        .transpose()?;
    let compute_percent = var(IMPOSED_COMPUTE_ENV)
        .map(|v| {
            parse_compute_limit(v.trim()).map_err(|e| CapError::Imposed {
                variable: IMPOSED_COMPUTE_ENV,
                value: v.clone(),
                problem: e.to_string(),
            })
        })
        .transpose()?;
    Ok(Limits {
        memory_bytes,
        compute_percent,
    })
}

/// The hook env entries (`NAME=value`) the shim run as `runtime_name` passes, and the
/// imposed limits they stand for.
pub fn imposed_for_runtime(config: &MemoryConfig, runtime_name: &str) -> (Vec<String>, Limits) {
    let Some(caps) = config.runtimes.get(runtime_name) else {
        return (Vec::new(), Limits::default());
    };
    let mut env = Vec::new();
    if let Some(bytes) = caps.limit.0 {
        env.push(format!(
            "{IMPOSED_MEMORY_ENV}={}",
            bytes / crate::request::memory::MIB
        ));
    }
    let compute = caps.compute_limit.filter(|p| *p < 100);
    if let Some(percent) = compute {
        env.push(format!("{IMPOSED_COMPUTE_ENV}={percent}"));
    }
    let limits = Limits {
        memory_bytes: caps.limit.0,
        compute_percent: compute,
    };
    (env, limits)
}

/// The caps of a container given `gpus`, when it computes; `None` when nothing is capped.
pub fn caps_for(
    memory: &MemoryRequest,
    policy: &Policy,
    request: &ContainerRequest,
    gpus: &[(u32, String)],
) -> Result<Option<Caps>, CapError> {
    if !request.capabilities.contains(&DriverCapability::Compute) || gpus.is_empty() {
        return Ok(None);
    }
    Ok(policy::resolve(memory, policy, gpus)?)
}

/// The container a hook run works on.
pub struct Target<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub handle: &'a ContainerHandle,
}

/// What enforcing did, and how to take it back if the start fails later.
#[derive(Debug)]
pub struct Enforced {
    pub summary: String,
    pub lowered: Vec<String>,
    root: PathBuf,
    id: String,
    bundle: PathBuf,
}

impl Enforced {
    /// Unregisters the container (stopping its pool if nobody else uses it).
    pub fn undo(&self) {
        let _ = mps::leave(&MpsRoot::new(&self.root), &self.id, &self.bundle);
    }
}

/// Caps the container, when its request and the policy say so, and adds its pool's pipe
/// directory to `plan` (replacing the host's MPS directory).
pub fn enforce(
    config: &Config,
    memory: &MemoryRequest,
    request: &ContainerRequest,
    inventory: &Inventory,
    layout: &ContainerLayout,
    plan: &mut InjectionPlan,
    target: &Target,
) -> Result<Option<Enforced>, CapError> {
    let policy = policy(&config.memory, imposed_from_env()?);
    let Some(caps) = caps_for(memory, &policy, request, &plan.gpus)? else {
        return Ok(None);
    };
    let nvml_dir = nvml_enforcement(config, inventory, &caps, target.handle)?;
    let key = PoolKey {
        gpus: caps
            .gpus
            .iter()
            .map(|g| PoolGpu {
                uuid: g.uuid.clone(),
                limit_bytes: g.limit_bytes.filter(|_| nvml_dir.is_none()),
            })
            .collect(),
        compute_percent: caps.compute_percent,
    };
    let pooled = key.gpus.iter().any(|g| g.limit_bytes.is_some()) || key.compute_percent.is_some();
    let root = MpsRoot::new(&config.memory.mps_root);
    let pipe = pooled.then(|| root.pipe_dir(&key.name()));
    // Checked before anything is started: a target the plan refuses costs no daemon.
    mount_pool_pipe_dir(plan, inventory, request, layout, pipe.as_deref())?;
    if let (Some((libnvml, dir)), true) = (&nvml_dir, caps.caps_memory()) {
        let limits: Vec<nvml::GpuLimit> = caps
            .gpus
            .iter()
            .filter_map(|g| {
                let hard = g.limit_bytes?;
                Some((g.uuid.clone(), g.soft_bytes.unwrap_or(hard), hard))
            })
            .collect();
        nvml::set_limits(libnvml, dir, &limits)?;
    }
    let registration = registration(target, &caps, &key, pooled, nvml_dir.is_some())?;
    let launch = match pooled {
        true => Some(daemon_launch(config, inventory)?),
        false => None,
    };
    mps::join(&root, &registration, launch.as_ref().map(|l| (&key, l)))?;
    let enforcement = if nvml_dir.is_some() { "nvml" } else { "mps" };
    let pool = registration
        .pool
        .as_ref()
        .map(|p| format!(" pool={p}"))
        .unwrap_or_default();
    Ok(Some(Enforced {
        summary: format!("{} enforcement={enforcement}{pool}", caps.summary()),
        lowered: caps.lowered.clone(),
        root: root.dir,
        id: target.id.to_string(),
        bundle: target.bundle.to_path_buf(),
    }))
}

/// NVML's library and the container's cgroup v2 directory, when NVML enforces the memory caps.
fn nvml_enforcement(
    config: &Config,
    inventory: &Inventory,
    caps: &Caps,
    handle: &ContainerHandle,
) -> Result<Option<(PathBuf, PathBuf)>, CapError> {
    if !caps.caps_memory() || config.memory.enforcement == Enforcement::Mps {
        return Ok(None);
    }
    let required = config.memory.enforcement == Enforcement::Nvml;
    let unavailable = |what: &str| {
        CapError::Unavailable {
        what: what.to_string(),
        fix: "use a driver of release 615 or later on a cgroup v2 host, or set memory.enforcement = \"mps\" or \"auto\"".into(),
    }
    };
    let libnvml = inventory
        .library_path("libnvidia-ml.so", &config.driver)
        .ok();
    let Some(libnvml) = libnvml.filter(|l| nvml::has_memory_limits(l)) else {
        return match required {
            true => Err(unavailable(
                "NVML memory limits (nvmlDeviceSetMemoryLimits_v1)",
            )),
            false => Ok(None),
        };
    };
    if caps.gpus.iter().any(|g| g.uuid.starts_with("MIG-")) {
        return match required {
            true => Err(unavailable(
                "whole GPUs: NVML memory limits take no MIG device",
            )),
            false => Ok(None),
        };
    }
    let text = target_cgroup(handle)?;
    match nvml::cgroup_v2_dir(&text, &config.hook.cgroup_root) {
        Some(dir) => Ok(Some((libnvml, dir))),
        None if required => Err(unavailable("a cgroup v2 hierarchy for the container")),
        None => Ok(None),
    }
}

fn target_cgroup(handle: &ContainerHandle) -> Result<String, CapError> {
    Ok(handle.read_proc("cgroup")?)
}

fn registration(
    target: &Target,
    caps: &Caps,
    key: &PoolKey,
    pooled: bool,
    nvml: bool,
) -> Result<Registration, CapError> {
    use procfs::FromRead;
    let stat = target.handle.read_proc("stat")?;
    let start_time = procfs::process::Stat::from_read(stat.as_bytes())
        .map(|s| s.starttime)
        .map_err(|e| ContainerError::Io {
            what: format!("read the start time of process {}", target.handle.pid()),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(Registration {
        id: target.id.to_string(),
        bundle: target.bundle.to_path_buf(),
        process: ProcessId {
            pid: target.handle.pid() as u32,
            start_time,
        },
        pool: pooled.then(|| key.name()),
        enforcement: if nvml { "nvml" } else { "mps" }.into(),
        gpus: caps
            .gpus
            .iter()
            .map(|g| RegisteredGpu {
                index: g.index,
                uuid: g.uuid.clone(),
                limit_bytes: g.limit_bytes,
            })
            .collect(),
        compute_percent: caps.compute_percent,
    })
}

/// The driver's MPS control binary and its library directory.
fn daemon_launch<'a>(
    config: &Config,
    inventory: &'a Inventory,
) -> Result<mps::DaemonLaunch<'a>, CapError> {
    let control = inventory
        .binaries
        .iter()
        .find(|(name, _)| *name == crate::catalog::MPS_CONTROL)
        .map(|(_, path)| path.as_path())
        .ok_or_else(|| CapError::Unavailable {
            what: "the driver's nvidia-cuda-mps-control".into(),
            fix: format!(
                "install the driver's MPS utilities, or add their directory to driver.binary-dirs (searched: {})",
                config
                    .driver
                    .binary_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    let library_dirs = inventory
        .library_path("libcuda.so", &config.driver)
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_default();
    Ok(mps::DaemonLaunch {
        control,
        library_dirs,
    })
}

/// Takes the host's MPS directory out of the plan and, for a pooled container, mounts the
/// pool's pipe directory where the container's CUDA looks (its `CUDA_MPS_PIPE_DIRECTORY`, else
/// `/tmp/nvidia-mps`), placement required: a capped container does not start without it.
pub fn mount_pool_pipe_dir(
    plan: &mut InjectionPlan,
    inventory: &Inventory,
    request: &ContainerRequest,
    layout: &ContainerLayout,
    pipe: Option<&Path>,
) -> Result<(), PlanError> {
    let host_mps = inventory
        .mps_pipe_dir
        .as_ref()
        .map(|f| f.host_path.as_path());
    plan.mounts.retain(|m| {
        !(m.kind == MountKind::Ipc
            && m.target == TargetType::Directory
            && Some(m.host_path.as_path()) == host_mps)
    });
    let Some(pipe) = pipe else {
        return Ok(());
    };
    let (path, origin) = match &request.mps_pipe_directory {
        Some(path) => (path.clone(), TargetOrigin::Tenant(MPS_PIPE_ENV)),
        None => (PathBuf::from(DEFAULT_MPS_PIPE_DIR), TargetOrigin::Driver),
    };
    let mut entry = MountEntry::ipc(pipe.to_path_buf(), path, TargetType::Directory, origin);
    entry.placement = Placement::Required;
    plan.mounts.push(entry);
    plan.recheck(layout)
}

#[cfg(test)]
mod tests;
