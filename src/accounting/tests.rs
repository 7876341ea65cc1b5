use super::*;

const MIB: u64 = 1 << 20;

fn process(pid: u32, mib: Option<u64>, kinds: &[ProcessKind]) -> GpuProcess {
    GpuProcess {
        pid,
        memory_used_bytes: mib.map(|m| m * MIB),
        kinds: kinds.iter().copied().collect(),
    }
}

fn gpu(index: u32, processes: Vec<GpuProcess>) -> GpuStatus {
    GpuStatus {
        index,
        uuid: format!("GPU-{index}"),
        memory_total_bytes: Some(80 * 1024 * MIB),
        memory_used_bytes: Some(0),
        utilization: None,
        processes,
    }
}

fn container(id: &str) -> Owner {
    Owner::Container(Container {
        id: id.to_string(),
        runtime: Some("runc".into()),
        namespace: None,
        name: None,
    })
}

/// pid 1x: container a, 2x: container b, 3x: the host, others unknown.
fn facts(pid: u32) -> ProcessFacts {
    let owner = match pid / 10 {
        1 => container("a"),
        2 => container("b"),
        3 => Owner::Host,
        _ => Owner::Unknown,
    };
    ProcessFacts {
        name: (pid < 40).then(|| format!("p{pid}")),
        owner,
    }
}

fn summary(usage: &[Usage]) -> Vec<(String, u32, u64, Vec<u32>)> {
    usage
        .iter()
        .map(|u| {
            let who = match &u.owner {
                Owner::Container(c) => c.id.clone(),
                Owner::Host => "host".into(),
                Owner::Unknown => "?".into(),
            };
            let pids = u.processes.iter().map(|p| p.pid).collect();
            (who, u.gpu_index, u.memory_used_bytes / MIB, pids)
        })
        .collect()
}

#[test]
fn one_row_per_owner_and_gpu_with_summed_memory() {
    use ProcessKind::*;
    let gpus = vec![
        gpu(
            0,
            vec![
                process(12, Some(512), &[Compute]),
                process(11, Some(1024), &[Compute]),
                process(21, Some(2048), &[Compute, MpsClient]),
                process(31, Some(100), &[Graphics]),
            ],
        ),
        gpu(
            1,
            vec![
                process(11, Some(300), &[Compute]),
                process(45, None, &[Compute]),
            ],
        ),
        gpu(2, vec![]),
    ];
    let usage = aggregate(&gpus, facts);
    assert_eq!(
        summary(&usage),
        vec![
            ("a".into(), 0, 1536, vec![11, 12]),
            ("a".into(), 1, 300, vec![11]),
            ("b".into(), 0, 2048, vec![21]),
            ("host".into(), 0, 100, vec![31]),
            ("?".into(), 1, 0, vec![45]),
        ]
    );
    let mps = &usage[2].processes[0];
    assert_eq!(mps.name.as_deref(), Some("p21"));
    assert!(
        mps.kinds.contains(&MpsClient),
        "the MPS client counts for b"
    );
    assert_eq!(usage[4].processes[0].memory_used_bytes, None);
    assert_eq!(usage[1].gpu_uuid, "GPU-1");
}

#[test]
fn no_process_no_row() {
    assert!(aggregate(&[gpu(0, vec![])], facts).is_empty());
}

#[test]
fn short_ids_are_docker_style_for_engine_ids_only() {
    let engine = Container {
        id: "3f2a1b9c0d11e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123".into(),
        runtime: None,
        namespace: None,
        name: None,
    };
    assert_eq!(engine.short_id(), "3f2a1b9c0d11");
    let runc = Container {
        id: "my-training-job".into(),
        ..engine
    };
    assert_eq!(runc.short_id(), "my-training-job");
}
