//! The hook end to end: real runc containers, a simulated driver, checks from inside.

mod support;

use support::*;

/// Prints what a user would look at inside the container, in `== name ==` sections.
const INSPECT: &str = r#"
echo "== dev =="; ls /dev | grep nvidia
echo "== smi =="; nvidia-smi -L; echo "exit=$?"
echo "== gpus =="; ls /proc/driver/nvidia/gpus
echo "== libs =="; ls /usr/lib/x86_64-linux-gnu | grep -e nvidia -e cuda -e foo
echo "== bins =="; ls /usr/bin | grep nvidia
echo "== firmware =="; ls /lib/firmware/nvidia/580.159.04 2>&1
echo "== write =="; (echo x > /usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04) 2>&1 || echo refused
echo "== mountflags =="; grep libcuda.so /proc/mounts
echo "== params =="; grep ModifyDeviceFiles /proc/driver/nvidia/params
echo "== ipc =="; ls -d /run/nvidia-persistenced/socket /tmp/nvidia-mps 2>&1
echo "== end =="
"#;

fn run_inspect(name: &str, sim: &Sim, env: &[&str], hook_extra: &str) -> RunResult {
    let log = std::env::temp_dir().join(format!("gpuhook-test-{name}-{}.log", std::process::id()));
    let bundle = Bundle::new(name, env, INSPECT, &sim.config(&log, hook_extra));
    bundle.run()
}

#[test]
fn all_gpus_are_usable_inside_the_container() {
    if !prerequisites("all_gpus_are_usable_inside_the_container") {
        return;
    }
    let sim = Sim::build(2);
    let before = host_mounts();
    let log = std::env::temp_dir().join(format!("gpuhook-test-all-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let bundle = Bundle::new(
        "all",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        INSPECT,
        &sim.config(&log, ""),
    );
    let out = bundle.run().expect_success();
    // The container's ld cache, as the host's ldconfig reads it, resolves the driver sonames.
    let cache = std::process::Command::new("ldconfig")
        .arg("-p")
        .arg("-C")
        .arg(bundle.rootfs().join("etc/ld.so.cache"))
        .output()
        .unwrap();
    let cache = String::from_utf8_lossy(&cache.stdout);
    for soname in ["libcuda.so.1", "libnvidia-ml.so.1"] {
        let line = cache.lines().find(|l| l.trim_start().starts_with(soname));
        assert!(
            line.is_some_and(|l| l.ends_with(&format!("{LIB_DIR}/{soname}"))),
            "{soname} not in the container's ld cache:\n{cache}"
        );
    }
    // One log line for the container, naming both GPUs.
    let log_text = std::fs::read_to_string(&log).unwrap();
    let line = log_text
        .lines()
        .find(|l| l.contains(&bundle.id))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("0={}", sim.uuid(0)))
            && line.contains(&format!("1={}", sim.uuid(1))),
        "{log_text}"
    );
    // nvidia-modeset comes with `display` only, as with libnvidia-container.
    assert_eq!(
        out.section("dev"),
        [
            "nvidia-uvm",
            "nvidia-uvm-tools",
            "nvidia0",
            "nvidia1",
            "nvidiactl"
        ]
    );
    let smi = out.section("smi").join("\n");
    // The fake nvidia-smi only lists a GPU whose node the device cgroup lets it open, and it
    // only starts if libnvidia-ml.so.1 resolves through the ld cache gpuhook rebuilt.
    assert!(
        smi.contains(&sim.uuid(0)) && smi.contains(&sim.uuid(1)),
        "{smi}"
    );
    assert!(smi.contains("exit=0"), "{smi}");
    assert_eq!(out.section("gpus").len(), 2, "{:?}", out.section("gpus"));
    let libs = out.section("libs");
    assert!(
        libs.contains(&format!("libcuda.so.{DRIVER_VERSION}")),
        "{libs:?}"
    );
    assert!(
        libs.contains(&"libcuda.so.1".to_string()),
        "soname link made by ldconfig: {libs:?}"
    );
    assert!(
        libs.contains(&format!("libnvidia-ml.so.{DRIVER_VERSION}")),
        "{libs:?}"
    );
    assert!(
        !libs
            .iter()
            .any(|l| l.contains("glcore") || l.contains("foo")),
        "graphics and non-driver libraries stay out: {libs:?}"
    );
    let bins = out.section("bins");
    for bin in [
        "nvidia-smi",
        "nvidia-debugdump",
        "nvidia-persistenced",
        "nvidia-cuda-mps-control",
        "nvidia-cuda-mps-server",
    ] {
        assert!(bins.contains(&bin.to_string()), "{bin}: {bins:?}");
    }
    assert_eq!(out.section("firmware"), ["gsp_ga10x.bin", "gsp_tu10x.bin"]);
    let write = out.section("write").join("\n");
    assert!(
        write.contains("Read-only file system") && write.ends_with("refused"),
        "{write}"
    );
    let flags = out.section("mountflags").join("\n");
    assert!(flags.contains("ro,nosuid,nodev"), "{flags}");
    assert_eq!(out.section("params"), ["ModifyDeviceFiles: 0"]);
    assert_eq!(
        out.section("ipc"),
        ["/run/nvidia-persistenced/socket", "/tmp/nvidia-mps"]
    );
    assert_eq!(host_mounts(), before, "the host's mount table changed");
}

