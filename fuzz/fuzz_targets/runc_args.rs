//! The runtime shim's reading of runc command lines (NUL-separated arguments).
#![no_main]
use libfuzzer_sys::fuzz_target;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|b| *b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    let invocation = gpuhook::runtime::args::parse(&args);
    let _ = invocation.creates_container();
});
