use std::path::{Path, PathBuf};

use super::*;
use crate::catalog::SupportPlace;
use crate::config::Config;
use crate::inventory::{DriverLibrary, GpuInformation, HostFile, SupportFile};
use crate::request::{container_request, ContainerFacts, RequestPolicy};

const UUID0: &str = "GPU-5e1f0000-0000-4000-8000-000000000000";
const UUID1: &str = "GPU-5e1f0000-0000-4000-8000-000000000001";

fn node(name: &str, major: u32, minor: u32) -> DeviceNode {
    DeviceNode {
        path: Path::new("/dev").join(name),
        host_path: Path::new("/sim/dev").join(name),
        major,
        minor,
    }
}

fn gpu(index: u32, uuid: &str, arch: &str) -> Gpu {
    Gpu {
        index,
        info: GpuInformation {
            model: "NVIDIA H100 80GB HBM3".into(),
            uuid: uuid.into(),
            bus_id: format!("0000:1{index}:00.0"),
            minor: index,
        },
        information_text: format!("GPU UUID: {uuid}\n"),
        proc_dir: format!("/sim/proc/driver/nvidia/gpus/0000:1{index}:00.0").into(),
        device: Some(node(&format!("nvidia{index}"), 195, index)),
        dri: vec![
            node(&format!("dri/card{}", index + 1), 226, index + 1),
            node(&format!("dri/renderD{}", 128 + index), 226, 128 + index),
        ],
        arch: Some(arch.into()),
        brand: Some("tesla".into()),
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

pub(crate) fn inventory() -> Inventory {
    Inventory {
        driver_version: "580.159.04".into(),
        cuda_version: Some("13.0".into()),
        gpus: vec![gpu(0, UUID0, "9.0"), gpu(1, UUID1, "8.0")],
        unusable_gpus: Vec::new(),
        mig: None,
        control_devices: vec![
            node("nvidiactl", 195, 255),
            node("nvidia-uvm", 510, 0),
            node("nvidia-modeset", 195, 254),
        ],
        libraries: vec![
            library("libnvidia-ml.so", true),
            library("libcuda.so", true),
            library("libcuda.so", false),
            library("libnvidia-glcore.so", true),
            library("libnvcuvid.so", true),
        ],
        binaries: vec![
            ("nvidia-smi", PathBuf::from("/sim/bin/nvidia-smi")),
            (
                "nvidia-cuda-mps-control",
                PathBuf::from("/sim/bin/nvidia-cuda-mps-control"),
            ),
        ],
        skipped_binaries: Vec::new(),
        firmware: vec![HostFile {
            host_path: "/sim/fw/gsp_ga10x.bin".into(),
            container_path: "/lib/firmware/nvidia/580.159.04/gsp_ga10x.bin".into(),
        }],
        ipc: vec![HostFile {
            host_path: "/sim/run/nvidia-persistenced/socket".into(),
            container_path: "/run/nvidia-persistenced/socket".into(),
        }],
        mps_pipe_dir: Some(HostFile {
            host_path: "/sim/tmp/nvidia-mps".into(),
            container_path: "/tmp/nvidia-mps".into(),
        }),
        imex_channels: vec![
            (0, node("nvidia-caps-imex-channels/channel0", 234, 0)),
            (1, node("nvidia-caps-imex-channels/channel1", 234, 1)),
        ],
        support_files: vec![
            SupportFile {
                capability: DriverCapability::Graphics,
                host_path: "/sim/share/vulkan/icd.d/nvidia_icd.json".into(),
                place: SupportPlace::Absolute("/usr/share/vulkan/icd.d/nvidia_icd.json".into()),
            },
            SupportFile {
                capability: DriverCapability::Graphics,
                host_path: "/sim/lib/gbm/nvidia-drm_gbm.so".into(),
                place: SupportPlace::LibDir("gbm/nvidia-drm_gbm.so".into()),
            },
            SupportFile {
                capability: DriverCapability::Display,
                host_path: "/sim/xorg/drivers/nvidia_drv.so".into(),
                place: SupportPlace::XorgModules("drivers/nvidia_drv.so".into()),
            },
        ],
        proc_version: "NVRM version: X  580.159.04  Release\n".into(),
        proc_params: "ModifyDeviceFiles: 1\n".into(),
        kernel_has_proc_driver_nvidia: true,
    }
}

pub(crate) fn debian() -> ContainerLayout {
    ContainerLayout::for_rootfs(true)
}

pub(crate) fn request(env: &[&str]) -> ContainerRequest {
    let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": env},
    }))
    .unwrap();
    container_request(
        &ContainerFacts::from_spec(&spec),
        &RequestPolicy::from(&Config::default()),
    )
    .unwrap()
    .unwrap()
}

