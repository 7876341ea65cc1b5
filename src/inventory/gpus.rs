//! The GPUs the kernel driver lists: `<proc-driver-root>/gpus/<bus id>/information`.
//!
//! Indices follow PCI bus order over every GPU the driver lists, whether or not its
//! `information` file can be used, because that is the order `nvidia-smi` and NVML number
//! them in: a GPU whose file is broken keeps its index (and cannot be selected), and the GPUs
//! after it keep theirs.

use std::path::{Path, PathBuf};

use super::drm::{device_node, drm_nodes};
use super::proc_driver::{self, GpuInformation};
use super::{DeviceNode, InventoryError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Position in PCI bus order, the index `nvidia-smi` shows.
    pub index: u32,
    pub info: GpuInformation,
    /// The `information` file as the host has it.
    pub information_text: String,
    /// Its directory under the driver's procfs (`.../gpus/<bus id>`): bound, read-only, into
    /// the container's `/proc/driver/nvidia/gpus`.
    pub proc_dir: PathBuf,
    /// `None` when the node is missing on the host.
    pub device: Option<DeviceNode>,
    /// Its DRM nodes (`/dev/dri/card<N>`, `/dev/dri/renderD<N>`), those sysfs lists for its PCI
    /// device and the dev root has: what the graphics and display capabilities add.
    pub dri: Vec<DeviceNode>,
    /// Compute capability (`9.0`), when NVML was asked.
    pub arch: Option<String>,
    /// Brand as the incumbent names it (`tesla`, `nvidiavws`, ...), when NVML was asked.
    pub brand: Option<String>,
}

/// A GPU the driver lists whose `information` file cannot be read or parsed: without it there
/// is no UUID or device minor, so it cannot be given to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableGpu {
    /// Its position in PCI bus order among all listed GPUs.
    pub index: u32,
    /// The directory name under `gpus/`, which the driver names after the PCI bus id.
    pub bus_id: String,
    /// What is wrong with its `information` file.
    pub reason: String,
}

/// Every GPU the driver lists, usable or not, each with its bus-order index.
pub fn read_gpus(
    proc_driver_root: &Path,
    dev_root: &Path,
    sysfs_root: &Path,
) -> Result<(Vec<Gpu>, Vec<UnusableGpu>), InventoryError> {
    let gpus_dir = proc_driver_root.join("gpus");
    let entries = match std::fs::read_dir(&gpus_dir) {
        Ok(entries) => entries,
        // A driver with no GPU bound has no gpus/ directory.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(source) => {
            return Err(InventoryError::Read {
                path: gpus_dir,
                source,
            })
        }
    };
    let mut bus_ids: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    // The driver writes bus ids as fixed-width lower-case hex (`0000:0a:00.0`), so name order
    // is bus order.
    bus_ids.sort();
    let mut usable = Vec::new();
    let mut unusable = Vec::new();
    for (index, bus_id) in (0u32..).zip(bus_ids) {
        let path = gpus_dir.join(&bus_id).join("information");
        match read_information(&path) {
            Ok((info, information_text)) => usable.push(Gpu {
                index,
                proc_dir: gpus_dir.join(&bus_id),
                device: device_node(dev_root, &format!("nvidia{}", info.minor)),
                dri: drm_nodes(sysfs_root, dev_root, &bus_id),
                info,
                information_text,
                arch: None,
                brand: None,
            }),
            Err(reason) => unusable.push(UnusableGpu {
                index,
                bus_id,
                reason,
            }),
        }
    }
    Ok((usable, unusable))
}

fn read_information(path: &Path) -> Result<(GpuInformation, String), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let info = proc_driver::parse_gpu_information(&text).ok_or_else(|| {
        format!(
            "{} has no valid `GPU UUID`, `Model`, `Bus Location` and `Device Minor`",
            path.display()
        )
    })?;
    Ok((info, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn information(bus: &str, minor: u32) -> String {
        format!(
            "Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t GPU-5e1f0000-0000-4000-8000-00000000000{minor}\n\
             Bus Location: \t {bus}\nDevice Minor: \t {minor}\n"
        )
    }

    /// A procfs `gpus/` with three GPUs (given out of order), the one at `broken` replaced by
    /// `broken_as`.
    fn procfs(broken: &str, broken_as: impl Fn(&Path)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (bus, minor) in [
            ("0000:12:00.0", 2),
            ("0000:10:00.0", 0),
            ("0000:11:00.0", 1),
        ] {
            let gpu_dir = dir.path().join("gpus").join(bus);
            std::fs::create_dir_all(&gpu_dir).unwrap();
            if bus == broken {
                broken_as(&gpu_dir.join("information"));
            } else {
                std::fs::write(gpu_dir.join("information"), information(bus, minor)).unwrap();
            }
        }
        dir
    }

    fn indices(gpus: &[Gpu]) -> Vec<(u32, u32)> {
        gpus.iter().map(|g| (g.index, g.info.minor)).collect()
    }

    #[test]
    fn indices_follow_bus_order_of_every_listed_gpu() {
        let dir = procfs("none", |_| {});
        let (gpus, unusable) = read_gpus(
            dir.path(),
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(indices(&gpus), [(0, 0), (1, 1), (2, 2)]);
        assert!(unusable.is_empty());
        assert_eq!(gpus[1].info.bus_id, "0000:11:00.0");
    }

    #[test]
    fn an_unparsable_information_file_keeps_its_index() {
        let dir = procfs("0000:10:00.0", |path| {
            std::fs::write(path, "garbage\n\u{1}\u{2}").unwrap()
        });
        let (gpus, unusable) = read_gpus(
            dir.path(),
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(
            indices(&gpus),
            [(1, 1), (2, 2)],
            "GPU 1 stays GPU 1, as nvidia-smi numbers it"
        );
        assert_eq!(unusable.len(), 1);
        assert_eq!(unusable[0].index, 0);
        assert_eq!(unusable[0].bus_id, "0000:10:00.0");
        assert!(
            unusable[0]
                .reason
                .contains("0000:10:00.0/information has no valid"),
            "{}",
            unusable[0].reason
        );
    }

    #[test]
    fn an_unreadable_information_file_fails_no_other_gpu() {
        // A directory where the file should be: unreadable even for root (mode bits are not).
        let dir = procfs("0000:11:00.0", |path| std::fs::create_dir(path).unwrap());
        let (gpus, unusable) = read_gpus(
            dir.path(),
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(indices(&gpus), [(0, 0), (2, 2)]);
        assert_eq!(unusable[0].index, 1);
        assert!(
            unusable[0].reason.starts_with("cannot read ")
                && unusable[0].reason.contains("0000:11:00.0/information"),
            "{}",
            unusable[0].reason
        );
    }

    #[test]
    fn no_gpus_directory_means_no_gpus() {
        let dir = tempfile::tempdir().unwrap();
        let (gpus, unusable) = read_gpus(
            dir.path(),
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert!(gpus.is_empty() && unusable.is_empty());
    }
}
