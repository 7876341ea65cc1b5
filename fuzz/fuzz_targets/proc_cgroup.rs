//! `/proc/<pid>/cgroup` to the container's device cgroup (`apply::cgroup::parse_proc_cgroup`).
//! Invariants: a file with any line that is not `hierarchy:controllers:path` (a u32 hierarchy;
//! `#` lines skipped, as procfs parses it) gives nothing at all, since the kernel never writes
//! one; otherwise the result is the first v1 line listing the `devices` controller, else the
//! last v2 (`0::`) line, else nothing; and its directory is the cgroup root joined with plain
//! path components only, never a `..` that would climb out of the cgroup filesystem.
#![no_main]
use libfuzzer_sys::fuzz_target;

use std::path::{Component, Path, PathBuf};

use gpuhook::apply::cgroup::{parse_proc_cgroup, DeviceCgroup};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let root = Path::new("/sys/fs/cgroup");
    let result = parse_proc_cgroup(&text, root);
    let parsed: Option<Vec<(&str, &str, &str)>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut f = l.splitn(3, ':');
            let fields = (f.next()?, f.next()?, f.next()?);
            fields.0.parse::<u32>().ok().map(|_| fields)
        })
        .collect();
    let Some(lines) = parsed else {
        assert!(result.is_none(), "a malformed line in {text:?} gave {result:?}");
        return;
    };
    let v1 = lines
        .iter()
        .find(|(_, c, _)| c.split(',').any(|c| c == "devices"));
    // procfs drops empty controller names, so `0:,:/x` is the unified line too.
    let v2 = lines
        .iter()
        .rev()
        .find(|(id, c, _)| id.parse::<u32>() == Ok(0) && c.split(',').all(str::is_empty));
    let plain = |p: &Path, under: &Path| {
        p.strip_prefix(under)
            .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))))
    };
    let expected = |under: PathBuf, path: &str| under.join(path.trim_start_matches('/'));
    match &result {
        Some(DeviceCgroup::V1(dir)) => {
            let (_, _, path) = v1.expect("a v1 result comes from a devices line");
            assert_eq!(dir, &expected(root.join("devices"), path));
            assert!(
                plain(dir, &root.join("devices")),
                "{dir:?} leaves the cgroup root"
            );
        }
        Some(DeviceCgroup::V2(dir)) => {
            assert!(v1.is_none(), "a devices line wins over the unified one");
            let (_, _, path) = v2.expect("a v2 result comes from a 0:: line");
            assert_eq!(dir, &expected(root.to_path_buf(), path));
            assert!(plain(dir, root), "{dir:?} leaves the cgroup root");
        }
        None => {
            // Nothing usable, or the line that would be used climbs out of the root.
            match (v1, v2) {
                (Some((_, _, path)), _) => {
                    let devices = root.join("devices");
                    assert!(
                        !plain(&expected(devices.clone(), path), &devices),
                        "{path:?} ignored"
                    );
                }
                (None, Some((_, _, path))) => {
                    assert!(
                        !plain(&expected(root.to_path_buf(), path), root),
                        "{path:?} ignored"
                    );
                }
                (None, None) => {}
            }
        }
    }
});
