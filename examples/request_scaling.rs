//! Prints how the request parse scales with the size of a tenant's `config.json`, up to 1 MB:
//! the time per entry should stay flat as the entries grow 16-fold (linear cost). It measures
//! the parsers themselves (`RequestLimits::UNBOUNDED`), since the default limits refuse such
//! lists before parsing them; the last lines show that refusal. A benchmark, not a test: it
//! prints figures and asserts nothing. `make bench` runs it;
//! `cargo run --release --example request_scaling` alone.

use std::time::{Duration, Instant};

use gpuhook::config::Config;
use gpuhook::limits::RequestLimits;
use gpuhook::request::cdi::{cdi_devices, CdiRequestPolicy};
use gpuhook::request::{container_request, ContainerFacts, RequestPolicy};
use serde_json::json;

/// One way a tenant can make a long request: `n` entries as a `config.json`.
struct Case {
    name: &'static str,
    sizes: [usize; 3],
    spec: fn(usize) -> serde_json::Value,
}

fn spec_with(
    env: Vec<String>,
    mounts: serde_json::Value,
    annotations: serde_json::Value,
) -> serde_json::Value {
    json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": env},
        "mounts": mounts, "annotations": annotations,
    })
}

fn joined(n: usize, item: fn(usize) -> String) -> String {
    (0..n).map(item).collect::<Vec<_>>().join(",")
}

const CASES: [Case; 4] = [
    Case {
        name: "NVIDIA_VISIBLE_DEVICES indices",
        sizes: [10_000, 40_000, 160_000],
        spec: |n| {
            let env = vec![format!(
                "NVIDIA_VISIBLE_DEVICES={}",
                joined(n, |i| i.to_string())
            )];
            spec_with(env, json!([]), json!({}))
        },
    },
    Case {
        name: "NVIDIA_VISIBLE_DEVICES UUIDs",
        sizes: [5_000, 20_000, 80_000],
        spec: |n| {
            let env = vec![format!(
                "NVIDIA_VISIBLE_DEVICES={}",
                joined(n, |i| format!("GPU-{i:08x}"))
            )];
            spec_with(env, json!([]), json!({}))
        },
    },
    Case {
        name: "volume mounts",
        sizes: [625, 2_500, 10_000],
        spec: |n| {
            let mounts: Vec<_> = (0..n)
                .map(|i| json!({"destination": format!("/var/run/nvidia-container-devices/{i}"), "source": "/dev/null", "type": "bind"}))
                .collect();
            spec_with(vec![], json!(mounts), json!({}))
        },
    },
    Case {
        name: "CDI names in an annotation",
        sizes: [3_500, 14_000, 56_000],
        spec: |n| {
            let names = joined(n, |i| format!("nvidia.com/gpu={i}"));
            spec_with(vec![], json!([]), json!({"cdi.k8s.io/gpus": names}))
        },
    },
];

/// Parses the spec as the hook and the shim do and reads both requests; returns the entries
/// found (legacy devices + CDI names) so the work cannot be skipped.
fn parse(text: &[u8], policy: &RequestPolicy) -> Result<usize, String> {
    let spec: oci_spec::runtime::Spec = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let facts = ContainerFacts::from_spec(&spec);
    let prefixes = ["cdi.k8s.io/".to_string()];
    let cdi = CdiRequestPolicy {
        default_kind: None,
        annotation_prefixes: &prefixes,
    };
    let names = cdi_devices(&facts, policy, &cdi).map_err(|e| e.to_string())?;
    let devices = match container_request(&facts, policy).map_err(|e| e.to_string())? {
        Some(request) => match request.devices {
            gpuhook::request::VisibleDevices::List(list) => list.len(),
            _ => 1,
        },
        None => 0,
    };
    Ok(names.len() + devices)
}

/// The median of five runs.
fn time(text: &[u8], policy: &RequestPolicy) -> (Duration, Result<usize, String>) {
    let mut runs: Vec<(Duration, Result<usize, String>)> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let result = parse(text, policy);
            (start.elapsed(), result)
        })
        .collect();
    runs.sort_by_key(|(d, _)| *d);
    runs.swap_remove(2)
}

fn main() {
    let config = Config {
        accept_nvidia_visible_devices_as_volume_mounts: true,
        ..Config::default()
    };
    let bounded = RequestPolicy::from(&config);
    let unbounded = RequestPolicy {
        limits: RequestLimits::UNBOUNDED,
        ..bounded.clone()
    };
    println!("request parse (config.json -> request), median of 5, unbounded parsers:");
    println!(
        "{:<32} {:>8} {:>10} {:>10} {:>12}",
        "case", "entries", "bytes", "ms", "ns/entry"
    );
    let mut largest = Vec::new();
    for case in &CASES {
        for n in case.sizes {
            let text = serde_json::to_vec(&(case.spec)(n)).expect("a JSON value serialises");
            let (elapsed, result) = time(&text, &unbounded);
            let found = result.unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let ms = elapsed.as_secs_f64() * 1e3;
            let per_entry = elapsed.as_secs_f64() * 1e9 / n as f64;
            println!(
                "{:<32} {:>8} {:>10} {:>10.2} {:>12.0}",
                case.name,
                found,
                text.len(),
                ms,
                per_entry
            );
            if n == case.sizes[2] {
                largest.push((case.name, text));
            }
        }
    }
    println!("with the default limits (what the hook and the shim do):");
    for (name, text) in largest {
        let (elapsed, result) = time(&text, &bounded);
        let outcome = result.map_or_else(|e| format!("refused: {e}"), |n| format!("{n} entries"));
        println!(
            "{:<32} {:>10.2} ms  {outcome}",
            name,
            elapsed.as_secs_f64() * 1e3
        );
    }
}
