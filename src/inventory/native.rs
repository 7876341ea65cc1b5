//! Facts only the driver's user-space libraries know, loaded on demand.

use std::ffi::c_int;
use std::path::Path;

use nvml_wrapper::Nvml;

use super::{Gpu, InventoryError};

/// `cuDriverGetVersion` from libcuda, as `major.minor` (13000 -> `13.0`). Needs no GPU
/// initialisation (no `cuInit`), so it costs about a millisecond.
pub fn cuda_driver_version(libcuda: &Path) -> Result<String, InventoryError> {
    let error = |message: String| InventoryError::Cuda {
        path: libcuda.to_path_buf(),
        message,
    };
    // SAFETY: libcuda is the host driver's own library (found through the driver root's ld
    // cache, never the container's); loading it runs only its initialisers.
    let library = unsafe { libloading::Library::new(libcuda) }.map_err(|e| error(e.to_string()))?;
    // SAFETY: the signature is CUDA's documented `CUresult cuDriverGetVersion(int *)`.
    let get_version: libloading::Symbol<unsafe extern "C" fn(*mut c_int) -> c_int> =
        unsafe { library.get(b"cuDriverGetVersion\0") }.map_err(|e| error(e.to_string()))?;
    let mut version: c_int = 0;
    // SAFETY: `version` is a valid, writable int for the call's duration.
    let status = unsafe { get_version(&mut version) };
    if status != 0 || version <= 0 {
        return Err(error(format!("cuDriverGetVersion returned error {status}")));
    }
    Ok(format!("{}.{}", version / 1000, (version % 1000) / 10))
}

/// Fills each GPU's architecture and brand from NVML, matching GPUs by UUID.
pub fn fill_gpu_details(libnvml: &Path, gpus: &mut [Gpu]) -> Result<(), InventoryError> {
    let error = |message: String| InventoryError::Nvml {
        path: libnvml.to_path_buf(),
        message,
    };
    let nvml = Nvml::builder()
        .lib_path(libnvml.as_os_str())
        .init()
        .map_err(|e| error(e.to_string()))?;
    let count = nvml.device_count().map_err(|e| error(e.to_string()))?;
    for i in 0..count {
        let device = nvml.device_by_index(i).map_err(|e| error(e.to_string()))?;
        let uuid = device.uuid().map_err(|e| error(e.to_string()))?;
        let Some(gpu) = gpus.iter_mut().find(|g| g.info.uuid == uuid) else {
            continue;
        };
        let capability = device
            .cuda_compute_capability()
            .map_err(|e| error(e.to_string()))?;
        gpu.arch = Some(format!("{}.{}", capability.major, capability.minor));
        let brand = device.brand().map_err(|e| error(e.to_string()))?;
        gpu.brand = Some(format!("{brand:?}").to_lowercase());
    }
    Ok(())
}
