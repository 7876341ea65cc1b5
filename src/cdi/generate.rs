//! `gpuhook cdi generate`: the legacy hook's plan for "every GPU, these capabilities", written
//! as a CDI spec. The same planner decides the files, so a CDI container and a hook container
//! get the same ones:
//! - each GPU is a device (by index, UUID or both) whose edit is its device node; `all` has
//!   every GPU node;
//! - each MIG device (when the inventory enumerated them) is a device named `<gpu>:<mig>`
//!   and/or `MIG-<uuid>`, with its parent GPU's node and its two capability nodes;
//! - the shared edits carry the control nodes, the library, utility, firmware and IPC mounts
//!   (with the hook's mount flags), and two `createRuntime` hooks that are gpuhook itself:
//!   `cdi-hook mask-proc-driver` (only the container's GPUs under `/proc/driver/nvidia/gpus`)
//!   and `cdi-hook update-ldcache` (the container's ld cache, by the host's static ldconfig).
//!   Both run on the host side with the container's state on stdin, under the same rules as
//!   the hook: confined to the rootfs, nothing from the image executed, clean environment.

use std::path::PathBuf;

use crate::inventory::Inventory;
use crate::plan::{self, ContainerLayout, MountKind, PlanError};
use crate::request::{ContainerRequest, DeviceSelector, DriverCapabilities, VisibleDevices};

use super::spec::{ContainerEdits, Device, DeviceNode, Hook, Mount, Spec, CDI_VERSION};

/// How devices are named in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceNameStrategy {
    /// `0`, `1`, ...
    Index,
    /// `GPU-<uuid>`
    Uuid,
    /// both, as two devices each
    Both,
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// `vendor.com/class`, e.g. `nvidia.com/gpu`.
    pub kind: String,
    pub naming: DeviceNameStrategy,
    pub capabilities: DriverCapabilities,
    /// The gpuhook binary the spec's hooks run.
    pub hook_path: PathBuf,
    /// Environment for those hooks (e.g. `GPUHOOK_CONFIG=...`), never the container's.
    pub hook_env: Vec<String>,
}

/// Where a CDI container gets its libraries: the multiarch directory, which the
/// `update-ldcache` hook indexes whatever the image's own layout.
fn cdi_layout() -> ContainerLayout {
    ContainerLayout::for_rootfs(true)
}

/// A generated spec and what was left out of it (for warnings): MIG devices that cannot be
/// given, each with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub spec: Spec,
    pub left_out: Vec<String>,
}

/// The request the hook would see for `devices` with these capabilities and nothing else.
fn request_for(devices: VisibleDevices, options: &GenerateOptions) -> ContainerRequest {
    ContainerRequest {
        devices,
        capabilities: options.capabilities.clone(),
        requirements: Vec::new(),
        imex_channels: Default::default(),
        mps_pipe_directory: None,
        mig_access: Default::default(),
        declared_devices: Vec::new(),
    }
}

/// A host device node as a CDI device node (`hostPath`, type, major, minor: engines need not
/// stat the host to create it).
pub(super) fn cdi_node(d: &crate::inventory::DeviceNode) -> DeviceNode {
    DeviceNode {
        path: d.path.clone(),
        host_path: Some(d.host_path.clone()),
        kind: Some("c".into()),
        major: Some(d.major.into()),
        minor: Some(d.minor.into()),
        permissions: Some("rw".into()),
    }
}

/// The names a device gets under the naming strategy.
fn names(naming: DeviceNameStrategy, index: String, uuid: &str) -> Vec<String> {
    match naming {
        DeviceNameStrategy::Index => vec![index],
        DeviceNameStrategy::Uuid => vec![uuid.to_string()],
        DeviceNameStrategy::Both => vec![index, uuid.to_string()],
    }
}

fn device(name: String, device_nodes: Vec<DeviceNode>) -> Device {
    Device {
        name,
        container_edits: ContainerEdits {
            device_nodes,
            ..Default::default()
        },
    }
}

/// Builds the spec for every GPU in `inventory`, and for each of its MIG devices when the
/// inventory holds them (`inventory.mig`). A GPU whose node is missing is left out (the
/// planner's reason in [`Generated::left_out`]).
pub fn generate(inventory: &Inventory, options: &GenerateOptions) -> Result<Generated, PlanError> {
    let plan = plan::plan(
        &request_for(VisibleDevices::All, options),
        inventory,
        &cdi_layout(),
    )?;

    let mut devices = Vec::new();
    let mut left_out = Vec::new();
    // Each GPU's nodes as the planner gives a container asking for just that GPU: its
    // `/dev/nvidiaN` and, with graphics or display, its DRM card and render nodes.
    let mut all_nodes: Vec<DeviceNode> = Vec::new();
    for gpu in &inventory.gpus {
        let selector = DeviceSelector::Index(gpu.index);
        match planned_nodes(inventory, options, selector) {
            Ok(nodes) => {
                for name in names(options.naming, gpu.index.to_string(), &gpu.info.uuid) {
                    devices.push(device(name, nodes.clone()));
                }
                all_nodes.extend(nodes);
            }
            Err(e) => left_out.push(format!("GPU {} ({}): {e}", gpu.index, gpu.info.uuid)),
        }
    }
    mig_devices(inventory, options, &mut devices, &mut left_out);
    // `all` is every whole GPU, as `NVIDIA_VISIBLE_DEVICES=all` is for the hook: no MIG
    // capability comes with it.
    devices.push(device("all".into(), all_nodes));
    let spec = Spec {
        cdi_version: CDI_VERSION.into(),
        kind: options.kind.clone(),
        devices,
        container_edits: shared_edits(inventory, &plan, options),
    };
    Ok(Generated { spec, left_out })
}

