use super::*;
use crate::plan::tests::{inventory, request};

fn planned(request: &ContainerRequest) -> (InjectionPlan, ContainerLayout) {
    let layout = ContainerLayout::for_rootfs(true);
    let plan = crate::plan::plan(request, &inventory(), &layout).unwrap();
    (plan, layout)
}

fn mps_targets(plan: &InjectionPlan) -> Vec<(String, String, Placement)> {
    plan.mounts
        .iter()
        .filter(|m| m.kind == MountKind::Ipc && m.target == TargetType::Directory)
        .map(|m| {
            (
                m.host_path.display().to_string(),
                m.container_path.display().to_string(),
                m.placement,
            )
        })
        .collect()
}

#[test]
fn the_pool_pipe_dir_replaces_the_hosts_at_the_default_path() {
    let r = request(&["NVIDIA_VISIBLE_DEVICES=0"]);
    let (mut plan, layout) = planned(&r);
    assert_eq!(
        mps_targets(&plan),
        [(
            "/sim/tmp/nvidia-mps".into(),
            "/tmp/nvidia-mps".into(),
            Placement::Optional
        )]
    );
    let pipe = Path::new("/run/gpuhook/mps/pools/p1/pipe");
    mount_pool_pipe_dir(&mut plan, &inventory(), &r, &layout, Some(pipe)).unwrap();
    assert_eq!(
        mps_targets(&plan),
        [(
            pipe.display().to_string(),
            "/tmp/nvidia-mps".into(),
            Placement::Required
        )]
    );
    // Directories still come last.
    assert_eq!(plan.mounts.last().unwrap().host_path, pipe);
}

#[test]
fn the_pool_pipe_dir_goes_where_the_container_looks_and_obeys_the_target_rules() {
    let r = request(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "CUDA_MPS_PIPE_DIRECTORY=/var/mps",
    ]);
    let (mut plan, layout) = planned(&r);
    let pipe = Path::new("/run/gpuhook/mps/pools/p1/pipe");
    mount_pool_pipe_dir(&mut plan, &inventory(), &r, &layout, Some(pipe)).unwrap();
    assert_eq!(
        mps_targets(&plan),
        [(
            pipe.display().to_string(),
            "/var/mps".into(),
            Placement::Required
        )]
    );
    // A host without an MPS directory of its own: the pool's mount alone meets the rules.
    let mut no_host_mps = inventory();
    no_host_mps.mps_pipe_dir = None;
    let bad = request(&["NVIDIA_VISIBLE_DEVICES=0", "CUDA_MPS_PIPE_DIRECTORY=/etc"]);
    let layout = ContainerLayout::for_rootfs(true);
    let mut plan = crate::plan::plan(&bad, &no_host_mps, &layout).unwrap();
    let err = mount_pool_pipe_dir(&mut plan, &no_host_mps, &bad, &layout, Some(pipe)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("CUDA_MPS_PIPE_DIRECTORY=/etc: refused"),
        "{err}"
    );
}

#[test]
fn a_capped_container_without_a_pool_loses_the_hosts_mps_directory() {
    let r = request(&["NVIDIA_VISIBLE_DEVICES=0"]);
    let (mut plan, layout) = planned(&r);
    mount_pool_pipe_dir(&mut plan, &inventory(), &r, &layout, None).unwrap();
    assert!(mps_targets(&plan).is_empty());
}

#[test]
fn caps_only_for_compute_containers_with_gpus() {
    let policy = Policy {
        default: Limits {
            memory_bytes: Some(1 << 30),
            compute_percent: None,
        },
        ..Policy::default()
    };
    let gpus = [(0, "GPU-a".to_string())];
    let memory = MemoryRequest::default();
    let compute = request(&["NVIDIA_VISIBLE_DEVICES=0"]);
    assert!(caps_for(&memory, &policy, &compute, &gpus)
        .unwrap()
        .is_some());
    assert!(caps_for(&memory, &policy, &compute, &[]).unwrap().is_none());
    let utility = request(&[
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=utility",
    ]);
    assert!(caps_for(&memory, &policy, &utility, &gpus)
        .unwrap()
        .is_none());
}

#[test]
fn a_runtime_name_imposes_its_caps_through_the_hook_env() {
    let config: Config = Config::parse(
        "[memory.runtimes.gpuhook-shared]\nlimit = \"8G\"\ncompute-limit = 50\n",
        Path::new("c.toml"),
    )
    .unwrap();
    let (env, limits) = imposed_for_runtime(&config.memory, "gpuhook-shared");
    assert_eq!(
        env,
        [
            "GPUHOOK_IMPOSED_MEMORY_LIMIT=8192",
            "GPUHOOK_IMPOSED_COMPUTE_LIMIT=50"
        ]
    );
    assert_eq!(limits.memory_bytes, Some(8 << 30));
    let (env, limits) = imposed_for_runtime(&config.memory, "gpuhook");
    assert!(env.is_empty() && limits == Limits::default());
}

#[test]
fn config_values_are_checked() {
    for (text, key) in [
        ("[memory]\nmax-limit = \"lots\"\n", "max-limit"),
        (
            "[memory]\ndefault-compute-limit = 0\n",
            "memory.default-compute-limit",
        ),
        (
            "[memory.runtimes.x]\ncompute-limit = 120\n",
            "memory.runtimes.x.compute-limit",
        ),
        ("[memory]\nmps-root = \"run/mps\"\n", "memory.mps-root"),
        ("[memory]\nenforcement = \"magic\"\n", "enforcement"),
    ] {
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
    let config = Config::parse(
        "[memory]\ndefault-limit = \"2G\"\nmax-limit = \"8192M\"\n",
        Path::new("c.toml"),
    )
    .unwrap();
    assert_eq!(config.memory.default_limit.0, Some(2 << 30));
    assert_eq!(config.memory.max_limit.0, Some(8 << 30));
    assert!(config.memory.configures_caps());
    assert!(!Config::default().memory.configures_caps());
}
