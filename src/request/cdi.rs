//! Which CDI devices a container asks for, from the three channels the incumbent reads:
//! `NVIDIA_VISIBLE_DEVICES` (`nvidia.com/gpu=0,nvidia.com/gpu=1`), annotations under the CDI
//! prefixes (`cdi.k8s.io/<key>: nvidia.com/gpu=0`), and `/dev/null` volume mounts at
//! `/var/run/nvidia-container-devices/cdi/<vendor>/<class>/<name>`.

use std::path::Path;

use super::{ContainerFacts, RequestPolicy, VISIBLE_DEVICES_ENV, VOLUME_MOUNT_DIR};

/// A fully qualified CDI name: `vendor.com/class=name`, vendor and class non-empty.
pub fn is_qualified(name: &str) -> bool {
    name.split_once('=').is_some_and(|(kind, device)| {
        !device.is_empty()
            && kind
                .split_once('/')
                .is_some_and(|(vendor, class)| !vendor.is_empty() && !class.is_empty())
    })
}

/// `<VOLUME_MOUNT_DIR>/cdi/vendor.com/class/name` gives `vendor.com/class=name`.
pub(super) fn volume_mount_cdi_device(destination: &Path) -> Option<String> {
    let rest = destination
        .strip_prefix(Path::new(VOLUME_MOUNT_DIR).join("cdi"))
        .ok()?
        .to_str()?;
    let mut parts = rest.split('/');
    let (vendor, class, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [vendor, class, name].iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(format!("{vendor}/{class}={name}"))
}

/// Where CDI names may come from, and how bare names are read (from the config).
#[derive(Debug, Clone)]
pub struct CdiRequestPolicy<'a> {
    /// Kind given to bare names in `NVIDIA_VISIBLE_DEVICES` (`0` -> `nvidia.com/gpu=0`);
    /// `None` leaves bare names out (auto mode: they are legacy requests).
    pub default_kind: Option<&'a str>,
    pub annotation_prefixes: &'a [String],
}

/// The qualified CDI device names the container asks for, in request order, without
/// repeats. Empty: no CDI request.
pub fn cdi_devices(
    facts: &ContainerFacts,
    policy: &RequestPolicy,
    cdi: &CdiRequestPolicy,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    if policy.accept_volume_mounts {
        facts
            .cdi_volume_mount_devices
            .iter()
            .cloned()
            .for_each(&mut push);
    }
    for (key, value) in &facts.annotations {
        if cdi
            .annotation_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
        {
            value
                .split(',')
                .map(str::trim)
                .filter(|n| is_qualified(n))
                .map(str::to_string)
                .for_each(&mut push);
        }
    }
    let env_allowed = facts.privileged || policy.accept_env_when_unprivileged;
    if let (true, Some(value)) = (env_allowed, facts.get(VISIBLE_DEVICES_ENV)) {
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if is_qualified(entry) {
                push(entry.to_string());
            } else if let Some(kind) = cdi.default_kind {
                if !matches!(entry, "void" | "none") {
                    push(format!("{kind}={entry}"));
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::DriverCapability;

    fn policy() -> RequestPolicy {
        RequestPolicy {
            supported_capabilities: DriverCapability::ALL.to_vec(),
            accept_env_when_unprivileged: true,
            accept_volume_mounts: true,
            disable_require: false,
        }
    }

    fn facts(env: &[(&str, &str)]) -> ContainerFacts {
        ContainerFacts {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    const PREFIXES: [String; 0] = [];

    #[test]
    fn qualified_names() {
        assert!(is_qualified("nvidia.com/gpu=0"));
        assert!(is_qualified("nvidia.com/gpu=all"));
        for bad in [
            "0",
            "all",
            "nvidia.com/gpu",
            "nvidia.com/gpu=",
            "/gpu=0",
            "nvidia.com/=0",
            "GPU-12=3",
        ] {
            assert!(!is_qualified(bad), "{bad}");
        }
    }

    #[test]
    fn env_names_qualified_and_bare() {
        let f = facts(&[(
            "NVIDIA_VISIBLE_DEVICES",
            "nvidia.com/gpu=0, 1,nvidia.com/gpu=0",
        )]);
        let auto = CdiRequestPolicy {
            default_kind: None,
            annotation_prefixes: &PREFIXES,
        };
        assert_eq!(cdi_devices(&f, &policy(), &auto), ["nvidia.com/gpu=0"]);
        let cdi = CdiRequestPolicy {
            default_kind: Some("nvidia.com/gpu"),
            annotation_prefixes: &PREFIXES,
        };
        assert_eq!(
            cdi_devices(&f, &policy(), &cdi),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
        );
        let void = facts(&[("NVIDIA_VISIBLE_DEVICES", "void")]);
        assert!(cdi_devices(&void, &policy(), &cdi).is_empty());
    }

    #[test]
    fn env_is_ignored_for_unprivileged_when_policy_says_so() {
        let f = facts(&[("NVIDIA_VISIBLE_DEVICES", "nvidia.com/gpu=0")]);
        let strict = RequestPolicy {
            accept_env_when_unprivileged: false,
            ..policy()
        };
        let auto = CdiRequestPolicy {
            default_kind: None,
            annotation_prefixes: &PREFIXES,
        };
        assert!(cdi_devices(&f, &strict, &auto).is_empty());
    }

    #[test]
    fn annotations_and_volume_mounts() {
        let mut f = facts(&[]);
        f.annotations.insert(
            "cdi.k8s.io/gpu".into(),
            "nvidia.com/gpu=1,nvidia.com/gpu=2".into(),
        );
        f.annotations
            .insert("other/key".into(), "nvidia.com/gpu=3".into());
        f.cdi_volume_mount_devices = vec![volume_mount_cdi_device(Path::new(
            "/var/run/nvidia-container-devices/cdi/nvidia.com/gpu/0",
        ))
        .unwrap()];
        let prefixes = ["cdi.k8s.io/".to_string()];
        let auto = CdiRequestPolicy {
            default_kind: None,
            annotation_prefixes: &prefixes,
        };
        assert_eq!(
            cdi_devices(&f, &policy(), &auto),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=2"]
        );
        assert_eq!(
            volume_mount_cdi_device(Path::new("/var/run/nvidia-container-devices/cdi/a/b")),
            None
        );
    }
}
