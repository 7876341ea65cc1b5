//! Resolving paths inside the driver root as if it were `/`.
//!
//! On a GPU Operator or GKE node the driver root is a directory whose symlinks are absolute
//! (`libcuda.so.1 -> /usr/lib/...`) and mean "inside this root". `openat2(RESOLVE_IN_ROOT)`
//! resolves them that way; `/proc/self/fd/N` then names the file actually reached.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::InventoryError;

/// `root` joined with an absolute in-root path (string join, for messages and plain reads).
pub fn join(root: &Path, inner: &Path) -> PathBuf {
    root.join(inner.strip_prefix("/").unwrap_or(inner))
}

/// Opens `inner` (a path inside `root_fd`) with `O_PATH`, symlinks resolved inside the root.
pub fn resolve_in_root(root_fd: impl AsFd, inner: &Path) -> rustix::io::Result<OwnedFd> {
    open_in_root(root_fd, inner, OFlags::PATH)
}

/// The same, opened with `flags` (and `O_CLOEXEC`).
fn open_in_root(root_fd: impl AsFd, inner: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let relative = inner.strip_prefix("/").unwrap_or(inner);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let root_fd = root_fd.as_fd();
    let mut attempts = 0;
    loop {
        let result = rustix::fs::openat2(
            root_fd,
            relative,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        );
        // EAGAIN: a `..` step raced with a mount or rename somewhere on the system, and the
        // kernel refused to guess; openat2(2) says to retry.
        match result {
            Err(rustix::io::Errno::AGAIN) if attempts < MAX_RESOLVE_ATTEMPTS => attempts += 1,
            other => return other,
        }
    }
}

/// Retries for a resolution that keeps racing with mount-table changes (each is cheap).
const MAX_RESOLVE_ATTEMPTS: u32 = 128;

/// An `O_PATH` fd of a trusted directory (a root that in-root paths are resolved from).
pub fn open_root_dir(path: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

pub struct DriverRoot {
    fd: OwnedFd,
}

impl DriverRoot {
    pub fn open(root: &Path) -> Result<DriverRoot, InventoryError> {
        let fd = open_root_dir(root).map_err(|e| InventoryError::Read {
            path: root.to_path_buf(),
            source: e.into(),
        })?;
        Ok(DriverRoot { fd })
    }

    /// The host path of `inner` if it exists (any type), symlinks resolved in the root.
    pub fn existing(&self, inner: &Path) -> Option<PathBuf> {
        let fd = resolve_in_root(&self.fd, inner).ok()?;
        host_path_of(&fd)
    }

    /// The host path of `inner` if it resolves to an ELF executable. Driver utilities are
    /// always ELF; a script of the same name is a host-side wrapper (it execs a host path
    /// that does not exist in a container), so it is skipped.
    pub fn elf_executable(&self, inner: &Path) -> Option<PathBuf> {
        // Resolved with `O_PATH` and known to be a regular file before it is opened for
        // reading (opening a device node can act on the device); reopened through its fd, so
        // the magic is read from the very file resolved, not from a path looked up again.
        let fd = self.open_regular(inner, OFlags::PATH)?;
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let file = rustix::fs::open(link, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let mut magic = [0u8; 4];
        let read = rustix::io::read(&file, &mut magic).ok()?;
        (read == magic.len() && &magic == b"\x7fELF")
            .then(|| host_path_of(&fd))
            .flatten()
    }

    /// The host path of `inner` if it resolves to a regular file.
    pub fn regular_file(&self, inner: &Path) -> Option<PathBuf> {
        host_path_of(&self.open_regular(inner, OFlags::PATH)?)
    }

    /// `inner` opened with `flags`, if it resolves to a regular file.
    fn open_regular(&self, inner: &Path, flags: OFlags) -> Option<OwnedFd> {
        let fd = open_in_root(&self.fd, inner, flags).ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        (FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile).then_some(fd)
    }
}

fn host_path_of(fd: &OwnedFd) -> Option<PathBuf> {
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
    std::fs::read_link(link).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_utility_that_is_not_a_regular_file_is_never_opened() {
        // A FIFO shows an open: a writer blocked in open(2) returns once a reader opened it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        let fifo = dir.path().join("usr/bin/nvidia-smi");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
        let (opened, writer_opened) = std::sync::mpsc::channel();
        let writer_path = fifo.clone();
        std::thread::spawn(move || {
            let writer = std::fs::OpenOptions::new().write(true).open(&writer_path);
            let _ = opened.send(writer.is_ok());
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        let root = DriverRoot::open(dir.path()).unwrap();
        assert_eq!(root.elf_executable(Path::new("/usr/bin/nvidia-smi")), None);
        assert_eq!(root.regular_file(Path::new("/usr/bin/nvidia-smi")), None);
        let wait = std::time::Duration::from_millis(300);
        assert!(
            writer_opened.recv_timeout(wait).is_err(),
            "the FIFO was opened for reading"
        );
        // Let the writer go.
        let _reader = std::fs::File::open(&fifo).unwrap();
        assert_eq!(
            writer_opened.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(true)
        );
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libcuda.so.580.1"), b"x").unwrap();
        symlink(
            "/usr/lib/libcuda.so.580.1",
            root.join("usr/lib/libcuda.so.1"),
        )
        .unwrap();
        symlink("../../../../../../etc/passwd", root.join("usr/lib/escape")).unwrap();
        let driver_root = DriverRoot::open(root).unwrap();
        assert_eq!(
            driver_root.regular_file(Path::new("/usr/lib/libcuda.so.1")),
            Some(root.join("usr/lib/libcuda.so.580.1"))
        );
        // `..` cannot climb out: it is clamped at the root, where etc/passwd does not exist.
        assert_eq!(driver_root.regular_file(Path::new("/usr/lib/escape")), None);
        assert_eq!(
            driver_root.regular_file(Path::new("/usr/lib")),
            None,
            "a directory"
        );
        std::fs::write(root.join("usr/lib/wrapper"), b"#!/bin/sh\nexec /opt/x\n").unwrap();
        std::fs::copy("/bin/sh", root.join("usr/lib/real")).unwrap();
        assert_eq!(
            driver_root.elf_executable(Path::new("/usr/lib/wrapper")),
            None
        );
        assert_eq!(
            driver_root.elf_executable(Path::new("/usr/lib/real")),
            Some(root.join("usr/lib/real"))
        );
        assert_eq!(
            driver_root.existing(Path::new("/usr/lib")),
            Some(root.join("usr/lib"))
        );
    }
}
