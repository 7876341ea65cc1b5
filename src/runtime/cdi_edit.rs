//! CDI container edits applied to a `config.json` tree, as the CDI library does for Podman and
//! containerd: device nodes into `linux.devices` with an allow rule each, bind mounts, hooks
//! by name, env. Like `spec_edit`, it works on the JSON tree so every other field stays as it
//! was; applying the same edits twice adds nothing.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde_json::{json, Map, Value};

use super::spec_edit::{
    array_entry, declare_device, declared_devices, object_entry, strings_at, SpecDevice,
};
use crate::cdi::spec::{ContainerEdits, DeviceNode};

/// What applying CDI edits changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CdiSummary {
    pub devices: usize,
    pub mounts: usize,
    pub hooks: usize,
}

/// Applies `edits` in order, then sets `NVIDIA_VISIBLE_DEVICES=void` so that a legacy hook
/// (e.g. one `docker run --gpus` added) leaves the container alone. The tenant's spec can be
/// long: what it already declares is read once into sets, so each edit costs O(1) more.
pub fn apply(spec: &mut Value, edits: &[ContainerEdits]) -> Result<CdiSummary, String> {
    let root = spec
        .as_object_mut()
        .ok_or("config.json is not a JSON object")?;
    let mut summary = CdiSummary::default();
    let mut env: Vec<&str> = edits
        .iter()
        .flat_map(|e| &e.env)
        .map(String::as_str)
        .collect();
    env.push("NVIDIA_VISIBLE_DEVICES=void");
    set_env(root, &env)?;
    let mut declared = declared_devices(root);
    let mut destinations: HashSet<String> = strings_at(root.get("mounts"), "destination");
    for edit in edits {
        for node in &edit.device_nodes {
            if add_device(root, &mut declared, node)? {
                summary.devices += 1;
            }
        }
        for mount in &edit.mounts {
            let destination = mount.container_path.to_string_lossy();
            let mounts = array_entry(root, "mounts")?;
            if !destinations.insert(destination.to_string()) {
                continue;
            }
            mounts.push(json!({
                "destination": destination,
                "type": "bind",
                "source": mount.host_path.to_string_lossy(),
                "options": mount.options,
            }));
            summary.mounts += 1;
        }
        for hook in &edit.hooks {
            let mut entry = json!({ "path": hook.path.to_string_lossy() });
            if !hook.args.is_empty() {
                entry["args"] = json!(hook.args);
            }
            if !hook.env.is_empty() {
                entry["env"] = json!(hook.env);
            }
            // Linear in the tenant's hooks of that stage, times the admin's few hooks.
            let stage = array_entry(object_entry(root, "hooks")?, &hook.hook_name)?;
            if !stage.contains(&entry) {
                stage.push(entry);
                summary.hooks += 1;
            }
        }
    }
    Ok(summary)
}

/// Sets every `KEY=value` of `kvs` in `process.env`: earlier entries of those keys go, and of
/// several values for one key the last wins, in the place of that last one (as setting them
/// one by one would leave them). One pass over the tenant's env.
fn set_env(root: &mut Map<String, Value>, kvs: &[&str]) -> Result<(), String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let last: HashMap<String, usize> = kvs.iter().enumerate().map(|(i, kv)| (key(kv), i)).collect();
    let env = array_entry(object_entry(root, "process")?, "env")?;
    env.retain(|e| match e.as_str() {
        Some(s) => !last.contains_key(&key(s)),
        None => true,
    });
    let kept = kvs
        .iter()
        .enumerate()
        .filter(|(i, kv)| last[&key(kv)] == *i);
    env.extend(kept.map(|(_, kv)| json!(kv)));
    Ok(())
}

/// Adds one node and its allow rule; false when the path was already declared.
fn add_device(
    root: &mut Map<String, Value>,
    declared: &mut HashSet<String>,
    node: &DeviceNode,
) -> Result<bool, String> {
    let (kind, major, minor) = device_numbers(node)?;
    let device = SpecDevice {
        path: &node.path.to_string_lossy(),
        kind: &kind,
        major,
        minor,
        access: node.permissions.as_deref().unwrap_or("rwm"),
    };
    declare_device(object_entry(root, "linux")?, declared, &device)
}

