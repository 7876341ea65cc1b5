//! A fuzzed operator policy plus a tenant's `config.json`, followed as far as the host: the
//! request (legacy and CDI), GPU and MIG selection, requirement checks and the whole plan
//! against a fixed simulated host (`gpuhook_fuzz::sim`), and CDI resolution against a fixed
//! registry. Invariants, not only "no panic":
//! - selected GPUs and MIG devices are the host's, each once; a plan's device nodes are the
//!   host's, each once, and its GPU nodes exactly those of the selection;
//! - a UUID (or MIG UUID) prefix that selects must match exactly one device, or one exactly;
//! - `none` gives no device node, no device rule and no GPU in procfs;
//! - a plan is only made when every requirement holds for every selected GPU, and the
//!   requirement check obeys its laws (`gpuhook_fuzz::laws`);
//! - an unprivileged container under `accept-...-envvar-when-unprivileged = false` gets the
//!   same request whatever its env names (env devices are never read);
//! - CDI names are qualified and unique, and resolve exactly when the registry offers them;
//! - list lengths stay within the policy's limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

use std::collections::HashSet;

use gpuhook::inventory::Inventory;
use gpuhook::plan::{self, ContainerLayout, CudaCompat, MountKind, PlanError, Selection};
use gpuhook::request::cdi::{cdi_devices, is_qualified, CdiRequestPolicy};
use gpuhook::request::imex::ImexChannels;
use gpuhook::request::{
    container_request, ContainerFacts, ContainerRequest, DeviceSelector, HostFacts, RequirementKey,
    VisibleDevices,
};
use gpuhook_fuzz::policy::{self, FuzzPolicy};
use gpuhook_fuzz::{laws, sim};

fuzz_target!(|data: &[u8]| {
    let Some((policy, json)) = policy::split(data) else {
        return;
    };
    let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(json) else {
        return;
    };
    let facts = ContainerFacts::from_spec(&spec);
    let legacy = container_request(&facts, &policy.request);
    let prefixes = ["cdi.k8s.io/".to_string()];
    let cdi = CdiRequestPolicy {
        default_kind: policy.cdi_mode.then_some("nvidia.com/gpu"),
        annotation_prefixes: &prefixes,
    };
    let names = cdi_devices(&facts, &policy.request, &cdi);
    if !facts.privileged && !policy.request.accept_env_when_unprivileged {
        env_devices_are_ignored(&facts, &policy, &cdi, &legacy, &names);
    }
    if let Ok(names) = names {
        check_cdi(&names, &policy);
    }
    if let Ok(Some(request)) = legacy {
        check_request(&request, &policy);
        check_plan(&request, &policy);
    }
});

/// The request of `facts` with other device names in the env: must be the same.
fn env_devices_are_ignored<E: std::fmt::Debug, F: std::fmt::Debug>(
    facts: &ContainerFacts,
    policy: &FuzzPolicy,
    cdi: &CdiRequestPolicy,
    legacy: &Result<Option<ContainerRequest>, E>,
    names: &Result<Vec<String>, F>,
) {
    let mut other = facts.clone();
    for key in ["NVIDIA_VISIBLE_DEVICES", "NVIDIA_IMEX_CHANNELS"] {
        other
            .env
            .insert(key.into(), "all,nvidia.com/gpu=all".into());
    }
    let other_legacy = container_request(&other, &policy.request);
    assert_eq!(
        format!("{legacy:?}"),
        format!("{other_legacy:?}"),
        "env devices were read"
    );
    let other_names = cdi_devices(&other, &policy.request, cdi);
    assert_eq!(
        format!("{names:?}"),
        format!("{other_names:?}"),
        "env CDI names were read"
    );
}

fn check_cdi(names: &[String], policy: &FuzzPolicy) {
    assert!(names.len() <= policy.request.limits.cdi_names);
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "repeated CDI names: {names:?}");
    assert!(names.iter().all(|n| is_qualified(n)), "{names:?}");
    let registry = sim::registry();
    let offered: HashSet<String> = registry.device_names().into_iter().collect();
    match registry.resolve(names) {
        Ok(edits) => {
            assert!(names.iter().all(|n| offered.contains(n)));
            // Each device's edits, plus each spec's shared edits once.
            let specs: HashSet<&str> = names
                .iter()
                .filter_map(|n| n.split_once('='))
                .map(|(k, _)| k)
                .collect();
            let specs_used = edits.len() - names.len();
            assert!(specs_used >= specs.len() && specs_used <= registry.specs.len());
        }
        Err(gpuhook::cdi::CdiError::UnknownDevice { name, .. }) => {
            assert!(names.contains(&name) && !offered.contains(&name), "{name}");
        }
        Err(other) => panic!("{other}"),
    }
}

