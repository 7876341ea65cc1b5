//! `gpuhook ps`: which container uses how much GPU memory, one row per (container, GPU).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use gpuhook::accounting::nvml::GpuQuery;
use gpuhook::accounting::state::{default_roots, StateRoot};
use gpuhook::accounting::{docker, snapshot, Owner, ProcessKind, Snapshot, Sources, Usage};
use gpuhook::config::Config;
use gpuhook::inventory::{Inventory, InventoryNeeds};

use crate::fail;

/// Where containers are looked up; shared by `ps` and `metrics`.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Another runc state directory (runc's --root) to find containers in, besides /run/runc,
    /// /run/docker/runtime-runc/moby and /run/containerd/runc. Repeatable.
    #[arg(long = "runc-root", value_name = "DIR")]
    runc_roots: Vec<PathBuf>,
    /// Docker's API socket, asked for container names (nothing fails without it).
    #[arg(long, value_name = "PATH", default_value = docker::DEFAULT_SOCKET)]
    docker_socket: PathBuf,
}

impl SourceArgs {
    pub fn sources(&self, config: &Config) -> Sources {
        let mut state_roots = default_roots();
        state_roots.extend(self.runc_roots.iter().map(|d| StateRoot::new("runc", d)));
        Sources {
            proc_root: PathBuf::from("/proc"),
            state_roots,
            docker_socket: Some(self.docker_socket.clone()),
            mps_root: Some(config.memory.mps_root.clone()),
        }
    }
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Print JSON (with --watch: one object per line per refresh).
    #[arg(long)]
    json: bool,
    /// Refresh every SECONDS (default 2) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    watch: Option<u64>,
    #[command(flatten)]
    sources: SourceArgs,
}

/// NVML of the configured driver, initialised, or the one line saying why not.
pub fn open_nvml(config: &Config) -> Result<GpuQuery, String> {
    let inventory =
        Inventory::read(&config.driver, InventoryNeeds::default()).map_err(|e| e.to_string())?;
    let libnvml = inventory
        .library_path("libnvidia-ml.so", &config.driver)
        .map_err(|e| e.to_string())?;
    GpuQuery::open(&libnvml).map_err(|e| e.to_string())
}

pub fn ps(config: &Config, args: &PsArgs) -> ExitCode {
    let query = match open_nvml(config) {
        Ok(query) => query,
        Err(e) => return fail(None, &e),
    };
    let sources = args.sources.sources(config);
    let mut stdout = std::io::stdout().lock();
    let clear = args.watch.is_some() && !args.json && std::io::stdout().is_terminal();
    loop {
        let snapshot = match snapshot(&query, &sources) {
            Ok(snapshot) => snapshot,
            Err(e) => return fail(None, &e.to_string()),
        };
        let text = if args.json {
            let value = to_json(&snapshot);
            match args.watch {
                Some(_) => value.to_string(),
                None => serde_json::to_string_pretty(&value).unwrap_or_default(),
            }
        } else {
            table(&snapshot)
        };
        let prefix = match (args.watch, clear) {
            (Some(seconds), true) => format!("\x1b[H\x1b[2Jevery {seconds} s (Ctrl-C stops)\n"),
            _ => String::new(),
        };
        // A closed pipe (`| head`) ends the command quietly.
        if writeln!(stdout, "{prefix}{text}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ExitCode::SUCCESS;
        }
        let Some(seconds) = args.watch else {
            return ExitCode::SUCCESS;
        };
        std::thread::sleep(Duration::from_secs(seconds));
    }
}

fn owner_json(owner: &Owner) -> (Value, &'static str) {
    match owner {
        Owner::Container(c) => (
            json!({
                "id": c.id,
                "short_id": c.short_id(),
                "name": c.name,
                "runtime": c.runtime,
                "namespace": c.namespace,
            }),
            "container",
        ),
        Owner::Host => (Value::Null, "host"),
        Owner::Unknown => (Value::Null, "unknown"),
    }
}

fn kinds(kinds: &std::collections::BTreeSet<ProcessKind>) -> Vec<&'static str> {
    kinds.iter().map(|k| k.as_str()).collect()
}

