//! The plan stage: from a request and an inventory, what goes where. Pure: it decides, the
//! appliers act. The same plan feeds the hook (mounts inside the container) and, later, CDI.

mod devices;
pub mod entries;
pub(crate) mod mig;
mod requirements;
mod select;
pub mod targets;
pub mod vendor;

use std::path::{Path, PathBuf};

use crate::catalog::{self, SupportPlace};
use crate::inventory::{DeviceNode, Gpu, Inventory};
use crate::request::{ContainerRequest, DriverCapability};

pub use entries::{
    ContainerLayout, CudaCompat, MountEntry, MountFlags, MountKind, Placement, TargetOrigin,
    TargetType,
};
pub use mig::MigError;
pub use select::{select, Selection};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("GPU {requested} requested, {available}")]
    UnknownGpu {
        requested: String,
        available: String,
    },
    #[error(
        "GPU {requested} requested: it matches several GPUs ({matches}); give more of the UUID"
    )]
    AmbiguousUuid { requested: String, matches: String },
    #[error("{requested} requested, but GPU {index} ({bus_id}) cannot be used: {reason}; check the GPU on the host (nvidia-smi -q -i {bus_id}, the kernel log) or ask for another")]
    UnusableGpu {
        requested: String,
        index: u32,
        bus_id: String,
        reason: String,
    },
    #[error(transparent)]
    Mig(#[from] MigError),
    #[error("GPU {index} ({uuid}) requested, but its device node {path} is missing on the host: load the driver's device files (nvidia-modprobe, or run nvidia-smi once)")]
    MissingDeviceNode {
        index: u32,
        uuid: String,
        path: PathBuf,
    },
    #[error("IMEX channel {requested} requested, {available}")]
    UnknownImexChannel { requested: u32, available: String },
    #[error("{variable}={}: refused: {problem}; point it at a directory of its own, such as /tmp/nvidia-mps", path.display())]
    TenantTarget {
        variable: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("mount target {}: {problem} (a gpuhook bug: please report it)", path.display())]
    Target { path: PathBuf, problem: String },
    #[error("requirement {name}={} not met: {condition} does not hold (host: {host}){hint}", crate::limits::quoted(.text))]
    Requirement {
        name: String,
        text: String,
        condition: String,
        host: String,
        hint: String,
    },
}

/// A device cgroup rule: allow read-write access to one character device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceRule {
    pub major: u32,
    pub minor: u32,
}

/// The masked `/proc/driver/nvidia` a container sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcDriverView {
    pub version: String,
    pub params: String,
    /// `(bus id, host directory)` of the selected GPUs only: each GPU's real procfs directory
    /// (`information`, `registry`, `power`, ...) is bound there read-only.
    pub gpus: Vec<(String, PathBuf)>,
    /// `(path relative to /proc/driver/nvidia, text)` of the capability files of the given MIG
    /// devices (`capabilities/gpu0/mig/gi1/access`, ...): NVML in the container reads them.
    pub mig_capabilities: Vec<(PathBuf, String)>,
}

/// A driver library the container's ld cache lists, with its soname link beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLibrary {
    /// The container directory it is mounted in, e.g. `/usr/lib/x86_64-linux-gnu`.
    pub dir: PathBuf,
    /// e.g. `libcuda.so.580.159.04`.
    pub file_name: String,
    /// e.g. `libcuda.so.1`.
    pub soname: String,
    /// The host cache's flags (type and ABI) and OS version for this file.
    pub flags: i32,
    pub osversion: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionPlan {
    /// Indices and UUIDs of the selected GPUs (MIG devices: parent's index, MIG UUID), for logs.
    pub gpus: Vec<(u32, String)>,
    /// GPUs `all` left out because they cannot be used: `(index, bus id, why)`, for logs.
    pub skipped_gpus: Vec<(u32, String, String)>,
    /// In the order they are made: device nodes, files, directories (see
    /// [`MountEntry::stage`]); targets never overlap (see [`targets`]).
    pub mounts: Vec<MountEntry>,
    /// The device nodes given (also among `mounts`), for appliers that declare them.
    pub devices: Vec<DeviceNode>,
    pub device_rules: Vec<DeviceRule>,
    pub proc_driver: ProcDriverView,
    /// Where the `/proc/driver` mask goes, and whether its files sit in an `nvidia/`
    /// subdirectory (see [`ProcMaskTarget`]); none when no NVIDIA GPU is given.
    pub proc_mask: Option<ProcMaskTarget>,
    /// Directories the container's ld cache must index.
    pub ldcache_dirs: Vec<PathBuf>,
    /// The mounted libraries in those directories, for an in-process cache update (see
    /// [`crate::apply::ld_cache`]); a directory none of them is in (the image's CUDA compat
    /// directory) holds the image's own libraries, which only ldconfig reads.
    pub ldcache_libraries: Vec<CachedLibrary>,
    /// The uid and gid the ldconfig child runs as: the container's root.
    pub ldconfig_ids: (u32, u32),
    /// The container's fresh tmpfs mounts, where targets may be created besides its rootfs.
    pub fresh_tmpfs: Vec<PathBuf>,
}

