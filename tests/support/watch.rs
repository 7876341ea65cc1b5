//! What a hostile image or a fault must never change on the host: a canary tree of host paths
//! an attack aims at, `/etc`, the host's mount table, the device rules of every cgroup that
//! existed before, and any further tree a test names (the driver's MPS pipe directory, a
//! volume), recorded before and compared after.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{host_mounts, sh, tree_fingerprint};

/// Host files whose bytes are compared, not only their size (the classic targets).
const HOST_FILES: &[&str] = &["/etc/ld.so.cache", "/etc/passwd", "/etc/ld.so.conf"];

/// A host canary tree outside every bundle: directories named like the places the hook writes
/// (`lib`, `bin`, `fw`, `dev`, `run`, `etc`), a file standing in for the host's ld cache and
/// `nvidia-smi`, and a real shared library in `lib/` (an ldconfig that reached `lib/` would
/// leave a `libvictim.so.1` link there).
pub struct HostWatch {
    victim: tempfile::TempDir,
    victim_before: BTreeMap<PathBuf, Vec<u8>>,
    etc_before: BTreeSet<String>,
    files_before: Vec<Option<Vec<u8>>>,
    mounts_before: BTreeSet<String>,
    cgroups_before: BTreeMap<PathBuf, String>,
    trees: Vec<(PathBuf, BTreeMap<PathBuf, Vec<u8>>)>,
}

impl HostWatch {
    pub fn new() -> HostWatch {
        let victim = tempfile::Builder::new()
            .prefix("gpuhook-victim-")
            .tempdir()
            .unwrap();
        let v = victim.path();
        for dir in ["lib", "bin", "fw", "dev", "run", "etc", "proc"] {
            std::fs::create_dir_all(v.join(dir)).unwrap();
        }
        std::fs::write(v.join("ld.so.cache"), b"host cache").unwrap();
        std::fs::write(v.join("etc/ld.so.cache"), b"host cache").unwrap();
        std::fs::write(v.join("nvidia-smi"), b"host nvidia-smi").unwrap();
        // A config an image's ld.so.conf could `include` through a magic link.
        std::fs::write(v.join("etc/evil.conf"), format!("{}/lib\n", v.display())).unwrap();
        std::fs::write(v.join("lib/victim.c"), b"int victim(void) { return 1; }\n").unwrap();
        sh(Command::new("gcc")
            .args(["-shared", "-fPIC", "-Wl,-soname,libvictim.so.1", "-o"])
            .arg(v.join("lib/libvictim.so.1.0"))
            .arg(v.join("lib/victim.c")));
        HostWatch {
            victim_before: contents(v),
            victim,
            etc_before: etc_fingerprint(),
            files_before: HOST_FILES.iter().map(|f| std::fs::read(f).ok()).collect(),
            mounts_before: host_mounts(),
            cgroups_before: device_rules(),
            trees: Vec::new(),
        }
    }

    /// Also compares `dir` (a directory of the host the hook must not write: the driver's MPS
    /// pipe directory, a volume) byte for byte.
    pub fn watch(mut self, dir: &Path) -> HostWatch {
        self.trees.push((dir.to_path_buf(), contents(dir)));
        self
    }

    /// The canary tree's host path.
    pub fn path(&self) -> &Path {
        self.victim.path()
    }

    /// `path()` as a string, for symlink targets.
    pub fn dir(&self) -> String {
        self.victim.path().display().to_string()
    }

    pub fn assert_unchanged(&self, context: &str) {
        self.assert_unchanged_but(&BTreeMap::new(), context);
    }

    /// Entries of the canary tree added or changed since `new`, with their bytes.
    pub fn changes(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        contents(self.victim.path())
            .into_iter()
            .filter(|(path, bytes)| self.victim_before.get(path) != Some(bytes))
            .collect()
    }

