//! MIG end to end: real runc containers on a simulated driver (`SIM_MIG=1`) whose GPU 0 is in
//! MIG mode with MIG device 0 (GPU instance 1, capability nodes 12 and 13) and MIG device 1
//! (GPU instance 2, nodes 21 and 22), and whose GPU 1 has MIG off. The fake NVML in the
//! container lists a MIG device only when its capability files and both nodes can be opened.

mod support;

use support::*;

/// Prints what a user would look at inside the container, in `== name ==` sections.
const INSPECT: &str = r#"
echo "== dev =="; ls /dev | grep nvidia
echo "== caps =="; ls /dev/nvidia-caps 2>&1
echo "== open =="; for n in /dev/nvidia-caps/*; do cat "$n" 2>&1; done
echo "== smi =="; nvidia-smi -L; echo "exit=$?"
echo "== gpus =="; ls /proc/driver/nvidia/gpus
echo "== capfiles =="; cd /proc/driver/nvidia && find capabilities -type f | sort
echo "== minors =="; cat $(find /proc/driver/nvidia/capabilities -name access | sort) | grep Minor
echo "== end =="
"#;

/// A 2-GPU simulated driver with MIG on GPU 0.
fn mig_sim() -> Sim {
    Sim::build_with_mig(2)
}

/// The UUID the fake NVML gives the MIG device of GPU instance `gi`, compute instance 0, on
/// GPU minor 0 (see tests/sim/README.md).
fn mig_uuid(gi: u32) -> String {
    format!("MIG-5e1f0000-0000-4000-9000-0000{gi:04x}0000")
}

fn log_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "gpuhook-test-mig-{name}-{}.log",
        std::process::id()
    ))
}

fn run(name: &str, sim: &Sim, env: &[&str], hook_extra: &str) -> (Bundle, RunResult) {
    let bundle = Bundle::new(name, env, INSPECT, &sim.config(&log_path(name), hook_extra));
    let out = bundle.run();
    (bundle, out)
}

/// Adds CAP_SYS_ADMIN to every capability set of the container's process.
fn make_privileged(bundle: &Bundle) {
    bundle.edit_spec(|spec| {
        let caps = spec["process"]["capabilities"].as_object_mut().unwrap();
        for set in caps.values_mut() {
            set.as_array_mut().unwrap().push("CAP_SYS_ADMIN".into());
        }
    });
}

/// Opening an allowed simulated node reaches the missing kernel driver (ENXIO); the device
/// cgroup's refusal is EPERM.
fn all_open(out: &RunResult) -> bool {
    let open = out.section("open");
    !open.is_empty() && open.iter().all(|l| l.contains("No such device or address"))
}

#[test]
fn a_mig_device_by_index_or_uuid_gets_its_gpu_and_exactly_its_caps() {
    if !prerequisites("a_mig_device_by_index_or_uuid_gets_its_gpu_and_exactly_its_caps") {
        return;
    }
    let sim = mig_sim();
    let before = host_mounts();
    let wanted = mig_uuid(2);
    let other = mig_uuid(1);
    for (name, value) in [
        ("index", "0:1".to_string()),
        ("uuid", wanted.clone()),
        ("uuid-upper-case", wanted.to_uppercase()),
    ] {
        let _ = std::fs::remove_file(log_path(name));
        let env = format!("NVIDIA_VISIBLE_DEVICES={value}");
        let (bundle, out) = run(name, &sim, &[&env], "");
        let out = out.expect_success();
        assert_eq!(
            out.section("dev"),
            [
                "nvidia-caps",
                "nvidia-uvm",
                "nvidia-uvm-tools",
                "nvidia0",
                "nvidiactl",
            ],
            "{name}: the parent GPU, the control nodes, nothing of GPU 1"
        );
        assert_eq!(
            out.section("caps"),
            ["nvidia-cap21", "nvidia-cap22"],
            "{name}: GPU instance 2 and its compute instance only"
        );
        assert!(all_open(&out), "{name}: {:?}", out.section("open"));
        let smi = out.section("smi").join("\n");
        assert!(
            smi.contains(&sim.uuid(0)) && smi.contains(&wanted),
            "{name}: {smi}"
        );
        assert!(
            !smi.contains(&other) && !smi.contains(&sim.uuid(1)),
            "{name}: nothing of the other MIG device or GPU: {smi}"
        );
        assert!(smi.contains("exit=0"), "{name}: {smi}");
        assert_eq!(out.section("gpus"), ["0000:10:00.0"], "{name}");
        assert_eq!(
            out.section("capfiles"),
            [
                "capabilities/gpu0/mig/gi2/access",
                "capabilities/gpu0/mig/gi2/ci0/access"
            ],
            "{name}"
        );
        assert_eq!(
            out.section("minors"),
            ["DeviceFileMinor: 21", "DeviceFileMinor: 22"],
            "{name}"
        );
        let log_text = std::fs::read_to_string(log_path(name)).unwrap();
        let line = log_text
            .lines()
            .find(|l| l.contains(&bundle.id))
            .unwrap_or_default();
        assert!(line.contains(&format!("0={wanted}")), "{name}: {log_text}");
    }
    assert_eq!(host_mounts(), before, "the host's mount table changed");
}

#[test]
fn device_cgroup_rules_are_what_makes_the_caps_nodes_usable() {
    if !prerequisites("device_cgroup_rules_are_what_makes_the_caps_nodes_usable") {
        return;
    }
    let sim = mig_sim();
    let (_, out) = run(
        "nocgroups",
        &sim,
        &["NVIDIA_VISIBLE_DEVICES=0:1"],
        "no-cgroups = true",
    );
    let out = out.expect_success();
    assert_eq!(out.section("caps"), ["nvidia-cap21", "nvidia-cap22"]);
    let open = out.section("open");
    assert!(
        open.len() == 2 && open.iter().all(|l| l.contains("Operation not permitted")),
        "{open:?}"
    );
    let smi = out.section("smi").join("\n");
    assert!(!smi.contains("MIG-"), "{smi}");
}

#[test]
fn unknown_mig_devices_fail_the_start_with_a_clear_message() {
    if !prerequisites("unknown_mig_devices_fail_the_start_with_a_clear_message") {
        return;
    }
    let sim = mig_sim();
    let both = format!("{}, {}", mig_uuid(1), mig_uuid(2));
    let cases = [
        (
            "bad-mig-index",
            "NVIDIA_VISIBLE_DEVICES=0:5".to_string(),
            format!("MIG device 0:5 requested, GPU 0 has MIG devices 0-1 ({both})"),
        ),
        (
            "mig-disabled",
            "NVIDIA_VISIBLE_DEVICES=1:0".to_string(),
            format!(
                "MIG device 1:0 requested, but MIG is not enabled on GPU 1 ({})",
                sim.uuid(1)
            ),
        ),
        (
            "bad-mig-uuid",
            "NVIDIA_VISIBLE_DEVICES=MIG-00000000-dead".to_string(),
            format!(
                "MIG device MIG-00000000-dead requested, this host has MIG devices 0:0 ({}), 0:1 ({})",
                mig_uuid(1),
                mig_uuid(2)
            ),
        ),
    ];
    let before = host_mounts();
    for (name, env, message) in cases {
        let bundle = Bundle::new(name, &[&env], INSPECT, &sim.config(&log_path(name), ""));
        let out = bundle.run_refused(name);
        assert!(
            out.stderr
                .contains(&format!("gpuhook: container {}: {message}", bundle.id)),
            "{name}: {}",
            out.stderr
        );
    }
    assert_eq!(host_mounts(), before);
}

#[test]
fn mig_config_and_monitor_are_for_privileged_containers_only() {
    if !prerequisites("mig_config_and_monitor_are_for_privileged_containers_only") {
        return;
    }
    let sim = mig_sim();
    let env = [
        "NVIDIA_VISIBLE_DEVICES=0:0",
        "NVIDIA_MIG_CONFIG_DEVICES=all",
        "NVIDIA_MIG_MONITOR_DEVICES=all",
    ];
    // runc's default spec holds no CAP_SYS_ADMIN.
    for (name, variable) in [
        ("config-unprivileged", "NVIDIA_MIG_CONFIG_DEVICES"),
        ("monitor-unprivileged", "NVIDIA_MIG_MONITOR_DEVICES"),
    ] {
        let request = format!("{variable}=all");
        let (bundle, out) = run(name, &sim, &["NVIDIA_VISIBLE_DEVICES=0:0", &request], "");
        assert!(!out.success, "{name} started");
        assert!(
            out.stderr.contains(&format!(
                "gpuhook: container {}: {variable}=all: only a privileged container",
                bundle.id
            )),
            "{name}: {}",
            out.stderr
        );
    }
    let bundle = Bundle::new(
        "config-privileged",
        &env,
        INSPECT,
        &sim.config(&log_path("config-privileged"), ""),
    );
    make_privileged(&bundle);
    let out = bundle.run().expect_success();
    assert_eq!(
        out.section("caps"),
        ["nvidia-cap1", "nvidia-cap12", "nvidia-cap13", "nvidia-cap2"]
    );
    assert!(all_open(&out), "{:?}", out.section("open"));
    assert_eq!(
        out.section("capfiles"),
        [
            "capabilities/gpu0/mig/gi1/access",
            "capabilities/gpu0/mig/gi1/ci0/access",
            "capabilities/mig/config",
            "capabilities/mig/monitor",
        ]
    );
    let smi = out.section("smi").join("\n");
    assert!(
        smi.contains(&mig_uuid(1)) && !smi.contains(&mig_uuid(2)),
        "{smi}"
    );
}

#[test]
fn nvml_is_loaded_only_for_mig_requests() {
    if !prerequisites("nvml_is_loaded_only_for_mig_requests") {
        return;
    }
    let sim = mig_sim();
    // An NVML without any entry point: whoever loads it fails.
    let lib = sim.driver_root().join(format!(
        "{}/libnvidia-ml.so.{DRIVER_VERSION}",
        &LIB_DIR[1..]
    ));
    let stub = sim.driver_root().join(format!(
        "{}/libnvidia-cfg.so.{DRIVER_VERSION}",
        &LIB_DIR[1..]
    ));
    std::fs::copy(&stub, &lib).unwrap();
    let (_, out) = run("no-nvml-gpu", &sim, &["NVIDIA_VISIBLE_DEVICES=0"], "");
    let out = out.expect_success();
    assert!(out.section("dev").contains(&"nvidia0".to_string()));
    let (bundle, out) = run("no-nvml-mig", &sim, &["NVIDIA_VISIBLE_DEVICES=0:1"], "");
    assert!(!out.success, "a MIG request started without NVML");
    assert!(
        out.stderr.contains(&format!(
            "gpuhook: container {}: NVML ({})",
            bundle.id,
            lib.display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn the_runtime_shim_declares_the_caps_nodes_in_the_spec() {
    if !prerequisites("the_runtime_shim_declares_the_caps_nodes_in_the_spec") {
        return;
    }
    let sim = mig_sim();
    let config = sim.dir.path().join("gpuhook.toml");
    std::fs::write(&config, sim.config(&log_path("shim"), "")).unwrap();
    let bundle = Bundle::new(
        "mig-shim",
        &["NVIDIA_VISIBLE_DEVICES=0:1"],
        INSPECT,
        &std::fs::read_to_string(&config).unwrap(),
    );
    let out = bundle.run_through_shim(&config);
    let stdout = out.stdout.clone();
    assert!(out.success, "{stdout}{}", out.stderr);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.dir.path().join("config.json")).unwrap())
            .unwrap();
    let declared: Vec<(String, i64, i64)> = spec["linux"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_string(),
                d["major"].as_i64().unwrap(),
                d["minor"].as_i64().unwrap(),
            )
        })
        .filter(|(p, _, _)| p.starts_with("/dev/nvidia-caps/"))
        .collect();
    assert_eq!(
        declared,
        [
            ("/dev/nvidia-caps/nvidia-cap21".to_string(), 508, 21),
            ("/dev/nvidia-caps/nvidia-cap22".to_string(), 508, 22),
        ]
    );
    let result = RunResult {
        success: true,
        stdout,
        stderr: String::new(),
    };
    assert!(all_open(&result), "{:?}", result.section("open"));
    assert!(result.section("smi").join("\n").contains(&mig_uuid(2)));
}
