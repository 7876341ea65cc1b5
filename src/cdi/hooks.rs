//! The hooks a gpuhook CDI spec names (`gpuhook cdi-hook ...`). The engine runs them as
//! `createRuntime` hooks with the container's state on stdin; they work like the legacy hook's
//! last steps and under the same rules (see `apply`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::apply;
use crate::config::Config;
use crate::hook::{self, HookError, OciState};
use crate::inventory::{container_layout, mig, Inventory, InventoryNeeds};
use crate::plan;
use crate::request::ContainerFacts;

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
    let facts = ContainerFacts::from_spec(&spec);
    let handle = hook::container(state, &spec, &spec_path)?;
    match which {
        CdiHook::MaskProcDriver => {
            let declared: BTreeSet<(u32, u32)> = facts.declared_devices.iter().copied().collect();
            let inventory = Inventory::read(&config.driver, InventoryNeeds::default())?;
            let gpus: Vec<_> = inventory
                .gpus
                .iter()
                .filter(|g| {
                    g.device
                        .as_ref()
                        .is_some_and(|d| declared.contains(&(d.major, d.minor)))
                })
                .collect();
            let mut view = plan::proc_driver_view(&inventory, &gpus);
            // A MIG device's spec entry declares its capability nodes: their procfs files go
            // with them, as the hook gives them.
            let declared: Vec<(u32, u32)> = declared.into_iter().collect();
            view.mig_capabilities = mig::caps_of_nodes(&config.driver, &declared)
                .into_iter()
                .map(|cap| (cap.proc_file, cap.text))
                .collect();
            let target = plan::ProcMaskTarget::for_kernel(inventory.kernel_has_proc_driver_nvidia);
            apply::mask_proc_driver(&view, &target, &handle)?;
            let indices: Vec<String> = gpus.iter().map(|g| g.index.to_string()).collect();
            Ok(format!("proc-driver gpus=[{}]", indices.join(",")))
        }
        CdiHook::UpdateLdcache { folders } => {
            // Forward compatibility, as in the hook: an image's newer compat libcuda first.
            let layout = container_layout::read(
                handle.rootfs(),
                &config.hook.cuda_compat_dir,
                handle.root_ids(),
                facts.tmpfs_mounts.clone(),
            );
            let host_version =
                std::fs::read_to_string(config.driver.proc_driver_root.join("version"))
                    .ok()
                    .and_then(|text| crate::inventory::proc_driver::parse_driver_version(&text));
            let mut indexed = folders.clone();
            if let (Some(compat), Some(host)) = (&layout.cuda_compat, host_version) {
                if plan::is_newer_version(&compat.version, &host) {
                    indexed.insert(0, compat.dir.clone());
                }
            }
            // The drop-in keeps the mounted folders in any later ld cache the image builds;
            // the compat choice stays this cache's (the image's own ldconfig setup decides
            // about its compat directory).
            let dropped_in =
                apply::update_ldcache(&indexed, folders, &handle, config, &layout.fresh_tmpfs)?;
            let conf = match dropped_in {
                true => format!(
                    " conf={}/{}",
                    apply::ld_conf::CONF_DIR,
                    apply::ld_conf::CONF_NAME
                ),
                false => String::new(),
            };
            Ok(format!("ldcache folders={indexed:?}{conf}"))
        }
    }
}
