//! Facts only the driver's user-space libraries know, loaded on demand.

use std::ffi::c_int;
use std::path::Path;

use nvml_wrapper::enum_wrappers::device::Brand;
use nvml_wrapper::error::NvmlError;
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

/// Initialises NVML from the host driver's library. Dropping the handle shuts it down.
pub fn init_nvml(libnvml: &Path) -> Result<Nvml, InventoryError> {
    Nvml::builder()
        .lib_path(libnvml.as_os_str())
        .init()
        .map_err(|e| nvml_error(libnvml, format!("init: {e}")))
}

pub fn nvml_error(libnvml: &Path, message: String) -> InventoryError {
    InventoryError::Nvml {
        path: libnvml.to_path_buf(),
        message,
    }
}

/// Fills each GPU's architecture and brand from NVML, matching GPUs by UUID.
pub fn fill_gpu_details(
    nvml: &Nvml,
    libnvml: &Path,
    gpus: &mut [Gpu],
) -> Result<(), InventoryError> {
    let error = |message: String| nvml_error(libnvml, message);
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
        let brand = match device.brand() {
            Ok(brand) => brand_name(brand),
            // A brand newer than this build knows: nothing it could be required as.
            Err(NvmlError::UnexpectedVariant(_)) => UNKNOWN_BRAND,
            Err(e) => return Err(error(format!("brand of {uuid}: {e}"))),
        };
        gpu.brand = Some(brand.to_string());
    }
    Ok(())
}

/// What a GPU whose brand NVML does not name is called (libnvidia-container's word).
const UNKNOWN_BRAND: &str = "unknown";

/// The name `brand=` requirements compare against: the NVIDIA Container Toolkit's token for
/// each of NVML's brands (`nvidia-container-toolkit`, `internal/modifier`, the lower-cased
/// names go-nvlib gives), not the Rust enum's names (`VApps` is the toolkit's `nvidiavapps`).
/// Compared without case, so libnvidia-container's `Tesla`, `GRID`, `TITAN` match too.
pub fn brand_name(brand: Brand) -> &'static str {
    match brand {
        Brand::Unknown => UNKNOWN_BRAND,
        Brand::Quadro => "quadro",
        Brand::Tesla => "tesla",
        Brand::NVS => "nvs",
        Brand::GRID => "grid",
        Brand::GeForce => "geforce",
        Brand::Titan => "titan",
        Brand::VApps => "nvidiavapps",
        Brand::VPC => "nvidiavpc",
        Brand::VCS => "nvidiavcs",
        Brand::VWS => "nvidiavws",
        // The same NVML value (11) under its old and new name.
        Brand::CloudGaming | Brand::VGaming => "nvidiacloudgaming",
        Brand::QuadroRTX => "quadrortx",
        Brand::NvidiaRTX => "nvidiartx",
        Brand::Nvidia => "nvidia",
        Brand::GeForceRTX => "geforcertx",
        Brand::TitanRTX => "titanrtx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of NVML's `nvmlBrandType_t` (nvml.h), as the driver reports it, and the
    /// name a `brand=` requirement matches it by.
    #[test]
    fn every_nvml_brand_has_the_incumbents_name() {
        let table: [(u32, &str, &str); 17] = [
            (0, "NVML_BRAND_UNKNOWN", "unknown"),
            (1, "NVML_BRAND_QUADRO", "quadro"),
            (2, "NVML_BRAND_TESLA", "tesla"),
            (3, "NVML_BRAND_NVS", "nvs"),
            (4, "NVML_BRAND_GRID", "grid"),
            (5, "NVML_BRAND_GEFORCE", "geforce"),
            (6, "NVML_BRAND_TITAN", "titan"),
            (7, "NVML_BRAND_NVIDIA_VAPPS", "nvidiavapps"),
            (8, "NVML_BRAND_NVIDIA_VPC", "nvidiavpc"),
            (9, "NVML_BRAND_NVIDIA_VCS", "nvidiavcs"),
            (10, "NVML_BRAND_NVIDIA_VWS", "nvidiavws"),
            (
                11,
                "NVML_BRAND_NVIDIA_CLOUD_GAMING (= _VGAMING)",
                "nvidiacloudgaming",
            ),
            (12, "NVML_BRAND_QUADRO_RTX", "quadrortx"),
            (13, "NVML_BRAND_NVIDIA_RTX", "nvidiartx"),
            (14, "NVML_BRAND_NVIDIA", "nvidia"),
            (15, "NVML_BRAND_GEFORCE_RTX", "geforcertx"),
            (16, "NVML_BRAND_TITAN_RTX", "titanrtx"),
        ];
        for (index, (raw, c_name, name)) in table.iter().enumerate() {
            assert_eq!(*raw as usize, index, "the table lists every value in order");
            let brand = Brand::try_from(*raw).unwrap_or_else(|e| panic!("{c_name}: {e}"));
            assert_eq!(brand_name(brand), *name, "{c_name} ({brand:?})");
        }
        // The deprecated alias of value 11 has the same name.
        assert_eq!(brand_name(Brand::VGaming), "nvidiacloudgaming");
        // A value past the table is not a brand this build knows.
        assert!(Brand::try_from(17).is_err());
    }
}
