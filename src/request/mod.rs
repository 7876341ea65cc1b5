//! The request stage: what a container asks for, read from its OCI spec. Pure: values in,
//! values or typed errors out.

mod capabilities;
pub mod cdi;
mod devices;
pub(crate) mod first_seen;
pub mod imex;
pub mod memory;
mod mig;
mod requirements;

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::{Capability, Spec};

pub use capabilities::{parse_capabilities, CapabilitySet, DriverCapabilities, DriverCapability};
pub use devices::{parse_visible_devices, DeviceSelector, VisibleDevices};
pub use mig::{MigAccess, MIG_CONFIG_ENV, MIG_MONITOR_ENV};
pub use requirements::{
    compare_versions, parse_version, Condition, HostFacts, Operator, Requirement, RequirementKey,
};

use crate::config::Config;
use crate::limits::{self, LimitError, RequestLimits};

pub const VISIBLE_DEVICES_ENV: &str = "NVIDIA_VISIBLE_DEVICES";
pub const DRIVER_CAPABILITIES_ENV: &str = "NVIDIA_DRIVER_CAPABILITIES";
pub const DISABLE_REQUIRE_ENV: &str = "NVIDIA_DISABLE_REQUIRE";
pub const REQUIRE_PREFIX: &str = "NVIDIA_REQUIRE_";
pub const CUDA_VERSION_ENV: &str = "CUDA_VERSION";
pub const REQUIRE_CUDA_ENV: &str = "NVIDIA_REQUIRE_CUDA";
/// Where the container's CUDA looks for the MPS control daemon's pipes.
pub const MPS_PIPE_ENV: &str = "CUDA_MPS_PIPE_DIRECTORY";
/// Destination prefix of the volume-mount request channel (Kubernetes device plugin).
pub const VOLUME_MOUNT_DIR: &str = "/var/run/nvidia-container-devices";

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("NVIDIA_VISIBLE_DEVICES={}: {} is not a GPU index, GPU UUID (GPU-...), MIG device (GPU:MIG or MIG-...), `all`, `none` or `void`", limits::quoted(.value), limits::quoted(.item))]
    Devices { value: String, item: String },
    #[error("NVIDIA_DRIVER_CAPABILITIES={}: {message}", limits::quoted(.value))]
    Capabilities { value: String, message: String },
    #[error("{name}={}: {message}", limits::quoted(.text))]
    Requirement {
        name: String,
        text: String,
        message: String,
    },
    #[error("NVIDIA_VISIBLE_DEVICES={VOLUME_MOUNT_DIR}: the Kubernetes device plugin's volume-mounts strategy names the GPUs by /dev/null mounts under that directory, {why}")]
    VolumeMountStrategy { why: &'static str },
    #[error("NVIDIA_IMEX_CHANNELS={}: {} is not a channel number, `all` or `none`", limits::quoted(.value), limits::quoted(.item))]
    Imex { value: String, item: String },
    #[error("{name}=all: only a privileged container (CAP_SYS_ADMIN in its bounding set) may have the host-wide MIG capabilities")]
    MigUnprivileged { name: String },
    #[error("{name}={}: only `all` is supported (the MIG capabilities are host-wide)", limits::quoted(.value))]
    MigAccess { name: String, value: String },
    #[error(transparent)]
    Limit(#[from] LimitError),
}

/// What the operator allows containers to ask for (from the config).
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    pub supported_capabilities: Vec<DriverCapability>,
    pub accept_env_when_unprivileged: bool,
    pub accept_volume_mounts: bool,
    pub disable_require: bool,
    /// Bounds on env values and list lengths ([`RequestLimits::DEFAULT`] from a config).
    pub limits: RequestLimits,
}

impl From<&Config> for RequestPolicy {
    fn from(config: &Config) -> Self {
        RequestPolicy {
            supported_capabilities: config.supported_driver_capabilities.clone(),
            accept_env_when_unprivileged: config
                .accept_nvidia_visible_devices_envvar_when_unprivileged,
            accept_volume_mounts: config.accept_nvidia_visible_devices_as_volume_mounts,
            disable_require: config.disable_require,
            limits: RequestLimits::DEFAULT,
        }
    }
}

/// A container's complete GPU request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRequest {
    pub devices: VisibleDevices,
    pub capabilities: DriverCapabilities,
    /// Empty when checks are disabled (config or `NVIDIA_DISABLE_REQUIRE`).
    pub requirements: Vec<Requirement>,
    /// IMEX channels asked for (`NVIDIA_IMEX_CHANNELS`, `.../imex/<n>` mounts).
    pub imex_channels: imex::ImexChannels,
    /// The container's own `CUDA_MPS_PIPE_DIRECTORY` (absolute), where it looks for the MPS
    /// pipes; the host's pipe directory is mounted there.
    pub mps_pipe_directory: Option<std::path::PathBuf>,
    /// `NVIDIA_MIG_CONFIG_DEVICES`/`NVIDIA_MIG_MONITOR_DEVICES` (privileged containers only).
    pub mig_access: MigAccess,
    /// Character devices (major, minor) the spec already declares in `linux.devices`: when
    /// they include GPUs, the container gets no other GPU (see `plan::select::within_declared`).
    pub declared_devices: Vec<(u32, u32)>,
}

