//! The host's MIG (Multi-Instance GPU) devices and the capability device nodes that grant them.
//!
//! NVML says which MIG devices exist (see [`nvml`]): it is loaded only for requests that name
//! MIG devices or MIG capabilities. It returns plain data; everything after it (matching GPUs,
//! reading capability files, finding nodes) works from that data, so it is testable without
//! NVML. A MIG device is reachable through two capabilities, its GPU instance's and its
//! compute instance's: the driver lists each under `capabilities/gpu<minor>/mig/gi<GI>[/ci<CI>]/
//! access` with a `DeviceFileMinor`, the minor of `/dev/nvidia-caps/nvidia-cap<minor>`.

pub mod nvml;

use std::path::{Path, PathBuf};

use super::{device_node, DeviceNode, Gpu};
use crate::config::DriverConfig;

/// A MIG device as NVML reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmlMigDevice {
    /// The index `nvmlDeviceGetMigDeviceHandleByIndex` takes: the `1` of `0:1`.
    pub index: u32,
    pub uuid: String,
    pub gpu_instance: u32,
    pub compute_instance: u32,
}

/// One GPU as NVML reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmlMigGpu {
    pub uuid: String,
    /// Current MIG mode (a pending change needs a GPU reset and does not count).
    pub enabled: bool,
    pub devices: Vec<NvmlMigDevice>,
}

/// Why a capability cannot be given. Kept per capability, so a broken MIG device fails only
/// the containers that ask for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} has no `DeviceFileMinor: <n>` line")]
    NoMinor { path: PathBuf },
    #[error("its device node {node} is missing on the host (or not a character device of minor {minor}): create it with `nvidia-modprobe -f {proc_file}`")]
    MissingNode {
        node: PathBuf,
        minor: u32,
        proc_file: PathBuf,
    },
}

/// A capability: its device node and the procfs file that describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigCap {
    pub node: DeviceNode,
    /// Relative to the driver's procfs directory, e.g. `capabilities/gpu0/mig/gi1/access`:
    /// where the container sees it too (NVML there reads it to find the node).
    pub proc_file: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigDevice {
    pub index: u32,
    pub uuid: String,
    pub gpu_instance: u32,
    pub compute_instance: u32,
    /// The GPU instance's and the compute instance's capabilities.
    pub caps: Result<Vec<MigCap>, CapError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigGpu {
    /// [`Gpu::index`] of the parent GPU.
    pub gpu: u32,
    pub enabled: bool,
    /// In index order.
    pub devices: Vec<MigDevice>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigInventory {
    /// One per GPU of the inventory, in GPU index order.
    pub gpus: Vec<MigGpu>,
    /// `capabilities/mig/config`: create and destroy MIG devices.
    pub config: Result<MigCap, CapError>,
    /// `capabilities/mig/monitor`: watch every MIG device.
    pub monitor: Result<MigCap, CapError>,
}

impl MigInventory {
    /// Joins NVML's report to the inventory's GPUs (by UUID; a GPU NVML does not list counts
    /// as MIG-disabled) and reads each capability under `config`'s procfs and dev roots.
    pub fn build(config: &DriverConfig, gpus: &[Gpu], nvml: &[NvmlMigGpu]) -> MigInventory {
        let gpus = gpus
            .iter()
            .map(|gpu| {
                let reported = nvml
                    .iter()
                    .find(|n| n.uuid.eq_ignore_ascii_case(&gpu.info.uuid));
                let mut devices: Vec<MigDevice> = reported
                    .filter(|n| n.enabled)
                    .map(|n| n.devices.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|d| MigDevice {
                        index: d.index,
                        uuid: d.uuid.clone(),
                        gpu_instance: d.gpu_instance,
                        compute_instance: d.compute_instance,
                        caps: device_caps(config, gpu.info.minor, d),
                    })
                    .collect();
                devices.sort_by_key(|d| d.index);
                MigGpu {
                    gpu: gpu.index,
                    enabled: reported.is_some_and(|n| n.enabled),
                    devices,
                }
            })
            .collect();
        MigInventory {
            gpus,
            config: read_cap(config, Path::new("capabilities/mig/config")),
            monitor: read_cap(config, Path::new("capabilities/mig/monitor")),
        }
    }

    /// The MIG state of GPU `index`.
    pub fn gpu(&self, index: u32) -> Option<&MigGpu> {
        self.gpus.iter().find(|g| g.gpu == index)
    }
}

fn device_caps(
    config: &DriverConfig,
    gpu_minor: u32,
    device: &NvmlMigDevice,
) -> Result<Vec<MigCap>, CapError> {
    let gi = PathBuf::from(format!(
        "capabilities/gpu{gpu_minor}/mig/gi{}",
        device.gpu_instance
    ));
    let ci = gi.join(format!("ci{}", device.compute_instance));
    Ok(vec![
        read_cap(config, &gi.join("access"))?,
        read_cap(config, &ci.join("access"))?,
    ])
}

/// Reads one capability file and finds its node, `nvidia-caps/nvidia-cap<minor>` under the dev
/// root (nvidia-modprobe names them so).
fn read_cap(config: &DriverConfig, proc_file: &Path) -> Result<MigCap, CapError> {
    let path = config.proc_driver_root.join(proc_file);
    let text = std::fs::read_to_string(&path).map_err(|e| CapError::Read {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let minor = parse_device_file_minor(&text).ok_or(CapError::NoMinor { path: path.clone() })?;
    let name = format!("nvidia-caps/nvidia-cap{minor}");
    let node = device_node(&config.dev_root, &name)
        .filter(|n| n.minor == minor)
        .ok_or_else(|| CapError::MissingNode {
            node: config.dev_root.join(&name),
            minor,
            proc_file: path,
        })?;
    Ok(MigCap {
        node,
        proc_file: proc_file.to_path_buf(),
        text,
    })
}

/// The MIG device capabilities (`capabilities/gpu<m>/mig/gi<G>/access` and `.../ci<C>/access`)
/// whose nodes are among `nodes` (major, minor), found from the driver's procfs alone: the CDI
/// `mask-proc-driver` hook shows a container the capability files of the MIG devices its spec
/// declares (NVML there reads them) without starting NVML on the host.
pub fn caps_of_nodes(config: &DriverConfig, nodes: &[(u32, u32)]) -> Vec<MigCap> {
    let subdirs = |dir: &Path, prefix: &str| -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(config.proc_driver_root.join(dir)) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix(prefix).is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                })
            })
            .map(|n| dir.join(n))
            .collect();
        names.sort();
        names
    };
    let mut files = Vec::new();
    for gpu in subdirs(Path::new("capabilities"), "gpu") {
        for gi in subdirs(&gpu.join("mig"), "gi") {
            files.push(gi.join("access"));
            files.extend(subdirs(&gi, "ci").into_iter().map(|ci| ci.join("access")));
        }
    }
    files
        .iter()
        .filter_map(|file| read_cap(config, file).ok())
        .filter(|cap| nodes.contains(&(cap.node.major, cap.node.minor)))
        .collect()
}

/// The `DeviceFileMinor: <n>` line of a capability file, e.g.
/// `DeviceFileMinor: 12\nDeviceFileMode: 292\nDeviceFileModify: 1\n`.
pub fn parse_device_file_minor(text: &str) -> Option<u32> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "DeviceFileMinor")
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[cfg(test)]
mod tests;
