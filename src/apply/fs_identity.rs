//! Acting on the filesystem as the container's root: entries the hook creates in a rootfs
//! belong to the container (and can be made at all on a filesystem its user namespace owns).

/// The thread's filesystem uid and gid set to `ids` for as long as this lives (a no-op for
/// root). Switching the fsuid away from 0 also takes the file capabilities (DAC override and
/// the like) out of the effective set; switching back restores them.
pub(super) struct FsIdentity {
    changed: bool,
}

impl FsIdentity {
    pub(super) fn become_(ids: (u32, u32)) -> FsIdentity {
        if ids == (0, 0) {
            return FsIdentity { changed: false };
        }
        // SAFETY: setfsgid/setfsuid only change this thread's filesystem ids.
        unsafe {
            libc::setfsgid(ids.1);
            libc::setfsuid(ids.0);
        }
        FsIdentity { changed: true }
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        if self.changed {
            // SAFETY: as above, back to root.
            unsafe {
                libc::setfsuid(0);
                libc::setfsgid(0);
            }
        }
    }
}
