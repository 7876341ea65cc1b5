//! Faults from outside the image: driver files disappearing, a broken host ld cache, a full
//! rootfs filesystem, a container process that is gone (or never was one), the hook run twice.
//! Each either works or fails with one gpuhook line naming what is wrong; nothing is left
//! mounted on the host either way.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use support::watch::{assert_one_clear_line, left_in_rootfs, test_mount, HostWatch};
use support::*;

const SMI: &str = "nvidia-smi -L; echo smi-exit=$?; ls /usr/lib/x86_64-linux-gnu";

fn lib(sim: &Sim, name: &str) -> PathBuf {
    sim.driver_root()
        .join("usr/lib/x86_64-linux-gnu")
        .join(format!("{name}.so.{DRIVER_VERSION}"))
}

/// A library the driver's ld cache lists was removed since (its soname link dangles): it is
/// skipped, the rest is given.
#[test]
fn a_driver_library_removed_after_the_cache_was_built_is_skipped() {
    if !prerequisites("a_driver_library_removed_after_the_cache_was_built_is_skipped") {
        return;
    }
    let sim = Sim::build(1);
    std::fs::remove_file(lib(&sim, "libnvidia-cfg")).unwrap();
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-dangling-lib.log");
    let bundle = Bundle::new(
        "dangling-lib",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        SMI,
        &sim.config(&log, ""),
    );
    let out = bundle.run().expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    assert!(out.stdout.contains("libnvidia-ml.so.1"), "{}", out.stdout);
    assert!(!out.stdout.contains("libnvidia-cfg"), "{}", out.stdout);
    host.assert_unchanged("dangling driver library");
}

/// Every library of the driver gone (an uninstall under way): a clear error, nothing left.
#[test]
fn all_driver_libraries_gone_fails_clearly() {
    if !prerequisites("all_driver_libraries_gone_fails_clearly") {
        return;
    }
    let sim = Sim::build(1);
    let dir = sim.driver_root().join("usr/lib/x86_64-linux-gnu");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(DRIVER_VERSION) {
            std::fs::remove_file(path).unwrap();
        }
    }
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-nolibs.log");
    let bundle = Bundle::new(
        "nolibs",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        SMI,
        &sim.config(&log, ""),
    );
    let rootfs_before = tree_fingerprint(&bundle.rootfs());
    let out = bundle.run();
    assert!(!out.success);
    assert_one_clear_line(&out.stderr, &bundle.id, "ld.so.cache", "no libraries");
    assert_eq!(tree_fingerprint(&bundle.rootfs()), rootfs_before);
    host.assert_unchanged("no libraries");
}

