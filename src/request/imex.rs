//! `NVIDIA_IMEX_CHANNELS`: which IMEX channels (multi-node NVLink memory export) a container
//! may use: `all`, or channel numbers; also `/var/run/nvidia-container-devices/imex/<n>` mounts.

use std::path::Path;

use super::first_seen::FirstSeen;
use super::{RequestError, VOLUME_MOUNT_DIR};

pub const IMEX_CHANNELS_ENV: &str = "NVIDIA_IMEX_CHANNELS";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ImexChannels {
    #[default]
    None,
    All,
    List(Vec<u32>),
}

/// Parses the variable's value; empty, `none` and `void` ask for nothing. Repeats are
/// dropped, the first appearance keeps its place.
pub fn parse(value: &str) -> Result<ImexChannels, RequestError> {
    let value = value.trim();
    match value {
        "" | "none" | "void" => return Ok(ImexChannels::None),
        "all" => return Ok(ImexChannels::All),
        _ => {}
    }
    let mut channels = FirstSeen::new();
    for item in value.split(',').map(str::trim) {
        let channel = item
            .parse::<u32>()
            .ok()
            .filter(|_| item.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| RequestError::Imex {
                value: value.to_string(),
                item: item.to_string(),
            })?;
        channels.insert(channel);
    }
    Ok(ImexChannels::List(channels.into_vec()))
}

/// `<VOLUME_MOUNT_DIR>/imex/<n>` gives channel `n`.
pub fn volume_mount_channel(destination: &Path) -> Option<String> {
    let name = destination
        .strip_prefix(Path::new(VOLUME_MOUNT_DIR).join("imex"))
        .ok()?
        .to_str()?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("").unwrap(), ImexChannels::None);
        assert_eq!(parse("void").unwrap(), ImexChannels::None);
        assert_eq!(parse("all").unwrap(), ImexChannels::All);
        assert_eq!(parse("0, 3,0").unwrap(), ImexChannels::List(vec![0, 3]));
        for bad in ["x", "-1", "1,,2", "+1", "0x1"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("NVIDIA_IMEX_CHANNELS="), "{bad}: {err}");
        }
        assert_eq!(
            volume_mount_channel(Path::new("/var/run/nvidia-container-devices/imex/2")),
            Some("2".into())
        );
        assert_eq!(
            volume_mount_channel(Path::new("/var/run/nvidia-container-devices/0")),
            None
        );
    }
}
