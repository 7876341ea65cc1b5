//! Which container a cgroup path belongs to, from the names engines give their cgroups.
//!
//! Pure functions over the text of `/proc/<pid>/cgroup` (parsed by `procfs`), so every naming
//! scheme is unit-tested without root or engines.

use std::io::Cursor;

use procfs::FromBufRead;
use procfs::ProcessCGroups;

/// v1 hierarchies to take a process's path from, in order. `devices` first: every runtime
/// puts a container in its own device cgroup (it must, to confine its nodes), while `memory`
/// or `name=systemd` may be shared with or set by whatever started the runtime.
const V1_PREFERRED: [&str; 4] = ["devices", "pids", "memory", "name=systemd"];

/// The one path that stands for a process's cgroup: on cgroup v2 the unified path, on v1 (or
/// hybrid, where the unified line is whatever the runtime's parent had) the path in the
/// preferred v1 hierarchy. `None` for text that holds no cgroup line.
pub fn process_path(cgroup_text: &str) -> Option<String> {
    let groups = ProcessCGroups::from_buf_read(Cursor::new(cgroup_text.as_bytes())).ok()?;
    let v1: Vec<_> = groups.0.iter().filter(|g| g.hierarchy != 0).collect();
    if v1.is_empty() {
        return groups.0.first().map(|g| g.pathname.clone());
    }
    V1_PREFERRED
        .iter()
        .find_map(|wanted| {
            v1.iter()
                .find(|g| g.controllers.iter().any(|c| c == wanted))
                .map(|g| g.pathname.clone())
        })
        .or_else(|| v1.first().map(|g| g.pathname.clone()))
}

/// A container found in a cgroup path by its engine's naming scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognized {
    pub id: String,
    /// The engine the name points at; `None` where the scheme is shared (Kubernetes'
    /// cgroupfs layout is the same under containerd and CRI-O).
    pub runtime: Option<&'static str>,
}

/// systemd-driver scope names: `<prefix>-<id>.scope`.
const SCOPE_PREFIXES: [(&str, &str); 4] = [
    ("docker-", "docker"),
    ("cri-containerd-", "containerd"),
    ("crio-", "cri-o"),
    ("libpod-", "podman"),
];

/// The outermost container a cgroup path names, by the schemes of Docker (`docker-<id>.scope`,
/// `/docker/<id>`), containerd's CRI (`cri-containerd-<id>.scope`), CRI-O (`crio-<id>.scope`),
/// Podman (`libpod-<id>.scope`, `/libpod_parent/libpod-<id>`) and Kubernetes' cgroupfs layout
/// (`/kubepods/<class>/pod<uid>/<id>`). Ids must be 64 hex digits, as all of these engines
/// make them, so a unit or slice that merely starts like one is not taken for a container.
/// The outermost match is the container the host's engine knows (a container started inside
/// another one is invisible to it). Other names (plain runc's `/<id>`, containerd's
/// `/<namespace>/<id>`) need the runtime's state to be told from host cgroups: see
/// [`super::owner`].
pub fn recognize(path: &str) -> Option<Recognized> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    parts.iter().enumerate().find_map(|(i, part)| {
        let parent = i.checked_sub(1).map(|p| parts[p]);
        recognize_part(part, parent)
    })
}

fn recognize_part(part: &str, parent: Option<&str>) -> Option<Recognized> {
    if let Some(scope) = part.strip_suffix(".scope") {
        return SCOPE_PREFIXES.iter().find_map(|(prefix, runtime)| {
            let id = scope.strip_prefix(prefix)?;
            is_engine_id(id).then(|| Recognized {
                id: id.to_string(),
                runtime: Some(runtime),
            })
        });
    }
    let parent = parent?;
    if parent == "docker" && is_engine_id(part) {
        return Some(Recognized {
            id: part.to_string(),
            runtime: Some("docker"),
        });
    }
    if parent == "libpod_parent" {
        let id = part.strip_prefix("libpod-")?;
        return is_engine_id(id).then(|| Recognized {
            id: id.to_string(),
            runtime: Some("podman"),
        });
    }
    if parent.starts_with("pod") && is_engine_id(part) {
        return Some(Recognized {
            id: part.to_string(),
            runtime: None,
        });
    }
    None
}

