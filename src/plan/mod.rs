//! The plan stage: from a request and an inventory, what goes where. Pure: it decides, the
//! appliers act. The same plan feeds the hook (mounts inside the container) and, later, CDI.

mod mig;
mod select;

use std::path::{Path, PathBuf};

use crate::catalog::{self, SupportPlace};
use crate::inventory::{DeviceNode, Gpu, Inventory};
use crate::request::imex::ImexChannels;
use crate::request::{ContainerRequest, DriverCapability, HostFacts, VisibleDevices};

pub use mig::MigError;
pub use select::{select, select_gpus, Selection};

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
    #[error("requirement {name}={text:?} not met: {condition} does not hold (host: {host}){hint}")]
    Requirement {
        name: String,
        text: String,
        condition: String,
        host: String,
        hint: String,
    },
}

/// Facts about the container's rootfs the plan depends on (read by the applier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLayout {
    pub lib_dir: PathBuf,
    pub lib32_dir: PathBuf,
    /// Where the image's X server looks for modules.
    pub xorg_modules_dir: PathBuf,
    /// The image's CUDA forward-compatibility libraries, if it carries any.
    pub cuda_compat: Option<CudaCompat>,
}

/// `libcuda.so.<version>` found in the image's compat directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaCompat {
    /// The directory, inside the container.
    pub dir: PathBuf,
    /// The newest compat libcuda's version (its driver version, e.g. `590.48.01`).
    pub version: String,
}

impl ContainerLayout {
    /// Debian-family images keep libraries in multiarch dirs; the others in `lib64`/`lib`.
    pub fn for_rootfs(is_debian: bool) -> ContainerLayout {
        if is_debian {
            ContainerLayout {
                lib_dir: PathBuf::from("/usr/lib/x86_64-linux-gnu"),
                lib32_dir: PathBuf::from("/usr/lib/i386-linux-gnu"),
                xorg_modules_dir: PathBuf::from("/usr/lib/xorg/modules"),
                cuda_compat: None,
            }
        } else {
            ContainerLayout {
                lib_dir: PathBuf::from("/usr/lib64"),
                lib32_dir: PathBuf::from("/usr/lib"),
                xorg_modules_dir: PathBuf::from("/usr/lib64/xorg/modules"),
                cuda_compat: None,
            }
        }
    }
}

