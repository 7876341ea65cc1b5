//! The memory-cap part of `gpuhook doctor`: each GPU's compute mode, and what it means for the
//! caps the config sets. In compute mode Default a process that does not connect to MPS (it
//! points `CUDA_MPS_PIPE_DIRECTORY` elsewhere) gets an ordinary context with the whole GPU;
//! only EXCLUSIVE_PROCESS makes MPS the only way in. gpuhook never changes a GPU's settings:
//! the fix is the operator's.

use gpuhook::config::Config;
use gpuhook::inventory::Inventory;
use gpuhook::memcap::nvml::{compute_modes, has_memory_limits, ComputeMode};
use gpuhook::memcap::Enforcement;

use super::Report;

pub(super) fn check(config: &Config, inventory: &Inventory, report: &mut Report) {
    let Ok(libnvml) = inventory.library_path("libnvidia-ml.so", &config.driver) else {
        return; // check_driver reported it.
    };
    let modes = match compute_modes(&libnvml) {
        Ok(modes) => modes,
        Err(e) => {
            report.warn(
                &format!("cannot read the GPUs' compute modes: {e}"),
                "is the NVIDIA driver loaded (does `nvidia-smi` work)?",
            );
            return;
        }
    };
    let caps = config.memory.configures_caps();
    let memory = &config.memory;
    // Whether MPS enforces what the config sets (NVML's memory limits need no MPS).
    let nvml_limits = memory.enforcement != Enforcement::Mps && has_memory_limits(&libnvml);
    let shares = memory.default_compute_limit < 100
        || memory.max_compute_limit < 100
        || memory
            .runtimes
            .values()
            .any(|r| r.compute_limit.is_some_and(|p| p < 100));
    let through_mps = caps && (!nvml_limits || shares);
    for (index, uuid, mode) in modes {
        let line = format!("GPU {index} ({uuid}) compute mode {}", mode.name());
        if mode == ComputeMode::Default && through_mps {
            report.warn(
                &format!("{line}, with GPU memory caps or compute shares in [memory]: a process that does not connect to its MPS daemon (one that points CUDA_MPS_PIPE_DIRECTORY elsewhere) gets the whole GPU, uncapped"),
                &format!("as the node operator, make MPS the only way onto the GPU: nvidia-smi -i {index} -c EXCLUSIVE_PROCESS (gpuhook never changes a GPU setting)"),
            );
        } else {
            report.ok(&line);
        }
    }
    if through_mps
        && !inventory
            .binaries
            .iter()
            .any(|(n, _)| *n == "nvidia-cuda-mps-control")
    {
        report.fail(
            "[memory] sets caps, but the driver's nvidia-cuda-mps-control is not in driver.binary-dirs: capped containers cannot start",
            "install the driver's MPS utilities, or add their directory to driver.binary-dirs",
        );
    }
}
