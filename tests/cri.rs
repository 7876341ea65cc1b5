//! A Kubernetes GPU node, proven through CRI: a private containerd with its CRI plugin,
//! registered with `gpuhook configure --runtime containerd`, driven over its socket with the
//! calls the kubelet makes (RunPodSandbox with `runtime_handler: gpuhook`, CreateContainer,
//! StartContainer, ExecSync, StopPodSandbox, RemovePodSandbox), for each way NVIDIA's
//! k8s-device-plugin hands GPUs to a container and for the GPU Operator's driver root.
//! Everything runs against a simulated driver.

#[path = "support/cri.rs"]
mod cri_node;
#[path = "support/oci_image.rs"]
mod oci_image;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cri_node::{CriNode, PodRequest, PodRun};
use support::engines::{sees_gpus, ENGINE_INSPECT};
use support::watch::HostWatch;
use support::*;

/// Where the device plugin's volume-mounts strategy puts its `/dev/null` mounts.
const DEVICE_LIST_DIR: &str = "/var/run/nvidia-container-devices";
/// The CDI kind of the device plugin's CDI strategies (its vendor is fixed).
const PLUGIN_CDI_KIND: &str = "k8s.device-plugin.nvidia.com/gpu";
/// gpuhook's CDI spec directories, in priority order (the last wins): where the device plugin
/// writes its own spec, then gpuhook's.
const SPEC_DIRS: [&str; 2] = ["plugin", "gpuhook"];
/// Where the GPU Operator's driver container puts the driver root.
const OPERATOR_DRIVER_ROOT: &str = "/run/nvidia/driver";

/// What a case expects of its pod.
enum Expect {
    /// It starts and its container sees exactly these GPUs (indices), with libcuda.
    Gpus(Vec<usize>),
    /// It starts and its container has no GPU file at all.
    NoGpu,
    /// StartContainer fails with a message containing this.
    Refused(&'static str),
}

/// One pod: gpuhook's config for it and what the kubelet passes for its container.
struct Case<'a> {
    name: &'static str,
    /// Top-level keys of gpuhook's config (and tables other than `[driver]`, `[log]`, `[cdi]`).
    policy: &'static str,
    /// gpuhook's `driver.root` (the simulated tree, or where the GPU Operator puts it).
    driver_root: PathBuf,
    /// `cdi.spec-dirs`, as directories of the test's CDI directory.
    spec_dirs: [&'static str; 2],
    request: PodRequest<'a>,
    expect: Expect,
}

/// The node under test: a simulated driver, gpuhook's config (rewritten per pod, since every
/// shim and hook run reads it afresh) and the CRI containerd.
struct Node {
    /// First, so it is dropped first: its pods go before the driver and config they use.
    cri: CriNode,
    sim: Sim,
    dir: tempfile::TempDir,
}

impl Node {
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("gpuhook.toml")
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gpuhook.log")).unwrap_or_default()
    }
    fn cdi_dir(&self) -> PathBuf {
        self.dir.path().join("cdi")
    }