/// What a bind mount carries; decides its mount flags and how its target is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// Read-only, nosuid, nodev regular file (library, utility, firmware).
    File,
    /// A device node: read-write, nosuid.
    Device,
    /// A socket or pipe directory the container talks to the host through.
    Ipc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub kind: MountKind,
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
    /// `(bus id, information text)` of the selected GPUs only.
    pub gpus: Vec<(String, String)>,
    /// `(path relative to /proc/driver/nvidia, text)` of the capability files of the given MIG
    /// devices (`capabilities/gpu0/mig/gi1/access`, ...): NVML in the container reads them.
    pub mig_capabilities: Vec<(PathBuf, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionPlan {
    /// Indices and UUIDs of the selected GPUs (MIG devices: parent's index, MIG UUID), for logs.
    pub gpus: Vec<(u32, String)>,
    pub mounts: Vec<MountEntry>,
    /// The device nodes given (also among `mounts`), for appliers that declare them.
    pub devices: Vec<DeviceNode>,
    pub device_rules: Vec<DeviceRule>,
    pub proc_driver: ProcDriverView,
    /// Directories the container's ld cache must index.
    pub ldcache_dirs: Vec<PathBuf>,
}

/// Builds the plan, checking the request's requirements against the host first.
pub fn plan(
    request: &ContainerRequest,
    inventory: &Inventory,
    layout: &ContainerLayout,
) -> Result<InjectionPlan, PlanError> {
    let selection = select(&request.devices, &inventory.gpus, inventory.mig.as_ref())?;
    // A MIG device's parent GPU gives the node, procfs entry and facts of a whole GPU.
    let gpus = selection.device_gpus();
    check_requirements(request, inventory, &gpus)?;
    let mig = mig::mig_plan(request, &selection, inventory.mig.as_ref())?;

    let mut devices: Vec<&DeviceNode> = Vec::new();
    for gpu in &gpus {
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
    // and no IMEX channel node either.
    if request.devices != VisibleDevices::NoGpu {
        devices.extend(inventory.control_devices.iter());
        devices.extend(imex_channels(request, inventory)?);
    }
    devices.extend(mig.nodes.iter());

    let mut mounts: Vec<MountEntry> = devices
        .iter()
        .map(|d| MountEntry {
            host_path: d.host_path.clone(),
            container_path: d.path.clone(),
            kind: MountKind::Device,
        })
        .collect();
    let device_rules = devices
        .iter()
        .map(|d| DeviceRule {
            major: d.major,
            minor: d.minor,
        })
        .collect();

    let (library_mounts, mut ldcache_dirs) = library_mounts(request, inventory, layout);
    // Forward compatibility: the image's newer user-space driver comes first in its ld cache
    // (ldconfig lists the directories given first first, and ld.so takes the first match).
    if let Some(compat) = newer_cuda_compat(request, inventory, layout) {
        ldcache_dirs.insert(0, compat.dir.clone());
    }
    mounts.extend(library_mounts);
    mounts.extend(
        inventory
            .binaries
            .iter()
            .filter(|(name, _)| {
                catalog::capability_of_binary(name)
                    .is_some_and(|c| request.capabilities.contains(&c))
            })
            .map(|(name, host_path)| MountEntry {
                host_path: host_path.clone(),
                container_path: Path::new("/usr/bin").join(name),
                kind: MountKind::File,
            }),
    );
    if wants_driver_internals(request) {
        mounts.extend(inventory.firmware.iter().map(|f| MountEntry {
            host_path: f.host_path.clone(),
            container_path: f.container_path.clone(),
            kind: MountKind::File,
        }));
        mounts.extend(inventory.ipc.iter().map(|f| MountEntry {
            host_path: f.host_path.clone(),
            container_path: f.container_path.clone(),
            kind: MountKind::Ipc,
        }));
        // The MPS pipes go where the container's CUDA_MPS_PIPE_DIRECTORY says, if it says.
        mounts.extend(inventory.mps_pipe_dir.iter().map(|f| {
            MountEntry {
                host_path: f.host_path.clone(),
                container_path: request
                    .mps_pipe_directory
                    .clone()
                    .unwrap_or_else(|| f.container_path.clone()),
                kind: MountKind::Ipc,
            }
        }));
    }
    mounts.extend(
        inventory
            .support_files
            .iter()
            .filter(|f| request.capabilities.contains(&f.capability))
            .map(|f| MountEntry {
                host_path: f.host_path.clone(),
                container_path: match &f.place {
                    SupportPlace::Absolute(path) => path.clone(),
                    SupportPlace::LibDir(relative) => layout.lib_dir.join(relative),
                    SupportPlace::XorgModules(relative) => layout.xorg_modules_dir.join(relative),
                },
                kind: MountKind::File,
            }),
    );

    let mut proc_driver = proc_driver_view(inventory, &gpus);
    proc_driver.mig_capabilities = mig.proc_files;
    Ok(InjectionPlan {
        gpus: selection.summary(),
        mounts,
        device_rules,
        devices: devices.into_iter().cloned().collect(),
        proc_driver,
        ldcache_dirs,
    })
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

/// What a container given `gpus` sees of `/proc/driver/nvidia`.
pub fn proc_driver_view(inventory: &Inventory, gpus: &[&Gpu]) -> ProcDriverView {
    ProcDriverView {
        version: inventory.proc_version.clone(),
        params: crate::inventory::proc_driver::container_params(&inventory.proc_params),
        gpus: gpus
            .iter()
            .map(|g| (g.info.bus_id.clone(), g.information_text.clone()))
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
) -> (Vec<MountEntry>, Vec<PathBuf>) {
    let compat32 = request.capabilities.contains(&DriverCapability::Compat32);
    let mut mounts = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
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
        mounts.push(MountEntry {
            host_path: library.host_path.clone(),
            container_path: dir.join(&library.file_name),
            kind: MountKind::File,
        });
    }
    (mounts, dirs)
}

fn check_requirements(
    request: &ContainerRequest,
    inventory: &Inventory,
    gpus: &[&Gpu],
) -> Result<(), PlanError> {
    let base = HostFacts {
        cuda: inventory.cuda_version.clone(),
        driver: Some(inventory.driver_version.clone()),
        arch: None,
        brand: None,
    };
    // arch and brand are per GPU: every selected GPU must meet them.
    let per_gpu: Vec<HostFacts> = if gpus.is_empty() {
        vec![base]
    } else {
        gpus.iter()
            .map(|g| HostFacts {
                arch: g.arch.clone(),
                brand: g.brand.clone(),
                ..base.clone()
            })
            .collect()
    };
    for requirement in &request.requirements {
        for facts in &per_gpu {
            if let Err(condition) = requirement.check(facts) {
                let hint = match condition.key {
                    crate::request::RequirementKey::Cuda => {
                        "; update your driver or use an earlier CUDA image".to_string()
                    }
                    _ => String::new(),
                };
                return Err(PlanError::Requirement {
                    name: requirement.name.clone(),
                    text: requirement.text.clone(),
                    condition: condition.to_string(),
                    host: describe_facts(facts),
                    hint,
                });
            }
        }
    }
    Ok(())
}

fn describe_facts(facts: &HostFacts) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &facts.cuda {
        parts.push(format!("cuda {c}"));
    }
    if let Some(d) = &facts.driver {
        parts.push(format!("driver {d}"));
    }
    if let Some(a) = &facts.arch {
        parts.push(format!("arch {a}"));
    }
    if let Some(b) = &facts.brand {
        parts.push(format!("brand {b}"));
    }
    parts.join(", ")
}

#[cfg(test)]
pub(crate) mod tests;
