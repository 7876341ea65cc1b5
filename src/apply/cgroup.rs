//! Device cgroup: let the container open the device nodes it was given.
//!
//! cgroup v1: one `c MAJOR:MINOR rw` line per node in the container's `devices.allow`.
//! cgroup v2: device access is decided by eBPF programs attached to the container's cgroup,
//! all of which must allow; see [`super::bpf`].

use std::path::{Component, Path, PathBuf};

use super::{bpf, ApplyError};
use crate::container::ContainerHandle;
use crate::plan::DeviceRule;

/// Where the container's device rules live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCgroup {
    /// The v1 `devices` controller directory.
    V1(PathBuf),
    /// The unified (v2) cgroup directory.
    V2(PathBuf),
}

/// Reads `/proc/<pid>/cgroup` (lines `id:controllers:path`, parsed by the procfs crate) into
/// the container's device cgroup. A v1 `devices` line wins over the v2 line (hybrid hosts
/// manage devices in v1). `None` when the text does not parse or names neither.
pub fn parse_proc_cgroup(text: &str, cgroup_root: &Path) -> Option<DeviceCgroup> {
    use procfs::FromBufRead;
    let groups = procfs::ProcessCGroups::from_buf_read(text.as_bytes()).ok()?;
    let mut unified = None;
    for group in groups {
        let relative = group.pathname.trim_start_matches('/');
        // The kernel writes this file, but a path that climbs (`..`: a cgroup outside the
        // reader's cgroup namespace) must not lead the rule writes out of the cgroup root.
        let stays = Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if group.controllers.iter().any(|c| c == "devices") {
            return stays.then(|| DeviceCgroup::V1(cgroup_root.join("devices").join(relative)));
        }
        if group.hierarchy == 0 && group.controllers.is_empty() {
            unified = stays.then(|| DeviceCgroup::V2(cgroup_root.join(relative)));
        }
    }
    unified
}

/// The device cgroup of the verified container `handle`.
pub fn container_cgroup(
    handle: &ContainerHandle,
    cgroup_root: &Path,
) -> Result<DeviceCgroup, ApplyError> {
    let text = handle.read_proc("cgroup")?;
    parse_proc_cgroup(&text, cgroup_root).ok_or_else(|| ApplyError::Cgroup {
        path: PathBuf::from(format!("/proc/{}/cgroup", handle.pid())),
        message: "no devices (v1) or unified (v2) cgroup listed".into(),
    })
}

pub fn allow_devices(cgroup: &DeviceCgroup, rules: &[DeviceRule]) -> Result<(), ApplyError> {
    if rules.is_empty() {
        return Ok(());
    }
    match cgroup {
        DeviceCgroup::V1(dir) => {
            let allow = dir.join("devices.allow");
            for rule in rules {
                // One rule per write: the kernel parses a single rule per write(2).
                std::fs::write(&allow, format!("c {}:{} rw", rule.major, rule.minor)).map_err(
                    |e| ApplyError::Cgroup {
                        path: allow.clone(),
                        message: e.to_string(),
                    },
                )?;
            }
            Ok(())
        }
        DeviceCgroup::V2(dir) => bpf::allow_devices(dir, rules),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_devices_line_is_used() {
        let text = "12:devices:/user.slice/ctr\n11:cpu,cpuacct:/x\n0::/user.slice\n";
        assert_eq!(
            parse_proc_cgroup(text, Path::new("/sys/fs/cgroup")),
            Some(DeviceCgroup::V1(PathBuf::from(
                "/sys/fs/cgroup/devices/user.slice/ctr"
            )))
        );
    }

    #[test]
    fn v2_only_host() {
        let text = "0::/system.slice/docker-abc.scope\n";
        assert_eq!(
            parse_proc_cgroup(text, Path::new("/sys/fs/cgroup")),
            Some(DeviceCgroup::V2(PathBuf::from(
                "/sys/fs/cgroup/system.slice/docker-abc.scope"
            )))
        );
    }

    #[test]
    fn nothing_usable() {
        assert_eq!(parse_proc_cgroup("", Path::new("/c")), None);
        assert_eq!(
            parse_proc_cgroup("garbage\n3:cpu:/x\n", Path::new("/c")),
            None
        );
        // A line the kernel would never write makes the whole file unusable, even with a good
        // unified line after it (found by the proc_cgroup fuzz target).
        assert_eq!(parse_proc_cgroup("\u{fffd}\n0::/\n", Path::new("/c")), None);
    }

    #[test]
    fn a_path_climbing_out_of_the_cgroup_root_is_not_used() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            parse_proc_cgroup("5:devices:/../../etc\n0::/ok\n", root),
            None
        );
        assert_eq!(parse_proc_cgroup("0::/a/../../x\n", root), None);
        assert_eq!(
            parse_proc_cgroup("0::/../x\n0::/ok\n", root),
            Some(DeviceCgroup::V2(root.join("ok")))
        );
    }
}
