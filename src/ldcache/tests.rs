use std::cmp::Ordering;

use super::order::libcmp;
use super::*;

fn entry(flags: i32, soname: &str, path: &str) -> CacheEntry {
    CacheEntry {
        flags,
        soname: soname.as_bytes().to_vec(),
        path: path.as_bytes().to_vec(),
        osversion: 0,
        hwcap: 0,
    }
}

/// glibc's `search_cache`: binary search on the soname, back to the first entry of that
/// soname, then the first entry of the wanted flags.
fn loader_lookup<'a>(cache: &'a LdCache, soname: &str, flags: i32) -> Option<&'a [u8]> {
    let entries = &cache.entries;
    let (mut left, mut right) = (0i64, entries.len() as i64 - 1);
    while left <= right {
        let middle = ((left + right) / 2) as usize;
        match libcmp(soname.as_bytes(), &entries[middle].soname) {
            Ordering::Equal => {
                let mut first = middle;
                while first > 0 && entries[first - 1].soname == soname.as_bytes() {
                    first -= 1;
                }
                return entries[first..]
                    .iter()
                    .take_while(|e| e.soname == soname.as_bytes())
                    .find(|e| e.flags == flags)
                    .map(|e| e.path.as_slice());
            }
            Ordering::Less => left = middle as i64 + 1,
            Ordering::Greater => right = middle as i64 - 1,
        }
    }
    None
}

#[test]
fn libcmp_compares_digit_runs_as_numbers() {
    assert_eq!(libcmp(b"libfoo.so.10", b"libfoo.so.9"), Ordering::Greater);
    assert_eq!(libcmp(b"libfoo.so.9", b"libfoo.so.10"), Ordering::Less);
    assert_eq!(libcmp(b"libfoo.so.01", b"libfoo.so.1"), Ordering::Equal);
    assert_eq!(libcmp(b"libfoo.so", b"libfoo.so.1"), Ordering::Less);
    assert_eq!(libcmp(b"libfoo.so.1", b"libfoo.so"), Ordering::Greater);
    // A digit sorts after any other byte, even one greater than '9'.
    assert_eq!(libcmp(b"lib1", b"libz"), Ordering::Greater);
    assert_eq!(libcmp(b"liba", b"libb"), Ordering::Less);
    // Runs longer than glibc's int holds still compare by value.
    assert_eq!(
        libcmp(b"x99999999999999999999", b"x100000000000000000000"),
        Ordering::Less
    );
}

#[test]
fn the_systems_own_cache_reads_and_writes_back_unchanged() {
    // Every glibc machine the tests run on has one, written by the real ldconfig.
    let data = std::fs::read("/etc/ld.so.cache").unwrap();
    let cache = parse(&data).unwrap();
    assert!(cache.entries.iter().any(|e| e.soname == b"libc.so.6"));
    let again = parse(&write(&cache)).unwrap();
    assert_eq!(again, cache);
    // ldconfig left it sorted the way this module sorts.
    let mut sorted = cache.clone();
    sorted.add(Vec::new());
    assert_eq!(sorted.entries, cache.entries);
}

#[test]
fn added_libraries_are_found_by_the_loaders_search() {
    let data = std::fs::read("/etc/ld.so.cache").unwrap();
    let mut cache = parse(&data).unwrap();
    let before = cache.entries.len();
    let dir = "/usr/lib/x86_64-linux-gnu";
    cache.add(vec![
        entry(0x0303, "libcuda.so.1", &format!("{dir}/libcuda.so.1")),
        entry(
            0x0303,
            "libnvidia-ml.so.1",
            &format!("{dir}/libnvidia-ml.so.1"),
        ),
        entry(
            0x0003,
            "libcuda.so.1",
            "/usr/lib/i386-linux-gnu/libcuda.so.1",
        ),
    ]);
    let cache = parse(&write(&cache)).unwrap();
    assert_eq!(cache.entries.len(), before + 3);
    let found = |soname: &str, flags| loader_lookup(&cache, soname, flags).map(<[u8]>::to_vec);
    assert_eq!(
        found("libcuda.so.1", 0x0303),
        Some(format!("{dir}/libcuda.so.1").into())
    );
    assert_eq!(
        found("libcuda.so.1", 0x0003),
        Some(b"/usr/lib/i386-linux-gnu/libcuda.so.1".to_vec())
    );
    assert!(found("libnvidia-ml.so.1", 0x0303).is_some());
    // Every one of the system's own libraries is still found where it was.
    for e in parse(&data)
        .unwrap()
        .entries
        .iter()
        .filter(|e| e.hwcap == 0)
    {
        let soname = String::from_utf8_lossy(&e.soname).into_owned();
        assert!(found(&soname, e.flags).is_some(), "{soname} lost");
    }
}

