//! What an image's ld.so.conf can do to the host-side ldconfig (`hook.ldcache-update =
//! "ldconfig"` here; the in-process update reads no ld.so.conf): nothing lasting. A FIFO or a
//! huge sparse file where ldconfig reads its configuration fails the start at once with one
//! line naming it; one reached only through an `include` elsewhere meets the child's deadline
//! or its memory bound; an image whose `/etc` belongs to some host uid gets a clear refusal
//! instead of an ldconfig running as that uid. Each case leaves no process behind.

mod support;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::watch::{assert_one_clear_line, HostWatch};
use support::*;

const LDCONFIG: &str = "ldcache-update = \"ldconfig\"\n";

/// A bundle whose hook rebuilds the ld cache with ldconfig.
fn bundle(name: &str, sim: &Sim, hook_extra: &str) -> Bundle {
    bundle_with(name, sim, &format!("{LDCONFIG}{hook_extra}"))
}

fn bundle_with(name: &str, sim: &Sim, hook_extra: &str) -> Bundle {
    let log = std::env::temp_dir().join(format!("gpuhook-test-{name}.log"));
    Bundle::new(
        name,
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "nvidia-smi -L",
        &sim.config(&log, hook_extra),
    )
}

fn mkfifo(path: &Path) {
    sh(Command::new("mkfifo").arg(path));
}

/// A sparse file of `gib` GiB of zeros (no disk used).
fn sparse(path: &Path, gib: u64) {
    let file = std::fs::File::create(path).unwrap();
    file.set_len(gib << 30).unwrap();
}

/// Pids of processes executing the host's ldconfig chrooted in `rootfs` (the confined child
/// of this bundle's hook; other tests run theirs beside it).
fn ldconfig_processes(rootfs: &Path) -> Vec<u32> {
    let real = std::fs::canonicalize("/sbin/ldconfig").unwrap();
    let rootfs = std::fs::canonicalize(rootfs).unwrap();
    let link = |pid: u32, what: &str| std::fs::read_link(format!("/proc/{pid}/{what}")).ok();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| link(*pid, "exe").as_ref() == Some(&real))
        .filter(|pid| link(*pid, "root").as_ref() == Some(&rootfs))
        .collect()
}

#[test]
fn an_ld_so_conf_that_is_not_a_small_regular_file_is_refused_at_once() {
    if !prerequisites("an_ld_so_conf_that_is_not_a_small_regular_file_is_refused_at_once") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    type Plant = fn(&Path);
    let cases: [(&str, &str, Plant); 4] = [
        ("fifo", "etc/ld.so.conf", |p| mkfifo(p)),
        ("sparse", "etc/ld.so.conf", |p| sparse(p, 6)),
        ("fifo-in-conf.d", "etc/ld.so.conf.d/cuda.conf", |p| {
            mkfifo(p)
        }),
        ("device", "etc/ld.so.conf", |p| {
            symlink("/dev/zero", p).unwrap()
        }),
    ];
    for (name, inner, plant) in cases {
        let b = bundle(&format!("ldconf-{name}"), &sim, "");
        let path = b.rootfs().join(inner);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        plant(&path);
        let started = Instant::now();
        let out = b.run();
        eprintln!("{name}: {:?} {}", started.elapsed(), out.stderr.trim());
        assert!(!out.success, "{name}: started");
        assert_one_clear_line(&out.stderr, &b.id, &format!("/{inner}"), name);
        assert!(
            ldconfig_processes(&b.rootfs()).is_empty(),
            "{name}: ldconfig left running"
        );
    }
    host.assert_unchanged("ld.so.conf file types");
}

/// A FIFO reached through an `include` outside ld.so.conf.d: ldconfig blocks on it and is
/// killed at the deadline (`hook.ldconfig-timeout`), the start fails with a line that says so.
#[test]
fn an_ldconfig_that_never_ends_is_killed_at_the_deadline() {
    if !prerequisites("an_ldconfig_that_never_ends_is_killed_at_the_deadline") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let b = bundle("ldconf-hang", &sim, "ldconfig-timeout = 2");
    std::fs::write(
        b.rootfs().join("etc/ld.so.conf"),
        "include /opt/hang.conf\n",
    )
    .unwrap();
    std::fs::create_dir_all(b.rootfs().join("opt")).unwrap();
    mkfifo(&b.rootfs().join("opt/hang.conf"));
    let out = b.run();
    assert!(!out.success, "started");
    assert_one_clear_line(&out.stderr, &b.id, "killed after 2 s", "hang");
    assert!(
        ldconfig_processes(&b.rootfs()).is_empty(),
        "ldconfig left running"
    );
    host.assert_unchanged("ldconfig hanging on a FIFO");
}

