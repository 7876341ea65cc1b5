//! `cdi generate` on synthetic inventories (no driver, no NVML).

use super::*;
use crate::cdi::registry::read_spec;
use crate::request::DriverCapability;

fn options(naming: DeviceNameStrategy) -> GenerateOptions {
    GenerateOptions {
        kind: "nvidia.com/gpu".into(),
        naming,
        capabilities: DriverCapability::ALL.into_iter().collect(),
        hook_path: "/usr/bin/gpuhook".into(),
        hook_env: vec![],
    }
}

fn names(spec: &Spec) -> Vec<&str> {
    spec.devices.iter().map(|d| d.name.as_str()).collect()
}

#[test]
fn one_device_per_gpu_by_each_naming_strategy_plus_all() {
    let inventory = crate::plan::tests::inventory();
    let uuid0 = inventory.gpus[0].info.uuid.clone();
    let uuid1 = inventory.gpus[1].info.uuid.clone();
    let spec = generate(&inventory, &options(DeviceNameStrategy::Index))
        .unwrap()
        .spec;
    assert_eq!(names(&spec), ["0", "1", "all"]);
    let spec = generate(&inventory, &options(DeviceNameStrategy::Uuid))
        .unwrap()
        .spec;
    assert_eq!(names(&spec), [uuid0.as_str(), uuid1.as_str(), "all"]);
    let spec = generate(&inventory, &options(DeviceNameStrategy::Both))
        .unwrap()
        .spec;
    assert_eq!(
        names(&spec),
        ["0", uuid0.as_str(), "1", uuid1.as_str(), "all"]
    );

    let node_paths = |d: &Device| -> Vec<String> {
        d.container_edits
            .device_nodes
            .iter()
            .map(|n| n.path.display().to_string())
            .collect()
    };
    // With graphics and display (all capabilities), each GPU's DRM nodes come with it.
    assert_eq!(
        node_paths(&spec.devices[2]),
        ["/dev/nvidia1", "/dev/dri/card2", "/dev/dri/renderD129"]
    );
    assert_eq!(
        node_paths(&spec.devices[4]),
        [
            "/dev/nvidia0",
            "/dev/dri/card1",
            "/dev/dri/renderD128",
            "/dev/nvidia1",
            "/dev/dri/card2",
            "/dev/dri/renderD129"
        ]
    );
    let gpu1 = &spec.devices[2].container_edits.device_nodes[0];
    assert_eq!(
        (gpu1.host_path.as_deref(), gpu1.major, gpu1.minor),
        (
            Some(std::path::Path::new("/sim/dev/nvidia1")),
            Some(195),
            Some(1)
        )
    );
}