#[test]
fn an_added_library_comes_before_another_directorys_of_the_same_soname() {
    let mut cache = LdCache::default();
    cache.add(vec![entry(
        0x0303,
        "libcuda.so.1",
        "/usr/local/cuda/compat/libcuda.so.1",
    )]);
    cache.add(vec![entry(
        0x0303,
        "libcuda.so.1",
        "/usr/lib64/libcuda.so.1",
    )]);
    assert_eq!(cache.entries[0].path, b"/usr/lib64/libcuda.so.1");
    assert_eq!(cache.entries.len(), 2);
    // The same path again (the hook run twice) replaces it rather than adding one.
    cache.add(vec![entry(
        0x0303,
        "libcuda.so.1",
        "/usr/lib64/libcuda.so.1",
    )]);
    assert_eq!(cache.entries.len(), 2);
}

#[test]
fn hwcaps_subdirectories_and_generator_survive_a_rewrite() {
    let mut cache = LdCache {
        hwcaps_subdirs: vec![b"x86-64-v3".to_vec(), b"x86-64-v4".to_vec()],
        generator: Some(b"ldconfig (GNU libc) stable release version 2.36".to_vec()),
        ..LdCache::default()
    };
    let mut v3 = entry(
        0x0303,
        "libz.so.1",
        "/usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1",
    );
    v3.hwcap = HWCAP_EXTENSION;
    let mut v4 = v3.clone();
    v4.hwcap = HWCAP_EXTENSION | 1;
    cache.add(vec![
        entry(0x0303, "libz.so.1", "/usr/lib/libz.so.1"),
        v4,
        v3,
    ]);
    // Subdirectory entries first, by name; then the plain one.
    assert_eq!(cache.entries[0].hwcaps_index(), Some(0));
    assert_eq!(cache.entries[1].hwcaps_index(), Some(1));
    assert_eq!(cache.entries[2].hwcaps_index(), None);
    let bytes = write(&cache);
    assert_eq!(parse(&bytes).unwrap(), cache);
    // An entry naming a subdirectory the file does not have is refused.
    cache.hwcaps_subdirs.pop();
    assert_eq!(
        parse(&write(&cache)),
        Err(LdCacheError::BadExtension(
            "an entry names a missing subdirectory"
        ))
    );
}

#[test]
fn the_old_formats_block_is_skipped() {
    let new = write(&LdCache {
        entries: vec![entry(0x0303, "libnvidia-ml.so.1", "/x/libnvidia-ml.so.1")],
        ..LdCache::default()
    });
    let mut data = OLD_MAGIC.to_vec();
    data.push(0);
    data.extend_from_slice(&1u32.to_ne_bytes());
    data.extend_from_slice(&[0u8; 12]);
    data.resize(32, 0);
    data.extend(new);
    assert_eq!(
        parse(&data).unwrap().entries[0].soname,
        b"libnvidia-ml.so.1"
    );
}

#[test]
fn garbage_truncation_and_excess_are_errors_not_panics() {
    assert_eq!(parse(b""), Err(LdCacheError::NoHeader));
    assert_eq!(parse(b"hello world"), Err(LdCacheError::NoHeader));
    let data = write(&LdCache {
        entries: vec![entry(0x0303, "a", "b")],
        generator: Some(b"g".to_vec()),
        ..LdCache::default()
    });
    for cut in 0..data.len() {
        assert!(parse(&data[..cut]).is_err(), "cut at {cut}");
    }
    let mut huge = NEW_MAGIC.to_vec();
    huge.extend_from_slice(&u32::MAX.to_ne_bytes());
    huge.resize(HEADER_LEN, 0);
    assert_eq!(parse(&huge), Err(LdCacheError::TooLarge("entry count")));
    let mut bad_offset = data.clone();
    bad_offset[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&9999u32.to_ne_bytes());
    assert!(parse(&bad_offset).is_err());
    let long = "l".repeat(MAX_STRING_BYTES + 1);
    let data = write(&LdCache {
        entries: vec![entry(0x0303, &long, "b")],
        ..LdCache::default()
    });
    assert_eq!(parse(&data), Err(LdCacheError::TooLarge("string")));
    let mut other_endian = write(&LdCache::default());
    other_endian[28] ^= 1;
    assert_eq!(parse(&other_endian), Err(LdCacheError::WrongEndian));
}

