//! Where the hook runs, as far as user namespaces go, and what follows from it.
//!
//! - **On the host** (the initial user namespace) as root: runc, Docker (also with
//!   `userns-remap`), containerd, CRI-O and Podman run as root. Everything applies, the device
//!   cgroup included, whether or not the container has a user namespace of its own.
//! - **In a rootless engine's user namespace**: rootless Podman runs its runtime, and so every
//!   hook, as uid 0 of the user namespace it gives its containers, with all capabilities there
//!   and none on the host. Mounts work (the container's mount namespace is owned by that user
//!   namespace); the device cgroup cannot be changed from there (cgroup v1's `devices.allow`
//!   and cgroup v2's device programs need the host's `CAP_SYS_ADMIN`), and needs no change:
//!   runc and crun set no device rules in a user namespace either, so the device nodes' file
//!   modes decide. The hook leaves the cgroup alone there, as if `no-cgroups = true` were set.
//! - **Unprivileged on the host**: runc started by a normal user (`runc spec --rootless`) runs
//!   its hooks as that user, outside the container's user namespace, without capabilities.
//!   Nothing can be mounted into the container from there; the hook says so in one line.

/// The hook's surroundings, read from `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookContext {
    /// The host's initial user namespace.
    Host,
    /// Some other user namespace: a rootless engine's.
    RootlessEngine,
}

impl HookContext {
    /// Where the calling process runs. An unreadable `uid_map` counts as the host: the hook
    /// then tries everything and fails with the step's own error if a step cannot be done.
    pub fn current() -> HookContext {
        match std::fs::read_to_string("/proc/self/uid_map") {
            Ok(map) if !is_initial_uid_map(&map) => HookContext::RootlessEngine,
            _ => HookContext::Host,
        }
    }

    /// Why the device cgroup is left alone here, or `None` when it is edited.
    pub fn device_cgroup_skipped(self) -> Option<&'static str> {
        match self {
            HookContext::Host => None,
            HookContext::RootlessEngine => Some(
                "device cgroup rules: gpuhook runs in a rootless engine's user namespace, where no device rules can be added and the runtime sets none (the device nodes' file modes decide)",
            ),
        }
    }
}

/// The initial user namespace maps every id to itself: one line `0 0 4294967295`.
pub fn is_initial_uid_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|fields: &Vec<&str>| !fields.is_empty())
        .collect();
    matches!(lines.as_slice(), [fields] if fields[..] == ["0", "0", "4294967295"])
}

#[derive(Debug, thiserror::Error)]
#[error("gpuhook runs as uid {uid} without CAP_SYS_ADMIN, so it cannot enter the container's namespaces: the runtime runs its hooks unprivileged (runc started by a normal user does); run the container as root, or rootless with Podman, which runs hooks in its own user namespace (podman run --device nvidia.com/gpu=0 with the spec from `gpuhook cdi generate`)")]
pub struct UnprivilegedHook {
    pub uid: u32,
}

/// Fails with one clear line when the hook holds no `CAP_SYS_ADMIN` in its user namespace:
/// every way into a container (setns, mounts) needs it.
pub fn require_privileges() -> Result<(), UnprivilegedHook> {
    let admin = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    );
    match admin {
        Ok(false) => Err(UnprivilegedHook {
            uid: rustix::process::getuid().as_raw(),
        }),
        // Unreadable: let the steps themselves say what fails.
        Ok(true) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_map_of_all_ids_is_the_initial_namespace() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(is_initial_uid_map("0 0 4294967295"));
        // Rootless Podman: its root is the user, the rest its subordinate range.
        assert!(!is_initial_uid_map("0 1000 1\n1 100000 65536\n"));
        // Docker's userns-remap and runc bundles with mappings.
        assert!(!is_initial_uid_map("0 100000 65536\n"));
        // An identity map of fewer ids, or split in two, is some other namespace.
        assert!(!is_initial_uid_map("0 0 65536\n"));
        assert!(!is_initial_uid_map("0 0 1\n1 1 4294967294\n"));
        // A namespace with no map written yet maps nothing.
        assert!(!is_initial_uid_map(""));
    }

    #[test]
    fn the_cgroup_is_left_alone_in_a_rootless_engine_only() {
        assert_eq!(HookContext::Host.device_cgroup_skipped(), None);
        let reason = HookContext::RootlessEngine.device_cgroup_skipped().unwrap();
        assert!(reason.contains("rootless"), "{reason}");
    }
}