#[test]
fn shared_edits_carry_control_nodes_files_and_the_gpuhook_hooks() {
    let inventory = crate::plan::tests::inventory();
    let spec = generate(&inventory, &options(DeviceNameStrategy::Index))
        .unwrap()
        .spec;
    assert_eq!(spec.cdi_version, "0.5.0");
    let edits = &spec.container_edits;
    assert_eq!(edits.env, ["NVIDIA_VISIBLE_DEVICES=void"]);
    let nodes: Vec<_> = edits
        .device_nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect();
    assert_eq!(
        nodes,
        ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-modeset"]
    );
    let mount = |target: &str| {
        edits
            .mounts
            .iter()
            .find(|m| m.container_path == std::path::Path::new(target))
    };
    let libcuda = mount("/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04").unwrap();
    assert_eq!(libcuda.options, ["ro", "nosuid", "nodev", "bind"]);
    assert!(
        mount("/usr/lib/i386-linux-gnu/libcuda.so.580.159.04").is_some(),
        "compat32 with all"
    );
    assert!(mount("/usr/bin/nvidia-smi").is_some());
    assert!(mount("/lib/firmware/nvidia/580.159.04/gsp_ga10x.bin").is_some());
    let socket = mount("/run/nvidia-persistenced/socket").unwrap();
    assert_eq!(socket.options, ["nosuid", "nodev", "noexec", "bind"]);
    assert!(mount("/dev/nvidia0").is_none(), "GPU nodes are per device");

    let args: Vec<Vec<&str>> = edits
        .hooks
        .iter()
        .map(|h| h.args.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(args[0], ["gpuhook", "cdi-hook", "mask-proc-driver"]);
    assert_eq!(
        args[1],
        [
            "gpuhook",
            "cdi-hook",
            "update-ldcache",
            "--folder",
            "/usr/lib/x86_64-linux-gnu",
            "--folder",
            "/usr/lib/i386-linux-gnu"
        ]
    );
    assert!(edits.hooks.iter().all(|h| h.hook_name == "createRuntime"));
}

#[test]
fn dri_nodes_come_with_graphics_or_display_only() {
    let inventory = crate::plan::tests::inventory();
    let mut opts = options(DeviceNameStrategy::Index);
    opts.capabilities = [DriverCapability::Compute, DriverCapability::Utility]
        .into_iter()
        .collect();
    let spec = generate(&inventory, &opts).unwrap().spec;
    for device in &spec.devices {
        assert!(
            node_paths(device)
                .iter()
                .all(|p| !p.starts_with("/dev/dri/")),
            "{}: {:?}",
            device.name,
            node_paths(device)
        );
    }
    opts.capabilities = [DriverCapability::Display].into_iter().collect();
    let spec = generate(&inventory, &opts).unwrap().spec;
    assert_eq!(
        node_paths(find(&spec, "0")),
        ["/dev/nvidia0", "/dev/dri/card1", "/dev/dri/renderD128"]
    );
    let card = &find(&spec, "0").container_edits.device_nodes[1];
    assert_eq!((card.major, card.minor), (Some(226), Some(1)));
}

#[test]
fn capabilities_narrow_the_files() {
    let inventory = crate::plan::tests::inventory();
    let mut opts = options(DeviceNameStrategy::Index);
    opts.capabilities = [DriverCapability::Utility].into_iter().collect();
    let spec = generate(&inventory, &opts).unwrap().spec;
    let targets: Vec<_> = spec
        .container_edits
        .mounts
        .iter()
        .map(|m| m.container_path.display().to_string())
        .filter(|t| t.starts_with("/usr/lib"))
        .collect();
    assert_eq!(
        targets,
        ["/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.159.04"]
    );
}

#[test]
fn json_and_yaml_round_trip() {
    let inventory = crate::plan::tests::inventory();
    let spec = generate(&inventory, &options(DeviceNameStrategy::Both))
        .unwrap()
        .spec;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("gpu.json");
    std::fs::write(&json, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    assert_eq!(read_spec(&json).unwrap(), spec);
    let yaml = dir.path().join("gpu.yaml");
    std::fs::write(&yaml, serde_norway::to_string(&spec).unwrap()).unwrap();
    assert_eq!(read_spec(&yaml).unwrap(), spec);
}

fn node_paths(device: &Device) -> Vec<String> {
    device
        .container_edits
        .device_nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect()
}

fn find<'a>(spec: &'a Spec, name: &str) -> &'a Device {
    spec.devices
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no device {name} in {:?}", names(spec)))
}

const MIG0: &str = "MIG-a1b2c3d4-0000-4000-9000-a00000000000";
const MIG1: &str = "MIG-a1b2c3d4-0000-4000-9000-b00000000000";

#[test]
fn mig_devices_are_named_as_the_incumbent_names_them() {
    let inventory = crate::plan::mig::tests::inventory();
    let spec = generate(&inventory, &options(DeviceNameStrategy::Index))
        .unwrap()
        .spec;
    assert_eq!(names(&spec), ["0", "1", "0:0", "0:1", "all"]);
    let spec = generate(&inventory, &options(DeviceNameStrategy::Uuid))
        .unwrap()
        .spec;
    assert_eq!(&names(&spec)[2..4], [MIG0, MIG1]);
    let spec = generate(&inventory, &options(DeviceNameStrategy::Both))
        .unwrap()
        .spec;
    assert_eq!(&names(&spec)[4..8], ["0:0", MIG0, "0:1", MIG1]);
}

