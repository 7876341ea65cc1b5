//! For the tests of `gpuhook ps` and `gpuhook metrics`: a simulated driver whose NVML reports
//! the processes of a table the test writes, long-running containers (`runc run -d`) and host
//! processes to put in it (both stopped and removed when dropped).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{gpuhook_bin, Bundle, Sim};

pub const MIB: u64 = 1 << 20;

/// The simulated driver, a config for it, and the process table its NVML reads.
pub struct Node {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        let sim = Sim::build(2);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gpuhook.toml"),
            sim.config(&dir.path().join("log"), ""),
        )
        .unwrap();
        Node { sim, dir }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("gpuhook.toml")
    }
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config()).unwrap()
    }
    /// Writes the table: (GPU index, pid, bytes, nvidia-smi type).
    pub fn processes(&self, rows: &[(usize, u32, u64, &str)]) {
        let mut text = String::from("# written by tests/ps_metrics.rs\n");
        for (gpu, pid, bytes, types) in rows {
            text.push_str(&format!(
                "process {} {pid} {bytes} {types}\n",
                self.sim.uuid(*gpu)
            ));
        }
        text.push_str(&format!("utilization {} 37 12\n", self.sim.uuid(0)));
        std::fs::write(self.sim.dir.path().join("gpu-processes"), text).unwrap();
    }
    pub fn gpuhook(&self, args: &[&str]) -> Output {
        Command::new(gpuhook_bin())
            .args(args)
            .env("GPUHOOK_CONFIG", self.config())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// A container started detached from `bundle` under runc's state directory `root` (`None`:
/// runc's default, `/run/runc`); `runc delete --force` on drop.
pub struct Detached {
    pub id: String,
    pub root: Option<PathBuf>,
    /// Its init process, as the host sees it.
    pub pid: u32,
}

impl Detached {
    pub fn start(bundle: &Bundle, root: Option<&Path>) -> Detached {
        let runc = |args: &[&str]| {
            let mut command = Command::new("runc");
            if let Some(root) = root {
                command.arg("--root").arg(root);
            }
            command.args(args);
            command
        };
        let bundle_dir = bundle.dir.path().to_string_lossy().into_owned();
        // runc hands its stdio to the container: files, never pipes (see ci-machine notes).
        let out = runc(&["run", "-d", "--bundle", &bundle_dir, &bundle.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(bundle.dir.path().join("run.err")).unwrap())
            .status()
            .unwrap();
        let mut detached = Detached {
            id: bundle.id.clone(),
            root: root.map(Path::to_path_buf),
            pid: 0,
        };
        assert!(
            out.success(),
            "runc run -d {}: {}",
            bundle.id,
            std::fs::read_to_string(bundle.dir.path().join("run.err")).unwrap_or_default()
        );
        let state = runc(&["state", &bundle.id]).output().unwrap();
        let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
        let pid = state["pid"].as_u64().expect("runc state has the pid");
        let pid = u32::try_from(pid).expect("a pid fits in u32");
        detached.pid = pid;
        detached
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let mut command = Command::new("runc");
        if let Some(root) = &self.root {
            command.arg("--root").arg(root);
        }
        let _ = command
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A process the test started (a host `sleep` in no container, a gpuhook server); killed on
/// drop.
pub struct Spawned(pub Child);

impl Spawned {
    pub fn sleep() -> Spawned {
        Spawned(
            Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `promtool check metrics` on `text`: no problem reported.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {out:?}\n{text}"
    );
}

/// The sample lines of an exposition (no comments), sorted.
pub fn samples(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A plain HTTP/1.0 GET of `path`; returns (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}