impl InjectionPlan {
    /// Puts mounts added after [`plan`] (a vendor's nodes, a memory cap's MPS pipes) in their
    /// stage order and checks the whole plan's targets again, as [`plan`] checks its own.
    pub fn recheck(&mut self, layout: &ContainerLayout) -> Result<(), PlanError> {
        // Devices first (the sort is stable: each group keeps its order).
        self.mounts.sort_by_key(MountEntry::stage);
        targets::check(
            &self.mounts,
            self.proc_mask.as_ref().map(|m| m.path.as_path()),
            &self.ldcache_dirs,
            layout,
        )
    }
}

/// `/proc/driver/nvidia` when the host kernel has one (it shows through the container's
/// procfs and is covered); otherwise (a driver simulated by config) all of `/proc/driver`,
/// with the view's files in an `nvidia/` subdirectory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcMaskTarget {
    pub path: PathBuf,
    pub nested: bool,
}

impl ProcMaskTarget {
    pub fn for_kernel(has_proc_driver_nvidia: bool) -> ProcMaskTarget {
        if has_proc_driver_nvidia {
            ProcMaskTarget {
                path: "/proc/driver/nvidia".into(),
                nested: false,
            }
        } else {
            ProcMaskTarget {
                path: "/proc/driver".into(),
                nested: true,
            }
        }
    }
}

/// Builds the plan, checking the request's requirements against the host first.
pub fn plan(
    request: &ContainerRequest,
    inventory: &Inventory,
    layout: &ContainerLayout,
) -> Result<InjectionPlan, PlanError> {
    let selection = select::within_declared(
        select(&request.devices, inventory)?,
        &request.declared_devices,
        &inventory.gpus,
    );
    // A MIG device's parent GPU gives the node, procfs entry and facts of a whole GPU.
    let gpus = selection.device_gpus();
    requirements::check(request, inventory, &gpus)?;
    let mig = mig::mig_plan(request, &selection, inventory.mig.as_ref())?;
    let devices = devices::device_nodes(request, inventory, &gpus, &mig.nodes)?
        .into_iter()
        .chain(devices::dri_nodes(request, &selection.gpus))
        .collect::<Vec<_>>();

    let mut mounts: Vec<MountEntry> = devices.iter().map(|d| MountEntry::device(d)).collect();
    let device_rules = devices
        .iter()
        .map(|d| DeviceRule {
            major: d.major,
            minor: d.minor,
        })
        .collect();
    let (library_mounts, mut ldcache_dirs, ldcache_libraries) =
        library_mounts(request, inventory, layout);
    // Forward compatibility: the image's newer user-space driver comes first in its ld cache
    // (ldconfig lists the directories given first first, and ld.so takes the first match).
    if let Some(compat) = newer_cuda_compat(request, inventory, layout) {
        ldcache_dirs.insert(0, compat.dir.clone());
    }
    mounts.extend(library_mounts);
    mounts.extend(file_mounts(request, inventory, layout));
    mounts.extend(ipc_mounts(request, inventory));
    // Devices first, files next, directories last: nothing mounted early can hold a later
    // target (the sort is stable, so each group keeps its order).
    mounts.sort_by_key(MountEntry::stage);
    let proc_mask = ProcMaskTarget::for_kernel(inventory.kernel_has_proc_driver_nvidia);
    targets::check(&mounts, Some(&proc_mask.path), &ldcache_dirs, layout)?;

    let mut proc_driver = proc_driver_view(inventory, &gpus);
    proc_driver.mig_capabilities = mig.proc_files;
    Ok(InjectionPlan {
        gpus: selection.summary(),
        skipped_gpus: selection
            .skipped
            .iter()
            .map(|u| (u.index, u.bus_id.clone(), u.reason.clone()))
            .collect(),
        mounts,
        device_rules,
        devices: devices.into_iter().cloned().collect(),
        proc_driver,
        proc_mask: Some(proc_mask),
        ldcache_dirs,
        ldcache_libraries,
        ldconfig_ids: layout.root_ids,
        fresh_tmpfs: layout.fresh_tmpfs.clone(),
    })
}

/// Utilities into `/usr/bin`, firmware (compute and utility users) and the capabilities'
/// loader and server files.
fn file_mounts(
    request: &ContainerRequest,
    inventory: &Inventory,
    layout: &ContainerLayout,
) -> Vec<MountEntry> {
    let binaries = inventory
        .binaries
        .iter()
        .filter(|(name, _)| {
            catalog::capability_of_binary(name).is_some_and(|c| request.capabilities.contains(&c))
        })
        .map(|(name, host_path)| {
            MountEntry::file(host_path.clone(), Path::new("/usr/bin").join(name))
        });
    let firmware = inventory
        .firmware
        .iter()
        .filter(|_| wants_driver_internals(request))
        .map(|f| MountEntry::file(f.host_path.clone(), f.container_path.clone()));
    let support = inventory
        .support_files
        .iter()
        .filter(|f| request.capabilities.contains(&f.capability))
        .map(|f| {
            let container_path = match &f.place {
                SupportPlace::Absolute(path) => path.clone(),
                SupportPlace::LibDir(relative) => layout.lib_dir.join(relative),
                SupportPlace::XorgModules(relative) => layout.xorg_modules_dir.join(relative),
            };
            MountEntry::file(f.host_path.clone(), container_path)
        });
    binaries.chain(firmware).chain(support).collect()
}

