//! The runtime shim's edits of a fuzzed TENANT `config.json` tree with fixed admin edits:
//! `runtime::spec_edit::apply` (hook, GPU device nodes) and `runtime::cdi_edit::apply` (CDI
//! edits of the simulated registry). Invariants:
//! - every field of the tenant's tree that the edit does not own keeps its value and its
//!   place; owned arrays keep the tenant's entries in order (`gpuhook_fuzz::json_tree`);
//! - what was added is what the summary says, and only the admin's entries;
//! - applying twice gives the same tree as once, and the second reports no change;
//! - a tree that is a valid OCI spec can be edited, and stays a valid spec.
#![no_main]
use libfuzzer_sys::fuzz_target;

use std::collections::HashSet;

use gpuhook::cdi::spec::ContainerEdits;
use gpuhook::runtime::{cdi_edit, spec_edit, GpuEdits};
use gpuhook_fuzz::json_tree::{env_key, Owned, Ownership};
use gpuhook_fuzz::sim;
use serde::Deserialize;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, json)) = data.split_first() else {
        return;
    };
    let Ok(tree) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let is_spec = is_valid_spec(&tree);
    gpu_edits_keep_the_tenants_tree(&tree, &gpu_edits(choice), is_spec);
    cdi_edits_keep_the_tenants_tree(&tree, &cdi_edits(choice), is_spec);
});

/// The hook and the GPU nodes of a plan: which nodes, and hook env or not, by `choice`.
fn gpu_edits(choice: u8) -> GpuEdits {
    let nodes = sim::host_nodes();
    GpuEdits {
        hook_path: "/usr/bin/gpuhook".into(),
        hook_env: if choice & 1 != 0 {
            vec!["GPUHOOK_CONFIG=/etc/gpuhook/x.toml".into()]
        } else {
            vec![]
        },
        // The imposed caps' env edits the hook entries the tenant's tree may hold; the
        // invariant below is for a shim that imposes none.
        imposed_env: Vec::new(),
        poststop: choice % 3 == 0,
        devices: nodes
            .into_iter()
            .enumerate()
            .filter(|(i, _)| choice & (2 << (i % 7)) != 0)
            .map(|(_, n)| n)
            .collect(),
    }
}

/// What resolving some of the registry's names gives, by `choice`.
fn cdi_edits(choice: u8) -> Vec<ContainerEdits> {
    let registry = sim::registry();
    let names: Vec<String> = registry
        .device_names()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| choice & (1 << (i % 8)) != 0)
        .map(|(_, n)| n)
        .collect();
    registry
        .resolve(&names)
        .expect("the registry's own names resolve")
}

/// A spec runc would read: a JSON object (serde would also read a struct from an array,
/// which Go's encoding/json refuses) that oci-spec accepts.
fn is_valid_spec(tree: &Value) -> bool {
    tree.is_object() && oci_spec::runtime::Spec::deserialize(tree).is_ok()
}

fn array_len(tree: &Value, path: &[&str]) -> usize {
    path.iter()
        .try_fold(tree, |v, k| v.get(k))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn gpu_edits_keep_the_tenants_tree(tree: &Value, edits: &GpuEdits, is_spec: bool) {
    let mut once = tree.clone();
    let summary = match spec_edit::apply(&mut once, edits) {
        Ok(summary) => summary,
        Err(e) => {
            assert!(!is_spec, "a valid spec could not be edited: {e}");
            return;
        }
    };
    let ownership = Ownership::new(&[
        (&["hooks", "prestart"], Owned::Append),
        (&["hooks", "poststop"], Owned::Append),
        (&["linux", "devices"], Owned::Append),
        (&["linux", "resources", "devices"], Owned::Append),
    ]);
    ownership.check(tree, &once);
    let added = array_len(&once, &["linux", "devices"]) - array_len(tree, &["linux", "devices"]);
    assert_eq!(added, summary.devices_added);
    let rules = array_len(&once, &["linux", "resources", "devices"])
        - array_len(tree, &["linux", "resources", "devices"]);
    assert_eq!(rules, summary.devices_added, "one allow rule per device");
    let hooks = array_len(&once, &["hooks", "prestart"]) - array_len(tree, &["hooks", "prestart"]);
    assert_eq!(hooks, usize::from(summary.hook_added));
    let paths: HashSet<String> = edits
        .devices
        .iter()
        .map(|d| d.path.display().to_string())
        .collect();
    // (No device to add leaves linux.devices as it was, possibly absent.)
    let declared = once["linux"]["devices"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for device in &declared[declared.len() - added..] {
        assert!(
            paths.contains(device["path"].as_str().expect("a path")),
            "{device}"
        );
    }
    let mut twice = once.clone();
    let again = spec_edit::apply(&mut twice, edits).expect("an edited tree edits again");
    assert!(!again.changed(), "the second edit changed {again:?}");
    assert_eq!(twice, once, "applying twice differs from once");
    if is_spec {
        assert!(is_valid_spec(&once), "the edited spec is no longer a spec");
    }
}

fn cdi_edits_keep_the_tenants_tree(tree: &Value, edits: &[ContainerEdits], is_spec: bool) {
    let mut once = tree.clone();
    let summary = match cdi_edit::apply(&mut once, edits) {
        Ok(summary) => summary,
        Err(e) => {
            assert!(!is_spec, "a valid spec could not be edited: {e}");
            return;
        }
    };
    let mut keys: HashSet<String> = edits
        .iter()
        .flat_map(|e| &e.env)
        .map(|kv| env_key(kv).to_string())
        .collect();
    keys.insert("NVIDIA_VISIBLE_DEVICES".into());
    let stages: HashSet<&str> = edits
        .iter()
        .flat_map(|e| &e.hooks)
        .map(|h| h.hook_name.as_str())
        .collect();
    let mut owned: Vec<(Vec<&str>, Owned)> = vec![
        (vec!["process", "env"], Owned::Env(keys)),
        (vec!["linux", "devices"], Owned::Append),
        (vec!["linux", "resources", "devices"], Owned::Append),
        (vec!["mounts"], Owned::Append),
    ];
    owned.extend(stages.iter().map(|s| (vec!["hooks", *s], Owned::Append)));
    let owned: Vec<(&[&str], Owned)> = owned
        .iter()
        .map(|(p, o)| (p.as_slice(), o.clone()))
        .collect();
    Ownership::new(&owned).check(tree, &once);
    let grown = |path: &[&str]| array_len(&once, path) - array_len(tree, path);
    assert_eq!(grown(&["linux", "devices"]), summary.devices);
    assert_eq!(grown(&["linux", "resources", "devices"]), summary.devices);
    assert_eq!(grown(&["mounts"]), summary.mounts);
    let hooks: usize = stages.iter().map(|s| grown(&["hooks", s])).sum();
    assert_eq!(hooks, summary.hooks);
    let env = once["process"]["env"]
        .as_array()
        .expect("process.env after the edit");
    assert_eq!(
        env.last(),
        Some(&Value::from("NVIDIA_VISIBLE_DEVICES=void"))
    );
    let mut twice = once.clone();
    let again = cdi_edit::apply(&mut twice, edits).expect("an edited tree edits again");
    assert_eq!(
        again,
        cdi_edit::CdiSummary::default(),
        "the second edit added something"
    );
    assert_eq!(twice, once, "applying twice differs from once");
    // The env edit creates `process` when there is none; a spec without a process is one
    // runc cannot run, before or after, so only specs with one must stay specs.
    if is_spec && tree.get("process").is_some_and(Value::is_object) {
        assert!(is_valid_spec(&once), "the edited spec is no longer a spec");
    }
}
