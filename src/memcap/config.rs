//! The `[memory]` section of gpuhook's config: the operator's policy for GPU memory caps and
//! compute shares (see `config/config.toml` for every key).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::request::memory::parse_size;

/// A size setting: `""` for none, else any form `NVIDIA_GPU_MEMORY_LIMIT` takes for every GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SizeSetting(pub Option<u64>);

impl<'de> Deserialize<'de> for SizeSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(SizeSetting(None));
        }
        parse_size(text)
            .map(|bytes| SizeSetting(Some(bytes)))
            .map_err(|problem| {
                serde::de::Error::custom(format!(
                    "{text:?}: {problem}; use \"\" for none, or a size such as \"8G\" or \"8192M\""
                ))
            })
    }
}

/// How caps are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// NVML's memory limits when the driver has them (r615+) and the host has cgroup v2,
    /// else MPS control daemons.
    Auto,
    /// Always MPS control daemons.
    Mps,
    /// Always NVML's memory limits; a driver without them fails capped containers.
    Nvml,
}

/// Caps a runtime name imposes on every container it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImposedCaps {
    pub limit: SizeSetting,
    /// Percent of each GPU's SMs, 1 to 100 (100: none).
    pub compute_limit: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MemoryConfig {
    /// The cap of a compute container that asks for none.
    pub default_limit: SizeSetting,
    /// The most any container gets; a container's own value can only be lower.
    pub max_limit: SizeSetting,
    /// The compute share (percent) of a container that asks for none; 100 is none.
    pub default_compute_limit: u8,
    /// The largest compute share a container gets; 100 is none.
    pub max_compute_limit: u8,
    /// Read `NVIDIA_GPU_MEMORY_LIMIT` and friends from containers without `CAP_SYS_ADMIN`.
    pub accept_unprivileged: bool,
    /// `auto`, `mps` or `nvml`.
    pub enforcement: Enforcement,
    /// Where the MPS pools' pipe and log directories and the registrations live (a host path).
    pub mps_root: PathBuf,
    /// Caps that the runtime shim, run under one of these names, imposes on every container.
    pub runtimes: BTreeMap<String, ImposedCaps>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            default_limit: SizeSetting(None),
            max_limit: SizeSetting(None),
            default_compute_limit: 100,
            max_compute_limit: 100,
            accept_unprivileged: true,
            enforcement: Enforcement::Auto,
            mps_root: PathBuf::from("/run/gpuhook/mps"),
            runtimes: BTreeMap::new(),
        }
    }
}

impl MemoryConfig {
    /// The first problem with the values, naming the key.
    pub fn problem(&self) -> Option<String> {
        let percents = [
            (
                "memory.default-compute-limit".to_string(),
                Some(self.default_compute_limit),
            ),
            (
                "memory.max-compute-limit".to_string(),
                Some(self.max_compute_limit),
            ),
        ]
        .into_iter()
        .chain(self.runtimes.iter().map(|(name, caps)| {
            (
                format!("memory.runtimes.{name}.compute-limit"),
                caps.compute_limit,
            )
        }));
        for (key, value) in percents {
            if let Some(v) = value.filter(|v| !(1..=100).contains(v)) {
                return Some(format!(
                    "{key} = {v}: must be from 1 to 100 (100: no limit)"
                ));
            }
        }
        if !self.mps_root.is_absolute() {
            return Some(format!(
                "memory.mps-root = {:?}: must be an absolute path",
                self.mps_root
            ));
        }
        None
    }

    /// Whether the operator configured any cap (for `gpuhook doctor`).
    pub fn configures_caps(&self) -> bool {
        self.default_limit.0.is_some()
            || self.max_limit.0.is_some()
            || self.default_compute_limit < 100
            || self.max_compute_limit < 100
            || self
                .runtimes
                .values()
                .any(|c| c.limit.0.is_some() || c.compute_limit.is_some_and(|p| p < 100))
    }
}
