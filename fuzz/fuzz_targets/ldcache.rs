//! The ld cache reader and writer (`/etc/ld.so.cache`: the host's under the driver root, and
//! the image's, which the hook extends in-process). Whatever the bytes: no panic, bounded
//! work; a cache that parses takes the driver's entries, and what is written parses back to
//! the same cache, sorted the way the loader's binary search needs; the in-place splice, where
//! it applies, gives the very cache the rebuild gives.
#![no_main]
use std::cmp::Ordering;

use gpuhook::ldcache::{self, order, CacheEntry};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/usr/lib/x86_64-linux-gnu";
const SONAMES: [&str; 2] = ["libcuda.so.1", "libnvidia-ml.so.1"];

fn driver_entry(soname: &str) -> CacheEntry {
    CacheEntry {
        flags: 0x0303,
        soname: soname.as_bytes().to_vec(),
        path: format!("{DIR}/{soname}").into_bytes(),
        osversion: 0,
        hwcap: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = gpuhook::inventory::ldcache::parse(data);
    let added: Vec<CacheEntry> = SONAMES.iter().map(|s| driver_entry(s)).collect();
    let spliced = ldcache::add_to_file(data, &added);
    let Ok(mut cache) = ldcache::parse(data) else {
        return;
    };
    cache.add(added);
    // The fast splice, where it applies, gives the rebuild's cache.
    if let Ok(Some(bytes)) = spliced {
        let read = ldcache::parse(&bytes).expect("a spliced cache parses");
        assert_eq!(read, cache, "splice and rebuild differ");
    }
    let again = ldcache::parse(&ldcache::write(&cache)).expect("a written cache parses");
    assert_eq!(again, cache, "written and read back differ");
    let sorted = again.entries.windows(2).all(|w| {
        order::ldconfig_order(&w[0], &w[1], &again.hwcaps_subdirs) != Ordering::Greater
    });
    assert!(sorted, "entries out of the loader's order");
    for soname in SONAMES {
        // Of the plain entries of this soname and kind, the added one comes first (an image's
        // entry with hwcap bits or an OS version may rank before it, as with ldconfig).
        let first = again.entries.iter().find(|e| {
            e.soname == soname.as_bytes() && e.flags == 0x0303 && e.hwcap == 0 && e.osversion == 0
        });
        let expected = format!("{DIR}/{soname}");
        assert!(
            first.is_some_and(|e| e.path == expected.as_bytes()),
            "{soname}: the added entry is not the first of its kind"
        );
    }
});
