use std::path::Path;

use super::*;
use crate::inventory::GpuInformation;

const GPU0: &str = "GPU-5e1f0000-0000-4000-8000-000000000000";
const GPU1: &str = "GPU-5e1f0000-0000-4000-8000-000000000001";

/// A procfs and dev root in a temporary directory. Capability nodes are symlinks to
/// `/dev/null` (character device 1:3), so no root is needed: only minor 3 is a valid node.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let tree = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(tree.proc()).unwrap();
        std::fs::create_dir_all(tree.dir.path().join("dev/nvidia-caps")).unwrap();
        tree
    }
    fn proc(&self) -> std::path::PathBuf {
        self.dir.path().join("proc/driver/nvidia")
    }
    fn cap_file(&self, rel: &str, text: &str) {
        let path = self.proc().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    fn node(&self, minor: u32) {
        std::os::unix::fs::symlink(
            "/dev/null",
            self.dir
                .path()
                .join(format!("dev/nvidia-caps/nvidia-cap{minor}")),
        )
        .unwrap();
    }
    fn config(&self) -> DriverConfig {
        DriverConfig {
            dev_root: self.dir.path().join("dev"),
            proc_driver_root: self.proc(),
            ..DriverConfig::default()
        }
    }
}

fn access(minor: u32) -> String {
    format!("DeviceFileMinor: {minor}\nDeviceFileMode: 292\nDeviceFileModify: 1\n")
}

fn gpu(index: u32, uuid: &str, minor: u32) -> Gpu {
    Gpu {
        index,
        info: GpuInformation {
            model: "NVIDIA H100 80GB HBM3".into(),
            uuid: uuid.into(),
            bus_id: format!("0000:1{index}:00.0"),
            minor,
        },
        information_text: String::new(),
        proc_dir: std::path::PathBuf::new(),
        device: None,
        dri: Vec::new(),
        arch: None,
        brand: None,
    }
}

fn nvml_device(index: u32, gi: u32, ci: u32) -> NvmlMigDevice {
    NvmlMigDevice {
        index,
        uuid: format!("MIG-{index}"),
        gpu_instance: gi,
        compute_instance: ci,
    }
}

#[test]
fn device_file_minor_is_parsed() {
    assert_eq!(parse_device_file_minor(&access(12)), Some(12));
    assert_eq!(
        parse_device_file_minor("DeviceFileMode: 292\n DeviceFileMinor :\t7 \n"),
        Some(7)
    );
    assert_eq!(parse_device_file_minor(""), None);
    assert_eq!(parse_device_file_minor("DeviceFileMinor: x\n"), None);
    assert_eq!(parse_device_file_minor("DeviceFileMinor: -1\n"), None);
    assert_eq!(parse_device_file_minor("DeviceFileMode: 3\n"), None);
}

