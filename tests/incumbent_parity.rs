//! Where gpuhook must give what NVIDIA's toolkit gives, through real runc against the
//! simulated driver: legacy CUDA images, `void` in a device list, brand names in requirements,
//! one NVML initialisation per run, and a GPU whose procfs `information` cannot be used.

mod support;

use std::collections::BTreeSet;

use support::*;

/// Every NVIDIA file, then the device nodes, then what NVML in the container lists.
fn script() -> String {
    format!(
        "{NVIDIA_FILES}\necho '== dev =='; ls /dev | grep nvidia\n\
         echo '== smi =='; nvidia-smi -L\necho '== end =='\n"
    )
}

struct Seen {
    files: BTreeSet<String>,
    dev: Vec<String>,
    smi: Vec<String>,
}

fn log_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gpuhook-parity-{name}-{}.log", std::process::id()))
}

fn start(name: &str, sim: &Sim, env: &[&str]) -> (Bundle, RunResult) {
    let bundle = Bundle::new(name, env, &script(), &sim.config(&log_path(name), ""));
    let out = bundle.run();
    (bundle, out)
}

fn seen(name: &str, sim: &Sim, env: &[&str]) -> Seen {
    let out = start(name, sim, env).1.expect_success();
    Seen {
        files: out.section("files").into_iter().collect(),
        dev: out.section("dev"),
        smi: out.section("smi"),
    }
}

#[test]
fn a_legacy_image_gets_every_capability() {
    if !prerequisites("a_legacy_image_gets_every_capability") {
        return;
    }
    let sim = Sim::build(2);
    // CUDA_VERSION set, nothing else: every GPU and every capability, the same as asking
    // for `all` of both.
    let legacy = seen("legacy", &sim, &["CUDA_VERSION=12.4.1"]);
    let all = seen(
        "all-caps",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_DRIVER_CAPABILITIES=all",
        ],
    );
    assert_eq!(legacy.files, all.files);
    assert_eq!(legacy.dev, all.dev);
    for graphics_and_video in ["libnvidia-glcore.so", "libnvcuvid.so", "libnvidia-ngx.so"] {
        let path = format!("{LIB_DIR}/{graphics_and_video}.{DRIVER_VERSION}");
        assert!(legacy.files.contains(&path), "{path}: {:?}", legacy.files);
    }
    assert!(
        legacy.dev.contains(&"nvidia1".to_string()),
        "{:?}",
        legacy.dev
    );
    // An image that names its capabilities gets those only.
    let named = seen(
        "legacy-named",
        &sim,
        &["CUDA_VERSION=12.4.1", "NVIDIA_DRIVER_CAPABILITIES=utility"],
    );
    assert!(
        !named.files.iter().any(|f| f.contains("libcuda")),
        "{:?}",
        named.files
    );

    // An empty CUDA_VERSION is no legacy image: nothing asked, nothing given ...
    let (_, out) = start("empty-cuda", &sim, &["CUDA_VERSION="]);
    let out = out.expect_success();
    assert!(
        out.section("files").is_empty() && out.section("dev").is_empty(),
        "{}",
        out.stdout
    );
    // ... and with a device list, the default capabilities only.
    let empty = seen(
        "empty-cuda-gpu",
        &sim,
        &["CUDA_VERSION=", "NVIDIA_VISIBLE_DEVICES=all"],
    );
    let default = seen("default-caps", &sim, &["NVIDIA_VISIBLE_DEVICES=all"]);
    assert_eq!(empty.files, default.files);
    assert!(empty.files.len() < legacy.files.len());
}

#[test]
fn a_device_list_containing_void_is_left_alone() {
    if !prerequisites("a_device_list_containing_void_is_left_alone") {
        return;
    }
    let sim = Sim::build(1);
    for (name, value) in [("void-last", "0,void"), ("void-first", "void,0")] {
        let env = format!("NVIDIA_VISIBLE_DEVICES={value}");
        let (bundle, out) = start(name, &sim, &[&env]);
        let out = out.expect_success();
        assert!(out.section("dev").is_empty(), "{value}: {}", out.stdout);
        assert!(out.section("files").is_empty(), "{value}: {}", out.stdout);
        let log = std::fs::read_to_string(log_path(name)).unwrap_or_default();
        assert!(
            log.contains(&format!("container={} no GPU requested", bundle.id)),
            "{value}: {log}"
        );
    }
}

#[test]
fn brand_requirements_use_the_incumbents_names() {
    if !prerequisites("brand_requirements_use_the_incumbents_names") {
        return;
    }
    // NVML_BRAND_NVIDIA_VWS (10): the toolkit calls it `nvidiavws` (Rust's Debug name: VWS).
    let sim = Sim::build_with_env(1, &[("SIM_BRAND", "10")]);
    seen(
        "brand-ok",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_REQUIRE_BRAND=brand=NvidiaVWS",
        ],
    );
    let (bundle, out) = start(
        "brand-no",
        &sim,
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_BRAND=brand=vws"],
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains(&format!(
            "gpuhook: container {}: requirement NVIDIA_REQUIRE_BRAND=\"brand=vws\" not met: brand=vws does not hold (host: driver 580.159.04, arch 9.0, brand nvidiavws)",
            bundle.id
        )),
        "{}",
        out.stderr
    );
    // The default simulated GPU is a Tesla; alternatives still work per group.
    let tesla = Sim::build(1);
    seen(
        "brand-tesla",
        &tesla,
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_REQUIRE_BRAND=brand=geforce brand=tesla",
        ],
    );
}