/// 64 lower-case hex digits: the ids Docker, containerd's CRI, CRI-O and Podman generate.
fn is_engine_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `path` is `ancestor` or lies below it (`/a/b` is below `/a`, `/ab` is not).
pub fn is_within(path: &str, ancestor: &str) -> bool {
    path == ancestor
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a1b9c0d11e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123";

    #[test]
    fn the_path_comes_from_v2_or_the_devices_hierarchy() {
        assert_eq!(
            process_path("0::/system.slice/docker-x.scope\n").as_deref(),
            Some("/system.slice/docker-x.scope")
        );
        // Hybrid: the unified line is the runtime's parent's; memory is set by a supervisor.
        let hybrid = "9:name=systemd:/\n5:devices:/c1\n4:memory:/supervisor/abc\n0::/\n";
        assert_eq!(process_path(hybrid).as_deref(), Some("/c1"));
        assert_eq!(
            process_path("3:pids:/p\n2:cpu,cpuacct:/c\n").as_deref(),
            Some("/p")
        );
        assert_eq!(
            process_path("2:cpu,cpuacct:/c\n").as_deref(),
            Some("/c"),
            "no preferred hierarchy: the first v1 line"
        );
        assert_eq!(process_path(""), None);
        assert_eq!(process_path("garbage\n"), None);
    }

    #[test]
    fn every_engine_naming_scheme_is_recognized() {
        let cases = [
            (format!("/system.slice/docker-{ID}.scope"), Some("docker")),
            (format!("/docker/{ID}"), Some("docker")),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b.slice/cri-containerd-{ID}.scope"),
                Some("containerd"),
            ),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9.slice/crio-{ID}.scope"),
                Some("cri-o"),
            ),
            (format!("/machine.slice/libpod-{ID}.scope"), Some("podman")),
            (format!("/libpod_parent/libpod-{ID}"), Some("podman")),
            (format!("/kubepods/besteffort/pod1a2b-33/{ID}"), None),
            (format!("/kubepods/pod1a2b-33/{ID}"), None),
        ];
        for (path, runtime) in cases {
            assert_eq!(
                recognize(&path),
                Some(Recognized {
                    id: ID.to_string(),
                    runtime
                }),
                "{path}"
            );
        }
    }

    #[test]
    fn what_is_not_a_container_is_not_taken_for_one() {
        for path in [
            "/".to_string(),
            "/user.slice/user-0.slice/session-3.scope".to_string(),
            "/system.slice/docker.service".to_string(),
            // conmon, Podman's and CRI-O's monitor, runs beside the container, not in it.
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/system.slice/crio-conmon-{ID}.scope"),
            // Too short, upper case, not hex: not an engine's id.
            "/docker/3f2a1b9c0d11".to_string(),
            format!("/docker/{}", ID.to_uppercase()),
            format!("/system.slice/docker-{}.scope", "g".repeat(64)),
            // A bare hex name without the parent that gives it meaning.
            format!("/{ID}"),
            format!("/process_api/{}", &ID[..32]),
        ] {
            assert_eq!(recognize(&path), None, "{path}");
        }
    }

    #[test]
    fn the_outermost_container_wins() {
        let inner = "b".repeat(64);
        let path = format!("/system.slice/docker-{ID}.scope/docker/{inner}");
        assert_eq!(recognize(&path).map(|r| r.id), Some(ID.to_string()));
    }

    #[test]
    fn within_means_the_path_or_below_it() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(!is_within("/a", "/a/b"));
    }
}
