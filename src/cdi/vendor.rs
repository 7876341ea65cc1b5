//! `gpuhook cdi generate --vendor amd|intel`: a CDI spec of one vendor's GPUs, with the same
//! nodes the hook gives for that vendor's request (see `crate::vendor::plan`): each GPU a
//! device named by its index (as `AMD_VISIBLE_DEVICES`/`INTEL_VISIBLE_DEVICES` number them)
//! holding its DRM card and render nodes, `all` holding every GPU's; for AMD, `/dev/kfd` in
//! the spec's shared edits (every AMD container needs it). No mounts and no hooks: the
//! vendors' user space is the image's.

use super::generate::cdi_node;
use super::spec::{ContainerEdits, Device, Spec, CDI_VERSION};
use crate::vendor::{Vendor, VendorInventory};

/// The spec of `vendor`'s GPUs; `None` when the host has none with usable nodes.
pub fn generate_vendor(inventory: &VendorInventory, vendor: Vendor) -> Option<Spec> {
    let mut devices: Vec<Device> = inventory
        .of(vendor)
        .filter(|g| !g.nodes.is_empty())
        .map(|g| Device {
            name: g.index.to_string(),
            container_edits: ContainerEdits {
                device_nodes: g.nodes.iter().map(cdi_node).collect(),
                ..Default::default()
            },
        })
        .collect();
    if devices.is_empty() {
        return None;
    }
    let all = devices
        .iter()
        .flat_map(|d| d.container_edits.device_nodes.clone())
        .collect();
    devices.push(Device {
        name: "all".into(),
        container_edits: ContainerEdits {
            device_nodes: all,
            ..Default::default()
        },
    });
    let shared = match (vendor, &inventory.kfd) {
        (Vendor::Amd, Some(kfd)) => vec![cdi_node(kfd)],
        _ => Vec::new(),
    };
    Some(Spec {
        cdi_version: CDI_VERSION.into(),
        kind: vendor.cdi_kind().into(),
        devices,
        container_edits: ContainerEdits {
            device_nodes: shared,
            ..Default::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendor::test_tree::tree;

    fn nodes(edits: &ContainerEdits) -> Vec<String> {
        edits
            .device_nodes
            .iter()
            .map(|n| n.path.display().to_string())
            .collect()
    }

    #[test]
    fn one_spec_per_vendor_with_only_its_gpus() {
        let tree = tree();
        let inventory = crate::vendor::read(&tree.sys(), &tree.dev());
        let amd = generate_vendor(&inventory, Vendor::Amd).unwrap();
        assert_eq!(amd.kind, "amd.com/gpu");
        let names: Vec<&str> = amd.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["0", "1", "all"]);
        assert_eq!(
            nodes(&amd.devices[1].container_edits),
            ["/dev/dri/card11", "/dev/dri/renderD141"]
        );
        assert_eq!(nodes(&amd.devices[2].container_edits).len(), 4);
        assert_eq!(nodes(&amd.container_edits), ["/dev/kfd"]);
        let node = &amd.container_edits.device_nodes[0];
        assert_eq!((node.major, node.minor), (Some(238), Some(0)));
        let intel = generate_vendor(&inventory, Vendor::Intel).unwrap();
        assert_eq!(intel.kind, "intel.com/gpu");
        assert_eq!(
            nodes(&intel.devices[0].container_edits),
            ["/dev/dri/card12", "/dev/dri/renderD142"]
        );
        assert!(intel.container_edits.is_empty(), "no kfd for Intel");
        assert!(generate_vendor(&VendorInventory::default(), Vendor::Amd).is_none());
    }
}
