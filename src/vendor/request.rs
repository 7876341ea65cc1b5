//! AMD and Intel requests: `AMD_VISIBLE_DEVICES` and `INTEL_VISIBLE_DEVICES`. Pure.
//!
//! `AMD_VISIBLE_DEVICES` takes the AMD Container Toolkit's forms: `all`, GPU indices (`0,1`),
//! ranges (`0-3`, mixed: `0,2-3`) and GPU unique ids as `rocm-smi` prints them (`0x...`).
//! Intel ships no container toolkit and so no variable; `INTEL_VISIBLE_DEVICES` is named
//! after the other two (same place in an image's env, same `all`/index/range forms), and
//! instead of a unique id it takes the PCI address (`0000:03:00.0`), which is what Intel's
//! device plugin and `xpu-smi` identify a GPU by. For both, `none`, `void` and an empty
//! value ask for nothing, as `NVIDIA_VISIBLE_DEVICES` does.
//!
//! The values are parsed by hand: a comma list of three token shapes, no grammar to share.

use super::{inventory::is_bus_id, Vendor, VendorError};
use crate::limits::RequestLimits;
use crate::request::ContainerFacts;

pub const AMD_VISIBLE_DEVICES_ENV: &str = "AMD_VISIBLE_DEVICES";
pub const INTEL_VISIBLE_DEVICES_ENV: &str = "INTEL_VISIBLE_DEVICES";

/// One entry of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorSelector {
    Index(u32),
    /// `first-last`, both included.
    Range(u32, u32),
    /// AMD: the GPU's unique id.
    UniqueId(u64),
    /// Intel: the GPU's PCI address, lower case.
    BusId(String),
}

impl std::fmt::Display for VendorSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VendorSelector::Index(i) => write!(f, "{i}"),
            VendorSelector::Range(a, b) => write!(f, "{a}-{b}"),
            VendorSelector::UniqueId(id) => write!(f, "{id:#x}"),
            VendorSelector::BusId(bus) => f.write_str(bus),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisibleGpus {
    All,
    List(Vec<VendorSelector>),
}

/// What a container asks of one vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorRequest {
    pub vendor: Vendor,
    pub devices: VisibleGpus,
    /// The variable's value as given, for errors.
    pub value: String,
}

/// What each vendor accepts, for errors.
fn accepted(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Amd => "a GPU index (`0`), a range (`0-3`), a unique id (`0x1f2e3d4c5b6a7980`), `all`, `none` or `void`",
        Vendor::Intel => "a GPU index (`0`), a range (`0-3`), a PCI address (`0000:03:00.0`), `all`, `none` or `void`",
    }
}

/// Parses `value` of `vendor`'s variable; `Ok(None)`: it asks for nothing.
pub fn parse_visible(vendor: Vendor, value: &str) -> Result<Option<VisibleGpus>, VendorError> {
    let trimmed = value.trim();
    match trimmed {
        "" | "none" | "void" => return Ok(None),
        "all" => return Ok(Some(VisibleGpus::All)),
        _ => {}
    }
    let bad = |item: &str| VendorError::Request {
        variable: vendor.visible_devices_env(),
        value: value.to_string(),
        item: item.to_string(),
        accepted: accepted(vendor),
    };
    let mut selectors = Vec::new();
    for item in trimmed.split(',').map(str::trim) {
        let selector = parse_item(vendor, item).ok_or_else(|| bad(item))?;
        if !selectors.contains(&selector) {
            selectors.push(selector);
        }
    }
    Ok(Some(VisibleGpus::List(selectors)))
}

fn parse_item(vendor: Vendor, item: &str) -> Option<VendorSelector> {
    let index = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if let Some(i) = index(item) {
        return Some(VendorSelector::Index(i));
    }
    if let Some((a, b)) = item.split_once('-') {
        let (a, b) = (index(a.trim())?, index(b.trim())?);
        return (a <= b).then_some(VendorSelector::Range(a, b));
    }
    match vendor {
        Vendor::Amd => {
            let hex = item
                .strip_prefix("0x")
                .or_else(|| item.strip_prefix("0X"))?;
            let valid = !hex.is_empty() && hex.len() <= 16;
            let id = u64::from_str_radix(hex, 16).ok().filter(|_| valid)?;
            Some(VendorSelector::UniqueId(id))
        }
        Vendor::Intel => {
            let bus = item.to_ascii_lowercase();
            is_bus_id(&bus).then_some(VendorSelector::BusId(bus))
        }
    }
}

