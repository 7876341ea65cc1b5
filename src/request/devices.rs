//! `NVIDIA_VISIBLE_DEVICES` and the volume-mount channel: which GPUs a container asks for.

use std::fmt;

use super::RequestError;

/// One entry of a device list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceSelector {
    /// GPU index in PCI bus order (what `nvidia-smi` shows).
    Index(u32),
    /// `GPU-...`: a full GPU UUID or a prefix of one (resolved, unambiguously, by `plan`).
    Uuid(String),
    /// `GPU:MIG`, e.g. `0:1`.
    MigIndex { gpu: u32, mig: u32 },
    /// `MIG-...`.
    MigUuid(String),
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Index(i) => write!(f, "{i}"),
            DeviceSelector::Uuid(u) | DeviceSelector::MigUuid(u) => f.write_str(u),
            DeviceSelector::MigIndex { gpu, mig } => write!(f, "{gpu}:{mig}"),
        }
    }
}

/// What a container asks for once it asks for anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisibleDevices {
    /// Every GPU of the host.
    All,
    /// `none`: the driver's files but no GPU.
    NoGpu,
    /// These GPUs.
    List(Vec<DeviceSelector>),
}

impl VisibleDevices {
    /// True when a MIG device is named (the plan then needs the host's MIG devices).
    pub fn has_mig(&self) -> bool {
        match self {
            VisibleDevices::List(selectors) => selectors.iter().any(|s| {
                matches!(
                    s,
                    DeviceSelector::MigIndex { .. } | DeviceSelector::MigUuid(_)
                )
            }),
            VisibleDevices::All | VisibleDevices::NoGpu => false,
        }
    }
}

/// Parses one value of `NVIDIA_VISIBLE_DEVICES`. `Ok(None)` means "nothing at all" (`void`,
/// empty, a list containing `void`); the caller decides what unset means.
pub fn parse_visible_devices(value: &str) -> Result<Option<VisibleDevices>, RequestError> {
    let trimmed = value.trim();
    match trimmed {
        "" | "void" => return Ok(None),
        "all" => return Ok(Some(VisibleDevices::All)),
        "none" => return Ok(Some(VisibleDevices::NoGpu)),
        _ => {}
    }
    let items = || trimmed.split(',').map(str::trim).filter(|s| !s.is_empty());
    // `void` anywhere in the list (`0,void`) voids it, as the incumbent reads it: a list that
    // a tool built by appending to a `void` default still means "leave me alone".
    if items().any(|item| item == "void") {
        return Ok(None);
    }
    let mut selectors: Vec<DeviceSelector> = Vec::new();
    for item in items() {
        let selector = parse_selector(item).ok_or_else(|| RequestError::Devices {
            value: value.to_string(),
            item: item.to_string(),
        })?;
        if !selectors.contains(&selector) {
            selectors.push(selector);
        }
    }
    if selectors.is_empty() {
        return Ok(None);
    }
    Ok(Some(VisibleDevices::List(selectors)))
}

/// Combines the devices named by several volume mounts (each names one device, or `all`).
pub fn from_volume_mount_names(names: &[String]) -> Result<Option<VisibleDevices>, RequestError> {
    if names.is_empty() {
        return Ok(None);
    }
    if names.iter().any(|n| n == "all") {
        return Ok(Some(VisibleDevices::All));
    }
    parse_visible_devices(&names.join(","))
}

fn parse_selector(item: &str) -> Option<DeviceSelector> {
    if let Some(index) = parse_index(item) {
        return Some(DeviceSelector::Index(index));
    }
    if let Some((gpu, mig)) = item.split_once(':') {
        return Some(DeviceSelector::MigIndex {
            gpu: parse_index(gpu)?,
            mig: parse_index(mig)?,
        });
    }
    if let Some(rest) = item.strip_prefix("GPU-") {
        return is_uuid_text(rest).then(|| DeviceSelector::Uuid(item.to_string()));
    }
    if let Some(rest) = item.strip_prefix("MIG-") {
        return is_uuid_text(rest).then(|| DeviceSelector::MigUuid(item.to_string()));
    }
    None
}

