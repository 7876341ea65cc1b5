//! The container's `/proc/driver/nvidia`: a read-only tmpfs holding the driver's `version`,
//! `params` (with `ModifyDeviceFiles: 0`), the capability files of the given MIG devices and an
//! empty `gpus/<bus id>` directory per selected GPU, on which that GPU's real procfs directory
//! (`information`, `registry`, `power`, ...) is bound read-only, as the incumbent gives it.
//! Unselected GPUs have no entry at all.
//!
//! The GPU directories are attached through the tmpfs's own mount fd after the tmpfs itself is
//! attached: they are part of the mask, never resolved through a path in the rootfs.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::mount::DetachedMount;
use super::ApplyError;
use crate::plan::{MountFlags, ProcDriverView};

/// Read-only, nothing executable or special on it.
const GPU_DIR_FLAGS: MountFlags = MountFlags {
    read_only: true,
    nosuid: true,
    nodev: true,
    noexec: true,
};

pub struct ProcMask {
    tmpfs: DetachedMount,
    /// Each GPU's directory (relative to the tmpfs root) and its detached bind mount.
    gpus: Vec<(PathBuf, DetachedMount)>,
}

impl ProcMask {
    /// Builds the mask on the host side. With `nested`, its files sit in an `nvidia/`
    /// subdirectory (the mask then covers `/proc/driver`, for hosts whose procfs has no
    /// `driver/nvidia` to cover).
    pub fn build(view: &ProcDriverView, nested: bool) -> Result<ProcMask, ApplyError> {
        let tmpfs = DetachedMount::proc_driver_view(view, nested)?;
        let top = if nested { "nvidia/gpus" } else { "gpus" };
        let gpus = view
            .gpus
            .iter()
            .map(|(bus_id, host_dir)| {
                Ok((
                    Path::new(top).join(bus_id),
                    DetachedMount::bind(host_dir, GPU_DIR_FLAGS)?,
                ))
            })
            .collect::<Result<Vec<_>, ApplyError>>()?;
        Ok(ProcMask { tmpfs, gpus })
    }

    /// Attaches the mask on `target` (an `O_PATH` fd), then each GPU's directory in it.
    pub fn attach(&self, target: &impl AsFd, what: &Path) -> Result<(), ApplyError> {
        self.tmpfs.attach(target, what)?;
        for (relative, gpu) in &self.gpus {
            let dir = rustix::fs::openat(
                self.tmpfs.fd(),
                relative,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ApplyError::io(format!("open {} in the mask", relative.display()), e))?;
            gpu.attach(&dir, &what.join(relative))?;
        }
        Ok(())
    }
}
