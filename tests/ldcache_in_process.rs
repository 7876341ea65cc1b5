//! The in-process ld cache update (the default `hook.ldcache-update`), in real containers: an
//! image with a real cache keeps its entries and gains the driver's, as glibc's ldconfig reads
//! the result; no ldconfig runs; the cache and the soname links belong to the container's
//! root; and what a hostile image puts where the cache and the soname links go either leaves the
//! work to the confined ldconfig or fails the start in one line, never touching the host.

mod support;

use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::watch::{assert_one_clear_line, HostWatch};
use support::*;

const CHECK: &str = "nvidia-smi -L && echo ALL-OK";

/// A bundle and the hook's log file.
fn bundle(name: &str, sim: &Sim) -> (Bundle, PathBuf) {
    let log = std::env::temp_dir().join(format!("gpuhook-test-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let b = Bundle::new(
        name,
        &["NVIDIA_VISIBLE_DEVICES=all"],
        CHECK,
        &sim.config(&log, ""),
    );
    (b, log)
}

/// How the hook says it updated the cache (`ldcache=` in its log line).
fn ldcache_how(bundle: &Bundle, log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("container={}", bundle.id)) && l.contains("elapsed_ms="))
        .unwrap_or_else(|| panic!("no log line for {}:\n{log}", bundle.id));
    line.split(" ldcache=")
        .nth(1)
        .and_then(|rest| rest.split(" elapsed_ms=").next())
        .unwrap_or_else(|| panic!("no ldcache= in {line}"))
        .to_string()
}

/// Runs it; and, when it started, how the hook updated the cache.
fn run_and_tell(bundle: &Bundle, log: &Path) -> (RunResult, String) {
    let out = bundle.run();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let how = match out.success {
        true => ldcache_how(bundle, &text),
        false => String::new(),
    };
    (out, how)
}

/// The host's ldconfig's listing of a cache file.
fn listing(cache: &Path) -> String {
    let out = sh(Command::new("ldconfig").arg("-p").arg("-C").arg(cache));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Gives the rootfs a real library of its own in its library directory and a real cache
/// (made by the host's ldconfig, as an image's build makes it).
fn image_with_a_library(rootfs: &Path) {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("f.c");
    std::fs::write(&source, "int f(void) { return 0; }\n").unwrap();
    sh(Command::new("gcc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libimage0.so.1", "-o"])
        .arg(rootfs.join("usr/lib/x86_64-linux-gnu/libimage0.so.1"))
        .arg(&source));
    std::fs::write(rootfs.join("etc/ld.so.conf"), "/usr/lib/x86_64-linux-gnu\n").unwrap();
    sh(Command::new("ldconfig").arg("-r").arg(rootfs));
}

#[test]
fn an_images_cache_keeps_its_entries_and_gains_the_drivers_without_ldconfig() {
    if !prerequisites_with(
        "an_images_cache_keeps_its_entries_and_gains_the_drivers_without_ldconfig",
        &["runc", "gcc", "ldconfig"],
    ) {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let (b, log) = bundle("inproc-image", &sim);
    image_with_a_library(&b.rootfs());
    let cache = b.rootfs().join("etc/ld.so.cache");
    let before = listing(&cache);
    assert!(before.contains("libimage0.so.1"), "{before}");
    let (out, how) = run_and_tell(&b, &log);
    let out = out.expect_success();
    assert!(out.stdout.contains("ALL-OK"), "{}", out.stdout);
    assert!(how.starts_with("in-process("), "{how}");
    let link = std::fs::read_link(
        b.rootfs()
            .join(LIB_DIR.trim_start_matches('/'))
            .join("libcuda.so.1"),
    );
    assert_eq!(
        link.unwrap(),
        Path::new(&format!("libcuda.so.{DRIVER_VERSION}"))
    );
    let after = listing(&cache);
    for line in before.lines().skip(1) {
        assert!(after.contains(line), "lost {line}:\n{after}");
    }
    for soname in ["libcuda.so.1", "libnvidia-ml.so.1"] {
        let entry = format!("{soname} (libc6,x86-64) => {LIB_DIR}/{soname}");
        assert!(after.contains(&entry), "{entry} missing:\n{after}");
    }
    // Written as the container's root, mode 0644, like ldconfig's.
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o644));
    assert!(!b.rootfs().join("etc/ld.so.cache~").exists());
    host.assert_unchanged("in-process update");
}

