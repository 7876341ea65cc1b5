//! Finding the graphics and display files that are not libraries in the ld cache: Vulkan and
//! EGL loader files under the share directories, the GBM backend next to the driver's
//! libraries, and the X server modules. All lookups resolve inside the driver root.

use std::path::Path;

use super::root_paths::DriverRoot;
use super::{DriverLibrary, InventoryNeeds, SupportFile};
use crate::catalog::{self, SupportPlace};
use crate::config::DriverConfig;
use crate::request::DriverCapability;

pub fn find(
    root: &DriverRoot,
    config: &DriverConfig,
    libraries: &[DriverLibrary],
    driver_version: &str,
    needs: &InventoryNeeds,
) -> Vec<SupportFile> {
    let mut files = Vec::new();
    if needs.wants(DriverCapability::Graphics) {
        graphics_files(root, config, libraries, &mut files);
    }
    if needs.wants(DriverCapability::Display) {
        xorg_modules(root, config, driver_version, &mut files);
    }
    files
}

/// The Vulkan, EGL and GLVND loader files and the GBM backend.
fn graphics_files(
    root: &DriverRoot,
    config: &DriverConfig,
    libraries: &[DriverLibrary],
    files: &mut Vec<SupportFile>,
) {
    for relative in catalog::GRAPHICS_SHARE_FILES {
        // The first share directory that has it wins (`/etc` overrides `/usr/share`).
        let host = config
            .share_dirs
            .iter()
            .find_map(|dir| root.regular_file(&dir.join(relative)));
        if let Some(host_path) = host {
            files.push(SupportFile {
                capability: DriverCapability::Graphics,
                host_path,
                place: SupportPlace::Absolute(Path::new("/usr/share").join(relative)),
            });
        }
    }
    // The GBM backend lives in a `gbm/` directory beside the 64-bit driver libraries. The
    // library paths are host paths (resolved through the root); their directory, seen from
    // inside the root, is what the root lookup needs.
    let mut dirs: Vec<&Path> = Vec::new();
    for dir in libraries
        .iter()
        .filter(|l| l.is_64bit)
        .filter_map(|l| l.host_path.parent())
    {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let gbm = dirs
        .into_iter()
        .filter_map(|dir| dir.strip_prefix(&config.root).ok())
        .find_map(|dir| root.regular_file(&Path::new("/").join(dir).join(catalog::GBM_BACKEND)));
    if let Some(host_path) = gbm {
        files.push(SupportFile {
            capability: DriverCapability::Graphics,
            host_path,
            place: SupportPlace::LibDir(catalog::GBM_BACKEND.into()),
        });
    }
}

/// The X server's driver modules of this driver version.
fn xorg_modules(
    root: &DriverRoot,
    config: &DriverConfig,
    driver_version: &str,
    files: &mut Vec<SupportFile>,
) {
    for module in catalog::XORG_MODULES {
        let relative = module.replace("{version}", driver_version);
        let host = config
            .xorg_module_dirs
            .iter()
            .find_map(|dir| root.regular_file(&dir.join(&relative)));
        if let Some(host_path) = host {
            files.push(SupportFile {
                capability: DriverCapability::Display,
                host_path,
                place: SupportPlace::XorgModules(relative.into()),
            });
        }
    }
}
