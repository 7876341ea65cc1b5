//! NVML's memory limits (driver r615 and later): `nvmlDeviceSetMemoryLimits_v1` caps what the
//! processes of one cgroup (the container's, as a cgroup v2 directory) may allocate on a GPU.
//! nvml-wrapper 0.11 does not wrap it; it comes from the same library through libloading, as
//! the MIG calls do (see `inventory::mig::nvml`), on the handles nvml-wrapper gives out.

use std::ffi::{c_char, c_uint, c_void, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libloading::Library;
use nvml_wrapper::error::nvml_try;
use nvml_wrapper::Nvml;

const SET_LIMITS: &[u8] = b"nvmlDeviceSetMemoryLimits_v1\0";

/// `nvmlSetMemoryLimits_v1_t` of nvml.h.
#[repr(C)]
struct SetMemoryLimits {
    name_space: *const c_char,
    soft_limit: u64,
    hard_limit: u64,
}

type SetLimits = unsafe extern "C" fn(*mut c_void, *mut SetMemoryLimits) -> c_uint;

#[derive(Debug, thiserror::Error)]
#[error("NVML memory limits ({}): {what}: {message}", library.display())]
pub struct NvmlLimitError {
    pub library: PathBuf,
    pub what: String,
    pub message: String,
}

fn init(libnvml: &Path) -> Result<Nvml, NvmlLimitError> {
    Nvml::builder()
        .lib_path(libnvml.as_os_str())
        .init()
        .map_err(|e| NvmlLimitError {
            library: libnvml.to_path_buf(),
            what: "init".into(),
            message: e.to_string(),
        })
}

/// Whether this NVML has memory limits: a symbol lookup, without initialising NVML.
pub fn has_memory_limits(libnvml: &Path) -> bool {
    // SAFETY: the host driver's NVML (a path from the driver's ld cache); loading runs only its
    // own initialisers, which nvml-wrapper runs as well.
    let Ok(library) = (unsafe { Library::new(libnvml) }) else {
        return false;
    };
    // SAFETY: only the symbol's presence is asked; it is not called.
    unsafe { library.get::<SetLimits>(SET_LIMITS) }.is_ok()
}

/// One GPU's limits: (UUID, soft bytes, hard bytes).
pub type GpuLimit = (String, u64, u64);

/// Sets the limits of the cgroup `cgroup_dir` on each GPU.
pub fn set_limits(
    libnvml: &Path,
    cgroup_dir: &Path,
    limits: &[GpuLimit],
) -> Result<(), NvmlLimitError> {
    let error = |what: String, message: String| NvmlLimitError {
        library: libnvml.to_path_buf(),
        what,
        message,
    };
    let nvml = init(libnvml)?;
    // SAFETY: as in `has_memory_limits`; the library is the one nvml-wrapper initialised.
    let library =
        unsafe { Library::new(libnvml) }.map_err(|e| error("dlopen".into(), e.to_string()))?;
    // SAFETY: NVML's documented signature: nvmlReturn_t
    // nvmlDeviceSetMemoryLimits_v1(nvmlDevice_t, nvmlSetMemoryLimits_v1_t *).
    let set = unsafe { library.get::<SetLimits>(SET_LIMITS) }
        .map_err(|e| error("lookup".into(), e.to_string()))?;
    let name_space = CString::new(cgroup_dir.as_os_str().as_bytes())
        .map_err(|e| error(format!("cgroup {}", cgroup_dir.display()), e.to_string()))?;
    for (uuid, soft, hard) in limits {
        let device = nvml
            .device_by_uuid(uuid.as_str())
            .map_err(|e| error(format!("GPU {uuid}"), e.to_string()))?;
        let mut request = SetMemoryLimits {
            name_space: name_space.as_ptr(),
            soft_limit: *soft,
            hard_limit: *hard,
        };
        // SAFETY: a live handle of the initialised NVML; the struct and the string it points
        // to outlive the call.
        let status = unsafe { set(device.handle().cast(), &mut request) };
        nvml_try(status).map_err(|e| {
            error(
                format!("GPU {uuid}, cgroup {}", cgroup_dir.display()),
                e.to_string(),
            )
        })?;
    }
    Ok(())
}

/// A GPU's compute mode as `nvidia-smi` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeMode {
    Default,
    ExclusiveProcess,
    Prohibited,
    Other,
}

