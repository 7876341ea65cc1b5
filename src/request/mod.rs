//! The request stage: what a container asks for, read from its OCI spec. Pure: values in,
//! values or typed errors out.

mod capabilities;
pub mod cdi;
mod devices;
pub mod imex;
pub mod memory;
mod mig;
mod requirements;

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::{Capability, Spec};

pub use capabilities::{parse_capabilities, DriverCapabilities, DriverCapability};
pub use devices::{parse_visible_devices, DeviceSelector, VisibleDevices};
pub use mig::{MigAccess, MIG_CONFIG_ENV, MIG_MONITOR_ENV};
pub use requirements::{
    compare_versions, parse_version, Condition, HostFacts, Requirement, RequirementKey,
};

use crate::config::Config;

pub const VISIBLE_DEVICES_ENV: &str = "NVIDIA_VISIBLE_DEVICES";
pub const DRIVER_CAPABILITIES_ENV: &str = "NVIDIA_DRIVER_CAPABILITIES";
pub const DISABLE_REQUIRE_ENV: &str = "NVIDIA_DISABLE_REQUIRE";
pub const REQUIRE_PREFIX: &str = "NVIDIA_REQUIRE_";
pub const CUDA_VERSION_ENV: &str = "CUDA_VERSION";
/// Where the container's CUDA looks for the MPS control daemon's pipes.
pub const MPS_PIPE_ENV: &str = "CUDA_MPS_PIPE_DIRECTORY";
/// Destination prefix of the volume-mount request channel (Kubernetes device plugin).
pub const VOLUME_MOUNT_DIR: &str = "/var/run/nvidia-container-devices";

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("NVIDIA_VISIBLE_DEVICES={value:?}: {item:?} is not a GPU index, GPU UUID (GPU-...), MIG device (GPU:MIG or MIG-...), `all`, `none` or `void`")]
    Devices { value: String, item: String },
    #[error("NVIDIA_DRIVER_CAPABILITIES={value:?}: {message}")]
    Capabilities { value: String, message: String },
    #[error("{name}={text:?}: {message}")]
    Requirement {
        name: String,
        text: String,
        message: String,
    },
    #[error("NVIDIA_VISIBLE_DEVICES={VOLUME_MOUNT_DIR}: the Kubernetes device plugin's volume-mounts strategy names the GPUs by /dev/null mounts under that directory, {why}")]
    VolumeMountStrategy { why: &'static str },
    #[error("NVIDIA_IMEX_CHANNELS={value:?}: {item:?} is not a channel number, `all` or `none`")]
    Imex { value: String, item: String },
    #[error("{name}=all: only a privileged container (CAP_SYS_ADMIN in its bounding set) may have the host-wide MIG capabilities")]
    MigUnprivileged { name: String },
    #[error("{name}={value:?}: only `all` is supported (the MIG capabilities are host-wide)")]
    MigAccess { name: String, value: String },
}

/// What the operator allows containers to ask for (from the config).
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    pub supported_capabilities: Vec<DriverCapability>,
    pub accept_env_when_unprivileged: bool,
    pub accept_volume_mounts: bool,
    pub disable_require: bool,
}

