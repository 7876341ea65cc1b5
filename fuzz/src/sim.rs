//! A fixed simulated host for the fuzz targets, built from gpuhook's public structs: four GPUs
//! whose UUIDs share prefixes (one without its device node), MIG on two of them (one MIG
//! device with broken capabilities), IMEX channels, and a CDI registry with two specs of one
//! kind (the later overriding a device) and a second kind.

use std::path::{Path, PathBuf};

use gpuhook::catalog::SupportPlace;
use gpuhook::cdi::spec::{ContainerEdits, Device, DeviceNode as CdiNode, Hook, Mount, Spec};
use gpuhook::cdi::Registry;
use gpuhook::inventory::mig::{CapError, MigCap, MigDevice, MigGpu, MigInventory};
use gpuhook::inventory::{
    DeviceNode, DriverLibrary, Gpu, GpuInformation, HostFile, Inventory, SupportFile,
};
use gpuhook::request::DriverCapability;

pub const GPU_UUIDS: [&str; 4] = [
    "GPU-5e1f0000-0000-4000-8000-000000000000",
    "GPU-5e1f0000-0000-4000-8000-000000000001",
    "GPU-5e1f1111-0000-4000-8000-000000000002",
    "GPU-ab000000-0000-4000-8000-000000000003",
];

pub const MIG_UUIDS: [&str; 3] = [
    "MIG-aa110000-0000-4000-9000-000000000000",
    "MIG-aa110000-0000-4000-9000-000000000001",
    "MIG-bb220000-0000-4000-9000-000000000002",
];

pub fn node(name: &str, major: u32, minor: u32) -> DeviceNode {
    DeviceNode {
        path: Path::new("/dev").join(name),
        host_path: Path::new("/sim/dev").join(name),
        major,
        minor,
    }
}

fn gpu(index: u32, arch: &str, brand: &str, has_node: bool) -> Gpu {
    let uuid = GPU_UUIDS[index as usize];
    Gpu {
        index,
        info: GpuInformation {
            model: "NVIDIA H100 80GB HBM3".into(),
            uuid: uuid.into(),
            bus_id: format!("0000:{:02x}:00.0", 0x10 + index),
            minor: index,
        },
        information_text: format!("GPU UUID: {uuid}\n"),
        proc_dir: format!(
            "/sim/proc/driver/nvidia/gpus/0000:{:02x}:00.0",
            0x10 + index
        )
        .into(),
        device: has_node.then(|| node(&format!("nvidia{index}"), 195, index)),
        dri: Vec::new(),
        arch: Some(arch.into()),
        brand: Some(brand.into()),
    }
}

fn cap(proc_file: &str, minor: u32) -> MigCap {
    MigCap {
        node: node(&format!("nvidia-caps/nvidia-cap{minor}"), 508, minor),
        proc_file: proc_file.into(),
        text: format!("DeviceFileMinor: {minor}\n"),
    }
}

fn mig_device(index: u32, uuid: &str, gpu: u32, gi: u32, minors: (u32, u32)) -> MigDevice {
    let dir = format!("capabilities/gpu{gpu}/mig/gi{gi}");
    MigDevice {
        index,
        uuid: uuid.into(),
        gpu_instance: gi,
        compute_instance: 0,
        caps: Ok(vec![
            cap(&format!("{dir}/access"), minors.0),
            cap(&format!("{dir}/ci0/access"), minors.1),
        ]),
    }
}

/// GPU 0: two MIG devices; GPU 1: MIG on, none created; GPU 2: one MIG device whose
/// capability file is broken; GPU 3: MIG off. Config capability present, monitor missing.
pub fn mig_inventory() -> MigInventory {
    let mut broken = mig_device(0, MIG_UUIDS[2], 2, 1, (40, 41));
    broken.caps = Err(CapError::NoMinor {
        path: "/sim/proc/capabilities/gpu2/mig/gi1/access".into(),
    });
    let gpus = vec![
        MigGpu {
            gpu: 0,
            enabled: true,
            devices: vec![
                mig_device(0, MIG_UUIDS[0], 0, 1, (21, 22)),
                mig_device(1, MIG_UUIDS[1], 0, 2, (30, 31)),
            ],
        },
        MigGpu {
            gpu: 1,
            enabled: true,
            devices: vec![],
        },
        MigGpu {
            gpu: 2,
            enabled: true,
            devices: vec![broken],
        },
        MigGpu {
            gpu: 3,
            enabled: false,
            devices: vec![],
        },
    ];
    MigInventory {
        gpus,
        config: Ok(cap("capabilities/mig/config", 1)),
        monitor: Err(CapError::MissingNode {
            node: "/sim/dev/nvidia-caps/nvidia-cap2".into(),
            minor: 2,
            proc_file: "/sim/proc/capabilities/mig/monitor".into(),
        }),
    }
}

fn library(prefix: &'static str, is_64bit: bool) -> DriverLibrary {
    let file_name = format!("{prefix}.580.159.04");
    let dir = if is_64bit { "/sim/lib64" } else { "/sim/lib32" };
    DriverLibrary {
        prefix,
        host_path: Path::new(dir).join(&file_name),
        file_name,
        is_64bit,
        soname: format!("{prefix}.1"),
        cache_flags: if is_64bit { 0x0303 } else { 0x0003 },
        osversion: 0,
    }
}

fn host_file(host: &str, container: &str) -> HostFile {
    HostFile {
        host_path: host.into(),
        container_path: container.into(),
    }
}

