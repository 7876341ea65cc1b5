//! AMD and Intel GPUs as sysfs shows them: PCI display controllers (`class` 0x03....) of the
//! vendor's id bound to one of its DRM drivers, each with the DRM nodes its `drm/` directory
//! lists; for AMD also `/dev/kfd` and each GPU's KFD topology node (by render minor).
//!
//! Sysfs here is the host's (or a simulated tree named by `driver.sysfs-root`), never the
//! container's. Even so only names of a fixed shape are used to build paths: a bus id
//! `dddd:bb:dd.f`, the DRM node names `card<N>`/`renderD<N>`; the `driver` link is read, not
//! followed, and only its last component compared.

use std::path::Path;

use super::{kfd, Vendor};
use crate::inventory::drm::{device_node, drm_nodes};
use crate::inventory::DeviceNode;

/// A GPU of one vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorGpu {
    pub vendor: Vendor,
    /// Position in PCI bus order among this vendor's GPUs: what its request variable's
    /// indices and its CDI device names (`amd.com/gpu=0`) mean.
    pub index: u32,
    /// PCI address, `0000:c1:00.0`.
    pub bus_id: String,
    /// The kernel driver bound to it (`amdgpu`, `i915`, `xe`).
    pub driver: String,
    /// Its `/dev/dri/card<N>` and `/dev/dri/renderD<N>`, those present.
    pub nodes: Vec<DeviceNode>,
    /// AMD: its unique id from the KFD topology, when it reports one.
    pub unique_id: Option<u64>,
    /// AMD: its KFD topology node.
    pub kfd_node: Option<u32>,
}

impl VendorGpu {
    /// The render node's minor, which KFD and the dmem controller's regions go by.
    pub fn render_minor(&self) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.path.to_str().is_some_and(|p| p.contains("renderD")))
            .map(|n| n.minor)
    }
}

/// What the host has of AMD and Intel GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorInventory {
    /// AMD's GPUs first, then Intel's, each in its index order.
    pub gpus: Vec<VendorGpu>,
    /// `/dev/kfd`, ROCm's compute interface shared by all AMD GPUs, when present.
    pub kfd: Option<DeviceNode>,
}

impl VendorInventory {
    pub fn of(&self, vendor: Vendor) -> impl Iterator<Item = &VendorGpu> {
        self.gpus.iter().filter(move |g| g.vendor == vendor)
    }
}

/// Reads the AMD and Intel GPUs under `sysfs_root` and their nodes under `dev_root`.
pub fn read(sysfs_root: &Path, dev_root: &Path) -> VendorInventory {
    let devices = pci_devices(sysfs_root);
    let kfd_nodes = kfd::read_gpu_nodes(sysfs_root);
    let mut gpus = Vec::new();
    for vendor in Vendor::ALL {
        let ours = devices
            .iter()
            .filter(|d| d.vendor == vendor.pci_vendor() && d.is_display)
            .filter(|d| vendor.drivers().contains(&d.driver.as_str()));
        for (index, device) in (0u32..).zip(ours) {
            let mut gpu = VendorGpu {
                vendor,
                index,
                bus_id: device.bus_id.clone(),
                driver: device.driver.clone(),
                nodes: drm_nodes(sysfs_root, dev_root, &device.bus_id),
                unique_id: None,
                kfd_node: None,
            };
            if vendor == Vendor::Amd {
                let minor = gpu.render_minor();
                if let Some(node) = kfd_nodes.iter().find(|n| Some(n.render_minor) == minor) {
                    gpu.unique_id = node.unique_id;
                    gpu.kfd_node = Some(node.node);
                }
            }
            gpus.push(gpu);
        }
    }
    VendorInventory {
        gpus,
        kfd: device_node(dev_root, "kfd"),
    }
}

struct PciDevice {
    bus_id: String,
    vendor: String,
    is_display: bool,
    driver: String,
}

/// Every PCI device of the sysfs tree with a bound driver, in bus order.
fn pci_devices(sysfs_root: &Path) -> Vec<PciDevice> {
    let dir = sysfs_root.join("bus/pci/devices");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut bus_ids: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_bus_id(n))
        .collect();
    // Fixed-width lower-case hex: name order is bus order.
    bus_ids.sort();
    bus_ids
        .into_iter()
        .filter_map(|bus_id| {
            let device = dir.join(&bus_id);
            let attribute = |name: &str| {
                let bytes = crate::limits::read_file_bounded(&device.join(name), 4096).ok()?;
                Some(String::from_utf8_lossy(&bytes).trim().to_ascii_lowercase())
            };
            let driver = std::fs::read_link(device.join("driver")).ok()?;
            let driver = driver.file_name()?.to_str()?.to_string();
            Some(PciDevice {
                vendor: attribute("vendor")?,
                is_display: attribute("class").is_some_and(|c| c.starts_with("0x03")),
                driver,
                bus_id,
            })
        })
        .collect()
}

/// `dddd:bb:dd.f` in lower-case hex, as the kernel names PCI devices.
pub fn is_bus_id(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() == 12
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b':',
            10 => *b == b'.',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
}

#[cfg(test)]
mod tests;