impl From<&Config> for RequestPolicy {
    fn from(config: &Config) -> Self {
        RequestPolicy {
            supported_capabilities: config.supported_driver_capabilities.clone(),
            accept_env_when_unprivileged: config
                .accept_nvidia_visible_devices_envvar_when_unprivileged,
            accept_volume_mounts: config.accept_nvidia_visible_devices_as_volume_mounts,
            disable_require: config.disable_require,
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
/// untouched.
pub fn container_request(
    facts: &ContainerFacts,
    policy: &RequestPolicy,
) -> Result<Option<ContainerRequest>, RequestError> {
    let legacy_image =
        facts.get(CUDA_VERSION_ENV).is_some() && facts.get("NVIDIA_REQUIRE_CUDA").is_none();
    let Some(devices) = requested_devices(facts, policy, legacy_image)? else {
        return Ok(None);
    };
    let capabilities = parse_capabilities(
        facts.get(DRIVER_CAPABILITIES_ENV),
        &policy.supported_capabilities,
    )?;
    let requirements = if policy.disable_require || is_true(facts.get(DISABLE_REQUIRE_ENV)) {
        Vec::new()
    } else {
        requirements(facts, legacy_image)?
    };
    let imex_channels =
        if policy.accept_volume_mounts && !facts.imex_volume_mount_channels.is_empty() {
            imex::parse(&facts.imex_volume_mount_channels.join(","))?
        } else if facts.privileged || policy.accept_env_when_unprivileged {
            imex::parse(facts.get(imex::IMEX_CHANNELS_ENV).unwrap_or(""))?
        } else {
            imex::ImexChannels::None
        };
    let mps_pipe_directory = facts
        .get(MPS_PIPE_ENV)
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute());
    let mig_access = mig::parse_mig_access(facts)?;
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

fn requested_devices(
    facts: &ContainerFacts,
    policy: &RequestPolicy,
    legacy_image: bool,
) -> Result<Option<VisibleDevices>, RequestError> {
    if policy.accept_volume_mounts && !facts.volume_mount_devices.is_empty() {
        return devices::from_volume_mount_names(&facts.volume_mount_devices);
    }
    if !facts.privileged && !policy.accept_env_when_unprivileged {
        return Ok(None);
    }
    match facts.get(VISIBLE_DEVICES_ENV) {
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
        Some(value) => parse_visible_devices(value),
        None if legacy_image => Ok(Some(VisibleDevices::All)),
        None => Ok(None),
    }
}

fn requirements(
    facts: &ContainerFacts,
    legacy_image: bool,
) -> Result<Vec<Requirement>, RequestError> {
    let mut requirements = facts
        .env
        .iter()
        .filter(|(k, _)| k.starts_with(REQUIRE_PREFIX))
        .map(|(k, v)| Requirement::parse(k, v))
        .collect::<Result<Vec<_>, _>>()?;
    if legacy_image {
        if let Some(version) = facts.get(CUDA_VERSION_ENV) {
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
pub(crate) mod tests {
    use super::*;

    fn policy() -> RequestPolicy {
        RequestPolicy::from(&Config::default())
    }

    fn facts(env: &[&str]) -> ContainerFacts {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": env},
        }))
        .unwrap();
        ContainerFacts::from_spec(&spec)
    }

    fn request(env: &[&str]) -> Option<ContainerRequest> {
        container_request(&facts(env), &policy()).unwrap()
    }

    #[test]
    fn nothing_asked_means_untouched() {
        assert_eq!(request(&[]), None);
        assert_eq!(request(&["PATH=/bin"]), None);
        assert_eq!(request(&["NVIDIA_VISIBLE_DEVICES="]), None);
        assert_eq!(request(&["NVIDIA_VISIBLE_DEVICES=void"]), None);
        assert_eq!(request(&["NVIDIA_DRIVER_CAPABILITIES=all"]), None);
    }

    #[test]
    fn later_env_entries_win() {
        let r = request(&["NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_VISIBLE_DEVICES=1"]).unwrap();
        assert_eq!(
            r.devices,
            VisibleDevices::List(vec![DeviceSelector::Index(1)])
        );
        assert_eq!(
            request(&["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_VISIBLE_DEVICES=void"]),
            None
        );
    }

    #[test]
    fn all_and_none_get_default_capabilities() {
        let r = request(&["NVIDIA_VISIBLE_DEVICES=all"]).unwrap();
        assert_eq!(r.devices, VisibleDevices::All);
        assert_eq!(
            r.capabilities.into_iter().collect::<Vec<_>>(),
            vec![DriverCapability::Compute, DriverCapability::Utility]
        );
        assert_eq!(
            request(&["NVIDIA_VISIBLE_DEVICES=none"]).unwrap().devices,
            VisibleDevices::NoGpu
        );
    }

    #[test]
    fn legacy_image_means_all_gpus_and_a_cuda_requirement() {
        let r = request(&["CUDA_VERSION=12.4.1"]).unwrap();
        assert_eq!(r.devices, VisibleDevices::All);
        assert_eq!(r.requirements.len(), 1);
        assert_eq!(r.requirements[0].groups[0][0].to_string(), "cuda>=12.4");
        // NVIDIA_REQUIRE_CUDA makes an image non-legacy: unset devices then mean nothing.
        assert_eq!(
            request(&["CUDA_VERSION=12.4.1", "NVIDIA_REQUIRE_CUDA=cuda>=12.4"]),
            None
        );
        // A legacy image can still opt out.
        assert_eq!(
            request(&["CUDA_VERSION=12.4.1", "NVIDIA_VISIBLE_DEVICES=void"]),
            None
        );
    }

    #[test]
    fn requirements_are_collected_and_can_be_disabled() {
        let env = [
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.0",
            "NVIDIA_REQUIRE_ARCH=arch>=8.0",
        ];
        let r = request(&env).unwrap();
        assert_eq!(r.requirements.len(), 2);
        assert!(r.needs(RequirementKey::Cuda) && r.needs(RequirementKey::Arch));
        assert!(!r.needs(RequirementKey::Brand));
        let mut disabled = env.to_vec();
        disabled.push("NVIDIA_DISABLE_REQUIRE=true");
        assert!(request(&disabled).unwrap().requirements.is_empty());
        let mut not_disabled = env.to_vec();
        not_disabled.push("NVIDIA_DISABLE_REQUIRE=false");
        assert_eq!(request(&not_disabled).unwrap().requirements.len(), 2);
        let config = Config {
            disable_require: true,
            ..Config::default()
        };
        let r = container_request(&facts(&env), &RequestPolicy::from(&config))
            .unwrap()
            .unwrap();
        assert!(r.requirements.is_empty());
    }

    #[test]
    fn malformed_values_are_errors() {
        let f = facts(&["NVIDIA_VISIBLE_DEVICES=0,zero"]);
        assert!(matches!(
            container_request(&f, &policy()),
            Err(RequestError::Devices { .. })
        ));
        let f = facts(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=compute,gpu",
        ]);
        assert!(matches!(
            container_request(&f, &policy()),
            Err(RequestError::Capabilities { .. })
        ));
        let f = facts(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>>1"]);
        assert!(matches!(
            container_request(&f, &policy()),
            Err(RequestError::Requirement { .. })
        ));
    }

    pub(crate) fn spec_with_mounts(
        env: &[&str],
        mounts: serde_json::Value,
        privileged: bool,
    ) -> ContainerFacts {
        let caps = if privileged {
            vec!["CAP_SYS_ADMIN"]
        } else {
            vec!["CAP_CHOWN"]
        };
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": env,
                        "capabilities": {"bounding": caps}},
            "mounts": mounts,
        }))
        .unwrap();
        ContainerFacts::from_spec(&spec)
    }

    #[test]
    fn volume_mount_channel() {
        let mounts = serde_json::json!([
            {"destination": "/var/run/nvidia-container-devices/1", "source": "/dev/null", "type": "bind"},
            {"destination": "/var/run/nvidia-container-devices/0", "source": "/dev/null", "type": "bind"},
            {"destination": "/var/run/nvidia-container-devices/2", "source": "/tmp/x", "type": "bind"},
            {"destination": "/var/run/nvidia-container-devices/cdi/nvidia.com/gpu/3", "source": "/dev/null"},
        ]);
        let f = spec_with_mounts(&["NVIDIA_VISIBLE_DEVICES=all"], mounts, false);
        assert_eq!(
            f.volume_mount_devices,
            vec!["1".to_string(), "0".to_string()]
        );
        // Off by default: the env var decides.
        assert_eq!(
            container_request(&f, &policy()).unwrap().unwrap().devices,
            VisibleDevices::All
        );
        let config = Config {
            accept_nvidia_visible_devices_as_volume_mounts: true,
            ..Config::default()
        };
        let r = container_request(&f, &RequestPolicy::from(&config))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.devices,
            VisibleDevices::List(vec![DeviceSelector::Index(1), DeviceSelector::Index(0)])
        );
    }

    /// The device plugin's volume-mounts strategy with gpuhook not set up for it: a clear
    /// error naming the setting, not "not a GPU index".
    #[test]
    fn the_volume_mount_directory_in_the_env_names_the_setting() {
        let env = ["NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices"];
        let mounts = serde_json::json!([
            {"destination": "/var/run/nvidia-container-devices/GPU-0a1b", "source": "/dev/null"},
        ]);
        let f = spec_with_mounts(&env, mounts, false);
        let err = container_request(&f, &policy()).unwrap_err().to_string();
        assert!(
            err.contains("accept-nvidia-visible-devices-as-volume-mounts = true"),
            "{err}"
        );
        let config = Config {
            accept_nvidia_visible_devices_as_volume_mounts: true,
            ..Config::default()
        };
        let accepting = RequestPolicy::from(&config);
        let r = container_request(&f, &accepting).unwrap().unwrap();
        assert_eq!(
            r.devices,
            VisibleDevices::List(vec![DeviceSelector::Uuid("GPU-0a1b".into())])
        );
        let no_mount = spec_with_mounts(&env, serde_json::json!([]), false);
        let err = container_request(&no_mount, &accepting).unwrap_err();
        assert!(err.to_string().contains("none is mounted there"), "{err}");
    }

    #[test]
    fn unprivileged_env_can_be_refused() {
        let config = Config {
            accept_nvidia_visible_devices_envvar_when_unprivileged: false,
            ..Config::default()
        };
        let strict = RequestPolicy::from(&config);
        let env = ["NVIDIA_VISIBLE_DEVICES=all"];
        let unprivileged = spec_with_mounts(&env, serde_json::json!([]), false);
        assert_eq!(container_request(&unprivileged, &strict).unwrap(), None);
        let privileged = spec_with_mounts(&env, serde_json::json!([]), true);
        assert!(container_request(&privileged, &strict).unwrap().is_some());
    }

    #[test]
    fn mig_requests() {
        let r = request(&["NVIDIA_VISIBLE_DEVICES=0:1"]).unwrap();
        assert!(r.needs_mig() && !r.mig_access.any());
        assert!(!request(&["NVIDIA_VISIBLE_DEVICES=0"]).unwrap().needs_mig());
        let env = [
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_MIG_CONFIG_DEVICES=all",
            "NVIDIA_MIG_MONITOR_DEVICES=all",
        ];
        let privileged = spec_with_mounts(&env, serde_json::json!([]), true);
        let r = container_request(&privileged, &policy()).unwrap().unwrap();
        assert!(r.mig_access.config && r.mig_access.monitor && r.needs_mig());
        let unprivileged = spec_with_mounts(&env, serde_json::json!([]), false);
        let err = container_request(&unprivileged, &policy()).unwrap_err();
        assert!(
            matches!(&err, RequestError::MigUnprivileged { name } if name == MIG_CONFIG_ENV),
            "{err}"
        );
        // A container that asks for no GPU is left alone, whatever else it sets.
        let no_gpu = spec_with_mounts(
            &["NVIDIA_MIG_CONFIG_DEVICES=all"],
            serde_json::json!([]),
            false,
        );
        assert!(container_request(&no_gpu, &policy()).unwrap().is_none());
    }
}