impl ContainerRequest {
    pub fn needs(&self, key: RequirementKey) -> bool {
        self.requirements.iter().any(|r| r.uses(key))
    }

    /// True when the plan needs the MIG inventory (and so NVML).
    pub fn needs_mig(&self) -> bool {
        self.devices.has_mig() || self.mig_access.any()
    }
}

/// The parts of a spec the request depends on, so the rules can be tested without a spec.
#[derive(Debug, Clone, Default)]
pub struct ContainerFacts {
    /// `process.env`, later entries winning.
    pub env: BTreeMap<String, String>,
    /// Device names from `/dev/null` mounts under [`VOLUME_MOUNT_DIR`].
    pub volume_mount_devices: Vec<String>,
    /// Holds `CAP_SYS_ADMIN` in its bounding set.
    pub privileged: bool,
    /// `annotations` (where CDI device requests can come from).
    pub annotations: BTreeMap<String, String>,
    /// IMEX channel names from `/dev/null` mounts at `<VOLUME_MOUNT_DIR>/imex/<n>`.
    pub imex_volume_mount_channels: Vec<String>,
    /// Qualified CDI names (`vendor.com/class=name`) from `/dev/null` mounts at
    /// `<VOLUME_MOUNT_DIR>/cdi/vendor.com/class/name`.
    pub cdi_volume_mount_devices: Vec<String>,
    /// Character devices (major, minor) declared in `linux.devices`.
    pub declared_devices: Vec<(u32, u32)>,
    /// Destinations of the spec's `tmpfs` mounts (fresh filesystems the runtime makes).
    pub tmpfs_mounts: Vec<std::path::PathBuf>,
}

impl ContainerFacts {
    pub fn from_spec(spec: &Spec) -> ContainerFacts {
        let process = spec.process().as_ref();
        let env_list = process.and_then(|p| p.env().as_ref());
        let env = env_list
            .into_iter()
            .flatten()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let privileged = process
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().as_ref())
            .is_some_and(|b| b.contains(&Capability::SysAdmin));
        let null_mounts = || {
            spec.mounts()
                .iter()
                .flatten()
                .filter(|m| m.source().as_deref() == Some(Path::new("/dev/null")))
        };
        let volume_mount_devices = null_mounts()
            .filter_map(|m| volume_mount_device(m.destination()))
            .collect();
        let imex_volume_mount_channels = null_mounts()
            .filter_map(|m| imex::volume_mount_channel(m.destination()))
            .collect();
        let cdi_volume_mount_devices = null_mounts()
            .filter_map(|m| cdi::volume_mount_cdi_device(m.destination()))
            .collect();
        let annotations = spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ContainerFacts {
            env,
            volume_mount_devices,
            privileged,
            annotations,
            imex_volume_mount_channels,
            cdi_volume_mount_devices,
            declared_devices: declared_char_devices(spec),
            tmpfs_mounts: fresh_tmpfs_mounts(spec),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// [`get`](Self::get) for a value the request parses: one over `limits.env_value_bytes`
    /// is an error naming the variable.
    pub fn bounded(&self, key: &str, limits: &RequestLimits) -> Result<Option<&str>, LimitError> {
        self.get(key).map(|v| limits.env_value(key, v)).transpose()
    }
}

/// `linux.devices` entries of type `c` (character devices) with numbers that fit.
fn declared_char_devices(spec: &Spec) -> Vec<(u32, u32)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .filter(|d| d.typ() == oci_spec::runtime::LinuxDeviceType::C)
        .filter_map(|d| {
            Some((
                u32::try_from(d.major()).ok()?,
                u32::try_from(d.minor()).ok()?,
            ))
        })
        .collect()
}

/// Spec mounts the runtime makes as fresh tmpfs (type `tmpfs`, not bind mounts).
fn fresh_tmpfs_mounts(spec: &Spec) -> Vec<std::path::PathBuf> {
    spec.mounts()
        .iter()
        .flatten()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .filter(|m| {
            !m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
        })
        .map(|m| m.destination().clone())
        .collect()
}

