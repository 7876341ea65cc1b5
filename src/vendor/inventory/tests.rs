use super::*;
use crate::vendor::test_tree::{tree, AMD_IDS};

fn names(gpu: &VendorGpu) -> Vec<String> {
    gpu.nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect()
}

#[test]
fn amd_and_intel_gpus_in_bus_order_with_their_nodes() {
    let tree = tree();
    let inv = read(&tree.sys(), &tree.dev());
    let amd: Vec<&VendorGpu> = inv.of(Vendor::Amd).collect();
    assert_eq!(
        amd.len(),
        2,
        "the audio function and NVIDIA's GPU are no AMD GPU"
    );
    assert_eq!((amd[0].index, amd[0].bus_id.as_str()), (0, "0000:c1:00.0"));
    assert_eq!(names(amd[0]), ["/dev/dri/card10", "/dev/dri/renderD140"]);
    assert_eq!(amd[0].unique_id, Some(AMD_IDS[0]));
    assert_eq!(amd[0].kfd_node, Some(1), "node 0 is the CPU");
    assert_eq!((amd[1].index, amd[1].unique_id), (1, Some(AMD_IDS[1])));
    assert_eq!(amd[1].render_minor(), Some(141));
    let intel: Vec<&VendorGpu> = inv.of(Vendor::Intel).collect();
    let drivers: Vec<&str> = intel.iter().map(|g| g.driver.as_str()).collect();
    assert_eq!(drivers, ["i915", "xe"]);
    assert_eq!(names(intel[1]), ["/dev/dri/card13", "/dev/dri/renderD143"]);
    assert_eq!(intel[0].unique_id, None);
    let kfd = inv.kfd.unwrap();
    assert_eq!((kfd.major, kfd.minor), (238, 0));
}

#[test]
fn a_host_without_sysfs_has_no_vendor_gpu() {
    let inv = read(Path::new("/nonexistent"), Path::new("/nonexistent"));
    assert_eq!(inv, VendorInventory::default());
}

#[test]
fn odd_names_in_sysfs_are_ignored() {
    let tree = tree();
    let devices = tree.sys().join("bus/pci/devices");
    // An AMD display device under a name of another shape, and one whose `driver` is no link.
    for (name, link) in [
        ("0000:C3:00.0", true),
        ("..", false),
        ("0000:c4:00.0", false),
    ] {
        let dir = devices.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vendor"), "0x1002\n").unwrap();
        std::fs::write(dir.join("class"), "0x030000\n").unwrap();
        match link {
            true => std::os::unix::fs::symlink("../../drivers/amdgpu", dir.join("driver")).unwrap(),
            false => std::fs::create_dir_all(dir.join("driver/amdgpu")).unwrap(),
        }
    }
    // A DRM entry that is no node name.
    std::fs::create_dir_all(devices.join("0000:c1:00.0/drm/cardX")).unwrap();
    let inv = read(&tree.sys(), &tree.dev());
    let amd: Vec<&str> = inv.of(Vendor::Amd).map(|g| g.bus_id.as_str()).collect();
    assert_eq!(amd, ["0000:c1:00.0", "0000:c2:00.0"]);
    assert_eq!(names(inv.of(Vendor::Amd).next().unwrap()).len(), 2);
}

#[test]
fn bus_ids_have_the_kernels_shape() {
    for ok in ["0000:c1:00.0", "0001:00:02.7"] {
        assert!(is_bus_id(ok), "{ok}");
    }
    for bad in [
        "0000:C1:00.0",
        "0000:c1:00",
        "../../../etc",
        "0000:c1:00.0/x",
        "0000-c1:00.0",
    ] {
        assert!(!is_bus_id(bad), "{bad}");
    }
}
