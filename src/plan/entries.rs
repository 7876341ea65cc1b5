//! The values a plan is made of: what each mount carries, what its target must be, its flags,
//! who chose its path and whether the container can start without it. Every applier (the
//! hook, the CDI generator, `gpuhook list`) reads these; none decides them again.

use std::path::PathBuf;

use crate::inventory::DeviceNode;

/// What a bind mount carries; decides its flags and its place in the order of mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// Read-only, nosuid, nodev regular file (library, utility, firmware, loader file).
    File,
    /// A device node: read-write, nosuid, noexec.
    Device,
    /// A socket or pipe directory the container talks to the host through.
    Ipc,
}

/// What must be at a mount target; an absent one is created as an empty file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    /// Anything but a directory (an empty regular file is created when absent).
    NonDirectory,
    Directory,
}

/// The flags a bind mount gets, set before anything can see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFlags {
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl MountKind {
    pub fn flags(self) -> MountFlags {
        match self {
            MountKind::File => MountFlags {
                read_only: true,
                nosuid: true,
                nodev: true,
                noexec: false,
            },
            // nodev cleared so the node opens; nothing on it is executable.
            MountKind::Device => MountFlags {
                read_only: false,
                nosuid: true,
                nodev: false,
                noexec: true,
            },
            // Sockets must be writable to connect to.
            MountKind::Ipc => MountFlags {
                read_only: false,
                nosuid: true,
                nodev: true,
                noexec: true,
            },
        }
    }
}

impl MountFlags {
    /// The same flags as CDI / OCI mount options.
    pub fn options(self) -> Vec<String> {
        let mut options = Vec::new();
        if self.read_only {
            options.push("ro");
        }
        for (set, name) in [
            (self.nosuid, "nosuid"),
            (self.nodev, "nodev"),
            (self.noexec, "noexec"),
        ] {
            if set {
                options.push(name);
            }
        }
        options.push("bind");
        options.into_iter().map(String::from).collect()
    }
}

/// Who chose a target path: the driver layout (fixed by gpuhook and its config), or the
/// container, through an environment variable (then the path is checked harder, see
/// `plan::targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOrigin {
    Driver,
    Tenant(&'static str),
}

/// What happens when a target lands on a filesystem gpuhook places nothing on (a volume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The container does not start without it.
    Required,
    /// Left out (and logged): an endpoint the container can live without.
    Optional,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub kind: MountKind,
    pub target: TargetType,
    pub flags: MountFlags,
    pub origin: TargetOrigin,
    pub placement: Placement,
}

impl MountEntry {
    /// A driver file (library, utility, firmware, loader file) at `container_path`.
    pub fn file(host_path: PathBuf, container_path: PathBuf) -> MountEntry {
        MountEntry {
            host_path,
            container_path,
            kind: MountKind::File,
            target: TargetType::NonDirectory,
            flags: MountKind::File.flags(),
            origin: TargetOrigin::Driver,
            placement: Placement::Required,
        }
    }

    /// A device node at its `/dev` path.
    pub fn device(node: &DeviceNode) -> MountEntry {
        MountEntry {
            host_path: node.host_path.clone(),
            container_path: node.path.clone(),
            kind: MountKind::Device,
            target: TargetType::NonDirectory,
            flags: MountKind::Device.flags(),
            origin: TargetOrigin::Driver,
            placement: Placement::Required,
        }
    }

    /// A socket (`NonDirectory`) or pipe directory the container may use when it can.
    pub fn ipc(
        host_path: PathBuf,
        container_path: PathBuf,
        target: TargetType,
        origin: TargetOrigin,
    ) -> MountEntry {
        MountEntry {
            host_path,
            container_path,
            kind: MountKind::Ipc,
            target,
            flags: MountKind::Ipc.flags(),
            origin,
            placement: Placement::Optional,
        }
    }

    /// Where it goes in the order of mounts: device nodes, then files, then directories, so
    /// that no mount made earlier can be in the way of one made later.
    pub fn stage(&self) -> u8 {
        match (self.kind, self.target) {
            (MountKind::Device, _) => 0,
            (_, TargetType::NonDirectory) => 1,
            (_, TargetType::Directory) => 2,
        }
    }
}

