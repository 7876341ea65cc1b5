//! containerd's `config.toml`, edited with `toml_edit` so comments and layout survive. The
//! runtime handler is written in the shape of the file's own config version, because
//! containerd refuses a file whose tables do not match its `version` (a `version = 2` put into
//! a version-less file makes containerd 1.6 fail with `invalid plugin key URI "cri"`):
//!
//! | version | where the CRI plugin keeps its runtimes |
//! | --- | --- |
//! | 1 (no `version` key) | `[plugins.cri.containerd.runtimes.<name>]` |
//! | 2 | `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>]` |
//! | 3 (containerd 2.x) | `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.<name>]` |
//!
//! The entry has `runtime_type = "io.containerd.runc.v2"`, `options.BinaryName`, and
//! `container_annotations` for the CDI annotation prefixes (the CRI plugin passes a
//! container's annotations to its OCI spec only when they match one of those patterns).
//!
//! A `runtimes` table in the file replaces containerd's built-in one, which holds `runc`, the
//! default runtime. So when the file names no runtime yet, `runc` is written out as containerd
//! defines it; otherwise the CRI plugin fails to load (`no corresponding runtime configured in
//! containerd.runtimes for containerd default_runtime_name = "runc"`) and the kubelet finds no
//! runtime at all.

mod inspect;
#[cfg(test)]
mod tests;

use std::path::Path;

use toml_edit::{value, Array, DocumentMut};

use super::{sub_table, ConfigureError, Registration};
use crate::config::CdiConfig;
pub use inspect::{read_cri_config, CriConfig, CriHandler};

/// The runc shim whose `options.BinaryName` names the low-level runtime it runs.
pub const RUNC_V2: &str = "io.containerd.runc.v2";

/// The runtime containerd defines when the config names none, and its default.
const DEFAULT_RUNTIME: &str = "runc";
/// The comment over the `runc` entry `render` writes out (and `render_removal` takes back).
const WRITTEN_OUT_DEFAULT: &str =
    "# containerd's own default runtime, written out by gpuhook configure: a runtimes table replaces containerd's built-in one";

/// A containerd config format version, and so the shape of its CRI plugin's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVersion {
    V1,
    V2,
    V3,
}

impl ConfigVersion {
    /// The file's version: its `version` key; none means 1, except in a file with no setting
    /// at all (new or empty), which gets `version = 2` written (what containerd 1.6 and 1.7
    /// read and 2.x migrates).
    fn of(doc: &mut DocumentMut, path: &Path) -> Result<ConfigVersion, ConfigureError> {
        let unsupported = |message: String| ConfigureError::Unsupported {
            path: path.to_path_buf(),
            message,
        };
        match doc.get("version") {
            None if doc.as_table().is_empty() => {
                doc.insert("version", value(2));
                Ok(ConfigVersion::V2)
            }
            None => Ok(ConfigVersion::V1),
            Some(item) => match item.as_integer() {
                Some(1) => Ok(ConfigVersion::V1),
                Some(2) => Ok(ConfigVersion::V2),
                Some(3) => Ok(ConfigVersion::V3),
                _ => Err(unsupported(format!(
                    "config version {} is not supported (1, 2 or 3)",
                    item.to_string().trim()
                ))),
            },
        }
    }

    /// The `version` number.
    pub fn number(self) -> u8 {
        match self {
            ConfigVersion::V1 => 1,
            ConfigVersion::V2 => 2,
            ConfigVersion::V3 => 3,
        }
    }

    /// The name of the plugin that holds the CRI runtimes in this version.
    pub fn cri_plugin(self) -> &'static str {
        match self {
            ConfigVersion::V1 => "cri",
            ConfigVersion::V2 => "io.containerd.grpc.v1.cri",
            // The CRI plugin's runtime settings moved in containerd 2.0 (config version 3).
            ConfigVersion::V3 => "io.containerd.cri.v1.runtime",
        }
    }

    /// The tables above `runtimes` and `default_runtime_name`.
    fn containerd_tables(self) -> [&'static str; 3] {
        ["plugins", self.cri_plugin(), "containerd"]
    }
}

/// `container_annotations` patterns for gpuhook's default CDI annotation prefixes
/// (`cdi.k8s.io/` gives `cdi.k8s.io/*`).
fn cdi_annotation_patterns() -> Vec<String> {
    CdiConfig::default()
        .annotation_prefixes
        .iter()
        .map(|prefix| format!("{prefix}*"))
        .collect()
}

