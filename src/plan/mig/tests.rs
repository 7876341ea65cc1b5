//! MIG in the plan, on an inventory whose GPU 0 has MIG devices 0 (GPU instance 1) and 1 (GPU
//! instance 2) and whose GPU 1 has MIG off. No NVML: the MIG inventory is plain data.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::inventory::mig::{CapError, MigCap, MigDevice, MigGpu, MigInventory};
use crate::inventory::{DeviceNode, Inventory};
use crate::plan::{plan, ContainerLayout, DeviceRule, InjectionPlan, MigError, PlanError};
use crate::request::{container_request, ContainerFacts, RequestError, RequestPolicy};

const CAPS_MAJOR: u32 = 508;
const MIG0: &str = "MIG-a1b2c3d4-0000-4000-9000-a00000000000";
const MIG1: &str = "MIG-a1b2c3d4-0000-4000-9000-b00000000000";
/// GPU 1 of the base inventory (`plan::tests`).
const UUID1: &str = "GPU-5e1f0000-0000-4000-8000-000000000001";

fn cap(proc_file: &str, minor: u32) -> MigCap {
    let name = format!("nvidia-caps/nvidia-cap{minor}");
    MigCap {
        node: DeviceNode {
            path: Path::new("/dev").join(&name),
            host_path: Path::new("/sim/dev").join(&name),
            major: CAPS_MAJOR,
            minor,
        },
        proc_file: proc_file.into(),
        text: format!("DeviceFileMinor: {minor}\nDeviceFileMode: 292\nDeviceFileModify: 1\n"),
    }
}

fn mig_device(index: u32, uuid: &str, gi: u32, minors: (u32, u32)) -> MigDevice {
    let gi_dir = format!("capabilities/gpu0/mig/gi{gi}");
    MigDevice {
        index,
        uuid: uuid.into(),
        gpu_instance: gi,
        compute_instance: 0,
        caps: Ok(vec![
            cap(&format!("{gi_dir}/access"), minors.0),
            cap(&format!("{gi_dir}/ci0/access"), minors.1),
        ]),
    }
}

fn mig_inventory() -> MigInventory {
    MigInventory {
        gpus: vec![
            MigGpu {
                gpu: 0,
                enabled: true,
                devices: vec![
                    mig_device(0, MIG0, 1, (12, 13)),
                    mig_device(1, MIG1, 2, (21, 22)),
                ],
            },
            MigGpu {
                gpu: 1,
                enabled: false,
                devices: Vec::new(),
            },
        ],
        config: Ok(cap("capabilities/mig/config", 1)),
        monitor: Ok(cap("capabilities/mig/monitor", 2)),
    }
}

/// The base inventory (`plan::tests`) with the MIG devices above.
pub(crate) fn inventory() -> Inventory {
    Inventory {
        mig: Some(mig_inventory()),
        ..crate::plan::tests::inventory()
    }
}

fn facts(env: &[&str], privileged: bool) -> ContainerFacts {
    ContainerFacts {
        env: env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        privileged,
        ..ContainerFacts::default()
    }
}

fn plan_with(
    env: &[&str],
    privileged: bool,
    inventory: &Inventory,
) -> Result<InjectionPlan, PlanError> {
    let request = container_request(
        &facts(env, privileged),
        &RequestPolicy::from(&Config::default()),
    )
    .unwrap()
    .unwrap();
    plan(&request, inventory, &ContainerLayout::for_rootfs(true))
}

fn plan_for(env: &[&str]) -> Result<InjectionPlan, PlanError> {
    plan_with(env, false, &inventory())
}

fn error(env: &[&str]) -> String {
    plan_for(env).unwrap_err().to_string()
}

fn device_paths(plan: &InjectionPlan) -> Vec<String> {
    plan.devices
        .iter()
        .map(|d| d.path.display().to_string())
        .collect()
}

fn cap_files(plan: &InjectionPlan) -> Vec<PathBuf> {
    plan.proc_driver
        .mig_capabilities
        .iter()
        .map(|(p, _)| p.clone())
        .collect()
}

