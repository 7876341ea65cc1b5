//! `gpuhook doctor` on a healthy simulated node and on nodes broken in the ways operators
//! meet: a missing device node, a bad config key, an engine pointing at a missing runtime,
//! NVIDIA's hook name not being gpuhook.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

struct Node {
    sim: Sim,
    dir: tempfile::TempDir,
}

impl Node {
    /// A node set up as the README says: `gpuhook install`, `gpuhook configure` for both
    /// engines.
    fn healthy() -> Node {
        let sim = Sim::build(1);
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        sh(Command::new(gpuhook_bin())
            .args(["install", "--bin-dir"])
            .arg(&bin));
        for (engine, file) in [("docker", "daemon.json"), ("containerd", "config.toml")] {
            sh(Command::new(gpuhook_bin())
                .args(["configure", "--runtime", engine, "--config"])
                .arg(dir.path().join(file))
                .arg("--runtime-path")
                .arg(gpuhook_runtime_bin()));
        }
        let node = Node { sim, dir };
        node.write_config("");
        node
    }
    /// The simulated driver's config, `hook_extra` added to its `[hook]` table.
    fn write_config(&self, hook_extra: &str) {
        let text = self.sim.config(&self.dir.path().join("log"), hook_extra);
        std::fs::write(self.dir.path().join("gpuhook.toml"), text).unwrap();
    }
    fn doctor(&self) -> (bool, String) {
        let out: Output = Command::new(gpuhook_bin())
            .arg("doctor")
            .arg("--docker-config")
            .arg(self.dir.path().join("daemon.json"))
            .arg("--containerd-config")
            .arg(self.dir.path().join("config.toml"))
            .env("GPUHOOK_CONFIG", self.dir.path().join("gpuhook.toml"))
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.dir.path().join("bin").display()
                ),
            )
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

fn failures(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[test]
fn a_healthy_node_passes() {
    if !prerequisites_with("a_healthy_node_passes", &["dockerd", "containerd"]) {
        return;
    }
    let node = Node::healthy();
    let (ok, report) = node.doctor();
    assert!(ok, "{report}");
    assert!(failures(&report).is_empty(), "{report}");
    for wanted in [
        "driver 580.159.04 loaded, 1 GPU(s)",
        "is gpuhook: docker run --gpus uses it",
        "docker: runtime registered",
        "containerd: runtime registered",
        "is a static executable",
    ] {
        assert!(report.contains(wanted), "{wanted} missing:\n{report}");
    }
}

#[test]
fn broken_nodes_fail_with_the_fix() {
    if !prerequisites_with("broken_nodes_fail_with_the_fix", &["dockerd", "containerd"]) {
        return;
    }
    // A GPU whose device node is gone.
    let node = Node::healthy();
    std::fs::remove_file(node.sim.dev().join("nvidia0")).unwrap();
    let (ok, report) = node.doctor();
    assert!(!ok);
    let fails = failures(&report);
    assert!(
        fails.len() == 1 && fails[0].contains("has no device node nvidia0"),
        "{report}"
    );
    assert!(report.contains("nvidia-modprobe"), "{report}");

    // A config key that does not exist: named, and the rest still checked.
    let node = Node::healthy();
    node.write_config("no-cgroup = true");
    let (ok, report) = node.doctor();
    assert!(!ok);
    assert!(
        failures(&report)
            .iter()
            .any(|l| l.contains("unknown field `no-cgroup`")),
        "{report}"
    );
    // The other checks still run (with the defaults).
    assert!(report.contains("is a static executable"), "{report}");

    // Docker's config names a runtime binary that is not there.
    let node = Node::healthy();
    sh(Command::new(gpuhook_bin())
        .args(["configure", "--runtime", "docker", "--config"])
        .arg(node.dir.path().join("daemon.json"))
        .args(["--runtime-path", "/nonexistent/gpuhook-runtime"]));
    let (ok, report) = node.doctor();
    assert!(!ok);
    assert!(
        failures(&report)
            .iter()
            .any(|l| l.contains("/nonexistent/gpuhook-runtime, which does not exist")),
        "{report}"
    );

    // NVIDIA's hook name is some other program.
    let node = Node::healthy();
    let hook = node.dir.path().join("bin/nvidia-container-runtime-hook");
    std::fs::remove_file(&hook).unwrap();
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (ok, report) = node.doctor();
    assert!(!ok);
    assert!(
        failures(&report)
            .iter()
            .any(|l| l.contains("is not gpuhook")),
        "{report}"
    );
    assert!(Path::new(&hook).exists());
}

fn warnings(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.starts_with("warn")).collect()
}