fn plan_for(env: &[&str]) -> Result<InjectionPlan, PlanError> {
    plan(&request(env), &inventory(), &debian())
}

fn targets(plan: &InjectionPlan, kind: MountKind) -> Vec<String> {
    plan.mounts
        .iter()
        .filter(|m| m.kind == kind)
        .map(|m| m.container_path.display().to_string())
        .collect()
}

#[test]
fn all_gpus_with_default_capabilities() {
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=all"]).unwrap();
    assert_eq!(
        plan.gpus,
        vec![(0, UUID0.to_string()), (1, UUID1.to_string())]
    );
    assert_eq!(
        targets(&plan, MountKind::Device),
        [
            "/dev/nvidia0",
            "/dev/nvidia1",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm"
        ]
    );
    assert_eq!(
        plan.device_rules,
        vec![
            DeviceRule {
                major: 195,
                minor: 0
            },
            DeviceRule {
                major: 195,
                minor: 1
            },
            DeviceRule {
                major: 195,
                minor: 255
            },
            DeviceRule {
                major: 510,
                minor: 0
            },
        ]
    );
    assert_eq!(
        targets(&plan, MountKind::File),
        [
            "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.159.04",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04",
            "/usr/bin/nvidia-smi",
            "/usr/bin/nvidia-cuda-mps-control",
            "/lib/firmware/nvidia/580.159.04/gsp_ga10x.bin",
        ]
    );
    assert_eq!(
        targets(&plan, MountKind::Ipc),
        ["/run/nvidia-persistenced/socket", "/tmp/nvidia-mps"]
    );
    assert_eq!(
        plan.ldcache_dirs,
        vec![PathBuf::from("/usr/lib/x86_64-linux-gnu")]
    );
    assert_eq!(plan.proc_driver.gpus.len(), 2);
    assert!(plan.proc_driver.params.contains("ModifyDeviceFiles: 0"));
}

#[test]
fn one_gpu_by_index_shows_only_that_gpu() {
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=1"]).unwrap();
    assert_eq!(plan.gpus, vec![(1, UUID1.to_string())]);
    assert_eq!(
        targets(&plan, MountKind::Device),
        ["/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"]
    );
    assert_eq!(
        plan.proc_driver.gpus,
        vec![(
            "0000:11:00.0".to_string(),
            PathBuf::from("/sim/proc/driver/nvidia/gpus/0000:11:00.0")
        )]
    );
}

#[test]
fn gpus_by_uuid_and_unique_prefix() {
    let plan = plan_for(&[&format!("NVIDIA_VISIBLE_DEVICES={UUID1}")]).unwrap();
    assert_eq!(plan.gpus, vec![(1, UUID1.to_string())]);
    let upper = format!("GPU-{}", UUID0["GPU-".len()..].to_uppercase());
    let plan = plan_for(&[&format!("NVIDIA_VISIBLE_DEVICES={upper}")]).unwrap();
    assert_eq!(
        plan.gpus,
        vec![(0, UUID0.to_string())],
        "UUIDs compare without case"
    );
    let prefix = &UUID1[..UUID1.len() - 1];
    let plan = plan_for(&[&format!("NVIDIA_VISIBLE_DEVICES={prefix}1,0")]).unwrap();
    assert_eq!(plan.gpus.len(), 2);
    let plan =
        plan_for(&["NVIDIA_VISIBLE_DEVICES=1,GPU-5e1f0000-0000-4000-8000-000000000001"]).unwrap();
    assert_eq!(
        plan.gpus,
        vec![(1, UUID1.to_string())],
        "same GPU twice is one GPU"
    );
}

#[test]
fn ambiguous_uuid_prefix_is_refused() {
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=GPU-5e1f"]).unwrap_err();
    assert!(matches!(err, PlanError::AmbiguousUuid { .. }), "{err}");
    assert!(err.to_string().contains(UUID0) && err.to_string().contains(UUID1));
}

