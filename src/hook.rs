//! The OCI hook: runc runs it with the container's state on stdin; it runs the pipeline.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::Deserialize;

use crate::apply::{self, ApplyError, Container};
use crate::config::Config;
use crate::inventory::{Inventory, InventoryError, InventoryNeeds};
use crate::plan::{self, PlanError};
use crate::request::{self, ContainerFacts, RequestError, RequestPolicy, RequirementKey};

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
    /// GPUs `(index, uuid)`, the driver capabilities and this many mounts were given.
    Injected {
        gpus: Vec<(u32, String)>,
        capabilities: Vec<&'static str>,
        mounts: usize,
    },
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
    let Some(request) = request::container_request(&facts, &RequestPolicy::from(config))? else {
        return Ok(Outcome::Untouched);
    };
    let container = container(state, &spec, &spec_path)?;
    let needs = InventoryNeeds {
        cuda_version: request.needs(RequirementKey::Cuda),
        gpu_details: request.needs(RequirementKey::Arch) || request.needs(RequirementKey::Brand),
        mig: request.needs_mig(),
    };
    let inventory = Inventory::read(&config.driver, needs)?;
    let layout = apply::container_layout(&container.rootfs, &config.hook.cuda_compat_dir)?;
    let plan = plan::plan(&request, &inventory, &layout)?;
    apply::apply(&plan, &container, config)?;
    Ok(Outcome::Injected {
        gpus: plan.gpus,
        capabilities: request.capabilities.iter().map(|c| c.name()).collect(),
        mounts: plan.mounts.len(),
    })
}

/// The bundle's `config.json`, and its path.
pub fn load_spec(state: &OciState) -> Result<(Spec, PathBuf), HookError> {
    let spec_path = state.bundle.join("config.json");
    let spec_error = |message: String| HookError::Spec {
        path: spec_path.clone(),
        message,
    };
    let text = crate::limits::read_file_bounded(&spec_path, crate::limits::MAX_SPEC_BYTES)
        .map_err(|e| spec_error(e.to_string()))?;
    let spec = serde_json::from_slice(&text).map_err(|e| spec_error(e.to_string()))?;
    Ok((spec, spec_path))
}

/// The container a hook works on: runc's init process and the rootfs from the spec.
pub fn container(state: &OciState, spec: &Spec, spec_path: &Path) -> Result<Container, HookError> {
    let pid = state.pid.filter(|p| *p > 0).ok_or_else(|| {
        HookError::State("no `pid`: run gpuhook as a prestart/createRuntime hook".into())
    })?;
    let rootfs = rootfs_path(spec, &state.bundle, spec_path)?;
    Ok(Container { pid, rootfs })
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
