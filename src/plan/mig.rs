//! MIG devices in a plan: which one a selector names, and the capability nodes and procfs
//! files that come with it. A container given MIG device `0:1` gets GPU 0's node (through the
//! selection) plus the capabilities of that device's GPU instance and compute instance, and
//! nothing that reaches the GPU's other MIG devices.

use std::path::PathBuf;

use crate::inventory::mig::{CapError, MigCap, MigDevice, MigInventory};
use crate::inventory::{DeviceNode, Gpu, Inventory};
use crate::request::{
    ContainerRequest, DeviceSelector, VisibleDevices, MIG_CONFIG_ENV, MIG_MONITOR_ENV,
};

use super::select::{self, Selection};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MigError {
    #[error("MIG device {requested} requested, {available}")]
    UnknownGpu {
        requested: String,
        available: String,
    },
    #[error("MIG device {requested} requested, but MIG is not enabled on GPU {gpu} ({uuid})")]
    Disabled {
        requested: String,
        gpu: u32,
        uuid: String,
    },
    #[error("MIG device {requested} requested, but GPU {gpu} ({uuid}) has no MIG devices: MIG is enabled, create them with `nvidia-smi mig -i {gpu} -cgi <profiles> -C`")]
    NoDevices {
        requested: String,
        gpu: u32,
        uuid: String,
    },
    #[error("MIG device {requested} requested, GPU {gpu} has MIG devices {available}")]
    UnknownIndex {
        requested: String,
        gpu: u32,
        available: String,
    },
    #[error("MIG device {requested} requested, {available}")]
    UnknownUuid {
        requested: String,
        available: String,
    },
    #[error("MIG device {requested} requested: it matches several MIG devices ({matches}); give more of the UUID")]
    AmbiguousUuid { requested: String, matches: String },
    #[error("MIG device {requested} requested, but {problem}")]
    Caps {
        requested: String,
        problem: CapError,
    },
    #[error("{variable}=all requested, but {problem}")]
    GlobalCap {
        variable: &'static str,
        problem: CapError,
    },
    /// A caller planned a MIG request without reading the MIG inventory (a bug, not a host
    /// problem; said plainly rather than as "no MIG devices").
    #[error("{requested} requested, but MIG devices were not enumerated for this plan")]
    NotEnumerated { requested: String },
}

/// The MIG inventory, or the error that says it was not read.
pub fn enumerated<'a>(
    inventory: Option<&'a MigInventory>,
    selector: &DeviceSelector,
) -> Result<&'a MigInventory, MigError> {
    inventory.ok_or_else(|| MigError::NotEnumerated {
        requested: format!("MIG device {selector}"),
    })
}

/// `GPU:MIG`: MIG device `mig_index` of GPU `gpu_index`.
pub fn by_index<'a>(
    gpu_index: u32,
    mig_index: u32,
    host: &'a Inventory,
    inventory: &'a MigInventory,
) -> Result<(&'a Gpu, &'a MigDevice), MigError> {
    let requested = format!("{gpu_index}:{mig_index}");
    let Some(gpu) = host.gpus.iter().find(|g| g.index == gpu_index) else {
        return Err(MigError::UnknownGpu {
            requested,
            available: select::available(host),
        });
    };
    let state = inventory.gpu(gpu_index).filter(|s| s.enabled);
    let Some(state) = state else {
        return Err(MigError::Disabled {
            requested,
            gpu: gpu_index,
            uuid: gpu.info.uuid.clone(),
        });
    };
    if state.devices.is_empty() {
        return Err(MigError::NoDevices {
            requested,
            gpu: gpu_index,
            uuid: gpu.info.uuid.clone(),
        });
    }
    state
        .devices
        .iter()
        .find(|d| d.index == mig_index)
        .map(|d| (gpu, d))
        .ok_or_else(|| MigError::UnknownIndex {
            requested,
            gpu: gpu_index,
            available: describe_indices(&state.devices),
        })
}

