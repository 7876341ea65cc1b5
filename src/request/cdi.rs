//! Which CDI devices a container asks for, from the three channels the incumbent reads:
//! `NVIDIA_VISIBLE_DEVICES` (`nvidia.com/gpu=0,nvidia.com/gpu=1`), annotations under the CDI
//! prefixes (`cdi.k8s.io/<key>: nvidia.com/gpu=0`), and `/dev/null` volume mounts at
//! `/var/run/nvidia-container-devices/cdi/<vendor>/<class>/<name>`.

use std::path::Path;

use super::first_seen::FirstSeen;
use super::{ContainerFacts, RequestError, RequestPolicy, VISIBLE_DEVICES_ENV, VOLUME_MOUNT_DIR};
use crate::limits;

/// A fully qualified CDI name: `vendor.com/class=name`, vendor and class non-empty.
pub fn is_qualified(name: &str) -> bool {
    name.split_once('=').is_some_and(|(kind, device)| {
        !device.is_empty()
            && kind
                .split_once('/')
                .is_some_and(|(vendor, class)| !vendor.is_empty() && !class.is_empty())
    })
}

/// `<VOLUME_MOUNT_DIR>/cdi/vendor.com/class/name` gives `vendor.com/class=name`. A vendor or
/// class holding `=` would make another name (`v=x/c=n` reads as kind `v`), so such a mount
/// names nothing (the request_plan fuzz target found it).
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
    if vendor.contains('=') || class.contains('=') {
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
/// repeats. Empty: no CDI request. Linear in the request's size; bounded by
/// `policy.limits` (CDI annotations, the env value, distinct names).
pub fn cdi_devices(
    facts: &ContainerFacts,
    policy: &RequestPolicy,
    cdi: &CdiRequestPolicy,
) -> Result<Vec<String>, RequestError> {
    let limits = &policy.limits;
    let mut names = FirstSeen::new();
    // Refused as soon as one name too many is in, not after reading them all.
    let mut add = |name: String| {
        names.insert(name);
        limits::check(
            "the CDI device request",
            names.len(),
            limits.cdi_names,
            "names",
        )
    };
    if policy.accept_volume_mounts {
        for name in &facts.cdi_volume_mount_devices {
            add(name.clone())?;
        }
    }
    let mut annotations = 0;
    for (key, value) in &facts.annotations {
        if !cdi
            .annotation_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
        {
            continue;
        }
        annotations += 1;
        let what = "the list of annotations under the CDI prefixes";
        limits::check(what, annotations, limits.cdi_annotations, "entries")?;
        for name in value.split(',').map(str::trim).filter(|n| is_qualified(n)) {
            add(name.to_string())?;
        }
    }
    // An unprivileged container's env is not read at all under the strict setting, not even
    // measured (the request_plan fuzz target checks this).
    let env_allowed = facts.privileged || policy.accept_env_when_unprivileged;
    let env = match env_allowed {
        true => facts.bounded(VISIBLE_DEVICES_ENV, limits)?,
        false => None,
    };
    if let Some(value) = env {
        limits.list(VISIBLE_DEVICES_ENV, value, limits.device_entries)?;
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if is_qualified(entry) {
                add(entry.to_string())?;
            } else if let Some(kind) = cdi.default_kind {
                if !matches!(entry, "void" | "none") {
                    add(format!("{kind}={entry}"))?;
                }
            }
        }
    }
    Ok(names.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RequestLimits;
    use crate::request::DriverCapability;

    fn policy() -> RequestPolicy {
        RequestPolicy {
            supported_capabilities: DriverCapability::ALL.to_vec(),
            accept_env_when_unprivileged: true,
            accept_volume_mounts: true,
            disable_require: false,
            limits: RequestLimits::DEFAULT,
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
        assert_eq!(
            cdi_devices(&f, &policy(), &auto).unwrap(),
            ["nvidia.com/gpu=0"]
        );
        let cdi = CdiRequestPolicy {
            default_kind: Some("nvidia.com/gpu"),
            annotation_prefixes: &PREFIXES,
        };
        assert_eq!(
            cdi_devices(&f, &policy(), &cdi).unwrap(),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
        );
        let void = facts(&[("NVIDIA_VISIBLE_DEVICES", "void")]);
        assert!(cdi_devices(&void, &policy(), &cdi).unwrap().is_empty());
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
        assert!(cdi_devices(&f, &strict, &auto).unwrap().is_empty());
        // Not even measured: a value over the size limit is ignored, not an error.
        let long = "nvidia.com/gpu=0,".repeat(strict.limits.env_value_bytes / 17 + 1);
        let f = facts(&[("NVIDIA_VISIBLE_DEVICES", &long)]);
        assert!(cdi_devices(&f, &strict, &auto).unwrap().is_empty());
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
            cdi_devices(&f, &policy(), &auto).unwrap(),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=2"]
        );
        assert_eq!(
            volume_mount_cdi_device(Path::new("/var/run/nvidia-container-devices/cdi/a/b")),
            None
        );
        for odd in ["n=idia.com/gpu/0", "nvidia.com/g=pu/0"] {
            let path = Path::new("/var/run/nvidia-container-devices/cdi").join(odd);
            assert_eq!(volume_mount_cdi_device(&path), None, "{odd}");
        }
        let path = Path::new("/var/run/nvidia-container-devices/cdi/nvidia.com/gpu/a=b");
        assert_eq!(
            volume_mount_cdi_device(path).as_deref(),
            Some("nvidia.com/gpu=a=b")
        );
    }

    #[test]
    fn many_names_keep_first_appearance_order_across_channels() {
        // Mounts first, then annotations (in key order), then the env; repeats everywhere.
        let mut f = facts(&[(
            "NVIDIA_VISIBLE_DEVICES",
            "nvidia.com/gpu=2, 7, 5000, nvidia.com/gpu=0, 5000",
        )]);
        f.cdi_volume_mount_devices = vec!["nvidia.com/gpu=2".into(), "nvidia.com/gpu=3".into()];
        let gpu = |i: u32| format!("nvidia.com/gpu={i}");
        let descending: Vec<String> = (0..3000).rev().map(gpu).collect();
        f.annotations
            .insert("cdi.k8s.io/a".into(), descending.join(","));
        f.annotations
            .insert("cdi.k8s.io/b".into(), "nvidia.com/gpu=3,x.com/y=z".into());
        let prefixes = ["cdi.k8s.io/".to_string()];
        let cdi = CdiRequestPolicy {
            default_kind: Some("nvidia.com/gpu"),
            annotation_prefixes: &prefixes,
        };
        let mut expected = vec![gpu(2), gpu(3)];
        expected.extend((0..3000).rev().filter(|i| ![2, 3].contains(i)).map(gpu));
        expected.extend(["x.com/y=z".to_string(), gpu(5000)]);
        let unbounded = RequestPolicy {
            limits: RequestLimits::UNBOUNDED,
            ..policy()
        };
        assert_eq!(cdi_devices(&f, &unbounded, &cdi).unwrap(), expected);
    }

    #[test]
    fn limits_on_names_annotations_and_the_env_value() {
        let prefixes = ["cdi.k8s.io/".to_string()];
        let cdi = CdiRequestPolicy {
            default_kind: Some("nvidia.com/gpu"),
            annotation_prefixes: &prefixes,
        };
        let names = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let limits = RequestLimits::DEFAULT;
        // Distinct names: the limit itself is fine, one more is refused; repeats do not count.
        let at_limit = names(limits.cdi_names);
        assert_eq!(
            cdi_devices(
                &facts(&[("NVIDIA_VISIBLE_DEVICES", &at_limit)]),
                &policy(),
                &cdi
            )
            .unwrap()
            .len(),
            limits.cdi_names
        );
        let mut over = facts(&[("NVIDIA_VISIBLE_DEVICES", &at_limit)]);
        over.annotations
            .insert("cdi.k8s.io/x".into(), "nvidia.com/gpu=extra".into());
        let err = cdi_devices(&over, &policy(), &cdi).unwrap_err().to_string();
        assert_eq!(
            err,
            "the CDI device request is 1025 names long, over gpuhook's limit of 1024"
        );
        // Annotations under the prefixes; others are not counted.
        let mut annotated = facts(&[]);
        for i in 0..limits.cdi_annotations {
            annotated
                .annotations
                .insert(format!("cdi.k8s.io/{i}"), "nvidia.com/gpu=0".into());
            annotated
                .annotations
                .insert(format!("other/{i}"), "nvidia.com/gpu=0".into());
        }
        assert_eq!(cdi_devices(&annotated, &policy(), &cdi).unwrap().len(), 1);
        annotated
            .annotations
            .insert("cdi.k8s.io/one-more".into(), "nvidia.com/gpu=0".into());
        let err = cdi_devices(&annotated, &policy(), &cdi)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the list of annotations under the CDI prefixes is 1025 entries long"),
            "{err}"
        );
        // The env value's size.
        let long = "nvidia.com/gpu=0,".repeat(limits.env_value_bytes / 17 + 1);
        let err = cdi_devices(
            &facts(&[("NVIDIA_VISIBLE_DEVICES", &long)]),
            &policy(),
            &cdi,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("NVIDIA_VISIBLE_DEVICES is 131"), "{err}");
    }
}
