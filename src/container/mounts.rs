//! The mount table of the calling thread's mount namespace (`/proc/thread-self/mountinfo`), read
//! with the procfs crate.
//!
//! procfs leaves the kernel's octal escapes (`\040` for a space, ...) in mount points, and
//! reads the file as UTF-8 lines; [`unescape`] undoes the escapes (checked: a value above 255 is
//! kept as text), and a line that is not UTF-8 is skipped rather than failing the whole table.
//! A skipped mount is simply unknown, and gpuhook places nothing on an unknown mount.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount, as much of it as gpuhook needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount id (`statx` `STATX_MNT_ID` reports the same number).
    pub id: u64,
    /// The directory of its filesystem that is mounted (`/` for a whole filesystem).
    pub root: PathBuf,
    /// Where it is mounted, as the reading thread sees paths.
    pub point: PathBuf,
    pub fs_type: String,
}

/// The mount table of the calling thread's mount namespace.
pub fn current() -> std::io::Result<Vec<Mount>> {
    // In few `read` calls: procfs reports size 0, so `std::fs::read` starts with 32 bytes and
    // doubles (nine calls for 4 KiB), and each call takes the kernel's global mount lock
    // again, on which parallel container starts (runc's mounts and ours) wait.
    let mut table = Vec::with_capacity(64 * 1024);
    let mut file = std::fs::File::open("/proc/thread-self/mountinfo")?;
    std::io::Read::read_to_end(&mut file, &mut table)?;
    Ok(parse(&table))
}

/// Parses mountinfo text; lines that are not UTF-8 or not well formed are left out.
pub fn parse(bytes: &[u8]) -> Vec<Mount> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter(|line| !line.is_empty())
        .filter_map(|line| procfs::process::MountInfo::from_line(line).ok())
        .filter_map(|info| {
            Some(Mount {
                id: u64::try_from(info.mnt_id).ok()?,
                root: unescape(&info.root),
                point: unescape(&info.mount_point.to_string_lossy()),
                fs_type: info.fs_type,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (three octal digits).
pub fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'\\')
            .then(|| bytes.get(i + 1..i + 4))
            .flatten()
            .and_then(octal_byte);
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Three octal digits as one byte; `None` when they are not digits or exceed 255 (`\4xx`).
fn octal_byte(digits: &[u8]) -> Option<u8> {
    digits.iter().try_fold(0u8, |acc, d| {
        let digit = d.checked_sub(b'0').filter(|v| *v < 8)?;
        acc.checked_mul(8)?.checked_add(digit)
    })
}

/// The mount whose id is `id`.
pub fn by_id(mounts: &[Mount], id: u64) -> Option<&Mount> {
    mounts.iter().find(|m| m.id == id)
}

/// Mounts strictly below `dir`, deepest first (the order in which they can be detached).
pub fn below<'a>(mounts: &'a [Mount], dir: &Path) -> Vec<&'a Mount> {
    let mut found: Vec<&Mount> = mounts
        .iter()
        .filter(|m| m.point.starts_with(dir) && m.point != dir)
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.point.components().count()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
        90 22 0:50 / /b/rootfs/dev rw,nosuid - tmpfs tmpfs rw,mode=755\n\
        91 90 0:51 / /b/rootfs/dev/mqueue rw - mqueue mqueue rw\n\
        92 22 254:1 /srv/vol /b/rootfs/my\\040vol rw - ext4 /dev/vda1 rw\n";

    #[test]
    fn reads_ids_roots_points_and_types() {
        let mounts = parse(TABLE.as_bytes());
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[1].id, 90);
        assert_eq!(mounts[1].fs_type, "tmpfs");
        assert_eq!(mounts[3].root, PathBuf::from("/srv/vol"));
        assert_eq!(mounts[3].point, PathBuf::from("/b/rootfs/my vol"));
        let below: Vec<u64> = super::below(&mounts, Path::new("/b/rootfs"))
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(below, [91, 90, 92]);
        assert_eq!(
            by_id(&mounts, 22).map(|m| m.point.clone()),
            Some("/".into())
        );
    }

    #[test]
    fn bad_lines_are_skipped_and_escapes_are_checked() {
        let mut bytes = b"garbage\n\xff\xfe 1 2\n".to_vec();
        bytes.extend_from_slice(TABLE.as_bytes());
        assert_eq!(parse(&bytes).len(), 4);
        assert_eq!(unescape("/a\\040b\\134c"), PathBuf::from("/a b\\c"));
        assert_eq!(unescape("/plain\\09"), PathBuf::from("/plain\\09"));
        // \400 and above do not fit a byte: kept as written, no overflow.
        assert_eq!(unescape("/x\\400\\777"), PathBuf::from("/x\\400\\777"));
        assert_eq!(unescape("\\"), PathBuf::from("\\"));
        assert_eq!(unescape("\\37"), PathBuf::from("\\37"));
    }
}
