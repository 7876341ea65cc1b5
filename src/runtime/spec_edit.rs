//! Edits to a container's `config.json`, made on its JSON tree so that every field gpuhook does
//! not touch keeps its value and its place (serde_json's `preserve_order`), including fields
//! newer than the `oci-spec` crate knows.

use serde_json::{json, Map, Value};

use crate::inventory::DeviceNode;

/// Names a GPU prestart hook goes by: ours, or NVIDIA's name that dockerd's `--gpus` adds.
const HOOK_NAMES: [&str; 2] = ["gpuhook", "nvidia-container-runtime-hook"];

/// What the shim adds to a GPU container's spec.
#[derive(Debug, Clone)]
pub struct GpuEdits {
    pub hook_path: String,
    /// Env for the hook process (e.g. `GPUHOOK_CONFIG`), never the container's.
    pub hook_env: Vec<String>,
    /// The caps the shim's runtime name imposes (`GPUHOOK_IMPOSED_*=...`), set in the GPU
    /// hook's env, also in a hook that was there already (`docker run --gpus`'s).
    pub imposed_env: Vec<String>,
    /// Add the `poststop` hook that takes a capped container out of its MPS pool.
    pub poststop: bool,
    /// Device nodes to declare in `linux.devices` and allow in `linux.resources.devices`.
    pub devices: Vec<DeviceNode>,
}

/// What an edit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EditSummary {
    pub hook_added: bool,
    pub devices_added: usize,
    /// GPU hooks already there that were given the imposed caps.
    pub hooks_capped: usize,
    pub poststop_added: bool,
}

impl EditSummary {
    pub fn changed(&self) -> bool {
        self.hook_added || self.devices_added > 0 || self.hooks_capped > 0 || self.poststop_added
    }
}

/// Applies the edits; running it twice changes nothing the second time.
pub fn apply(spec: &mut Value, edits: &GpuEdits) -> Result<EditSummary, String> {
    let root = spec
        .as_object_mut()
        .ok_or("config.json is not a JSON object")?;
    let mut summary = EditSummary::default();
    if has_gpu_hook(root, &edits.hook_path) {
        summary.hooks_capped = impose_on_existing(root, &edits.hook_path, &edits.imposed_env)?;
    } else {
        let hooks = object_entry(root, "hooks")?;
        let prestart = array_entry(hooks, "prestart")?;
        let mut hook = json!({ "path": edits.hook_path, "args": ["gpuhook", "prestart"] });
        let env: Vec<&String> = edits.hook_env.iter().chain(&edits.imposed_env).collect();
        if !env.is_empty() {
            hook["env"] = json!(env);
        }
        prestart.push(hook);
        summary.hook_added = true;
    }
    if edits.poststop {
        summary.poststop_added = add_poststop(root, edits)?;
    }
    let linux = object_entry(root, "linux")?;
    for device in &edits.devices {
        let node = SpecDevice {
            path: &device.path.to_string_lossy(),
            kind: "c",
            major: device.major.into(),
            minor: device.minor.into(),
            access: "rw",
        };
        if declare_device(linux, &node)? {
            summary.devices_added += 1;
        }
    }
    Ok(summary)
}

/// A device node as `linux.devices` and `linux.resources.devices` describe it.
pub(super) struct SpecDevice<'a> {
    pub path: &'a str,
    /// `c` or `b`.
    pub kind: &'a str,
    pub major: i64,
    pub minor: i64,
    /// Cgroup access: some of `r`, `w`, `m`.
    pub access: &'a str,
}

/// Declares `device` in `linux.devices` (mode 0666, root-owned) and allows it in
/// `linux.resources.devices`, so runc creates and permits it; false when its path was
/// already declared (nothing is added then).
pub(super) fn declare_device(
    linux: &mut Map<String, Value>,
    device: &SpecDevice,
) -> Result<bool, String> {
    let declared = array_entry(linux, "devices")?;
    if declared
        .iter()
        .any(|d| d.get("path").and_then(Value::as_str) == Some(device.path))
    {
        return Ok(false);
    }
    declared.push(json!({
        "path": device.path, "type": device.kind, "major": device.major, "minor": device.minor,
        "fileMode": 0o666, "uid": 0, "gid": 0,
    }));
    let resources = object_entry(linux, "resources")?;
    array_entry(resources, "devices")?.push(json!({
        "allow": true, "type": device.kind, "major": device.major, "minor": device.minor,
        "access": device.access,
    }));
    Ok(true)
}

fn is_gpu_hook(path: &str, hook_path: &str) -> bool {
    path == hook_path
        || std::path::Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| HOOK_NAMES.contains(&n))
}

