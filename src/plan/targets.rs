//! Where a plan may put things. Checked on the plan's paths here (lexically); the hook checks
//! the same again on what the paths resolve to in the rootfs (`apply::rootfs`), where image
//! symlinks come into play.
//! - Every target is absolute with plain components (no `.`, `..` or empty ones).
//! - No two targets overlap: none is another's ancestor and none appears twice (the
//!   `/proc/driver` mask included), so no target is ever resolved through a mount the hook
//!   made for another.
//! - No target is, or contains, what ldconfig writes or reads as its own (`/etc`, the
//!   directories it indexes): ldconfig never writes through a mount gpuhook made.
//! - A target the container chose (`CUDA_MPS_PIPE_DIRECTORY`) is not a system directory of the
//!   image or an ancestor of one, and not under `/proc`, `/sys` or `/dev`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::entries::{ContainerLayout, MountEntry, TargetOrigin};
use super::PlanError;

/// Directories a container-chosen target may never cover (the image's library directories
/// are added from its layout). `/tmp` and `/run` themselves are here; directories below them
/// are what such a variable is for.
pub const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
    "/var/run",
    "/var/tmp",
];

/// Pseudo filesystems no container-chosen target may be under.
const PSEUDO_ROOTS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// What ldconfig writes: its cache (and the temporary file it renames over it) in `/etc`.
pub const LDCONFIG_OUTPUTS: [&str; 1] = ["/etc"];

/// Checks the plan's targets; `proc_mask` is the `/proc/driver` mask's target (none for a
/// plan without NVIDIA GPUs).
pub fn check(
    mounts: &[MountEntry],
    proc_mask: Option<&Path>,
    ldcache_dirs: &[PathBuf],
    layout: &ContainerLayout,
) -> Result<(), PlanError> {
    for entry in mounts {
        check_plain(entry)?;
        if let TargetOrigin::Tenant(variable) = entry.origin {
            check_tenant_choice(variable, &entry.container_path, layout)?;
        }
    }
    // Sorted component-wise, a path's descendants follow it directly: comparing neighbours
    // finds every overlap in O(n log n).
    let mut targets: BTreeMap<&Path, TargetOrigin> = BTreeMap::new();
    let mut duplicate = None;
    let all = mounts
        .iter()
        .map(|m| (m.container_path.as_path(), m.origin))
        .chain(proc_mask.map(|p| (p, TargetOrigin::Driver)));
    for (path, origin) in all {
        if let Some(previous) = targets.insert(path, origin) {
            duplicate.get_or_insert((path, previous, origin));
        }
    }
    if let Some((path, a, b)) = duplicate {
        return Err(overlap(path, a, path, b));
    }
    let sorted: Vec<(&Path, TargetOrigin)> = targets.into_iter().collect();
    for pair in sorted.windows(2) {
        let ((first, a), (second, b)) = (pair[0], pair[1]);
        if second.starts_with(first) {
            return Err(overlap(first, a, second, b));
        }
    }
    let protected = LDCONFIG_OUTPUTS
        .iter()
        .map(PathBuf::from)
        .chain(ldcache_dirs.iter().cloned());
    for output in protected {
        if let Some((path, origin)) = sorted.iter().find(|(t, _)| output.starts_with(t)) {
            return Err(overlap(path, *origin, &output, TargetOrigin::Driver));
        }
    }
    Ok(())
}

fn check_plain(entry: &MountEntry) -> Result<(), PlanError> {
    let path = &entry.container_path;
    let plain = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if plain {
        return Ok(());
    }
    Err(match entry.origin {
        TargetOrigin::Tenant(variable) => PlanError::TenantTarget {
            variable,
            path: path.clone(),
            problem: "it must be an absolute path without `.` or `..` components".into(),
        },
        TargetOrigin::Driver => PlanError::Target {
            path: path.clone(),
            problem: "is not an absolute path of plain components".into(),
        },
    })
}

/// The system-directory rule for a path the container chose.
fn check_tenant_choice(
    variable: &'static str,
    path: &Path,
    layout: &ContainerLayout,
) -> Result<(), PlanError> {
    let refuse = |problem: String| PlanError::TenantTarget {
        variable,
        path: path.to_path_buf(),
        problem,
    };
    if let Some(root) = PSEUDO_ROOTS.iter().find(|r| path.starts_with(r)) {
        return Err(refuse(format!("it is under {root}, a kernel filesystem")));
    }
    let library_dirs = [&layout.lib_dir, &layout.lib32_dir, &layout.xorg_modules_dir];
    let system = SYSTEM_DIRS
        .iter()
        .map(Path::new)
        .chain(library_dirs.iter().map(|d| d.as_path()));
    for dir in system {
        if dir.starts_with(path) {
            return Err(refuse(if dir == path {
                "it is a system directory of the container".to_string()
            } else {
                format!("it would cover {}, a system directory", dir.display())
            }));
        }
    }
    Ok(())
}

