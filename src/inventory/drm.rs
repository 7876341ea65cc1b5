//! Device nodes on the host, and the DRM nodes sysfs ties to each PCI GPU: shared by every
//! vendor (NVIDIA's graphics/display nodes, AMD's and Intel's GPUs, see `crate::vendor`).

use std::path::Path;

use super::DeviceNode;

/// A character device under `dev_root`; `None` when absent or not a character device.
pub fn device_node(dev_root: &Path, name: &str) -> Option<DeviceNode> {
    let host_path = dev_root.join(name);
    let stat = rustix::fs::stat(&host_path).ok()?;
    let file_type = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if file_type != rustix::fs::FileType::CharacterDevice {
        return None;
    }
    Some(DeviceNode {
        path: Path::new("/dev").join(name),
        host_path,
        major: rustix::fs::major(stat.st_rdev),
        minor: rustix::fs::minor(stat.st_rdev),
    })
}

/// The DRM nodes of the PCI device `bus_id`: the `card<N>` and `renderD<N>` entries of its
/// sysfs `drm/` directory (the kernel's DRM driver names them after the nodes it made), each
/// kept when `dev_root/dri/<name>` is a character device. Sysfs, not `/dev/dri` alone, says
/// which GPU a node belongs to: an unselected GPU's nodes (or another vendor's) never
/// appear in a container. Only names of that exact shape are used, so a sysfs entry can
/// never make a path outside `dev_root/dri`.
pub fn drm_nodes(sysfs_root: &Path, dev_root: &Path, bus_id: &str) -> Vec<DeviceNode> {
    let drm = sysfs_root.join("bus/pci/devices").join(bus_id).join("drm");
    let Ok(entries) = std::fs::read_dir(drm) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_drm_node_name(n))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|name| device_node(dev_root, &format!("dri/{name}")))
        .collect()
}

/// `card<digits>` or `renderD<digits>`.
pub fn is_drm_node_name(name: &str) -> bool {
    ["card", "renderD"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}