pub fn to_json(snapshot: &Snapshot) -> Value {
    let usage: Vec<Value> = snapshot
        .usage
        .iter()
        .map(|u| {
            let (container, owner) = owner_json(&u.owner);
            json!({
                "owner": owner,
                "container": container,
                "gpu": {"index": u.gpu_index, "uuid": u.gpu_uuid},
                "memory_used_bytes": u.memory_used_bytes,
                "memory_cap_bytes": u.memory_cap_bytes,
                "processes": u.processes.iter().map(|p| json!({
                    "pid": p.pid,
                    "name": p.name,
                    "memory_used_bytes": p.memory_used_bytes,
                    "kinds": kinds(&p.kinds),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let gpus: Vec<Value> = snapshot
        .gpus
        .iter()
        .map(|g| {
            json!({
                "index": g.index,
                "uuid": g.uuid,
                "memory_total_bytes": g.memory_total_bytes,
                "memory_used_bytes": g.memory_used_bytes,
                "utilization_gpu_percent": g.utilization.map(|u| u.gpu_percent),
                "utilization_memory_percent": g.utilization.map(|u| u.memory_percent),
            })
        })
        .collect();
    json!({ "gpus": gpus, "usage": usage })
}

const MIB: u64 = 1 << 20;

fn mib(bytes: u64) -> String {
    format!("{} MiB", (bytes + MIB / 2) / MIB)
}

/// Printable: a process or container name is chosen by whoever started it, and a terminal
/// must not receive its control characters.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// nvidia-smi's type letters: C, G, M+C.
fn type_letters(kinds: &std::collections::BTreeSet<ProcessKind>) -> String {
    let mut letters = Vec::new();
    if kinds.contains(&ProcessKind::MpsClient) {
        letters.push("M");
    }
    if kinds.contains(&ProcessKind::Compute) {
        letters.push("C");
    }
    if kinds.contains(&ProcessKind::Graphics) {
        letters.push("G");
    }
    letters.join("+")
}

fn row_cells(u: &Usage) -> [String; 7] {
    let (id, name) = match &u.owner {
        Owner::Container(c) => (
            printable(c.short_id()),
            c.name.as_deref().map_or("-".to_string(), printable),
        ),
        Owner::Host => ("-".to_string(), "host".to_string()),
        Owner::Unknown => ("?".to_string(), "(not visible)".to_string()),
    };
    let processes: Vec<String> = u
        .processes
        .iter()
        .map(|p| {
            format!(
                "{} {} ({}, {})",
                p.pid,
                p.name.as_deref().map_or("?".to_string(), printable),
                type_letters(&p.kinds),
                p.memory_used_bytes.map_or("?".to_string(), mib)
            )
        })
        .collect();
    [
        id,
        name,
        u.gpu_index.to_string(),
        u.gpu_uuid.clone(),
        mib(u.memory_used_bytes),
        u.memory_cap_bytes.map_or("-".to_string(), mib),
        processes.join(", "),
    ]
}

/// The rows as a table, then one line per GPU.
pub fn table(snapshot: &Snapshot) -> String {
    let header = [
        "CONTAINER",
        "NAME",
        "GPU",
        "UUID",
        "MEMORY",
        "CAP",
        "PROCESSES",
    ]
    .map(String::from);
    let rows: Vec<[String; 7]> = snapshot.usage.iter().map(row_cells).collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no process on any GPU)\n");
    }
    for g in &snapshot.gpus {
        let memory = match (g.memory_used_bytes, g.memory_total_bytes) {
            (Some(used), Some(total)) => format!("{} of {} used", mib(used), mib(total)),
            _ => "memory not reported".to_string(),
        };
        let busy = g.utilization.map_or(String::new(), |u| {
            format!(
                ", {} % busy, memory {} % busy",
                u.gpu_percent, u.memory_percent
            )
        });
        out.push_str(&format!("GPU {} {}: {memory}{busy}\n", g.index, g.uuid));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuhook::accounting::{Container, GpuStatus, UsageProcess, Utilization};

    fn snapshot() -> Snapshot {
        let process = |pid, name: &str, mib: u64, kinds: &[ProcessKind]| UsageProcess {
            pid,
            name: Some(name.to_string()),
            memory_used_bytes: Some(mib * MIB),
            kinds: kinds.iter().copied().collect(),
        };
        let id = "3f2a1b9c0d11e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123";
        Snapshot {
            gpus: vec![GpuStatus {
                index: 0,
                uuid: "GPU-0".into(),
                memory_total_bytes: Some(81559 * MIB),
                memory_used_bytes: Some(1088 * MIB),
                utilization: Some(Utilization {
                    gpu_percent: 37,
                    memory_percent: 12,
                }),
                processes: Vec::new(),
            }],
            usage: vec![
                Usage {
                    owner: Owner::Container(Container {
                        id: id.into(),
                        runtime: Some("docker".into()),
                        namespace: None,
                        name: Some("web\x1b[2J1".into()),
                    }),
                    gpu_index: 0,
                    gpu_uuid: "GPU-0".into(),
                    memory_used_bytes: 1024 * MIB,
                    memory_cap_bytes: Some(2048 * MIB),
                    processes: vec![process(
                        4242,
                        "py\nthon",
                        1024,
                        &[ProcessKind::Compute, ProcessKind::MpsClient],
                    )],
                },
                Usage {
                    owner: Owner::Host,
                    gpu_index: 0,
                    gpu_uuid: "GPU-0".into(),
                    memory_used_bytes: 64 * MIB,
                    memory_cap_bytes: None,
                    processes: vec![process(77, "Xorg", 64, &[ProcessKind::Graphics])],
                },
            ],
        }
    }

    #[test]
    fn the_table_shows_short_ids_the_host_and_no_control_characters() {
        let text = table(&snapshot());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "CONTAINER     NAME      GPU  UUID   MEMORY    CAP       PROCESSES",
                "3f2a1b9c0d11  web?[2J1  0    GPU-0  1024 MiB  2048 MiB  4242 py?thon (M+C, 1024 MiB)",
                "-             host      0    GPU-0  64 MiB    -         77 Xorg (G, 64 MiB)",
                "GPU 0 GPU-0: 1088 MiB of 81559 MiB used, 37 % busy, memory 12 % busy",
            ]
        );
    }

    #[test]
    fn json_names_the_owner_and_keeps_full_ids() {
        let value = to_json(&snapshot());
        let web = &value["usage"][0];
        assert_eq!(web["owner"], "container");
        assert_eq!(web["container"]["short_id"], "3f2a1b9c0d11");
        assert_eq!(web["container"]["id"].as_str().map(str::len), Some(64));
        assert_eq!(
            web["processes"][0]["kinds"],
            json!(["compute", "mps-client"])
        );
        assert_eq!(web["memory_cap_bytes"], 2048 * MIB);
        assert_eq!(value["usage"][1]["owner"], "host");
        assert!(value["usage"][1]["memory_cap_bytes"].is_null());
        assert!(value["usage"][1]["container"].is_null());
        assert_eq!(value["gpus"][0]["utilization_gpu_percent"], 37);
    }
}