/// The persistenced (utility) and fabric manager (compute) sockets, and the MPS pipe directory
/// (compute), which goes where
/// the container's `CUDA_MPS_PIPE_DIRECTORY` says, if it says (checked: see [`targets`]).
fn ipc_mounts(request: &ContainerRequest, inventory: &Inventory) -> Vec<MountEntry> {
    let wants = |path: &Path| {
        request
            .capabilities
            .contains(&catalog::ipc_capability(path))
    };
    let sockets = inventory
        .ipc
        .iter()
        .filter(|f| wants(&f.container_path))
        .map(|f| {
            MountEntry::ipc(
                f.host_path.clone(),
                f.container_path.clone(),
                TargetType::NonDirectory,
                TargetOrigin::Driver,
            )
        });
    let compute = request.capabilities.contains(&DriverCapability::Compute);
    let mps = inventory.mps_pipe_dir.iter().filter(|_| compute).map(|f| {
        let (container_path, origin) = match &request.mps_pipe_directory {
            Some(path) => (
                path.clone(),
                TargetOrigin::Tenant(crate::request::MPS_PIPE_ENV),
            ),
            None => (f.container_path.clone(), TargetOrigin::Driver),
        };
        MountEntry::ipc(
            f.host_path.clone(),
            container_path,
            TargetType::Directory,
            origin,
        )
    });
    sockets.chain(mps).collect()
}

/// The image's compat libraries when the container computes and they are newer than the host
/// driver (older ones would not work with it; equal ones add nothing).
pub fn newer_cuda_compat<'a>(
    request: &ContainerRequest,
    inventory: &Inventory,
    layout: &'a ContainerLayout,
) -> Option<&'a CudaCompat> {
    let compat = layout.cuda_compat.as_ref()?;
    if !request.capabilities.contains(&DriverCapability::Compute) {
        return None;
    }
    is_newer_version(&compat.version, &inventory.driver_version).then_some(compat)
}

/// Whether dotted version `candidate` is strictly newer than `than` (unparsable: no).
pub fn is_newer_version(candidate: &str, than: &str) -> bool {
    match (
        crate::request::parse_version(candidate),
        crate::request::parse_version(than),
    ) {
        (Some(a), Some(b)) => {
            crate::request::compare_versions(&a, &b) == std::cmp::Ordering::Greater
        }
        _ => false,
    }
}

/// What a container given `gpus` sees of `/proc/driver/nvidia`.
pub fn proc_driver_view(inventory: &Inventory, gpus: &[&Gpu]) -> ProcDriverView {
    ProcDriverView {
        version: inventory.proc_version.clone(),
        params: crate::inventory::proc_driver::container_params(&inventory.proc_params),
        gpus: gpus
            .iter()
            .map(|g| (g.info.bus_id.clone(), g.proc_dir.clone()))
            .collect(),
        mig_capabilities: Vec::new(),
    }
}

/// Firmware and the persistenced/MPS endpoints serve compute and utility users.
fn wants_driver_internals(request: &ContainerRequest) -> bool {
    request.capabilities.contains(&DriverCapability::Compute)
        || request.capabilities.contains(&DriverCapability::Utility)
}

fn library_mounts(
    request: &ContainerRequest,
    inventory: &Inventory,
    layout: &ContainerLayout,
) -> (Vec<MountEntry>, Vec<PathBuf>, Vec<CachedLibrary>) {
    let compat32 = request.capabilities.contains(&DriverCapability::Compat32);
    let mut mounts = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut cached = Vec::new();
    for library in &inventory.libraries {
        let wanted = catalog::capability_of_library(library.prefix)
            .is_some_and(|c| request.capabilities.contains(&c));
        if !wanted || (!library.is_64bit && !compat32) {
            continue;
        }
        let dir = if library.is_64bit {
            &layout.lib_dir
        } else {
            &layout.lib32_dir
        };
        if !dirs.contains(dir) {
            dirs.push(dir.clone());
        }
        mounts.push(MountEntry::file(
            library.host_path.clone(),
            dir.join(&library.file_name),
        ));
        cached.push(CachedLibrary {
            dir: dir.clone(),
            file_name: library.file_name.clone(),
            soname: library.soname.clone(),
            flags: library.cache_flags,
            osversion: library.osversion,
        });
    }
    (mounts, dirs, cached)
}

#[cfg(test)]
pub(crate) mod tests;
