//! The NVML side of accounting: each GPU's processes, memory and utilisation, as plain data.
//!
//! nvml-wrapper 0.11 wraps the compute and graphics process lists
//! (`nvmlDeviceGetComputeRunningProcesses_v3`, `nvmlDeviceGetGraphicsRunningProcesses_v3`),
//! `nvmlDeviceGetMemoryInfo_v2` and `nvmlDeviceGetUtilizationRates`, but not the MPS client
//! list. That one, `nvmlDeviceGetMPSComputeRunningProcesses_v3`, takes the same arguments and
//! struct as the compute list and comes from the same library through libloading, as the MIG
//! calls do (see `inventory::mig::nvml`). A driver without it simply lists no MPS clients.

use std::collections::BTreeMap;
use std::ffi::{c_uint, c_void};
use std::path::{Path, PathBuf};

use libloading::Library;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::{nvml_try, NvmlError};
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, Nvml};

use super::{GpuProcess, GpuStatus, ProcessKind, Utilization};

#[derive(Debug, thiserror::Error)]
pub enum NvmlQueryError {
    #[error("cannot use NVML ({path}): {message}; is the NVIDIA driver loaded (does `nvidia-smi` work)? If its libraries live elsewhere, set driver.root in gpuhook's config")]
    Load { path: PathBuf, message: String },
    #[error("NVML ({path}): {what}: {message}")]
    Query {
        path: PathBuf,
        what: String,
        message: String,
    },
}

/// nvmlProcessInfo_t of nvml.h, which the `_v3` process lists fill.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawProcessInfo {
    pid: c_uint,
    used_gpu_memory: u64,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

type ProcessList = unsafe extern "C" fn(*mut c_void, *mut c_uint, *mut RawProcessInfo) -> c_uint;

/// How many more entries than the count call said to make room for: processes start between
/// the two calls (nvml-wrapper does the same).
const HEADROOM: c_uint = 8;

/// An initialised NVML, kept for repeated reads (`--watch`, each scrape).
pub struct GpuQuery {
    path: PathBuf,
    nvml: Nvml,
    /// Holds the library the MPS entry point lives in (nvml-wrapper's own reference keeps it
    /// loaded too; this one ties `mps_list`'s validity to this struct).
    _library: Library,
    mps_list: Option<ProcessList>,
}

impl GpuQuery {
    pub fn open(libnvml: &Path) -> Result<GpuQuery, NvmlQueryError> {
        let load_error = |message: String| NvmlQueryError::Load {
            path: libnvml.to_path_buf(),
            message,
        };
        let nvml = Nvml::builder()
            .lib_path(libnvml.as_os_str())
            .init()
            .map_err(|e| load_error(e.to_string()))?;
        // SAFETY: the host driver's own NVML, already loaded and initialised by nvml-wrapper
        // above; this only takes another reference to it.
        let library = unsafe { Library::new(libnvml) }.map_err(|e| load_error(e.to_string()))?;
        // SAFETY: NVML's documented signature (nvml.h): nvmlReturn_t
        // nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t, unsigned int *,
        // nvmlProcessInfo_t *); the pointer is used only while `library` is held.
        let mps_list = unsafe {
            library
                .get::<ProcessList>(b"nvmlDeviceGetMPSComputeRunningProcesses_v3\0")
                .ok()
                .map(|symbol| *symbol)
        };
        Ok(GpuQuery {
            path: libnvml.to_path_buf(),
            nvml,
            _library: library,
            mps_list,
        })
    }

    /// Every GPU NVML shows, in index order.
    pub fn read(&self) -> Result<Vec<GpuStatus>, NvmlQueryError> {
        let error = |what: String, e: NvmlError| NvmlQueryError::Query {
            path: self.path.clone(),
            what,
            message: e.to_string(),
        };
        let count = self
            .nvml
            .device_count()
            .map_err(|e| error("device count".into(), e))?;
        (0..count)
            .map(|index| {
                let device = self
                    .nvml
                    .device_by_index(index)
                    .map_err(|e| error(format!("GPU {index}"), e))?;
                self.gpu(index, &device)
                    .map_err(|e| error(format!("GPU {index}"), e))
            })
            .collect()
    }

