//! The driver's files besides its libraries and device nodes: utilities, firmware, the IPC
//! sockets and MPS pipe directory, graphics and display files. The runtime shim needs none of
//! them (see [`super::InventoryNeeds::devices_only`]).

use std::path::Path;

use super::{
    catalog, root_paths, support, DriverLibrary, HostFile, InventoryError, InventoryNeeds,
    SupportFile, Utilities,
};
use crate::config::DriverConfig;

/// The driver's files besides its libraries (see [`Inventory`]'s fields of these names).
#[derive(Debug, Default)]
pub(super) struct DriverFiles {
    pub binaries: Utilities,
    pub skipped_binaries: Utilities,
    pub firmware: Vec<HostFile>,
    pub ipc: Vec<HostFile>,
    pub mps_pipe_dir: Option<HostFile>,
    pub support_files: Vec<SupportFile>,
}

impl DriverFiles {
    pub(super) fn read(
        config: &DriverConfig,
        libraries: &[DriverLibrary],
        driver_version: &str,
        needs: &InventoryNeeds,
    ) -> Result<DriverFiles, InventoryError> {
        let root = root_paths::DriverRoot::open(&config.root)?;
        let (binaries, skipped_binaries) = find_binaries(&root, config, needs);
        let found = |path: &Path, want_dir: bool| {
            root.existing(path)
                .filter(|host_path| host_path.is_dir() == want_dir)
                .map(|host_path| HostFile {
                    host_path,
                    container_path: path.to_path_buf(),
                })
        };
        Ok(DriverFiles {
            binaries,
            skipped_binaries,
            firmware: read_firmware(&root, config, driver_version),
            ipc: [catalog::PERSISTENCED_SOCKET, catalog::FABRICMANAGER_SOCKET]
                .iter()
                .filter_map(|path| found(Path::new(path), false))
                .collect(),
            mps_pipe_dir: found(&config.mps_pipe_dir, true),
            support_files: support::find(&root, config, libraries, driver_version, needs),
        })
    }
}

/// Each utility's first ELF executable in `driver.binary-dirs`; and, for a utility with none,
/// the first non-ELF file of its name (a host wrapper script, skipped on purpose).
fn find_binaries(
    root: &root_paths::DriverRoot,
    config: &DriverConfig,
    needs: &InventoryNeeds,
) -> (Utilities, Utilities) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for name in catalog::all_binaries().filter(|name| needs.wants_binary(name)) {
        let candidates = || config.binary_dirs.iter().map(|dir| dir.join(name));
        if let Some(path) = candidates().find_map(|path| root.elf_executable(&path)) {
            found.push((name, path));
        } else if let Some(path) = candidates().find_map(|path| root.regular_file(&path)) {
            skipped.push((name, path));
        }
    }
    (found, skipped)
}

fn read_firmware(
    root: &root_paths::DriverRoot,
    config: &DriverConfig,
    version: &str,
) -> Vec<HostFile> {
    let mut firmware: Vec<HostFile> = Vec::new();
    for dir in &config.firmware_dirs {
        let version_dir = dir.join("nvidia").join(version);
        let Some(host_dir) = root.existing(&version_dir) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(&host_dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("gsp") && n.ends_with(".bin"))
            .collect();
        names.sort();
        for name in names {
            let container_path = Path::new("/lib/firmware/nvidia").join(version).join(&name);
            if firmware.iter().any(|f| f.container_path == container_path) {
                continue;
            }
            if let Some(host_path) = root.regular_file(&version_dir.join(&name)) {
                firmware.push(HostFile {
                    host_path,
                    container_path,
                });
            }
        }
    }
    firmware
}
