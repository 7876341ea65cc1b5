//! What the plan needs to know about the container's own files, read through the rootfs
//! descriptor opened inside the container's mount namespace (`ContainerHandle::rootfs`), with
//! every path resolved as if the rootfs were `/`. Only names and file types are read: nothing
//! of the image is opened for reading or run.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::cuda_compat::newest_libcuda_version;
use super::resolve_in_root;
use crate::plan::{ContainerLayout, CudaCompat};

/// Reads the layout: Debian-family or not, the newest compat libcuda in `cuda_compat_dir`.
/// `root_ids` and `fresh_tmpfs` come from the container handle and the spec.
pub fn read(
    rootfs: &impl AsFd,
    cuda_compat_dir: &Path,
    root_ids: (u32, u32),
    fresh_tmpfs: Vec<PathBuf>,
) -> ContainerLayout {
    let is_debian = resolve_in_root(rootfs, Path::new("/etc/debian_version")).is_ok();
    let mut layout = ContainerLayout::for_rootfs(is_debian);
    layout.root_ids = root_ids;
    layout.fresh_tmpfs = fresh_tmpfs;
    if !cuda_compat_dir.as_os_str().is_empty() {
        let names = file_names(rootfs, cuda_compat_dir);
        layout.cuda_compat =
            newest_libcuda_version(names.iter().map(String::as_str)).map(|version| CudaCompat {
                dir: cuda_compat_dir.to_path_buf(),
                version: version.to_string(),
            });
    }
    layout
}

/// The names in directory `inner`; empty when it is not a readable directory.
fn file_names(rootfs: &impl AsFd, inner: &Path) -> Vec<String> {
    let Ok(path_fd) = resolve_in_root(rootfs, inner) else {
        return Vec::new();
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(dir_fd) = rustix::fs::openat(&path_fd, ".", flags, Mode::empty()) else {
        return Vec::new();
    };
    let Ok(dir) = rustix::fs::Dir::read_from(&dir_fd) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().ok().map(str::to_string))
        .filter(|name| name != "." && name != "..")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_family_and_the_newest_compat_libcuda_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/local/cuda/compat")).unwrap();
        for name in [
            "libcuda.so.1",
            "libcuda.so.590.48.01",
            "libcuda.so.575.1",
            "libcuda.so.600",
        ] {
            std::fs::write(root.join("usr/local/cuda/compat").join(name), b"").unwrap();
        }
        let fd = crate::inventory::open_root_dir(root).unwrap();
        let compat = Path::new("/usr/local/cuda/compat");
        let layout = read(&fd, compat, (5, 6), vec!["/dev".into()]);
        assert_eq!(layout.lib_dir, PathBuf::from("/usr/lib64"));
        assert_eq!(layout.root_ids, (5, 6));
        assert_eq!(layout.fresh_tmpfs, [PathBuf::from("/dev")]);
        assert_eq!(layout.cuda_compat.unwrap().version, "590.48.01");
        std::fs::write(root.join("etc/debian_version"), "12\n").unwrap();
        let layout = read(&fd, Path::new(""), (0, 0), Vec::new());
        assert_eq!(layout.lib_dir, PathBuf::from("/usr/lib/x86_64-linux-gnu"));
        assert_eq!(layout.cuda_compat, None);
    }
}