#[test]
fn one_gpu_by_index_or_uuid_shows_only_that_gpu() {
    if !prerequisites("one_gpu_by_index_or_uuid_shows_only_that_gpu") {
        return;
    }
    let sim = Sim::build(2);
    let uuid1 = sim.uuid(1);
    for (name, value) in [
        ("index", "1".to_string()),
        ("uuid", uuid1.clone()),
        (
            "uuid-upper-case",
            format!("GPU-{}", uuid1["GPU-".len()..].to_uppercase()),
        ),
    ] {
        let env = format!("NVIDIA_VISIBLE_DEVICES={value}");
        let out = run_inspect(name, &sim, &[&env], "").expect_success();
        let dev = out.section("dev");
        assert!(
            dev.contains(&"nvidia1".to_string()) && !dev.contains(&"nvidia0".to_string()),
            "{name}: {dev:?}"
        );
        let smi = out.section("smi").join("\n");
        assert!(
            smi.contains(&uuid1) && !smi.contains(&sim.uuid(0)),
            "{name}: {smi}"
        );
        assert_eq!(out.section("gpus"), ["0000:11:00.0"], "{name}");
    }
}

#[test]
fn device_cgroup_rules_are_what_makes_the_nodes_usable() {
    if !prerequisites("device_cgroup_rules_are_what_makes_the_nodes_usable") {
        return;
    }
    let sim = Sim::build(1);
    let out = run_inspect(
        "nocgroups",
        &sim,
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "no-cgroups = true",
    )
    .expect_success();
    // The node is there, but runc's default rules deny it: nvidia-smi sees nothing.
    assert!(out.section("dev").contains(&"nvidia0".to_string()));
    let smi = out.section("smi").join("\n");
    assert!(
        smi.contains("No devices were found") && smi.contains("exit=6"),
        "{smi}"
    );
}

#[test]
fn none_gives_driver_files_but_no_gpu() {
    if !prerequisites("none_gives_driver_files_but_no_gpu") {
        return;
    }
    let sim = Sim::build(2);
    let out = run_inspect("none", &sim, &["NVIDIA_VISIBLE_DEVICES=none"], "").expect_success();
    assert!(out.section("dev").is_empty(), "{:?}", out.section("dev"));
    assert!(out
        .section("libs")
        .contains(&format!("libcuda.so.{DRIVER_VERSION}")));
    let smi = out.section("smi").join("\n");
    assert!(smi.contains("No devices were found"), "{smi}");
    assert!(out.section("gpus").is_empty());
}

