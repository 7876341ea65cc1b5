//! What gets capped, and how, seen from real runc containers on the simulated driver (see
//! memcap_runc.rs for the daemons' lifecycle): the operator's policy and bad values, the pipe
//! directory where the container's CUDA looks, caps a second runtime name imposes through the
//! shim, NVML memory limits where the (simulated r615) driver has them, `gpuhook ps`'s CAP.

mod support;

use support::gpu_processes::Detached;
use support::mps::{runc_root, MpsNode, QUERY};
use support::*;

/// What the pool's daemon tells a client in the container (the fake answers these queries).
const LIMITS: &str = "printf 'get_default_device_pinned_mem_limit 0\\nget_default_device_pinned_mem_limit 1\\nget_default_active_thread_percentage\\n' | nvidia-cuda-mps-control";

fn answers(out: &RunResult) -> Vec<String> {
    out.stdout.lines().map(str::to_string).collect()
}

/// The operator's policy, seen from inside containers: the default applies, the maximum
/// clamps, the container's env only lowers, an unprivileged container's values can be
/// ignored.
#[test]
fn policy_default_maximum_and_the_unprivileged_rule() {
    if !prerequisites("policy_default_maximum_and_the_unprivileged_rule") {
        return;
    }
    let node = MpsNode::new(2);
    let gpus = "NVIDIA_VISIBLE_DEVICES=0,1";
    let cases: [(&str, &[&str], &str, [&str; 3]); 6] = [
        (
            "default",
            &[gpus],
            "default-limit = \"1G\"\ndefault-compute-limit = 50",
            ["1G", "1G", "50"],
        ),
        (
            "own-over-default",
            &[gpus, "NVIDIA_GPU_MEMORY_LIMIT=0=3G,1=512M"],
            "default-limit = \"1G\"",
            ["3G", "512M", "100"],
        ),
        (
            "max-clamps",
            &[
                gpus,
                "NVIDIA_GPU_MEMORY_LIMIT=16G",
                "NVIDIA_GPU_COMPUTE_LIMIT=90%",
            ],
            "max-limit = \"4G\"\nmax-compute-limit = 25",
            ["4G", "4G", "25"],
        ),
        (
            "max-alone",
            &[gpus],
            "max-limit = \"4G\"",
            ["4G", "4G", "100"],
        ),
        (
            "lower-than-max",
            &[gpus, "NVIDIA_GPU_MEMORY_LIMIT=1G"],
            "max-limit = \"4G\"",
            ["1G", "1G", "100"],
        ),
        // The rootfs of these tests' containers holds no CAP_SYS_ADMIN: unprivileged.
        (
            "unprivileged-ignored",
            &[gpus, "NVIDIA_GPU_MEMORY_LIMIT=64G"],
            "max-limit = \"2G\"\naccept-unprivileged = false",
            ["2G", "2G", "100"],
        ),
    ];
    for (name, env, memory, want) in cases {
        let b = node.bundle(name, env, LIMITS, memory, true);
        let out = b.run().expect_success();
        assert_eq!(answers(&out), want, "{name}: {}", out.stderr);
    }
    node.assert_nothing_left("after the policy cases");

    // Values ignored and no policy: not capped at all, no daemon.
    let b = node.bundle(
        "unprivileged-uncapped",
        &[gpus, "NVIDIA_GPU_MEMORY_LIMIT=1G"],
        "ls /tmp/nvidia-mps",
        "accept-unprivileged = false",
        true,
    );
    b.run().expect_success();
    assert!(node.pools().is_empty());
}

/// A bad value fails the start with one line naming the variable and, for a malformed size,
/// what would be accepted; nothing is started or registered.
#[test]
fn bad_values_fail_the_start_with_one_clear_line() {
    if !prerequisites("bad_values_fail_the_start_with_one_clear_line") {
        return;
    }
    let node = MpsNode::new(2);
    let gpus = "NVIDIA_VISIBLE_DEVICES=0,1";
    for (value, problem) in [
        ("lots", "\"lots\" does not start with a number"),
        ("0=1G,5=2G", "names GPU 5"),
    ] {
        let b = node.bundle(
            "bad-value",
            &[gpus, &format!("NVIDIA_GPU_MEMORY_LIMIT={value}")],
            "true",
            "",
            true,
        );
        let out = b.run_refused(value);
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("gpuhook:"))
            .collect();
        assert_eq!(lines.len(), 1, "{}", out.stderr);
        assert!(lines[0].contains("NVIDIA_GPU_MEMORY_LIMIT"), "{}", lines[0]);
        assert!(lines[0].contains(problem), "{}", lines[0]);
        if value == "lots" {
            assert!(
                lines[0].contains("`2G`") && lines[0].contains("`0=2G,1=4G`"),
                "{}",
                lines[0]
            );
        }
    }
    node.assert_nothing_left("after the refused starts");
}

