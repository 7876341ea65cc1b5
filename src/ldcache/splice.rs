//! Adding entries to a cache without rebuilding it: the common case (an image's ldconfig-made
//! cache, sorted, no `glibc-hwcaps` entries, none of the added paths in it yet) costs two
//! passes over the entries in place and no allocation per entry, and the old string table
//! (most of the file) is written straight from what was read, so an image with thousands of
//! libraries costs about what an empty one does.
//!
//! The new entries are spliced into the sorted table where [`LdCache::add`] would put them,
//! every old string offset moves by the table's growth, the new strings go after the old ones,
//! and the extension directory (only a generator section is taken) is written anew after them.
//! Anything else is left to [`LdCache::add`] and [`super::write`] (`None`); both give the same
//! cache (unit tests and the fuzz target check it).

use std::cmp::Ordering;

use super::order::{key_order, sort_key, SortKey};
use super::write::write_extension;
use super::{
    c_string, names_subdir, read_extension, read_u32, read_u64, CacheEntry, Header, LdCache,
    LdCacheError, Strings, ENDIAN_CURRENT, ENTRY_LEN, HEADER_LEN, TAG_GENERATOR,
};

/// A cache file in three pieces, written one after the other: the old string table is not
/// copied (an image's cache is mostly strings).
pub struct Parts<'a> {
    pub head: Vec<u8>,
    pub strings: &'a [u8],
    pub tail: Vec<u8>,
}

impl Parts<'_> {
    pub fn slices(&self) -> [&[u8]; 3] {
        [&self.head, self.strings, &self.tail]
    }

    pub fn concat(&self) -> Vec<u8> {
        self.slices().concat()
    }
}

impl LdCache {
    /// `data` (a cache file) with `added` in it, as [`LdCache::add`] then [`super::write`]
    /// would give it: spliced in place where that is possible (see the module docs).
    pub fn add_to_bytes(data: &[u8], added: Vec<CacheEntry>) -> Result<Parts<'_>, LdCacheError> {
        if let Some(parts) = splice_parts(data, &added)? {
            return Ok(parts);
        }
        let mut cache = super::parse(data)?;
        cache.add(added);
        Ok(Parts {
            head: super::write(&cache),
            strings: &[],
            tail: Vec::new(),
        })
    }
}

/// `data` with `added` in it (see the module docs), or `None` where only a rebuild will do.
pub fn add_to_file(data: &[u8], added: &[CacheEntry]) -> Result<Option<Vec<u8>>, LdCacheError> {
    Ok(splice_parts(data, added)?.map(|parts| parts.concat()))
}

/// [`add_to_file`], in [`Parts`].
pub fn splice_parts<'a>(
    data: &'a [u8],
    added: &[CacheEntry],
) -> Result<Option<Parts<'a>>, LdCacheError> {
    let Header {
        base,
        count,
        len_strings,
        extension_at,
    } = Header::read(data)?;
    let file = &data[base..];
    let strings_at = HEADER_LEN + count * ENTRY_LEN;
    let table = Table {
        file,
        strings_at,
        strings_end: strings_at.saturating_add(len_strings),
    };
    // Offsets into an old-format file's extension count from the file's start: take only a
    // new-format file's, or none.
    if table.strings_end > file.len()
        || (extension_at != 0 && (base != 0 || extension_at < table.strings_end))
        || added.iter().any(|e| e.hwcaps_index().is_some())
        || !table.takes(added)
    {
        return Ok(None);
    }
    // Only a generator section is taken (the rebuild decides on anything else).
    let generator = match extension_at {
        0 => None,
        at => match read_extension(
            file,
            at,
            &mut Strings {
                table: file,
                copied: 0,
            },
        ) {
            Ok((generator, subdirs)) if subdirs.is_empty() => generator,
            _ => return Ok(None),
        },
    };
    Ok(Some(splice(&table, added, generator.as_deref())))
}

/// One entry of the file, borrowed.
struct Entry<'a> {
    flags: i32,
    soname: &'a [u8],
    path: &'a [u8],
    osversion: u32,
    hwcap: u64,
}

impl Entry<'_> {
    fn key(&self) -> SortKey<'_> {
        SortKey {
            soname: self.soname,
            flags: self.flags,
            subdir: None,
            hwcap: self.hwcap,
            osversion: self.osversion,
        }
    }
}

/// An image's entries, read in place.
struct Table<'a> {
    file: &'a [u8],
    strings_at: usize,
    strings_end: usize,
}

