//! The inventory stage: what the host's driver offers. Everything is read through the paths
//! in [`DriverConfig`], so tests point it at a simulated driver tree. The hot path reads only
//! procfs files, the ld cache and a few `stat`s; libcuda and NVML are loaded only when a
//! request's requirements need what only they know, or (NVML) when it names MIG devices.

pub mod container_layout;
pub mod cuda_compat;
pub mod drm;
mod files;
mod gpus;
pub mod ldcache;
mod libraries;
pub mod mig;
mod native;
pub mod proc_driver;
mod root_paths;
mod support;

use std::path::{Path, PathBuf};

use crate::catalog;
use crate::config::DriverConfig;
use crate::request::{CapabilitySet, ContainerRequest, DriverCapability, RequirementKey};
use drm::device_node;
use files::DriverFiles;
pub use gpus::{Gpu, UnusableGpu};
pub use mig::MigInventory;
pub use proc_driver::GpuInformation;
pub use root_paths::{open_root_dir, resolve_in_root};

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(
        "no NVIDIA driver found under {root}: is the kernel module loaded? ({path}: {source})"
    )]
    NoDriver {
        root: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the driver version from {path}: no `NVRM version: ... <version>` line")]
    BadVersion { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the driver's ld cache {path}: {message}; set driver.root (and driver.ldcache) to where the driver is installed")]
    LdCache { path: PathBuf, message: String },
    #[error("no NVIDIA driver libraries of version {version} in {cache}: the driver's user-space libraries are missing or do not match the kernel module; set driver.root to where they are installed")]
    NoLibraries { version: String, cache: PathBuf },
    #[error("cannot get the CUDA version from {path}: {message}")]
    Cuda { path: PathBuf, message: String },
    #[error("NVML ({path}): {message}")]
    Nvml { path: PathBuf, message: String },
}

/// What to gather beyond the always-read basics.
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryNeeds {
    /// Load libcuda for `cuDriverGetVersion` (for `cuda` requirements).
    pub cuda_version: bool,
    /// Initialise NVML for each GPU's architecture and brand (for `arch`/`brand` requirements).
    pub gpu_details: bool,
    /// Initialise NVML for the MIG devices, and read the MIG capabilities (for MIG requests).
    pub mig: bool,
    /// Only what names the device nodes (the runtime shim's need): no libraries (unless `mig`
    /// needs NVML), utilities, firmware, sockets or graphics files are looked for.
    pub devices_only: bool,
    /// Only the files of these capabilities (the hook's request); `None`: every capability's
    /// (the admin commands and CDI generation list everything). The libraries NVML and
    /// libcuda are loaded from come whatever this says, when `gpu_details`, `mig` or
    /// `cuda_version` need them.
    pub capabilities: Option<CapabilitySet>,
    /// The MPS control binary and libcuda (the directory it runs with) whatever
    /// `capabilities` says: a memory cap may start an MPS daemon for the container.
    pub mps_daemon: bool,
}

impl InventoryNeeds {
    /// What the hook needs for `request`: the files of its capabilities (and of a memory
    /// cap's MPS daemon), and NVML or libcuda only where its requirements or MIG devices ask.
    pub fn for_request(request: &ContainerRequest) -> InventoryNeeds {
        InventoryNeeds {
            cuda_version: request.needs(RequirementKey::Cuda),
            gpu_details: request.needs(RequirementKey::Arch)
                || request.needs(RequirementKey::Brand),
            mig: request.needs_mig(),
            devices_only: false,
            capabilities: Some(CapabilitySet::of(&request.capabilities)),
            mps_daemon: true,
        }
    }

    /// Whether the files of `capability` are to be looked for.
    pub fn wants(&self, capability: DriverCapability) -> bool {
        self.capabilities
            .map_or(true, |set| set.contains(capability))
    }

    /// Whether the utility `name` is to be looked for.
    pub(super) fn wants_binary(&self, name: &str) -> bool {
        (self.mps_daemon && name == catalog::MPS_CONTROL)
            || catalog::capability_of_binary(name).is_some_and(|c| self.wants(c))
    }

    /// Whether the libraries whose soname starts with `prefix` are to be looked for.
    pub(super) fn wants_library(&self, prefix: &str) -> bool {
        let loaded = match prefix {
            "libnvidia-ml.so" => self.gpu_details || self.mig,
            "libcuda.so" => self.cuda_version || self.mps_daemon,
            _ => false,
        };
        loaded || catalog::capability_of_library(prefix).is_some_and(|c| self.wants(c))
    }
}

/// A device node on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Where it appears in the container, e.g. `/dev/nvidia0`.
    pub path: PathBuf,
    /// Where it is on the host (under `driver.dev-root`).
    pub host_path: PathBuf,
    pub major: u32,
    pub minor: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverLibrary {
    /// The catalog prefix it matched, e.g. `libcuda.so`.
    pub prefix: &'static str,
    /// The real file (soname links resolved), e.g. `/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04`.
    pub host_path: PathBuf,
    pub file_name: String,
    pub is_64bit: bool,
    /// Its soname as the driver root's ld cache lists it, e.g. `libcuda.so.1`.
    pub soname: String,
    /// That cache entry's flags and OS version: what ldconfig records for this file, and
    /// what the container's cache gets for it (see [`crate::apply::ld_cache`]).
    pub cache_flags: i32,
    pub osversion: u32,
}

/// Utilities by name with their host paths.
pub type Utilities = Vec<(&'static str, PathBuf)>;

/// A host file and where a container sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
}

/// A loader or server file a capability needs besides its libraries (Vulkan ICD, EGL vendor,
/// GBM backend, X modules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportFile {
    pub capability: crate::request::DriverCapability,
    pub host_path: PathBuf,
    pub place: catalog::SupportPlace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub driver_version: String,
    pub cuda_version: Option<String>,
    /// The usable GPUs, in index order.
    pub gpus: Vec<Gpu>,
    /// GPUs the driver lists whose `information` cannot be used; their indices are taken.
    pub unusable_gpus: Vec<UnusableGpu>,
    /// The GPUs' MIG devices; `None` unless [`InventoryNeeds::mig`] asked.
    pub mig: Option<MigInventory>,
    /// `nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`, `nvidia-modeset`: those present.
    pub control_devices: Vec<DeviceNode>,
    pub libraries: Vec<DriverLibrary>,
    /// Utilities by name, found in `driver.binary-dirs`.
    pub binaries: Utilities,
    /// Files named like a utility in `driver.binary-dirs` that are not ELF executables (host
    /// wrapper scripts), skipped on purpose, for utilities with no ELF found.
    pub skipped_binaries: Utilities,
    pub firmware: Vec<HostFile>,
    /// Sockets that exist (persistenced, fabric manager).
    pub ipc: Vec<HostFile>,
    /// The MPS pipe directory, when it exists.
    pub mps_pipe_dir: Option<HostFile>,
    /// IMEX channel nodes (`nvidia-caps-imex-channels/channelN`) by channel number, sorted.
    pub imex_channels: Vec<(u32, DeviceNode)>,
    /// Graphics and display files found (see [`SupportFile`]).
    pub support_files: Vec<SupportFile>,
    /// The driver's `version` and `params` files as read.
    pub proc_version: String,
    pub proc_params: String,
    /// Whether the host kernel's procfs has `/proc/driver/nvidia` (a simulated driver's
    /// procfs, named by `driver.proc-driver-root`, is elsewhere): decides the mask's target.
    pub kernel_has_proc_driver_nvidia: bool,
}