#[test]
fn nvml_is_initialised_once_for_arch_brand_and_mig() {
    if !prerequisites("nvml_is_initialised_once_for_arch_brand_and_mig") {
        return;
    }
    let sim = Sim::build_with_mig(2);
    sim.take_nvml_inits();
    let mig_and_arch = seen(
        "nvml-once",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=0:1",
            "NVIDIA_REQUIRE_ARCH=arch>=9.0,brand=tesla",
        ],
    );
    assert!(
        mig_and_arch.smi.iter().any(|l| l.contains("MIG")),
        "{:?}",
        mig_and_arch.smi
    );
    // The container's own nvidia-smi cannot reach the host's counter: these are the hook's.
    assert_eq!(
        sim.take_nvml_inits(),
        1,
        "the hook initialised NVML more than once"
    );
    // `info` needs both too.
    let config = sim.dir.path().join("gpuhook.toml");
    std::fs::write(&config, sim.config(&log_path("nvml-info"), "")).unwrap();
    sh(std::process::Command::new(gpuhook_bin())
        .arg("info")
        .env("GPUHOOK_CONFIG", &config));
    assert_eq!(
        sim.take_nvml_inits(),
        1,
        "gpuhook info initialised NVML more than once"
    );
    // Neither needed: none.
    seen("nvml-none", &sim, &["NVIDIA_VISIBLE_DEVICES=1"]);
    assert_eq!(sim.take_nvml_inits(), 0);
}

/// A simulated host with three GPUs whose GPU 0 (bus 0000:10:00.0) `information` is made
/// unusable by `break_it`.
fn sim_with_broken_gpu0(break_it: impl Fn(&std::path::Path)) -> Sim {
    let sim = Sim::build(3);
    let information = sim.proc_driver().join("gpus/0000:10:00.0/information");
    std::fs::remove_file(&information).unwrap();
    break_it(&information);
    sim
}

#[test]
fn an_unusable_gpu_information_fails_only_requests_for_that_gpu() {
    if !prerequisites("an_unusable_gpu_information_fails_only_requests_for_that_gpu") {
        return;
    }
    let garbage = |path: &std::path::Path| std::fs::write(path, "\u{0}\u{1}garbage\n").unwrap();
    // A directory in its place: unreadable even for root, whom mode bits do not stop.
    let unreadable = |path: &std::path::Path| std::fs::create_dir(path).unwrap();
    for (kind, sim, why) in [
        (
            "garbage",
            sim_with_broken_gpu0(garbage),
            "has no valid `GPU UUID`",
        ),
        (
            "unreadable",
            sim_with_broken_gpu0(unreadable),
            "cannot read",
        ),
    ] {
        // GPU 1 is still GPU 1 (nvidia-smi's numbering): its node, its UUID.
        let one = seen(&format!("{kind}-1"), &sim, &["NVIDIA_VISIBLE_DEVICES=1"]);
        assert!(
            one.dev.contains(&"nvidia1".to_string()),
            "{kind}: {:?}",
            one.dev
        );
        assert!(
            !one.dev.contains(&"nvidia0".to_string()),
            "{kind}: {:?}",
            one.dev
        );
        assert!(
            one.smi.join("\n").contains(&sim.uuid(1)),
            "{kind}: {:?}",
            one.smi
        );

        // GPU 0 itself: refused, saying which GPU and why.
        let name = format!("{kind}-0");
        let bundle = Bundle::new(
            &name,
            &["NVIDIA_VISIBLE_DEVICES=0"],
            &script(),
            &sim.config(&log_path(&name), ""),
        );
        let out = bundle.run_refused(&name);
        let wanted = format!(
            "gpuhook: container {}: GPU 0 requested, but GPU 0 (0000:10:00.0) cannot be used: ",
            bundle.id
        );
        assert!(
            out.stderr.contains(&wanted) && out.stderr.contains(why),
            "{kind}: {}",
            out.stderr
        );

        // `all`: the usable GPUs, and the log says which one was skipped and why.
        let name = format!("{kind}-all");
        let (bundle, out) = start(&name, &sim, &["NVIDIA_VISIBLE_DEVICES=all"]);
        let out = out.expect_success();
        let dev = out.section("dev");
        assert!(
            dev.contains(&"nvidia1".to_string())
                && dev.contains(&"nvidia2".to_string())
                && !dev.contains(&"nvidia0".to_string()),
            "{kind}: {dev:?}"
        );
        let log = std::fs::read_to_string(log_path(&name)).unwrap();
        let warning = format!(
            "Warn: container={} skipped unusable GPU 0 (0000:10:00.0): ",
            bundle.id
        );
        assert!(
            log.lines().any(|l| l.contains(&warning) && l.contains(why)),
            "{kind}: {log}"
        );
        assert!(
            log.contains(&format!("gpus=[1={},2={}]", sim.uuid(1), sim.uuid(2))),
            "{kind}: {log}"
        );
    }
}
