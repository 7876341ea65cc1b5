//! AMD and Intel GPUs: the same pipeline as NVIDIA's (request -> inventory -> plan -> apply),
//! with no vendor library at all. What the host has is read from sysfs only (the PCI devices'
//! `vendor`, `class`, `driver` and `drm/` entries, and AMD's KFD topology), so tests point
//! `driver.sysfs-root` and `driver.dev-root` at a simulated tree. A container gets device
//! nodes and device cgroup rules, never libraries: ROCm's and Intel's user space live in the
//! image.
//!
//! Each vendor has its own request variable and numbering, so one vendor's request can never
//! select another's GPU (`NVIDIA_VISIBLE_DEVICES=all` is read by the NVIDIA path, which only
//! sees the GPUs NVIDIA's driver lists).

pub mod dmem;
mod inventory;
pub mod kfd;
pub mod plan;
pub mod request;
#[cfg(test)]
pub(crate) mod test_tree;

use crate::limits::quoted;
pub use inventory::{read, VendorGpu, VendorInventory};
pub use plan::{plan, VendorPlan};
pub use request::{parse_visible, read_requests, VendorRequest, VendorSelector, VisibleGpus};

/// A GPU vendor served without its own toolkit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Vendor {
    Amd,
    Intel,
}

impl Vendor {
    pub const ALL: [Vendor; 2] = [Vendor::Amd, Vendor::Intel];

    /// The PCI vendor id sysfs shows (`/sys/bus/pci/devices/*/vendor`).
    pub fn pci_vendor(self) -> &'static str {
        match self {
            Vendor::Amd => "0x1002",
            Vendor::Intel => "0x8086",
        }
    }

    /// The kernel drivers whose GPUs are given: `amdgpu`; `i915` and `xe`.
    pub fn drivers(self) -> &'static [&'static str] {
        match self {
            Vendor::Amd => &["amdgpu"],
            Vendor::Intel => &["i915", "xe"],
        }
    }

    /// The request variable (see `request`).
    pub fn visible_devices_env(self) -> &'static str {
        match self {
            Vendor::Amd => request::AMD_VISIBLE_DEVICES_ENV,
            Vendor::Intel => request::INTEL_VISIBLE_DEVICES_ENV,
        }
    }

    /// The memory cap variable (see `crate::memcap::dmem`).
    pub fn memory_limit_env(self) -> &'static str {
        match self {
            Vendor::Amd => "AMD_GPU_MEMORY_LIMIT",
            Vendor::Intel => "INTEL_GPU_MEMORY_LIMIT",
        }
    }

    /// The CDI kind of its devices, as the vendors' own tools name it.
    pub fn cdi_kind(self) -> &'static str {
        match self {
            Vendor::Amd => "amd.com/gpu",
            Vendor::Intel => "intel.com/gpu",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Amd => "amd",
            Vendor::Intel => "intel",
        }
    }

    pub fn from_name(name: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vendor::Amd => "AMD",
            Vendor::Intel => "Intel",
        })
    }
}

/// Values the tenant chose are quoted cut to 80 characters (`limits::quoted`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VendorError {
    #[error("{variable}={}: {} is not {accepted}", quoted(.value), quoted(.item))]
    Request {
        variable: &'static str,
        value: String,
        item: String,
        accepted: &'static str,
    },
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    #[error("{variable}={}: GPU {} requested, {available}", quoted(.value), .requested)]
    UnknownGpu {
        variable: &'static str,
        value: String,
        requested: String,
        available: String,
    },
    #[error("{variable}={}: {vendor} GPU {index} ({bus_id}) has no DRM card or render node under the dev root: is the {driver} driver loaded and are /dev/dri's nodes there?", quoted(.value))]
    NoNodes {
        variable: &'static str,
        value: String,
        vendor: Vendor,
        index: u32,
        bus_id: String,
        driver: String,
    },
    #[error("{variable}={}: the host has no /dev/kfd (ROCm's compute interface): is the amdgpu driver loaded with KFD?", quoted(.value))]
    NoKfd {
        variable: &'static str,
        value: String,
    },
}
