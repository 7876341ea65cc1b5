//! The OCI state JSON a runtime writes on the hook's stdin.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gpuhook::hook::OciState::parse(data);
});
