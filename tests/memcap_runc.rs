//! GPU memory caps and compute shares through real runc on the simulated driver, whose
//! `nvidia-cuda-mps-control` is a fake daemon that serves its pipe directory and records the
//! commands it gets (tests/sim/README.md): one daemon per pool, shared by the pool's
//! containers, told its defaults before any container reaches it, stopped after the last;
//! the pipe directory where the container's CUDA looks; nothing left after many cycles, a
//! killed hook or parallel starts; containers without a cap untouched.

mod support;

use support::gpu_processes::Detached;
use support::mps::{exec, MpsNode};
use support::*;

const QUERY: &str = "echo get_server_list | nvidia-cuda-mps-control";

fn runc_root(node: &MpsNode) -> std::path::PathBuf {
    node.dir.path().join("runc")
}

/// Two containers with one cap share a daemon; another cap gets its own; the last container
/// out of a pool stops its daemon.
#[test]
fn one_daemon_per_pool_stopped_after_its_last_container() {
    if !prerequisites("one_daemon_per_pool_stopped_after_its_last_container") {
        return;
    }
    let node = MpsNode::new(2);
    let root = runc_root(&node);
    let env2g = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_GPU_MEMORY_LIMIT=2G",
        "LD_PRELOAD=/tenant/evil.so",
    ];
    let a = node.bundle("pool-a", &env2g, "sleep 60", "", true);
    let a = Detached::start(&a, Some(&root));
    let pools = node.pools();
    assert_eq!(pools.len(), 1, "{pools:?}");
    let pool = pools[0].clone();
    // Inside, at CUDA's default place, the pool's daemon answers.
    let server = exec(Some(&root), &a.id, QUERY);
    assert!(server.trim().parse::<u32>().is_ok(), "{server:?}");
    let commands = node.commands(&pool);
    assert_eq!(
        commands,
        [
            "started",
            "set_default_device_pinned_mem_limit 0 2G",
            "get_server_list"
        ],
        "the defaults come before anything a container sends"
    );
    // The daemon's environment is gpuhook's, none of the container's.
    let env = node.daemon_env(&pool);
    let mut names: Vec<&str> = env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, _)| k)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "CUDA_MPS_LOG_DIRECTORY",
            "CUDA_MPS_PIPE_DIRECTORY",
            "CUDA_VISIBLE_DEVICES",
            "LD_LIBRARY_PATH",
            "PATH"
        ]
    );
    assert!(env.contains(&format!("CUDA_VISIBLE_DEVICES={}", node.sim.uuid(0))));

    let b = node.bundle("pool-b", &env2g, "sleep 60", "", true);
    let b = Detached::start(&b, Some(&root));
    assert_eq!(
        node.pools(),
        std::slice::from_ref(&pool),
        "same GPU and cap: same pool"
    );
    assert_eq!(
        node.commands(&pool)
            .iter()
            .filter(|c| *c == "started")
            .count(),
        1
    );

    let env4g = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=4096"];
    let c = node.bundle("pool-c", &env4g, "sleep 60", "", true);
    let c = Detached::start(&c, Some(&root));
    let pools = node.pools();
    assert_eq!(pools.len(), 2, "{pools:?}");
    let other = pools.iter().find(|p| **p != pool).unwrap().clone();
    assert_eq!(
        node.commands(&other)[1],
        "set_default_device_pinned_mem_limit 0 4G"
    );
    assert_eq!(node.registrations().len(), 3);
    assert_eq!(
        node.mps_processes().len(),
        4,
        "a daemon and a server per pool"
    );

    drop(a);
    assert_eq!(node.pools().len(), 2, "b still uses the 2G pool");
    drop(b);
    assert_eq!(
        node.pools(),
        std::slice::from_ref(&other),
        "the 2G pool went with its last container"
    );
    assert_eq!(node.mps_processes().len(), 2);
    drop(c);
    node.assert_nothing_left("after the last container");
}

/// A container without a cap is not touched: no MPS root, the host's MPS directory as before.
#[test]
fn containers_without_a_cap_are_not_affected() {
    if !prerequisites("containers_without_a_cap_are_not_affected") {
        return;
    }
    let node = MpsNode::new(1);
    std::fs::write(
        node.sim.driver_root().join("tmp/nvidia-mps/marker"),
        "host mps\n",
    )
    .unwrap();
    let b = node.bundle(
        "uncapped",
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "cat /tmp/nvidia-mps/marker",
        "",
        true,
    );
    let out = b.run().expect_success();
    assert_eq!(out.stdout.trim(), "host mps");
    assert!(
        !node.root().exists(),
        "an uncapped container made the MPS root"
    );
}