/// Type and numbers from the spec, else from the host node (`hostPath`, else `path`).
fn device_numbers(node: &DeviceNode) -> Result<(String, i64, i64), String> {
    if let (Some(major), Some(minor)) = (node.major, node.minor) {
        return Ok((
            node.kind.clone().unwrap_or_else(|| "c".into()),
            major,
            minor,
        ));
    }
    let host = node.host_path.as_ref().unwrap_or(&node.path);
    let meta =
        std::fs::metadata(host).map_err(|e| format!("CDI device node {}: {e}", host.display()))?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(format!(
            "CDI device node {} is not a device",
            host.display()
        ));
    };
    let rdev = meta.rdev();
    Ok((
        kind.into(),
        i64::from(rustix::fs::major(rdev)),
        i64::from(rustix::fs::minor(rdev)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdi::spec::{Hook, Mount};

    fn edits() -> Vec<ContainerEdits> {
        vec![
            ContainerEdits {
                env: vec!["FOO=1".into()],
                device_nodes: vec![DeviceNode {
                    path: "/dev/nvidiactl".into(),
                    host_path: None,
                    kind: Some("c".into()),
                    major: Some(195),
                    minor: Some(255),
                    permissions: Some("rw".into()),
                }],
                mounts: vec![Mount {
                    host_path: "/usr/lib/x86_64-linux-gnu/libcuda.so.580.1".into(),
                    container_path: "/usr/lib/x86_64-linux-gnu/libcuda.so.580.1".into(),
                    options: vec!["ro".into(), "nosuid".into(), "nodev".into(), "bind".into()],
                }],
                hooks: vec![Hook {
                    hook_name: "createRuntime".into(),
                    path: "/usr/bin/gpuhook".into(),
                    args: vec![
                        "gpuhook".into(),
                        "cdi-hook".into(),
                        "mask-proc-driver".into(),
                    ],
                    env: vec![],
                }],
            },
            ContainerEdits {
                // /dev/null: numbers taken from the host node.
                device_nodes: vec![DeviceNode {
                    path: "/dev/nvidia0".into(),
                    host_path: Some("/dev/null".into()),
                    kind: None,
                    major: None,
                    minor: None,
                    permissions: None,
                }],
                ..Default::default()
            },
        ]
    }

    #[test]
    fn edits_land_where_runc_reads_them_and_twice_is_once() {
        let mut spec = json!({
            "ociVersion": "1.0.2",
            "process": {"env": ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0", "FOO=0"]},
            "linux": {"namespaces": []},
            "x-unknown": {"kept": true}
        });
        let summary = apply(&mut spec, &edits()).unwrap();
        assert_eq!(
            summary,
            CdiSummary {
                devices: 2,
                mounts: 1,
                hooks: 1
            }
        );
        assert_eq!(
            spec["process"]["env"],
            json!(["PATH=/bin", "FOO=1", "NVIDIA_VISIBLE_DEVICES=void"])
        );
        assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/nvidiactl");
        assert_eq!(spec["linux"]["devices"][1]["major"], 1);
        assert_eq!(spec["linux"]["devices"][1]["minor"], 3);
        assert_eq!(spec["linux"]["resources"]["devices"][0]["access"], "rw");
        assert_eq!(spec["linux"]["resources"]["devices"][1]["access"], "rwm");
        assert_eq!(spec["mounts"][0]["type"], "bind");
        assert_eq!(
            spec["hooks"]["createRuntime"][0]["args"][2],
            "mask-proc-driver"
        );
        assert_eq!(spec["x-unknown"], json!({"kept": true}));

        let once = spec.clone();
        let again = apply(&mut spec, &edits()).unwrap();
        assert_eq!(again, CdiSummary::default());
        assert_eq!(spec, once);
    }

    #[test]
    fn a_missing_host_node_is_an_error_naming_it() {
        let mut spec = json!({});
        let mut e = edits();
        e[1].device_nodes[0].host_path = Some("/nonexistent/nvidia9".into());
        let err = apply(&mut spec, &e).unwrap_err();
        assert!(err.contains("/nonexistent/nvidia9"), "{err}");
    }

    #[test]
    fn env_edits_replace_the_tenants_and_the_last_value_of_a_key_wins() {
        let tenant: Vec<Value> = (0..3000)
            .map(|i| json!(format!("T{i}=x")))
            .chain([json!(42), json!("FOO=tenant"), json!("BARE")])
            .collect();
        let mut spec = json!({"process": {"env": tenant}});
        let edits = vec![
            ContainerEdits {
                env: vec!["FOO=1".into(), "T7=edited".into(), "BARE".into()],
                ..Default::default()
            },
            ContainerEdits {
                env: vec!["FOO=2".into(), "NEW=1".into()],
                ..Default::default()
            },
        ];
        apply(&mut spec, &edits).unwrap();
        let env = spec["process"]["env"].as_array().unwrap();
        // The tenant's other entries, non-strings included, keep their order; then the edits'
        // values in the order they were last set.
        let mut expected: Vec<Value> = (0..3000)
            .filter(|i| *i != 7)
            .map(|i| json!(format!("T{i}=x")))
            .collect();
        expected.push(json!(42));
        for kv in [
            "T7=edited",
            "BARE",
            "FOO=2",
            "NEW=1",
            "NVIDIA_VISIBLE_DEVICES=void",
        ] {
            expected.push(json!(kv));
        }
        assert_eq!(env, &expected);
    }
}
