//! `gpuhook ps` on engines' containers: a private dockerd (its own socket and exec root, see
//! tests/support/engines.rs) runs `--gpus all` through gpuhook, and its containerd runs a
//! `ctr` container through gpuhook-runtime. The Docker container's process is found through
//! its cgroup and Docker's runc state and named through Docker's API socket; the containerd
//! one, whose cgroup (`/<namespace>/<id>`) has no engine's name, through containerd's runc
//! state in its default root, `/run/containerd/runc/<namespace>`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::engines::*;
use support::gpu_processes::{Node, MIB};
use support::*;

const IMAGE: &str = "gpuhook-ps-test:latest";

/// A private containerd and a dockerd on it whose `--gpus` runs gpuhook (`gpuhook install`).
struct Engines {
    /// Declared first: dropped (dockerd stopped) before its containerd.
    docker: Daemon,
    containerd: Containerd,
}

impl Engines {
    fn start(node: &Node) -> Engines {
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-docker-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        sh(Command::new(gpuhook_bin())
            .args(["install", "--bin-dir"])
            .arg(&bin));
        let daemon_json = dir.path().join("daemon.json");
        std::fs::write(&daemon_json, "{\"log-level\": \"warn\"}\n").unwrap();
        let containerd = Containerd::start(Some(&node.config()));
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let config = node.config();
        let docker = start_dockerd(
            dir,
            &daemon_json,
            &containerd,
            |dockerd| {
                dockerd.env("GPUHOOK_CONFIG", &config).env("PATH", &path);
            },
            IMAGE,
        );
        Engines { docker, containerd }
    }
    fn socket(&self) -> PathBuf {
        self.docker.dir.path().join("docker.sock")
    }
    /// `gpuhook ps --json` asking this dockerd (or, with `None`, a socket that is not there).
    fn ps(&self, node: &Node, docker: Option<&Path>, extra: &[&str]) -> Value {
        let socket = docker.map_or(PathBuf::from("/nonexistent/docker.sock"), Path::to_path_buf);
        let mut args = vec!["ps", "--json", "--docker-socket", socket.to_str().unwrap()];
        args.extend(extra);
        let out = node.gpuhook(&args);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn docker_and_containerd_containers_are_found_and_named() {
    if !prerequisites_with(
        "docker_and_containerd_containers_are_found_and_named",
        &[
            "runc",
            "dockerd",
            "containerd",
            "ctr",
            "containerd-shim-runc-v2",
        ],
    ) {
        return;
    }
    let node = Node::new();
    let engines = Engines::start(&node);
    let web = DockerContainer::run(&engines.socket(), "web1");
    node.processes(&[(1, web.pid, 300 * MIB, "C")]);
    let state_root = engines.docker.dir.path().join("exec/runtime-runc/moby");
    let ps = engines.ps(
        &node,
        Some(&engines.socket()),
        &["--runc-root", state_root.to_str().unwrap()],
    );
    assert_eq!(ps["usage"].as_array().map(Vec::len), Some(1), "{ps:#}");
    let row = &ps["usage"][0];
    assert_eq!(row["owner"], "container");
    assert_eq!(row["container"]["id"], web.id.as_str());
    assert_eq!(row["container"]["short_id"], &web.id[..12]);
    assert_eq!(
        row["container"]["name"], "web1",
        "Docker's name, from its socket"
    );
    assert_eq!(row["container"]["runtime"], "docker");
    assert_eq!(row["gpu"]["index"], 1);
    assert_eq!(row["memory_used_bytes"], 300 * MIB);

    let ctr = CtrTask::start(&engines.containerd, &node);
    node.processes(&[(1, web.pid, 300 * MIB, "C"), (0, ctr.pid, 50 * MIB, "C")]);
    let ps = engines.ps(&node, Some(&engines.socket()), &[]);
    let row = ps["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["gpu"]["index"] == 0)
        .unwrap_or_else(|| panic!("no row on GPU 0: {ps:#}"));
    assert_eq!(row["owner"], "container", "{ps:#}");
    assert_eq!(row["container"]["id"], ctr.id.as_str());
    assert_eq!(row["container"]["runtime"], "containerd");
    assert_eq!(row["container"]["namespace"], "gpuhook-test");
    assert_eq!(row["memory_used_bytes"], 50 * MIB);
    drop(ctr);

    // Docker unreachable: the same attribution by cgroup name, only without the name.
    let ps = engines.ps(&node, None, &[]);
    assert_eq!(ps["usage"][0]["container"]["id"], web.id.as_str());
    assert_eq!(ps["usage"][0]["container"]["name"], Value::Null);
}

/// `docker run -d --gpus all --name NAME ... sleep 1000`; `docker rm -f` on drop.
struct DockerContainer {
    socket: PathBuf,
    id: String,
    pid: u32,
}

impl DockerContainer {
    fn run(socket: &Path, name: &str) -> DockerContainer {
        let run = docker_at(socket)
            .args([
                "run",
                "-d",
                "--network",
                "none",
                "--gpus",
                "all",
                "--name",
                name,
            ])
            .args([IMAGE, "sleep", "1000"])
            .output()
            .unwrap();
        let mut container = DockerContainer {
            socket: socket.to_path_buf(),
            id: String::from_utf8_lossy(&run.stdout).trim().to_string(),
            pid: 0,
        };
        assert!(run.status.success(), "docker run: {run:?}");
        let pid = sh(docker_at(socket).args(["inspect", "-f", "{{.State.Pid}}", &container.id]));
        container.pid = String::from_utf8_lossy(&pid.stdout).trim().parse().unwrap();
        container
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = docker_at(&self.socket)
            .args(["rm", "-f", &self.id])
            .output();
    }
}

/// A `ctr run -d` container through gpuhook-runtime (GPU 0), killed and removed on drop.
struct CtrTask<'a> {
    containerd: &'a Containerd,
    id: String,
    pid: u32,
}

impl<'a> CtrTask<'a> {
    fn start(containerd: &'a Containerd, node: &Node) -> CtrTask<'a> {
        let id = format!("ps-ctr-{}", std::process::id());
        let rootfs = containerd.dir().join("rootfs-ps");
        sh(Command::new("cp")
            .arg("-a")
            .arg(rootfs_template())
            .arg(&rootfs));
        let mut task = CtrTask {
            containerd,
            id,
            pid: 0,
        };
        sh(ctr_at(&containerd.socket())
            .args([
                "run",
                "-d",
                "--runtime",
                "io.containerd.runc.v2",
                "--runc-binary",
            ])
            .arg(gpuhook_runtime_bin())
            .args([
                "--env",
                "PATH=/usr/bin:/bin",
                "--env",
                "NVIDIA_VISIBLE_DEVICES=0",
            ])
            .arg("--env")
            .arg(format!("GPUHOOK_CONFIG={}", node.config().display()))
            .arg("--rootfs")
            .arg(&rootfs)
            .args([&task.id, "/bin/sh", "-c", "exec sleep 1000"])
            .stdin(std::process::Stdio::null()));
        let listed = sh(ctr_at(&containerd.socket()).args(["tasks", "ls"]));
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        task.pid = listed
            .lines()
            .find_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.first() == Some(&task.id.as_str())).then(|| fields[1].parse().ok())?
            })
            .unwrap_or_else(|| panic!("{} not in ctr tasks ls:\n{listed}", task.id));
        task
    }
}

impl Drop for CtrTask<'_> {
    fn drop(&mut self) {
        let ctr = || ctr_at(&self.containerd.socket());
        let _ = ctr()
            .args(["tasks", "kill", "-s", "KILL", &self.id])
            .output();
        let _ = ctr()
            .args(["tasks", "delete", "--force", &self.id])
            .output();
        let _ = ctr().args(["containers", "delete", &self.id]).output();
    }
}
