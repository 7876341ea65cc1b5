//! Writing a file so that readers see either the old or the new contents, never half of it:
//! the bytes go to a temporary file in the same directory, which is synced and renamed over
//! the target. Used for the container's `config.json` (the shim), engine configs
//! (`configure`) and CDI specs (`cdi generate --output`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What mode the new file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The replaced file's permissions, or this mode when there is no file yet.
    KeepOr(u32),
    /// Exactly this mode.
    Exactly(u32),
}

/// Writes `bytes` to `path` atomically, creating missing parent directories when asked.
pub fn write_atomically(
    path: &Path,
    bytes: &[u8],
    mode: Mode,
    create_parents: bool,
) -> std::io::Result<()> {
    replace(path, bytes, mode, create_parents, true)
}

/// [`write_atomically`] without the flush to disk, for a file that does not outlive what it
/// is for (a bundle's `config.json` the shim edits: a crash takes the container with it).
/// An fsync there waits for every other dirty page of the filesystem, often milliseconds.
pub fn replace_transient(path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    replace(path, bytes, mode, false, false)
}

fn replace(
    path: &Path,
    bytes: &[u8],
    mode: Mode,
    create_parents: bool,
    durable: bool,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if create_parents {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    if durable {
        file.as_file().sync_all()?;
    }
    let mode = match mode {
        Mode::Exactly(mode) => mode,
        Mode::KeepOr(default) => std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(default),
    };
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode))?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_keeps_or_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.json");
        assert!(write_atomically(&path, b"x", Mode::KeepOr(0o600), false).is_err());
        write_atomically(&path, b"one", Mode::KeepOr(0o600), true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"two", Mode::KeepOr(0o600), false).unwrap();
        assert_eq!(
            (std::fs::read(&path).unwrap(), mode(&path)),
            (b"two".to_vec(), 0o640)
        );
        write_atomically(&path, b"three", Mode::Exactly(0o644), false).unwrap();
        assert_eq!(mode(&path), 0o644);
        // No temporary file is left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
