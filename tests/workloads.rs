//! The recipes README.md's "Recipes" section gives, run as written against a private dockerd
//! (tests/support/docker.rs) and the simulated driver: the hardened `docker run`, resource
//! limits, `nvidia-smi --query-gpu` in a utility container, two containers sharing IPC and PID
//! namespaces (what CUDA IPC needs), and Docker Compose's GPU reservations. Each container
//! must see exactly the GPUs it asked for, and the hardening it asked for must hold in it.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::docker::*;
use support::engines::*;
use support::*;

/// What a hardened container checks about itself, after [`ENGINE_INSPECT`]'s sections.
const HARDENING_INSPECT: &str = r#"
echo "== ids =="; id -u; id -g
echo "== status =="; grep -e '^CapEff:' -e '^NoNewPrivs:' /proc/self/status
echo "== rootfs =="; touch /probe 2>/dev/null && echo writable || echo read-only
echo "== tmp =="; touch /tmp/probe && echo writable; grep ' /tmp ' /proc/mounts | cut -d' ' -f3
echo "== end =="
"#;

/// The container's memory limit (bytes) and pid limit, cgroup v1 or v2.
const LIMITS_INSPECT: &str = r#"
echo "== limits =="
cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max
echo "== end =="
"#;

const SMI_QUERY: [&str; 3] = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total,memory.used",
    "--format=csv",
];
const SMI_HEADER: &str = "index, name, memory.total [MiB], memory.used [MiB]";
/// What the simulated NVML reports for each GPU: an H100 80GB, 81559 MiB.
const SMI_GPU: &str = "NVIDIA H100 80GB HBM3, 81559 MiB";

fn expect_lines(section: &str, out: &Outcome, want: &[&str]) -> Result<(), String> {
    if out.section(section) == want {
        Ok(())
    } else {
        Err(format!(
            "section {section} is {:?}, want {want:?}\n{}",
            out.section(section),
            out.describe()
        ))
    }
}

/// The hardened recipe's flags, after `--gpus VALUE`.
const HARDENED: [&str; 7] = [
    "--read-only",
    "--security-opt=no-new-privileges",
    "--cap-drop=ALL",
    "-u",
    "1000:1000",
    "--tmpfs",
    "/tmp",
];

fn hardened(docker: &Docker, sim: &Sim, gpus: &str) -> Result<(), String> {
    let mut args = vec!["--gpus", gpus];
    args.extend_from_slice(&HARDENED);
    let out = docker
        .run(&args, &format!("{ENGINE_INSPECT}{HARDENING_INSPECT}"))
        .0;
    sees_gpus(sim, &out, &[0], true)?;
    expect_lines("ids", &out, &["1000", "1000"])?;
    expect_lines(
        "status",
        &out,
        &["CapEff:\t0000000000000000", "NoNewPrivs:\t1"],
    )?;
    expect_lines("rootfs", &out, &["read-only"])?;
    expect_lines("tmp", &out, &["writable", "tmpfs"])
}

fn limits(docker: &Docker, sim: &Sim) -> Result<(), String> {
    let args = ["--gpus", "1", "--memory=4g", "--pids-limit=100"];
    let out = docker
        .run(&args, &format!("{ENGINE_INSPECT}{LIMITS_INSPECT}"))
        .0;
    sees_gpus(sim, &out, &[0], true)?;
    expect_lines("limits", &out, &["4294967296", "100"])
}

/// `nvidia-smi --query-gpu=... --format=csv` prints exactly `want` (after the header).
fn smi_query(docker: &Docker, args: &[&str], want: &[String]) -> Result<(), String> {
    let out = docker.run_command(args, &SMI_QUERY).0;
    let mut expected = vec![SMI_HEADER.to_string()];
    expected.extend_from_slice(want);
    let got: Vec<&str> = out.stdout.lines().collect();
    if out.success && got == expected {
        Ok(())
    } else {
        Err(format!("want {expected:?}\n{}", out.describe()))
    }
}

