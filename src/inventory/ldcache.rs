//! The host's ld cache as the inventory reads it: the ELF libc6 libraries it lists (the only
//! kind the driver ships), through [`crate::ldcache`]'s bounded parser.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub use crate::ldcache::LdCacheError;

/// `FLAG_ELF_LIBC6`, in the entry's low byte.
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_TYPE_MASK: i32 = 0x00ff;

/// One library the cache lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdCacheEntry {
    /// e.g. `libcuda.so.1`.
    pub soname: String,
    /// e.g. `/usr/lib/x86_64-linux-gnu/libcuda.so.1`, relative to the cache's root.
    pub path: PathBuf,
    /// The entry's flags (`flags & 0xff00` is its ABI: see [`crate::arch::Arch::library_abi`]).
    pub flags: u32,
    /// The OS version ldconfig read from the library's ABI note (0: none).
    pub osversion: u32,
}

/// Parses a whole cache file. Entries keep the cache's order (highest priority first).
pub fn parse(data: &[u8]) -> Result<Vec<LdCacheEntry>, LdCacheError> {
    parse_matching(data, |_| true)
}

/// The entries whose soname `keep` takes (see [`crate::ldcache::parse_matching`]).
pub fn parse_matching(
    data: &[u8],
    keep: impl FnMut(&[u8]) -> bool,
) -> Result<Vec<LdCacheEntry>, LdCacheError> {
    Ok(crate::ldcache::parse_matching(data, keep)?
        .entries
        .into_iter()
        .filter(|e| e.flags & FLAG_TYPE_MASK == FLAG_ELF_LIBC6)
        .map(|e| LdCacheEntry {
            soname: String::from_utf8_lossy(&e.soname).into_owned(),
            path: PathBuf::from(OsStr::from_bytes(&e.path)),
            flags: e.flags as u32,
            osversion: e.osversion,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldcache::{write, CacheEntry, LdCache};

    #[test]
    fn lists_libc6_entries_with_their_word_size() {
        let entry = |flags: i32, soname: &str, path: &str| CacheEntry {
            flags,
            soname: soname.into(),
            path: path.into(),
            osversion: 0,
            hwcap: 0,
        };
        let data = write(&LdCache {
            entries: vec![
                entry(
                    0x0303,
                    "libcuda.so.1",
                    "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                ),
                entry(
                    0x0003,
                    "libcuda.so.1",
                    "/usr/lib/i386-linux-gnu/libcuda.so.1",
                ),
                entry(0x0001, "libold.so", "/lib/libold.so"),
            ],
            ..LdCache::default()
        });
        let entries = parse(&data).unwrap();
        assert_eq!(entries.len(), 2, "non-libc6 entries are skipped");
        assert_eq!(entries[0].soname, "libcuda.so.1");
        assert_eq!(
            entries[0].path,
            PathBuf::from("/usr/lib/x86_64-linux-gnu/libcuda.so.1")
        );
        assert_eq!((entries[0].flags, entries[1].flags), (0x0303, 0x0003));
    }
}