    fn gpu(&self, index: u32, device: &Device) -> Result<GpuStatus, NvmlError> {
        let memory = supported(device.memory_info())?;
        let utilization = supported(device.utilization_rates())?.map(|u| Utilization {
            gpu_percent: u.gpu,
            memory_percent: u.memory,
        });
        // A GPU that cannot list one kind of process still lists the others.
        let compute = supported(device.running_compute_processes())?;
        let graphics = supported(device.running_graphics_processes())?;
        let mut lists = vec![
            (ProcessKind::Compute, compute.unwrap_or_default()),
            (ProcessKind::Graphics, graphics.unwrap_or_default()),
        ];
        if let Some(list) = self.mps_list {
            lists.push((ProcessKind::MpsClient, mps_processes(device, list)?));
        }
        Ok(GpuStatus {
            index,
            uuid: device.uuid()?,
            memory_total_bytes: memory.as_ref().map(|m| m.total),
            memory_used_bytes: memory.as_ref().map(|m| m.used),
            utilization,
            processes: merge(lists),
        })
    }
}

/// `Ok(None)` for a query this GPU does not support.
fn supported<T>(result: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(NvmlError::NotSupported) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The MPS client list, with the same count-then-fill protocol as the others.
fn mps_processes(device: &Device, list: ProcessList) -> Result<Vec<ProcessInfo>, NvmlError> {
    // SAFETY: a live handle of the initialised NVML this list belongs to.
    let handle: *mut c_void = unsafe { device.handle() }.cast();
    let mut count: c_uint = 0;
    // SAFETY: a null array with a zero count is the documented way to ask for the count.
    let status = unsafe { list(handle, &mut count, std::ptr::null_mut()) };
    match nvml_try(status) {
        Ok(()) => return Ok(Vec::new()),
        Err(NvmlError::InsufficientSize(_)) => {}
        Err(NvmlError::NotSupported) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut room = count + HEADROOM;
    let empty = RawProcessInfo {
        pid: 0,
        used_gpu_memory: 0,
        gpu_instance_id: 0,
        compute_instance_id: 0,
    };
    let mut infos = vec![empty; room as usize];
    // SAFETY: `infos` has room for `room` entries, as the call is told.
    nvml_try(unsafe { list(handle, &mut room, infos.as_mut_ptr()) })?;
    infos.truncate(room as usize);
    Ok(infos
        .into_iter()
        .map(|raw| ProcessInfo {
            pid: raw.pid,
            used_gpu_memory: UsedGpuMemory::from(raw.used_gpu_memory),
            gpu_instance_id: None,
            compute_instance_id: None,
        })
        .collect())
}

/// One entry per pid across the lists: an MPS client is in the compute and the MPS list, a
/// process with both contexts in compute and graphics; its memory is one allocation reported
/// in each, so the largest report is taken, never the sum.
fn merge(lists: Vec<(ProcessKind, Vec<ProcessInfo>)>) -> Vec<GpuProcess> {
    let mut by_pid: BTreeMap<u32, GpuProcess> = BTreeMap::new();
    for (kind, list) in lists {
        for info in list {
            let used = match info.used_gpu_memory {
                UsedGpuMemory::Used(bytes) => Some(bytes),
                UsedGpuMemory::Unavailable => None,
            };
            let entry = by_pid.entry(info.pid).or_insert_with(|| GpuProcess {
                pid: info.pid,
                memory_used_bytes: None,
                kinds: Default::default(),
            });
            entry.kinds.insert(kind);
            entry.memory_used_bytes = entry.memory_used_bytes.max(used);
        }
    }
    by_pid.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, used: Option<u64>) -> ProcessInfo {
        ProcessInfo {
            pid,
            used_gpu_memory: used.map_or(UsedGpuMemory::Unavailable, UsedGpuMemory::Used),
            gpu_instance_id: None,
            compute_instance_id: None,
        }
    }

    #[test]
    fn a_process_in_several_lists_is_one_process_with_its_memory_once() {
        use ProcessKind::*;
        let merged = merge(vec![
            (Compute, vec![info(7, Some(100)), info(3, Some(50))]),
            (Graphics, vec![info(7, Some(100)), info(9, None)]),
            (MpsClient, vec![info(3, Some(50))]),
        ]);
        let got: Vec<(u32, Option<u64>, Vec<ProcessKind>)> = merged
            .into_iter()
            .map(|p| (p.pid, p.memory_used_bytes, p.kinds.into_iter().collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, Some(50), vec![Compute, MpsClient]),
                (7, Some(100), vec![Compute, Graphics]),
                (9, None, vec![Graphics]),
            ]
        );
    }
}
