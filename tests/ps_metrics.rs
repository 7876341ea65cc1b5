//! `gpuhook ps` and `gpuhook metrics` against real runc containers started through the hook on
//! the simulated driver, whose NVML reports the processes of its table
//! (`tests/sim/README.md`): each container's `sleep` and a host process hold known amounts on
//! known GPUs, and each must be attributed to its owner with those amounts.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use support::gpu_processes::{http_get, promtool_check, samples, Detached, Node, Spawned, MIB};
use support::*;

/// The two containers (A in runc's default root, named through Kubernetes annotations; B in a
/// root of its own) and the host process.
struct Scene {
    a: Detached,
    b: Detached,
    b_root: tempfile::TempDir,
    host: Spawned,
    _bundles: Vec<Bundle>,
}

fn start_scene(node: &Node) -> Scene {
    let config = node.config_text();
    let a = Bundle::new(
        "ps-a",
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "exec sleep 1000",
        &config,
    );
    a.edit_spec(|spec| {
        spec["annotations"] = json!({
            "io.kubernetes.cri.container-name": "trainer",
            "io.kubernetes.cri.sandbox-name": "job-7",
            "io.kubernetes.cri.sandbox-namespace": "ml",
        });
    });
    let b = Bundle::new(
        "ps-b",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "exec sleep 1000",
        &config,
    );
    let b_root = tempfile::tempdir().unwrap();
    let scene = Scene {
        a: Detached::start(&a, None),
        b: Detached::start(&b, Some(b_root.path())),
        b_root,
        host: Spawned::sleep(),
        _bundles: vec![a, b],
    };
    scene.table(node, true);
    scene
}

impl Scene {
    /// A: 1 GiB on GPU 0; B: 256 MiB on GPU 0 and 2 GiB as an MPS client on GPU 1; the host
    /// process, when `with_host`, 64 MiB of graphics on GPU 1.
    fn table(&self, node: &Node, with_host: bool) {
        let mut rows = vec![
            (0, self.a.pid, 1024 * MIB, "C"),
            (0, self.b.pid, 256 * MIB, "C"),
            (1, self.b.pid, 2048 * MIB, "M+C"),
        ];
        if with_host {
            rows.push((1, self.host.pid(), 64 * MIB, "G"));
        }
        node.processes(&rows);
    }
}

/// (owner, container id, name, GPU, bytes, pids) of each `ps --json` row.
type Row = (String, Option<String>, Option<String>, u64, u64, Vec<u64>);

