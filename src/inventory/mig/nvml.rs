//! The NVML calls of MIG enumeration, and nothing else: they return plain data.
//!
//! nvml-wrapper 0.11 wraps `nvmlDeviceGetMigMode` and `nvmlDeviceGetUUID` but not the calls on
//! MIG handles. Those four come from the same library through libloading: `dlopen` hands back
//! the library nvml-wrapper already loaded and initialised, so they share its state, and they
//! are called on the raw handles nvml-wrapper gives out.

use std::ffi::{c_uint, c_void};
use std::path::Path;

use libloading::{Library, Symbol};
use nvml_wrapper::error::{nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};

use super::{NvmlMigDevice, NvmlMigGpu};
use crate::inventory::InventoryError;

/// `NVML_DEVICE_MIG_ENABLE`.
const MIG_ENABLED: u32 = 1;
/// MIG device slots probed per GPU at most: the driver reports 7 on A100/H100; the bound only
/// keeps a broken library from making the hook loop for hours.
const MAX_SLOTS: c_uint = 64;

type Handle = *mut c_void;
type GetCount = unsafe extern "C" fn(Handle, *mut c_uint) -> c_uint;
type GetByIndex = unsafe extern "C" fn(Handle, c_uint, *mut Handle) -> c_uint;
type GetId = unsafe extern "C" fn(Handle, *mut c_uint) -> c_uint;

struct MigCalls<'lib> {
    max_count: Symbol<'lib, GetCount>,
    by_index: Symbol<'lib, GetByIndex>,
    gpu_instance: Symbol<'lib, GetId>,
    compute_instance: Symbol<'lib, GetId>,
}

impl<'lib> MigCalls<'lib> {
    fn load(library: &'lib Library) -> Result<MigCalls<'lib>, libloading::Error> {
        // SAFETY: the types are NVML's documented C signatures (nvml.h): nvmlReturn_t is an
        // unsigned int, nvmlDevice_t a pointer.
        unsafe {
            Ok(MigCalls {
                max_count: library.get(b"nvmlDeviceGetMaxMigDeviceCount\0")?,
                by_index: library.get(b"nvmlDeviceGetMigDeviceHandleByIndex\0")?,
                gpu_instance: library.get(b"nvmlDeviceGetGpuInstanceId\0")?,
                compute_instance: library.get(b"nvmlDeviceGetComputeInstanceId\0")?,
            })
        }
    }
}

/// Every GPU NVML knows, with its MIG mode and, when enabled, its MIG devices. `nvml` is the
/// run's NVML session, initialised from `libnvml`.
pub fn enumerate(nvml: &Nvml, libnvml: &Path) -> Result<Vec<NvmlMigGpu>, InventoryError> {
    let error = |what: String, message: String| InventoryError::Nvml {
        path: libnvml.to_path_buf(),
        message: format!("{what}: {message}"),
    };
    // SAFETY: the host driver's own NVML, already loaded (and its initialisers run) by
    // nvml-wrapper for `nvml`; this only takes another reference to it.
    let library =
        unsafe { Library::new(libnvml) }.map_err(|e| error("dlopen".into(), e.to_string()))?;
    let mut calls: Option<MigCalls> = None;
    let count = nvml
        .device_count()
        .map_err(|e| error("device count".into(), e.to_string()))?;
    let mut gpus = Vec::new();
    for i in 0..count {
        let device = nvml
            .device_by_index(i)
            .map_err(|e| error(format!("GPU {i}"), e.to_string()))?;
        let uuid = device
            .uuid()
            .map_err(|e| error(format!("GPU {i}"), e.to_string()))?;
        let enabled = match device.mig_mode() {
            Ok(mode) => mode.current == MIG_ENABLED,
            // A GPU without MIG support.
            Err(NvmlError::NotSupported) => false,
            Err(e) => return Err(error(format!("MIG mode of {uuid}"), e.to_string())),
        };
        let devices = if enabled {
            let calls = match &calls {
                Some(calls) => calls,
                None => calls.insert(
                    MigCalls::load(&library)
                        .map_err(|e| error("MIG entry points".into(), e.to_string()))?,
                ),
            };
            mig_devices(nvml, &device, calls)
                .map_err(|e| error(format!("MIG devices of {uuid}"), e.to_string()))?
        } else {
            Vec::new()
        };
        gpus.push(NvmlMigGpu {
            uuid,
            enabled,
            devices,
        });
    }
    Ok(gpus)
}

fn mig_devices(
    nvml: &Nvml,
    device: &Device,
    calls: &MigCalls,
) -> Result<Vec<NvmlMigDevice>, NvmlError> {
    // SAFETY: a live handle of this initialised NVML.
    let parent: Handle = unsafe { device.handle() }.cast();
    let mut max: c_uint = 0;
    // SAFETY: `max` is a valid out-pointer for the call.
    nvml_try(unsafe { (calls.max_count)(parent, &mut max) })?;
    let mut devices = Vec::new();
    for index in 0..max.min(MAX_SLOTS) {
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer for the call.
        match nvml_try(unsafe { (calls.by_index)(parent, index, &mut handle) }) {
            Ok(()) => {}
            // An empty slot: MIG device indices need not be contiguous.
            Err(NvmlError::NotFound) => continue,
            Err(e) => return Err(e),
        }
        let id = |get: &Symbol<GetId>| {
            let mut id: c_uint = 0;
            // SAFETY: `handle` was just returned by NVML, `id` is a valid out-pointer.
            nvml_try(unsafe { get(handle, &mut id) }).map(|()| id)
        };
        let gpu_instance = id(&calls.gpu_instance)?;
        let compute_instance = id(&calls.compute_instance)?;
        // SAFETY: NVML returned this MIG handle; it stays valid while `nvml` is initialised.
        let mig = unsafe { Device::new(handle.cast(), nvml) };
        devices.push(NvmlMigDevice {
            index,
            uuid: mig.uuid()?,
            gpu_instance,
            compute_instance,
        });
    }
    Ok(devices)
}
