//! Readers for the driver's procfs files (`/proc/driver/nvidia`). Each is a list of
//! `Key: value` lines; hand-written because they are one `split_once` per line.

use crate::request::parse_version;

/// The GPU facts `gpus/<bus id>/information` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInformation {
    pub model: String,
    pub uuid: String,
    pub bus_id: String,
    pub minor: u32,
}

/// The driver version from the first line of `version`:
/// `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build ...`.
pub fn parse_driver_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|word| word.contains('.') && parse_version(word).is_some())
        .map(str::to_string)
}

/// Parses one `information` file; `None` when a required field is missing or malformed.
pub fn parse_gpu_information(text: &str) -> Option<GpuInformation> {
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let uuid = field("GPU UUID")?;
    if !uuid.starts_with("GPU-") {
        return None;
    }
    Some(GpuInformation {
        model: field("Model")?,
        uuid,
        bus_id: field("Bus Location")?,
        minor: field("Device Minor")?.parse().ok()?,
    })
}

/// `params` as a container should see it: `ModifyDeviceFiles: 0`, so the driver's user-space
/// never tries to create device nodes inside the container.
pub fn container_params(text: &str) -> String {
    let mut out = String::new();
    let mut seen = false;
    for line in text.lines() {
        if line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim() == "ModifyDeviceFiles")
        {
            out.push_str("ModifyDeviceFiles: 0\n");
            seen = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !seen {
        out.push_str("ModifyDeviceFiles: 0\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 42\n\
        GPU UUID: \t GPU-5e1f0000-0000-4000-8000-000000000001\nVideo BIOS: \t 96.00.99.00.01\n\
        Bus Type: \t PCIe\nDMA Size: \t 52 bits\nBus Location: \t 0000:00:06.0\n\
        Device Minor: \t 0\nGPU Excluded:\t No\n";

    #[test]
    fn reads_the_real_version_line() {
        let text = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22)  Thu Nov  6 05:44:24 UTC 2025\nGCC version:  gcc version 12.2.0\n";
        assert_eq!(parse_driver_version(text).as_deref(), Some("580.159.04"));
        let proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n";
        assert_eq!(
            parse_driver_version(proprietary).as_deref(),
            Some("535.104.05")
        );
        assert_eq!(parse_driver_version("garbage"), None);
        assert_eq!(parse_driver_version("NVRM version: no number here"), None);
    }

    #[test]
    fn reads_gpu_information() {
        let info = parse_gpu_information(INFO).unwrap();
        assert_eq!(info.model, "NVIDIA H100 80GB HBM3");
        assert_eq!(info.uuid, "GPU-5e1f0000-0000-4000-8000-000000000001");
        assert_eq!(info.bus_id, "0000:00:06.0");
        assert_eq!(info.minor, 0);
    }

    #[test]
    fn incomplete_information_is_rejected() {
        assert_eq!(parse_gpu_information(""), None);
        assert_eq!(
            parse_gpu_information(&INFO.replace("Device Minor: \t 0", "Device Minor: x")),
            None
        );
        assert_eq!(
            parse_gpu_information(&INFO.replace("GPU-5e1f", "5e1f")),
            None
        );
    }

    #[test]
    fn params_for_containers_never_modify_device_files() {
        let out = container_params("ResmanDebugLevel: 4294967295\nModifyDeviceFiles: 1\n");
        assert_eq!(out, "ResmanDebugLevel: 4294967295\nModifyDeviceFiles: 0\n");
        assert_eq!(container_params(""), "ModifyDeviceFiles: 0\n");
    }
}
