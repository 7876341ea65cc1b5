//! Reading a containerd config the way its CRI plugin will: which runtime handlers it offers
//! the kubelet (a RuntimeClass names one by its `handler`), what each runs, and whether the
//! CRI plugin is on at all. `gpuhook doctor` reports from this.

use std::path::Path;

use toml_edit::{Item, TableLike};

use super::ConfigVersion;
use crate::configure::ConfigureError;

/// What a containerd config offers the kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriConfig {
    pub version: ConfigVersion,
    /// The CRI plugin is listed in `disabled_plugins` (Docker's own containerd config does
    /// that): no kubelet can use this containerd.
    pub cri_disabled: bool,
    /// `default_runtime_name`, when set.
    pub default_runtime: Option<String>,
    /// The runtime handlers, in file order.
    pub handlers: Vec<CriHandler>,
    /// CRI plugin tables of another format version (`plugins."io.containerd.grpc.v1.cri"` in
    /// a version-less file): containerd does not read them.
    pub ignored_cri_tables: Vec<&'static str>,
}

/// One `runtimes.<name>` entry of the CRI plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriHandler {
    /// The name a RuntimeClass's `handler` (or a CRI `runtime_handler`) gives.
    pub name: String,
    pub runtime_type: Option<String>,
    /// `options.BinaryName`: the low-level runtime the runc shim runs.
    pub binary_name: Option<String>,
    /// Patterns of the container annotations passed to the OCI spec.
    pub container_annotations: Vec<String>,
}

impl CriHandler {
    /// Whether annotations whose key starts with `prefix` reach the OCI spec (containerd
    /// passes an annotation on when a pattern equals its key, or ends in `*` and the key
    /// starts with what comes before it).
    pub fn passes_annotations(&self, prefix: &str) -> bool {
        self.container_annotations.iter().any(|pattern| {
            pattern
                .strip_suffix('*')
                .is_some_and(|start| prefix.starts_with(start))
        })
    }
}

/// Parses `text` (the file at `path`) as containerd's CRI plugin reads it.
pub fn read_cri_config(text: &str, path: &Path) -> Result<CriConfig, ConfigureError> {
    let mut doc = super::super::parse_toml(text, path)?;
    let version = ConfigVersion::of(&mut doc, path)?;
    let cri_names = [version.cri_plugin(), "cri", "io.containerd.grpc.v1.cri"];
    let cri_disabled = strings(doc.get("disabled_plugins")).any(|p| cri_names.contains(&p));
    let root: &dyn TableLike = doc.as_table();
    let containerd = version
        .containerd_tables()
        .iter()
        .try_fold(root, |table, key| table.get(key)?.as_table_like());
    let string = |table: &dyn TableLike, key: &str| {
        table.get(key).and_then(Item::as_str).map(str::to_string)
    };
    let handlers = containerd
        .and_then(|c| c.get("runtimes"))
        .and_then(Item::as_table_like)
        .into_iter()
        .flat_map(|runtimes| runtimes.iter())
        .filter_map(|(name, entry)| {
            let entry = entry.as_table_like()?;
            Some(CriHandler {
                name: name.to_string(),
                runtime_type: string(entry, "runtime_type"),
                binary_name: entry
                    .get("options")
                    .and_then(Item::as_table_like)
                    .and_then(|o| string(o, "BinaryName")),
                container_annotations: strings(entry.get("container_annotations"))
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect();
    let plugins = root.get("plugins").and_then(Item::as_table_like);
    let ignored_cri_tables = [ConfigVersion::V1, ConfigVersion::V2, ConfigVersion::V3]
        .into_iter()
        .filter(|other| *other != version)
        .map(ConfigVersion::cri_plugin)
        .filter(|name| plugins.is_some_and(|p| p.contains_key(name)))
        .collect();
    Ok(CriConfig {
        version,
        ignored_cri_tables,
        cri_disabled,
        default_runtime: containerd.and_then(|c| string(c, "default_runtime_name")),
        handlers,
    })
}

/// The strings of an array item (none when it is absent or not an array).
fn strings(item: Option<&Item>) -> impl Iterator<Item = &str> {
    item.and_then(Item::as_array)
        .into_iter()
        .flat_map(|array| array.iter())
        .filter_map(|v| v.as_str())
}