impl<'a> Table<'a> {
    /// The string at `offset`: inside the string table, terminated, of bounded length.
    fn string(&self, offset: u32) -> Option<&'a [u8]> {
        if (offset as usize) < self.strings_at {
            return None;
        }
        c_string(&self.file[..self.strings_end], offset).ok()
    }

    /// Each entry's raw 24 bytes.
    fn raw_entries(&self) -> std::slice::ChunksExact<'a, u8> {
        self.file[HEADER_LEN..self.strings_at].chunks_exact(ENTRY_LEN)
    }

    /// Each entry, `None` for one this splice does not take (bad strings, `glibc-hwcaps`).
    fn entries(&self) -> impl Iterator<Item = Option<Entry<'a>>> + '_ {
        self.raw_entries().map(|raw| self.entry(raw))
    }

    fn entry(&self, raw: &'a [u8]) -> Option<Entry<'a>> {
        let hwcap = read_u64(raw, 16);
        if names_subdir(hwcap) {
            return None;
        }
        Some(Entry {
            flags: read_u32(raw, 0) as i32,
            soname: self.string(read_u32(raw, 4))?,
            path: self.string(read_u32(raw, 8))?,
            osversion: read_u32(raw, 12),
            hwcap,
        })
    }

    /// Whether every entry is one this splice takes, in the loader's order, and none has the
    /// path of one of `added` (a second run: the rebuild replaces it).
    fn takes(&self, added: &[CacheEntry]) -> bool {
        let mut previous: Option<Entry> = None;
        for entry in self.entries() {
            let Some(entry) = entry else {
                return false;
            };
            let out_of_order = previous
                .as_ref()
                .is_some_and(|p| key_order(&p.key(), &entry.key()) == Ordering::Greater);
            // Last bytes first: thousands of an image's paths share a long prefix with ours.
            let same_path = |a: &CacheEntry| {
                a.path.len() == entry.path.len()
                    && a.path.last() == entry.path.last()
                    && a.path == entry.path
            };
            if out_of_order || added.iter().any(same_path) {
                return false;
            }
            previous = Some(entry);
        }
        true
    }
}

/// The new file: header and merged table, old strings, new strings and extension.
fn splice<'a>(table: &Table<'a>, added: &[CacheEntry], generator: Option<&[u8]>) -> Parts<'a> {
    let count = (table.strings_at - HEADER_LEN) / ENTRY_LEN + added.len();
    let shift = (added.len() * ENTRY_LEN) as u32;
    let old_strings = &table.file[table.strings_at..table.strings_end];
    let new_strings_at = HEADER_LEN + count * ENTRY_LEN + old_strings.len();
    // The added entries in order (stable: equal ones keep theirs), with their strings.
    let mut order: Vec<&CacheEntry> = added.iter().collect();
    order.sort_by(|a, b| key_order(&sort_key(a, &[]), &sort_key(b, &[])));
    let mut tail = Vec::new();
    let mut rows = Vec::with_capacity(order.len());
    for entry in order {
        let soname_at = new_strings_at + tail.len();
        tail.extend_from_slice(&entry.soname);
        tail.push(0);
        let path_at = new_strings_at + tail.len();
        tail.extend_from_slice(&entry.path);
        tail.push(0);
        rows.push((entry, soname_at as u32, path_at as u32));
    }
    let strings_end = new_strings_at + tail.len();
    let extension_at = match generator {
        Some(_) => (strings_end + 3) & !3,
        None => 0,
    };
    let mut head = Vec::with_capacity(HEADER_LEN + count * ENTRY_LEN);
    head.extend_from_slice(&table.file[..20]);
    head.extend_from_slice(&(count as u32).to_ne_bytes());
    head.extend_from_slice(&((old_strings.len() + tail.len()) as u32).to_ne_bytes());
    head.push(ENDIAN_CURRENT);
    head.extend_from_slice(&[0; 3]);
    head.extend_from_slice(&(extension_at as u32).to_ne_bytes());
    head.resize(HEADER_LEN, 0);
    let mut next = rows.iter().peekable();
    for raw in table.raw_entries() {
        // Each added entry goes before the first existing one it does not sort after; once
        // all are placed, the rest of the table is only moved (its strings are not read again:
        // `takes` checked them all).
        if next.peek().is_some() {
            let Some(entry) = table.entry(raw) else {
                continue;
            };
            let after = |row: &&(&CacheEntry, u32, u32)| {
                key_order(&entry.key(), &sort_key(row.0, &[])) != Ordering::Less
            };
            while let Some(row) = next.next_if(after) {
                push_added(&mut head, row);
            }
        }
        push_moved(&mut head, raw, shift);
    }
    for row in next {
        push_added(&mut head, row);
    }
    if let Some(generator) = generator {
        // `tail` holds the file from the new strings on.
        let sections = [(TAG_GENERATOR, generator.to_vec())];
        write_extension(&mut tail, new_strings_at, extension_at, &sections);
    }
    Parts {
        head,
        strings: old_strings,
        tail,
    }
}

fn push_moved(out: &mut Vec<u8>, raw: &[u8], shift: u32) {
    out.extend_from_slice(&raw[..4]);
    out.extend_from_slice(&(read_u32(raw, 4) + shift).to_ne_bytes());
    out.extend_from_slice(&(read_u32(raw, 8) + shift).to_ne_bytes());
    out.extend_from_slice(&raw[12..24]);
}

fn push_added(out: &mut Vec<u8>, &(entry, soname_at, path_at): &(&CacheEntry, u32, u32)) {
    out.extend_from_slice(&entry.flags.to_ne_bytes());
    out.extend_from_slice(&soname_at.to_ne_bytes());
    out.extend_from_slice(&path_at.to_ne_bytes());
    out.extend_from_slice(&entry.osversion.to_ne_bytes());
    out.extend_from_slice(&entry.hwcap.to_ne_bytes());
}