    /// gpuhook's config: `policy` keys, the simulated driver with `driver_root`, specs only
    /// from `spec_dirs` of this test's CDI directory.
    fn write_config(&self, policy: &str, driver_root: &Path, spec_dirs: [&str; 2]) {
        let spec_dirs = spec_dirs.map(|d| self.cdi_dir().join(d));
        let text = format!(
            "{policy}\n[driver]\nroot = {driver_root:?}\ndev-root = {:?}\nproc-driver-root = {:?}\n\
             [log]\nfile = {:?}\nlevel = \"debug\"\n[cdi]\nspec-dirs = [{:?}, {:?}]\n",
            self.sim.dev(),
            self.sim.proc_driver(),
            self.dir.path().join("gpuhook.log"),
            spec_dirs[0],
            spec_dirs[1],
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Runs the case's pod, checks what its container saw, and takes the pod down again.
    fn run(&self, case: &Case) -> Result<(), String> {
        self.write_config(case.policy, &case.driver_root, case.spec_dirs);
        let run = self.cri.run_pod(case.name, &case.request, ENGINE_INSPECT);
        let checked = self.check(case, &run);
        let removed = self.cri.remove_all_pods();
        checked.and(removed)
    }

    fn check(&self, case: &Case, run: &Result<PodRun, String>) -> Result<(), String> {
        match (&case.expect, run) {
            (Expect::Gpus(gpus), Ok(run)) => {
                sees_gpus(&self.sim, &run.seen, gpus, true)?;
                self.shim_logged(&run.container_id)
            }
            (Expect::NoGpu, Ok(run)) => {
                let seen = &run.seen;
                let files = [seen.section("dev"), seen.section("libs")].concat();
                if seen.success && files.is_empty() {
                    Ok(())
                } else {
                    Err(format!("GPU files given: {}", seen.describe()))
                }
            }
            // The shim runs when the task is created, at StartContainer: that call fails.
            (Expect::Refused(message), Err(why)) if why.contains(message) => {
                if why.starts_with("StartContainer") {
                    eprintln!("  refused as the kubelet would report it: {why}");
                    Ok(())
                } else {
                    Err(format!("refused by the wrong call: {why}"))
                }
            }
            (Expect::Refused(message), Err(why)) => {
                Err(format!("refused without {message:?}: {why}"))
            }
            (Expect::Refused(_), Ok(run)) => Err(format!("started: {}", run.seen.describe())),
            (_, Err(why)) => Err(format!(
                "{why}\ncontainerd:\n{}",
                self.cri.daemon.log_tail()
            )),
        }
    }

    /// The container went through gpuhook-runtime, which the `gpuhook` handler names.
    fn shim_logged(&self, container_id: &str) -> Result<(), String> {
        let log = self.log();
        let wanted = format!("runtime: container={container_id} ");
        if log.lines().any(|l| l.contains(&wanted)) {
            Ok(())
        } else {
            Err(format!(
                "no gpuhook-runtime line for {container_id}:\n{log}"
            ))
        }
    }

    /// The specs of the device plugin's cdi-annotations strategy: gpuhook's, made by `gpuhook
    /// cdi generate --device-name-strategy uuid --kind k8s.device-plugin.nvidia.com/gpu`, and
    /// one standing for the spec the plugin writes for itself, whose hook is NVIDIA's
    /// `nvidia-cdi-hook` (not on a gpuhook node: it fails the container where it wins).
    fn write_cdi_specs(&self) {
        self.write_config("", &self.sim.driver_root(), SPEC_DIRS);
        let [plugin, ours] = SPEC_DIRS.map(|d| self.cdi_dir().join(d));
        sh(Command::new(gpuhook_bin())
            .args(["cdi", "generate", "--device-name-strategy", "uuid"])
            .args(["--kind", PLUGIN_CDI_KIND, "--output"])
            .arg(ours.join("nvidia.json"))
            .env("GPUHOOK_CONFIG", self.config_path()));
        let plugins_own = serde_json::json!({
            "cdiVersion": "0.5.0",
            "kind": PLUGIN_CDI_KIND,
            "devices": [{"name": self.sim.uuid(1), "containerEdits": {"env": ["FROM=plugin"]}}],
            "containerEdits": {"hooks": [{
                "hookName": "createContainer",
                "path": self.dir.path().join("nvidia-toolkit/nvidia-cdi-hook"),
                "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", "/usr/lib64"],
            }]},
        });
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::write(
            plugin.join("k8s.device-plugin.nvidia.com-gpu.json"),
            plugins_own.to_string(),
        )
        .unwrap();
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The simulated driver tree bound at the GPU Operator's driver root for the test's time
/// (refused if the host has something there), and taken away again on drop.
struct OperatorDriverRoot {
    created: Vec<PathBuf>,
}

impl OperatorDriverRoot {
    fn bind(sim: &Sim) -> Result<OperatorDriverRoot, String> {
        let target = Path::new(OPERATOR_DRIVER_ROOT);
        if target.exists() {
            return Err(format!(
                "{OPERATOR_DRIVER_ROOT} exists on this host: not touching it"
            ));
        }
        let mut created = Vec::new();
        for dir in [Path::new("/run/nvidia"), target] {
            if !dir.exists() {
                std::fs::create_dir(dir).map_err(|e| format!("{dir:?}: {e}"))?;
                created.push(dir.to_path_buf());
            }
        }
        let root = OperatorDriverRoot { created };
        watch::test_mount(target);
        rustix::mount::mount_bind(sim.driver_root().as_path(), target)
            .map_err(|e| format!("bind {:?} at {target:?}: {e}", sim.driver_root()))?;
        Ok(root)
    }
}

impl Drop for OperatorDriverRoot {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(OPERATOR_DRIVER_ROOT, rustix::mount::UnmountFlags::DETACH);
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn cases(node: &Node) -> Vec<Case<'static>> {
    let (uuid0, uuid1) = (node.sim.uuid(0), node.sim.uuid(1));
    let sim_root = node.sim.driver_root();
    let visible = |value: &str| env(&[("NVIDIA_VISIBLE_DEVICES", value)]);
    let gpu1_mount = vec![(
        "/dev/null".to_string(),
        format!("{DEVICE_LIST_DIR}/{uuid1}"),
    )];
    let gpuhook = |env: Vec<(String, String)>| PodRequest {
        runtime_handler: "gpuhook",
        env,
        ..Default::default()
    };
    let volume_mounts = "accept-nvidia-visible-devices-as-volume-mounts = true";
    let shared_cluster = "accept-nvidia-visible-devices-as-volume-mounts = true\n\
                          accept-nvidia-visible-devices-envvar-when-unprivileged = false";
    // What the plugin's cdi-annotations strategy asks for: `cdi.k8s.io/<plugin>_<response
    // id>` naming its kind and the GPU's UUID.
    let cdi_annotated = PodRequest {
        annotations: vec![(
            "cdi.k8s.io/nvidia-device-plugin_0f1e2d3c".to_string(),
            format!("{PLUGIN_CDI_KIND}={uuid1}"),
        )],
        ..gpuhook(Vec::new())
    };
    let case = |name, policy, request, expect| Case {
        name,
        policy,
        driver_root: sim_root.clone(),
        spec_dirs: SPEC_DIRS,
        request,
        expect,
    };
    vec![
        case(
            "envvar-uuid",
            "",
            gpuhook(visible(&uuid1)),
            Expect::Gpus(vec![1]),
        ),
        // The envvar strategy's weakness: a pod's own env asks for every GPU and gets them.
        case(
            "envvar-pod-sets-all",
            "",
            gpuhook(visible("all")),
            Expect::Gpus(vec![0, 1]),
        ),
        case(
            "envvar-index",
            "",
            gpuhook(visible("0")),
            Expect::Gpus(vec![0]),
        ),
        case(
            "volume-mounts",
            volume_mounts,
            PodRequest {
                mounts: gpu1_mount.clone(),
                ..gpuhook(visible(DEVICE_LIST_DIR))
            },
            Expect::Gpus(vec![1]),
        ),
        case(
            "volume-mounts-not-accepted",
            "",
            PodRequest {
                mounts: gpu1_mount.clone(),
                ..gpuhook(visible(DEVICE_LIST_DIR))
            },
            Expect::Refused("accept-nvidia-visible-devices-as-volume-mounts = true"),
        ),
        // The shared-cluster setting: the pod's own env asks for every GPU (its later entry
        // wins over the plugin's), the plugin gave one.
        case(
            "shared-cluster-env-asks-for-all",
            shared_cluster,
            PodRequest {
                mounts: gpu1_mount,
                ..gpuhook(env(&[
                    ("NVIDIA_VISIBLE_DEVICES", DEVICE_LIST_DIR),
                    ("NVIDIA_VISIBLE_DEVICES", "all"),
                ]))
            },
            Expect::Gpus(vec![1]),
        ),
        case(
            "shared-cluster-env-only",
            shared_cluster,
            gpuhook(visible("all")),
            Expect::NoGpu,
        ),
        case(
            "cdi-annotations",
            "",
            cdi_annotated.clone(),
            Expect::Gpus(vec![1]),
        ),
        case(
            "cdi-annotations-cdi-mode",
            "[runtime]\nmode = \"cdi\"",
            cdi_annotated.clone(),
            Expect::Gpus(vec![1]),
        ),
        // Where the plugin's own spec wins (its directory listed last), its NVIDIA hook runs.
        Case {
            spec_dirs: [SPEC_DIRS[1], SPEC_DIRS[0]],
            ..case(
                "cdi-annotations-plugin-spec-wins",
                "",
                cdi_annotated,
                Expect::Refused("nvidia-toolkit/nvidia-cdi-hook"),
            )
        },
        case(
            "unknown-gpu",
            "",
            gpuhook(visible("7")),
            Expect::Refused("GPU 7 requested, this host has GPUs 0-1"),
        ),
        case("no-request", "", gpuhook(Vec::new()), Expect::NoGpu),
        // The default handler (runc) does not run gpuhook: the RuntimeClass is what selects it.
        case(
            "default-handler",
            "",
            PodRequest {
                runtime_handler: "",
                env: visible("all"),
                ..Default::default()
            },
            Expect::NoGpu,
        ),
        Case {
            name: "gpu-operator-driver-root",
            policy: "",
            driver_root: PathBuf::from(OPERATOR_DRIVER_ROOT),
            spec_dirs: SPEC_DIRS,
            request: gpuhook(visible(&format!("{uuid0},{uuid1}"))),
            expect: Expect::Gpus(vec![0, 1]),
        },
    ]
}

#[test]
fn kubernetes_pods_through_cri() {
    if !prerequisites_with(
        "kubernetes_pods_through_cri",
        &["runc", "containerd", "ctr", "containerd-shim-runc-v2"],
    ) {
        return;
    }
    let started = std::time::Instant::now();
    let watch = HostWatch::new();
    let sim = Sim::build(2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gpuhook.toml");
    std::fs::write(&config, "").unwrap();
    let cri = CriNode::start(&config);
    let node = Node { cri, sim, dir };
    node.write_cdi_specs();
    let mut failures = Vec::new();
    for case in cases(&node) {
        let operator_root = (case.driver_root.as_path() == Path::new(OPERATOR_DRIVER_ROOT))
            .then(|| OperatorDriverRoot::bind(&node.sim));
        let outcome = match &operator_root {
            Some(Err(why)) => Err(why.clone()),
            _ => node.run(&case),
        };
        drop(operator_root);
        match outcome {
            Ok(()) => eprintln!("ok: {}", case.name),
            Err(why) => {
                eprintln!("FAILED: {}: {why}", case.name);
                failures.push(format!("{}: {why}", case.name));
            }
        }
    }
    // The kubelet's teardown leaves nothing of the pods: no mount, no shim.
    let (mounts, shims) = (node.cri.mounts(), node.cri.shims());
    if !mounts.is_empty() || !shims.is_empty() {
        failures.push(format!(
            "after RemovePodSandbox: mounts {mounts:?}, shims {shims:?}"
        ));
    }
    drop(node);
    assert!(
        !Path::new(OPERATOR_DRIVER_ROOT).exists(),
        "{OPERATOR_DRIVER_ROOT} left behind"
    );
    watch.assert_unchanged("after the CRI pods");
    eprintln!(
        "kubernetes_pods_through_cri: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