/// Driver files vanish and come back while containers start (a driver update racing the
/// hook: between the inventory and the mount). Whatever the timing, a container either starts
/// with a working GPU, or fails with one line naming a path; nothing stays mounted on the host
/// and no placeholder stays in the rootfs.
#[test]
fn driver_files_vanishing_during_starts() {
    if !prerequisites("driver_files_vanishing_during_starts") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let victims = [
        lib(&sim, "libcuda"),
        lib(&sim, "libnvidia-ptxjitcompiler"),
        sim.driver_root().join(format!(
            "lib/firmware/nvidia/{DRIVER_VERSION}/gsp_ga10x.bin"
        )),
        sim.driver_root().join("usr/bin/nvidia-debugdump"),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let toggler = {
        let stop = stop.clone();
        let victims = victims.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for v in &victims {
                    let hidden = v.with_extension("hidden");
                    let _ = std::fs::rename(v, &hidden);
                    std::thread::sleep(std::time::Duration::from_micros(300 + n % 700));
                    let _ = std::fs::rename(&hidden, v);
                }
                n += 137;
            }
        })
    };
    let log = std::env::temp_dir().join("gpuhook-test-vanish.log");
    let (mut started, mut refused) = (0, 0);
    for _ in 0..16 {
        let bundle = Bundle::new(
            "vanish",
            &["NVIDIA_VISIBLE_DEVICES=all"],
            SMI,
            &sim.config(&log, ""),
        );
        let rootfs_before = tree_fingerprint(&bundle.rootfs());
        let out = bundle.run();
        if out.success {
            started += 1;
            assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
        } else {
            refused += 1;
            assert_one_clear_line(&out.stderr, &bundle.id, "/", "vanishing files");
            let left = left_in_rootfs(&rootfs_before, &bundle.rootfs());
            assert!(
                left.is_empty(),
                "placeholders left: {left:?}\n{}",
                out.stderr
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    toggler.join().unwrap();
    eprintln!("driver files vanishing: {started} started, {refused} refused");
    host.assert_unchanged("vanishing driver files");
}

/// A GPU the driver lists whose device node is gone (the driver being unloaded).
#[test]
fn a_gpu_without_its_device_node_fails_clearly() {
    if !prerequisites("a_gpu_without_its_device_node_fails_clearly") {
        return;
    }
    let sim = Sim::build(2);
    std::fs::remove_file(sim.dev().join("nvidia1")).unwrap();
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-nonode.log");
    let bundle = Bundle::new(
        "nonode",
        &["NVIDIA_VISIBLE_DEVICES=1"],
        SMI,
        &sim.config(&log, ""),
    );
    let out = bundle.run();
    assert!(!out.success);
    assert_one_clear_line(&out.stderr, &bundle.id, "/dev/nvidia1", "missing node");
    // GPU 0 is still usable.
    let bundle = Bundle::new(
        "nonode0",
        &["NVIDIA_VISIBLE_DEVICES=0"],
        SMI,
        &sim.config(&log, ""),
    );
    let out = bundle.run().expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    host.assert_unchanged("missing node");
}

/// The host's ld cache (`driver.ldcache`) unreadable or corrupt.
#[test]
fn a_broken_host_ld_cache_fails_clearly() {
    if !prerequisites("a_broken_host_ld_cache_fails_clearly") {
        return;
    }
    let sim = Sim::build(1);
    let cache = sim.driver_root().join("etc/ld.so.cache");
    let good = std::fs::read(&cache).unwrap();
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-badcache.log");
    let mut huge_count = good.clone();
    // The new-format header's entry count (offset 20 after its magic) made enormous.
    let base = good
        .windows(20)
        .position(|w| w == b"glibc-ld.so.cache1.1")
        .unwrap();
    huge_count[base + 20..base + 24].copy_from_slice(&u32::MAX.to_le_bytes());
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("garbage", Some(b"\x7fELF not a cache at all".repeat(50))),
        ("empty", Some(Vec::new())),
        ("truncated", Some(good[..good.len() / 3].to_vec())),
        ("huge-count", Some(huge_count)),
        ("missing", None),
        ("directory", Some(b"dir".to_vec())),
    ];
    for (name, contents) in cases {
        let _ = std::fs::remove_dir_all(&cache);
        let _ = std::fs::remove_file(&cache);
        match contents {
            Some(c) if name == "directory" => {
                let _ = c;
                std::fs::create_dir(&cache).unwrap();
            }
            Some(c) => std::fs::write(&cache, c).unwrap(),
            None => {}
        }
        let bundle = Bundle::new(
            "badcache",
            &["NVIDIA_VISIBLE_DEVICES=all"],
            SMI,
            &sim.config(&log, ""),
        );
        let rootfs_before = tree_fingerprint(&bundle.rootfs());
        let out = bundle.run();
        assert!(!out.success, "{name}: started");
        assert_one_clear_line(&out.stderr, &bundle.id, &cache.display().to_string(), name);
        eprintln!("host ld cache {name}: {}", out.stderr.trim());
        assert_eq!(tree_fingerprint(&bundle.rootfs()), rootfs_before, "{name}");
        host.assert_unchanged(name);
    }
}

/// A tmpfs mounted over a bundle's rootfs, unmounted on drop.
struct TmpfsRootfs(PathBuf);

impl TmpfsRootfs {
    /// Moves the bundle's rootfs onto a tmpfs with `options`, then fills what is left of it
    /// (`fill` bytes of a file, until ENOSPC).
    fn new(bundle: &Bundle, options: &str) -> TmpfsRootfs {
        let rootfs = bundle.rootfs();
        let copy = bundle.dir.path().join("rootfs.orig");
        std::fs::rename(&rootfs, &copy).unwrap();
        std::fs::create_dir(&rootfs).unwrap();
        test_mount(&rootfs);
        sh(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "gpuhook-test-full"])
            .arg(&rootfs));
        let guard = TmpfsRootfs(rootfs.clone());
        sh(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", copy.display()))
            .arg(&rootfs));
        guard
    }

    fn fill_blocks(&self) {
        let mut file = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    fn fill_inodes(&self) {
        let dir = self.0.join("fillers");
        let _ = std::fs::create_dir(&dir);
        let mut i = 0;
        while std::fs::write(dir.join(i.to_string()), b"").is_ok() {
            i += 1;
        }
    }
}

