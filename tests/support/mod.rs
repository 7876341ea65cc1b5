//! Shared by the integration tests: a simulated driver tree, container bundles, real runc.
//!
//! These tests need root and runc (CI installs them). Outside CI a missing prerequisite makes
//! each test print a loud notice and return; in CI (`CI` set) it fails the test instead.
#![allow(dead_code)]

pub mod docker;
pub mod engines;
pub mod gpu_processes;
pub mod mps;
pub mod private_host;
pub mod watch;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

pub const DRIVER_VERSION: &str = "580.159.04";
pub const LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn gpuhook_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gpuhook"))
}

pub fn gpuhook_runtime_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gpuhook-runtime"))
}

/// True when root and runc are here. Otherwise says so loudly; in CI that is a failure.
pub fn prerequisites(test: &str) -> bool {
    prerequisites_with(test, &["runc"])
}

/// True when running as root with every program in `programs` on PATH. Otherwise says so
/// loudly; in CI (`CI` set) that is a failure.
pub fn prerequisites_with(test: &str, programs: &[&str]) -> bool {
    let mut missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if !rustix::process::geteuid().is_root() {
        missing.insert(0, "root");
    }
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(" ");
    if std::env::var_os("CI").is_some() {
        panic!("{test}: missing prerequisite(s) in CI: {missing}");
    }
    eprintln!(
        "\n!!!!!!!! {test}: NOT RUN: needs {missing} (run `make test` as root, see README) !!!!!!!!\n"
    );
    false
}

/// The first executable named `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    gpuhook::runtime::executables_named(program)
        .into_iter()
        .next()
}

pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A container script printing every NVIDIA file the container can see, one path per line
/// in a `files` section.
pub const NVIDIA_FILES: &str = r#"
echo "== files =="
for d in /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/gbm /usr/bin /usr/share/vulkan/icd.d \
         /usr/share/vulkan/implicit_layer.d /usr/share/glvnd/egl_vendor.d \
         /usr/share/egl/egl_external_platform.d /usr/lib/xorg/modules/drivers \
         /usr/lib/xorg/modules/extensions; do
    for f in "$d"/*; do
        case "$f" in *nvidia*|*cuda*|*nvcuvid*|*nvoptix*|*NVIDIA*) echo "$f" ;; esac
    done
done
echo "== end =="
"#;

/// A simulated driver: `driver/` root, `dev/` nodes, `proc/driver/nvidia`.
pub struct Sim {
    pub dir: tempfile::TempDir,
    pub gpus: usize,
}

impl Sim {
    pub fn build(gpus: usize) -> Sim {
        Sim::build_with_env(gpus, &[])
    }
    /// The same with MIG on GPU 0: two MIG devices (see tests/sim/README.md).
    pub fn build_with_mig(gpus: usize) -> Sim {
        Sim::build_with_env(gpus, &[("SIM_MIG", "1")])
    }
    /// With make-driver.sh's variables (`SIM_MIG`, `SIM_BRAND`, `SIM_CUDA_VERSION`) set.
    pub fn build_with_env(gpus: usize, env: &[(&str, &str)]) -> Sim {
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-sim-")
            .tempdir()
            .unwrap();
        let mut command = Command::new("bash");
        command
            .arg(repo().join("tests/sim/make-driver.sh"))
            .arg(dir.path())
            .arg(gpus.to_string());
        command.envs(env.iter().copied());
        sh(&mut command);
        Sim { dir, gpus }
    }
    pub fn driver_root(&self) -> PathBuf {
        self.dir.path().join("driver")
    }
    pub fn dev(&self) -> PathBuf {
        self.dir.path().join("dev")
    }
    pub fn proc_driver(&self) -> PathBuf {
        self.dir.path().join("proc/driver/nvidia")
    }
    /// How many times the fake NVML was initialised since the last call (the log is emptied).
    pub fn take_nvml_inits(&self) -> usize {
        let log = self.dir.path().join("nvml-inits.log");
        let count = std::fs::read_to_string(&log)
            .map(|text| text.lines().count())
            .unwrap_or(0);
        let _ = std::fs::remove_file(&log);
        count
    }
    /// Replaces the driver's NVML with a library that has none of its entry points, so every
    /// attempt to load NVML fails (as on a node whose NVML is missing or broken).
    pub fn break_nvml(&self) -> PathBuf {
        let lib_dir = self.driver_root().join(&LIB_DIR[1..]);
        let lib = lib_dir.join(format!("libnvidia-ml.so.{DRIVER_VERSION}"));
        std::fs::copy(
            lib_dir.join(format!("libnvidia-cfg.so.{DRIVER_VERSION}")),
            &lib,
        )
        .unwrap();
        lib
    }
    /// UUID of GPU `index`, read from the simulated procfs like the hook does.
    pub fn uuid(&self, index: usize) -> String {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.proc_driver().join("gpus"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        let info = std::fs::read_to_string(dirs[index].join("information")).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("GPU UUID:"))
            .unwrap()
            .trim()
            .to_string()
    }
    /// Config text pointing gpuhook at this tree; `extra` is appended to `[hook]`.
    pub fn config(&self, log: &Path, hook_extra: &str) -> String {
        format!(
            "[driver]\nroot = {:?}\ndev-root = {:?}\nproc-driver-root = {:?}\nsysfs-root = {:?}\n[hook]\n{hook_extra}\n[log]\nfile = {:?}\nlevel = \"debug\"\n",
            self.driver_root(),
            self.dev(),
            self.proc_driver(),
            self.dir.path().join("sys"),
            log
        )
    }
}

/// Adds the simulated AMD and Intel GPUs (tests/sim/make-vendors.sh) to the tree at `root`.
pub fn make_vendors(root: &Path) {
    sh(Command::new("bash")
        .arg(repo().join("tests/sim/make-vendors.sh"))
        .arg(root));
}

/// An NVIDIA driver with one GPU, plus the simulated AMD and Intel GPUs.
pub fn mixed_vendor_host() -> Sim {
    let sim = Sim::build(1);
    make_vendors(sim.dir.path());
    sim
}

/// A pristine busybox + glibc rootfs, built once per test binary and copied per bundle.
pub fn rootfs_template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("gpuhook-rootfs-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        sh(Command::new("bash")
            .arg(repo().join("tests/sim/make-rootfs.sh"))
            .arg(&dir));
        dir
    })
}

pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub id: String,
}

impl Bundle {
    /// A bundle whose container runs `script` under `sh -c`, with `env` added and gpuhook as
    /// its prestart hook using `config` (config.toml text).
    pub fn new(name: &str, env: &[&str], script: &str, config: &str) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-bundle-")
            .tempdir()
            .unwrap();
        sh(Command::new("cp")
            .arg("-a")
            .arg(rootfs_template())
            .arg(dir.path().join("rootfs")));
        sh(Command::new("runc")
            .arg("spec")
            .arg("--bundle")
            .arg(dir.path()));
        std::fs::write(dir.path().join("gpuhook.toml"), config).unwrap();
        // Unique per bundle: runc names the container's cgroup after its id, and two
        // containers sharing one would share (and clear) each other's device rules.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("gpuhook-{name}-{}-{n}", std::process::id());
        let bundle = Bundle { dir, id };
        bundle.edit_spec(|spec| {
            spec["process"]["terminal"] = json!(false);
            spec["process"]["args"] = json!(["/bin/sh", "-c", script]);
            let mut full_env = vec!["PATH=/usr/bin:/bin:/usr/sbin:/sbin".to_string()];
            full_env.extend(env.iter().map(|s| s.to_string()));
            spec["process"]["env"] = json!(full_env);
            spec["hooks"] = json!({"prestart": [{
                "path": gpuhook_bin(),
                "args": ["gpuhook", "prestart"],
                "env": [format!("GPUHOOK_CONFIG={}", bundle.dir.path().join("gpuhook.toml").display())],
            }]});
        });
        bundle
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("gpuhook.log")
    }

    pub fn edit_spec(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.dir.path().join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut spec);
        std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    }

    /// Gives the container its own user namespace, container ids 0-65535 mapped to host ids
    /// `host_id`.., and hands its rootfs to that range (as Docker's userns-remap does).
    pub fn user_namespaced(&self, host_id: u32) {
        self.edit_spec(|spec| {
            spec["linux"]["namespaces"]
                .as_array_mut()
                .expect("runc spec has linux.namespaces")
                .push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": host_id, "size": 65536}]);
            spec["linux"]["uidMappings"] = map.clone();
            spec["linux"]["gidMappings"] = map;
        });
        sh(Command::new("chown")
            .args(["-R", "-h", &format!("{host_id}:{host_id}")])
            .arg(self.rootfs()));
    }

    /// `runc run` through the runtime shim instead of the bundle's own hook: the hook is taken
    /// out of the spec, `gpuhook-runtime` gets `config` and adds what it adds. The container is
    /// deleted either way.
    pub fn run_through_shim(&self, config: &Path) -> RunResult {
        self.edit_spec(|spec| {
            if let Some(spec) = spec.as_object_mut() {
                spec.remove("hooks");
            }
        });
        let mut shim = Command::new(gpuhook_runtime_bin());
        shim.env("GPUHOOK_CONFIG", config);
        self.run_with(shim)
    }

    /// `runc run` of a container the hook must refuse: asserts that it did not start and that
    /// the rootfs is exactly as before (no placeholder left); returns what runc said.
    pub fn run_refused(&self, what: &str) -> RunResult {
        let rootfs_before = tree_fingerprint(&self.rootfs());
        let out = self.run();
        assert!(!out.success, "{what}: started");
        assert_eq!(
            tree_fingerprint(&self.rootfs()),
            rootfs_before,
            "{what}: rootfs changed (placeholders left)"
        );
        out
    }

    /// `runc run`; returns (success, stdout, stderr). The container is deleted either way.
    pub fn run(&self) -> RunResult {
        self.run_with(Command::new("runc"))
    }

    /// `<runtime> --root <state> run --bundle <dir> <id>`, then `runc delete --force`.
    pub fn run_with(&self, mut runtime: Command) -> RunResult {
        let state_root = self.dir.path().join("runc-state");
        let out = runtime
            .arg("--root")
            .arg(&state_root)
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(&self.id)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {runtime:?}: {e}"));
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&state_root)
            .args(["delete", "--force", &self.id])
            .output();
        RunResult {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            // runc quotes the hook's stderr inside its own message; undo its escaping.
            stderr: String::from_utf8_lossy(&out.stderr).replace("\\\"", "\""),
        }
    }
}

#[derive(Debug)]
pub struct RunResult {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl RunResult {
    pub fn expect_success(self) -> RunResult {
        assert!(
            self.success,
            "container failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    /// Lines after a `== name ==` marker up to the next marker (the test scripts print these).
    pub fn section(&self, name: &str) -> Vec<String> {
        let marker = format!("== {name} ==");
        self.stdout
            .lines()
            .skip_while(|l| *l != marker)
            .skip(1)
            .take_while(|l| !l.starts_with("== "))
            .map(str::to_string)
            .collect()
    }
}

/// Runs `gpuhook prestart` directly (as runc would) with `state` on stdin and the bundle's
/// config; returns (exit code, stderr).
pub fn prestart(bundle: &Bundle, state: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(gpuhook_bin())
        .arg("prestart")
        .env("GPUHOOK_CONFIG", bundle.dir.path().join("gpuhook.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(state.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The OCI state a runtime gives its hooks, for container `id` with init `pid`.
pub fn state(id: &str, pid: u32, bundle: &Path) -> String {
    format!(
        r#"{{"ociVersion":"1.0.2","id":"{id}","status":"creating","pid":{pid},"bundle":"{}"}}"#,
        bundle.display()
    )
}

/// The host's mount table as (mount point, source, fs type) entries, to compare before/after.
pub fn host_mounts() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let tail = l.split_once(" - ").map(|x| x.1).unwrap_or("");
            format!("{} {}", fields.get(4).unwrap_or(&""), tail)
        })
        .collect()
}

/// Every path under `dir` with its type, size and link target: a fingerprint of a tree.
pub fn tree_fingerprint(dir: &Path) -> BTreeSet<String> {
    let out = sh(Command::new("find")
        .arg(dir)
        .args(["-printf", "%P %y %s %l\n"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