#[test]
fn void_unset_and_empty_leave_the_container_untouched() {
    if !prerequisites("void_unset_and_empty_leave_the_container_untouched") {
        return;
    }
    let sim = Sim::build(1);
    for (name, env) in [
        ("void", vec!["NVIDIA_VISIBLE_DEVICES=void"]),
        ("unset", vec![]),
        ("empty", vec!["NVIDIA_VISIBLE_DEVICES="]),
    ] {
        let out = run_inspect(name, &sim, &env, "").expect_success();
        assert!(out.section("dev").is_empty(), "{name}");
        assert!(
            out.section("libs").is_empty(),
            "{name}: {:?}",
            out.section("libs")
        );
        assert!(out.section("bins").is_empty(), "{name}");
        assert_eq!(
            out.section("smi"),
            ["exit=127"],
            "{name}: nvidia-smi must not exist"
        );
    }
}

#[test]
fn utility_only_gives_nvidia_smi_but_no_libcuda() {
    if !prerequisites("utility_only_gives_nvidia_smi_but_no_libcuda") {
        return;
    }
    let sim = Sim::build(1);
    let out = run_inspect(
        "utility",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=utility",
        ],
        "",
    )
    .expect_success();
    let libs = out.section("libs");
    assert!(!libs.iter().any(|l| l.contains("cuda")), "{libs:?}");
    assert!(out.section("smi").join("\n").contains(&sim.uuid(0)));
    assert!(!out.section("bins").iter().any(|b| b.contains("mps")));
}

#[test]
fn requirements_are_checked_against_the_driver() {
    if !prerequisites("requirements_are_checked_against_the_driver") {
        return;
    }
    let sim = Sim::build(1);
    // Met: cuda from libcuda's cuDriverGetVersion, arch and brand from (fake) NVML.
    run_inspect(
        "req-ok",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.0 brand=tesla,driver>=470,driver<471",
            "NVIDIA_REQUIRE_ARCH=arch>=9.0,brand=tesla",
        ],
        "",
    )
    .expect_success();
    run_inspect("legacy", &sim, &["CUDA_VERSION=12.4.1"], "").expect_success();
    let out = run_inspect(
        "req-cuda",
        &sim,
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99.0"],
        "",
    );
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("cuda>=99.0 does not hold (host: cuda 13.0, driver 580.159.04)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("update your driver or use an earlier CUDA image"),
        "{}",
        out.stderr
    );
    let out = run_inspect(
        "req-arch",
        &sim,
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_ARCH=arch>=10.0"],
        "",
    );
    assert!(
        !out.success
            && out.stderr.contains("arch>=10.0 does not hold")
            && out.stderr.contains("arch 9.0"),
        "{}",
        out.stderr
    );
    let out = run_inspect("legacy-old", &sim, &["CUDA_VERSION=99.1"], "");
    assert!(
        !out.success && out.stderr.contains("CUDA_VERSION"),
        "{}",
        out.stderr
    );
    run_inspect(
        "req-disabled",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_REQUIRE_CUDA=cuda>=99.0",
            "NVIDIA_DISABLE_REQUIRE=1",
        ],
        "",
    )
    .expect_success();
}

