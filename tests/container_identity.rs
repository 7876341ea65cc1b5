//! The pid in the OCI state is verified once, before anything is done to its process: a host
//! process (a reused pid), a namespace an unprivileged user made with `unshare -Urm`, or one
//! root made that has something else mounted at the bundle's rootfs path are all refused, and
//! nothing of theirs changes: not their cgroup's device rules, not the directory they mounted
//! there. And the hook's log goes to the host's file whatever namespace the hook is in.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::watch::HostWatch;
use support::*;

/// A v1 device cgroup that denies every device, removed on drop.
struct DenyAllCgroup(PathBuf);

impl DenyAllCgroup {
    fn new(name: &str) -> Option<DenyAllCgroup> {
        let root = Path::new("/sys/fs/cgroup/devices");
        if !root.is_dir() {
            return None;
        }
        let dir = root.join(format!("gpuhook-watched-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("devices.deny"), "a").unwrap();
        Some(DenyAllCgroup(dir))
    }
    fn add(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for DenyAllCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A process that is waiting (`sleep`), killed and reaped on drop.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sh -c "<script>; touch <ready>; exec sleep 60"` through `wrapper` and waits until it
/// is ready.
fn sleeper(wrapper: &[&str], script: &str, ready: &Path) -> Sleeper {
    let full = format!("{script} && touch {} && exec sleep 60", ready.display());
    let child = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .args(["sh", "-c", &full])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let sleeper = Sleeper(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "{wrapper:?} {script}: never ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sleeper
}

fn bundle(name: &str, sim: &Sim) -> Bundle {
    let log = std::env::temp_dir().join(format!("gpuhook-test-{name}.log"));
    Bundle::new(
        name,
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "true",
        &sim.config(&log, ""),
    )
}

/// The state names a live host process (a reused pid): it shares the hook's mount namespace.
/// Refused before anything is done: its cgroup (deny-all) keeps its rules (before, the hook
/// had already allowed the GPUs there when it refused).
#[test]
fn a_pid_in_the_host_mount_namespace_is_refused_and_its_cgroup_untouched() {
    if !prerequisites("a_pid_in_the_host_mount_namespace_is_refused_and_its_cgroup_untouched") {
        return;
    }
    let sim = Sim::build(1);
    let b = bundle("hostpid", &sim);
    let cgroup = DenyAllCgroup::new("hostpid");
    let ready = b.dir.path().join("ready");
    let sleeper = sleeper(&["env"], "true", &ready);
    if let Some(cgroup) = &cgroup {
        cgroup.add(sleeper.0.id());
    } else {
        eprintln!("!!!!!!!! no cgroup v1 device controller: the cgroup part is not checked here");
    }
    let host = HostWatch::new();
    let rootfs_before = tree_fingerprint(&b.rootfs());
    let (code, stderr) = prestart(&b, &state("hostpid", sleeper.0.id(), b.dir.path()));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("is in the host's own mount namespace"),
        "{stderr}"
    );
    assert_eq!(tree_fingerprint(&b.rootfs()), rootfs_before);
    host.assert_unchanged("host pid");
    drop(sleeper);
}

/// An unprivileged user (uid 65534) makes its own user and mount namespace and binds a
/// directory it cannot write (root's, 0755) at the bundle's rootfs path, then hands the root
/// hook its pid: refused, and nothing appears in that directory (before: the hook created
/// root-owned library placeholders in it).
#[test]
fn an_unprivileged_users_namespace_is_refused() {
    if !prerequisites_with(
        "an_unprivileged_users_namespace_is_refused",
        &["runc", "unshare", "setpriv"],
    ) {
        return;
    }
    let sim = Sim::build(1);
    let b = bundle("userns-attack", &sim);
    let victim = tempfile::tempdir().unwrap();
    for dir in [victim.path(), b.dir.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ready = std::env::temp_dir().join(format!("gpuhook-userns-ready-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let mount = format!(
        "mount --bind {} {}",
        victim.path().display(),
        b.rootfs().display()
    );
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "unshare",
        "-Urm",
    ];
    let sleeper = sleeper(&wrapper, &mount, &ready);
    let host = HostWatch::new().watch(victim.path());
    let (code, stderr) = prestart(&b, &state("userns-attack", sleeper.0.id(), b.dir.path()));
    let _ = std::fs::remove_file(&ready);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("owned by a user namespace that uid 65534 created"),
        "{stderr}"
    );
    host.assert_unchanged("unprivileged user's namespace");
    drop(sleeper);
}

/// Root's own `unshare -m` namespace with another directory bound at the rootfs path: the
/// rootfs seen there is not the bundle's, refused.
#[test]
fn a_namespace_whose_rootfs_is_not_the_bundles_is_refused() {
    if !prerequisites_with(
        "a_namespace_whose_rootfs_is_not_the_bundles_is_refused",
        &["runc", "unshare"],
    ) {
        return;
    }
    let sim = Sim::build(1);
    let b = bundle("rootfs-swap", &sim);
    let other = tempfile::tempdir().unwrap();
    let ready = b.dir.path().join("ready");
    let mount = format!(
        "mount --bind {} {}",
        other.path().display(),
        b.rootfs().display()
    );
    let sleeper = sleeper(
        &["unshare", "-m", "--propagation", "private"],
        &mount,
        &ready,
    );
    let host = HostWatch::new().watch(other.path());
    let (code, stderr) = prestart(&b, &state("rootfs-swap", sleeper.0.id(), b.dir.path()));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not the bundle's rootfs"), "{stderr}");
    host.assert_unchanged("rootfs swapped in another namespace");
    drop(sleeper);
}

/// The log file is a path under the rootfs where the container has a tmpfs: the hook opens it
/// before entering the container's mount namespace, so its lines land in the host's file and
/// not in the container's tmpfs.
#[test]
fn the_log_is_the_hosts_file_whatever_namespace_the_hook_is_in() {
    if !prerequisites("the_log_is_the_hosts_file_whatever_namespace_the_hook_is_in") {
        return;
    }
    let sim = Sim::build(1);
    let dir = tempfile::tempdir().unwrap();
    let b = Bundle::new("log", &["NVIDIA_VISIBLE_DEVICES=all"], "ls /tmp", "");
    let log = b.rootfs().join("tmp/hook.log");
    std::fs::write(b.dir.path().join("gpuhook.toml"), sim.config(&log, "")).unwrap();
    b.edit_spec(|spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
            }));
    });
    let out = b.run().expect_success();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&format!("container={} gpus=[0=", b.id)),
        "the host's log file lacks the container's line:\n{text}"
    );
    assert!(
        !out.stdout.contains("hook.log"),
        "the line went to the container's /tmp"
    );
    drop(dir);
}
