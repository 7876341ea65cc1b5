//! Which of the host's GPUs and MIG devices a device list names.

use crate::inventory::mig::MigDevice;
use crate::inventory::{Gpu, Inventory, UnusableGpu};
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
    /// GPUs `all` would have given but that cannot be used (for the log).
    pub skipped: Vec<&'a UnusableGpu>,
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

/// The selected GPUs and MIG devices of `inventory` (its MIG devices are needed when the list
/// names any). UUID prefixes are accepted when they match exactly one GPU: a prefix that
/// matched several would silently hand out the wrong one.
///
/// A GPU the driver lists but whose `information` cannot be used fails a request that names
/// it by index, saying why; `all` gives the usable GPUs and reports the others in
/// [`Selection::skipped`]: one broken GPU must not stop every container on the node, and it
/// could not be given correctly anyway (its device node is unknown).
pub fn select<'a>(
    devices: &VisibleDevices,
    inventory: &'a Inventory,
) -> Result<Selection<'a>, PlanError> {
    let gpus = &inventory.gpus;
    let selectors = match devices {
        VisibleDevices::All => {
            return Ok(Selection {
                gpus: gpus.iter().collect(),
                mig: Vec::new(),
                skipped: inventory.unusable_gpus.iter().collect(),
            })
        }
        VisibleDevices::NoGpu => return Ok(Selection::default()),
        VisibleDevices::List(selectors) => selectors,
    };
    let mut selected = Selection::default();
    for selector in selectors {
        refuse_unusable(selector, inventory)?;
        let gpu = match selector {
            DeviceSelector::Index(index) => gpus
                .iter()
                .find(|g| g.index == *index)
                .ok_or_else(|| unknown(selector, inventory))?,
            DeviceSelector::Uuid(uuid) => by_uuid(uuid, inventory)?,
            DeviceSelector::MigIndex { gpu, mig: index } => {
                let mig_inventory = mig::enumerated(inventory.mig.as_ref(), selector)?;
                let found = mig::by_index(*gpu, *index, inventory, mig_inventory)?;
                add_mig(&mut selected, found);
                continue;
            }
            DeviceSelector::MigUuid(uuid) => {
                let mig_inventory = mig::enumerated(inventory.mig.as_ref(), selector)?;
                let found = mig::by_uuid(uuid, gpus, mig_inventory)?;
                add_mig(&mut selected, found);
                continue;
            }
        };
        if !selected.gpus.iter().any(|g| g.index == gpu.index) {
            selected.gpus.push(gpu);
        }
    }
    selected.gpus.sort_by_key(|g| g.index);
    Ok(selected)
}

/// A selector naming an unusable GPU by index (whole, or one of its MIG devices).
fn refuse_unusable(selector: &DeviceSelector, inventory: &Inventory) -> Result<(), PlanError> {
    let (index, what) = match selector {
        DeviceSelector::Index(index) => (*index, "GPU"),
        DeviceSelector::MigIndex { gpu, .. } => (*gpu, "MIG device"),
        DeviceSelector::Uuid(_) | DeviceSelector::MigUuid(_) => return Ok(()),
    };
    match inventory.unusable_gpus.iter().find(|u| u.index == index) {
        Some(unusable) => Err(PlanError::UnusableGpu {
            requested: format!("{what} {selector}"),
            index,
            bus_id: unusable.bus_id.clone(),
            reason: unusable.reason.clone(),
        }),
        None => Ok(()),
    }
}

/// Narrows `selection` to the GPUs the spec already declares as character devices in
/// `linux.devices` (`declared`: major, minor), when it declares any of the host's GPUs: an
/// engine that applied CDI (or the shim) has decided which GPUs the container gets, and an
/// env var the image carries (`NVIDIA_VISIBLE_DEVICES=all` in CUDA images) must not widen
/// that. MIG devices stay when their parent GPU is declared.
pub fn within_declared<'a>(
    mut selection: Selection<'a>,
    declared: &[(u32, u32)],
    gpus: &[Gpu],
) -> Selection<'a> {
    let is_declared = |gpu: &Gpu| {
        gpu.device
            .as_ref()
            .is_some_and(|d| declared.contains(&(d.major, d.minor)))
    };
    if !gpus.iter().any(is_declared) {
        return selection;
    }
    selection.gpus.retain(|g| is_declared(g));
    selection.mig.retain(|(parent, _)| is_declared(parent));
    selection
}

/// `0:1` and its UUID name the same device: it is given once.
fn add_mig<'a>(selected: &mut Selection<'a>, found: (&'a Gpu, &'a MigDevice)) {
    if !selected
        .mig
        .iter()
        .any(|(g, d)| g.index == found.0.index && d.index == found.1.index)
    {
        selected.mig.push(found);
    }
}

fn by_uuid<'a>(uuid: &str, inventory: &'a Inventory) -> Result<&'a Gpu, PlanError> {
    let gpus = &inventory.gpus;
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
        [] => Err(unknown(&DeviceSelector::Uuid(uuid.to_string()), inventory)),
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

fn unknown(selector: &DeviceSelector, inventory: &Inventory) -> PlanError {
    PlanError::UnknownGpu {
        requested: selector.to_string(),
        available: available(inventory),
    }
}

/// `this host has GPUs 0-1 (GPU-..., GPU-...)`, for errors naming a GPU that is not there.
/// Unusable GPUs hold their place in the list (`GPU 0 at 0000:10:00.0 unusable`): their
/// UUIDs are unknown, so a request by UUID may have meant one of them.
pub(super) fn available(inventory: &Inventory) -> String {
    let mut entries: Vec<(u32, String)> = inventory
        .gpus
        .iter()
        .map(|g| (g.index, g.info.uuid.clone()))
        .chain(
            inventory
                .unusable_gpus
                .iter()
                .map(|u| (u.index, format!("GPU {} at {} unusable", u.index, u.bus_id))),
        )
        .collect();
    entries.sort_by_key(|(index, _)| *index);
    match (entries.first(), entries.last()) {
        (None, _) | (_, None) => "this host has no GPUs".to_string(),
        (Some(first), Some(last)) if first.0 == last.0 => {
            format!("this host has GPU {} ({})", first.0, first.1)
        }
        (Some(first), Some(last)) => {
            let described: Vec<&str> = entries.iter().map(|(_, d)| d.as_str()).collect();
            format!(
                "this host has GPUs {}-{} ({})",
                first.0,
                last.0,
                described.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests;