/// What doctor says about containerd on a Kubernetes node: the CRI runtime handler a
/// RuntimeClass names, read in the config's own format version, and what breaks it.
#[test]
fn kubernetes_node_containerd_checks() {
    if !prerequisites_with("kubernetes_node_containerd_checks", &["containerd"]) {
        return;
    }
    let node = Node::healthy();
    let containerd_config = node.dir.path().join("config.toml");
    let write_containerd = |text: &str| std::fs::write(&containerd_config, text).unwrap();

    // A version-less (format 1) file, configured as the README says, gpuhook the default.
    write_containerd("[plugins.cri.containerd]\n  snapshotter = \"overlayfs\"\n");
    sh(Command::new(gpuhook_bin())
        .args([
            "configure",
            "--runtime",
            "containerd",
            "--set-as-default",
            "--config",
        ])
        .arg(&containerd_config)
        .arg("--runtime-path")
        .arg(gpuhook_runtime_bin()));
    let (ok, report) = node.doctor();
    assert!(ok, "{report}");
    let runtime = gpuhook_runtime_bin().display().to_string();
    assert!(
        report.contains(&format!("ok    containerd: runtime registered ({runtime}) as CRI runtime handler \"gpuhook\", the default runtime: a RuntimeClass with handler: gpuhook selects it")),
        "{report}"
    );
    assert!(
        !warnings(&report).iter().any(|l| l.contains("containerd")),
        "{report}"
    );

    // A handler whose binary is gone: a failure naming the handler and the path.
    write_containerd("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpu]\nruntime_type = \"io.containerd.runc.v2\"\ncontainer_annotations = [\"cdi.k8s.io/*\"]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpu.options]\nBinaryName = \"/nonexistent/gpuhook-runtime\"\n");
    let (ok, report) = node.doctor();
    assert!(!ok);
    assert!(
        failures(&report)
            .iter()
            .any(|l| l.contains("runtime handler \"gpu\" in",)
                && l.contains("names /nonexistent/gpuhook-runtime, which does not exist")),
        "{report}"
    );

    // Hand-written without runtime_type or annotations, in a containerd without CRI.
    write_containerd(&format!("version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook.options]\nBinaryName = {runtime:?}\n"));
    let (ok, report) = node.doctor();
    assert!(!ok);
    assert!(
        failures(&report)
            .iter()
            .any(|l| l.contains("has runtime_type \"\": only io.containerd.runc.v2")),
        "{report}"
    );
    assert!(
        warnings(&report)
            .iter()
            .any(|l| l.contains("CRI plugin is in disabled_plugins")),
        "{report}"
    );
    write_containerd(&format!("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook]\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook.options]\nBinaryName = {runtime:?}\n"));
    let (ok, report) = node.doctor();
    assert!(ok, "a warning alone does not fail: {report}");
    assert!(
        warnings(&report)
            .iter()
            .any(|l| l.contains("does not pass cdi.k8s.io/* annotations")),
        "{report}"
    );

    // Version-2 tables in a version-less file: containerd's CRI plugin does not read them.
    write_containerd(&format!("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook.options]\nBinaryName = {runtime:?}\n"));
    let (_, report) = node.doctor();
    assert!(
        warnings(&report)
            .iter()
            .any(|l| l.contains("containerd: no gpuhook runtime in")),
        "{report}"
    );
    assert!(
        warnings(&report).iter().any(|l| l.contains(
            "is a version 1 file, so containerd ignores its [plugins.\"io.containerd.grpc.v1.cri\"] tables"
        )),
        "{report}"
    );
}

