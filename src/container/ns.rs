//! Namespace files: their identity, and who created the user namespace that owns one.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd};

/// `NS_GET_USERNS` and `NS_GET_OWNER_UID` of `linux/nsfs.h` (`_IO(0xb7, 1)`, `_IO(0xb7, 4)`).
/// rustix does not wrap the nsfs ioctls; they take no argument struct.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// (device, inode): two namespace files name the same namespace when these are equal.
pub fn identity(file: &impl AsFd) -> std::io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(file)?;
    Ok((stat.st_dev, stat.st_ino))
}

/// The user namespace that owns the namespace `ns`.
pub fn owning_user_namespace(ns: &File) -> std::io::Result<File> {
    // SAFETY: an nsfs ioctl without argument on a valid fd; it returns a new fd or -1.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS as _) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd; nobody else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The uid (in the caller's user namespace) of whoever created the user namespace `userns`.
pub fn owner_uid(userns: &File) -> std::io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer.
    let ret = unsafe { libc::ioctl(userns.as_raw_fd(), NS_GET_OWNER_UID as _, &mut uid) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_mount_namespace_is_owned_by_own_user_namespace() {
        let mnt = File::open("/proc/self/ns/mnt").unwrap();
        let user = File::open("/proc/self/ns/user").unwrap();
        let owner = owning_user_namespace(&mnt).unwrap();
        assert_eq!(identity(&owner).unwrap(), identity(&user).unwrap());
        assert_eq!(identity(&mnt).unwrap(), identity(&mnt).unwrap());
        assert_ne!(identity(&mnt).unwrap(), identity(&user).unwrap());
    }
}