fn has_gpu_hook(root: &Map<String, Value>, hook_path: &str) -> bool {
    let Some(hooks) = root.get("hooks").and_then(Value::as_object) else {
        return false;
    };
    ["prestart", "createRuntime"]
        .iter()
        .filter_map(|stage| hooks.get(*stage).and_then(Value::as_array))
        .flatten()
        .filter_map(|h| h.get("path").and_then(Value::as_str))
        .any(|path| is_gpu_hook(path, hook_path))
}

/// Puts the imposed caps into the env of every GPU hook already in the spec (replacing any
/// value they had); returns how many changed.
fn impose_on_existing(
    root: &mut Map<String, Value>,
    hook_path: &str,
    imposed: &[String],
) -> Result<usize, String> {
    if imposed.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = imposed
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, _)| k)
        .collect();
    let hooks = object_entry(root, "hooks")?;
    let mut changed = 0;
    for stage in ["prestart", "createRuntime"] {
        let Some(entries) = hooks.get_mut(stage).and_then(Value::as_array_mut) else {
            continue;
        };
        for hook in entries.iter_mut().filter_map(Value::as_object_mut) {
            let ours = hook
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| is_gpu_hook(p, hook_path));
            if !ours {
                continue;
            }
            let env = array_entry(hook, "env")?;
            let before = env.clone();
            env.retain(|kv| {
                let name = kv
                    .as_str()
                    .and_then(|kv| kv.split_once('='))
                    .map(|(k, _)| k);
                !name.is_some_and(|n| names.contains(&n))
            });
            env.extend(imposed.iter().map(|kv| json!(kv)));
            changed += usize::from(*env != before);
        }
    }
    Ok(changed)
}

/// The `gpuhook poststop` hook, unless it is there; true when added.
fn add_poststop(root: &mut Map<String, Value>, edits: &GpuEdits) -> Result<bool, String> {
    let hooks = object_entry(root, "hooks")?;
    let poststop = array_entry(hooks, "poststop")?;
    let present = poststop.iter().any(|h| {
        h.get("path").and_then(Value::as_str) == Some(&edits.hook_path)
            && h.get("args").and_then(|a| a.get(1)).and_then(Value::as_str) == Some("poststop")
    });
    if present {
        return Ok(false);
    }
    let mut hook = json!({ "path": edits.hook_path, "args": ["gpuhook", "poststop"] });
    if !edits.hook_env.is_empty() {
        hook["env"] = json!(edits.hook_env);
    }
    poststop.push(hook);
    Ok(true)
}

pub(super) fn object_entry<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    parent
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| format!("`{key}` in config.json is not an object"))
}