/// What the pool's daemon tells a client in the container (the fake answers these queries).
const LIMITS: &str = "printf 'get_default_device_pinned_mem_limit 0\\nget_default_device_pinned_mem_limit 1\\nget_default_active_thread_percentage\\n' | nvidia-cuda-mps-control";

fn answers(out: &RunResult) -> Vec<String> {
    out.stdout.lines().map(str::to_string).collect()
}

/// The operator's policy, seen from inside containers: the default applies, the maximum
/// clamps, the container's env only lowers, an unprivileged container's values can be
/// ignored; and a bad value fails the start with one line saying what would be accepted.
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
    std::fs::write(
        node.sim.driver_root().join("tmp/nvidia-mps/marker"),
        "host mps\n",
    )
    .unwrap();
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

/// 100 starts and stops, every other one without a poststop hook (the next start reaps it),
/// leave no daemon, server, pipe directory or registration.
#[test]
fn a_hundred_cycles_leave_nothing() {
    if !prerequisites("a_hundred_cycles_leave_nothing") {
        return;
    }
    let node = MpsNode::new(1);
    for cycle in 0..100 {
        let env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=2G"];
        let out = node.bundle("cycle", &env, QUERY, "", cycle % 2 == 0).run();
        let out = out.expect_success();
        assert!(
            out.stdout.trim().parse::<u32>().is_ok(),
            "cycle {cycle}: {}",
            out.stdout
        );
        assert!(node.pools().len() <= 1, "cycle {cycle}: {:?}", node.pools());
    }
    // The last one had no poststop hook: its pool waits for the reaper.
    assert_eq!(node.pools().len(), 1);
    let reap = node.gpuhook("", &["mps", "reap"]);
    assert!(reap.status.success(), "{reap:?}");
    assert!(
        String::from_utf8_lossy(&reap.stdout).contains("stopped pools: p"),
        "{reap:?}"
    );
    node.assert_nothing_left("after 100 cycles");
}

/// Eight containers of one pool started at once get one daemon; stopped at once, nothing is
/// left.
#[test]
fn parallel_starts_share_one_daemon() {
    if !prerequisites("parallel_starts_share_one_daemon") {
        return;
    }
    let node = MpsNode::new(1);
    let root = runc_root(&node);
    let env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=3G"];
    let bundles: Vec<Bundle> = (0..8)
        .map(|i| node.bundle(&format!("par{i}"), &env, "sleep 60", "", true))
        .collect();
    let running: Vec<Detached> = std::thread::scope(|s| {
        let handles: Vec<_> = bundles
            .iter()
            .map(|b| s.spawn(|| Detached::start(b, Some(&root))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pools = node.pools();
    assert_eq!(pools.len(), 1, "{pools:?}");
    let started = node
        .commands(&pools[0])
        .iter()
        .filter(|c| *c == "started")
        .count();
    assert_eq!(started, 1, "one daemon start for eight containers");
    assert_eq!(node.registrations().len(), 8);
    for c in &running {
        assert!(exec(Some(&root), &c.id, QUERY)
            .trim()
            .parse::<u32>()
            .is_ok());
    }
    std::thread::scope(|s| {
        for c in running {
            s.spawn(move || drop(c));
        }
    });
    node.assert_nothing_left("after eight parallel stops");
}

/// gpuhook prestart processes of `bundle` (by the config their environment names).
fn hook_processes(bundle: &Bundle) -> Vec<u32> {
    let config = format!(
        "GPUHOOK_CONFIG={}",
        bundle.dir.path().join("gpuhook.toml").display()
    );
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == gpuhook_bin())
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == config.as_bytes()))
        })
        .collect()
}