fn overlap(first: &Path, a: TargetOrigin, second: &Path, b: TargetOrigin) -> PlanError {
    let describe = |path: &Path| path.display().to_string();
    match (a, b) {
        (TargetOrigin::Tenant(variable), _) => PlanError::TenantTarget {
            variable,
            path: first.to_path_buf(),
            problem: format!(
                "it would cover {}, where gpuhook puts other files",
                describe(second)
            ),
        },
        (_, TargetOrigin::Tenant(variable)) => PlanError::TenantTarget {
            variable,
            path: second.to_path_buf(),
            problem: format!(
                "it is inside {}, where gpuhook mounts something else",
                describe(first)
            ),
        },
        _ => PlanError::Target {
            path: second.to_path_buf(),
            problem: format!("overlaps the target {}", describe(first)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::entries::TargetType;

    fn layout() -> ContainerLayout {
        ContainerLayout::for_rootfs(true)
    }

    fn tenant(path: &str) -> MountEntry {
        MountEntry::ipc(
            "/host/mps".into(),
            path.into(),
            TargetType::Directory,
            TargetOrigin::Tenant("CUDA_MPS_PIPE_DIRECTORY"),
        )
    }

    fn file(path: &str) -> MountEntry {
        MountEntry::file("/host/x".into(), path.into())
    }

    const LIB: &str = "/usr/lib/x86_64-linux-gnu";

    fn run(mounts: &[MountEntry]) -> Result<(), PlanError> {
        check(
            mounts,
            Some(Path::new("/proc/driver/nvidia")),
            &[LIB.into()],
            &layout(),
        )
    }

    #[test]
    fn a_tenant_path_may_not_cover_a_system_directory() {
        for bad in [
            "/",
            "/etc",
            "/usr",
            "/usr/lib",
            LIB,
            "/tmp",
            "/run",
            "/bin",
            "/var/run",
            "/sbin",
            "/usr/lib/xorg/modules",
        ] {
            let err = run(&[tenant(bad)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("CUDA_MPS_PIPE_DIRECTORY={bad}")),
                "{err}"
            );
        }
        for bad in [
            "/proc/x",
            "/sys/fs/mps",
            "/dev/shm/mps",
            "/tmp/../etc",
            "tmp",
        ] {
            assert!(run(&[tenant(bad)]).is_err(), "{bad}");
        }
        for good in ["/tmp/nvidia-mps", "/run/mps", "/data/mps", "/etc/x-mps"] {
            run(&[file(&format!("{LIB}/libcuda.so.1")), tenant(good)]).expect(good);
        }
    }

    #[test]
    fn targets_never_overlap() {
        let err = run(&[file("/usr/bin/nvidia-smi"), tenant("/usr/bin/nvidia-smi")]);
        assert!(err.is_err());
        // A tenant directory holding another target, or inside one.
        let err = run(&[file("/opt/app/lib/libx.so"), tenant("/opt/app")]).unwrap_err();
        assert!(err.to_string().contains("/opt/app/lib/libx.so"), "{err}");
        assert!(run(&[file("/opt/a"), tenant("/opt/a/mps")]).is_err());
        // The /proc mask takes part.
        assert!(run(&[file("/proc/driver/nvidia/x")]).is_err());
        // Two driver files at one path.
        assert!(run(&[file("/usr/bin/a"), file("/usr/bin/a")]).is_err());
        // Neighbours that only share a string prefix do not overlap.
        run(&[file("/usr/bin/nvidia-smi"), file("/usr/bin/nvidia-smi2")]).unwrap();
    }

    #[test]
    fn ldconfig_outputs_are_never_covered() {
        assert!(run(&[tenant("/etc")]).is_err());
        let err = check(
            &[tenant("/srv/cache")],
            Some(Path::new("/proc/driver/nvidia")),
            &["/srv/cache/lib".into()],
            &layout(),
        );
        assert!(err.is_err());
    }
}