impl ComputeMode {
    pub fn name(self) -> &'static str {
        match self {
            ComputeMode::Default => "Default",
            ComputeMode::ExclusiveProcess => "Exclusive_Process",
            ComputeMode::Prohibited => "Prohibited",
            ComputeMode::Other => "Exclusive_Thread",
        }
    }
}

/// Each GPU's (index, UUID, compute mode), as NVML reports them.
pub fn compute_modes(libnvml: &Path) -> Result<Vec<(u32, String, ComputeMode)>, NvmlLimitError> {
    use nvml_wrapper::enum_wrappers::device::ComputeMode as Mode;
    let error = |what: String, message: String| NvmlLimitError {
        library: libnvml.to_path_buf(),
        what,
        message,
    };
    let nvml = init(libnvml)?;
    let count = nvml
        .device_count()
        .map_err(|e| error("device count".into(), e.to_string()))?;
    (0..count)
        .map(|index| {
            let what =
                |e: nvml_wrapper::error::NvmlError| error(format!("GPU {index}"), e.to_string());
            let device = nvml.device_by_index(index).map_err(what)?;
            let mode = match device.compute_mode().map_err(what)? {
                Mode::Default => ComputeMode::Default,
                Mode::ExclusiveProcess => ComputeMode::ExclusiveProcess,
                Mode::Prohibited => ComputeMode::Prohibited,
                Mode::ExclusiveThread => ComputeMode::Other,
            };
            Ok((index, device.uuid().map_err(what)?, mode))
        })
        .collect()
}

/// The container's cgroup v2 directory: its `0::` line of `/proc/<pid>/cgroup` under the
/// unified hierarchy (`cgroup_root` itself on a v2 host, `cgroup_root/unified` on a hybrid
/// one). `None` without a v2 hierarchy or line.
pub fn cgroup_v2_dir(proc_cgroup: &str, cgroup_root: &Path) -> Option<PathBuf> {
    use procfs::FromBufRead;
    let groups = procfs::ProcessCGroups::from_buf_read(proc_cgroup.as_bytes()).ok()?;
    let line = groups
        .into_iter()
        .find(|g| g.hierarchy == 0 && g.controllers.is_empty())?;
    let unified = [cgroup_root.to_path_buf(), cgroup_root.join("unified")]
        .into_iter()
        .find(|dir| is_cgroup2(dir))?;
    Some(unified.join(line.pathname.trim_start_matches('/')))
}

fn is_cgroup2(dir: &Path) -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == CGROUP2_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_line_under_a_v2_hierarchy() {
        let text = "12:devices:/user.slice\n0::/system.slice/runc-x.scope\n";
        let no_v2 = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_v2_dir(text, no_v2.path()), None);
        // This machine's own hierarchy, v2 or hybrid, when it has one.
        let root = Path::new("/sys/fs/cgroup");
        if let Some(dir) = cgroup_v2_dir(text, root) {
            assert!(dir.ends_with("system.slice/runc-x.scope"), "{dir:?}");
            assert!(is_cgroup2(dir.parent().unwrap().parent().unwrap()));
        }
        assert_eq!(cgroup_v2_dir("12:devices:/x\n", root), None);
    }

    #[test]
    fn an_nvml_without_the_call_has_no_memory_limits() {
        assert!(!has_memory_limits(Path::new(
            "/nonexistent/libnvidia-ml.so.1"
        )));
    }
}