fn check_request(request: &ContainerRequest, policy: &FuzzPolicy) {
    let limits = &policy.request.limits;
    if let VisibleDevices::List(list) = &request.devices {
        assert!(!list.is_empty() && list.len() <= limits.device_entries);
        let unique: HashSet<&DeviceSelector> = list.iter().collect();
        assert_eq!(unique.len(), list.len(), "repeated selectors");
    }
    if let ImexChannels::List(channels) = &request.imex_channels {
        assert!(channels.len() <= limits.imex_entries);
    }
    let supported = &policy.request.supported_capabilities;
    assert!(request.capabilities.iter().all(|c| supported.contains(c)));
    if policy.request.disable_require {
        assert!(request.requirements.is_empty());
    }
    for requirement in &request.requirements {
        assert!(requirement.groups.len() <= limits.requirement_groups);
    }
}

fn check_plan(request: &ContainerRequest, policy: &FuzzPolicy) {
    let inventory = sim::inventory(
        request.needs(RequirementKey::Cuda),
        request.needs(RequirementKey::Arch) || request.needs(RequirementKey::Brand),
        request.needs_mig(),
    );
    let mut layout = ContainerLayout::for_rootfs(policy.debian);
    layout.cuda_compat = policy.cuda_compat.then(|| CudaCompat {
        dir: "/usr/local/cuda/compat".into(),
        version: "590.1".into(),
    });
    let selection = plan::select(&request.devices, &inventory);
    if let Ok(selection) = &selection {
        check_selection(request, selection, &inventory);
    }
    let facts = selection.as_ref().map(|s| gpu_facts(&inventory, s));
    for requirement in &request.requirements {
        for facts in facts.iter().flatten() {
            laws::check_requirement(requirement, facts);
        }
    }
    match plan::plan(request, &inventory, &layout) {
        Ok(plan) => {
            let selection = selection.expect("a plan was made, so the selection is valid");
            let facts = gpu_facts(&inventory, &selection);
            for requirement in &request.requirements {
                assert!(
                    facts.iter().all(|f| requirement.check(f).is_ok()),
                    "{requirement:?} fails"
                );
            }
            check_plan_devices(request, &selection, &plan, &inventory);
        }
        Err(PlanError::Requirement { name, .. }) => {
            let facts = gpu_facts(
                &inventory,
                selection.as_ref().expect("selected before checks"),
            );
            let failing = request.requirements.iter().filter(|r| r.name == name);
            assert!(failing
                .into_iter()
                .any(|r| facts.iter().any(|f| r.check(f).is_err())));
        }
        Err(_) => {}
    }
}

/// The facts each selected GPU is checked with, as the plan builds them.
fn gpu_facts(inventory: &Inventory, selection: &Selection) -> Vec<HostFacts> {
    let base = HostFacts {
        cuda: inventory.cuda_version.clone(),
        driver: Some(inventory.driver_version.clone()),
        arch: None,
        brand: None,
    };
    let gpus = selection.device_gpus();
    if gpus.is_empty() {
        return vec![base];
    }
    gpus.iter()
        .map(|g| HostFacts {
            arch: g.arch.clone(),
            brand: g.brand.clone(),
            ..base.clone()
        })
        .collect()
}

