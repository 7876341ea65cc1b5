//! The OCI hook: runc runs it with the container's state on stdin; it runs the pipeline.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::Deserialize;

use crate::apply::{self, ApplyError};
use crate::config::Config;
use crate::container::{ContainerError, ContainerHandle};
use crate::inventory::{container_layout, Inventory, InventoryError, InventoryNeeds};
use crate::memcap::{self, CapError};
use crate::plan::{self, ContainerLayout, PlanError};
use crate::request::memory::MemoryLimit;
use crate::request::{self, ContainerFacts, ContainerRequest, RequestError, RequestPolicy};
use crate::vendor::{self, VendorError, VendorPlan};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(
        "malformed OCI state on stdin (expected the runtime's JSON with `pid` and `bundle`): {0}"
    )]
    State(String),
    #[error("cannot load the container's spec {path}: {message}")]
    Spec { path: PathBuf, message: String },
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Caps(#[from] CapError),
    #[error(transparent)]
    Vendor(#[from] VendorError),
    #[error(transparent)]
    Dmem(#[from] vendor::dmem::DmemError),
}

/// The fields of the OCI state the hook uses.
#[derive(Debug, Deserialize)]
pub struct OciState {
    pub id: String,
    pub pid: Option<i32>,
    pub bundle: PathBuf,
}

/// What the hook did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The container asked for no GPU and was left as it was.
    Untouched,
    /// GPUs `(index, uuid)`, the driver capabilities and this many mounts were given;
    /// `skipped` says which optional endpoints were left out and why.
    Injected {
        gpus: Vec<(u32, String)>,
        /// GPUs `all` left out as unusable: `(index, bus id, why)`.
        skipped_gpus: Vec<(u32, String, String)>,
        capabilities: Vec<&'static str>,
        mounts: usize,
        skipped: Vec<String>,
        /// How the ld cache was updated (see [`apply::Applied::ldcache`]).
        ldcache: Option<String>,
        ldconfig_rss_kib: Option<u64>,
        /// The caps given (see `memcap`), when the container has any.
        caps: Option<CapsGiven>,
    },
}

/// A capped container's caps, for the log: the summary and where its own values were lowered.
#[derive(Debug, PartialEq, Eq)]
pub struct CapsGiven {
    pub summary: String,
    pub lowered: Vec<String>,
}

impl OciState {
    pub fn parse(input: &[u8]) -> Result<OciState, HookError> {
        let state: OciState =
            serde_json::from_slice(input).map_err(|e| HookError::State(e.to_string()))?;
        if !state.bundle.is_absolute() {
            return Err(HookError::State(format!(
                "bundle {:?} is not an absolute path",
                state.bundle
            )));
        }
        Ok(state)
    }
}

/// Runs the hook for one container.
pub fn run(config: &Config, state: &OciState) -> Result<Outcome, HookError> {
    let (spec, spec_path) = load_spec(state)?;
    let facts = ContainerFacts::from_spec(&spec);
    let policy = RequestPolicy::from(config);
    let nvidia = request::container_request(&facts, &policy)?;
    let vendors =
        vendor::read_requests(&facts, policy.accept_env_when_unprivileged, &policy.limits)?;
    if nvidia.is_none() && vendors.is_empty() {
        return Ok(Outcome::Untouched);
    }
    let dmem_limits = vendor::dmem::read_limits(&facts, config.memory.accept_unprivileged)?;
    // AMD and Intel GPUs come from sysfs alone: no NVIDIA driver is needed for them.
    let vendor_plan = match vendors.is_empty() {
        true => None,
        false => {
            let driver = &config.driver;
            let inventory = vendor::read(&driver.sysfs_root, &driver.dev_root);
            Some(vendor::plan(&vendors, &inventory)?)
        }
    };
    let memory = match &nvidia {
        Some(_) => request::memory::read(&facts, config.memory.accept_unprivileged)
            .map_err(CapError::from)?,
        None => Default::default(),
    };
    let handle = container(state, &spec, &spec_path)?;
    let layout = container_layout::read(
        handle.rootfs(),
        &config.hook.cuda_compat_dir,
        handle.root_ids(),
        facts.tmpfs_mounts.clone(),
    );
    let Some(request) = nvidia else {
        let vendor_plan = vendor_plan.unwrap_or_default();
        let plan = plan::vendor::devices_only(&vendor_plan, &layout)?;
        // Before apply, which drops the privileges a cgroup write needs.
        let root = &config.hook.cgroup_root;
        vendor::dmem::enforce(&dmem_limits, &vendor_plan.gpus, &handle, root)?;
        let applied = apply::apply(&plan, &handle, config)?;
        return Ok(injected(plan, Vec::new(), applied, None));
    };
    let vendors = vendor_plan.map(|plan| (plan, dmem_limits));
    run_nvidia(config, state, &handle, &layout, &request, &memory, vendors)
}

/// An NVIDIA request (with the AMD and Intel devices and dmem caps of `vendors`, if any).
fn run_nvidia(
    config: &Config,
    state: &OciState,
    handle: &ContainerHandle,
    layout: &ContainerLayout,
    request: &ContainerRequest,
    memory: &request::memory::MemoryRequest,
    vendors: Option<(VendorPlan, Vec<(vendor::Vendor, MemoryLimit)>)>,
) -> Result<Outcome, HookError> {
    let inventory = Inventory::read(&config.driver, InventoryNeeds::for_request(request))?;
    let mut plan = plan::plan(request, &inventory, layout)?;
    let target = memcap::Target {
        id: &state.id,
        bundle: &state.bundle,
        handle,
    };
    let caps = memcap::enforce(
        config, memory, request, &inventory, layout, &mut plan, &target,
    )?;
    // After the caps, which are NVIDIA's and read the plan's NVIDIA GPUs.
    let added = match &vendors {
        Some((vendor_plan, limits)) => plan::vendor::add_devices(&mut plan, vendor_plan, layout)
            .map_err(HookError::from)
            .and_then(|()| {
                let root = &config.hook.cgroup_root;
                Ok(vendor::dmem::enforce(
                    limits,
                    &vendor_plan.gpus,
                    handle,
                    root,
                )?)
            }),
        None => Ok(()),
    };
    // A start that fails after the container joined its pool leaves it again.
    let applied = added
        .and_then(|()| Ok(apply::apply(&plan, handle, config)?))
        .inspect_err(|_| {
            caps.iter().for_each(memcap::Enforced::undo);
        })?;
    let capabilities = request.capabilities.iter().map(|c| c.name()).collect();
    Ok(injected(plan, capabilities, applied, caps))
}

fn injected(
    plan: plan::InjectionPlan,
    capabilities: Vec<&'static str>,
    applied: apply::Applied,
    caps: Option<memcap::Enforced>,
) -> Outcome {
    Outcome::Injected {
        mounts: plan.mounts.len(),
        gpus: plan.gpus,
        skipped_gpus: plan.skipped_gpus,
        capabilities,
        skipped: applied.skipped,
        ldcache: applied.ldcache,
        ldconfig_rss_kib: applied.ldconfig_rss_kib,
        caps: caps.map(|c| CapsGiven {
            summary: c.summary,
            lowered: c.lowered,
        }),
    }
}

/// The bundle's `config.json`, and its path.
pub fn load_spec(state: &OciState) -> Result<(Spec, PathBuf), HookError> {
    let spec_path = state.bundle.join("config.json");
    let spec_error = |message: String| HookError::Spec {
        path: spec_path.clone(),
        message,
    };
    let bytes = crate::limits::read_file_bounded(&spec_path, crate::limits::MAX_SPEC_BYTES)
        .map_err(|e| spec_error(e.to_string()))?;
    let spec: Spec = serde_json::from_slice(&bytes).map_err(|e| {
        spec_error(match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("not valid JSON: {e}")
            }
            _ => format!("not an OCI runtime spec: {e}"),
        })
    })?;
    Ok((spec, spec_path))
}

/// The verified container a hook works on: runc's init process and the rootfs from the spec.
pub fn container(
    state: &OciState,
    spec: &Spec,
    spec_path: &Path,
) -> Result<ContainerHandle, HookError> {
    let pid = state.pid.filter(|p| *p > 0).ok_or_else(|| {
        HookError::State("no `pid`: run gpuhook as a prestart/createRuntime hook".into())
    })?;
    let rootfs = rootfs_path(spec, &state.bundle, spec_path)?;
    Ok(ContainerHandle::open(pid, &rootfs)?)
}

fn rootfs_path(spec: &Spec, bundle: &Path, spec_path: &Path) -> Result<PathBuf, HookError> {
    let root = spec.root().as_ref().ok_or_else(|| HookError::Spec {
        path: spec_path.to_path_buf(),
        message: "no `root` (the container's rootfs)".into(),
    })?;
    Ok(if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    })
}