#[test]
fn a_user_namespaced_containers_cache_and_links_belong_to_its_root() {
    if !prerequisites("a_user_namespaced_containers_cache_and_links_belong_to_its_root") {
        return;
    }
    let sim = Sim::build(1);
    let (b, log) = bundle("inproc-userns", &sim);
    b.user_namespaced(200_000);
    let (out, how) = run_and_tell(&b, &log);
    let out = out.expect_success();
    assert!(out.stdout.contains("ALL-OK"), "{}", out.stdout);
    assert!(how.starts_with("in-process("), "{how}");
    let lib = b.rootfs().join("usr/lib/x86_64-linux-gnu");
    for path in [b.rootfs().join("etc/ld.so.cache"), lib.join("libcuda.so.1")] {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (200_000, 200_000),
            "{}",
            path.display()
        );
    }
}

/// Where the image's own files make a plain addition wrong, the confined ldconfig does the
/// work (and says why in the log); the container starts with a working cache either way.
#[test]
fn what_only_ldconfig_can_settle_is_left_to_it() {
    if !prerequisites("what_only_ldconfig_can_settle_is_left_to_it") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    type Plant = fn(&Path);
    let cases: [(&str, Plant, &str); 5] = [
        (
            "garbage",
            |r| std::fs::write(r.join("etc/ld.so.cache"), b"not a cache").unwrap(),
            "not read in-process",
        ),
        (
            "fifo",
            |r| {
                sh(Command::new("mkfifo").arg(r.join("etc/ld.so.cache")));
            },
            "not a regular file",
        ),
        (
            "symlink",
            |r| symlink("/etc/elsewhere.cache", r.join("etc/ld.so.cache")).unwrap(),
            "is a symlink",
        ),
        (
            "soname-file",
            |r| std::fs::write(r.join("usr/lib/x86_64-linux-gnu/libcuda.so.1"), b"x").unwrap(),
            "is a file, not a link",
        ),
        (
            "soname-link",
            |r| {
                symlink(
                    "libcuda.so.470.1",
                    r.join("usr/lib/x86_64-linux-gnu/libcuda.so.1"),
                )
                .unwrap()
            },
            "is a link to libcuda.so.470.1",
        ),
    ];
    for (name, plant, why) in cases {
        let (b, log) = bundle(&format!("inproc-{name}"), &sim);
        plant(&b.rootfs());
        let (out, how) = run_and_tell(&b, &log);
        assert!(out.success, "{name}: {}", out.stderr);
        assert!(
            how.starts_with("ldconfig(") && how.contains(why),
            "{name}: {how}"
        );
        let cache = listing(&b.rootfs().join("etc/ld.so.cache"));
        assert!(cache.contains("libnvidia-ml.so.1"), "{name}: {cache}");
        host.assert_unchanged(name);
    }
}

/// A cache that is a host file bound over the image's (a volume) is never written: the start
/// fails in one line naming it.
#[test]
fn a_cache_on_a_volume_is_not_written() {
    if !prerequisites("a_cache_on_a_volume_is_not_written") {
        return;
    }
    let sim = Sim::build(1);
    let volume = tempfile::tempdir().unwrap();
    let host_file = volume.path().join("ld.so.cache");
    std::fs::copy("/etc/ld.so.cache", &host_file).unwrap();
    let host = HostWatch::new().watch(volume.path());
    let (b, _) = bundle("inproc-volume", &sim);
    std::fs::write(b.rootfs().join("etc/ld.so.cache"), b"").unwrap();
    b.edit_spec(|spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/etc/ld.so.cache", "type": "bind", "source": host_file,
                "options": ["bind", "rw"]
            }));
    });
    let out = b.run();
    assert!(!out.success, "started");
    assert_one_clear_line(&out.stderr, &b.id, "/etc/ld.so.cache", "cache on a volume");
    host.assert_unchanged("cache on a volume");
}

/// `/etc/ld.so.cache~` planted as a directory: the update cannot replace it and says so.
#[test]
fn a_planted_temporary_directory_fails_the_start_clearly() {
    if !prerequisites("a_planted_temporary_directory_fails_the_start_clearly") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let (b, _) = bundle("inproc-tempdir", &sim);
    std::fs::create_dir(b.rootfs().join("etc/ld.so.cache~")).unwrap();
    let out = b.run();
    assert!(!out.success, "started");
    assert_one_clear_line(
        &out.stderr,
        &b.id,
        "/etc/ld.so.cache~",
        "temporary directory",
    );
    host.assert_unchanged("temporary directory");
}
