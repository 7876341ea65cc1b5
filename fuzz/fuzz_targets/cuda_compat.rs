//! The image's compat libcuda version pick (`inventory::cuda_compat::newest_libcuda_version`)
//! on any list of file names (newline-separated). Invariants: the result is one of the names'
//! versions, at least major.minor and numeric, and none is newer; no qualifying name gives
//! nothing; the order of the names does not change the version picked (by value).
#![no_main]
use libfuzzer_sys::fuzz_target;

use std::cmp::Ordering;

use gpuhook::inventory::cuda_compat::newest_libcuda_version;
use gpuhook::request::{compare_versions, parse_version};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text.split('\n').collect();
    let qualifying: Vec<Vec<u64>> = names
        .iter()
        .filter_map(|n| n.strip_prefix("libcuda.so."))
        .filter_map(parse_version)
        .filter(|v| v.len() >= 2)
        .collect();
    let picked = newest_libcuda_version(names.iter().copied());
    let Some(version) = picked else {
        assert!(qualifying.is_empty(), "a compat libcuda was missed");
        return;
    };
    assert!(names.contains(&format!("libcuda.so.{version}").as_str()));
    let parsed = parse_version(version).expect("the pick is a version");
    assert!(parsed.len() >= 2);
    assert!(qualifying
        .iter()
        .all(|v| compare_versions(v, &parsed) != Ordering::Greater));
    let reversed = newest_libcuda_version(names.iter().rev().copied()).expect("same names");
    let reversed = parse_version(reversed).expect("a version");
    assert_eq!(compare_versions(&reversed, &parsed), Ordering::Equal);
});
