//! The host ld cache reader (`/etc/ld.so.cache` under the driver root).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gpuhook::inventory::ldcache::parse(data);
});