/// Exact UUIDs first; then, like GPU UUIDs, a prefix that matches exactly one MIG device.
pub fn by_uuid<'a>(
    uuid: &str,
    gpus: &'a [Gpu],
    inventory: &'a MigInventory,
) -> Result<(&'a Gpu, &'a MigDevice), MigError> {
    let all: Vec<(&Gpu, &MigDevice)> = inventory
        .gpus
        .iter()
        .filter_map(|state| {
            let gpu = gpus.iter().find(|g| g.index == state.gpu)?;
            Some(state.devices.iter().map(move |d| (gpu, d)))
        })
        .flatten()
        .collect();
    let wanted = uuid.to_ascii_lowercase();
    let lower = |d: &MigDevice| d.uuid.to_ascii_lowercase();
    if let Some(exact) = all.iter().find(|(_, d)| lower(d) == wanted) {
        return Ok(*exact);
    }
    let matches: Vec<&(&Gpu, &MigDevice)> = all
        .iter()
        .filter(|(_, d)| lower(d).starts_with(&wanted))
        .collect();
    match matches.as_slice() {
        [one] => Ok(**one),
        [] => Err(MigError::UnknownUuid {
            requested: uuid.to_string(),
            available: if all.is_empty() {
                "this host has no MIG devices (MIG is not enabled on any GPU, or no MIG device was created)".into()
            } else {
                let list: Vec<String> = all
                    .iter()
                    .map(|(g, d)| format!("{}:{} ({})", g.index, d.index, d.uuid))
                    .collect();
                format!("this host has MIG devices {}", list.join(", "))
            },
        }),
        several => Err(MigError::AmbiguousUuid {
            requested: uuid.to_string(),
            matches: several
                .iter()
                .map(|(_, d)| d.uuid.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// `0-1 (MIG-..., MIG-...)` for contiguous indices, else `0, 2 (MIG-..., MIG-...)`.
fn describe_indices(devices: &[MigDevice]) -> String {
    let indices: Vec<u32> = devices.iter().map(|d| d.index).collect();
    let uuids: Vec<&str> = devices.iter().map(|d| d.uuid.as_str()).collect();
    let contiguous = indices.windows(2).all(|w| w[1] == w[0] + 1);
    let range = match (indices.first(), indices.last()) {
        (Some(first), Some(last)) if first == last => first.to_string(),
        (Some(first), Some(last)) if contiguous => format!("{first}-{last}"),
        _ => indices
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{range} ({})", uuids.join(", "))
}

/// What MIG adds to a plan beyond the parent GPUs' nodes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigPlan {
    /// `/dev/nvidia-caps/nvidia-cap<N>` nodes, each once.
    pub nodes: Vec<DeviceNode>,
    /// `(path relative to /proc/driver/nvidia, text)` of their capability files.
    pub proc_files: Vec<(PathBuf, String)>,
}

impl MigPlan {
    fn add(&mut self, cap: &MigCap) {
        if !self.nodes.iter().any(|n| n.path == cap.node.path) {
            self.nodes.push(cap.node.clone());
        }
        if !self.proc_files.iter().any(|(p, _)| *p == cap.proc_file) {
            self.proc_files
                .push((cap.proc_file.clone(), cap.text.clone()));
        }
    }
}

/// The capabilities of the selected MIG devices, and the host-wide config/monitor ones the
/// request asks for (the request stage has already refused those to unprivileged containers).
pub fn mig_plan(
    request: &ContainerRequest,
    selection: &Selection,
    inventory: Option<&MigInventory>,
) -> Result<MigPlan, MigError> {
    let mut plan = MigPlan::default();
    for (gpu, device) in &selection.mig {
        let caps = device.caps.as_ref().map_err(|problem| MigError::Caps {
            requested: format!("{}:{} ({})", gpu.index, device.index, device.uuid),
            problem: problem.clone(),
        })?;
        caps.iter().for_each(|cap| plan.add(cap));
    }
    // `none` gets no device node at all; a capability without nvidiactl reaches nothing.
    if request.devices == VisibleDevices::NoGpu {
        return Ok(plan);
    }
    type Pick = fn(&MigInventory) -> &Result<MigCap, CapError>;
    let global: [(bool, &'static str, Pick); 2] = [
        (request.mig_access.config, MIG_CONFIG_ENV, |i| &i.config),
        (request.mig_access.monitor, MIG_MONITOR_ENV, |i| &i.monitor),
    ];
    for (wanted, variable, pick) in global {
        if !wanted {
            continue;
        }
        let inventory = inventory.ok_or_else(|| MigError::NotEnumerated {
            requested: format!("{variable}=all"),
        })?;
        let cap = pick(inventory)
            .as_ref()
            .map_err(|problem| MigError::GlobalCap {
                variable,
                problem: problem.clone(),
            })?;
        plan.add(cap);
    }
    Ok(plan)
}

#[cfg(test)]
pub(crate) mod tests;
