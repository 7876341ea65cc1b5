//! The hooks a gpuhook CDI spec names (`gpuhook cdi-hook ...`). The engine runs them as
//! `createRuntime` hooks with the container's state on stdin; they work like the legacy hook's
//! last steps and under the same rules (see `apply`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::apply;
use crate::config::Config;
use crate::hook::{self, HookError, OciState};
use crate::inventory::{Inventory, InventoryNeeds};
use crate::plan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CdiHook {
    /// Show only the container's GPUs under `/proc/driver/nvidia/gpus`: those whose device
    /// node the final spec declares in `linux.devices`.
    MaskProcDriver,
    /// Rebuild the container's ld cache for these directories.
    UpdateLdcache { folders: Vec<PathBuf> },
}

/// Runs one CDI hook; returns what it did, for the log.
pub fn run(config: &Config, state: &OciState, which: &CdiHook) -> Result<String, HookError> {
    let (spec, spec_path) = hook::load_spec(state)?;
    let container = hook::container(state, &spec, &spec_path)?;
    match which {
        CdiHook::MaskProcDriver => {
            let declared: BTreeSet<(i64, i64)> = spec
                .linux()
                .as_ref()
                .and_then(|l| l.devices().as_ref())
                .into_iter()
                .flatten()
                .map(|d| (d.major(), d.minor()))
                .collect();
            let inventory = Inventory::read(&config.driver, InventoryNeeds::default())?;
            let gpus: Vec<_> = inventory
                .gpus
                .iter()
                .filter(|g| {
                    g.device.as_ref().is_some_and(|d| {
                        declared.contains(&(i64::from(d.major), i64::from(d.minor)))
                    })
                })
                .collect();
            let view = plan::proc_driver_view(&inventory, &gpus);
            apply::mask_proc_driver(&view, &container)?;
            let indices: Vec<String> = gpus.iter().map(|g| g.index.to_string()).collect();
            Ok(format!("proc-driver gpus=[{}]", indices.join(",")))
        }
        CdiHook::UpdateLdcache { folders } => {
            // Forward compatibility, as in the hook: an image's newer compat libcuda first.
            let layout = apply::container_layout(&container.rootfs, &config.hook.cuda_compat_dir)?;
            let host_version =
                std::fs::read_to_string(config.driver.proc_driver_root.join("version"))
                    .ok()
                    .and_then(|text| crate::inventory::proc_driver::parse_driver_version(&text));
            let mut folders = folders.clone();
            if let (Some(compat), Some(host)) = (&layout.cuda_compat, host_version) {
                if plan::is_newer_version(&compat.version, &host) {
                    folders.insert(0, compat.dir.clone());
                }
            }
            apply::update_ldcache(&folders, &container, config)?;
            Ok(format!("ldcache folders={folders:?}"))
        }
    }
}
