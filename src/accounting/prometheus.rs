//! A [`Snapshot`] as Prometheus text exposition (format 0.0.4), for node_exporter's textfile
//! collector or a scrape of `gpuhook metrics --listen`.

use std::fmt::Write;

use super::{GpuStatus, Owner, Snapshot};

/// The `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// One metric family (all gauges): its samples as (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, f64)>,
}

fn gpu_labels(index: u32, uuid: &str) -> Labels {
    vec![("gpu", index.to_string()), ("uuid", uuid.to_string())]
}

/// Renders every family with a sample: the GPU and host families have one per GPU (zero when
/// nothing is there), the container ones one per (container, GPU) with a process.
pub fn render(snapshot: &Snapshot) -> String {
    let mut families = container_families(snapshot);
    families.extend(gpu_families(snapshot));
    let mut out = String::new();
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for (labels, value) in &family.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", family.name, labels.join(","));
        }
    }
    out
}

fn container_families(snapshot: &Snapshot) -> Vec<Family> {
    let mut memory = Vec::new();
    let mut processes = Vec::new();
    for row in &snapshot.usage {
        let Owner::Container(c) = &row.owner else {
            continue;
        };
        let mut labels = vec![
            ("container_id", c.id.clone()),
            ("container_name", c.name.clone().unwrap_or_default()),
            ("runtime", c.runtime.clone().unwrap_or_default()),
        ];
        labels.extend(gpu_labels(row.gpu_index, &row.gpu_uuid));
        memory.push((labels.clone(), row.memory_used_bytes as f64));
        processes.push((labels, row.processes.len() as f64));
    }
    vec![
        Family {
            name: "gpuhook_container_gpu_memory_used_bytes",
            help: "GPU memory used by a container's processes on a GPU, as the driver reports it.",
            samples: memory,
        },
        Family {
            name: "gpuhook_container_gpu_processes",
            help: "Processes of a container on a GPU.",
            samples: processes,
        },
    ]
}

fn gpu_families(snapshot: &Snapshot) -> Vec<Family> {
    let per_gpu = |value: &dyn Fn(&GpuStatus) -> Option<f64>| {
        snapshot
            .gpus
            .iter()
            .filter_map(|g| value(g).map(|v| (gpu_labels(g.index, &g.uuid), v)))
            .collect::<Vec<_>>()
    };
    let owned_by = |wanted: &Owner| {
        per_gpu(&|g| {
            let bytes: u64 = snapshot
                .usage
                .iter()
                .filter(|u| u.gpu_index == g.index && &u.owner == wanted)
                .map(|u| u.memory_used_bytes)
                .sum();
            Some(bytes as f64)
        })
    };
    let family = |name, help, samples| Family {
        name,
        help,
        samples,
    };
    vec![
        family(
            "gpuhook_host_gpu_memory_used_bytes",
            "GPU memory used by processes in no container.",
            owned_by(&Owner::Host),
        ),
        family(
            "gpuhook_unattributed_gpu_memory_used_bytes",
            "GPU memory used by processes whose owner could not be read (exited, or another pid namespace).",
            owned_by(&Owner::Unknown),
        ),
        family(
            "gpuhook_gpu_memory_total_bytes",
            "Total memory of a GPU.",
            per_gpu(&|g| g.memory_total_bytes.map(|b| b as f64)),
        ),
        family(
            "gpuhook_gpu_memory_used_bytes",
            "Memory in use on a GPU (all processes and the driver's own).",
            per_gpu(&|g| g.memory_used_bytes.map(|b| b as f64)),
        ),
        family(
            "gpuhook_gpu_utilization_ratio",
            "Fraction of the last sample period during which a kernel ran on a GPU.",
            per_gpu(&|g| g.utilization.map(|u| f64::from(u.gpu_percent) / 100.0)),
        ),
        family(
            "gpuhook_gpu_memory_utilization_ratio",
            "Fraction of the last sample period during which a GPU's memory was read or written.",
            per_gpu(&|g| g.utilization.map(|u| f64::from(u.memory_percent) / 100.0)),
        ),
    ]
}

/// The exposition format's label-value escapes: backslash, double quote, line feed. A
/// container name is chosen by whoever started it and may hold any of them.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn snapshot() -> Snapshot {
        let gpu = |index: u32, used: u64| GpuStatus {
            index,
            uuid: format!("GPU-{index}"),
            memory_total_bytes: Some(1000),
            memory_used_bytes: Some(used),
            utilization: Some(Utilization {
                gpu_percent: 37,
                memory_percent: 5,
            }),
            processes: Vec::new(),
        };
        let row = |owner: Owner, gpu_index: u32, bytes: u64, pids: &[u32]| Usage {
            owner,
            gpu_index,
            gpu_uuid: format!("GPU-{gpu_index}"),
            memory_used_bytes: bytes,
            memory_cap_bytes: None,
            processes: pids
                .iter()
                .map(|&pid| UsageProcess {
                    pid,
                    name: None,
                    memory_used_bytes: None,
                    kinds: Default::default(),
                })
                .collect(),
        };
        let web = Owner::Container(Container {
            id: "c1".into(),
            runtime: Some("docker".into()),
            namespace: None,
            name: Some("we\"b\\1\n".into()),
        });
        Snapshot {
            gpus: vec![gpu(0, 300), gpu(1, 0)],
            usage: vec![row(web, 0, 200, &[1, 2]), row(Owner::Host, 0, 100, &[3])],
        }
    }

    #[test]
    fn every_family_with_its_samples() {
        let text = render(&snapshot());
        let want = [
            r#"gpuhook_container_gpu_memory_used_bytes{container_id="c1",container_name="we\"b\\1\n",runtime="docker",gpu="0",uuid="GPU-0"} 200"#,
            r#"gpuhook_container_gpu_processes{container_id="c1",container_name="we\"b\\1\n",runtime="docker",gpu="0",uuid="GPU-0"} 2"#,
            r#"gpuhook_host_gpu_memory_used_bytes{gpu="0",uuid="GPU-0"} 100"#,
            r#"gpuhook_host_gpu_memory_used_bytes{gpu="1",uuid="GPU-1"} 0"#,
            r#"gpuhook_unattributed_gpu_memory_used_bytes{gpu="1",uuid="GPU-1"} 0"#,
            r#"gpuhook_gpu_memory_total_bytes{gpu="1",uuid="GPU-1"} 1000"#,
            r#"gpuhook_gpu_memory_used_bytes{gpu="0",uuid="GPU-0"} 300"#,
            r#"gpuhook_gpu_utilization_ratio{gpu="0",uuid="GPU-0"} 0.37"#,
            r#"gpuhook_gpu_memory_utilization_ratio{gpu="1",uuid="GPU-1"} 0.05"#,
        ];
        for line in want {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // Each family's HELP and TYPE once, before its samples.
        for family in [
            "gpuhook_container_gpu_memory_used_bytes",
            "gpuhook_gpu_memory_total_bytes",
        ] {
            let type_line = format!("# TYPE {family} gauge");
            assert_eq!(text.lines().filter(|l| *l == type_line).count(), 1);
            let type_at = text.find(&type_line).unwrap();
            assert!(text.find(&format!("{family}{{")).unwrap() > type_at);
        }
    }

    #[test]
    fn no_container_no_container_family() {
        let mut s = snapshot();
        s.usage.retain(|u| u.owner == Owner::Host);
        let text = render(&s);
        assert!(!text.contains("gpuhook_container_"), "{text}");
        assert!(text.contains("gpuhook_host_gpu_memory_used_bytes{gpu=\"0\",uuid=\"GPU-0\"} 100"));
    }
}