const CONTROL_DEVICES: [&str; 4] = [
    "nvidiactl",
    "nvidia-uvm",
    "nvidia-uvm-tools",
    "nvidia-modeset",
];

impl Inventory {
    pub fn read(config: &DriverConfig, needs: InventoryNeeds) -> Result<Inventory, InventoryError> {
        let version_path = config.proc_driver_root.join("version");
        let proc_version =
            std::fs::read_to_string(&version_path).map_err(|source| InventoryError::NoDriver {
                root: config.proc_driver_root.clone(),
                path: version_path.clone(),
                source,
            })?;
        let driver_version = proc_driver::parse_driver_version(&proc_version)
            .ok_or(InventoryError::BadVersion { path: version_path })?;
        let proc_params =
            std::fs::read_to_string(config.proc_driver_root.join("params")).unwrap_or_default();
        let (gpus, unusable_gpus) = gpus::read_gpus(
            &config.proc_driver_root,
            &config.dev_root,
            &config.sysfs_root,
        )?;
        let control_devices = CONTROL_DEVICES
            .iter()
            .filter_map(|name| device_node(&config.dev_root, name))
            .collect();
        let libraries = match needs.devices_only && !needs.mig {
            true => Vec::new(),
            false => libraries::read_libraries(config, &driver_version, &needs)?,
        };
        let files = match needs.devices_only {
            true => DriverFiles::default(),
            false => DriverFiles::read(config, &libraries, &driver_version, &needs)?,
        };
        let imex_channels = read_imex_channels(&config.dev_root);
        let mut inventory = Inventory {
            driver_version,
            cuda_version: None,
            gpus,
            unusable_gpus,
            mig: None,
            control_devices,
            libraries,
            binaries: files.binaries,
            skipped_binaries: files.skipped_binaries,
            firmware: files.firmware,
            ipc: files.ipc,
            mps_pipe_dir: files.mps_pipe_dir,
            imex_channels,
            support_files: files.support_files,
            proc_version,
            proc_params,
            kernel_has_proc_driver_nvidia: Path::new("/proc/driver/nvidia").is_dir(),
        };
        if needs.cuda_version {
            inventory.load_cuda_version(config)?;
        }
        inventory.load_nvml_facts(config, needs)?;
        Ok(inventory)
    }