#[test]
fn mig_devices_get_their_gpu_and_compute_instance_caps() {
    let tree = Tree::new();
    // The parent's minor (2), not its index (0), names the capability directory.
    tree.cap_file("capabilities/gpu2/mig/gi1/access", &access(3));
    tree.cap_file("capabilities/gpu2/mig/gi1/ci0/access", &access(3));
    tree.cap_file("capabilities/mig/config", &access(3));
    tree.node(3);
    let nvml = [
        NvmlMigGpu {
            // NVML and procfs may differ in case.
            uuid: GPU0.to_ascii_uppercase(),
            enabled: true,
            // Out of order on purpose, and device 1's files are missing.
            devices: vec![nvml_device(1, 2, 0), nvml_device(0, 1, 0)],
        },
        NvmlMigGpu {
            uuid: GPU1.into(),
            enabled: false,
            devices: Vec::new(),
        },
    ];
    let inv = MigInventory::build(&tree.config(), &[gpu(0, GPU0, 2), gpu(1, GPU1, 3)], &nvml);
    let gpu0 = inv.gpu(0).unwrap();
    assert!(gpu0.enabled);
    assert_eq!(
        gpu0.devices.iter().map(|d| d.index).collect::<Vec<_>>(),
        [0, 1]
    );
    let caps = gpu0.devices[0].caps.as_ref().unwrap();
    assert_eq!(
        caps.iter().map(|c| c.proc_file.clone()).collect::<Vec<_>>(),
        [
            Path::new("capabilities/gpu2/mig/gi1/access"),
            Path::new("capabilities/gpu2/mig/gi1/ci0/access")
        ]
    );
    assert_eq!(caps[0].node.path, Path::new("/dev/nvidia-caps/nvidia-cap3"));
    assert_eq!((caps[0].node.major, caps[0].node.minor), (1, 3));
    assert_eq!(caps[0].text, access(3));
    // A broken MIG device is recorded, not fatal: only a container asking for it fails.
    let err = gpu0.devices[1].caps.as_ref().unwrap_err();
    assert!(
        matches!(err, CapError::Read { path, .. } if path.ends_with("gpu2/mig/gi2/access")),
        "{err}"
    );
    assert_eq!(inv.gpu(1).map(|g| g.enabled), Some(false));
    assert!(inv.gpu(1).unwrap().devices.is_empty());
    assert!(inv.config.is_ok());
    assert!(matches!(inv.monitor, Err(CapError::Read { .. })));
}

#[test]
fn a_gpu_nvml_does_not_list_or_has_mig_off_has_no_mig_devices() {
    let tree = Tree::new();
    let nvml = [NvmlMigGpu {
        uuid: GPU0.into(),
        // Devices reported while MIG is off (stale data) are not offered.
        enabled: false,
        devices: vec![nvml_device(0, 1, 0)],
    }];
    let inv = MigInventory::build(&tree.config(), &[gpu(0, GPU0, 0), gpu(1, GPU1, 1)], &nvml);
    assert_eq!(inv.gpus.len(), 2);
    assert!(inv.gpus.iter().all(|g| !g.enabled && g.devices.is_empty()));
}

#[test]
fn capability_problems_say_what_to_do() {
    let tree = Tree::new();
    tree.cap_file("capabilities/mig/config", "DeviceFileMode: 256\n");
    tree.cap_file("capabilities/mig/monitor", &access(5));
    // A node whose minor is not the one named is no substitute.
    tree.node(5);
    let inv = MigInventory::build(&tree.config(), &[], &[]);
    let err = inv.config.unwrap_err();
    assert!(matches!(err, CapError::NoMinor { .. }), "{err}");
    assert!(err.to_string().contains("DeviceFileMinor"), "{err}");
    let err = inv.monitor.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "its device node {} is missing on the host (or not a character device of minor 5): \
             create it with `nvidia-modprobe -f {}`",
            tree.dir
                .path()
                .join("dev/nvidia-caps/nvidia-cap5")
                .display(),
            tree.proc().join("capabilities/mig/monitor").display()
        )
    );
}

#[test]
fn caps_of_declared_nodes_are_found_from_procfs_alone() {
    let tree = Tree::new();
    tree.node(3);
    tree.cap_file("capabilities/gpu0/mig/gi1/access", &access(3));
    tree.cap_file("capabilities/gpu0/mig/gi1/ci0/access", &access(3));
    // Another MIG device's capability (its node is not declared) and stray names.
    tree.cap_file("capabilities/gpu0/mig/gi2/access", &access(4));
    tree.cap_file("capabilities/gpux/mig/gi1/access", &access(3));
    tree.cap_file("capabilities/mig/config", &access(3));
    let files = |nodes: &[(u32, u32)]| -> Vec<String> {
        caps_of_nodes(&tree.config(), nodes)
            .iter()
            .map(|c| c.proc_file.display().to_string())
            .collect()
    };
    assert_eq!(
        files(&[(1, 3)]),
        [
            "capabilities/gpu0/mig/gi1/access",
            "capabilities/gpu0/mig/gi1/ci0/access"
        ]
    );
    assert!(files(&[(1, 4), (195, 0)]).is_empty());
}