#[test]
fn a_mig_device_gets_its_parent_gpu_and_exactly_its_two_caps() {
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=0:1"]).unwrap();
    assert_eq!(
        device_paths(&plan),
        [
            "/dev/nvidia0",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia-caps/nvidia-cap21",
            "/dev/nvidia-caps/nvidia-cap22",
        ]
    );
    assert!(plan.device_rules.contains(&DeviceRule {
        major: CAPS_MAJOR,
        minor: 21
    }));
    assert!(plan.device_rules.contains(&DeviceRule {
        major: CAPS_MAJOR,
        minor: 22
    }));
    assert_eq!(plan.device_rules.len(), plan.devices.len());
    // The caps nodes are mounted like every device node.
    let caps_mounts: Vec<_> = plan
        .mounts
        .iter()
        .filter(|m| m.container_path.starts_with("/dev/nvidia-caps"))
        .map(|m| (m.host_path.clone(), m.kind))
        .collect();
    assert_eq!(
        caps_mounts,
        [
            (
                PathBuf::from("/sim/dev/nvidia-caps/nvidia-cap21"),
                crate::plan::MountKind::Device
            ),
            (
                PathBuf::from("/sim/dev/nvidia-caps/nvidia-cap22"),
                crate::plan::MountKind::Device
            ),
        ]
    );
    assert_eq!(plan.gpus, [(0, MIG1.to_string())]);
    // /proc/driver/nvidia/gpus shows the parent GPU; its capability files come along.
    assert_eq!(plan.proc_driver.gpus.len(), 1);
    assert_eq!(plan.proc_driver.gpus[0].0, "0000:10:00.0");
    assert_eq!(
        cap_files(&plan),
        [
            Path::new("capabilities/gpu0/mig/gi2/access"),
            Path::new("capabilities/gpu0/mig/gi2/ci0/access"),
        ]
    );
    assert!(plan.proc_driver.mig_capabilities[0]
        .1
        .starts_with("DeviceFileMinor: 21\n"));
}

#[test]
fn by_uuid_case_insensitively_or_by_unique_prefix() {
    let by_index = plan_for(&["NVIDIA_VISIBLE_DEVICES=0:1"]).unwrap();
    for value in [
        MIG1.to_string(),
        "MIG-A1B2C3D4-0000-4000-9000-B00000000000".to_string(),
        "MIG-a1b2c3d4-0000-4000-9000-b".to_string(),
    ] {
        let env = format!("NVIDIA_VISIBLE_DEVICES={value}");
        assert_eq!(plan_for(&[&env]).unwrap(), by_index, "{value}");
    }
    // Named twice, given once.
    let env = format!("NVIDIA_VISIBLE_DEVICES=0:1,{MIG1}");
    assert_eq!(plan_for(&[&env]).unwrap(), by_index);
}

#[test]
fn several_mig_devices_and_whole_gpus_mix() {
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=0:1,0:0,1"]).unwrap();
    assert_eq!(
        device_paths(&plan),
        [
            "/dev/nvidia0",
            "/dev/nvidia1",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia-caps/nvidia-cap21",
            "/dev/nvidia-caps/nvidia-cap22",
            "/dev/nvidia-caps/nvidia-cap12",
            "/dev/nvidia-caps/nvidia-cap13",
        ]
    );
    assert_eq!(
        plan.gpus,
        [
            (1, UUID1.to_string()),
            (0, MIG1.to_string()),
            (0, MIG0.to_string())
        ]
    );
    assert_eq!(plan.proc_driver.gpus.len(), 2);
}

#[test]
fn whole_gpu_requests_get_no_caps() {
    for value in ["all", "0", "0,1"] {
        let plan = plan_for(&[&format!("NVIDIA_VISIBLE_DEVICES={value}")]).unwrap();
        assert!(
            !device_paths(&plan).iter().any(|p| p.contains("caps")),
            "{value}"
        );
        assert!(plan.proc_driver.mig_capabilities.is_empty(), "{value}");
    }
}

#[test]
fn errors_say_what_exists() {
    let all = format!("{MIG0}, {MIG1}");
    assert_eq!(
        error(&["NVIDIA_VISIBLE_DEVICES=0:5"]),
        format!("MIG device 0:5 requested, GPU 0 has MIG devices 0-1 ({all})")
    );
    assert_eq!(
        error(&["NVIDIA_VISIBLE_DEVICES=1:0"]),
        format!(
            "MIG device 1:0 requested, but MIG is not enabled on GPU 1 ({})",
            UUID1
        )
    );
    assert!(error(&["NVIDIA_VISIBLE_DEVICES=7:0"])
        .starts_with("MIG device 7:0 requested, this host has GPUs 0-1 (GPU-"));
    assert_eq!(
        error(&["NVIDIA_VISIBLE_DEVICES=MIG-ffff"]),
        format!(
            "MIG device MIG-ffff requested, this host has MIG devices 0:0 ({MIG0}), 0:1 ({MIG1})"
        )
    );
    let err = error(&["NVIDIA_VISIBLE_DEVICES=MIG-a1b2"]);
    assert_eq!(
        err,
        format!("MIG device MIG-a1b2 requested: it matches several MIG devices ({all}); give more of the UUID")
    );
    // Index lists with gaps are listed as they are.
    let mut gappy = inventory();
    let mig = gappy.mig.as_mut().unwrap();
    mig.gpus[0].devices[1].index = 3;
    let err = plan_with(&["NVIDIA_VISIBLE_DEVICES=0:1"], false, &gappy)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(&format!("GPU 0 has MIG devices 0, 3 ({all})")),
        "{err}"
    );
}