    /// Fills `cuda_version` from libcuda's `cuDriverGetVersion`.
    pub fn load_cuda_version(&mut self, config: &DriverConfig) -> Result<(), InventoryError> {
        let libcuda = self.library_path("libcuda.so", config)?;
        self.cuda_version = Some(native::cuda_driver_version(&libcuda)?);
        Ok(())
    }

    /// Fills what only NVML knows and `needs` asks for: each GPU's architecture and brand
    /// (`gpu_details`), the MIG devices (`mig`). NVML is initialised once for both, since its
    /// initialisation is the slow part (tens of milliseconds, seconds on a non-persistent
    /// driver); not at all when neither is asked.
    pub fn load_nvml_facts(
        &mut self,
        config: &DriverConfig,
        needs: InventoryNeeds,
    ) -> Result<(), InventoryError> {
        if !needs.gpu_details && !needs.mig {
            return Ok(());
        }
        let libnvml = self.library_path("libnvidia-ml.so", config)?;
        let nvml = native::init_nvml(&libnvml)?;
        if needs.gpu_details {
            native::fill_gpu_details(&nvml, &libnvml, &mut self.gpus)?;
        }
        if needs.mig {
            let reported = mig::nvml::enumerate(&nvml, &libnvml)?;
            self.mig = Some(MigInventory::build(config, &self.gpus, &reported));
        }
        Ok(())
    }

    /// The 64-bit library of this driver whose soname starts with `prefix`
    /// (`libnvidia-ml.so`), or an error naming the ld cache it is missing from.
    pub fn library_path(
        &self,
        prefix: &str,
        config: &DriverConfig,
    ) -> Result<PathBuf, InventoryError> {
        self.libraries
            .iter()
            .find(|l| l.prefix == prefix && l.is_64bit)
            .map(|l| l.host_path.clone())
            .ok_or_else(|| InventoryError::NoLibraries {
                version: format!("{} ({prefix})", self.driver_version),
                cache: root_paths::join(&config.root, &config.ldcache),
            })
    }
}

/// The channel nodes the IMEX daemon's driver created, `channel0`, `channel1`, ...
fn read_imex_channels(dev_root: &Path) -> Vec<(u32, DeviceNode)> {
    let Ok(entries) = std::fs::read_dir(dev_root.join(IMEX_CHANNEL_DIR)) else {
        return Vec::new();
    };
    let mut channels: Vec<(u32, DeviceNode)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let number = name.strip_prefix("channel")?.parse().ok()?;
            let node = device_node(dev_root, &format!("{IMEX_CHANNEL_DIR}/{name}"))?;
            Some((number, node))
        })
        .collect();
    channels.sort_by_key(|(n, _)| *n);
    channels
}

/// Where IMEX channel nodes live under `/dev`.
pub const IMEX_CHANNEL_DIR: &str = "nvidia-caps-imex-channels";