pub(super) fn array_entry<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Vec<Value>, String> {
    let entry = parent
        .entry(key)
        .or_insert_with(|| Value::Array(Vec::new()));
    if entry.is_null() {
        *entry = Value::Array(Vec::new());
    }
    entry
        .as_array_mut()
        .ok_or_else(|| format!("`{key}` in config.json is not an array"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn edits() -> GpuEdits {
        GpuEdits {
            hook_path: "/usr/bin/gpuhook".into(),
            hook_env: vec!["GPUHOOK_CONFIG=/etc/x.toml".into()],
            imposed_env: Vec::new(),
            poststop: false,
            devices: vec![
                DeviceNode {
                    path: "/dev/nvidia0".into(),
                    host_path: PathBuf::from("/dev/nvidia0"),
                    major: 195,
                    minor: 0,
                },
                DeviceNode {
                    path: "/dev/nvidiactl".into(),
                    host_path: PathBuf::from("/dev/nvidiactl"),
                    major: 195,
                    minor: 255,
                },
            ],
        }
    }

    /// A spec as runc writes it, plus fields newer than the oci-spec crate and vendor keys.
    const BIG_SPEC: &str = include_str!("../../tests/data/large-spec.json");

    #[test]
    fn round_trip_keeps_every_field_in_place() {
        let original: Value = serde_json::from_str(BIG_SPEC).unwrap();
        let mut edited = original.clone();
        let summary = apply(&mut edited, &edits()).unwrap();
        assert_eq!(
            summary,
            EditSummary {
                hook_added: true,
                devices_added: 2,
                ..EditSummary::default()
            }
        );
        // Every original key, at every level, keeps its order and its value except where
        // gpuhook appended to an array.
        let original_keys: Vec<&String> = original.as_object().unwrap().keys().collect();
        let edited_keys: Vec<&String> = edited.as_object().unwrap().keys().collect();
        assert_eq!(&edited_keys[..original_keys.len()], &original_keys[..]);
        for (key, value) in original.as_object().unwrap() {
            if key != "hooks" && key != "linux" {
                assert_eq!(&edited[key], value, "{key} changed");
            }
        }
        let linux = original["linux"].as_object().unwrap();
        for (key, value) in linux {
            if key != "devices" && key != "resources" {
                assert_eq!(&edited["linux"][key], value, "linux.{key} changed");
            }
        }
        let old_rules = original["linux"]["resources"]["devices"]
            .as_array()
            .unwrap();
        let new_rules = edited["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            &new_rules[..old_rules.len()],
            &old_rules[..],
            "existing rules kept first"
        );
        assert_eq!(
            new_rules.last().unwrap(),
            &json!({"allow": true, "type": "c", "major": 195, "minor": 255, "access": "rw"})
        );
        let old_prestart = original["hooks"]["prestart"].as_array().unwrap();
        let new_prestart = edited["hooks"]["prestart"].as_array().unwrap();
        assert_eq!(&new_prestart[..old_prestart.len()], &old_prestart[..]);
        assert_eq!(
            new_prestart.last().unwrap()["env"],
            json!(["GPUHOOK_CONFIG=/etc/x.toml"])
        );
        // Serialising and reading back gives the same tree (nothing lost in the text).
        let text = serde_json::to_string_pretty(&edited).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), edited);
        // The result is still a spec the oci-spec crate accepts.
        serde_json::from_value::<oci_spec::runtime::Spec>(edited).unwrap();
    }

    #[test]
    fn editing_twice_is_a_no_op() {
        let mut spec: Value = serde_json::from_str(BIG_SPEC).unwrap();
        apply(&mut spec, &edits()).unwrap();
        let once = spec.clone();
        assert!(!apply(&mut spec, &edits()).unwrap().changed());
        assert_eq!(spec, once);
    }

    #[test]
    fn a_hook_docker_added_is_not_added_again() {
        let mut spec = json!({"hooks": {"prestart": [{"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["nvidia-container-runtime-hook", "prestart"]}]}});
        let summary = apply(&mut spec, &edits()).unwrap();
        assert!(!summary.hook_added);
        assert_eq!(spec["hooks"]["prestart"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn missing_sections_are_created_and_wrong_types_refused() {
        let mut spec = json!({"ociVersion": "1.0.2"});
        apply(&mut spec, &edits()).unwrap();
        assert_eq!(spec["linux"]["devices"].as_array().unwrap().len(), 2);
        let mut spec = json!({"linux": {"devices": null}});
        apply(&mut spec, &edits()).unwrap();
        let mut bad = json!({"hooks": []});
        assert!(apply(&mut bad, &edits()).is_err());
        assert!(apply(&mut json!([]), &edits()).is_err());
    }

    #[test]
    fn imposed_caps_reach_a_new_hook_and_one_docker_added() {
        let imposed = vec!["GPUHOOK_IMPOSED_MEMORY_LIMIT=8192".to_string()];
        let capped = GpuEdits {
            imposed_env: imposed.clone(),
            poststop: true,
            ..edits()
        };
        let mut spec = json!({"ociVersion": "1.0.2"});
        let summary = apply(&mut spec, &capped).unwrap();
        assert!(summary.hook_added && summary.poststop_added);
        assert_eq!(
            spec["hooks"]["prestart"][0]["env"],
            json!([
                "GPUHOOK_CONFIG=/etc/x.toml",
                "GPUHOOK_IMPOSED_MEMORY_LIMIT=8192"
            ])
        );
        assert_eq!(
            spec["hooks"]["poststop"][0],
            json!({"path": "/usr/bin/gpuhook", "args": ["gpuhook", "poststop"], "env": ["GPUHOOK_CONFIG=/etc/x.toml"]})
        );
        // Twice: nothing more.
        assert!(!apply(&mut spec, &capped).unwrap().changed());
        // dockerd's --gpus hook, with dockerd's env (an old value of ours replaced).
        let mut docker = json!({"hooks": {"prestart": [{
            "path": "/usr/bin/nvidia-container-runtime-hook", "args": ["nvidia-container-runtime-hook", "prestart"],
            "env": ["PATH=/usr/bin", "GPUHOOK_IMPOSED_MEMORY_LIMIT=99999"]}]}});
        let summary = apply(&mut docker, &capped).unwrap();
        assert!(!summary.hook_added);
        assert_eq!(summary.hooks_capped, 1);
        assert_eq!(
            docker["hooks"]["prestart"][0]["env"],
            json!(["PATH=/usr/bin", "GPUHOOK_IMPOSED_MEMORY_LIMIT=8192"])
        );
        assert_eq!(docker["hooks"]["prestart"].as_array().unwrap().len(), 1);
    }
}