#[test]
fn unknown_gpus_are_clear_errors() {
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=3"])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("GPU 3 requested, this host has GPUs 0-1"),
        "{err}"
    );
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=GPU-ffff"])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("GPU GPU-ffff requested, this host has GPUs 0-1"),
        "{err}"
    );
    let mut none = inventory();
    none.gpus.clear();
    let err = plan(&request(&["NVIDIA_VISIBLE_DEVICES=0"]), &none, &debian()).unwrap_err();
    assert_eq!(err.to_string(), "GPU 0 requested, this host has no GPUs");
    // MIG requests are planned only with the MIG inventory read (see plan/mig/tests.rs).
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=0:1"]).unwrap_err();
    assert!(
        matches!(err, PlanError::Mig(MigError::NotEnumerated { .. })),
        "{err}"
    );
}

#[test]
fn missing_device_node_is_named() {
    let mut inv = inventory();
    inv.gpus[1].device = None;
    let err = plan(&request(&["NVIDIA_VISIBLE_DEVICES=all"]), &inv, &debian()).unwrap_err();
    assert!(err.to_string().contains("/dev/nvidia1"), "{err}");
    assert!(plan(&request(&["NVIDIA_VISIBLE_DEVICES=0"]), &inv, &debian()).is_ok());
}

#[test]
fn none_gives_driver_files_but_no_device() {
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=none"]).unwrap();
    assert!(plan.gpus.is_empty());
    assert!(targets(&plan, MountKind::Device).is_empty());
    assert!(plan.device_rules.is_empty());
    assert!(plan.proc_driver.gpus.is_empty());
    assert!(targets(&plan, MountKind::File)
        .contains(&"/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04".to_string()));
    // Not even the IMEX channels asked for (found by the request_plan fuzz target).
    for imex in ["all", "0,1", "7"] {
        let env = [
            "NVIDIA_VISIBLE_DEVICES=none".to_string(),
            format!("NVIDIA_IMEX_CHANNELS={imex}"),
        ];
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let plan = plan_for(&env).unwrap();
        assert!(
            plan.devices.is_empty() && plan.device_rules.is_empty(),
            "{imex}"
        );
    }
}

#[test]
fn utility_alone_gets_nvidia_smi_but_no_libcuda() {
    let plan = plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=utility",
    ])
    .unwrap();
    let files = targets(&plan, MountKind::File);
    assert!(
        files.contains(&"/usr/bin/nvidia-smi".to_string()),
        "{files:?}"
    );
    assert!(files.contains(&"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.159.04".to_string()));
    assert!(!files.iter().any(|f| f.contains("libcuda")), "{files:?}");
    assert!(!files.iter().any(|f| f.contains("mps")), "{files:?}");
}

/// As libnvidia-container: the uvm nodes with compute, nvidia-modeset with display; the
/// persistenced socket with utility, fabric manager and MPS with compute.
#[test]
fn control_devices_and_endpoints_come_with_their_capability() {
    let with = |caps: &str| {
        let plan = plan_for(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            &format!("NVIDIA_DRIVER_CAPABILITIES={caps}"),
        ])
        .unwrap();
        (
            targets(&plan, MountKind::Device),
            targets(&plan, MountKind::Ipc),
        )
    };
    let (devices, ipc) = with("utility");
    assert_eq!(devices, ["/dev/nvidia0", "/dev/nvidiactl"]);
    assert_eq!(ipc, ["/run/nvidia-persistenced/socket"]);
    let (devices, ipc) = with("compute");
    assert_eq!(
        devices,
        ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"]
    );
    assert_eq!(ipc, ["/tmp/nvidia-mps"]);
    let (devices, ipc) = with("display");
    assert_eq!(
        devices,
        [
            "/dev/nvidia0",
            "/dev/nvidiactl",
            "/dev/nvidia-modeset",
            "/dev/dri/card1",
            "/dev/dri/renderD128"
        ]
    );
    assert!(ipc.is_empty(), "{ipc:?}");
}

