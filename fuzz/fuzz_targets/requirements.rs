//! `NVIDIA_REQUIRE_*` expressions and `CUDA_VERSION`, then evaluated against hosts: the
//! check must obey the laws of `gpuhook_fuzz::laws` (groups are alternatives, conditions
//! conjunctions, an operator and its opposite disagree on a readable fact, unknown facts hold,
//! unreadable host versions do not).
#![no_main]
use libfuzzer_sys::fuzz_target;

use gpuhook::request::{parse_version, HostFacts, Requirement};
use gpuhook_fuzz::laws;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_version(text);
    let Ok(requirement) = Requirement::parse("NVIDIA_REQUIRE_CUDA", text) else {
        return;
    };
    let some = |s: &str| Some(s.to_string());
    let hosts = [
        HostFacts::default(),
        HostFacts {
            cuda: some("13.0"),
            driver: some("580.159.04"),
            arch: some("9.0"),
            brand: some("Tesla"),
        },
        HostFacts {
            cuda: some("12.4.1"),
            driver: some("garbage"),
            arch: None,
            brand: some("geforce"),
        },
    ];
    for host in &hosts {
        laws::check_requirement(&requirement, host);
    }
});
