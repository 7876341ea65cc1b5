//! The containers runtimes know on this host, from their state directories.
//!
//! runc (and so Docker, containerd and CRI-O, which run it) keeps one `<root>/<id>/state.json`
//! per container: its id, its init process (pid and start time) and its bundle. containerd
//! gives runc one root per namespace (`/run/containerd/runc/<namespace>/<id>`), so a root may
//! hold namespaces one level down. The bundle's `config.json` carries the annotations that
//! Kubernetes' runtimes write, which name the container and its pod.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A runtime state directory and the engine whose containers it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRoot {
    pub runtime: String,
    pub dir: PathBuf,
}

impl StateRoot {
    pub fn new(runtime: &str, dir: impl Into<PathBuf>) -> StateRoot {
        StateRoot {
            runtime: runtime.to_string(),
            dir: dir.into(),
        }
    }
}

/// runc's own default root, Docker's (20.10 and later, through containerd) and containerd's.
pub fn default_roots() -> Vec<StateRoot> {
    vec![
        StateRoot::new("runc", "/run/runc"),
        StateRoot::new("docker", "/run/docker/runtime-runc/moby"),
        StateRoot::new("containerd", "/run/containerd/runc"),
    ]
}

/// A container as its runtime's state describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub id: String,
    pub runtime: String,
    /// containerd's namespace (`moby`, `k8s.io`, `default`), when the root has namespaces.
    pub namespace: Option<String>,
    pub init_pid: u32,
    /// The init process's start time in clock ticks, to tell it from a later process that
    /// reused its pid.
    pub init_start: Option<u64>,
    /// From the bundle's annotations (Kubernetes: `namespace/pod/container`).
    pub name: Option<String>,
}

/// State files larger than this are not a runtime's and are skipped (a real one is ~20 KB).
const MAX_STATE_BYTES: u64 = 16 << 20;

/// Every container found under `roots`; unreadable roots and malformed entries are skipped
/// (a state directory is removed the moment its container is deleted).
pub fn read_roots(roots: &[StateRoot]) -> Vec<StateEntry> {
    let mut found = Vec::new();
    for root in roots {
        for (namespace, dir) in container_dirs(&root.dir) {
            let Some(state) = read_small(&dir.join("state.json")).and_then(|t| parse_state(&t))
            else {
                continue;
            };
            let name = state
                .bundle()
                .and_then(|b| read_small(&b.join("config.json")))
                .and_then(|t| name_from_spec(&t));
            found.push(StateEntry {
                id: state.id,
                runtime: root.runtime.clone(),
                namespace: namespace.clone(),
                init_pid: state.init_process_pid,
                init_start: state.init_process_start,
                name,
            });
        }
    }
    found
}

/// `<root>/<id>` directories holding a `state.json`, and `<root>/<namespace>/<id>` ones.
fn container_dirs(root: &Path) -> Vec<(Option<String>, PathBuf)> {
    let mut dirs = Vec::new();
    for (entry, name) in subdirectories(root) {
        if entry.join("state.json").is_file() {
            dirs.push((None, entry));
            continue;
        }
        for (inner, _) in subdirectories(&entry) {
            if inner.join("state.json").is_file() {
                dirs.push((Some(name.clone()), inner));
            }
        }
    }
    dirs
}

fn subdirectories(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<(PathBuf, String)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.path(), e.file_name().into_string().ok()?)))
        .collect();
    dirs.sort();
    dirs
}

fn read_small(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut data = Vec::new();
    file.take(MAX_STATE_BYTES + 1).read_to_end(&mut data).ok()?;
    (data.len() as u64 <= MAX_STATE_BYTES).then_some(data)
}

/// The fields of runc's `state.json` this module reads.
#[derive(Debug, Deserialize)]
pub struct RuncState {
    pub id: String,
    pub init_process_pid: u32,
    #[serde(default)]
    pub init_process_start: Option<u64>,
    #[serde(default)]
    config: RuncConfig,
}

#[derive(Debug, Default, Deserialize)]
struct RuncConfig {
    #[serde(default)]
    labels: Vec<String>,
}

impl RuncState {
    /// runc records the bundle as the label `bundle=<dir>`.
    pub fn bundle(&self) -> Option<PathBuf> {
        self.config
            .labels
            .iter()
            .find_map(|l| l.strip_prefix("bundle="))
            .map(PathBuf::from)
    }
}

pub fn parse_state(text: &[u8]) -> Option<RuncState> {
    serde_json::from_slice(text).ok()
}