#[test]
fn mig_uuid_on_a_host_without_mig_devices() {
    let mut inv = inventory();
    let mig = inv.mig.as_mut().unwrap();
    mig.gpus[0].enabled = false;
    mig.gpus[0].devices.clear();
    let err = plan_with(&["NVIDIA_VISIBLE_DEVICES=MIG-ffff"], false, &inv)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("MIG device MIG-ffff requested, this host has no MIG devices"),
        "{err}"
    );
    // Enabled but empty: say how to create them.
    inv.mig.as_mut().unwrap().gpus[0].enabled = true;
    let err = plan_with(&["NVIDIA_VISIBLE_DEVICES=0:0"], false, &inv).unwrap_err();
    assert!(
        matches!(err, PlanError::Mig(MigError::NoDevices { gpu: 0, .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("nvidia-smi mig -i 0 -cgi"),
        "{err}"
    );
}

#[test]
fn a_broken_capability_fails_only_its_own_device() {
    let mut inv = inventory();
    inv.mig.as_mut().unwrap().gpus[0].devices[0].caps = Err(CapError::MissingNode {
        node: "/sim/dev/nvidia-caps/nvidia-cap12".into(),
        minor: 12,
        proc_file: "/sim/proc/driver/nvidia/capabilities/gpu0/mig/gi1/access".into(),
    });
    assert!(plan_with(&["NVIDIA_VISIBLE_DEVICES=0:1"], false, &inv).is_ok());
    let err = plan_with(&["NVIDIA_VISIBLE_DEVICES=0:0"], false, &inv)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("MIG device 0:0 ({MIG0}) requested, but its device node /sim/dev/nvidia-caps/nvidia-cap12 is missing")),
        "{err}"
    );
    assert!(
        err.contains("nvidia-modprobe -f /sim/proc/driver/nvidia/capabilities/gpu0/mig/gi1/access"),
        "{err}"
    );
}

#[test]
fn requirements_hold_for_the_parent_gpu() {
    // GPU 0 is arch 9.0 in the base inventory, GPU 1 is 8.0.
    assert!(plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=0:1",
        "NVIDIA_REQUIRE_ARCH=arch>=9.0"
    ])
    .is_ok());
    let err = error(&[
        "NVIDIA_VISIBLE_DEVICES=0:1",
        "NVIDIA_REQUIRE_ARCH=arch>=9.5",
    ]);
    assert!(err.contains("arch 9.0"), "{err}");
}

#[test]
fn config_and_monitor_are_for_privileged_containers() {
    let env = [
        "NVIDIA_VISIBLE_DEVICES=0:0",
        "NVIDIA_MIG_CONFIG_DEVICES=all",
        "NVIDIA_MIG_MONITOR_DEVICES=all",
    ];
    let plan = plan_with(&env, true, &inventory()).unwrap();
    let paths = device_paths(&plan);
    assert_eq!(
        paths[paths.len() - 4..],
        [
            "/dev/nvidia-caps/nvidia-cap12",
            "/dev/nvidia-caps/nvidia-cap13",
            "/dev/nvidia-caps/nvidia-cap1",
            "/dev/nvidia-caps/nvidia-cap2",
        ]
    );
    assert!(cap_files(&plan).contains(&PathBuf::from("capabilities/mig/config")));
    assert!(cap_files(&plan).contains(&PathBuf::from("capabilities/mig/monitor")));
    // Monitor alone, with whole GPUs.
    let plan = plan_with(
        &[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_MIG_MONITOR_DEVICES=all",
        ],
        true,
        &inventory(),
    )
    .unwrap();
    let caps: Vec<_> = device_paths(&plan)
        .into_iter()
        .filter(|p| p.contains("caps"))
        .collect();
    assert_eq!(caps, ["/dev/nvidia-caps/nvidia-cap2"]);
    // `none` gets no device node at all, capabilities included.
    let plan = plan_with(
        &[
            "NVIDIA_VISIBLE_DEVICES=none",
            "NVIDIA_MIG_CONFIG_DEVICES=all",
        ],
        true,
        &inventory(),
    )
    .unwrap();
    assert!(plan.devices.is_empty());
    // Unprivileged: refused before any plan, naming the variable.
    let err = container_request(
        &facts(&env[..2], false),
        &RequestPolicy::from(&Config::default()),
    )
    .unwrap_err();
    assert!(
        matches!(&err, RequestError::MigUnprivileged { name } if name == "NVIDIA_MIG_CONFIG_DEVICES"),
        "{err}"
    );
}

#[test]
fn a_missing_global_capability_is_named() {
    let mut inv = inventory();
    inv.mig.as_mut().unwrap().config = Err(CapError::Read {
        path: "/sim/proc/driver/nvidia/capabilities/mig/config".into(),
        message: "No such file or directory (os error 2)".into(),
    });
    let err = plan_with(
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_CONFIG_DEVICES=all"],
        true,
        &inv,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(err, "NVIDIA_MIG_CONFIG_DEVICES=all requested, but cannot read /sim/proc/driver/nvidia/capabilities/mig/config: No such file or directory (os error 2)");
}