/// The pipe directory goes where the container's CUDA looks: its CUDA_MPS_PIPE_DIRECTORY,
/// else /tmp/nvidia-mps; a capped container never gets the host's MPS directory; a target the
/// rules refuse fails the start before any daemon runs.
#[test]
fn the_pipe_directory_where_the_containers_cuda_looks() {
    if !prerequisites("the_pipe_directory_where_the_containers_cuda_looks") {
        return;
    }
    let node = MpsNode::new(1);
    node.mark_host_mps_dir();
    let script = format!(
        "{QUERY}; echo \"== default ==\"; ls /tmp/nvidia-mps 2>&1; cat /tmp/nvidia-mps/marker 2>&1; true"
    );
    let env = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_GPU_MEMORY_LIMIT=2G",
        "CUDA_MPS_PIPE_DIRECTORY=/var/mps",
    ];
    let out = node
        .bundle("own-dir", &env, &script, "", true)
        .run()
        .expect_success();
    assert!(
        out.stdout.lines().next().unwrap().parse::<u32>().is_ok(),
        "{}",
        out.stdout
    );
    let default = out.section("default");
    assert!(
        default
            .iter()
            .all(|l| !l.contains("host mps") && !l.contains("control")),
        "the host's (or the pool's) pipes at /tmp/nvidia-mps: {default:?}"
    );
    let out = node
        .bundle(
            "default-dir",
            &env[..2],
            &format!("{QUERY}; ls /tmp/nvidia-mps"),
            "",
            true,
        )
        .run()
        .expect_success();
    assert!(out.stdout.contains("control"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("marker"),
        "the host's MPS directory: {}",
        out.stdout
    );

    let bad = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_GPU_MEMORY_LIMIT=2G",
        "CUDA_MPS_PIPE_DIRECTORY=/etc",
    ];
    let out = node
        .bundle("etc-dir", &bad, "true", "", true)
        .run_refused("/etc");
    assert!(
        out.stderr.contains("CUDA_MPS_PIPE_DIRECTORY=/etc: refused"),
        "{}",
        out.stderr
    );
    node.assert_nothing_left("after the refused target");
    assert!(node.registrations().is_empty());
}

/// `gpuhook-shared`, a second name of the runtime shim with `memory.runtimes.gpuhook-shared`
/// in the config, imposes its caps through the hook entry's env; the container's env can only
/// lower them and cannot pose as the imposing runtime. The shim adds the poststop hook.
#[test]
fn a_second_runtime_name_imposes_its_caps_through_the_shim() {
    if !prerequisites("a_second_runtime_name_imposes_its_caps_through_the_shim") {
        return;
    }
    let node = MpsNode::new(1);
    let config = node.dir.path().join("shim.toml");
    let memory = "[memory.runtimes.gpuhook-shared]\nlimit = \"1G\"\ncompute-limit = 40";
    std::fs::write(&config, node.config(memory)).unwrap();
    let shared = node.dir.path().join("gpuhook-shared");
    std::os::unix::fs::symlink(gpuhook_runtime_bin(), &shared).unwrap();
    let env = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_GPU_MEMORY_LIMIT=8G",
        // The container posing as the imposing runtime (it would lower, were it read).
        "GPUHOOK_IMPOSED_MEMORY_LIMIT=512",
    ];
    let cases = [
        (shared.clone(), ["1G", "none", "40"]),
        (gpuhook_runtime_bin(), ["8G", "none", "100"]),
    ];
    for (runtime, want) in cases {
        let b = node.bundle("shim", &env, LIMITS, "", false);
        b.edit_spec(|spec| {
            spec.as_object_mut().unwrap().remove("hooks");
        });
        let mut command = std::process::Command::new(&runtime);
        command.env("GPUHOOK_CONFIG", &config);
        let out = b.run_with(command).expect_success();
        assert_eq!(answers(&out), want, "{}: {}", runtime.display(), out.stderr);
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(
            spec["hooks"]["poststop"][0]["args"],
            serde_json::json!(["gpuhook", "poststop"])
        );
        node.assert_nothing_left("after the shim's poststop hook");
    }
    // CDI devices are not capped: refused rather than silently uncapped.
    let cdi = [
        "NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0",
        "NVIDIA_GPU_MEMORY_LIMIT=2G",
    ];
    let b = node.bundle("shim-cdi", &cdi, "true", "", false);
    b.edit_spec(|spec| {
        spec.as_object_mut().unwrap().remove("hooks");
    });
    let mut command = std::process::Command::new(gpuhook_runtime_bin());
    command.env("GPUHOOK_CONFIG", &config);
    let out = b.run_with(command);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("CDI devices (nvidia.com/gpu=0) are not capped"),
        "{}",
        out.stderr
    );
}