#[derive(Deserialize)]
struct SpecAnnotations {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The annotations containerd's CRI plugin and CRI-O write for Kubernetes containers.
const CONTAINER_NAME_KEYS: [(&str, &str, &str); 2] = [
    (
        "io.kubernetes.cri.sandbox-namespace",
        "io.kubernetes.cri.sandbox-name",
        "io.kubernetes.cri.container-name",
    ),
    (
        "io.kubernetes.pod.namespace",
        "io.kubernetes.pod.name",
        "io.kubernetes.container.name",
    ),
];

/// A Kubernetes container's `namespace/pod/container` (or just the container's name when the
/// pod's is missing) from its OCI spec's annotations; `None` when it has none.
pub fn name_from_spec(spec: &[u8]) -> Option<String> {
    let spec: SpecAnnotations = serde_json::from_slice(spec).ok()?;
    CONTAINER_NAME_KEYS
        .iter()
        .find_map(|(namespace_key, pod_key, container_key)| {
            let container = spec.annotations.get(*container_key)?;
            match (
                spec.annotations.get(*namespace_key),
                spec.annotations.get(*pod_key),
            ) {
                (Some(namespace), Some(pod)) => Some(format!("{namespace}/{pod}/{container}")),
                _ => Some(container.clone()),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_json(id: &str, pid: u32, bundle: &Path) -> String {
        format!(
            r#"{{"id":"{id}","init_process_pid":{pid},"init_process_start":777,"created":"2026-01-01T00:00:00Z","config":{{"rootfs":"/x","labels":["bundle={}","other=1"],"cgroups":{{"path":"/{id}"}}}},"cgroup_paths":{{"devices":"/sys/fs/cgroup/devices/{id}"}}}}"#,
            bundle.display()
        )
    }

    #[test]
    fn the_default_roots_are_the_runtimes_own() {
        let roots: Vec<(String, String)> = default_roots()
            .into_iter()
            .map(|r| (r.runtime, r.dir.display().to_string()))
            .collect();
        assert_eq!(
            roots,
            [
                ("runc".into(), "/run/runc".into()),
                ("docker".into(), "/run/docker/runtime-runc/moby".into()),
                ("containerd".into(), "/run/containerd/runc".into()),
            ]
        );
    }

    #[test]
    fn state_json_gives_id_init_process_and_bundle() {
        let state = parse_state(state_json("c1", 42, Path::new("/b/c1")).as_bytes()).unwrap();
        assert_eq!(state.id, "c1");
        assert_eq!(state.init_process_pid, 42);
        assert_eq!(state.init_process_start, Some(777));
        assert_eq!(state.bundle(), Some(PathBuf::from("/b/c1")));
        assert!(parse_state(br#"{"id":"c1"}"#).is_none(), "no init pid");
        assert!(parse_state(b"not json").is_none());
        let bare = parse_state(br#"{"id":"c2","init_process_pid":7}"#).unwrap();
        assert_eq!((bare.bundle(), bare.init_process_start), (None, None));
    }

    #[test]
    fn kubernetes_annotations_name_the_container() {
        let containerd = br#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"trainer","io.kubernetes.cri.sandbox-name":"job-7","io.kubernetes.cri.sandbox-namespace":"ml"}}"#;
        assert_eq!(
            name_from_spec(containerd).as_deref(),
            Some("ml/job-7/trainer")
        );
        let crio = br#"{"annotations":{"io.kubernetes.container.name":"web","io.kubernetes.pod.name":"shop","io.kubernetes.pod.namespace":"prod"}}"#;
        assert_eq!(name_from_spec(crio).as_deref(), Some("prod/shop/web"));
        let container_only = br#"{"annotations":{"io.kubernetes.cri.container-name":"solo"}}"#;
        assert_eq!(name_from_spec(container_only).as_deref(), Some("solo"));
        // A pod sandbox (pause container) and a plain spec have no container name.
        let sandbox = br#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-name":"job-7"}}"#;
        assert_eq!(name_from_spec(sandbox), None);
        assert_eq!(name_from_spec(br#"{"ociVersion":"1.0.2"}"#), None);
        assert_eq!(name_from_spec(b"[]"), None);
    }

    #[test]
    fn roots_with_and_without_namespaces_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        std::fs::create_dir(&bundle).unwrap();
        std::fs::write(
            bundle.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.container-name":"trainer"}}"#,
        )
        .unwrap();
        let write = |rel: &str, id: &str, pid: u32| {
            let d = dir.path().join(rel);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("state.json"), state_json(id, pid, &bundle)).unwrap();
        };
        write("runc/plain", "plain", 10);
        write("containerd/k8s.io/abc", "abc", 11);
        write("containerd/default/def", "def", 12);
        // Leftovers a runtime may have: an empty dir, a broken file, a stray file.
        std::fs::create_dir_all(dir.path().join("runc/empty")).unwrap();
        std::fs::create_dir_all(dir.path().join("runc/broken")).unwrap();
        std::fs::write(dir.path().join("runc/broken/state.json"), "{").unwrap();
        std::fs::write(dir.path().join("runc/stray"), "x").unwrap();
        let roots = [
            StateRoot::new("runc", dir.path().join("runc")),
            StateRoot::new("containerd", dir.path().join("containerd")),
            StateRoot::new("docker", dir.path().join("missing")),
        ];
        let found = read_roots(&roots);
        let summary: Vec<(String, String, Option<String>, u32)> = found
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.runtime.clone(),
                    e.namespace.clone(),
                    e.init_pid,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("plain".into(), "runc".into(), None, 10),
                (
                    "def".into(),
                    "containerd".into(),
                    Some("default".into()),
                    12
                ),
                ("abc".into(), "containerd".into(), Some("k8s.io".into()), 11),
            ]
        );
        assert!(found.iter().all(|e| e.name.as_deref() == Some("trainer")));
        assert!(found.iter().all(|e| e.init_start == Some(777)));
    }
}
