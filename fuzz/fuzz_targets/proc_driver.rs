//! `/proc/driver/nvidia` readers: version, gpus/*/information, params.
#![no_main]
use libfuzzer_sys::fuzz_target;

use gpuhook::inventory::proc_driver;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = proc_driver::parse_driver_version(&text);
    let _ = proc_driver::parse_gpu_information(&text);
    let _ = proc_driver::container_params(&text);
});
