//! Which driver files belong to which capability (libnvidia-container's lists, see
//! `shared/reference.md`). Pure data, shared by the inventory (what to look for) and the plan
//! (what a capability set brings).

use crate::request::DriverCapability;

/// Library soname prefixes per capability (`libcuda.so` matches `libcuda.so.580.159.04`).
pub fn libraries(capability: DriverCapability) -> &'static [&'static str] {
    match capability {
        DriverCapability::Utility => &["libnvidia-ml.so", "libnvidia-cfg.so", "libnvidia-nscq.so"],
        DriverCapability::Compute => &[
            "libcuda.so",
            "libcudadebugger.so",
            "libnvidia-opencl.so",
            "libnvidia-gpucomp.so",
            "libnvidia-ptxjitcompiler.so",
            "libnvidia-fatbinaryloader.so",
            "libnvidia-allocator.so",
            "libnvidia-compiler.so",
            "libnvidia-pkcs11.so",
            "libnvidia-pkcs11-openssl3.so",
            "libnvidia-nvvm.so",
            "libnvidia-tileiras.so",
        ],
        DriverCapability::Video => &[
            "libvdpau_nvidia.so",
            "libnvidia-encode.so",
            "libnvidia-opticalflow.so",
            "libnvcuvid.so",
        ],
        DriverCapability::Graphics => &[
            "libnvidia-eglcore.so",
            "libnvidia-glcore.so",
            "libnvidia-tls.so",
            "libnvidia-glsi.so",
            "libnvidia-fbc.so",
            "libnvidia-ifr.so",
            "libnvidia-rtcore.so",
            "libnvoptix.so",
            "libGLX_nvidia.so",
            "libEGL_nvidia.so",
            "libGLESv2_nvidia.so",
            "libGLESv1_CM_nvidia.so",
            "libnvidia-glvkspirv.so",
            "libnvidia-cbl.so",
        ],
        DriverCapability::Ngx => &["libnvidia-ngx.so"],
        // compat32 brings the 32-bit builds of the other capabilities' libraries; display
        // brings X modules, which are not in the ld cache (a later capability issue).
        DriverCapability::Compat32 | DriverCapability::Display => &[],
    }
}

/// Utilities per capability, mounted into the container's `/usr/bin`.
pub fn binaries(capability: DriverCapability) -> &'static [&'static str] {
    match capability {
        DriverCapability::Utility => &[
            "nvidia-smi",
            "nvidia-debugdump",
            "nvidia-persistenced",
            "nv-fabricmanager",
        ],
        DriverCapability::Compute => &[MPS_CONTROL, "nvidia-cuda-mps-server"],
        _ => &[],
    }
}

/// The MPS control daemon (a memory cap may start one).
pub const MPS_CONTROL: &str = "nvidia-cuda-mps-control";

/// Every library prefix of every capability.
pub fn all_library_prefixes() -> impl Iterator<Item = &'static str> {
    DriverCapability::ALL
        .into_iter()
        .flat_map(|c| libraries(c).iter().copied())
}

/// Every utility of every capability.
pub fn all_binaries() -> impl Iterator<Item = &'static str> {
    DriverCapability::ALL
        .into_iter()
        .flat_map(|c| binaries(c).iter().copied())
}

/// The capability whose library list holds this prefix.
pub fn capability_of_library(prefix: &str) -> Option<DriverCapability> {
    DriverCapability::ALL
        .into_iter()
        .find(|c| libraries(*c).contains(&prefix))
}

/// The capability whose utility list holds this name.
pub fn capability_of_binary(name: &str) -> Option<DriverCapability> {
    DriverCapability::ALL
        .into_iter()
        .find(|c| binaries(*c).contains(&name))
}

/// Host paths (inside the driver root) of the IPC endpoints a container may use.
pub const PERSISTENCED_SOCKET: &str = "/run/nvidia-persistenced/socket";
pub const FABRICMANAGER_SOCKET: &str = "/run/nvidia-fabricmanager/socket";

/// The capability a control device comes with, as libnvidia-container gives them: the uvm
/// nodes with `compute` (CUDA's unified memory), `nvidia-modeset` with `display`; `None`
/// (`nvidiactl`): every container given a GPU.
pub fn control_device_capability(name: &str) -> Option<DriverCapability> {
    match name {
        "nvidia-uvm" | "nvidia-uvm-tools" => Some(DriverCapability::Compute),
        "nvidia-modeset" => Some(DriverCapability::Display),
        _ => None,
    }
}

/// The capability an IPC endpoint comes with: the persistenced socket with `utility`
/// (nvidia-smi, NVML), the fabric manager socket and the MPS pipes with `compute`.
pub fn ipc_capability(container_path: &std::path::Path) -> DriverCapability {
    if container_path == std::path::Path::new(PERSISTENCED_SOCKET) {
        DriverCapability::Utility
    } else {
        DriverCapability::Compute
    }
}

/// Where a loader or server file goes in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupportPlace {
    /// At this absolute path.
    Absolute(std::path::PathBuf),
    /// At this path under the container's 64-bit library directory (the GBM backend).
    LibDir(std::path::PathBuf),
    /// At this path under the container's X server module directory.
    XorgModules(std::path::PathBuf),
}

/// Graphics loaders' files, searched under each `driver.share-dirs` entry by this relative
/// path, and put at the standard `/usr/share` place (the loaders read both `/etc` and
/// `/usr/share`). The ICD files name their library by soname, found through the ld cache.
pub const GRAPHICS_SHARE_FILES: [&str; 7] = [
    "vulkan/icd.d/nvidia_icd.json",
    "vulkan/implicit_layer.d/nvidia_layers.json",
    "glvnd/egl_vendor.d/10_nvidia.json",
    "egl/egl_external_platform.d/10_nvidia_wayland.json",
    "egl/egl_external_platform.d/15_nvidia_gbm.json",
    "egl/egl_external_platform.d/20_nvidia_xcb.json",
    "egl/egl_external_platform.d/20_nvidia_xlib.json",
];

/// The GBM backend, next to the driver's 64-bit libraries.
pub const GBM_BACKEND: &str = "gbm/nvidia-drm_gbm.so";

/// X server modules for `display`, under each `driver.xorg-module-dirs` entry (`{version}` is
/// the driver version).
pub const XORG_MODULES: [&str; 2] = [
    "drivers/nvidia_drv.so",
    "extensions/libglxserver_nvidia.so.{version}",
];