/// `/var/run/nvidia-container-devices/<name>` gives `<name>` for plain device names; the
/// `cdi/` and `imex/` sub-channels are not legacy-mode requests.
fn volume_mount_device(destination: &Path) -> Option<String> {
    let name = destination.strip_prefix(VOLUME_MOUNT_DIR).ok()?.to_str()?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

/// Reads the container's request. `Ok(None)`: the container asks for nothing and must be left
/// untouched. Every value it parses is first held to `policy.limits`.
pub fn container_request(
    facts: &ContainerFacts,
    policy: &RequestPolicy,
) -> Result<Option<ContainerRequest>, RequestError> {
    let limits = &policy.limits;
    let legacy_image = is_legacy_image(facts);
    let Some(devices) = requested_devices(facts, policy, legacy_image)? else {
        return Ok(None);
    };
    let capabilities_value = facts.bounded(DRIVER_CAPABILITIES_ENV, limits)?;
    if let Some(value) = capabilities_value {
        limits.list(DRIVER_CAPABILITIES_ENV, value, limits.capability_entries)?;
    }
    let capabilities = match capabilities_value {
        // The incumbent gives a legacy image that names no capability all it supports: such
        // images predate the variable and expected the whole driver.
        None if legacy_image => policy.supported_capabilities.iter().copied().collect(),
        value => parse_capabilities(value, &policy.supported_capabilities)?,
    };
    let disabled = is_true(facts.bounded(DISABLE_REQUIRE_ENV, limits)?);
    let requirements = if policy.disable_require || disabled {
        Vec::new()
    } else {
        requirements(facts, legacy_image, limits)?
    };
    let imex_channels = imex_channels(facts, policy)?;
    let mps_pipe_directory = facts
        .bounded(MPS_PIPE_ENV, limits)?
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute());
    let mig_access = mig::parse_mig_access(facts, limits)?;
    Ok(Some(ContainerRequest {
        devices,
        capabilities,
        requirements,
        imex_channels,
        mps_pipe_directory,
        mig_access,
        declared_devices: facts.declared_devices.clone(),
    }))
}

/// A CUDA image from before `NVIDIA_REQUIRE_CUDA` existed: `CUDA_VERSION` set and not empty,
/// `NVIDIA_REQUIRE_CUDA` unset or empty (the incumbent's test: both by length).
fn is_legacy_image(facts: &ContainerFacts) -> bool {
    let non_empty = |key| facts.get(key).is_some_and(|v| !v.is_empty());
    non_empty(CUDA_VERSION_ENV) && !non_empty(REQUIRE_CUDA_ENV)
}

fn requested_devices(
    facts: &ContainerFacts,
    policy: &RequestPolicy,
    legacy_image: bool,
) -> Result<Option<VisibleDevices>, RequestError> {
    let limits = &policy.limits;
    if policy.accept_volume_mounts && !facts.volume_mount_devices.is_empty() {
        let mounts = facts.volume_mount_devices.len();
        limits::check(VOLUME_MOUNTS, mounts, limits.device_entries, "mounts")?;
        return devices::from_volume_mount_names(&facts.volume_mount_devices);
    }
    if !facts.privileged && !policy.accept_env_when_unprivileged {
        return Ok(None);
    }
    match facts.bounded(VISIBLE_DEVICES_ENV, limits)? {
        // Not a device list: say what the setting is instead of "not a GPU index".
        Some(value) if Path::new(value.trim()) == Path::new(VOLUME_MOUNT_DIR) => {
            Err(RequestError::VolumeMountStrategy {
                why: if policy.accept_volume_mounts {
                    "and none is mounted there"
                } else {
                    "which gpuhook reads only with accept-nvidia-visible-devices-as-volume-mounts = true in its config"
                },
            })
        }
        Some(value) => {
            limits.list(VISIBLE_DEVICES_ENV, value, limits.device_entries)?;
            parse_visible_devices(value)
        }
        None if legacy_image => Ok(Some(VisibleDevices::All)),
        None => Ok(None),
    }
}

/// What the limits call the volume-mount request channel.
const VOLUME_MOUNTS: &str = "the list of volume mounts at /var/run/nvidia-container-devices/";

fn imex_channels(
    facts: &ContainerFacts,
    policy: &RequestPolicy,
) -> Result<imex::ImexChannels, RequestError> {
    let limits = &policy.limits;
    let mounted = &facts.imex_volume_mount_channels;
    if policy.accept_volume_mounts && !mounted.is_empty() {
        limits::check(VOLUME_MOUNTS, mounted.len(), limits.imex_entries, "mounts")?;
        return imex::parse(&mounted.join(","));
    }
    if !facts.privileged && !policy.accept_env_when_unprivileged {
        return Ok(imex::ImexChannels::None);
    }
    let value = facts
        .bounded(imex::IMEX_CHANNELS_ENV, limits)?
        .unwrap_or("");
    limits.list(imex::IMEX_CHANNELS_ENV, value, limits.imex_entries)?;
    imex::parse(value)
}

fn requirements(
    facts: &ContainerFacts,
    legacy_image: bool,
    limits: &RequestLimits,
) -> Result<Vec<Requirement>, RequestError> {
    let mut requirements = Vec::new();
    for (name, text) in facts
        .env
        .iter()
        .filter(|(k, _)| k.starts_with(REQUIRE_PREFIX))
    {
        limits.requirement(name, text)?;
        requirements.push(Requirement::parse(name, text)?);
    }
    if legacy_image {
        if let Some(version) = facts.bounded(CUDA_VERSION_ENV, limits)? {
            requirements.push(requirements::legacy_cuda_requirement(version)?);
        }
    }
    Ok(requirements)
}

/// Go's `strconv.ParseBool` truths, plus `yes`/`on`, which users write.
fn is_true(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "t" | "true" | "yes" | "on")
    )
}

#[cfg(test)]
pub(crate) mod tests;
