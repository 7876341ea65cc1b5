//! GPU memory caps for AMD and Intel GPUs through the dmem cgroup controller (Linux 6.14+,
//! cgroup v2 only): `AMD_GPU_MEMORY_LIMIT` and `INTEL_GPU_MEMORY_LIMIT`, in the forms of
//! `NVIDIA_GPU_MEMORY_LIMIT` (`4G`, `4096` MiB, per GPU by the vendor's index `0=2G,1=4G`).
//! The root cgroup's `dmem.capacity` lists the
//! regions, `drm/<PCI address>/<region>` (`vram0`, ...) with their sizes; each selected GPU's
//! regions get the cap in the container's `dmem.max`. The kernel enforces it: an allocation
//! over it fails (evicts, then fails), nothing runs beside the container.
//!
//! `dmem.capacity` is `name size` lines; parsed by hand as KFD's properties are.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::{Vendor, VendorGpu};
use crate::request::memory::{parse_memory_limit, MemoryError, MemoryLimit};
use crate::request::ContainerFacts;

#[derive(Debug, thiserror::Error)]
pub enum DmemError {
    #[error(transparent)]
    Limit(#[from] MemoryError),
    #[error("{variable} asks for a GPU memory cap, but {path} is missing: the kernel has no dmem cgroup controller (Linux 6.14+, cgroup v2), or it is not enabled for the container's cgroup (`+dmem` in the parent's cgroup.subtree_control); no cap can be enforced, so the container is not started")]
    NoController {
        variable: &'static str,
        path: PathBuf,
    },
    #[error("{variable}: {vendor} GPU {index} ({bus_id}) has no dmem region in {path} (its driver registers none: amdgpu and xe do, i915 does not)")]
    NoRegion {
        variable: &'static str,
        vendor: Vendor,
        index: u32,
        bus_id: String,
        path: PathBuf,
    },
    #[error("{variable} asks for a GPU memory cap, but {path} lists no cgroup v2 (unified) cgroup: the dmem controller exists in cgroup v2 only")]
    NotV2 {
        variable: &'static str,
        path: PathBuf,
    },
    #[error("{variable}: {message}")]
    Cgroup {
        variable: &'static str,
        message: String,
    },
    #[error("{variable}: {what} {path}: {source}")]
    Io {
        variable: &'static str,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The caps asked for, per vendor (only privileged containers, or where the operator lets
/// unprivileged ones ask, as for NVIDIA's caps).
pub fn read_limits(
    facts: &ContainerFacts,
    accept_unprivileged: bool,
) -> Result<Vec<(Vendor, MemoryLimit)>, DmemError> {
    if !facts.privileged && !accept_unprivileged {
        return Ok(Vec::new());
    }
    let mut limits = Vec::new();
    for vendor in Vendor::ALL {
        let variable = vendor.memory_limit_env();
        match facts.get(variable).map(str::trim) {
            None | Some("") => {}
            Some(value) => limits.push((vendor, parse_memory_limit(variable, value)?)),
        }
    }
    Ok(limits)
}

/// `dmem.capacity`'s `(region, bytes)` pairs; other lines are skipped.
pub fn parse_capacity(text: &str) -> Vec<(&str, u64)> {
    super::kfd::parse_properties(text)
}

/// The `dmem.max` lines (`region bytes`) for `gpus`, each GPU's cap on each of its regions,
/// never above the region's size.
pub fn max_lines(
    limits: &[(Vendor, MemoryLimit)],
    gpus: &[VendorGpu],
    capacity: &str,
    capacity_path: &Path,
) -> Result<Vec<String>, DmemError> {
    let regions = parse_capacity(capacity);
    let mut lines = Vec::new();
    for (vendor, limit) in limits {
        for gpu in gpus.iter().filter(|g| g.vendor == *vendor) {
            let Some(bytes) = limit.for_gpu(gpu.index, &gpu.bus_id) else {
                continue;
            };
            let prefix = format!("drm/{}/", gpu.bus_id);
            let mine: Vec<&(&str, u64)> = regions
                .iter()
                .filter(|(r, _)| r.starts_with(&prefix))
                .collect();
            if mine.is_empty() {
                return Err(DmemError::NoRegion {
                    variable: vendor.memory_limit_env(),
                    vendor: *vendor,
                    index: gpu.index,
                    bus_id: gpu.bus_id.clone(),
                    path: capacity_path.to_path_buf(),
                });
            }
            lines.extend(
                mine.iter()
                    .map(|(r, size)| format!("{r} {}", bytes.min(*size))),
            );
        }
    }
    Ok(lines)
}

/// Writes `lines` into `cgroup_dir/dmem.max`, one region per write(2) as the kernel parses
/// them. The file is opened beneath the cgroup directory without following any link.
pub fn write_max(
    variable: &'static str,
    cgroup_dir: &Path,
    lines: &[String],
) -> Result<(), DmemError> {
    let io = |what, path: &Path, source| DmemError::Io {
        variable,
        what,
        path: path.to_path_buf(),
        source,
    };
    let dir = rustix::fs::open(
        cgroup_dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("cannot open", cgroup_dir, e.into()))?;
    let path = cgroup_dir.join("dmem.max");
    let fd = match rustix::fs::openat2(
        dir.as_fd(),
        "dmem.max",
        OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Err(DmemError::NoController { variable, path }),
        Err(e) => return Err(io("cannot open", &path, e.into())),
    };
    let mut file = std::fs::File::from(fd);
    for line in lines {
        file.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| io("cannot write", &path, e))?;
    }
    Ok(())
}

/// Reads `dmem.capacity` from the cgroup root; a missing file is the missing controller.
pub fn read_capacity(variable: &'static str, cgroup_root: &Path) -> Result<String, DmemError> {
    let path = cgroup_root.join("dmem.capacity");
    match crate::limits::read_file_bounded(&path, 1 << 20) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) if !path.exists() => Err(DmemError::NoController { variable, path }),
        Err(e) => Err(DmemError::Io {
            variable,
            what: "cannot read",
            path,
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// Caps the container behind `handle` as `limits` ask for its `gpus`: the dmem regions of
/// each capped GPU in its cgroup's `dmem.max`. Nothing to do without limits.
pub fn enforce(
    limits: &[(Vendor, MemoryLimit)],
    gpus: &[VendorGpu],
    handle: &crate::container::ContainerHandle,
    cgroup_root: &Path,
) -> Result<(), DmemError> {
    // A cap on a vendor the container has no GPU of caps nothing.
    let limits: Vec<(Vendor, MemoryLimit)> = limits
        .iter()
        .filter(|(v, _)| gpus.iter().any(|g| g.vendor == *v))
        .cloned()
        .collect();
    let Some((vendor, _)) = limits.first() else {
        return Ok(());
    };
    let variable = vendor.memory_limit_env();
    let capacity = read_capacity(variable, cgroup_root)?;
    let lines = max_lines(&limits, gpus, &capacity, &cgroup_root.join("dmem.capacity"))?;
    if lines.is_empty() {
        return Ok(());
    }
    let text = handle.read_proc("cgroup").map_err(|e| DmemError::Cgroup {
        variable,
        message: e.to_string(),
    })?;
    match unified_cgroup(&text, cgroup_root) {
        Some(dir) => write_max(variable, &dir, &lines),
        None => Err(DmemError::NotV2 {
            variable,
            path: PathBuf::from(format!("/proc/{}/cgroup", handle.pid())),
        }),
    }
}

/// The container's unified (v2) cgroup from `/proc/<pid>/cgroup` (its `0::<path>` line),
/// also on a hybrid host whose devices are managed in v1; a path that climbs (`..`) is
/// refused, as for the device rules.
pub fn unified_cgroup(text: &str, cgroup_root: &Path) -> Option<PathBuf> {
    let relative = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let relative = Path::new(relative.trim_start_matches('/'));
    let stays = relative.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    stays.then(|| cgroup_root.join(relative))
}

#[cfg(test)]
mod tests;