    /// Like `assert_unchanged`, where the canary tree may also hold exactly `expected`
    /// (what something other than gpuhook is known to write there).
    pub fn assert_unchanged_but(&self, expected: &BTreeMap<PathBuf, Vec<u8>>, context: &str) {
        let now = contents(self.victim.path());
        let mut allowed = self.victim_before.clone();
        allowed.extend(expected.iter().map(|(k, v)| (k.clone(), v.clone())));
        assert!(
            now == allowed,
            "{context}: the host canary tree {} changed: now {:?}",
            self.dir(),
            now.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            etc_fingerprint(),
            self.etc_before,
            "{context}: host /etc changed"
        );
        for (file, before) in HOST_FILES.iter().zip(&self.files_before) {
            assert!(
                std::fs::read(file).ok() == *before,
                "{context}: host {file} changed"
            );
        }
        assert_eq!(
            without_test_mounts(host_mounts()),
            without_test_mounts(self.mounts_before.clone()),
            "{context}: host mount table changed"
        );
        for (dir, before) in &self.trees {
            assert!(
                contents(dir) == *before,
                "{context}: {} changed: now {:?}",
                dir.display(),
                contents(dir).keys().collect::<Vec<_>>()
            );
        }
        // Cgroups come and go with the containers of tests running beside this one; the rules
        // of one that was there before and still is must not have changed.
        let now = device_rules();
        for (cgroup, rules) in &self.cgroups_before {
            if let Some(current) = now.get(cgroup) {
                assert_eq!(
                    current,
                    rules,
                    "{context}: device rules of cgroup {} changed",
                    cgroup.display()
                );
            }
        }
    }
}

/// Cgroups of containers (this suite's bundles, named after their ids; the engines'), which
/// change with the tests running beside the one watching. A test's own watched cgroup is
/// named `gpuhook-watched-...`.
const CONTAINER_CGROUPS: &[&str] = &[
    "gpuhook-",
    "docker",
    "libpod",
    "machine",
    "kubepods",
    "k8s.io",
    "system.slice",
];

fn is_container_cgroup(dir: &Path) -> bool {
    dir.components().any(|c| {
        let name = c.as_os_str().to_string_lossy();
        !name.starts_with("gpuhook-watched-")
            && CONTAINER_CGROUPS.iter().any(|p| name.starts_with(p))
    })
}

/// `devices.list` of every cgroup v1 device cgroup that is not a container's (none on a
/// v2-only host).
pub fn device_rules() -> BTreeMap<PathBuf, String> {
    let root = Path::new("/sys/fs/cgroup/devices");
    let mut rules = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        if is_container_cgroup(dir.strip_prefix(root).unwrap_or(&dir)) {
            continue;
        }
        if let Ok(list) = std::fs::read_to_string(dir.join("devices.list")) {
            rules.insert(dir.clone(), list);
        }
        stack.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    rules
}

impl Default for HostWatch {
    fn default() -> HostWatch {
        HostWatch::new()
    }
}

/// Mount points tests of this binary mount on purpose (a full tmpfs, a read-only bind): left
/// out of every test's mount table comparison, since tests run in parallel.
static TEST_MOUNTS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Records `mount_point` as a test's own mount; call before mounting there.
pub fn test_mount(mount_point: &Path) {
    TEST_MOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(mount_point.to_path_buf());
}

/// Where container engines mount in the host's namespace: the private daemons of the engine,
/// CDI and package suites (which may run at the same time, from this checkout or another) and
/// system engines. No path an attack on the hook aims at (the canary tree, a bundle's rootfs,
/// `/etc`, `/usr`, `/lib`, `/dev`, `/run/nvidia-persistenced`, `/proc`) starts so.
const ENGINE_MOUNTS: &[&str] = &[
    "/tmp/gpuhook-docker-",
    "/tmp/gpuhook-pkg-docker-",
    "/tmp/gpuhook-containerd-",
    "/tmp/gpuhook-cri-",
    "/tmp/gpuhook-podman-",
    "/tmp/gpuhook-cdi-",
    "/tmp/gpuhook-cri-",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/run/docker",
    "/run/containerd",
    "/run/containers",
    "/run/netns",
    "/run/user",
    "/var/run/docker",
    "/var/run/netns",
];

