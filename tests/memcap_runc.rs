//! GPU memory caps and compute shares through real runc on the simulated driver, whose
//! `nvidia-cuda-mps-control` is a fake daemon that serves its pipe directory and records the
//! commands it gets (tests/sim/README.md): one daemon per pool, shared by the pool's
//! containers, told its defaults before any container reaches it, stopped after the last;
//! nothing left after many cycles, a killed hook or parallel starts; containers without a cap
//! untouched. What is capped and how (policy, pipe directory, shim, NVML): memcap_policy.rs.

mod support;

use support::gpu_processes::Detached;
use support::mps::{exec, runc_root, MpsNode, QUERY};
use support::*;

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
    assert_daemon_env(&node, &pool, &node.sim.uuid(0));

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

/// The daemon's environment is gpuhook's five variables, none of the container's (whose env has
/// `LD_PRELOAD`).
fn assert_daemon_env(node: &MpsNode, pool: &str, uuid: &str) {
    let env = node.daemon_env(pool);
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
    assert!(env.contains(&format!("CUDA_VISIBLE_DEVICES={uuid}")));
}

/// A container without a cap is not touched: no MPS root, the host's MPS directory as before.
#[test]
fn containers_without_a_cap_are_not_affected() {
    if !prerequisites("containers_without_a_cap_are_not_affected") {
        return;
    }
    let node = MpsNode::new(1);
    node.mark_host_mps_dir();
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

/// 100 starts and stops, every other one without a poststop hook (the next start reaps it),
/// leave no daemon, server, pipe directory or registration; an uncapped container's hook run
/// reaps too.
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
    // The last one had no poststop hook: its pool waits for the reaper, which runs in every
    // hook run, an uncapped container's too.
    assert_eq!(node.pools().len(), 1);
    let uncapped = node.bundle("reaping", &["NVIDIA_VISIBLE_DEVICES=0"], "true", "", false);
    uncapped.run().expect_success();
    let reap = node.gpuhook("", &["mps", "reap"]);
    assert!(reap.status.success(), "{reap:?}");
    assert!(
        String::from_utf8_lossy(&reap.stdout).contains("stopped pools: none"),
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
    let config = b.dir.path().join("gpuhook.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[hook]\n", "[hook]\nldcache-update = \"ldconfig\"\n", 1);
    std::fs::write(&config, text).unwrap();
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

/// A container process whose env names a pool's pipe directory is not taken for one of the
/// pool's processes (they are told apart by mount namespace): stopping the pool does not kill
/// it (it would, after the 10 s it waits for the pool's processes).
#[test]
fn a_container_posing_as_a_pool_process_is_left_alone() {
    if !prerequisites("a_container_posing_as_a_pool_process_is_left_alone") {
        return;
    }
    let node = MpsNode::new(1);
    let env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GPU_MEMORY_LIMIT=2G"];
    let (_capped_bundle, capped) = node.sleeper("posed-pool", &env);
    let pipe = node
        .root()
        .join("pools")
        .join(&node.pools()[0])
        .join("pipe");
    let pipe_env = format!("CUDA_MPS_PIPE_DIRECTORY={}", pipe.display());
    let (_poser_bundle, poser) = node.sleeper("poser", &[&pipe_env]);
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