/// Waits (up to 30 s) for `ready`, then SIGKILLs the bundle's hook; returns runc's result.
fn kill_hook_when(bundle: &Bundle, ready: impl Fn() -> bool) -> RunResult {
    std::thread::scope(|s| {
        let run = s.spawn(|| bundle.run());
        let started = std::time::Instant::now();
        while !ready() {
            assert!(started.elapsed().as_secs() < 30, "never got there");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let hooks = hook_processes(bundle);
        assert_eq!(hooks.len(), 1, "{hooks:?}");
        sh(std::process::Command::new("kill").args(["-KILL", &hooks[0].to_string()]));
        run.join().unwrap()
    })
}

/// A hook killed while the daemon starts, and one killed after registering (in ldconfig):
/// the container does not start, and the reaper leaves nothing.
#[test]
fn a_killed_hook_leaves_nothing_after_the_reaper() {
    if !prerequisites("a_killed_hook_leaves_nothing_after_the_reaper") {
        return;
    }
    let node = MpsNode::new(1);
    let env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=2G"];
    // 1. `nvidia-cuda-mps-control -d` never returns (the daemon serves, unrecorded). Without
    //    a poststop hook the reaper cleans up; with one, runc's poststop run of the aborted
    //    container does at once.
    let hang = node.sim.dir.path().join("mps-hang");
    std::fs::write(&hang, "").unwrap();
    let b = node.bundle("killed-start", &env, "true", "", false);
    let out = kill_hook_when(&b, || !node.mps_processes().is_empty());
    assert!(!out.success, "started without its hook");
    assert_eq!(
        node.pools().len(),
        1,
        "the half-made pool is there for the reaper"
    );
    let reap = node.gpuhook("", &["mps", "reap"]);
    assert!(reap.status.success(), "{reap:?}");
    node.assert_nothing_left("after a hook killed in the daemon start");
    let b = node.bundle("killed-start-poststop", &env, "true", "", true);
    let out = kill_hook_when(&b, || !node.mps_processes().is_empty());
    assert!(!out.success, "started without its hook");
    node.assert_nothing_left("after the poststop hook of a start killed in the daemon start");
    std::fs::remove_file(&hang).unwrap();

    // 2. Killed after it registered, while ldconfig blocks on a FIFO the image's ld.so.conf
    //    includes.
    let b = node.bundle("killed-ldconfig", &env, "true", "", false);
    std::fs::write(
        b.rootfs().join("etc/ld.so.conf"),
        "include /opt/hang.conf\n",
    )
    .unwrap();
    std::fs::create_dir_all(b.rootfs().join("opt")).unwrap();
    sh(std::process::Command::new("mkfifo").arg(b.rootfs().join("opt/hang.conf")));
    let out = kill_hook_when(&b, || node.registrations().len() == 1);
    assert!(!out.success, "started without its hook");
    let reap = node.gpuhook("", &["mps", "reap"]);
    assert!(
        String::from_utf8_lossy(&reap.stdout).contains(&b.id),
        "{reap:?}"
    );
    node.assert_nothing_left("after a hook killed in ldconfig");
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
    let capped = node.bundle(
        "ps-capped",
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=2G"],
        "sleep 60",
        "",
        true,
    );
    let plain = node.bundle(
        "ps-plain",
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "sleep 60",
        "",
        true,
    );
    let capped = Detached::start(&capped, Some(&root));
    let plain = Detached::start(&plain, Some(&root));
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

/// A container process whose env names a pool's pipe directory is not taken for one of the
/// pool's processes (they are told apart by mount namespace): stopping the pool does not kill
/// it (it would, after the 10 s it waits for the pool's processes).
#[test]
fn a_container_posing_as_a_pool_process_is_left_alone() {
    if !prerequisites("a_container_posing_as_a_pool_process_is_left_alone") {
        return;
    }
    let node = MpsNode::new(1);
    let root = runc_root(&node);
    let capped = node.bundle(
        "posed-pool",
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=2G"],
        "sleep 60",
        "",
        true,
    );
    let capped = Detached::start(&capped, Some(&root));
    let pipe = node
        .root()
        .join("pools")
        .join(&node.pools()[0])
        .join("pipe");
    let env = format!("CUDA_MPS_PIPE_DIRECTORY={}", pipe.display());
    let poser = node.bundle("poser", &[&env], "sleep 60", "", false);
    let poser = Detached::start(&poser, Some(&root));
    drop(capped);
    assert!(node.pools().is_empty());
    assert!(
        std::path::Path::new(&format!("/proc/{}", poser.pid)).exists(),
        "the posing container's process was killed"
    );
    assert_eq!(node.mps_processes(), [poser.pid]);
    drop(poser);
    node.assert_nothing_left("after both");
}
