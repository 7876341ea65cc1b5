//! Writing a cache in glibc's new format, laid out as ldconfig lays it out: header, entries,
//! string table, then (4-byte aligned) the extension directory and its sections.

use std::collections::HashMap;

use super::{
    LdCache, ENDIAN_CURRENT, ENTRY_LEN, EXTENSION_MAGIC, HEADER_LEN, NEW_MAGIC, TAG_GENERATOR,
    TAG_GLIBC_HWCAPS,
};

/// The file's bytes. Entries are written in the order `cache` holds them: sort them first
/// (see [`LdCache::add`]).
pub fn write(cache: &LdCache) -> Vec<u8> {
    let strings_at = HEADER_LEN + cache.entries.len() * ENTRY_LEN;
    let mut strings = StringTable::new(strings_at);
    let mut body = Vec::with_capacity(cache.entries.len() * ENTRY_LEN);
    for entry in &cache.entries {
        let key = strings.offset_of(&entry.soname);
        let value = strings.offset_of(&entry.path);
        body.extend_from_slice(&entry.flags.to_ne_bytes());
        body.extend_from_slice(&key.to_ne_bytes());
        body.extend_from_slice(&value.to_ne_bytes());
        body.extend_from_slice(&entry.osversion.to_ne_bytes());
        body.extend_from_slice(&entry.hwcap.to_ne_bytes());
    }
    let subdirs: Vec<u32> = cache
        .hwcaps_subdirs
        .iter()
        .map(|s| strings.offset_of(s))
        .collect();
    let strings = strings.bytes;

    let mut sections: Vec<(u32, Vec<u8>)> = Vec::new();
    if let Some(generator) = &cache.generator {
        sections.push((TAG_GENERATOR, generator.clone()));
    }
    if !subdirs.is_empty() {
        let words = subdirs.iter().flat_map(|s| s.to_ne_bytes()).collect();
        sections.push((TAG_GLIBC_HWCAPS, words));
    }
    let extension_at = match sections.is_empty() {
        true => 0,
        false => align4(strings_at + strings.len()),
    };

    let mut out = Vec::with_capacity(extension_at.max(strings_at + strings.len()) + 256);
    out.extend_from_slice(NEW_MAGIC);
    out.extend_from_slice(&(cache.entries.len() as u32).to_ne_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_ne_bytes());
    out.push(ENDIAN_CURRENT);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&(extension_at as u32).to_ne_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend(body);
    out.extend(strings);
    if extension_at != 0 {
        write_extension(&mut out, 0, extension_at, &sections);
    }
    out
}

/// The directory (magic, count, one descriptor per section) then each section, 4-aligned, at
/// file offset `at`; `out` holds the file from offset `base` on.
pub(super) fn write_extension(
    out: &mut Vec<u8>,
    base: usize,
    at: usize,
    sections: &[(u32, Vec<u8>)],
) {
    out.resize(at - base, 0);
    out.extend_from_slice(&EXTENSION_MAGIC.to_ne_bytes());
    out.extend_from_slice(&(sections.len() as u32).to_ne_bytes());
    let mut data_at = at + 8 + 16 * sections.len();
    for (tag, data) in sections {
        data_at = align4(data_at);
        for word in [*tag, 0, data_at as u32, data.len() as u32] {
            out.extend_from_slice(&word.to_ne_bytes());
        }
        data_at += data.len();
    }
    for (_, data) in sections {
        out.resize(align4(base + out.len()) - base, 0);
        out.extend_from_slice(data);
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// NUL-terminated strings, each stored once; offsets count from the header.
struct StringTable {
    base: usize,
    bytes: Vec<u8>,
    seen: HashMap<Vec<u8>, u32>,
}

impl StringTable {
    fn new(base: usize) -> StringTable {
        StringTable {
            base,
            bytes: Vec::new(),
            seen: HashMap::new(),
        }
    }

    fn offset_of(&mut self, s: &[u8]) -> u32 {
        if let Some(offset) = self.seen.get(s) {
            return *offset;
        }
        let offset = (self.base + self.bytes.len()) as u32;
        self.bytes.extend_from_slice(s);
        self.bytes.push(0);
        self.seen.insert(s.to_vec(), offset);
        offset
    }
}