/// A huge sparse file (6 GiB of zeros, one "line") reached through an `include`: ldconfig's
/// heap meets the child's data limit (512 MiB) instead of growing into the host's memory. glibc's
/// ldconfig then treats the line as unreadable and carries on, so the container starts; the
/// hook's log shows the child's peak memory stayed within the bound.
#[test]
fn an_ldconfig_eating_memory_hits_its_bound() {
    if !prerequisites("an_ldconfig_eating_memory_hits_its_bound") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let b = bundle("ldconf-huge", &sim, "");
    std::fs::write(
        b.rootfs().join("etc/ld.so.conf"),
        "include /opt/huge.conf\n",
    )
    .unwrap();
    std::fs::create_dir_all(b.rootfs().join("opt")).unwrap();
    sparse(&b.rootfs().join("opt/huge.conf"), 6);
    let out = b.run();
    eprintln!("huge: success={} {}", out.success, out.stderr.trim());
    let log = std::fs::read_to_string(std::env::temp_dir().join("gpuhook-test-ldconf-huge.log"))
        .unwrap_or_default();
    if out.success {
        let rss: u64 = log
            .lines()
            .filter(|l| l.contains(&b.id))
            .find_map(|l| l.split("ldconfig_max_rss_kib=").nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ldconfig peak memory in the log:\n{log}"));
        eprintln!("huge: ldconfig peak RSS {rss} KiB");
        assert!(rss < 600 * 1024, "ldconfig grew to {rss} KiB");
    } else {
        assert_one_clear_line(&out.stderr, &b.id, "ld cache update", "huge");
    }
    assert!(
        ldconfig_processes(&b.rootfs()).is_empty(),
        "ldconfig left running"
    );
    host.assert_unchanged("ldconfig reading a huge file");
}

/// An image whose `/etc` belongs to host uid 4242 (without a user namespace): the cache is
/// written (by ldconfig, or in-process) as the container's root, never as a uid the image
/// picks, so the start is refused clearly.
#[test]
fn an_etc_owned_by_another_uid_is_refused() {
    if !prerequisites("an_etc_owned_by_another_uid_is_refused") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    for mode in ["", LDCONFIG] {
        let b = bundle_with("etc-owner", &sim, mode);
        let etc = b.rootfs().join("etc");
        std::os::unix::fs::chown(&etc, Some(4242), Some(4242)).unwrap();
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = b.run();
        assert!(!out.success, "started ({mode})");
        assert_one_clear_line(&out.stderr, &b.id, "belongs to uid 4242", "etc owner");
        host.assert_unchanged(&format!("/etc owned by another uid ({mode})"));
    }
}

/// A volume at `/tmp/data` covered by a tmpfs at `/tmp` (the spec mounts them in that order):
/// the ldconfig child's view is rebuilt from the mounts it may see, so the hidden volume is
/// neither an obstacle nor visible, and the container starts with a working ld cache.
#[test]
fn a_volume_hidden_under_a_tmpfs_is_neither_seen_nor_in_the_way() {
    if !prerequisites("a_volume_hidden_under_a_tmpfs_is_neither_seen_nor_in_the_way") {
        return;
    }
    let sim = Sim::build(1);
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("marker"), b"host").unwrap();
    let host = HostWatch::new().watch(volume.path());
    let b = bundle("hidden-volume", &sim, "");
    std::fs::create_dir_all(b.rootfs().join("tmp/data")).unwrap();
    b.edit_spec(|spec| {
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({
            "destination": "/tmp/data", "type": "bind", "source": volume.path(),
            "options": ["rbind", "rw"]
        }));
        mounts.push(serde_json::json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
        }));
    });
    let out = b.run().expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    host.assert_unchanged("a volume hidden under a tmpfs");
}