#[test]
fn many_entries_naming_one_long_string_are_bounded() {
    // 20,000 entries all naming one 4 KiB string: 80 MiB if each were copied.
    let long = "l".repeat(MAX_STRING_BYTES);
    let cache = LdCache {
        entries: vec![entry(0x0303, &long, &long); 20_000],
        ..LdCache::default()
    };
    let data = write(&cache);
    assert!(data.len() < 1 << 20, "one string stored once");
    assert_eq!(
        parse(&data),
        Err(LdCacheError::TooLarge("strings named by the entries"))
    );
}

/// The splice and the rebuild of `data` with `added`, both read back.
fn both_ways(data: &[u8], added: Vec<CacheEntry>) -> (Option<LdCache>, LdCache) {
    let spliced = add_to_file(data, &added)
        .unwrap()
        .map(|bytes| parse(&bytes).unwrap());
    let mut rebuilt = parse(data).unwrap();
    rebuilt.add(added);
    (spliced, rebuilt)
}

fn driver_entries() -> Vec<CacheEntry> {
    let dir = "/usr/lib/x86_64-linux-gnu";
    vec![
        entry(0x0303, "libcuda.so.1", &format!("{dir}/libcuda.so.1")),
        entry(
            0x0303,
            "libnvidia-ml.so.1",
            &format!("{dir}/libnvidia-ml.so.1"),
        ),
        entry(0x0303, "libc.so.6", "/opt/other/libc.so.6"),
        entry(
            0x0003,
            "libcuda.so.1",
            "/usr/lib/i386-linux-gnu/libcuda.so.1",
        ),
        entry(0x0303, "zzz.so.1", "/z/zzz.so.1"),
        entry(0x0303, "aaa.so.1", "/a/aaa.so.1"),
    ]
}

#[test]
fn splicing_into_a_real_cache_gives_what_a_rebuild_gives() {
    let data = std::fs::read("/etc/ld.so.cache").unwrap();
    let (spliced, rebuilt) = both_ways(&data, driver_entries());
    assert_eq!(
        spliced.as_ref(),
        Some(&rebuilt),
        "the system's cache takes the fast path"
    );
    // And into an empty one, and one with a generator only.
    for generator in [None, Some(b"ldconfig (GNU libc) 2.36".to_vec())] {
        let empty = write(&LdCache {
            generator,
            ..LdCache::default()
        });
        let (spliced, rebuilt) = both_ways(&empty, driver_entries());
        assert_eq!(spliced, Some(rebuilt));
    }
}

#[test]
fn what_the_splice_cannot_take_is_left_to_a_rebuild() {
    let sorted = LdCache {
        entries: vec![
            entry(0x0303, "libz.so.1", "/lib/libz.so.1"),
            entry(0x0303, "liba.so.1", "/lib/liba.so.1"),
        ],
        ..LdCache::default()
    };
    let data = write(&sorted);
    // A path already there (a second run).
    let again = vec![entry(0x0303, "liba.so.1", "/lib/liba.so.1")];
    assert_eq!(add_to_file(&data, &again).unwrap(), None);
    // Entries out of the loader's order.
    let mut unsorted = sorted.clone();
    unsorted.entries.reverse();
    assert_eq!(
        add_to_file(&write(&unsorted), &driver_entries()).unwrap(),
        None
    );
    // A glibc-hwcaps subdirectory.
    let mut hwcaps = sorted.clone();
    hwcaps.hwcaps_subdirs = vec![b"x86-64-v3".to_vec()];
    hwcaps.entries[0].hwcap = HWCAP_EXTENSION;
    assert_eq!(
        add_to_file(&write(&hwcaps), &driver_entries()).unwrap(),
        None
    );
    // Each way, the bytes come out as the rebuild's.
    for cache in [sorted, unsorted, hwcaps] {
        let data = write(&cache);
        let bytes = LdCache::add_to_bytes(&data, driver_entries())
            .unwrap()
            .concat();
        let (_, rebuilt) = both_ways(&data, driver_entries());
        assert_eq!(parse(&bytes).unwrap(), rebuilt);
    }
}
