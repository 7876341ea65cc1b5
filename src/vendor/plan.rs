//! What an AMD or Intel request gives: each selected GPU's DRM card and render nodes, and for
//! AMD `/dev/kfd`, as device nodes with their cgroup rules. Pure.

use super::request::{VendorRequest, VendorSelector, VisibleGpus};
use super::{Vendor, VendorError, VendorGpu, VendorInventory};
use crate::inventory::DeviceNode;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorPlan {
    /// The GPUs given, in request order, for logs and memory caps.
    pub gpus: Vec<VendorGpu>,
    /// Their nodes (and `/dev/kfd`), each once.
    pub devices: Vec<DeviceNode>,
}

impl VendorPlan {
    /// `(index, "<vendor> <bus id>")` per GPU, as the hook's log names GPUs.
    pub fn summary(&self) -> Vec<(u32, String)> {
        self.gpus
            .iter()
            .map(|g| (g.index, format!("{} {}", g.vendor.name(), g.bus_id)))
            .collect()
    }
}

/// The plan for `requests` (at most one per vendor) on `inventory`.
pub fn plan(
    requests: &[VendorRequest],
    inventory: &VendorInventory,
) -> Result<VendorPlan, VendorError> {
    let mut plan = VendorPlan::default();
    for request in requests {
        let variable = request.vendor.visible_devices_env();
        let selected = select(request, inventory)?;
        if request.vendor == Vendor::Amd {
            let kfd = inventory.kfd.as_ref().ok_or_else(|| VendorError::NoKfd {
                variable,
                value: request.value.clone(),
            })?;
            push_node(&mut plan.devices, kfd);
        }
        for gpu in selected {
            if gpu.nodes.is_empty() {
                return Err(VendorError::NoNodes {
                    variable,
                    value: request.value.clone(),
                    vendor: gpu.vendor,
                    index: gpu.index,
                    bus_id: gpu.bus_id.clone(),
                    driver: gpu.driver.clone(),
                });
            }
            gpu.nodes
                .iter()
                .for_each(|n| push_node(&mut plan.devices, n));
            if !plan.gpus.contains(gpu) {
                plan.gpus.push(gpu.clone());
            }
        }
    }
    Ok(plan)
}

fn push_node(devices: &mut Vec<DeviceNode>, node: &DeviceNode) {
    if !devices.iter().any(|d| d.path == node.path) {
        devices.push(node.clone());
    }
}

/// The request's GPUs, each once, in the order asked.
fn select<'a>(
    request: &VendorRequest,
    inventory: &'a VendorInventory,
) -> Result<Vec<&'a VendorGpu>, VendorError> {
    let vendor = request.vendor;
    let gpus: Vec<&VendorGpu> = inventory.of(vendor).collect();
    let unknown = |requested: String| VendorError::UnknownGpu {
        variable: vendor.visible_devices_env(),
        value: request.value.clone(),
        requested,
        available: available(vendor, &gpus),
    };
    let selectors = match &request.devices {
        VisibleGpus::All if gpus.is_empty() => return Err(unknown("all".into())),
        VisibleGpus::All => return Ok(gpus),
        VisibleGpus::List(selectors) => selectors,
    };
    let mut selected: Vec<&VendorGpu> = Vec::new();
    for selector in selectors {
        let found: Vec<&VendorGpu> = match selector {
            VendorSelector::Index(i) => gpus.iter().copied().filter(|g| g.index == *i).collect(),
            VendorSelector::Range(first, last) => {
                if *last as usize >= gpus.len() {
                    return Err(unknown(selector.to_string()));
                }
                gpus.iter()
                    .copied()
                    .filter(|g| (*first..=*last).contains(&g.index))
                    .collect()
            }
            VendorSelector::UniqueId(id) => gpus
                .iter()
                .copied()
                .filter(|g| g.unique_id == Some(*id))
                .collect(),
            VendorSelector::BusId(bus) => {
                gpus.iter().copied().filter(|g| &g.bus_id == bus).collect()
            }
        };
        if found.is_empty() {
            return Err(unknown(selector.to_string()));
        }
        for gpu in found {
            if !selected.iter().any(|g| g.bus_id == gpu.bus_id) {
                selected.push(gpu);
            }
        }
    }
    Ok(selected)
}

/// What the host has of `vendor`'s GPUs, for errors.
fn available(vendor: Vendor, gpus: &[&VendorGpu]) -> String {
    if gpus.is_empty() {
        return format!(
            "but this host has no {vendor} GPU (a PCI display device bound to {})",
            vendor.drivers().join(" or ")
        );
    }
    let names: Vec<String> = gpus
        .iter()
        .map(|g| match (vendor, g.unique_id) {
            (Vendor::Amd, Some(id)) => format!("{} ({id:#x}, {})", g.index, g.bus_id),
            _ => format!("{} ({})", g.index, g.bus_id),
        })
        .collect();
    format!("this host has {vendor} GPUs {}", names.join(", "))
}

#[cfg(test)]
mod tests;