/// Container B joins A's IPC and PID namespaces (`--ipc=container:A --pid=container:A`, what
/// CUDA IPC between two containers needs): the hook gives B its GPU, and B shares A's
/// namespaces and `/dev/shm`. With A's IPC namespace private (Docker's default), B is refused.
fn shared_namespaces(docker: &Docker, sim: &Sim, ipc_mode: &str) -> Result<(), String> {
    let name = format!("ipc-a-{ipc_mode}-{}", std::process::id());
    let gpu = ["--gpus", "\"device=0\""];
    let mut start = docker.cmd();
    start.args(["run", "-d", "--network", "none", "--name", &name]);
    if !ipc_mode.is_empty() {
        start.arg(format!("--ipc={ipc_mode}"));
    }
    let start = start
        .args(gpu)
        .args([
            IMAGE,
            "sh",
            "-c",
            "echo from-a > /dev/shm/marker; exec sleep 300",
        ])
        .output()
        .unwrap();
    let result = (|| {
        if !start.status.success() {
            return Err(Outcome::from(start.clone()).describe());
        }
        let a_ipc = docker
            .cmd()
            .args(["exec", &name, "readlink", "/proc/self/ns/ipc"])
            .output()
            .unwrap();
        let a_ipc = String::from_utf8_lossy(&a_ipc.stdout).trim().to_string();
        let ipc = format!("--ipc=container:{name}");
        let pid = format!("--pid=container:{name}");
        let script = format!(
            "{ENGINE_INSPECT}echo '== shared =='; readlink /proc/self/ns/ipc; \
             tr '\\0' ' ' < /proc/1/cmdline; echo; cat /dev/shm/marker\n"
        );
        let out = docker
            .run(&[gpu[0], gpu[1], ipc.as_str(), pid.as_str()], &script)
            .0;
        if ipc_mode.is_empty() {
            return expect_failure_naming(&out, "non-shareable IPC");
        }
        sees_gpus(sim, &out, &[0], true)?;
        expect_lines("shared", &out, &[a_ipc.as_str(), "sleep 300 ", "from-a"])
    })();
    let _ = docker.cmd().args(["rm", "-f", &name]).output();
    result
}

#[test]
fn docker_run_recipes() {
    if !prerequisites_with(
        "docker_run_recipes",
        &["runc", "dockerd", "containerd", "containerd-shim-runc-v2"],
    ) {
        return;
    }
    let sim = Sim::build(2);
    let docker = Docker::start(&sim);
    let table = sim.dir.path().join("gpu-processes");
    std::fs::write(
        &table,
        format!("process {} 4242 1073741824 C\n", sim.uuid(1)),
    )
    .unwrap();
    let table_volume = format!("{0}:{0}:ro", table.display());
    let cases: Vec<Case> = vec![
        (
            "--gpus 'device=0,capabilities=compute,utility' unquoted is split by docker's CSV parser",
            Box::new(|| {
                let (out, _) = docker.run(&["--gpus", "device=0,capabilities=compute,utility"], "true");
                expect_failure_naming(&out, "count must be an integer: strconv.Atoi: parsing \"utility\"")
            }),
        ),
        (
            "hardened: --gpus '\"device=0\",\"capabilities=compute,utility\"' --read-only --security-opt=no-new-privileges --cap-drop=ALL -u 1000:1000 --tmpfs /tmp",
            Box::new(|| hardened(&docker, &sim, "\"device=0\",\"capabilities=compute,utility\"")),
        ),
        (
            "--gpus 1 --memory=4g --pids-limit=100",
            Box::new(|| limits(&docker, &sim)),
        ),
        (
            "nvidia-smi --query-gpu in a utility container: every GPU, from NVML",
            Box::new(|| {
                smi_query(
                    &docker,
                    &["--gpus", "all,capabilities=utility"],
                    &[format!("0, {SMI_GPU}, 0 MiB"), format!("1, {SMI_GPU}, 0 MiB")],
                )
            }),
        ),
        (
            "nvidia-smi --query-gpu with device=1: one GPU, index 0, its memory in use",
            Box::new(|| {
                smi_query(
                    &docker,
                    &["--gpus", "\"device=1\",capabilities=utility", "-v", &table_volume],
                    &[format!("0, {SMI_GPU}, 1024 MiB")],
                )
            }),
        ),
        (
            "--ipc=container:A --pid=container:A: B gets its GPU and A's namespaces",
            Box::new(|| shared_namespaces(&docker, &sim, "shareable")),
        ),
        (
            "--ipc=container:A of an A with Docker's default (private) IPC is refused",
            Box::new(|| shared_namespaces(&docker, &sim, "")),
        ),
    ];
    run_cases(cases);
}

