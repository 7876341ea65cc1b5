//! `gpuhook-runtime`: a runc-compatible shim. For `create`/`run` of a container that asks for
//! GPUs it adds the gpuhook prestart hook and the GPUs' device nodes and allow-rules to the
//! spec (so runc and systemd know them and re-applying the spec keeps them), then it execs
//! the real low-level runtime with its arguments unchanged. Everything else passes straight
//! through.

pub mod args;
pub mod cdi_edit;
pub mod runc_log;
pub mod spec_edit;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::Deserialize;
use serde_json::Value;

use crate::cdi::{CdiError, Registry};
use crate::config::{Config, RuntimeMode, CONFIG_ENV};
use crate::inventory::{Inventory, InventoryError, InventoryNeeds};
use crate::limits;
use crate::memcap::{self, CapError};
use crate::plan::{self, ContainerLayout, PlanError};
use crate::request::cdi::CdiRequestPolicy;
use crate::request::{self, ContainerFacts, RequestError, RequestPolicy};
use crate::vendor;
pub use args::RuncInvocation;
pub use cdi_edit::CdiSummary;
pub use spec_edit::{EditSummary, GpuEdits};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no low-level runtime found (looked for {looked_for} in PATH): install runc or set runtime.runtimes in the config")]
    NoRuntime { looked_for: String },
    #[error("cannot {what} {path}: {message}")]
    Spec {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Cdi(#[from] CdiError),
    #[error(transparent)]
    Caps(#[from] CapError),
    #[error(transparent)]
    Vendor(#[from] crate::vendor::VendorError),
    #[error("GPU memory caps and compute shares apply to GPUs gpuhook's hook gives; CDI devices ({devices}) are not capped: request the GPUs by NVIDIA_VISIBLE_DEVICES=<index or UUID> (runtime.mode = \"auto\" or \"legacy\"), or take the caps out of [memory] in the config")]
    CdiCapped { devices: String },
}

/// What the shim did to a bundle.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Not a container-creating command, or a container that asks for no GPU.
    Untouched,
    /// GPUs `(index, uuid)` given, and what changed in the spec.
    Gpus {
        gpus: Vec<(u32, String)>,
        summary: EditSummary,
    },
    /// CDI devices resolved and their edits applied.
    Cdi {
        devices: Vec<String>,
        summary: CdiSummary,
    },
}

/// Edits the bundle's spec for a GPU container (see the module docs). `runtime_name` is the
/// name the shim was executed under: `memory.runtimes` may impose caps for it.
pub fn prepare(
    config: &Config,
    invocation: &RuncInvocation,
    runtime_name: &str,
) -> Result<Prepared, RuntimeError> {
    if !invocation.creates_container() {
        return Ok(Prepared::Untouched);
    }
    let bundle = invocation.bundle_dir().map_err(|e| RuntimeError::Spec {
        what: "find the bundle",
        path: PathBuf::from("."),
        message: e.to_string(),
    })?;
    let spec_path = bundle.join("config.json");
    let text = limits::read_file_bounded(&spec_path, limits::MAX_SPEC_BYTES).map_err(|e| {
        RuntimeError::Spec {
            what: "read",
            path: spec_path.clone(),
            message: e.to_string(),
        }
    })?;
    let mut tree: Value = serde_json::from_slice(&text).map_err(|e| RuntimeError::Spec {
        what: "parse",
        path: spec_path.clone(),
        message: e.to_string(),
    })?;
    let spec: Spec = Spec::deserialize(&tree).map_err(|e| RuntimeError::Spec {
        what: "parse",
        path: spec_path.clone(),
        message: e.to_string(),
    })?;
    let facts = ContainerFacts::from_spec(&spec);
    let policy = RequestPolicy::from(config);
    let memory =
        request::memory::read(&facts, config.memory.accept_unprivileged).map_err(CapError::from)?;
    let (imposed_env, imposed) = memcap::imposed_for_runtime(&config.memory, runtime_name);
    let cap_policy = memcap::policy(&config.memory, imposed);
    let mode = config.runtime.mode;
    if mode != RuntimeMode::Legacy {
        let cdi_policy = CdiRequestPolicy {
            default_kind: (mode == RuntimeMode::Cdi).then_some(config.cdi.default_kind.as_str()),
            annotation_prefixes: &config.cdi.annotation_prefixes,
        };
        let names = request::cdi::cdi_devices(&facts, &policy, &cdi_policy)?;
        if !names.is_empty() {
            refuse_caps_on_cdi(&memory, &cap_policy, &names)?;
            let edits = Registry::load(&config.cdi.spec_dirs).resolve(&names)?;
            let summary =
                cdi_edit::apply(&mut tree, &edits).map_err(|message| RuntimeError::Spec {
                    what: "edit",
                    path: spec_path.clone(),
                    message,
                })?;
            write_spec(&spec_path, &text, &tree)?;
            return Ok(Prepared::Cdi {
                devices: names,
                summary,
            });
        }
        if mode == RuntimeMode::Cdi {
            return Ok(Prepared::Untouched);
        }
    }
    let Some(HookDevices {
        devices,
        gpus,
        capped,
    }) = hook_devices(config, &facts, &policy, &memory, &cap_policy)?
    else {
        return Ok(Prepared::Untouched);
    };
    let edits = GpuEdits {
        hook_path: hook_path(config).to_string_lossy().into_owned(),
        hook_env: std::env::var(CONFIG_ENV)
            .map(|c| vec![format!("{CONFIG_ENV}={c}")])
            .unwrap_or_default(),
        imposed_env,
        poststop: capped,
        devices,
    };
    let summary = spec_edit::apply(&mut tree, &edits).map_err(|message| RuntimeError::Spec {
        what: "edit",
        path: spec_path.clone(),
        message,
    })?;
    if summary.changed() {
        write_spec(&spec_path, &text, &tree)?;
    }
    Ok(Prepared::Gpus { gpus, summary })
}

/// The device nodes the hook will give (NVIDIA's, AMD's, Intel's), the GPUs, and whether
/// the container is capped.
struct HookDevices {
    devices: Vec<crate::inventory::DeviceNode>,
    gpus: Vec<(u32, String)>,
    capped: bool,
}

/// What the hook will give a legacy-mode container; `None` when it asks for no GPU.
fn hook_devices(
    config: &Config,
    facts: &ContainerFacts,
    policy: &RequestPolicy,
    memory: &request::memory::MemoryRequest,
    cap_policy: &memcap::Policy,
) -> Result<Option<HookDevices>, RuntimeError> {
    let nvidia = request::container_request(facts, policy)?;
    let vendors =
        vendor::read_requests(facts, policy.accept_env_when_unprivileged, &policy.limits)?;
    if nvidia.is_none() && vendors.is_empty() {
        return Ok(None);
    }
    let mut given = HookDevices {
        devices: Vec::new(),
        gpus: Vec::new(),
        capped: false,
    };
    if let Some(request) = nvidia {
        // The plan's device nodes are what the hook will mount: the same nodes go into the
        // spec, and nothing else of the driver is looked for. Requirements are left to the
        // hook (it loads libcuda/NVML only when they need checking); MIG devices need NVML
        // here too, for their capability nodes.
        let needs = InventoryNeeds {
            mig: request.needs_mig(),
            devices_only: true,
            ..InventoryNeeds::default()
        };
        let inventory = Inventory::read(&config.driver, needs)?;
        let mut device_request = request.clone();
        device_request.requirements.clear();
        let layout = ContainerLayout::for_rootfs(true);
        let plan = plan::plan(&device_request, &inventory, &layout)?;
        given.capped = memcap::caps_for(memory, cap_policy, &request, &plan.gpus)?.is_some();
        given.devices = plan.devices;
        given.gpus = plan.gpus;
    }
    if !vendors.is_empty() {
        let inventory = vendor::read(&config.driver.sysfs_root, &config.driver.dev_root);
        let plan = vendor::plan(&vendors, &inventory)?;
        given.gpus.extend(plan.summary());
        given.devices.extend(plan.devices);
    }
    Ok(Some(given))
}

/// CDI devices are not capped: a CDI request that a cap would apply to (the container's own,
/// or the operator's) is refused, since silently uncapped would be worse.
fn refuse_caps_on_cdi(
    memory: &request::memory::MemoryRequest,
    policy: &memcap::Policy,
    names: &[String],
) -> Result<(), RuntimeError> {
    let bounds = [policy.default, policy.max, policy.imposed];
    let capped = !memory.is_empty()
        || bounds
            .iter()
            .any(|l| l.memory_bytes.is_some() || l.compute_percent.is_some());
    match capped {
        true => Err(RuntimeError::CdiCapped {
            devices: names.join(", "),
        }),
        false => Ok(()),
    }
}

/// Writes the edited spec back in the original's style (pretty or compact).
fn write_spec(spec_path: &Path, original: &[u8], tree: &Value) -> Result<(), RuntimeError> {
    let pretty = original.starts_with(b"{\n") || original.starts_with(b"{\r\n");
    write_atomically(spec_path, tree, pretty).map_err(|e| RuntimeError::Spec {
        what: "write",
        path: spec_path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The gpuhook binary the spec's hook runs.
pub fn hook_path(config: &Config) -> PathBuf {
    if !config.runtime.hook_path.as_os_str().is_empty() {
        return config.runtime.hook_path.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("gpuhook")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/gpuhook"))
}

/// Writes next to the file, then renames over it: runc never sees half a spec.
fn write_atomically(path: &Path, tree: &Value, pretty: bool) -> std::io::Result<()> {
    let bytes = if pretty {
        serde_json::to_vec_pretty(tree)?
    } else {
        serde_json::to_vec(tree)?
    };
    crate::fsutil::replace_transient(path, &bytes, crate::fsutil::Mode::KeepOr(0o644))
}

/// The low-level runtime to exec: the first of `runtimes` that exists.
pub fn find_runtime(config: &Config) -> Result<PathBuf, RuntimeError> {
    let own = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    config
        .runtime
        .runtimes
        .iter()
        .flat_map(|name| executables_named(name))
        // Never exec ourselves (a runc symlinked to the shim would loop forever).
        .find(|candidate| candidate.canonicalize().ok() != own)
        .ok_or_else(|| RuntimeError::NoRuntime {
            looked_for: config.runtime.runtimes.join(", "),
        })
}

/// The executable files `name` stands for, in search order: itself when it is a path, else
/// every `PATH` directory's entry of that name (a default `PATH` when none is set).
pub fn executables_named(name: &str) -> Vec<PathBuf> {
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        let path_var = std::env::var_os("PATH").unwrap_or_else(|| {
            OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        });
        std::env::split_paths(&path_var)
            .map(|dir| dir.join(name))
            .collect()
    };
    candidates
        .into_iter()
        .filter(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect()
}