/// A driver whose NVML has memory limits (r615+, simulated): the cap goes to
/// nvmlDeviceSetMemoryLimits_v1 for the container's cgroup, no MPS daemon runs for memory; a
/// compute share still gets a pool (compute only); `enforcement = "mps"` uses MPS anyway.
#[test]
fn nvml_memory_limits_where_the_driver_has_them() {
    if !prerequisites("nvml_memory_limits_where_the_driver_has_them") {
        return;
    }
    let node = MpsNode::with_sim(Sim::build_with_env(1, &[("SIM_NVML_MEMORY_LIMITS", "1")]));
    let calls = node.sim.dir.path().join("nvml-memory-limits");
    let root = runc_root(&node);
    let env = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_GPU_MEMORY_LIMIT=2G",
        "NVIDIA_GPU_MEMORY_REQUEST=1G",
    ];
    let b = node.bundle("nvml", &env, "sleep 60", "", true);
    let c = Detached::start(&b, Some(&root));
    let text = std::fs::read_to_string(&calls).unwrap();
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap();
    let unified = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap();
    let v2 = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|d| {
            sh(std::process::Command::new("stat").args(["-fc", "%T", d]))
                .stdout
                .starts_with(b"cgroup2")
        })
        .expect("a cgroup v2 hierarchy");
    assert_eq!(
        text,
        format!("{} {v2}{unified} 1073741824 2147483648\n", node.sim.uuid(0))
    );
    assert!(node.pools().is_empty(), "a daemon for a cap NVML enforces");
    let registrations = node.registrations();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0]["enforcement"], "nvml");
    drop(c);
    node.assert_nothing_left("after the NVML-capped container");

    let mut shared = env.to_vec();
    shared.push("NVIDIA_GPU_COMPUTE_LIMIT=30");
    let b = node.bundle("nvml-share", &shared, "sleep 60", "", true);
    let c = Detached::start(&b, Some(&root));
    let pools = node.pools();
    assert_eq!(pools.len(), 1);
    assert_eq!(
        node.commands(&pools[0]),
        ["started", "set_default_active_thread_percentage 30"]
    );
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
    drop(c);

    let mps = "enforcement = \"mps\"";
    let out = node
        .bundle("forced-mps", &env, LIMITS, mps, true)
        .run()
        .expect_success();
    assert_eq!(answers(&out), ["2G", "none", "100"]);
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
    node.assert_nothing_left("after the last");
}

/// `gpuhook ps` shows the cap a container's registration records, and none for a container
/// gpuhook did not cap.
#[test]
fn ps_shows_the_cap_of_each_container() {
    if !prerequisites("ps_shows_the_cap_of_each_container") {
        return;
    }
    let node = MpsNode::new(1);
    let root = runc_root(&node);
    let env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=2G"];
    let (_capped_bundle, capped) = node.sleeper("ps-capped", &env);
    let (_plain_bundle, plain) = node.sleeper("ps-plain", &env[..1]);
    let uuid = node.sim.uuid(0);
    std::fs::write(
        node.sim.dir.path().join("gpu-processes"),
        format!(
            "process {uuid} {} 1048576 M+C\nprocess {uuid} {} 1048576 C\n",
            capped.pid, plain.pid
        ),
    )
    .unwrap();
    let root_arg = root.display().to_string();
    let out = node.gpuhook("", &["ps", "--json", "--runc-root", &root_arg]);
    assert!(out.status.success(), "{out:?}");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cap_of = |id: &str| {
        value["usage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["container"]["id"] == id)
            .map(|u| u["memory_cap_bytes"].clone())
    };
    assert_eq!(
        cap_of(&capped.id),
        Some(serde_json::json!(2u64 << 30)),
        "{value}"
    );
    assert_eq!(cap_of(&plain.id), Some(serde_json::Value::Null), "{value}");
    let table = node.gpuhook("", &["ps", "--runc-root", &root_arg]);
    let text = String::from_utf8_lossy(&table.stdout);
    let row = text.lines().find(|l| l.starts_with(&capped.id)).unwrap();
    assert!(row.contains("2048 MiB"), "{text}");
    assert!(text.lines().next().unwrap().contains("CAP"), "{text}");
}