/// Facts about the container the plan depends on, read from its rootfs and spec by
/// `inventory::container_layout` (or assumed, for CDI and `gpuhook list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLayout {
    pub lib_dir: PathBuf,
    pub lib32_dir: PathBuf,
    /// Where the image's X server looks for modules.
    pub xorg_modules_dir: PathBuf,
    /// The image's CUDA forward-compatibility libraries, if it carries any.
    pub cuda_compat: Option<CudaCompat>,
    /// The host uid and gid of the container's root: what the ldconfig child runs as.
    pub root_ids: (u32, u32),
    /// Destinations of the spec's `tmpfs` mounts: filesystems the runtime makes fresh for this
    /// container, where targets may be created (as on the image's own rootfs).
    pub fresh_tmpfs: Vec<PathBuf>,
}

/// `libcuda.so.<version>` found in the image's compat directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaCompat {
    /// The directory, inside the container.
    pub dir: PathBuf,
    /// The newest compat libcuda's version (its driver version, e.g. `590.48.01`).
    pub version: String,
}

impl ContainerLayout {
    /// Debian-family images keep libraries in the multiarch dirs of the host's architecture;
    /// the others in `lib64`/`lib`.
    pub fn for_rootfs(is_debian: bool) -> ContainerLayout {
        ContainerLayout::for_rootfs_on(is_debian, crate::arch::Arch::host())
    }

    /// The same for an image of architecture `arch`.
    pub fn for_rootfs_on(is_debian: bool, arch: crate::arch::Arch) -> ContainerLayout {
        let (lib_dir, lib32_dir, xorg) = if is_debian {
            (
                PathBuf::from("/usr/lib").join(arch.multiarch()),
                PathBuf::from("/usr/lib").join(arch.multiarch32()),
                "/usr/lib/xorg/modules",
            )
        } else {
            (
                "/usr/lib64".into(),
                "/usr/lib".into(),
                "/usr/lib64/xorg/modules",
            )
        };
        ContainerLayout {
            lib_dir,
            lib32_dir,
            xorg_modules_dir: xorg.into(),
            cuda_compat: None,
            root_ids: (0, 0),
            fresh_tmpfs: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_their_cdi_options_agree() {
        assert_eq!(
            MountKind::File.flags().options(),
            ["ro", "nosuid", "nodev", "bind"]
        );
        assert_eq!(
            MountKind::Ipc.flags().options(),
            ["nosuid", "nodev", "noexec", "bind"]
        );
        assert_eq!(
            MountKind::Device.flags().options(),
            ["nosuid", "noexec", "bind"]
        );
    }

    #[test]
    fn library_directories_follow_the_architecture() {
        use crate::arch::Arch;
        let arm = ContainerLayout::for_rootfs_on(true, Arch::Aarch64);
        assert_eq!(arm.lib_dir, PathBuf::from("/usr/lib/aarch64-linux-gnu"));
        assert_eq!(arm.lib32_dir, PathBuf::from("/usr/lib/arm-linux-gnueabihf"));
        let x86 = ContainerLayout::for_rootfs_on(true, Arch::X86_64);
        assert_eq!(x86.lib_dir, PathBuf::from("/usr/lib/x86_64-linux-gnu"));
        let rhel = ContainerLayout::for_rootfs_on(false, Arch::Aarch64);
        assert_eq!(rhel.lib_dir, PathBuf::from("/usr/lib64"));
    }

    #[test]
    fn directories_come_last() {
        let file = MountEntry::file("/h/a".into(), "/c/a".into());
        let dir = MountEntry::ipc(
            "/h/d".into(),
            "/c/d".into(),
            TargetType::Directory,
            TargetOrigin::Driver,
        );
        let socket = MountEntry::ipc(
            "/h/s".into(),
            "/c/s".into(),
            TargetType::NonDirectory,
            TargetOrigin::Driver,
        );
        assert!(file.stage() < dir.stage() && socket.stage() < dir.stage());
    }
}