#[test]
fn skipped_scripts_and_unusable_gpus_are_named() {
    if !prerequisites_with("skipped_scripts_and_unusable_gpus_are_named", &[]) {
        return;
    }
    // Only the host's wrapper script is left under nvidia-smi's name: it is there, but
    // skipped on purpose, and doctor says so rather than "not found".
    let node = Node::healthy();
    std::fs::remove_file(
        node.sim
            .driver_root()
            .join("usr/local/nvidia/bin/nvidia-smi"),
    )
    .unwrap();
    let script = node.sim.driver_root().join("usr/bin/nvidia-smi");
    let (_, report) = node.doctor();
    let line = report
        .lines()
        .find(|l| l.contains("nvidia-smi") && l.starts_with("warn"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!(
            "nvidia-smi {} is a script (skipped on purpose",
            script.display()
        )),
        "{report}"
    );
    assert!(!report.contains("nvidia-smi not found"), "{report}");

    // A GPU whose procfs information is garbage: one FAIL naming it, the fix on the next line.
    let node = Node::healthy();
    let info = node.sim.proc_driver().join("gpus/0000:10:00.0/information");
    std::fs::write(&info, "garbage\n").unwrap();
    let (ok, report) = node.doctor();
    assert!(!ok, "{report}");
    assert!(
        failures(&report)
            .iter()
            .any(|l| l.contains("GPU 0 (0000:10:00.0) cannot be used")
                && l.contains("information has no valid")),
        "{report}"
    );
    assert!(
        report.contains("-> check the GPU (nvidia-smi -q -i 0000:10:00.0"),
        "{report}"
    );
}

/// Each GPU's compute mode; with caps in `[memory]`, a Default-mode GPU gets the warning that a
/// process bypassing MPS is uncapped and the operator's fix; a missing MPS control binary
/// fails.
#[test]
fn compute_modes_and_the_default_mode_warning_with_caps() {
    if !prerequisites_with("compute_modes_and_the_default_mode_warning_with_caps", &[]) {
        return;
    }
    let node = Node::healthy();
    let uuid = node.sim.uuid(0);
    let (ok, report) = node.doctor();
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("ok    GPU 0 ({uuid}) compute mode Default\n")),
        "{report}"
    );
    let config = node.dir.path().join("gpuhook.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}[memory]\ndefault-limit = \"2G\"\n")).unwrap();
    let (ok, report) = node.doctor();
    assert!(ok, "a warning is no failure: {report}");
    assert!(
        report.contains(&format!(
            "warn  GPU 0 ({uuid}) compute mode Default, with GPU memory caps"
        )),
        "{report}"
    );
    assert!(
        report.contains("nvidia-smi -i 0 -c EXCLUSIVE_PROCESS"),
        "{report}"
    );
    std::fs::write(node.sim.dir.path().join("compute-mode"), "3\n").unwrap();
    let (_, report) = node.doctor();
    assert!(
        report.contains(&format!(
            "ok    GPU 0 ({uuid}) compute mode Exclusive_Process\n"
        )),
        "{report}"
    );
    std::fs::remove_file(
        node.sim
            .driver_root()
            .join("usr/bin/nvidia-cuda-mps-control"),
    )
    .unwrap();
    let (ok, report) = node.doctor();
    assert!(!ok, "{report}");
    assert_eq!(failures(&report).len(), 1, "{report}");
    assert!(
        failures(&report)[0].contains("nvidia-cuda-mps-control"),
        "{report}"
    );
}
