//! The driver's libraries, from the host's ld cache: the entries whose soname is in the
//! catalog, resolved inside the driver root, of this driver version.

use std::path::{Path, PathBuf};

use super::{catalog, ldcache, root_paths, DriverLibrary, InventoryError, InventoryNeeds};
use crate::config::DriverConfig;

/// The catalog prefix a driver library's soname starts with (`libcuda.so` for
/// `libcuda.so.1`), if it is one.
fn library_prefix(soname: &[u8]) -> Option<&'static str> {
    catalog::all_library_prefixes().find(|p| {
        soname
            .strip_prefix(p.as_bytes())
            .is_some_and(|rest| rest.first() == Some(&b'.'))
    })
}

pub(super) fn read_libraries(
    config: &DriverConfig,
    driver_version: &str,
    needs: &InventoryNeeds,
) -> Result<Vec<DriverLibrary>, InventoryError> {
    let cache_path = root_paths::join(&config.root, &config.ldcache);
    let data = std::fs::read(&cache_path).map_err(|e| InventoryError::LdCache {
        path: cache_path.clone(),
        message: e.to_string(),
    })?;
    // Only the driver's entries are copied out of the host's (possibly large) cache; of
    // those, only the ones `needs` asks for are resolved (four syscalls each).
    let (entries, unwanted): (Vec<_>, Vec<_>) =
        ldcache::parse_matching(&data, |soname| library_prefix(soname).is_some())
            .map_err(|e| InventoryError::LdCache {
                path: cache_path.clone(),
                message: e.to_string(),
            })?
            .into_iter()
            .filter_map(|e| library_prefix(e.soname.as_bytes()).map(|prefix| (prefix, e)))
            .partition(|(prefix, _)| needs.wants_library(prefix));
    let root = root_paths::DriverRoot::open(&config.root)?;
    let version_suffix = format!(".so.{driver_version}");
    let mut libraries: Vec<DriverLibrary> = Vec::new();
    for (prefix, entry) in entries {
        // The host's 64-bit ABI, or its 32-bit one (compat32); never x32 or a foreign one.
        let is_64bit = match crate::arch::Arch::host().library_abi(entry.flags) {
            crate::arch::LibraryAbi::Native => true,
            crate::arch::LibraryAbi::Compat32 => false,
            crate::arch::LibraryAbi::Foreign => continue,
        };
        // The cache lists a soname once per directory that has it (`/usr/lib64` and the
        // `/lib` link to it): the first of this driver's version wins, as for the loader.
        let found = |l: &DriverLibrary| l.soname == entry.soname && l.is_64bit == is_64bit;
        if libraries.iter().any(found) {
            continue;
        }
        let Some((host_path, file_name)) = this_version(&root, &entry.path, &version_suffix) else {
            continue;
        };
        if libraries
            .iter()
            .any(|l| l.file_name == file_name && l.is_64bit == is_64bit)
        {
            continue;
        }
        libraries.push(DriverLibrary {
            prefix,
            host_path,
            file_name,
            is_64bit,
            soname: entry.soname,
            cache_flags: entry.flags as i32,
            osversion: entry.osversion,
        });
    }
    // None of the libraries asked for is there: an error only if the driver has none at all
    // (a request for capabilities this driver does not ship just gets none of their files).
    let has_others = || {
        unwanted
            .iter()
            .any(|(_, e)| this_version(&root, &e.path, &version_suffix).is_some())
    };
    if libraries.is_empty() && !has_others() {
        return Err(InventoryError::NoLibraries {
            version: driver_version.to_string(),
            cache: cache_path,
        });
    }
    Ok(libraries)
}

/// The host path and file name of the library a cache entry's `path` resolves to, if it is a
/// file of this driver version: a stale library of an older driver left beside it would fail
/// at run time with a version mismatch.
fn this_version(
    root: &root_paths::DriverRoot,
    path: &Path,
    version_suffix: &str,
) -> Option<(PathBuf, String)> {
    let host_path = root.regular_file(path)?;
    let file_name = host_path.file_name()?.to_str()?;
    let file_name = file_name
        .ends_with(version_suffix)
        .then(|| file_name.to_string())?;
    Some((host_path, file_name))
}
