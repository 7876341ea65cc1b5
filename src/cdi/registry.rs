//! CDI specs on disk (`*.json`, `*.yaml`, `*.yml` in the spec directories) and resolution of
//! qualified names (`vendor.com/class=name`) into container edits. As in the CDI library, a
//! later directory has priority over an earlier one (`/var/run/cdi` over `/etc/cdi`) for the
//! same device, and a spec file that cannot be read is reported, not fatal to the others.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::spec::{ContainerEdits, Device, Spec};
use crate::request::first_seen::FirstSeen;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CdiError {
    #[error("CDI device {name} not found in {dirs} ({offered}){broken}: run `gpuhook cdi generate`, or ask for one of those")]
    UnknownDevice {
        name: String,
        dirs: String,
        offered: String,
        broken: String,
    },
    #[error("{path}: {message}")]
    BadSpec { path: PathBuf, message: String },
}

/// Every spec found, lowest priority first.
#[derive(Debug, Default)]
pub struct Registry {
    pub specs: Vec<(PathBuf, Spec)>,
    /// Spec files that could not be read or parsed.
    pub errors: Vec<CdiError>,
    dirs: Vec<PathBuf>,
}

impl Registry {
    /// Reads the spec files in `dirs` (missing directories are skipped).
    pub fn load(dirs: &[PathBuf]) -> Registry {
        let mut registry = Registry {
            dirs: dirs.to_vec(),
            ..Default::default()
        };
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("json" | "yaml" | "yml")
                    )
                })
                .collect();
            files.sort();
            for file in files {
                match read_spec(&file) {
                    Ok(spec) => registry.specs.push((file, spec)),
                    Err(e) => registry.errors.push(e),
                }
            }
        }
        registry
    }

    /// Every qualified device name offered, in spec order.
    pub fn device_names(&self) -> Vec<String> {
        let mut names = FirstSeen::new();
        for (_, spec) in &self.specs {
            for device in &spec.devices {
                names.insert(format!("{}={}", spec.kind, device.name));
            }
        }
        names.into_vec()
    }

    /// The edits for `names`: for each device, its spec's shared edits (once per spec) and
    /// the device's own. The names come from the tenant: one lookup each in an index of the
    /// offered devices, so the cost is linear in both.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<ContainerEdits>, CdiError> {
        // (kind, name) -> (spec index, device). Specs in reverse, first insertion kept: a
        // later spec wins, and within a spec its first device of that name.
        let mut offered: HashMap<(&str, &str), (usize, &Device)> = HashMap::new();
        for (i, (_, spec)) in self.specs.iter().enumerate().rev() {
            for device in &spec.devices {
                offered
                    .entry((spec.kind.as_str(), device.name.as_str()))
                    .or_insert((i, device));
            }
        }
        let mut edits = Vec::new();
        let mut specs_used = HashSet::new();
        for name in names {
            let found = name
                .split_once('=')
                .and_then(|(kind, device)| offered.get(&(kind, device)));
            let Some(&(spec_index, device)) = found else {
                return Err(self.unknown(name));
            };
            if specs_used.insert(spec_index) {
                edits.push(self.specs[spec_index].1.container_edits.clone());
            }
            edits.push(device.container_edits.clone());
        }
        Ok(edits)
    }

    fn unknown(&self, name: &str) -> CdiError {
        let offered = self.device_names();
        CdiError::UnknownDevice {
            name: name.to_string(),
            dirs: self
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            offered: if offered.is_empty() {
                "no CDI spec there".into()
            } else {
                format!("they offer {}", offered.join(", "))
            },
            broken: self
                .errors
                .iter()
                .map(|e| format!("; unreadable spec {e}"))
                .collect(),
        }
    }
}