/// The AMD and Intel requests of a container, under the same rules as NVIDIA's variable:
/// an unprivileged container's env is read only when the operator accepts it there.
pub fn read_requests(
    facts: &ContainerFacts,
    accept_env_when_unprivileged: bool,
    limits: &RequestLimits,
) -> Result<Vec<VendorRequest>, VendorError> {
    if !facts.privileged && !accept_env_when_unprivileged {
        return Ok(Vec::new());
    }
    let mut requests = Vec::new();
    for vendor in Vendor::ALL {
        let variable = vendor.visible_devices_env();
        let Some(value) = facts.bounded(variable, limits)? else {
            continue;
        };
        limits.list(variable, value, limits.device_entries)?;
        if let Some(devices) = parse_visible(vendor, value)? {
            requests.push(VendorRequest {
                vendor,
                devices,
                value: value.to_string(),
            });
        }
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use VendorSelector::*;

    #[test]
    fn amd_forms() {
        let cases: &[(&str, Option<VisibleGpus>)] = &[
            ("all", Some(VisibleGpus::All)),
            (" all ", Some(VisibleGpus::All)),
            ("none", None),
            ("void", None),
            ("", None),
            ("0", Some(VisibleGpus::List(vec![Index(0)]))),
            ("0,1", Some(VisibleGpus::List(vec![Index(0), Index(1)]))),
            ("0-3", Some(VisibleGpus::List(vec![Range(0, 3)]))),
            (
                "0, 2-3",
                Some(VisibleGpus::List(vec![Index(0), Range(2, 3)])),
            ),
            ("1,1", Some(VisibleGpus::List(vec![Index(1)]))),
            (
                "0xEFC00AD56A176781,1",
                Some(VisibleGpus::List(vec![
                    UniqueId(0xefc0_0ad5_6a17_6781),
                    Index(1),
                ])),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                &parse_visible(Vendor::Amd, value).unwrap(),
                want,
                "{value:?}"
            );
        }
    }

    #[test]
    fn intel_forms() {
        let cases: &[(&str, Option<VisibleGpus>)] = &[
            ("all", Some(VisibleGpus::All)),
            ("none", None),
            ("1", Some(VisibleGpus::List(vec![Index(1)]))),
            ("0-1", Some(VisibleGpus::List(vec![Range(0, 1)]))),
            (
                "0000:03:00.0,1",
                Some(VisibleGpus::List(vec![
                    BusId("0000:03:00.0".into()),
                    Index(1),
                ])),
            ),
            (
                "0000:0A:00.0",
                Some(VisibleGpus::List(vec![BusId("0000:0a:00.0".into())])),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                &parse_visible(Vendor::Intel, value).unwrap(),
                want,
                "{value:?}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_the_item() {
        let cases = [
            (Vendor::Amd, "0,gpu1", "gpu1"),
            (Vendor::Amd, "3-1", "3-1"),
            (Vendor::Amd, "0-", "0-"),
            (Vendor::Amd, "-1", "-1"),
            (Vendor::Amd, "0x", "0x"),
            (Vendor::Amd, "0x12345678901234567", "0x12345678901234567"),
            (Vendor::Amd, "0000:03:00.0", "0000:03:00.0"),
            (Vendor::Amd, "0,,1", ""),
            (Vendor::Amd, "99999999999", "99999999999"),
            (Vendor::Intel, "0xabc", "0xabc"),
            (Vendor::Intel, "0000:03:00", "0000:03:00"),
            (Vendor::Intel, "GPU-1234", "GPU-1234"),
        ];
        for (vendor, value, item) in cases {
            let err = parse_visible(vendor, value).unwrap_err().to_string();
            let start = format!(
                "{}={value:?}: {item:?} is not ",
                vendor.visible_devices_env()
            );
            assert!(err.starts_with(&start), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    fn facts(env: &[(&str, &str)], privileged: bool) -> ContainerFacts {
        ContainerFacts {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            privileged,
            ..Default::default()
        }
    }

    #[test]
    fn each_vendor_reads_only_its_own_variable() {
        let limits = RequestLimits::DEFAULT;
        let f = facts(
            &[
                ("NVIDIA_VISIBLE_DEVICES", "all"),
                ("INTEL_VISIBLE_DEVICES", "1"),
            ],
            false,
        );
        let requests = read_requests(&f, true, &limits).unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].vendor, Vendor::Intel);
        assert!(read_requests(&f, false, &limits).unwrap().is_empty());
        let f = facts(&[("AMD_VISIBLE_DEVICES", "0")], true);
        assert_eq!(
            read_requests(&f, false, &limits).unwrap()[0].vendor,
            Vendor::Amd
        );
        let f = facts(&[("AMD_VISIBLE_DEVICES", "none")], true);
        assert!(read_requests(&f, true, &limits).unwrap().is_empty());
    }

    #[test]
    fn a_long_bad_value_is_quoted_cut() {
        let value = format!("{}x", "0,".repeat(5_000));
        let err = parse_visible(Vendor::Amd, &value).unwrap_err().to_string();
        assert!(
            err.len() < 400 && err.contains("... (10001 bytes)"),
            "{err}"
        );
    }

    #[test]
    fn oversized_values_are_refused_by_the_limits() {
        let long = "0,".repeat(10_000);
        let f = facts(&[("AMD_VISIBLE_DEVICES", &long)], true);
        let err = read_requests(&f, true, &RequestLimits::DEFAULT).unwrap_err();
        assert!(err.to_string().contains("AMD_VISIBLE_DEVICES"), "{err}");
    }
}