fn rows(ps: &Value) -> Vec<Row> {
    ps["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["owner"].as_str().unwrap().to_string(),
                u["container"]["id"].as_str().map(str::to_string),
                u["container"]["name"].as_str().map(str::to_string),
                u["gpu"]["index"].as_u64().unwrap(),
                u["memory_used_bytes"].as_u64().unwrap(),
                u["processes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["pid"].as_u64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

fn container_row(c: &Detached, name: Option<&str>, gpu: u64, bytes: u64) -> Row {
    (
        "container".into(),
        Some(c.id.clone()),
        name.map(str::to_string),
        gpu,
        bytes,
        vec![u64::from(c.pid)],
    )
}

#[test]
fn ps_attributes_gpu_memory_to_containers_and_the_host() {
    if !prerequisites("ps_attributes_gpu_memory_to_containers_and_the_host") {
        return;
    }
    let node = Node::new();
    let scene = start_scene(&node);
    let (a, b, host) = (scene.a.pid, scene.b.pid, scene.host.pid());
    let b_root = scene.b_root.path().to_str().unwrap();
    let out = node.gpuhook(&["ps", "--json", "--runc-root", b_root]);
    assert!(out.status.success(), "{out:?}");
    let ps: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut want = vec![
        container_row(&scene.a, Some("ml/job-7/trainer"), 0, 1024 * MIB),
        container_row(&scene.b, None, 0, 256 * MIB),
        container_row(&scene.b, None, 1, 2048 * MIB),
        (
            "host".into(),
            None,
            None,
            1,
            64 * MIB,
            vec![u64::from(host)],
        ),
    ];
    want.sort();
    let mut got = rows(&ps);
    got.sort();
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&out.stdout));
    json_details_are_right(&ps, &node);
    // Without its root, B's cgroup (runc names it after the id) says nothing: the host's.
    let ps: Value = serde_json::from_slice(&node.gpuhook(&["ps", "--json"]).stdout).unwrap();
    let b_owners: Vec<&Value> = ps["usage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["processes"][0]["pid"] == b)
        .map(|u| &u["owner"])
        .collect();
    assert_eq!(b_owners, [&json!("host"), &json!("host")]);
    table_shows_the_rows(&node, &scene);

    // A process the table names that no longer exists has no owner to show.
    node.processes(&[(0, a, MIB, "C"), (0, u32::MAX - 1, MIB, "C")]);
    let ps: Value = serde_json::from_slice(&node.gpuhook(&["ps", "--json"]).stdout).unwrap();
    let owners: Vec<Value> = ps["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["owner"].clone())
        .collect();
    assert_eq!(owners, [json!("container"), json!("unknown")]);
}

/// Per process: its name and kinds; per container: its runtime; per GPU: memory, utilisation.
fn json_details_are_right(ps: &Value, node: &Node) {
    let usage = ps["usage"].as_array().unwrap();
    let mps = usage
        .iter()
        .find(|u| u["gpu"]["index"] == 1 && u["owner"] == "container")
        .unwrap();
    assert_eq!(mps["processes"][0]["name"], "sleep");
    assert_eq!(
        mps["processes"][0]["kinds"],
        json!(["compute", "mps-client"])
    );
    assert!(usage
        .iter()
        .all(|u| u["container"].is_null() || u["container"]["runtime"] == "runc"));
    let gpus = ps["gpus"].as_array().unwrap();
    assert_eq!(gpus[1]["uuid"], node.sim.uuid(1));
    assert_eq!(gpus[1]["memory_used_bytes"], (2048 + 64) * MIB);
    assert_eq!(gpus[0]["utilization_gpu_percent"], 37);
}

/// The table a person reads: container id, name, GPU, UUID, memory, processes.
fn table_shows_the_rows(node: &Node, scene: &Scene) {
    let out = node.gpuhook(&["ps", "--runc-root", scene.b_root.path().to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    let line_of = |start: &str, gpu: usize| {
        table
            .lines()
            .find(|l| l.starts_with(start) && l.contains(&node.sim.uuid(gpu)))
            .unwrap_or_else(|| panic!("no row {start} on GPU {gpu}:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let row_a = line_of(&scene.a.id, 0);
    assert_eq!(
        &row_a[1..5],
        ["ml/job-7/trainer", "0", &node.sim.uuid(0), "1024"]
    );
    assert!(row_a.contains(&scene.a.pid.to_string().as_str()) && row_a.contains(&"sleep"));
    let row_host = line_of("-", 1);
    assert_eq!(&row_host[1..5], ["host", "1", &node.sim.uuid(1), "64"]);
    assert!(
        table.contains("GPU 1 ") && table.contains("2112 MiB of 81559 MiB used"),
        "{table}"
    );
}

/// `ps --watch`: each refresh reads the GPUs again.
#[test]
fn ps_watch_refreshes() {
    if !prerequisites("ps_watch_refreshes") {
        return;
    }
    let node = Node::new();
    let host = Spawned::sleep();
    node.processes(&[(0, host.pid(), 10 * MIB, "C")]);
    let mut watch = Spawned(
        Command::new(gpuhook_bin())
            .args(["ps", "--json", "--watch", "1"])
            .env("GPUHOOK_CONFIG", node.config())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(watch.0.stdout.take().unwrap()).lines();
    let memory = |line: String| {
        let v: Value = serde_json::from_str(&line).unwrap();
        v["usage"][0]["memory_used_bytes"].as_u64()
    };
    assert_eq!(memory(lines.next().unwrap().unwrap()), Some(10 * MIB));
    node.processes(&[(0, host.pid(), 20 * MIB, "C")]);
    // A later refresh shows the change (the next may have read the table before the write).
    let mut seen = Vec::new();
    for line in lines.take(30) {
        seen.push(memory(line.unwrap()));
        if seen.last() == Some(&Some(20 * MIB)) {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&Some(20 * MIB)), "{seen:?}");
}

/// Sample lines `metrics` must print for the scene's table.
fn expected_samples(node: &Node, scene: &Scene) -> Vec<String> {
    let (u0, u1) = (node.sim.uuid(0), node.sim.uuid(1));
    vec![
        format!(
            r#"gpuhook_container_gpu_memory_used_bytes{{container_id="{}",container_name="ml/job-7/trainer",runtime="runc",gpu="0",uuid="{u0}"}} {}"#,
            scene.a.id,
            1024 * MIB
        ),
        format!(
            r#"gpuhook_container_gpu_memory_used_bytes{{container_id="{}",container_name="",runtime="runc",gpu="1",uuid="{u1}"}} {}"#,
            scene.b.id,
            2048 * MIB
        ),
        format!(
            r#"gpuhook_container_gpu_processes{{container_id="{}",container_name="",runtime="runc",gpu="1",uuid="{u1}"}} 1"#,
            scene.b.id
        ),
        format!(
            r#"gpuhook_host_gpu_memory_used_bytes{{gpu="1",uuid="{u1}"}} {}"#,
            64 * MIB
        ),
        format!(r#"gpuhook_host_gpu_memory_used_bytes{{gpu="0",uuid="{u0}"}} 0"#),
        format!(
            r#"gpuhook_gpu_memory_total_bytes{{gpu="1",uuid="{u1}"}} {}"#,
            81559 * MIB
        ),
        format!(
            r#"gpuhook_gpu_memory_used_bytes{{gpu="1",uuid="{u1}"}} {}"#,
            2112 * MIB
        ),
        format!(r#"gpuhook_gpu_utilization_ratio{{gpu="0",uuid="{u0}"}} 0.37"#),
        format!(r#"gpuhook_gpu_memory_utilization_ratio{{gpu="0",uuid="{u0}"}} 0.12"#),
    ]
}

#[test]
fn metrics_pass_promtool_and_are_served_on_loopback() {
    if !prerequisites_with(
        "metrics_pass_promtool_and_are_served_on_loopback",
        &["runc", "promtool"],
    ) {
        return;
    }
    let node = Node::new();
    let scene = start_scene(&node);
    let b_root = scene.b_root.path().to_str().unwrap();
    let out = node.gpuhook(&["metrics", "--runc-root", b_root]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    promtool_check(&text);
    let want = expected_samples(&node, &scene);
    for line in &want {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }

    served_like_printed(&node, &scene, &text);
}

fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {out:?}");
    assert!(stderr.contains(needle), "want {needle:?} in:\n{stderr}");
}

#[test]
fn bad_flags_and_a_missing_nvml_fail_clearly() {
    if !prerequisites_with("bad_flags_and_a_missing_nvml_fail_clearly", &[]) {
        return;
    }
    let node = Node::new();
    assert_fails_with(&node.gpuhook(&["ps", "--watch", "0"]), "--watch");
    assert_fails_with(&node.gpuhook(&["ps", "--colour"]), "--colour");
    assert_fails_with(
        &node.gpuhook(&["metrics", "--listen", "localhost"]),
        "--listen",
    );
    assert_fails_with(&node.gpuhook(&["metrics", "--allow-remote"]), "--listen");
    let remote = node.gpuhook(&["metrics", "--listen", "0.0.0.0:9400"]);
    assert_fails_with(&remote, "--listen 0.0.0.0:9400: not a loopback address");
    assert_fails_with(&remote, "--allow-remote");
    assert_eq!(String::from_utf8_lossy(&remote.stderr).lines().count(), 1);

    // --allow-remote serves beyond loopback, and says so.
    let (remote, said) = serve(&node, &["--listen", "0.0.0.0:0", "--allow-remote"]);
    drop(remote);
    assert!(
        said.starts_with("gpuhook: serving metrics at http://0.0.0.0:")
            && said.contains("reachable from other hosts"),
        "{said:?}"
    );

    // The driver's NVML is there but cannot be loaded: one line naming it and what to check.
    let libnvml = node.sim.driver_root().join(format!(
        "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.{DRIVER_VERSION}"
    ));
    std::fs::write(&libnvml, "not a library").unwrap();
    for command in [&["ps"][..], &["metrics"]] {
        let out = node.gpuhook(command);
        assert_fails_with(&out, &format!("cannot use NVML ({})", libnvml.display()));
        assert_fails_with(&out, "does `nvidia-smi` work");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{out:?}"
        );
    }
    // No NVML library of this driver at all: the inventory's message names it.
    std::fs::remove_file(&libnvml).unwrap();
    assert_fails_with(&node.gpuhook(&["ps"]), "(libnvidia-ml.so)");
}

/// `--listen` on loopback (port 0: the kernel picks; gpuhook says which) serves what
/// `metrics` printed, fresh on every scrape, and nothing else.
fn served_like_printed(node: &Node, scene: &Scene, text: &str) {
    let b_root = scene.b_root.path().to_str().unwrap();
    let (_server, said) = serve(node, &["--listen", "127.0.0.1:0", "--runc-root", b_root]);
    let addr = said
        .trim()
        .strip_prefix("gpuhook: serving metrics at http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {said:?}"));
    let (status, body) = http_get(addr, "/metrics");
    let (missing, _) = http_get(addr, "/other");
    // Each scrape reads the GPUs again: the host process has gone from the table.
    scene.table(node, false);
    let (_, later) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    promtool_check(&body);
    assert_eq!(
        samples(&body),
        samples(text),
        "the scrape and the printed metrics differ"
    );
    assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
    assert!(
        later.lines().any(|l| l
            == format!(
                r#"gpuhook_host_gpu_memory_used_bytes{{gpu="1",uuid="{}"}} 0"#,
                node.sim.uuid(1)
            )),
        "{later}"
    );
}

/// `gpuhook metrics ARGS` left running (a server), and the first line it says on stderr.
fn serve(node: &Node, args: &[&str]) -> (Spawned, String) {
    let mut server = Spawned(
        Command::new(gpuhook_bin())
            .arg("metrics")
            .args(args)
            .env("GPUHOOK_CONFIG", node.config())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut said = String::new();
    BufReader::new(server.0.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    (server, said)
}
