//! A MIG capability file's `DeviceFileMinor` (`inventory::mig::parse_device_file_minor`).
//! Invariants: a result comes from the first `DeviceFileMinor` line and is its number; a file
//! that starts with `DeviceFileMinor: <m>` gives `m` whatever follows.
#![no_main]
use libfuzzer_sys::fuzz_target;

use gpuhook::inventory::mig::parse_device_file_minor;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let first = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "DeviceFileMinor")
        .map(|(_, v)| v.trim());
    match parse_device_file_minor(&text) {
        Some(minor) => assert_eq!(first.and_then(|v| v.parse::<u32>().ok()), Some(minor)),
        None => assert!(first.is_none_or(|v| v.parse::<u32>().is_err()), "{first:?}"),
    }
    let minor = u32::from_le_bytes(*head);
    let prefixed = format!("DeviceFileMinor: {minor}\n{text}");
    assert_eq!(parse_device_file_minor(&prefixed), Some(minor));
});