#[test]
fn bad_requests_fail_the_start_with_a_clear_message_and_leave_nothing() {
    if !prerequisites("bad_requests_fail_the_start_with_a_clear_message_and_leave_nothing") {
        return;
    }
    let sim = Sim::build(2);
    let cases = [
        (
            "bad-index",
            "NVIDIA_VISIBLE_DEVICES=5",
            "GPU 5 requested, this host has GPUs 0-1",
        ),
        (
            "bad-uuid",
            "NVIDIA_VISIBLE_DEVICES=GPU-00000000-dead",
            "GPU GPU-00000000-dead requested, this host has GPUs 0-1",
        ),
        (
            "bad-form",
            "NVIDIA_VISIBLE_DEVICES=first",
            "\"first\" is not a GPU index",
        ),
        (
            "ambiguous",
            "NVIDIA_VISIBLE_DEVICES=GPU-5e1f0000",
            "GPU GPU-5e1f0000 requested: it matches several GPUs",
        ),
        (
            "bad-cap",
            "NVIDIA_DRIVER_CAPABILITIES=compute,gaming",
            "unknown driver capability \"gaming\"",
        ),
    ];
    let before = host_mounts();
    for (name, env, message) in cases {
        let log = std::env::temp_dir().join(format!("gpuhook-test-{name}.log"));
        let bundle = Bundle::new(
            name,
            &["NVIDIA_VISIBLE_DEVICES=0", env],
            INSPECT,
            &sim.config(&log, ""),
        );
        let out = bundle.run_refused(name);
        assert!(
            out.stderr
                .contains(&format!("gpuhook: container {}: ", bundle.id)),
            "{name}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(message), "{name}: {}", out.stderr);
    }
    assert_eq!(host_mounts(), before);
}

#[test]
fn missing_driver_is_reported() {
    if !prerequisites("missing_driver_is_reported") {
        return;
    }
    let sim = Sim::build(1);
    let config = sim
        .config(&std::env::temp_dir().join("gpuhook-test-nodriver.log"), "")
        .replace(
            &sim.proc_driver().display().to_string(),
            "/nonexistent/proc/driver/nvidia",
        );
    let bundle = Bundle::new(
        "nodriver",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        INSPECT,
        &config,
    );
    let out = bundle.run();
    assert!(!out.success);
    assert!(out.stderr.contains("no NVIDIA driver found under /nonexistent/proc/driver/nvidia: is the kernel module loaded?"), "{}", out.stderr);
}

#[test]
fn failure_midway_takes_back_what_it_created() {
    if !prerequisites("failure_midway_takes_back_what_it_created") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join("gpuhook-test-midway.log");
    let bundle = Bundle::new(
        "midway",
        &["NVIDIA_VISIBLE_DEVICES=0"],
        INSPECT,
        &sim.config(&log, ""),
    );
    // A directory where nvidia-smi must go: found after device nodes and libraries were mounted.
    std::fs::create_dir_all(bundle.rootfs().join("usr/bin/nvidia-smi")).unwrap();
    let mounts_before = host_mounts();
    let out = bundle.run_refused("nvidia-smi directory");
    assert!(
        out.stderr
            .contains("/usr/bin/nvidia-smi in the container is a directory in the image"),
        "{}",
        out.stderr
    );
    assert_eq!(host_mounts(), mounts_before);
}

/// Each selected GPU's real procfs directory is in the container, read-only, with every file
/// the driver has there (not a copy of `information` alone); the other GPUs have no entry.
#[test]
fn proc_driver_shows_the_real_directory_of_each_selected_gpu_only() {
    if !prerequisites("proc_driver_shows_the_real_directory_of_each_selected_gpu_only") {
        return;
    }
    let sim = Sim::build(2);
    let log =
        std::env::temp_dir().join(format!("gpuhook-test-procdirs-{}.log", std::process::id()));
    let script = "ls /proc/driver/nvidia/gpus; ls /proc/driver/nvidia/gpus/*; \
                  cat /proc/driver/nvidia/gpus/*/power; \
                  (echo x > /proc/driver/nvidia/gpus/0000:11:00.0/registry) 2>&1 || echo refused";
    let out = Bundle::new(
        "procdirs",
        &["NVIDIA_VISIBLE_DEVICES=1"],
        script,
        &sim.config(&log, ""),
    )
    .run()
    .expect_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0000:11:00.0", "{}", out.stdout);
    for file in ["information", "power", "registry"] {
        assert!(lines.contains(&file), "{file} missing:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("Video Memory:"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("0000:10:00.0"),
        "GPU 0 visible:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Read-only file system"),
        "{}",
        out.stdout
    );
}
