//! Selection on a host whose GPU 0 has an `information` file that cannot be used: the other
//! GPUs keep their indices, GPU 0 is refused by name, `all` gives the rest and says so.

use crate::inventory::{Inventory, UnusableGpu};
use crate::plan::tests::{debian, inventory, request};
use crate::plan::{plan, InjectionPlan, MigError, PlanError};

const UUID1: &str = "GPU-5e1f0000-0000-4000-8000-000000000001";
const BROKEN_BUS: &str = "0000:10:00.0";
const REASON: &str =
    "cannot read /proc/driver/nvidia/gpus/0000:10:00.0/information: Is a directory (os error 21)";

/// The base inventory with GPU 0 unusable: GPU 1 is still GPU 1.
fn broken_gpu0() -> Inventory {
    let mut inventory = inventory();
    inventory.gpus.retain(|g| g.index == 1);
    inventory.unusable_gpus = vec![UnusableGpu {
        index: 0,
        bus_id: BROKEN_BUS.into(),
        reason: REASON.into(),
    }];
    inventory
}

fn plan_for(env: &[&str]) -> Result<InjectionPlan, PlanError> {
    plan(&request(env), &broken_gpu0(), &debian())
}

fn device_paths(plan: &InjectionPlan) -> Vec<String> {
    plan.devices
        .iter()
        .map(|d| d.path.display().to_string())
        .collect()
}

#[test]
fn the_other_gpus_keep_their_index() {
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=1"]).unwrap();
    assert_eq!(plan.gpus, [(1, UUID1.to_string())]);
    assert!(device_paths(&plan).contains(&"/dev/nvidia1".to_string()));
    assert!(
        plan.skipped_gpus.is_empty(),
        "nothing skipped: not asked for"
    );
    let by_uuid = plan_for(&[&format!("NVIDIA_VISIBLE_DEVICES={UUID1}")]).unwrap();
    assert_eq!(by_uuid.gpus, plan.gpus);
}

#[test]
fn asking_for_the_unusable_gpu_says_why() {
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=0"]).unwrap_err();
    assert!(
        matches!(err, PlanError::UnusableGpu { index: 0, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "GPU 0 requested, but GPU 0 ({BROKEN_BUS}) cannot be used: {REASON}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("nvidia-smi -q -i {BROKEN_BUS}")),
        "{text}"
    );
    // Together with a good GPU: still refused, nothing given.
    assert!(plan_for(&["NVIDIA_VISIBLE_DEVICES=1,0"]).is_err());
    // One of its MIG devices, by index.
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=0:1"]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("MIG device 0:1 requested, but GPU 0 (0000:10:00.0) cannot be used"),
        "{err}"
    );
}

#[test]
fn all_gives_the_usable_gpus_and_reports_the_others() {
    let plan = plan_for(&["NVIDIA_VISIBLE_DEVICES=all"]).unwrap();
    assert_eq!(plan.gpus, [(1, UUID1.to_string())]);
    assert_eq!(
        plan.skipped_gpus,
        [(0, BROKEN_BUS.to_string(), REASON.to_string())]
    );
    assert_eq!(plan.proc_driver.gpus.len(), 1);
    assert!(!device_paths(&plan).contains(&"/dev/nvidia0".to_string()));
    // `none` asks for no GPU: nothing to skip.
    assert!(plan_for(&["NVIDIA_VISIBLE_DEVICES=none"])
        .unwrap()
        .skipped_gpus
        .is_empty());
}

#[test]
fn unknown_gpus_list_the_unusable_one_in_its_place() {
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=GPU-ffff"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "GPU GPU-ffff requested, this host has GPUs 0-1 (GPU 0 at {BROKEN_BUS} unusable, {UUID1})"
        )
    );
    let err = plan_for(&["NVIDIA_VISIBLE_DEVICES=3"]).unwrap_err();
    assert!(matches!(err, PlanError::UnknownGpu { .. }), "{err}");
    // A MIG device of a GPU that is not there at all.
    let mut inventory = broken_gpu0();
    inventory.mig = Some(crate::inventory::MigInventory {
        gpus: Vec::new(),
        config: Err(crate::inventory::mig::CapError::NoMinor { path: "x".into() }),
        monitor: Err(crate::inventory::mig::CapError::NoMinor { path: "x".into() }),
    });
    let err = plan(
        &request(&["NVIDIA_VISIBLE_DEVICES=5:0"]),
        &inventory,
        &debian(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PlanError::Mig(MigError::UnknownGpu { available, .. })
            if available.contains("GPU 0 at 0000:10:00.0 unusable")),
        "{err}"
    );
}