/// Decimal digits only: `+1`, `0x1` or `-1` are not indices.
fn parse_index(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The part after `GPU-`/`MIG-`: hex digits and dashes, at least one digit.
fn is_uuid_text(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_hexdigit())
        && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceSelector::*;

    fn list(value: &str) -> Vec<DeviceSelector> {
        match parse_visible_devices(value).unwrap() {
            Some(VisibleDevices::List(l)) => l,
            other => panic!("{value:?} gave {other:?}"),
        }
    }

    #[test]
    fn keywords() {
        assert_eq!(
            parse_visible_devices("all").unwrap(),
            Some(VisibleDevices::All)
        );
        assert_eq!(
            parse_visible_devices(" none ").unwrap(),
            Some(VisibleDevices::NoGpu)
        );
        assert_eq!(parse_visible_devices("void").unwrap(), None);
        assert_eq!(parse_visible_devices("").unwrap(), None);
        assert_eq!(parse_visible_devices(" , ").unwrap(), None);
    }

    #[test]
    fn a_list_containing_void_is_void() {
        for value in ["0,void", "void,0", "GPU-5e1f, void ,1", "0:1,void"] {
            assert_eq!(parse_visible_devices(value).unwrap(), None, "{value}");
        }
        assert_eq!(
            from_volume_mount_names(&["0".into(), "void".into()]).unwrap(),
            None
        );
        // Only the whole word: a device named like it is still a malformed item.
        assert!(parse_visible_devices("0,voids").is_err());
    }

    #[test]
    fn indices_uuids_and_mig() {
        assert_eq!(list("0,1"), vec![Index(0), Index(1)]);
        assert_eq!(
            list(" 1 , 0 ,1"),
            vec![Index(1), Index(0)],
            "duplicates dropped"
        );
        assert_eq!(
            list("GPU-5e1f0000-0000-4000-8000-000000000001"),
            vec![Uuid("GPU-5e1f0000-0000-4000-8000-000000000001".into())]
        );
        assert_eq!(list("GPU-5e1f"), vec![Uuid("GPU-5e1f".into())]);
        assert_eq!(list("0:1"), vec![MigIndex { gpu: 0, mig: 1 }]);
        assert_eq!(
            list("MIG-ab12-cd34,1"),
            vec![MigUuid("MIG-ab12-cd34".into()), Index(1)]
        );
    }

    #[test]
    fn mig_selectors_are_recognised() {
        let has_mig = |v: &str| parse_visible_devices(v).unwrap().unwrap().has_mig();
        assert!(has_mig("0:1"));
        assert!(has_mig("1,MIG-ab12"));
        assert!(!has_mig("0,1"));
        assert!(!has_mig("all"));
        assert!(!has_mig("none"));
    }

    #[test]
    fn malformed_items_are_errors_naming_the_item() {
        for bad in [
            "x",
            "0,x",
            "-1",
            "+1",
            "0x1",
            "1.5",
            "GPU-",
            "GPU-xyz",
            "gpu-12",
            "0:",
            ":1",
            "0:1:2",
            "all,0",
            "none,1",
            "99999999999",
        ] {
            let err = parse_visible_devices(bad).expect_err(bad).to_string();
            assert!(err.contains("NVIDIA_VISIBLE_DEVICES"), "{bad}: {err}");
        }
        let err = parse_visible_devices("0,bogus").unwrap_err().to_string();
        assert!(err.contains("\"bogus\""), "{err}");
    }

    #[test]
    fn volume_mount_names() {
        assert_eq!(from_volume_mount_names(&[]).unwrap(), None);
        assert_eq!(
            from_volume_mount_names(&["1".into(), "0".into()]).unwrap(),
            Some(VisibleDevices::List(vec![Index(1), Index(0)]))
        );
        assert_eq!(
            from_volume_mount_names(&["0".into(), "all".into()]).unwrap(),
            Some(VisibleDevices::All)
        );
        assert!(from_volume_mount_names(&["../etc".into()]).is_err());
    }
}