impl Drop for TmpfsRootfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The container's rootfs on a full tmpfs: no blocks left, or no inodes left. The start fails
/// naming what could not be written; the placeholders are taken back; the host is unchanged.
#[test]
fn a_full_rootfs_filesystem_fails_clearly() {
    if !prerequisites("a_full_rootfs_filesystem_fails_clearly") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join("gpuhook-test-full.log");
    for (name, options, inodes) in [
        ("no-blocks", "size=12m", false),
        ("no-inodes", "size=64m,nr_inodes=2000", true),
    ] {
        let bundle = Bundle::new(
            name,
            &["NVIDIA_VISIBLE_DEVICES=all"],
            SMI,
            &sim.config(&log, ""),
        );
        let tmpfs = TmpfsRootfs::new(&bundle, options);
        if inodes {
            tmpfs.fill_inodes();
        } else {
            tmpfs.fill_blocks();
        }
        let host = HostWatch::new();
        let rootfs_before = tree_fingerprint(&bundle.rootfs());
        let out = bundle.run();
        eprintln!(
            "full rootfs, {name}: success={} {}",
            out.success,
            out.stderr.trim()
        );
        assert!(!out.success, "{name}: started:\n{}", out.stdout);
        assert_one_clear_line(&out.stderr, &bundle.id, "/", name);
        assert!(
            out.stderr.contains("No space left on device"),
            "{name}: {}",
            out.stderr
        );
        let left = left_in_rootfs(&rootfs_before, &bundle.rootfs());
        assert!(left.is_empty(), "{name}: left in the rootfs: {left:?}");
        host.assert_unchanged(name);
        drop(tmpfs);
    }
}

/// The container's process exited before its hook ran: the state names a dead pid.
#[test]
fn a_container_process_gone_before_the_hook_fails_clearly() {
    if !prerequisites("a_container_process_gone_before_the_hook_fails_clearly") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join("gpuhook-test-deadpid.log");
    let bundle = Bundle::new(
        "deadpid",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "true",
        &sim.config(&log, ""),
    );
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let host = HostWatch::new();
    let rootfs_before = tree_fingerprint(&bundle.rootfs());
    let (code, stderr) = prestart(&bundle, &state("deadpid", pid, bundle.dir.path()));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "gpuhook: container deadpid: container process {pid} is gone"
        )),
        "{stderr}"
    );
    assert_eq!(tree_fingerprint(&bundle.rootfs()), rootfs_before);
    host.assert_unchanged("dead pid");
}

/// The hook configured twice for one container (two prestart entries): the second run finds
/// the work done and leaves it as it is; the container sees each file once.
#[test]
fn a_second_hook_run_on_the_same_container() {
    if !prerequisites("a_second_hook_run_on_the_same_container") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-twice.log");
    let script = format!(
        "{SMI}\necho libcuda-mounts=$(grep -c libcuda.so.{DRIVER_VERSION} /proc/self/mountinfo)\n\
         echo mask-mounts=$(grep -c ' /proc/driver ' /proc/self/mountinfo)\n\
         echo gpu-dir-mounts=$(grep -c ' /proc/driver/nvidia/gpus/' /proc/self/mountinfo)\n\
         echo node-mounts=$(grep -c ' /dev/nvidia0 ' /proc/self/mountinfo)\n"
    );
    let bundle = Bundle::new(
        "twice",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        &script,
        &sim.config(&log, ""),
    );
    bundle.edit_spec(|spec| {
        let hook = spec["hooks"]["prestart"][0].clone();
        spec["hooks"]["prestart"] = serde_json::json!([hook.clone(), hook]);
    });
    let out = bundle.run();
    eprintln!("second run: success={} {}", out.success, out.stderr.trim());
    let out = out.expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    for line in [
        "libcuda-mounts=1",
        "mask-mounts=1",
        "gpu-dir-mounts=1",
        "node-mounts=1",
    ] {
        assert!(out.stdout.contains(line), "{line}:\n{}", out.stdout);
    }
    host.assert_unchanged("two hook runs");
}

/// The runtime shim reads only what names the device nodes: with the driver's ld cache gone
/// it still edits the spec and execs runc, and it is the hook that refuses the start, naming
/// the cache (before, the shim read the libraries too, and failed first).
#[test]
fn the_shim_reads_no_driver_libraries() {
    if !prerequisites("the_shim_reads_no_driver_libraries") {
        return;
    }
    let sim = Sim::build(1);
    std::fs::remove_file(sim.driver_root().join("etc/ld.so.cache")).unwrap();
    let log = std::env::temp_dir().join("gpuhook-test-shim-nolibs.log");
    let bundle = Bundle::new(
        "shim-nolibs",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        SMI,
        &sim.config(&log, ""),
    );
    let out = bundle.run_through_shim(&bundle.dir.path().join("gpuhook.toml"));
    assert!(!out.success, "started without driver libraries");
    assert!(
        out.stderr.contains("error running hook") && out.stderr.contains("ld.so.cache"),
        "the hook, not the shim, should refuse: {}",
        out.stderr
    );
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.dir.path().join("config.json")).unwrap())
            .unwrap();
    let devices = spec["linux"]["devices"].to_string();
    assert!(
        devices.contains("/dev/nvidia0"),
        "the shim added the GPU: {devices}"
    );
}