/// A Compose project on the private dockerd; `docker-compose down` on drop.
struct Compose<'a> {
    docker: &'a Docker,
    file: PathBuf,
    project: String,
}

impl<'a> Compose<'a> {
    fn up(docker: &'a Docker, yaml: &str) -> Result<Compose<'a>, String> {
        let file = docker.daemon.dir.path().join("docker-compose.yml");
        std::fs::write(&file, yaml).unwrap();
        let compose = Compose {
            docker,
            file,
            project: format!("gpuhook{}", std::process::id()),
        };
        let up = compose.cmd().args(["up", "-d"]).output().unwrap();
        if !up.status.success() {
            return Err(format!(
                "docker-compose up: {}",
                Outcome::from(up).describe()
            ));
        }
        Ok(compose)
    }

    fn cmd(&self) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.docker.socket().display()),
            )
            .env(
                "DOCKER_CONFIG",
                self.docker.socket().with_file_name("client"),
            )
            .arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(&self.file);
        command
    }

    /// `docker-compose exec -T SERVICE sh -c SCRIPT`.
    fn exec(&self, service: &str, script: &str) -> Outcome {
        Outcome::from(
            self.cmd()
                .args(["exec", "-T", service, "sh", "-c", script])
                .output()
                .unwrap(),
        )
    }
}

impl Drop for Compose<'_> {
    fn drop(&mut self) {
        let _ = self.cmd().args(["down", "--timeout", "1"]).output();
    }
}

/// The Compose file of README.md's recipe: a trainer on two GPUs, two services sharing GPU 0,
/// and the `runtime: gpuhook` + `environment:` form.
pub const COMPOSE_FILE: &str = r#"services:
  trainer:
    image: gpuhook-test:latest
    command: sleep 300
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: 2
              capabilities: [gpu, utility, compute]
  inference-a:
    image: gpuhook-test:latest
    command: sleep 300
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ['0']
              capabilities: [gpu, utility, compute]
  inference-b:
    image: gpuhook-test:latest
    command: sleep 300
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ['0']
              capabilities: [gpu, utility, compute]
  monitor:
    image: gpuhook-test:latest
    command: sleep 300
    runtime: gpuhook
    environment:
      - NVIDIA_VISIBLE_DEVICES=1
      - NVIDIA_DRIVER_CAPABILITIES=utility
"#;

#[test]
fn docker_compose_gpu_reservations() {
    if !prerequisites_with(
        "docker_compose_gpu_reservations",
        &[
            "runc",
            "dockerd",
            "containerd",
            "containerd-shim-runc-v2",
            "docker-compose",
        ],
    ) {
        return;
    }
    let sim = Sim::build(2);
    let docker = Docker::start(&sim);
    let compose = Compose::up(&docker, COMPOSE_FILE).unwrap_or_else(|e| panic!("{e}"));
    let sees = |service: &str, gpus: &[usize], libcuda: bool| {
        sees_gpus(&sim, &compose.exec(service, ENGINE_INSPECT), gpus, libcuda)
    };
    let cases: Vec<Case> = vec![
        (
            "count: 2 gives GPUs 0 and 1",
            Box::new(|| sees("trainer", &[0, 1], true)),
        ),
        (
            "device_ids: ['0'], first of two services",
            Box::new(|| sees("inference-a", &[0], true)),
        ),
        (
            "device_ids: ['0'], second service on the same GPU, running at the same time",
            Box::new(|| sees("inference-b", &[0], true)),
        ),
        (
            "runtime: gpuhook with NVIDIA_VISIBLE_DEVICES=1, utility only",
            Box::new(|| sees("monitor", &[1], false)),
        ),
    ];
    run_cases(cases);
    drop(compose);
    let left = docker.cmd().args(["ps", "-aq"]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "docker-compose down left containers: {left:?}"
    );
}
