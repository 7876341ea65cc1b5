//! The order of a cache's entries. The loader finds a soname by binary search over entries
//! sorted by glibc's `_dl_cache_libcmp` (greatest first), then takes the first usable entry of
//! that soname; ldconfig breaks ties by flags, `glibc-hwcaps` subdirectory, hwcap and OS
//! version, and otherwise keeps the order it found the libraries in.

use std::cmp::Ordering;

use super::CacheEntry;

/// glibc's `_dl_cache_libcmp`: bytes compare as bytes, except that runs of digits compare as
/// numbers (`libfoo.so.10` after `libfoo.so.9`), and a digit sorts after any other byte. glibc
/// sums the digits into an `int` (a run of ten or more digits overflows there); here runs are
/// compared by value without a bound.
pub fn libcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        let Some(&y) = b.get(j) else {
            return Ordering::Greater;
        };
        let x = a[i];
        match (x.is_ascii_digit(), y.is_ascii_digit()) {
            (true, true) => {
                let (run_a, next_i) = digit_run(a, i);
                let (run_b, next_j) = digit_run(b, j);
                match compare_numbers(run_a, run_b) {
                    Ordering::Equal => (i, j) = (next_i, next_j),
                    other => return other,
                }
            }
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) if x != y => return x.cmp(&y),
            (false, false) => (i, j) = (i + 1, j + 1),
        }
    }
    match j < b.len() {
        true => Ordering::Less,
        false => Ordering::Equal,
    }
}

/// The digits starting at `at` and the index after them.
fn digit_run(s: &[u8], at: usize) -> (&[u8], usize) {
    let end = s[at..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(s.len(), |n| at + n);
    (&s[at..end], end)
}

/// Two runs of decimal digits by value.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
    let (a, b) = (&a[trim(a)..], &b[trim(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What ldconfig sorts an entry by.
#[derive(Clone, Copy)]
pub struct SortKey<'a> {
    pub soname: &'a [u8],
    pub flags: i32,
    /// Its `glibc-hwcaps` subdirectory's name, for such an entry.
    pub subdir: Option<&'a [u8]>,
    pub hwcap: u64,
    pub osversion: u32,
}

/// ldconfig's order of two entries in the file (`Less`: `e1` comes first). `subdirs`: the
/// cache's `glibc-hwcaps` subdirectory names, which entries name by index.
pub fn ldconfig_order(e1: &CacheEntry, e2: &CacheEntry, subdirs: &[Vec<u8>]) -> Ordering {
    key_order(&sort_key(e1, subdirs), &sort_key(e2, subdirs))
}

/// An entry's sort key; `subdirs` names its `glibc-hwcaps` subdirectory, if any.
pub fn sort_key<'a>(e: &'a CacheEntry, subdirs: &'a [Vec<u8>]) -> SortKey<'a> {
    SortKey {
        soname: &e.soname,
        flags: e.flags,
        subdir: e
            .hwcaps_index()
            .and_then(|i| subdirs.get(i))
            .map(Vec::as_slice),
        hwcap: e.hwcap,
        osversion: e.osversion,
    }
}

/// [`ldconfig_order`] on sort keys.
pub fn key_order(e1: &SortKey, e2: &SortKey) -> Ordering {
    libcmp(e2.soname, e1.soname)
        .then(e2.flags.cmp(&e1.flags))
        .then_with(|| match (e1.subdir, e2.subdir) {
            // Subdirectory entries come first (the loader stops at the first plain one).
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(b),
            (None, None) => {
                (e2.hwcap.count_ones().cmp(&e1.hwcap.count_ones())).then(e2.hwcap.cmp(&e1.hwcap))
            }
        })
        .then(e2.osversion.cmp(&e1.osversion))
}
