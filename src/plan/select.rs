//! Which of the host's GPUs and MIG devices a device list names.

use std::collections::HashSet;

use crate::inventory::mig::{MigDevice, MigInventory};
use crate::inventory::Gpu;
use crate::request::{DeviceSelector, VisibleDevices};

use super::mig;
use super::PlanError;

/// What a device list selects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selection<'a> {
    /// Whole GPUs, in index order.
    pub gpus: Vec<&'a Gpu>,
    /// MIG devices with their parent GPU, in request order.
    pub mig: Vec<(&'a Gpu, &'a MigDevice)>,
}

impl<'a> Selection<'a> {
    /// The whole GPUs and the MIG devices' parents, in index order: the GPUs whose device
    /// node, procfs entry and requirements the container gets.
    pub fn device_gpus(&self) -> Vec<&'a Gpu> {
        let mut gpus = self.gpus.clone();
        for (parent, _) in &self.mig {
            if !gpus.iter().any(|g| g.index == parent.index) {
                gpus.push(parent);
            }
        }
        gpus.sort_by_key(|g| g.index);
        gpus
    }

    /// `(GPU index, UUID)` for logs: whole GPUs by their UUID, MIG devices by theirs under
    /// their parent's index.
    pub fn summary(&self) -> Vec<(u32, String)> {
        let whole = self.gpus.iter().map(|g| (g.index, g.info.uuid.clone()));
        let mig = self.mig.iter().map(|(g, d)| (g.index, d.uuid.clone()));
        whole.chain(mig).collect()
    }
}

/// The selected whole GPUs in index order; MIG selectors are an error here (see [`select`]).
pub fn select_gpus<'a>(
    devices: &VisibleDevices,
    gpus: &'a [Gpu],
) -> Result<Vec<&'a Gpu>, PlanError> {
    Ok(select(devices, gpus, None)?.gpus)
}

/// The selected GPUs and MIG devices; `mig_inventory` is needed when the list names MIG
/// devices. UUID prefixes are accepted when they match exactly one GPU: a prefix that matched
/// several would silently hand out the wrong one.
pub fn select<'a>(
    devices: &VisibleDevices,
    gpus: &'a [Gpu],
    mig_inventory: Option<&'a MigInventory>,
) -> Result<Selection<'a>, PlanError> {
    let selectors = match devices {
        VisibleDevices::All => {
            return Ok(Selection {
                gpus: gpus.iter().collect(),
                mig: Vec::new(),
            })
        }
        VisibleDevices::NoGpu => return Ok(Selection::default()),
        VisibleDevices::List(selectors) => selectors,
    };
    let mut selected = Selection::default();
    // Indices already given, so a long list with repeats (`0,GPU-5e1f,0:1,MIG-...`) stays
    // linear in its length.
    let mut whole_seen = HashSet::new();
    let mut mig_seen = HashSet::new();
    for selector in selectors {
        let gpu = match selector {
            DeviceSelector::Index(index) => gpus
                .iter()
                .find(|g| g.index == *index)
                .ok_or_else(|| unknown(selector, gpus))?,
            DeviceSelector::Uuid(uuid) => by_uuid(uuid, gpus)?,
            DeviceSelector::MigIndex { gpu, mig: index } => {
                let inventory = mig::enumerated(mig_inventory, selector)?;
                let found = mig::by_index(*gpu, *index, gpus, inventory)?;
                add_mig(&mut selected, &mut mig_seen, found);
                continue;
            }
            DeviceSelector::MigUuid(uuid) => {
                let inventory = mig::enumerated(mig_inventory, selector)?;
                let found = mig::by_uuid(uuid, gpus, inventory)?;
                add_mig(&mut selected, &mut mig_seen, found);
                continue;
            }
        };
        if whole_seen.insert(gpu.index) {
            selected.gpus.push(gpu);
        }
    }
    selected.gpus.sort_by_key(|g| g.index);
    Ok(selected)
}

/// `0:1` and its UUID name the same device: it is given once.
fn add_mig<'a>(
    selected: &mut Selection<'a>,
    seen: &mut HashSet<(u32, u32)>,
    found: (&'a Gpu, &'a MigDevice),
) {
    if seen.insert((found.0.index, found.1.index)) {
        selected.mig.push(found);
    }
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
    PlanError::UnknownGpu {
        requested: selector.to_string(),
        available: available(gpus),
    }
}

/// `this host has GPUs 0-1 (GPU-..., GPU-...)`, for errors naming a GPU that is not there.
pub(super) fn available(gpus: &[Gpu]) -> String {
    match (gpus.first(), gpus.last()) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::inventory;

    #[test]
    fn long_lists_with_repeats_give_each_gpu_once_in_index_order() {
        let inventory = inventory();
        let uuid1 = inventory.gpus[1].info.uuid.clone();
        let mut selectors = Vec::new();
        for _ in 0..5000 {
            selectors.push(DeviceSelector::Index(1));
            selectors.push(DeviceSelector::Uuid(uuid1.to_uppercase()));
            selectors.push(DeviceSelector::Index(0));
        }
        let selection = select(&VisibleDevices::List(selectors), &inventory.gpus, None).unwrap();
        let indices: Vec<u32> = selection.gpus.iter().map(|g| g.index).collect();
        assert_eq!(indices, [0, 1]);
        assert!(selection.mig.is_empty());
    }
}