#[test]
fn graphics_and_display_give_the_selected_gpus_dri_nodes_only() {
    let plan = |env: &[&str]| plan_for(env).unwrap();
    let nodes = |plan: &InjectionPlan| -> Vec<String> {
        plan.devices
            .iter()
            .map(|d| d.path.display().to_string())
            .filter(|p| p.starts_with("/dev/dri/"))
            .collect()
    };
    for caps in ["graphics", "display", "all"] {
        let env = format!("NVIDIA_DRIVER_CAPABILITIES={caps}");
        let one = plan(&["NVIDIA_VISIBLE_DEVICES=1", &env]);
        assert_eq!(
            nodes(&one),
            ["/dev/dri/card2", "/dev/dri/renderD129"],
            "{caps}"
        );
        // Allowed in the device cgroup like every other node.
        assert!(one.device_rules.contains(&DeviceRule {
            major: 226,
            minor: 129
        }));
        let both = plan(&["NVIDIA_VISIBLE_DEVICES=all", &env]);
        assert_eq!(nodes(&both).len(), 4, "{caps}");
        assert!(nodes(&plan(&["NVIDIA_VISIBLE_DEVICES=none", &env])).is_empty());
    }
    for caps in ["compute,utility", "video,compat32"] {
        let env = format!("NVIDIA_DRIVER_CAPABILITIES={caps}");
        assert!(
            nodes(&plan(&["NVIDIA_VISIBLE_DEVICES=all", &env])).is_empty(),
            "{caps}"
        );
    }
}

#[test]
fn each_capability_brings_its_own_libraries() {
    let plan = plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=graphics",
    ])
    .unwrap();
    assert_eq!(
        targets(&plan, MountKind::File),
        [
            "/usr/lib/x86_64-linux-gnu/libnvidia-glcore.so.580.159.04",
            "/usr/share/vulkan/icd.d/nvidia_icd.json",
            "/usr/lib/x86_64-linux-gnu/gbm/nvidia-drm_gbm.so"
        ]
    );
    assert!(targets(&plan, MountKind::Ipc).is_empty());
    let plan = plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=video",
    ])
    .unwrap();
    assert_eq!(
        targets(&plan, MountKind::File),
        ["/usr/lib/x86_64-linux-gnu/libnvcuvid.so.580.159.04"]
    );
}

#[test]
fn compat32_adds_32_bit_libraries_in_their_own_dir() {
    let plan = plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=compute,compat32",
    ])
    .unwrap();
    let files = targets(&plan, MountKind::File);
    assert!(
        files.contains(&"/usr/lib/i386-linux-gnu/libcuda.so.580.159.04".to_string()),
        "{files:?}"
    );
    assert_eq!(
        plan.ldcache_dirs,
        vec![
            PathBuf::from("/usr/lib/x86_64-linux-gnu"),
            PathBuf::from("/usr/lib/i386-linux-gnu")
        ]
    );
}

#[test]
fn non_debian_images_use_lib64() {
    let plan = plan(
        &request(&["NVIDIA_VISIBLE_DEVICES=0"]),
        &inventory(),
        &ContainerLayout::for_rootfs(false),
    )
    .unwrap();
    assert!(
        targets(&plan, MountKind::File).contains(&"/usr/lib64/libcuda.so.580.159.04".to_string())
    );
}

#[test]
fn cuda_requirement_failure_tells_what_to_do() {
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99.0"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("NVIDIA_REQUIRE_CUDA"), "{err}");
    assert!(err.contains("cuda>=99.0"), "{err}");
    assert!(err.contains("cuda 13.0"), "{err}");
    assert!(
        err.contains("update your driver or use an earlier CUDA image"),
        "{err}"
    );
    assert!(plan_for(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=12.0"]).is_ok());
    assert!(plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_REQUIRE_DRIVER=driver>=581"
    ])
    .is_err());
}

#[test]
fn arch_requirement_holds_for_every_selected_gpu() {
    let env = "NVIDIA_REQUIRE_ARCH=arch>=9.0";
    assert!(plan_for(&["NVIDIA_VISIBLE_DEVICES=0", env]).is_ok());
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=all", env])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("arch>=9.0") && err.contains("arch 8.0"),
        "{err}"
    );
    assert!(plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=all",
        "NVIDIA_REQUIRE_BRAND=brand=tesla"
    ])
    .is_ok());
}

#[test]
fn graphics_and_display_bring_their_loader_and_server_files() {
    let plan = plan_for(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=graphics",
    ])
    .unwrap();
    let files = targets(&plan, MountKind::File);
    assert!(
        files.contains(&"/usr/share/vulkan/icd.d/nvidia_icd.json".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&"/usr/lib/x86_64-linux-gnu/gbm/nvidia-drm_gbm.so".to_string()),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains("xorg")), "{files:?}");
    let plan = super::plan(
        &request(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=display",
        ]),
        &inventory(),
        &ContainerLayout::for_rootfs(false),
    )
    .unwrap();
    assert_eq!(
        targets(&plan, MountKind::File),
        ["/usr/lib64/xorg/modules/drivers/nvidia_drv.so"]
    );
    // The default capabilities bring none of them.
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=0"]).unwrap();
    assert!(!targets(&plan, MountKind::File)
        .iter()
        .any(|f| f.contains("icd.d") || f.contains("gbm")));
}

