//! AMD's KFD topology: `<sysfs>/class/kfd/kfd/topology/nodes/<n>/properties`, one node per
//! CPU socket and per GPU. The file is `name value` lines of decimal numbers (the kernel's
//! `sysfs_show_*_prop` format), so it is read by hand: no format crate knows it, and only
//! the few keys below are used. CPU nodes have `simd_count 0`; a GPU node's
//! `drm_render_minor` ties it to its `renderD<N>` node, whose PCI device sysfs names.

use std::path::Path;

/// Where the topology is under the sysfs root.
pub const TOPOLOGY_NODES: &str = "class/kfd/kfd/topology/nodes";

/// A GPU node of the KFD topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfdGpuNode {
    /// The node's number (its directory name), ROCm's agent order.
    pub node: u32,
    /// The minor of its `/dev/dri/renderD<N>` node.
    pub render_minor: u32,
    /// The GPU's unique id (`0x...` as `rocm-smi` shows it), when the GPU reports one.
    pub unique_id: Option<u64>,
    /// `bus << 8 | device << 3 | function` of its PCI address.
    pub location_id: Option<u32>,
}

/// The `name value` pairs of a `properties` file; lines of another shape are skipped (a
/// kernel may add keys, and a damaged line must not hide the others).
pub fn parse_properties(text: &str) -> Vec<(&str, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, value) = (words.next()?, words.next()?);
            if words.next().is_some() {
                return None;
            }
            Some((name, value.parse().ok()?))
        })
        .collect()
}

/// The node, if `properties` describes a GPU (`simd_count` above 0 and a render minor).
pub fn gpu_node(node: u32, properties: &str) -> Option<KfdGpuNode> {
    let props = parse_properties(properties);
    let get = |key: &str| props.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if get("simd_count").unwrap_or(0) == 0 {
        return None;
    }
    let render_minor = u32::try_from(get("drm_render_minor")?).ok()?;
    Some(KfdGpuNode {
        node,
        render_minor,
        // 0 is what a GPU without one reports.
        unique_id: get("unique_id").filter(|id| *id != 0),
        location_id: get("location_id").and_then(|l| u32::try_from(l).ok()),
    })
}

/// Every GPU node of the topology under `sysfs_root`, in node order; none without KFD.
pub fn read_gpu_nodes(sysfs_root: &Path) -> Vec<KfdGpuNode> {
    let dir = sysfs_root.join(TOPOLOGY_NODES);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<KfdGpuNode> = entries
        .flatten()
        .filter_map(|e| {
            let node: u32 = e.file_name().to_str()?.parse().ok()?;
            let path = e.path().join("properties");
            let text = crate::limits::read_file_bounded(&path, PROPERTIES_MAX_BYTES).ok()?;
            gpu_node(node, &String::from_utf8_lossy(&text))
        })
        .collect();
    nodes.sort_by_key(|n| n.node);
    nodes
}

/// A real `properties` file is about 1.5 KiB; sysfs pages are 4 KiB.
const PROPERTIES_MAX_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    const GPU: &str = "cpu_cores_count 0\nsimd_count 304\nmem_banks_count 1\n\
        location_id 49408\ndomain 0\ndrm_render_minor 128\nunique_id 17275820082317453185\n";

    #[test]
    fn a_gpu_node_gives_its_render_minor_and_ids() {
        let node = gpu_node(2, GPU).unwrap();
        assert_eq!(node.render_minor, 128);
        assert_eq!(node.unique_id, Some(0xefc0_0ad5_6a17_6781));
        assert_eq!(node.location_id, Some(0xc100));
    }

    #[test]
    fn cpu_nodes_and_damaged_files_are_no_gpu() {
        for text in [
            "cpu_cores_count 64\nsimd_count 0\ndrm_render_minor 0\n",
            "cpu_cores_count 64\n",
            "simd_count 304\n",
            "simd_count 304\ndrm_render_minor -1\n",
            "simd_count 304 extra\ndrm_render_minor 128\n",
            "",
        ] {
            assert_eq!(gpu_node(0, text), None, "{text:?}");
        }
    }

    #[test]
    fn unknown_and_malformed_lines_are_skipped() {
        let props = parse_properties("a 1\nb\nc x\nd 2 3\n e  4 \n");
        assert_eq!(props, [("a", 1), ("e", 4)]);
    }
}
