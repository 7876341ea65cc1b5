//! AMD and Intel device nodes in an [`InjectionPlan`]: on their own (a container asking only
//! for them gets no NVIDIA file, no `/proc/driver` mask and no ld cache run) or added to an
//! NVIDIA plan, so that one apply makes all mounts and cgroup rules together.

use super::{ContainerLayout, DeviceRule, InjectionPlan, MountEntry, PlanError};
use super::{ProcDriverView, ProcMaskTarget};
use crate::vendor::VendorPlan;

/// A plan of `vendor`'s devices alone.
pub fn devices_only(
    vendor: &VendorPlan,
    layout: &ContainerLayout,
) -> Result<InjectionPlan, PlanError> {
    let mut plan = InjectionPlan {
        gpus: Vec::new(),
        skipped_gpus: Vec::new(),
        mounts: Vec::new(),
        devices: Vec::new(),
        device_rules: Vec::new(),
        proc_driver: ProcDriverView {
            version: String::new(),
            params: String::new(),
            gpus: Vec::new(),
            mig_capabilities: Vec::new(),
        },
        proc_mask: None::<ProcMaskTarget>,
        ldcache_dirs: Vec::new(),
        ldcache_libraries: Vec::new(),
        ldconfig_ids: layout.root_ids,
        fresh_tmpfs: layout.fresh_tmpfs.clone(),
    };
    add_devices(&mut plan, vendor, layout)?;
    Ok(plan)
}

/// Adds `vendor`'s devices to `plan` and checks its targets again (they are disjoint from
/// NVIDIA's: another vendor's GPUs have other DRM nodes).
pub fn add_devices(
    plan: &mut InjectionPlan,
    vendor: &VendorPlan,
    layout: &ContainerLayout,
) -> Result<(), PlanError> {
    for node in &vendor.devices {
        if plan.devices.iter().any(|d| d.path == node.path) {
            continue;
        }
        plan.mounts.push(MountEntry::device(node));
        plan.device_rules.push(DeviceRule {
            major: node.major,
            minor: node.minor,
        });
        plan.devices.push(node.clone());
    }
    plan.gpus.extend(vendor.summary());
    plan.recheck(layout)
}
