//! glibc's `/etc/ld.so.cache`: read, extended with injected libraries the way ldconfig would
//! list them, and written back in the format every glibc loader since 2.2 reads.
//!
//! Hand-written because no maintained crate reads or writes this format, and it is small. The
//! new format (glibc 2.32 writes only it; earlier ones put it after an `ld.so-1.7.0` block,
//! which is skipped here and not written back) is a 48-byte header (`glibc-ld.so.cache1.1`,
//! entry count, string table size, endianness flags, extension offset), fixed 24-byte entries
//! (flags, soname and path as offsets from the header, OS version, hwcap) sorted the way the
//! loader's binary search expects ([`order`]), the strings, and an optional extension directory
//! (the generator's name, the `glibc-hwcaps` subdirectory names).
//!
//! The image's cache is the tenant's file: [`parse`] bounds what it reads and copies (the file,
//! the entry count, each string and all strings together), and refuses what it cannot write
//! back exactly rather than guessing. It is fuzzed (`fuzz/fuzz_targets/ldcache.rs`: parse, add,
//! write, parse again).

pub mod order;
mod splice;
mod write;

pub use splice::add_to_file;
pub use write::write;

/// The largest cache accepted (real ones: 10 KiB to a few MiB for thousands of libraries).
pub const MAX_CACHE_BYTES: usize = 32 << 20;
/// At most this many entries (an image with 5,000 libraries has about 5,000).
pub const MAX_ENTRIES: usize = 1 << 18;
/// The longest soname or path (PATH_MAX).
pub const MAX_STRING_BYTES: usize = 4096;
/// All strings copied out of one cache together: many entries may name one long string.
const MAX_COPIED_BYTES: usize = 64 << 20;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 24;
const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
const TAG_GENERATOR: u32 = 0;
const TAG_GLIBC_HWCAPS: u32 = 1;
/// The header's endianness bits: unset (old ldconfig), little, big.
const ENDIAN_MASK: u8 = 3;
const ENDIAN_CURRENT: u8 = if cfg!(target_endian = "little") { 2 } else { 3 };
/// An entry's `hwcap` with this bit (and only ISA level bits besides it above bit 32) names a
/// `glibc-hwcaps` subdirectory by its index in the low 32 bits.
pub const HWCAP_EXTENSION: u64 = 1 << 62;
const HWCAP_ISA_LEVEL_MASK: u64 = (1 << 10) - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LdCacheError {
    #[error("not an ld.so.cache (no glibc-ld.so.cache1.1 header)")]
    NoHeader,
    #[error("truncated ld.so.cache: {0}")]
    Truncated(&'static str),
    #[error("ld.so.cache too large: {0}")]
    TooLarge(&'static str),
    #[error("ld.so.cache of the other byte order")]
    WrongEndian,
    #[error("ld.so.cache extension unusable: {0}")]
    BadExtension(&'static str),
}

/// One entry, as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Library type and ABI (`0x0303`: ELF, libc6, x86-64).
    pub flags: i32,
    /// e.g. `libcuda.so.1`.
    pub soname: Vec<u8>,
    /// e.g. `/usr/lib/x86_64-linux-gnu/libcuda.so.1`.
    pub path: Vec<u8>,
    pub osversion: u32,
    pub hwcap: u64,
}

impl CacheEntry {
    /// The `glibc-hwcaps` subdirectory index this entry names, if it is such an entry.
    pub fn hwcaps_index(&self) -> Option<usize> {
        names_subdir(self.hwcap).then_some((self.hwcap & 0xffff_ffff) as usize)
    }
}

/// Whether an entry's `hwcap` names a `glibc-hwcaps` subdirectory (only the extension bit,
/// and ISA level bits, above bit 32).
fn names_subdir(hwcap: u64) -> bool {
    (hwcap >> 32) & !HWCAP_ISA_LEVEL_MASK == HWCAP_EXTENSION >> 32
}

/// A whole cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdCache {
    /// In file order: the loader's order (see [`order`]).
    pub entries: Vec<CacheEntry>,
    /// The `glibc-hwcaps` subdirectory names entries refer to by index.
    pub hwcaps_subdirs: Vec<Vec<u8>>,
    /// Which ldconfig wrote it (kept as it was).
    pub generator: Option<Vec<u8>>,
}

impl LdCache {
    /// Adds `libraries` as ldconfig run with their directories first on its command line
    /// lists them: each before any entry of the same soname and kind from another directory
    /// (the loader takes the first), replacing an entry of the same path (a second run).
    pub fn add(&mut self, libraries: Vec<CacheEntry>) {
        let paths: std::collections::HashSet<Vec<u8>> =
            libraries.iter().map(|l| l.path.clone()).collect();
        let mut merged = libraries;
        let old = std::mem::take(&mut self.entries);
        merged.extend(old.into_iter().filter(|e| !paths.contains(&e.path)));
        // Stable: of entries that compare equal, the added ones stay first.
        merged.sort_by(|a, b| order::ldconfig_order(a, b, &self.hwcaps_subdirs));
        self.entries = merged;
    }
}

/// The entry count a cache file's (new-format) header gives; 0 for what is not a cache.
pub fn entry_count(data: &[u8]) -> usize {
    Header::read(data).map_or(0, |header| header.count)
}

/// Parses a whole cache file (see the module docs for what is refused).
pub fn parse(data: &[u8]) -> Result<LdCache, LdCacheError> {
    parse_matching(data, |_| true)
}

/// Parses a whole cache file, keeping only the entries whose soname `keep` takes (the
/// inventory wants the driver's few among a host's thousands: the others are checked but
/// not copied).
pub fn parse_matching(
    data: &[u8],
    mut keep: impl FnMut(&[u8]) -> bool,
) -> Result<LdCache, LdCacheError> {
    let Header {
        base,
        count,
        extension_at,
        ..
    } = Header::read(data)?;
    let table = &data[base..];
    let entries_end = HEADER_LEN + count * ENTRY_LEN;
    if entries_end > table.len() {
        return Err(LdCacheError::Truncated("entries"));
    }
    let mut strings = Strings { table, copied: 0 };
    let mut entries = Vec::new();
    for at in (HEADER_LEN..entries_end).step_by(ENTRY_LEN) {
        let entry = &table[at..at + ENTRY_LEN];
        let soname = strings.slice(read_u32(entry, 4))?;
        let path = strings.slice(read_u32(entry, 8))?;
        if !keep(soname) {
            continue;
        }
        entries.push(CacheEntry {
            flags: read_u32(entry, 0) as i32,
            soname: strings.copy(soname)?,
            path: strings.copy(path)?,
            osversion: read_u32(entry, 12),
            hwcap: read_u64(entry, 16),
        });
    }
    let (generator, hwcaps_subdirs) = match extension_at {
        0 => (None, Vec::new()),
        offset => read_extension(data, offset, &mut strings)?,
    };
    if entries
        .iter()
        .filter_map(CacheEntry::hwcaps_index)
        .any(|i| i >= hwcaps_subdirs.len())
    {
        return Err(LdCacheError::BadExtension(
            "an entry names a missing subdirectory",
        ));
    }
    Ok(LdCache {
        entries,
        hwcaps_subdirs,
        generator,
    })
}

/// A new-format header's fields, checked: the file within [`MAX_CACHE_BYTES`], this byte
/// order, at most [`MAX_ENTRIES`] entries.
pub(crate) struct Header {
    /// Where the new-format part starts (after an old-format block, if any).
    pub base: usize,
    pub count: usize,
    pub len_strings: usize,
    /// From the start of the file; 0: none.
    pub extension_at: usize,
}

impl Header {
    pub(crate) fn read(data: &[u8]) -> Result<Header, LdCacheError> {
        if data.len() > MAX_CACHE_BYTES {
            return Err(LdCacheError::TooLarge("file"));
        }
        let base = find_new_header(data)?;
        let header = data[base..]
            .get(..HEADER_LEN)
            .ok_or(LdCacheError::Truncated("header"))?;
        let flags = header[28];
        if flags != 0 && flags & ENDIAN_MASK != ENDIAN_CURRENT {
            return Err(LdCacheError::WrongEndian);
        }
        let count = read_u32(header, 20) as usize;
        if count > MAX_ENTRIES {
            return Err(LdCacheError::TooLarge("entry count"));
        }
        Ok(Header {
            base,
            count,
            len_strings: read_u32(header, 24) as usize,
            extension_at: read_u32(header, 32) as usize,
        })
    }
}

/// The extension's generator name and `glibc-hwcaps` subdirectory names.
type Extension = (Option<Vec<u8>>, Vec<Vec<u8>>);

/// The extension directory at `offset` (from the start of the file, as glibc reads it).
fn read_extension(
    data: &[u8],
    offset: usize,
    strings: &mut Strings,
) -> Result<Extension, LdCacheError> {
    let bad = LdCacheError::BadExtension;
    if offset % 4 != 0 {
        return Err(bad("misaligned directory"));
    }
    let head = data
        .get(offset..offset.saturating_add(8))
        .ok_or(bad("directory past the end"))?;
    if read_u32(head, 0) != EXTENSION_MAGIC {
        return Err(bad("no magic"));
    }
    let count = read_u32(head, 4) as usize;
    let sections = data
        .get(offset + 8..)
        .and_then(|rest| rest.get(..count.checked_mul(16)?))
        .ok_or(bad("sections past the end"))?;
    let (mut generator, mut subdirs) = (None, Vec::new());
    for section in sections.chunks_exact(16) {
        let (tag, at, size) = (
            read_u32(section, 0),
            read_u32(section, 8) as usize,
            read_u32(section, 12) as usize,
        );
        let bytes = data
            .get(at..at.saturating_add(size))
            .ok_or(bad("section past the end"))?;
        match tag {
            TAG_GENERATOR => generator = Some(bytes.to_vec()),
            TAG_GLIBC_HWCAPS if at % 4 == 0 && size % 4 == 0 => {
                subdirs = bytes
                    .chunks_exact(4)
                    .map(|word| strings.at(read_u32(word, 0)))
                    .collect::<Result<_, _>>()?;
            }
            // glibc ignores a malformed hwcaps section and tags it does not know; so could
            // this reader, but it could not write them back as they were.
            _ => return Err(bad("a section this writer cannot reproduce")),
        }
    }
    Ok((generator, subdirs))
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
        .and_then(|n| n.checked_add(16 + 7))
        .ok_or(LdCacheError::NoHeader)?;
    let aligned = old_end & !7;
    match data.get(aligned..) {
        Some(rest) if rest.starts_with(NEW_MAGIC) => Ok(aligned),
        _ => Err(LdCacheError::NoHeader),
    }
}

/// The NUL-terminated string at `offset` in `table`, of at most [`MAX_STRING_BYTES`].
fn c_string(table: &[u8], offset: u32) -> Result<&[u8], LdCacheError> {
    let rest = table
        .get(offset as usize..)
        .ok_or(LdCacheError::Truncated("string offset"))?;
    let window = &rest[..rest.len().min(MAX_STRING_BYTES + 1)];
    // `CStr` finds the NUL with the standard library's word-at-a-time search: an image's
    // cache holds thousands of strings, each read here once or twice per start.
    match std::ffi::CStr::from_bytes_until_nul(window) {
        Ok(string) => Ok(string.to_bytes()),
        Err(_) if window.len() > MAX_STRING_BYTES => Err(LdCacheError::TooLarge("string")),
        Err(_) => Err(LdCacheError::Truncated("unterminated string")),
    }
}

/// The string table (offsets count from the new header), and how much was copied out of it.
struct Strings<'a> {
    table: &'a [u8],
    copied: usize,
}

impl<'a> Strings<'a> {
    /// The string at `offset`, checked (see [`c_string`]).
    fn slice(&self, offset: u32) -> Result<&'a [u8], LdCacheError> {
        c_string(self.table, offset)
    }

    /// A copy of `s`, counted against [`MAX_COPIED_BYTES`].
    fn copy(&mut self, s: &[u8]) -> Result<Vec<u8>, LdCacheError> {
        self.copied += s.len();
        if self.copied > MAX_COPIED_BYTES {
            return Err(LdCacheError::TooLarge("strings named by the entries"));
        }
        Ok(s.to_vec())
    }

    fn at(&mut self, offset: u32) -> Result<Vec<u8>, LdCacheError> {
        let s = self.slice(offset)?;
        self.copy(s)
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(word)
}

#[cfg(test)]
mod tests;
