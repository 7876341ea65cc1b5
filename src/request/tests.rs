//! Unit tests of the request stage: a spec's env, mounts and capabilities in, a request out.

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

fn capabilities(r: &ContainerRequest) -> Vec<DriverCapability> {
    r.capabilities.iter().copied().collect()
}

#[test]
fn legacy_image_without_capabilities_gets_every_supported_one() {
    let r = request(&["CUDA_VERSION=12.4.1"]).unwrap();
    assert_eq!(
        capabilities(&r),
        DriverCapabilities::from(DriverCapability::ALL)
            .into_iter()
            .collect::<Vec<_>>()
    );
    // Limited to what the operator supports, like `all`.
    let config = Config {
        supported_driver_capabilities: vec![DriverCapability::Utility, DriverCapability::Video],
        ..Config::default()
    };
    let r = container_request(
        &facts(&["CUDA_VERSION=12.4.1"]),
        &RequestPolicy::from(&config),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        capabilities(&r),
        [DriverCapability::Utility, DriverCapability::Video]
    );
    // Named capabilities win; set but empty means the defaults, as for any image.
    let r = request(&["CUDA_VERSION=12.4.1", "NVIDIA_DRIVER_CAPABILITIES=video"]).unwrap();
    assert_eq!(capabilities(&r), [DriverCapability::Video]);
    let r = request(&["CUDA_VERSION=12.4.1", "NVIDIA_DRIVER_CAPABILITIES="]).unwrap();
    assert_eq!(
        capabilities(&r),
        [DriverCapability::Compute, DriverCapability::Utility]
    );
    // A non-legacy image that names no capability gets the defaults.
    let r = request(&["NVIDIA_VISIBLE_DEVICES=all"]).unwrap();
    assert_eq!(
        capabilities(&r),
        [DriverCapability::Compute, DriverCapability::Utility]
    );
}

#[test]
fn empty_cuda_version_is_not_a_legacy_image() {
    assert_eq!(request(&["CUDA_VERSION="]), None, "no GPU asked for");
    let r = request(&["CUDA_VERSION=", "NVIDIA_VISIBLE_DEVICES=0"]).unwrap();
    assert!(r.requirements.is_empty(), "{:?}", r.requirements);
    assert_eq!(
        capabilities(&r),
        [DriverCapability::Compute, DriverCapability::Utility]
    );
    // An empty NVIDIA_REQUIRE_CUDA does not make an image non-legacy either.
    let r = request(&["CUDA_VERSION=12.4.1", "NVIDIA_REQUIRE_CUDA="]).unwrap();
    assert_eq!(r.devices, VisibleDevices::All);
    assert!(r.needs(RequirementKey::Cuda));
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
