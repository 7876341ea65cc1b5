//! `NVIDIA_DRIVER_CAPABILITIES`: which parts of the driver a container gets.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::RequestError;

/// One driver capability. The set of files each one brings is decided in `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriverCapability {
    Compute,
    Compat32,
    Graphics,
    Utility,
    Video,
    Display,
    Ngx,
}

impl DriverCapability {
    pub const ALL: [DriverCapability; 7] = [
        DriverCapability::Compute,
        DriverCapability::Compat32,
        DriverCapability::Graphics,
        DriverCapability::Utility,
        DriverCapability::Video,
        DriverCapability::Display,
        DriverCapability::Ngx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DriverCapability::Compute => "compute",
            DriverCapability::Compat32 => "compat32",
            DriverCapability::Graphics => "graphics",
            DriverCapability::Utility => "utility",
            DriverCapability::Video => "video",
            DriverCapability::Display => "display",
            DriverCapability::Ngx => "ngx",
        }
    }
}

impl fmt::Display for DriverCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DriverCapability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriverCapability::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown driver capability {s:?} (known: compute, compat32, graphics, \
                     utility, video, display, ngx, all)"
                )
            })
    }
}

impl<'de> Deserialize<'de> for DriverCapability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of capabilities, kept sorted so plans and logs are stable.
pub type DriverCapabilities = BTreeSet<DriverCapability>;

/// A set of capabilities as bits: `Copy`, for what the inventory is asked to look for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilitySet(u8);

impl CapabilitySet {
    pub fn of<'a>(capabilities: impl IntoIterator<Item = &'a DriverCapability>) -> CapabilitySet {
        CapabilitySet(capabilities.into_iter().fold(0, |bits, c| bits | bit(*c)))
    }

    pub fn contains(self, capability: DriverCapability) -> bool {
        self.0 & bit(capability) != 0
    }
}

fn bit(capability: DriverCapability) -> u8 {
    1 << capability as u8
}

/// What a container gets when it names no capability.
pub const DEFAULT_CAPABILITIES: [DriverCapability; 2] =
    [DriverCapability::Utility, DriverCapability::Compute];

/// Parses `NVIDIA_DRIVER_CAPABILITIES` (`None`: unset). `all` stands for `supported`; every
/// result is limited to `supported` (the operator's choice in the config).
pub fn parse_capabilities(
    value: Option<&str>,
    supported: &[DriverCapability],
) -> Result<DriverCapabilities, RequestError> {
    let value = value.map(str::trim).unwrap_or("");
    let mut requested = DriverCapabilities::new();
    if value.is_empty() {
        requested.extend(DEFAULT_CAPABILITIES);
    }
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            requested.extend(supported.iter().copied());
            continue;
        }
        let capability =
            item.parse::<DriverCapability>()
                .map_err(|message| RequestError::Capabilities {
                    value: value.to_string(),
                    message,
                })?;
        requested.insert(capability);
    }
    requested.retain(|c| supported.contains(c));
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DriverCapability::*;

    #[test]
    fn a_capability_set_holds_exactly_its_members() {
        let set = CapabilitySet::of(&[Compute, Ngx]);
        for capability in DriverCapability::ALL {
            assert_eq!(
                set.contains(capability),
                matches!(capability, Compute | Ngx),
                "{capability}"
            );
        }
        let all = CapabilitySet::of(&DriverCapability::ALL);
        assert!(DriverCapability::ALL.iter().all(|c| all.contains(*c)));
        assert!(!CapabilitySet::default().contains(Compute));
    }

    fn parse(value: Option<&str>) -> Result<Vec<DriverCapability>, RequestError> {
        parse_capabilities(value, &DriverCapability::ALL).map(|s| s.into_iter().collect())
    }

    #[test]
    fn unset_and_empty_mean_utility_and_compute() {
        assert_eq!(parse(None).unwrap(), vec![Compute, Utility]);
        assert_eq!(parse(Some("")).unwrap(), vec![Compute, Utility]);
        assert_eq!(parse(Some("  ")).unwrap(), vec![Compute, Utility]);
    }

    #[test]
    fn lists_and_all() {
        assert_eq!(parse(Some("utility")).unwrap(), vec![Utility]);
        assert_eq!(parse(Some("compute, video")).unwrap(), vec![Compute, Video]);
        assert_eq!(
            parse(Some("all")).unwrap(),
            DriverCapability::ALL
                .to_vec()
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(
            parse(Some("graphics,display,compat32,ngx")).unwrap(),
            vec![Compat32, Graphics, Display, Ngx]
        );
    }

    #[test]
    fn unknown_capability_is_an_error_naming_it() {
        let err = parse(Some("compute,gaming")).unwrap_err().to_string();
        assert!(err.contains("\"gaming\""), "{err}");
        assert!(err.contains("NVIDIA_DRIVER_CAPABILITIES"), "{err}");
        assert!(
            parse(Some("Compute")).is_err(),
            "names are case-sensitive like the incumbent's"
        );
    }

    #[test]
    fn unsupported_capabilities_are_dropped() {
        let caps = parse_capabilities(Some("all"), &[Utility]).unwrap();
        assert_eq!(caps.into_iter().collect::<Vec<_>>(), vec![Utility]);
        let caps = parse_capabilities(Some("compute"), &[Utility]).unwrap();
        assert!(caps.is_empty());
    }
}
