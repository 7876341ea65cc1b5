//! The device nodes of a plan: the selected GPUs' (and, with graphics or display, their DRM
//! nodes), the control nodes their capabilities bring, the IMEX channels asked for.

use std::path::PathBuf;

use crate::catalog;
use crate::inventory::{DeviceNode, Gpu, Inventory};
use crate::request::imex::ImexChannels;
use crate::request::{ContainerRequest, DriverCapability, VisibleDevices};

use super::PlanError;

/// The selected GPUs' nodes, the control nodes (not for `none`), IMEX channels, MIG caps.
pub(super) fn device_nodes<'a>(
    request: &ContainerRequest,
    inventory: &'a Inventory,
    gpus: &[&'a Gpu],
    mig_nodes: &'a [DeviceNode],
) -> Result<Vec<&'a DeviceNode>, PlanError> {
    let mut devices: Vec<&DeviceNode> = Vec::new();
    for gpu in gpus {
        let node = gpu
            .device
            .as_ref()
            .ok_or_else(|| PlanError::MissingDeviceNode {
                index: gpu.index,
                uuid: gpu.info.uuid.clone(),
                path: PathBuf::from(format!("/dev/nvidia{}", gpu.info.minor)),
            })?;
        devices.push(node);
    }
    // `none` gets the driver's files but no device at all: without nvidiactl no GPU opens,
    // and no IMEX channel node either. The others come with their capability (see
    // `catalog::control_device_capability`).
    if request.devices != VisibleDevices::NoGpu {
        devices.extend(inventory.control_devices.iter().filter(|d| {
            let name = d.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            catalog::control_device_capability(name)
                .map_or(true, |c| request.capabilities.contains(&c))
        }));
        devices.extend(imex_channels(request, inventory)?);
    }
    devices.extend(mig_nodes.iter());
    Ok(devices)
}

/// The DRM card and render nodes of the whole GPUs selected, with `graphics` or `display` (as
/// the incumbent's graphics modifier gives them; the X server and Vulkan/EGL open them). A
/// MIG device gets none: a DRM node reaches its whole parent GPU.
pub(super) fn dri_nodes<'a>(
    request: &ContainerRequest,
    whole_gpus: &[&'a Gpu],
) -> Vec<&'a DeviceNode> {
    let wanted = [DriverCapability::Graphics, DriverCapability::Display]
        .iter()
        .any(|c| request.capabilities.contains(c));
    match wanted {
        true => whole_gpus.iter().flat_map(|g| g.dri.iter()).collect(),
        false => Vec::new(),
    }
}

/// The IMEX channel nodes asked for; an unknown channel is an error.
fn imex_channels<'a>(
    request: &ContainerRequest,
    inventory: &'a Inventory,
) -> Result<Vec<&'a DeviceNode>, PlanError> {
    match &request.imex_channels {
        ImexChannels::None => Ok(Vec::new()),
        ImexChannels::All => Ok(inventory.imex_channels.iter().map(|(_, n)| n).collect()),
        ImexChannels::List(wanted) => wanted
            .iter()
            .map(|channel| {
                inventory
                    .imex_channels
                    .iter()
                    .find(|(n, _)| n == channel)
                    .map(|(_, node)| node)
                    .ok_or_else(|| PlanError::UnknownImexChannel {
                        requested: *channel,
                        available: if inventory.imex_channels.is_empty() {
                            "this host has no IMEX channel devices (is nvidia-imex running?)".into()
                        } else {
                            let numbers: Vec<String> = inventory
                                .imex_channels
                                .iter()
                                .map(|(n, _)| n.to_string())
                                .collect();
                            format!("this host has IMEX channels {}", numbers.join(", "))
                        },
                    })
            })
            .collect(),
    }
}
