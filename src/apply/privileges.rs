//! Least privilege for the hook process: once everything that needs the host's privileges is
//! prepared (detached mounts, the `/proc/driver` mask, the device cgroup's eBPF program, the
//! host ldconfig and the namespace fds are open), the capabilities the rest does not need are
//! dropped for good (permitted, effective, inheritable, ambient and bounding sets), and
//! `no_new_privs` is set, so nothing the hook runs afterwards can gain any back.
//!
//! Capabilities are per thread: this runs on the hook's only thread (NVML, loaded only for
//! `arch`/`brand` requirements, may start threads of its own; they never act for the hook).

use caps::{CapSet, Capability, CapsHashSet};

use super::ApplyError;

/// What the work inside the container still needs, and why.
pub const CONTAINER_WORK: &[Capability] = &[
    // setns(CLONE_NEWNS) into the container, move_mount onto targets there, and the ldconfig
    // child's private mount namespace (unshare, detaching the rootfs's /proc and /sys).
    Capability::CAP_SYS_ADMIN,
    // setns(CLONE_NEWNS) requires it too, and the ldconfig child chroots into the rootfs.
    Capability::CAP_SYS_CHROOT,
    // Placeholders in a rootfs whose directories are not owned by host uid 0 (a user-namespaced
    // container's are owned by its mapped root).
    Capability::CAP_DAC_OVERRIDE,
    // The ldconfig child empties its bounding set (PR_CAPBSET_DROP needs it) ...
    Capability::CAP_SETPCAP,
    // ... and takes the uid and gid owning the rootfs's /etc, dropping every capability.
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
];

/// Keeps only `keep` in every capability set of the calling thread, and sets `no_new_privs`.
pub fn drop_all_but(keep: &[Capability]) -> Result<(), ApplyError> {
    let keep: CapsHashSet = keep.iter().copied().collect();
    let fail = |what: &str, e: caps::errors::CapsError| ApplyError::Privileges {
        message: format!("{what}: {e}"),
    };
    // The bounding set first: dropping from it needs CAP_SETPCAP, which may be dropped below.
    for cap in caps::all() {
        // A capability this kernel does not know reads as an error: nothing to drop.
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| fail("shrink the bounding set", e))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("clear the ambient set", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("clear the inheritable set", e))?;
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(|e| fail("read the permitted set", e))?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    // Effective first: it must stay a subset of permitted at every step.
    caps::set(None, CapSet::Effective, &kept).map_err(|e| fail("set the effective set", e))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| fail("set the permitted set", e))?;
    rustix::thread::set_no_new_privs(true).map_err(|e| ApplyError::Privileges {
        message: format!("set no_new_privs: {e}"),
    })?;
    Ok(())
}