/// The device nodes the planner gives a container asking for `selector` alone, less the
/// control nodes (the shared edits carry them).
fn planned_nodes(
    inventory: &Inventory,
    options: &GenerateOptions,
    selector: DeviceSelector,
) -> Result<Vec<DeviceNode>, PlanError> {
    let request = request_for(VisibleDevices::List(vec![selector]), options);
    let plan = plan::plan(&request, inventory, &cdi_layout())?;
    Ok(plan
        .devices
        .iter()
        .filter(|d| !inventory.control_devices.contains(d))
        .map(cdi_node)
        .collect())
}

/// One device per MIG device, named `<gpu>:<mig>` and/or by its `MIG-...` UUID, whose nodes
/// are those the planner gives a container asking for just that MIG device: the parent GPU's
/// node and the capability nodes of its GPU and compute instances. A GPU or MIG device the
/// planner refuses (a node missing on the host) is left out, with the planner's reason,
/// rather than failing the whole spec.
fn mig_devices(
    inventory: &Inventory,
    options: &GenerateOptions,
    devices: &mut Vec<Device>,
    left_out: &mut Vec<String>,
) {
    let Some(mig) = &inventory.mig else {
        return;
    };
    for state in mig.gpus.iter().filter(|s| s.enabled) {
        for mig_device in &state.devices {
            let selector = DeviceSelector::MigIndex {
                gpu: state.gpu,
                mig: mig_device.index,
            };
            let name = selector.to_string();
            match planned_nodes(inventory, options, selector) {
                Ok(nodes) => {
                    for name in names(options.naming, name, &mig_device.uuid) {
                        devices.push(device(name, nodes.clone()));
                    }
                }
                Err(e) => left_out.push(format!("MIG device {name} ({}): {e}", mig_device.uuid)),
            }
        }
    }
}

/// What every device of the spec shares: the control nodes, the files, gpuhook's hooks.
fn shared_edits(
    inventory: &Inventory,
    plan: &plan::InjectionPlan,
    options: &GenerateOptions,
) -> ContainerEdits {
    let mounts = plan
        .mounts
        .iter()
        .filter(|m| m.kind != MountKind::Device)
        .map(|m| Mount {
            host_path: m.host_path.clone(),
            container_path: m.container_path.clone(),
            options: m.flags.options(),
        })
        .collect();
    let hook = |args: Vec<String>| Hook {
        hook_name: "createRuntime".into(),
        path: options.hook_path.clone(),
        args,
        env: options.hook_env.clone(),
    };
    let mut hooks = vec![hook(
        ["gpuhook", "cdi-hook", "mask-proc-driver"]
            .map(String::from)
            .to_vec(),
    )];
    if !plan.ldcache_dirs.is_empty() {
        let mut args: Vec<String> = ["gpuhook", "cdi-hook", "update-ldcache"]
            .map(String::from)
            .to_vec();
        for dir in &plan.ldcache_dirs {
            args.push("--folder".into());
            args.push(dir.to_string_lossy().into_owned());
        }
        hooks.push(hook(args));
    }
    ContainerEdits {
        // A container given GPUs through this spec gets exactly those: a legacy hook (the
        // packaged hooks.d entry, `--gpus`) then sees no request, whatever the image's env
        // says (CUDA images set NVIDIA_VISIBLE_DEVICES=all).
        env: vec![VOID_ENV.into()],
        // The control nodes the plan gives for these capabilities (the GPUs' own are per
        // device above).
        device_nodes: plan
            .devices
            .iter()
            .filter(|d| inventory.control_devices.contains(d))
            .map(cdi_node)
            .collect(),
        mounts,
        hooks,
    }
}

const VOID_ENV: &str = "NVIDIA_VISIBLE_DEVICES=void";

/// The kind of the IMEX channel spec, the incumbent's (`nvidia-ctk cdi generate --mode imex`).
pub const IMEX_CHANNEL_KIND: &str = "nvidia.com/imex-channel";

/// The spec of the host's IMEX channels (`<kind>=0`, `<kind>=1`, ..., `<kind>=all`), each
/// device its `/dev/nvidia-caps-imex-channels/channelN` node; `None` when the host has none
/// (the nvidia-imex daemon's driver makes them). A spec of its own, as the incumbent's: a CDI
/// spec has one kind.
pub fn generate_imex_channels(inventory: &Inventory, kind: &str) -> Option<Spec> {
    if inventory.imex_channels.is_empty() {
        return None;
    }
    let mut devices: Vec<Device> = inventory
        .imex_channels
        .iter()
        .map(|(number, node)| device(number.to_string(), vec![cdi_node(node)]))
        .collect();
    devices.push(device(
        "all".into(),
        inventory
            .imex_channels
            .iter()
            .map(|(_, n)| cdi_node(n))
            .collect(),
    ));
    Some(Spec {
        cdi_version: CDI_VERSION.into(),
        kind: kind.to_string(),
        devices,
        // As the incumbent's IMEX spec: a container given channels through CDI is not also
        // handed GPUs by a legacy hook reading the image's env.
        container_edits: ContainerEdits {
            env: vec![VOID_ENV.into()],
            ..Default::default()
        },
    })
}

#[cfg(test)]
mod tests;