fn check_selection(request: &ContainerRequest, selection: &Selection, inventory: &Inventory) {
    let host: HashSet<u32> = inventory.gpus.iter().map(|g| g.index).collect();
    let indices: Vec<u32> = selection.gpus.iter().map(|g| g.index).collect();
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "sorted, no repeat: {indices:?}"
    );
    assert!(indices.iter().all(|i| host.contains(i)));
    let mig: Vec<(u32, u32)> = selection
        .mig
        .iter()
        .map(|(g, d)| (g.index, d.index))
        .collect();
    let unique: HashSet<&(u32, u32)> = mig.iter().collect();
    assert_eq!(unique.len(), mig.len(), "a MIG device twice: {mig:?}");
    let mig_inventory = inventory.mig.as_ref();
    for (gpu, device) in &selection.mig {
        let state = mig_inventory
            .and_then(|m| m.gpu(gpu.index))
            .expect("MIG state of the parent");
        assert!(state.enabled && state.devices.iter().any(|d| d.uuid == device.uuid));
    }
    let VisibleDevices::List(selectors) = &request.devices else {
        if request.devices == VisibleDevices::NoGpu {
            assert!(selection.gpus.is_empty() && selection.mig.is_empty());
        } else {
            assert_eq!(selection.gpus.len(), inventory.gpus.len());
        }
        return;
    };
    let all_mig: Vec<&str> = mig_inventory
        .iter()
        .flat_map(|m| &m.gpus)
        .flat_map(|g| &g.devices)
        .map(|d| d.uuid.as_str())
        .collect();
    let gpu_uuids: Vec<&str> = inventory
        .gpus
        .iter()
        .map(|g| g.info.uuid.as_str())
        .collect();
    for selector in selectors {
        match selector {
            DeviceSelector::Uuid(prefix) => assert_unique_match(prefix, &gpu_uuids),
            DeviceSelector::MigUuid(prefix) => assert_unique_match(prefix, &all_mig),
            _ => {}
        }
    }
}

/// A UUID that selected something matches one UUID exactly, or is a prefix of only one.
fn assert_unique_match(prefix: &str, uuids: &[&str]) {
    let wanted = prefix.to_ascii_lowercase();
    let exact = uuids.iter().any(|u| u.to_ascii_lowercase() == wanted);
    let prefixed = uuids
        .iter()
        .filter(|u| u.to_ascii_lowercase().starts_with(&wanted))
        .count();
    assert!(
        exact || prefixed == 1,
        "{prefix} selected but matches {prefixed} devices"
    );
}

fn check_plan_devices(
    request: &ContainerRequest,
    selection: &Selection,
    plan: &plan::InjectionPlan,
    inventory: &Inventory,
) {
    let host: HashSet<(String, u32, u32)> = sim::host_nodes().iter().map(key).collect();
    let given: Vec<(String, u32, u32)> = plan.devices.iter().map(key).collect();
    let unique: HashSet<&(String, u32, u32)> = given.iter().collect();
    assert_eq!(unique.len(), given.len(), "a device node twice");
    assert!(
        given.iter().all(|n| host.contains(n)),
        "a node the host does not have"
    );
    assert_eq!(plan.device_rules.len(), plan.devices.len());
    if request.devices == VisibleDevices::NoGpu {
        assert!(
            plan.devices.is_empty(),
            "`none` got device nodes: {given:?}"
        );
        assert!(plan.device_rules.is_empty() && plan.proc_driver.gpus.is_empty());
        assert!(plan.mounts.iter().all(|m| m.kind != MountKind::Device));
        return;
    }
    let gpu_nodes: Vec<(String, u32, u32)> = given
        .iter()
        .filter(|n| is_gpu_node(&n.0))
        .cloned()
        .collect();
    let selected: Vec<(String, u32, u32)> = selection
        .device_gpus()
        .iter()
        .map(|g| key(g.device.as_ref().expect("a plan only has GPUs with nodes")))
        .collect();
    assert_eq!(gpu_nodes, selected, "the GPU nodes are the selection's");
    let imex: Vec<u32> = plan
        .devices
        .iter()
        .filter(|n| n.path.starts_with("/dev/nvidia-caps-imex-channels"))
        .map(|n| n.minor)
        .collect();
    let wanted: Vec<u32> = match &request.imex_channels {
        ImexChannels::None => vec![],
        ImexChannels::All => inventory.imex_channels.iter().map(|(c, _)| *c).collect(),
        ImexChannels::List(list) => list.clone(),
    };
    assert_eq!(imex, wanted, "the IMEX channels asked for");
}

fn key(node: &gpuhook::inventory::DeviceNode) -> (String, u32, u32) {
    (node.path.display().to_string(), node.major, node.minor)
}

/// `/dev/nvidia<N>`: a whole GPU's node.
fn is_gpu_node(path: &str) -> bool {
    path.strip_prefix("/dev/nvidia")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