/// Reads one spec file; JSON or YAML by extension.
pub fn read_spec(path: &Path) -> Result<Spec, CdiError> {
    let bad = |message: String| CdiError::BadSpec {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let spec: Spec = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        serde_norway::from_str(&text).map_err(|e| bad(e.to_string()))?
    };
    if !spec.kind.contains('/') {
        return Err(bad(format!(
            "kind {:?} is not of the form vendor.com/class",
            spec.kind
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdi::spec::DeviceNode;

    fn spec(kind: &str, names: &[&str], shared_env: &str) -> Spec {
        Spec {
            cdi_version: "0.5.0".into(),
            kind: kind.into(),
            devices: names
                .iter()
                .map(|n| Device {
                    name: n.to_string(),
                    container_edits: ContainerEdits {
                        device_nodes: vec![DeviceNode {
                            path: format!("/dev/nvidia{n}").into(),
                            host_path: None,
                            kind: None,
                            major: None,
                            minor: None,
                            permissions: None,
                        }],
                        ..Default::default()
                    },
                })
                .collect(),
            container_edits: ContainerEdits {
                env: vec![shared_env.into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn loads_json_and_yaml_and_resolves_with_later_dirs_winning() {
        let low = tempfile::tempdir().unwrap();
        let high = tempfile::tempdir().unwrap();
        let s = spec("nvidia.com/gpu", &["0", "1"], "FROM=low");
        std::fs::write(
            low.path().join("a.json"),
            serde_json::to_string(&s).unwrap(),
        )
        .unwrap();
        let s = spec("nvidia.com/gpu", &["1"], "FROM=high");
        std::fs::write(
            high.path().join("b.yaml"),
            serde_norway::to_string(&s).unwrap(),
        )
        .unwrap();
        std::fs::write(high.path().join("broken.json"), "{").unwrap();
        std::fs::write(high.path().join("notes.txt"), "ignored").unwrap();
        let registry =
            Registry::load(&[low.path().into(), high.path().into(), "/nonexistent".into()]);
        assert_eq!(registry.specs.len(), 2);
        assert_eq!(registry.errors.len(), 1);
        assert_eq!(
            registry.device_names(),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
        );

        let edits = registry.resolve(&["nvidia.com/gpu=1".into()]).unwrap();
        assert_eq!(edits[0].env, ["FROM=high"]);
        assert_eq!(edits[1].device_nodes[0].path, PathBuf::from("/dev/nvidia1"));
        // Two devices of one spec: its shared edits once.
        let edits = registry
            .resolve(&["nvidia.com/gpu=0".into(), "nvidia.com/gpu=1".into()])
            .unwrap();
        assert_eq!(edits.len(), 4);
    }

    #[test]
    fn unknown_device_names_what_is_offered() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec("nvidia.com/gpu", &["0"], "X=1");
        std::fs::write(
            dir.path().join("a.json"),
            serde_json::to_string(&s).unwrap(),
        )
        .unwrap();
        let registry = Registry::load(&[dir.path().into()]);
        let err = registry.resolve(&["nvidia.com/gpu=7".into()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("CDI device nvidia.com/gpu=7 not found in "),
            "{text}"
        );
        assert!(text.contains("they offer nvidia.com/gpu=0"), "{text}");
        assert!(text.contains("gpuhook cdi generate"), "{text}");
    }

    #[test]
    fn resolution_takes_the_latest_spec_and_each_spec_shared_edits_once() {
        // Two specs of one kind offer device 1 (the later wins); one spec lists a name twice
        // (its first entry counts); many names of one spec bring its shared edits once.
        let names: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut early = spec("nvidia.com/gpu", &names, "FROM=early");
        early.devices.push(early.devices[5].clone());
        early.devices.last_mut().unwrap().container_edits.env = vec!["SECOND=1".into()];
        let late = spec("nvidia.com/gpu", &["1"], "FROM=late");
        let registry = Registry {
            specs: vec![("a.json".into(), early), ("b.json".into(), late)],
            ..Default::default()
        };
        let wanted: Vec<String> = (0..2000)
            .rev()
            .map(|i| format!("nvidia.com/gpu={i}"))
            .collect();
        let edits = registry.resolve(&wanted).unwrap();
        // 2000 devices, the early spec's shared edits once, the late spec's once.
        assert_eq!(edits.len(), 2002);
        assert_eq!(
            edits[0].env,
            ["FROM=early"],
            "shared edits before its first device"
        );
        let device_paths: Vec<String> = edits
            .iter()
            .flat_map(|e| &e.device_nodes)
            .map(|n| n.path.display().to_string())
            .collect();
        assert_eq!(device_paths.len(), 2000);
        assert_eq!(device_paths[0], "/dev/nvidia1999");
        let late_at = edits.iter().position(|e| e.env == ["FROM=late"]).unwrap();
        assert_eq!(
            edits[late_at + 1].device_nodes[0].path,
            PathBuf::from("/dev/nvidia1")
        );
        assert!(
            edits.iter().all(|e| e.env != ["SECOND=1"]),
            "first entry of a name"
        );
        assert!(matches!(
            registry.resolve(&["nvidia.com/gpu=2000".into()]),
            Err(CdiError::UnknownDevice { .. })
        ));
        assert!(registry.resolve(&["no-equals-sign".into()]).is_err());
    }
}