#[test]
fn a_mig_device_gets_its_parent_node_and_its_own_capability_nodes_only() {
    let inventory = crate::plan::mig::tests::inventory();
    let spec = generate(&inventory, &options(DeviceNameStrategy::Index))
        .unwrap()
        .spec;
    // GPU instance 1's and its compute instance's nodes (minors 12, 13); never the other MIG
    // device's (21, 22), nor the host-wide config/monitor ones, nor the control nodes (shared).
    assert_eq!(
        node_paths(find(&spec, "0:0")),
        [
            "/dev/nvidia0",
            "/dev/nvidia-caps/nvidia-cap12",
            "/dev/nvidia-caps/nvidia-cap13"
        ]
    );
    assert_eq!(
        node_paths(find(&spec, "0:1")),
        [
            "/dev/nvidia0",
            "/dev/nvidia-caps/nvidia-cap21",
            "/dev/nvidia-caps/nvidia-cap22"
        ]
    );
    let cap = &find(&spec, "0:1").container_edits.device_nodes[1];
    assert_eq!(
        (cap.host_path.as_deref(), cap.major, cap.minor),
        (
            Some(std::path::Path::new("/sim/dev/nvidia-caps/nvidia-cap21")),
            Some(508),
            Some(21)
        )
    );
    assert!(
        node_paths(find(&spec, "all"))
            .iter()
            .all(|p| !p.starts_with("/dev/nvidia-caps/")),
        "all is the whole GPUs, without MIG capabilities"
    );
}

#[test]
fn a_mig_device_without_its_capability_node_is_left_out_with_the_reason() {
    let mut inventory = crate::plan::mig::tests::inventory();
    let mig = inventory.mig.as_mut().unwrap();
    mig.gpus[0].devices[1].caps = Err(crate::inventory::mig::CapError::NoMinor {
        path: "/sim/proc/capabilities/gpu0/mig/gi2/access".into(),
    });
    let generated = generate(&inventory, &options(DeviceNameStrategy::Index)).unwrap();
    assert_eq!(names(&generated.spec), ["0", "1", "0:0", "all"]);
    assert_eq!(generated.left_out.len(), 1);
    assert!(
        generated.left_out[0].starts_with(&format!("MIG device 0:1 ({MIG1}): "))
            && generated.left_out[0].contains("gi2/access has no `DeviceFileMinor"),
        "{}",
        generated.left_out[0]
    );
}

#[test]
fn without_a_mig_inventory_there_are_no_mig_devices() {
    let spec = generate(
        &crate::plan::tests::inventory(),
        &options(DeviceNameStrategy::Both),
    )
    .unwrap()
    .spec;
    assert!(names(&spec)
        .iter()
        .all(|n| !n.contains(':') && !n.starts_with("MIG-")));
}

#[test]
fn imex_channels_are_a_spec_of_their_own_kind() {
    let inventory = crate::plan::tests::inventory();
    let spec = generate_imex_channels(&inventory, IMEX_CHANNEL_KIND).unwrap();
    assert_eq!(spec.kind, "nvidia.com/imex-channel");
    assert_eq!(names(&spec), ["0", "1", "all"]);
    assert_eq!(
        node_paths(find(&spec, "1")),
        ["/dev/nvidia-caps-imex-channels/channel1"]
    );
    let channel1 = &find(&spec, "1").container_edits.device_nodes[0];
    assert_eq!(
        (channel1.major, channel1.minor, channel1.kind.as_deref()),
        (Some(234), Some(1), Some("c"))
    );
    assert_eq!(
        node_paths(find(&spec, "all")),
        [
            "/dev/nvidia-caps-imex-channels/channel0",
            "/dev/nvidia-caps-imex-channels/channel1"
        ]
    );
    assert_eq!(spec.container_edits.env, ["NVIDIA_VISIBLE_DEVICES=void"]);
    assert!(spec.container_edits.mounts.is_empty() && spec.container_edits.hooks.is_empty());

    let none = Inventory {
        imex_channels: Vec::new(),
        ..inventory
    };
    assert_eq!(generate_imex_channels(&none, IMEX_CHANNEL_KIND), None);
}
