//! Reader for glibc's `/etc/ld.so.cache`, the index the driver libraries are found through.
//!
//! Hand-written because no maintained crate reads this format, and it is small: a header
//! (`glibc-ld.so.cache1.1`, entry count, string table size) then fixed 24-byte entries whose
//! key (soname) and value (path) are offsets into a string table. Files that start with the
//! pre-2.32 `ld.so-1.7.0` block carry the new format after it; both are handled.

use std::path::PathBuf;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER_LEN: usize = 48;
const NEW_ENTRY_LEN: usize = 24;
/// `FLAG_ELF_LIBC6`: the only library type the driver ships.
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_TYPE_MASK: i32 = 0x00ff;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LdCacheError {
    #[error("not an ld.so.cache (no glibc-ld.so.cache1.1 header)")]
    NoHeader,
    #[error("truncated ld.so.cache: {0}")]
    Truncated(&'static str),
}

/// One library the cache lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdCacheEntry {
    /// e.g. `libcuda.so.1`.
    pub soname: String,
    /// e.g. `/usr/lib/x86_64-linux-gnu/libcuda.so.1`, relative to the cache's root.
    pub path: PathBuf,
    /// The entry's flags (`flags & 0xff00` is its ABI: see [`crate::arch::Arch::library_abi`]).
    pub flags: u32,
}

/// Parses a whole cache file. Entries keep the cache's order (highest priority first).
pub fn parse(data: &[u8]) -> Result<Vec<LdCacheEntry>, LdCacheError> {
    let base = find_new_header(data)?;
    let table = &data[base..];
    let header = table
        .get(..NEW_HEADER_LEN)
        .ok_or(LdCacheError::Truncated("header"))?;
    let count = read_u32(header, 20) as usize;
    let entries_end = count
        .checked_mul(NEW_ENTRY_LEN)
        .and_then(|n| n.checked_add(NEW_HEADER_LEN))
        .ok_or(LdCacheError::Truncated("entry count"))?;
    if entries_end > table.len() {
        return Err(LdCacheError::Truncated("entries"));
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = NEW_HEADER_LEN + i * NEW_ENTRY_LEN;
        let entry = &table[at..at + NEW_ENTRY_LEN];
        let flags = read_u32(entry, 0) as i32;
        if flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6 {
            continue;
        }
        let soname = string_at(table, read_u32(entry, 4) as usize)?;
        let path = string_at(table, read_u32(entry, 8) as usize)?;
        entries.push(LdCacheEntry {
            soname,
            path: PathBuf::from(path),
            flags: flags as u32,
        });
    }
    Ok(entries)
}

/// Offset of the new-format header: at 0, or after the old format's entries.
fn find_new_header(data: &[u8]) -> Result<usize, LdCacheError> {
    if data.starts_with(NEW_MAGIC) {
        return Ok(0);
    }
    if !data.starts_with(OLD_MAGIC) {
        return Err(LdCacheError::NoHeader);
    }
    let old_count = data
        .get(12..16)
        .map(|b| read_u32(b, 0) as usize)
        .ok_or(LdCacheError::Truncated("old header"))?;
    // Old header is 16 bytes, entries 12 bytes; the new header is 8-byte aligned after them.
    let old_end = old_count
        .checked_mul(12)
        .and_then(|n| n.checked_add(16))
        .ok_or(LdCacheError::Truncated("old entries"))?;
    let aligned = old_end.checked_add(7).ok_or(LdCacheError::NoHeader)? & !7;
    match data.get(aligned..) {
        Some(rest) if rest.starts_with(NEW_MAGIC) => Ok(aligned),
        _ => Err(LdCacheError::NoHeader),
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

fn string_at(table: &[u8], offset: usize) -> Result<String, LdCacheError> {
    let rest = table
        .get(offset..)
        .ok_or(LdCacheError::Truncated("string offset"))?;
    let len = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or(LdCacheError::Truncated("unterminated string"))?;
    Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a new-format cache the way ldconfig lays it out.
    fn cache(entries: &[(i32, &str, &str)]) -> Vec<u8> {
        let strings_start = NEW_HEADER_LEN + entries.len() * NEW_ENTRY_LEN;
        let mut strings = Vec::new();
        let mut body = Vec::new();
        for (flags, key, value) in entries {
            let key_at = strings_start + strings.len();
            strings.extend_from_slice(key.as_bytes());
            strings.push(0);
            let value_at = strings_start + strings.len();
            strings.extend_from_slice(value.as_bytes());
            strings.push(0);
            body.extend_from_slice(&flags.to_ne_bytes());
            body.extend_from_slice(&(key_at as u32).to_ne_bytes());
            body.extend_from_slice(&(value_at as u32).to_ne_bytes());
            body.extend_from_slice(&0u32.to_ne_bytes());
            body.extend_from_slice(&0u64.to_ne_bytes());
        }
        let mut out = NEW_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_ne_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_ne_bytes());
        out.resize(NEW_HEADER_LEN, 0);
        out.extend(body);
        out.extend(strings);
        out
    }

    #[test]
    fn reads_entries_and_word_size() {
        let data = cache(&[
            (
                0x0303,
                "libcuda.so.1",
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            ),
            (
                0x0003,
                "libcuda.so.1",
                "/usr/lib/i386-linux-gnu/libcuda.so.1",
            ),
            (0x0001, "libold.so", "/lib/libold.so"),
        ]);
        let entries = parse(&data).unwrap();
        assert_eq!(entries.len(), 2, "non-libc6 entries are skipped");
        assert_eq!(entries[0].soname, "libcuda.so.1");
        assert_eq!(
            entries[0].path,
            PathBuf::from("/usr/lib/x86_64-linux-gnu/libcuda.so.1")
        );
        assert_eq!((entries[0].flags, entries[1].flags), (0x0303, 0x0003));
    }

    #[test]
    fn reads_the_systems_own_cache() {
        // Every Linux machine the tests run on has one; it must parse and list libc.
        let data = std::fs::read("/etc/ld.so.cache").unwrap();
        let entries = parse(&data).unwrap();
        assert!(
            entries.iter().any(|e| e.soname == "libc.so.6"),
            "{entries:?}"
        );
    }

    #[test]
    fn old_format_prefix_is_skipped() {
        let mut data = OLD_MAGIC.to_vec();
        data.push(0);
        data.extend_from_slice(&1u32.to_ne_bytes());
        data.extend_from_slice(&[0u8; 12]);
        data.resize(32, 0);
        data.extend(cache(&[(
            0x0303,
            "libnvidia-ml.so.1",
            "/x/libnvidia-ml.so.1",
        )]));
        assert_eq!(parse(&data).unwrap()[0].soname, "libnvidia-ml.so.1");
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert_eq!(parse(b""), Err(LdCacheError::NoHeader));
        assert_eq!(parse(b"hello world"), Err(LdCacheError::NoHeader));
        let data = cache(&[(0x0303, "a", "b")]);
        for cut in 0..data.len() {
            let _ = parse(&data[..cut]);
        }
        let mut huge = NEW_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_ne_bytes());
        huge.resize(NEW_HEADER_LEN, 0);
        assert!(parse(&huge).is_err());
        let mut bad_offset = cache(&[(0x0303, "a", "b")]);
        let at = NEW_HEADER_LEN + 4;
        bad_offset[at..at + 4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(parse(&bad_offset).is_err());
    }
}