fn without_test_mounts(mounts: BTreeSet<String>) -> BTreeSet<String> {
    let ours = TEST_MOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    mounts
        .into_iter()
        .filter(|m| {
            let point = m.split(' ').next().unwrap_or("");
            !ours.iter().any(|p| Path::new(point) == p)
                && !ENGINE_MOUNTS.iter().any(|prefix| point.starts_with(prefix))
                && !is_runc_binary_clone(point)
        })
        .collect()
}

/// runc's own read-only copy of its binary, which it mounts in its state directory while it
/// starts a container (`<bundle>/runc-state/<id>/runc.XXXXXX`, CVE-2019-5736's protection):
/// another test's container starting while this one looks. The hook never mounts there.
fn is_runc_binary_clone(point: &str) -> bool {
    let path = Path::new(point);
    point.starts_with("/tmp/gpuhook-bundle-")
        && point.contains("/runc-state/")
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("runc."))
}

/// `/etc` without the subtrees that container engines and package tests of other suites on
/// the same machine change while these tests run.
fn etc_fingerprint() -> BTreeSet<String> {
    const VOLATILE: &[&str] = &[
        "docker",
        "containerd",
        "cdi",
        "gpuhook",
        "crio",
        "containers",
        // Podman's network lock, made by its first container on a fresh machine.
        "cni",
    ];
    tree_fingerprint(Path::new("/etc"))
        .into_iter()
        .filter(|line| {
            let path = line.split(' ').next().unwrap_or("");
            let top = path.split('/').next().unwrap_or("");
            !VOLATILE.contains(&top)
        })
        .collect()
}

/// Every entry under `dir` (not following symlinks) with its bytes: a file's contents, a
/// link's target prefixed `->`, a directory's `dir`.
pub fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let value = if meta.file_type().is_symlink() {
            let mut v = b"->".to_vec();
            v.extend(
                std::fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            v
        } else if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            b"dir".to_vec()
        } else {
            std::fs::read(&path).unwrap_or_else(|e| format!("unreadable: {e}").into_bytes())
        };
        out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), value);
    }
    out
}

/// Asserts a failed start shows exactly one gpuhook line, for container `id`, naming `path`.
pub fn assert_one_clear_line(stderr: &str, id: &str, path: &str, context: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("gpuhook: ")).collect();
    assert_eq!(
        lines.len(),
        1,
        "{context}: one gpuhook line expected:\n{stderr}"
    );
    let line = lines[0];
    let ours = &line[line.find("gpuhook: ").unwrap_or(0)..];
    assert!(
        ours.starts_with(&format!("gpuhook: container {id}: ")),
        "{context}: {ours}"
    );
    assert!(
        ours.contains(path),
        "{context}: the line does not name {path}: {ours}"
    );
}

/// Compiles `source` (C) with gcc and `args` into `out`.
pub fn build_c(source: &str, out: &Path, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.c");
    std::fs::write(&src, source).unwrap();
    sh(Command::new("gcc")
        .args(["-O1", "-Wall", "-o"])
        .arg(out)
        .arg(&src)
        .args(args));
}

/// What a failed run left in a rootfs: `tree_fingerprint` entries added since `before`, less
/// directory sizes (they follow entries added and removed) and what a failed ldconfig run
/// leaves (the soname links it made in the library directory and its temporary cache file:
/// the container's own files; only the hook's placeholders are taken back).
pub fn left_in_rootfs(before: &BTreeSet<String>, rootfs: &Path) -> Vec<String> {
    let strip = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .map(|e| {
                let f: Vec<&str> = e.split(' ').collect();
                match f.as_slice() {
                    [path, "d", ..] => format!("{path} d"),
                    _ => e.clone(),
                }
            })
            .collect()
    };
    strip(&tree_fingerprint(rootfs))
        .difference(&strip(before))
        .filter(|e| !made_by_ldconfig(e))
        .cloned()
        .collect()
}

fn made_by_ldconfig(entry: &str) -> bool {
    let mut fields = entry.split(' ');
    let (path, kind) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
    (path.starts_with("usr/lib/x86_64-linux-gnu/lib") && kind == "l") || path == "etc/ld.so.cache~"
}