pub fn render(
    current: &str,
    path: &Path,
    registration: &Registration,
) -> Result<String, ConfigureError> {
    let mut doc = super::parse_toml(current, path)?;
    let version = ConfigVersion::of(&mut doc, path)?;
    let unsupported = |what: &str| super::not_a_table(path, what);
    let containerd = version
        .containerd_tables()
        .iter()
        .try_fold(doc.as_table_mut(), |table, key| {
            sub_table(table, key).ok_or_else(|| unsupported(key))
        })?;
    if registration.set_as_default {
        containerd.insert("default_runtime_name", value(&registration.name));
    }
    let runtimes = sub_table(containerd, "runtimes").ok_or_else(|| unsupported("runtimes"))?;
    if runtimes.is_empty() {
        let runc = sub_table(runtimes, DEFAULT_RUNTIME).ok_or_else(|| unsupported("runc"))?;
        runc.set_implicit(false);
        runc.decor_mut()
            .set_prefix(format!("\n{WRITTEN_OUT_DEFAULT}\n"));
        runc.insert("runtime_type", value(RUNC_V2));
    }
    let entry =
        sub_table(runtimes, &registration.name).ok_or_else(|| unsupported(&registration.name))?;
    entry.set_implicit(false);
    entry.insert("runtime_type", value(RUNC_V2));
    add_container_annotations(entry, &cdi_annotation_patterns())
        .map_err(|()| unsupported("container_annotations"))?;
    let options = sub_table(entry, "options").ok_or_else(|| unsupported("options"))?;
    options.set_implicit(false);
    options.insert(
        "BinaryName",
        value(registration.runtime_path.to_string_lossy().as_ref()),
    );
    Ok(doc.to_string())
}

/// Adds the patterns missing from the entry's `container_annotations`, keeping the ones the
/// admin put there; `Err` when the key holds something else than an array.
fn add_container_annotations(entry: &mut toml_edit::Table, patterns: &[String]) -> Result<(), ()> {
    let array = entry
        .entry("container_annotations")
        .or_insert_with(|| value(Array::new()))
        .as_array_mut()
        .ok_or(())?;
    for pattern in patterns {
        if !array.iter().any(|v| v.as_str() == Some(pattern.as_str())) {
            array.push(pattern.as_str());
        }
    }
    Ok(())
}

/// Takes the runtime `name` out (whichever config version's shape holds it); `None` when only
/// `version` is left.
pub fn render_removal(
    current: &str,
    path: &Path,
    name: &str,
) -> Result<Option<String>, ConfigureError> {
    let mut text = without_written_out_default(current, path, name)?;
    for version in [ConfigVersion::V1, ConfigVersion::V2, ConfigVersion::V3] {
        match super::remove_toml_runtime(
            &text,
            path,
            &version.containerd_tables(),
            "default_runtime_name",
            name,
            &["version"],
        )? {
            Some(rest) => text = rest,
            None => return Ok(None),
        }
    }
    Ok(Some(text))
}

/// Takes out the `runc` entry that `render` wrote out next to `name` (its comment says so)
/// when it is all that would be left, so containerd's built-in runtimes apply again as before
/// `render`.
fn without_written_out_default(
    current: &str,
    path: &Path,
    name: &str,
) -> Result<String, ConfigureError> {
    let mut doc = super::parse_toml(current, path)?;
    for version in [ConfigVersion::V1, ConfigVersion::V2, ConfigVersion::V3] {
        let runtimes = version
            .containerd_tables()
            .iter()
            .chain(["runtimes"].iter())
            .try_fold(doc.as_table_mut(), |table, key| {
                table.get_mut(key).and_then(toml_edit::Item::as_table_mut)
            });
        let Some(runtimes) = runtimes else { continue };
        let others: Vec<&str> = runtimes
            .iter()
            .map(|(key, _)| key)
            .filter(|key| *key != name)
            .collect();
        let written_by_render = runtimes
            .get(DEFAULT_RUNTIME)
            .and_then(toml_edit::Item::as_table)
            .and_then(|runc| runc.decor().prefix()?.as_str())
            .is_some_and(|prefix| prefix.contains(WRITTEN_OUT_DEFAULT));
        if runtimes.contains_key(name) && others == [DEFAULT_RUNTIME] && written_by_render {
            runtimes.remove(DEFAULT_RUNTIME);
        }
    }
    Ok(doc.to_string())
}
