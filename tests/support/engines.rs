//! Container engines for the tests: private daemons (dockerd, containerd) with their own
//! sockets, data and state roots, the clients that talk to them, and what a container saw.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{which, RunResult, Sim};

/// What the checks look at inside a container, in `== name ==` sections.
pub const ENGINE_INSPECT: &str = r#"
echo "== dev =="; ls /dev | grep nvidia
echo "== smi =="; nvidia-smi -L
echo "== gpus =="; ls /proc/driver/nvidia/gpus 2>&1
echo "== libs =="; ls /usr/lib/x86_64-linux-gnu | grep -e libcuda -e libnvidia-ml
echo "== end =="
"#;

/// A daemon started for one test, stopped (and its mounts and files removed) on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` (output to `daemon.log` in `dir`) and waits until `ready` succeeds.
    pub fn start(dir: tempfile::TempDir, mut command: Command, ready: impl Fn() -> bool) -> Daemon {
        let log = dir.path().join("daemon.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let daemon = Daemon { dir, child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "{command:?} not ready after 60 s; its log:\n{}",
                daemon.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        unmount_under(self.dir.path());
    }
}

/// Detaches every mount at or below `dir` (deepest first), so the directory can be removed.
pub fn unmount_under(dir: &Path) {
    let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = rustix::mount::unmount(point.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// A private containerd (own socket, root and state; no CRI plugin) whose shims, and so the
/// runtimes they run, get `GPUHOOK_CONFIG=config`.
pub struct Containerd {
    pub daemon: Daemon,
}

impl Containerd {
    pub fn start(config: Option<&Path>) -> Containerd {
        Containerd::start_by(Command::new("containerd"), config)
    }

    /// The same, started by `command`: `containerd` itself or a launcher that execs it (in
    /// another mount namespace, see `private_host`).
    pub fn start_by(mut command: Command, config: Option<&Path>) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-containerd-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(
            root.join("config.toml"),
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = {:?}\n",
                root.join("root"),
                root.join("state"),
                root.join("containerd.sock")
            ),
        )
        .unwrap();
        command.arg("--config").arg(root.join("config.toml"));
        if let Some(config) = config {
            command.env("GPUHOOK_CONFIG", config);
        }
        let socket = root.join("containerd.sock");
        let daemon = Daemon::start(dir, command, || {
            socket.exists()
                && ctr_at(&socket)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        Containerd { daemon }
    }

    pub fn socket(&self) -> PathBuf {
        self.daemon.dir.path().join("containerd.sock")
    }

    pub fn dir(&self) -> &Path {
        self.daemon.dir.path()
    }
}

pub fn ctr_at(socket: &Path) -> Command {
    let mut command = Command::new("ctr");
    command
        .arg("--address")
        .arg(socket)
        .args(["-n", "gpuhook-test"]);
    command
}

/// Starts a private dockerd in `dir` (its own socket `docker.sock`, data and exec roots, pid
/// file; no network set-up) reading `daemon_json` and using `containerd`; `environment` sets
/// what else its process needs (PATH, GPUHOOK_CONFIG). Waits until it answers, then imports the
/// busybox rootfs as `image`.
pub fn start_dockerd(
    dir: tempfile::TempDir,
    daemon_json: &Path,
    containerd: &Containerd,
    environment: impl FnOnce(&mut Command),
    image: &str,
) -> Daemon {
    let dockerd = Command::new("dockerd");
    start_dockerd_by(dockerd, dir, daemon_json, containerd, environment, image)
}

/// The same, started by `command`: `dockerd` itself or a launcher that execs it.
pub fn start_dockerd_by(
    mut command: Command,
    dir: tempfile::TempDir,
    daemon_json: &Path,
    containerd: &Containerd,
    environment: impl FnOnce(&mut Command),
    image: &str,
) -> Daemon {
    let root = dir.path().to_path_buf();
    let socket = root.join("docker.sock");
    command
        .arg("--config-file")
        .arg(daemon_json)
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--exec-root")
        .arg(root.join("exec"))
        .arg("--pidfile")
        .arg(root.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--containerd")
        .arg(containerd.socket())
        .args(["--iptables=false", "--ip6tables=false", "--bridge=none"]);
    environment(&mut command);
    let daemon = Daemon::start(dir, command, || {
        socket.exists()
            && docker_at(&socket)
                .arg("info")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    });
    let import = format!(
        "tar -C {:?} -c . | {:?} -H unix://{} import - {image} >/dev/null",
        super::rootfs_template(),
        docker_client(),
        socket.display()
    );
    super::sh(Command::new("sh").args(["-c", &import]));
    daemon
}

/// The docker client that matches Debian's dockerd, else whatever `docker` is on PATH.
pub fn docker_client() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/docker");
    if debian.is_file() {
        debian
    } else {
        which("docker").unwrap_or_else(|| PathBuf::from("docker"))
    }
}

pub fn docker_at(socket: &Path) -> Command {
    let mut command = Command::new(docker_client());
    command
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        // Keep the user's ~/.docker out of it.
        .env("DOCKER_CONFIG", socket.with_file_name("client"));
    command
}

/// A command's outcome, with the `== name ==` sections that the INSPECT script prints.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(out: Output) -> Outcome {
        Outcome {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Outcome {
    pub fn section(&self, name: &str) -> Vec<String> {
        RunResult {
            success: self.success,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
        }
        .section(name)
    }

    pub fn describe(&self) -> String {
        format!(
            "success={}\nstdout:\n{}\nstderr:\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

/// Checks what a container saw: exactly the GPUs `gpus` (indices of `sim`), with or without
/// libcuda.
pub fn sees_gpus(sim: &Sim, out: &Outcome, gpus: &[usize], libcuda: bool) -> Result<(), String> {
    if !out.success {
        return Err(format!("container failed: {}", out.describe()));
    }
    let want_nodes: Vec<String> = gpus.iter().map(|i| format!("nvidia{i}")).collect();
    let nodes: Vec<String> = out
        .section("dev")
        .into_iter()
        .filter(|n| {
            n.strip_prefix("nvidia")
                .is_some_and(|d| d.parse::<u32>().is_ok())
        })
        .collect();
    let smi: Vec<String> = out.section("smi");
    let want_uuids: Vec<String> = gpus.iter().map(|&i| sim.uuid(i)).collect();
    let uuids_seen: Vec<String> = want_uuids
        .iter()
        .filter(|u| smi.iter().any(|l| l.contains(u.as_str())))
        .cloned()
        .collect();
    let has_libcuda = out.section("libs").iter().any(|l| l == "libcuda.so.1");
    let problems = [
        (nodes != want_nodes).then(|| format!("GPU nodes {nodes:?}, want {want_nodes:?}")),
        (smi.len() != gpus.len() || uuids_seen != want_uuids)
            .then(|| format!("nvidia-smi -L said {smi:?}, want {want_uuids:?}")),
        (out.section("gpus").len() != gpus.len())
            .then(|| format!("/proc/driver/nvidia/gpus has {:?}", out.section("gpus"))),
        (has_libcuda != libcuda).then(|| format!("libcuda.so.1 present: {has_libcuda}")),
        (!out.section("libs").iter().any(|l| l == "libnvidia-ml.so.1"))
            .then(|| "no libnvidia-ml.so.1".to_string()),
    ];
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("; "), out.describe()))
    }
}

/// Installs the packaged hooks.d definition (`hook/oci-gpuhook.json`: the legacy hook for every
/// container) in `dir`, pointing at this build and `config`.
pub fn install_packaged_hook(dir: &Path, config: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut hook: serde_json::Value = serde_json::from_slice(
        &std::fs::read(super::repo().join("hook/oci-gpuhook.json")).unwrap(),
    )
    .unwrap();
    hook["hook"]["path"] = serde_json::json!(super::gpuhook_bin());
    hook["hook"]["env"] = serde_json::json!([format!("GPUHOOK_CONFIG={}", config.display())]);
    std::fs::write(dir.join("oci-gpuhook.json"), hook.to_string()).unwrap();
}
