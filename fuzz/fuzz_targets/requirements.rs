//! `NVIDIA_REQUIRE_*` expressions and `CUDA_VERSION`, then evaluated against a host.
#![no_main]
use libfuzzer_sys::fuzz_target;

use gpuhook::request::{parse_version, Requirement};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_version(text);
    if let Ok(requirement) = Requirement::parse("NVIDIA_REQUIRE_CUDA", text) {
        let _ = format!("{requirement:?}");
    }
});