/// What the hook's inventory would hold; `mig` only when the request needs it, as
/// `Inventory::read` does, and so for the CUDA version and the GPUs' arch and brand.
pub fn inventory(cuda: bool, details: bool, mig: bool) -> Inventory {
    let mut gpus = vec![
        gpu(0, "9.0", "tesla", true),
        gpu(1, "9.0", "tesla", true),
        gpu(2, "8.6", "geforce", true),
        gpu(3, "7.0", "quadro", false),
    ];
    if !details {
        for g in &mut gpus {
            (g.arch, g.brand) = (None, None);
        }
    }
    Inventory {
        driver_version: "580.159.04".into(),
        cuda_version: cuda.then(|| "13.0".into()),
        gpus,
        mig: mig.then(mig_inventory),
        control_devices: [
            "nvidiactl",
            "nvidia-uvm",
            "nvidia-uvm-tools",
            "nvidia-modeset",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| node(n, 195, 255 - i as u32))
        .collect(),
        libraries: vec![
            library("libnvidia-ml.so", true),
            library("libcuda.so", true),
            library("libcuda.so", false),
            library("libnvidia-glcore.so", true),
            library("libnvcuvid.so", true),
        ],
        binaries: vec![("nvidia-smi", PathBuf::from("/sim/bin/nvidia-smi"))],
        firmware: vec![host_file(
            "/sim/fw/gsp_ga10x.bin",
            "/lib/firmware/nvidia/580.159.04/gsp_ga10x.bin",
        )],
        ipc: vec![host_file(
            "/sim/run/nvidia-persistenced/socket",
            "/run/nvidia-persistenced/socket",
        )],
        mps_pipe_dir: Some(host_file("/sim/tmp/nvidia-mps", "/tmp/nvidia-mps")),
        imex_channels: [0, 1, 5]
            .into_iter()
            .map(|c| {
                (
                    c,
                    node(&format!("nvidia-caps-imex-channels/channel{c}"), 234, c),
                )
            })
            .collect(),
        support_files: vec![SupportFile {
            capability: DriverCapability::Graphics,
            host_path: "/sim/share/vulkan/icd.d/nvidia_icd.json".into(),
            place: SupportPlace::Absolute("/usr/share/vulkan/icd.d/nvidia_icd.json".into()),
        }],
        proc_version: "NVRM version: X  580.159.04  Release\n".into(),
        proc_params: "ModifyDeviceFiles: 1\n".into(),
        kernel_has_proc_driver_nvidia: true,
        unusable_gpus: Vec::new(),
        skipped_binaries: Vec::new(),
    }
}

/// Every device node the simulated host has (what a plan may hand out).
pub fn host_nodes() -> Vec<DeviceNode> {
    let inventory = inventory(false, false, true);
    let mig = mig_inventory();
    let mut nodes: Vec<DeviceNode> = inventory
        .gpus
        .iter()
        .filter_map(|g| g.device.clone())
        .collect();
    nodes.extend(inventory.control_devices);
    nodes.extend(inventory.imex_channels.into_iter().map(|(_, n)| n));
    for device in mig.gpus.iter().flat_map(|g| &g.devices) {
        nodes.extend(device.caps.iter().flatten().map(|c| c.node.clone()));
    }
    nodes.extend(mig.config.iter().map(|c| c.node.clone()));
    nodes
}

fn cdi_device(name: &str, path: &str, minor: i64) -> Device {
    Device {
        name: name.into(),
        container_edits: ContainerEdits {
            device_nodes: vec![cdi_node(path, minor)],
            ..Default::default()
        },
    }
}

pub fn cdi_node(path: &str, minor: i64) -> CdiNode {
    CdiNode {
        path: path.into(),
        host_path: None,
        kind: Some("c".into()),
        major: Some(195),
        minor: Some(minor),
        permissions: Some("rw".into()),
    }
}

/// Edits shared by every device of a spec: env, a library mount and a hook.
pub fn shared_edits(tag: &str) -> ContainerEdits {
    ContainerEdits {
        env: vec![
            format!("CDI_SPEC={tag}"),
            "NVIDIA_VISIBLE_DEVICES=from-cdi".into(),
        ],
        device_nodes: vec![cdi_node("/dev/nvidiactl", 255)],
        mounts: vec![Mount {
            host_path: "/sim/lib64/libcuda.so.580.159.04".into(),
            container_path: "/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04".into(),
            options: vec!["ro".into(), "nosuid".into(), "nodev".into(), "bind".into()],
        }],
        hooks: vec![Hook {
            hook_name: "createRuntime".into(),
            path: "/usr/bin/gpuhook".into(),
            args: vec!["gpuhook".into(), "cdi-hook".into(), tag.into()],
            env: vec![],
        }],
    }
}

/// `nvidia.com/gpu` = 0, 1, all (a later spec overrides 1); `example.com/dev` = x.
pub fn registry() -> Registry {
    let spec = |kind: &str, tag: &str, devices: Vec<Device>| Spec {
        cdi_version: "0.5.0".into(),
        kind: kind.into(),
        devices,
        container_edits: shared_edits(tag),
    };
    let mut all = cdi_device("all", "/dev/nvidia0", 0);
    all.container_edits
        .device_nodes
        .push(cdi_node("/dev/nvidia1", 1));
    let mut registry = Registry::default();
    registry.specs = vec![
        (
            "/etc/cdi/a.json".into(),
            spec(
                "nvidia.com/gpu",
                "a",
                vec![
                    cdi_device("0", "/dev/nvidia0", 0),
                    cdi_device("1", "/dev/nvidia1", 1),
                    all,
                ],
            ),
        ),
        (
            "/var/run/cdi/b.json".into(),
            spec(
                "nvidia.com/gpu",
                "b",
                vec![cdi_device("1", "/dev/nvidia1b", 11)],
            ),
        ),
        (
            "/var/run/cdi/c.yaml".into(),
            spec("example.com/dev", "c", vec![cdi_device("x", "/dev/x", 7)]),
        ),
    ];
    registry
}
