//! Which of the host's GPUs a device list names.

use crate::inventory::Gpu;
use crate::request::{DeviceSelector, VisibleDevices};

use super::PlanError;

/// The selected GPUs in index order. UUID prefixes are accepted when they match exactly one
/// GPU: a prefix that matched several would silently hand out the wrong one.
pub fn select_gpus<'a>(
    devices: &VisibleDevices,
    gpus: &'a [Gpu],
) -> Result<Vec<&'a Gpu>, PlanError> {
    let selectors = match devices {
        VisibleDevices::All => return Ok(gpus.iter().collect()),
        VisibleDevices::NoGpu => return Ok(Vec::new()),
        VisibleDevices::List(selectors) => selectors,
    };
    let mut selected: Vec<&Gpu> = Vec::new();
    for selector in selectors {
        let gpu = match selector {
            DeviceSelector::Index(index) => gpus
                .iter()
                .find(|g| g.index == *index)
                .ok_or_else(|| unknown(selector, gpus))?,
            DeviceSelector::Uuid(uuid) => by_uuid(uuid, gpus)?,
            DeviceSelector::MigIndex { .. } | DeviceSelector::MigUuid(_) => {
                return Err(PlanError::NoMig {
                    requested: selector.to_string(),
                })
            }
        };
        if !selected.iter().any(|g| g.index == gpu.index) {
            selected.push(gpu);
        }
    }
    selected.sort_by_key(|g| g.index);
    Ok(selected)
}

fn by_uuid<'a>(uuid: &str, gpus: &'a [Gpu]) -> Result<&'a Gpu, PlanError> {
    let wanted = uuid.to_ascii_lowercase();
    if let Some(exact) = gpus
        .iter()
        .find(|g| g.info.uuid.to_ascii_lowercase() == wanted)
    {
        return Ok(exact);
    }
    let matches: Vec<&Gpu> = gpus
        .iter()
        .filter(|g| g.info.uuid.to_ascii_lowercase().starts_with(&wanted))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(unknown(&DeviceSelector::Uuid(uuid.to_string()), gpus)),
        several => Err(PlanError::AmbiguousUuid {
            requested: uuid.to_string(),
            matches: several
                .iter()
                .map(|g| g.info.uuid.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn unknown(selector: &DeviceSelector, gpus: &[Gpu]) -> PlanError {
    let available = match (gpus.first(), gpus.last()) {
        (None, _) | (_, None) => "this host has no GPUs".to_string(),
        (Some(first), Some(last)) if first.index == last.index => {
            format!("this host has GPU {} ({})", first.index, first.info.uuid)
        }
        (Some(first), Some(last)) => {
            let uuids = gpus
                .iter()
                .map(|g| g.info.uuid.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "this host has GPUs {}-{} ({uuids})",
                first.index, last.index
            )
        }
    };
    PlanError::UnknownGpu {
        requested: selector.to_string(),
        available,
    }
}