#[test]
fn mps_pipe_directory_follows_the_container_env() {
    let ipc = |env: &[&str]| targets(&plan_for(env).unwrap(), MountKind::Ipc);
    assert!(ipc(&["NVIDIA_VISIBLE_DEVICES=0"]).contains(&"/tmp/nvidia-mps".to_string()));
    let moved = ipc(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "CUDA_MPS_PIPE_DIRECTORY=/var/mps",
    ]);
    assert!(moved.contains(&"/var/mps".to_string()), "{moved:?}");
    assert!(!moved.contains(&"/tmp/nvidia-mps".to_string()), "{moved:?}");
    // A relative value is not a place: the default is used.
    let relative = ipc(&["NVIDIA_VISIBLE_DEVICES=0", "CUDA_MPS_PIPE_DIRECTORY=mps"]);
    assert!(
        relative.contains(&"/tmp/nvidia-mps".to_string()),
        "{relative:?}"
    );
}

#[test]
fn imex_channels_by_number_or_all_and_unknown_ones_refused() {
    let devices = |env: &[&str]| targets(&plan_for(env).unwrap(), MountKind::Device);
    let one = devices(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=1"]);
    assert!(
        one.contains(&"/dev/nvidia-caps-imex-channels/channel1".to_string()),
        "{one:?}"
    );
    assert!(
        !one.contains(&"/dev/nvidia-caps-imex-channels/channel0".to_string()),
        "{one:?}"
    );
    let all = devices(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=all"]);
    assert_eq!(all.iter().filter(|d| d.contains("imex")).count(), 2);
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=1"]).unwrap();
    assert!(plan.device_rules.contains(&DeviceRule {
        major: 234,
        minor: 1
    }));
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=5"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IMEX channel 5 requested, this host has IMEX channels 0, 1"
    );
    assert!(devices(&["NVIDIA_VISIBLE_DEVICES=0"])
        .iter()
        .all(|d| !d.contains("imex")));
}

#[test]
fn newer_cuda_compat_libraries_come_first_in_the_ld_cache() {
    let with_compat = |version: &str| ContainerLayout {
        cuda_compat: Some(CudaCompat {
            dir: "/usr/local/cuda/compat".into(),
            version: version.into(),
        }),
        ..debian()
    };
    let dirs = |env: &[&str], layout: &ContainerLayout| {
        plan(&request(env), &inventory(), layout)
            .unwrap()
            .ldcache_dirs
    };
    let compute = ["NVIDIA_VISIBLE_DEVICES=0"];
    assert_eq!(
        dirs(&compute, &with_compat("590.48.01"))[0],
        PathBuf::from("/usr/local/cuda/compat")
    );
    // Older or equal to the host driver (580.159.04): not used.
    for older in ["575.57.08", "580.159.04", "580.65.06"] {
        assert!(
            !dirs(&compute, &with_compat(older)).contains(&PathBuf::from("/usr/local/cuda/compat")),
            "{older}"
        );
    }
    // Only compute containers run CUDA.
    let utility = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=utility",
    ];
    assert!(!dirs(&utility, &with_compat("590.48.01"))
        .contains(&PathBuf::from("/usr/local/cuda/compat")));
}

/// An aarch64 host (GH200, Jetson) with a Debian-family image: its multiarch directories.
#[test]
fn aarch64_images_get_their_multiarch_directories() {
    let layout = ContainerLayout::for_rootfs_on(true, crate::arch::Arch::Aarch64);
    let plan = plan(
        &request(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=compute,compat32",
        ]),
        &inventory(),
        &layout,
    )
    .unwrap();
    let files = targets(&plan, MountKind::File);
    assert!(files.contains(&"/usr/lib/aarch64-linux-gnu/libcuda.so.580.159.04".to_string()));
    assert!(files.contains(&"/usr/lib/arm-linux-gnueabihf/libcuda.so.580.159.04".to_string()));
    assert_eq!(
        plan.ldcache_dirs,
        [
            PathBuf::from("/usr/lib/aarch64-linux-gnu"),
            PathBuf::from("/usr/lib/arm-linux-gnueabihf")
        ]
    );
}
