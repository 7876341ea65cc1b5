//! Adversarial images: rootfs crafted to turn the hook (root on the host) against the host.
//! Each case runs through real runc with the simulated driver. Each either starts with the
//! driver's files correct inside the container, or fails the start with one gpuhook line
//! naming the path; either way the host canary tree, `/etc` and the host's mount table are
//! unchanged. (tests/hostile_image.rs has the first symlink cases; these add the rest.)

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;

use support::watch::{assert_one_clear_line, build_c, left_in_rootfs, test_mount, HostWatch};
use support::*;

/// Checks every kind of file the hook gives; prints ALL-OK only when all are right.
const CHECK: &str = r#"
set -e
# An image without /etc/debian_version gets its libraries in /usr/lib64.
lib=/usr/lib/x86_64-linux-gnu; test -e /etc/debian_version || lib=/usr/lib64
test -e $lib/libcuda.so.580.159.04
test -L $lib/libcuda.so.1
test -e /lib/firmware/nvidia/580.159.04/gsp_ga10x.bin
test -S /run/nvidia-persistenced/socket
test -c /dev/nvidia0
grep -q 'ModifyDeviceFiles: 0' /proc/driver/nvidia/params
nvidia-smi -L
echo ALL-OK
"#;

/// How an image swaps a path the hook uses for a symlink.
#[derive(Debug, Clone, Copy)]
enum Swap {
    /// To the host canary of the same role, by absolute path (dangling inside the rootfs).
    Absolute,
    /// The same, with the absolute path present inside the rootfs too: followed, inside.
    AbsoluteAlsoInside,
    /// `../../..` climbing to the host canary.
    Climb,
    /// A symlink to itself.
    SelfLoop,
    /// Two symlinks pointing at each other.
    PairLoop,
    /// `/proc/self/root/<host canary>`: a magic link out of any chroot.
    ProcSelfRoot,
    /// `/proc/self/cwd`: the hook's working directory on the host.
    ProcSelfCwd,
}

const ALL_SWAPS: &[Swap] = &[
    Swap::Absolute,
    Swap::AbsoluteAlsoInside,
    Swap::Climb,
    Swap::SelfLoop,
    Swap::PairLoop,
    Swap::ProcSelfRoot,
    Swap::ProcSelfCwd,
];

/// Replaces `inner` (a path inside `rootfs`, no leading `/`) with a symlink of kind `swap`
/// aimed at `victim` (a host path).
fn plant(rootfs: &Path, inner: &str, swap: Swap, victim: &str) {
    let path = rootfs.join(inner);
    let _ = std::fs::remove_dir_all(&path);
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let climb = format!("{}{}", "../".repeat(16), victim.trim_start_matches('/'));
    match swap {
        Swap::Absolute => symlink(victim, &path).unwrap(),
        Swap::AbsoluteAlsoInside => {
            symlink(victim, &path).unwrap();
            let inside = rootfs.join(victim.trim_start_matches('/'));
            std::fs::create_dir_all(&inside).unwrap();
        }
        Swap::Climb => symlink(&climb, &path).unwrap(),
        Swap::SelfLoop => symlink(format!("/{inner}"), &path).unwrap(),
        Swap::PairLoop => {
            let other = format!("{inner}.loop");
            symlink(format!("/{other}"), &path).unwrap();
            symlink(format!("/{inner}"), rootfs.join(other)).unwrap();
        }
        Swap::ProcSelfRoot => symlink(format!("/proc/self/root{victim}"), &path).unwrap(),
        Swap::ProcSelfCwd => symlink("/proc/self/cwd", &path).unwrap(),
    }
}

/// Runs one container per swap of `inner` and checks the outcome and the host. `role` is the
/// canary subdirectory aimed at; `ok_inside` says whether a start is acceptable for `swap`.
fn swaps_at(test: &str, inner: &str, role: &str) {
    let sim = Sim::build(1);
    let host = HostWatch::new();
    for &swap in ALL_SWAPS {
        let context = format!("{test}: /{inner} as {swap:?}");
        let log = std::env::temp_dir().join(format!("gpuhook-test-{test}.log"));
        let bundle = Bundle::new(
            test,
            &["NVIDIA_VISIBLE_DEVICES=all"],
            CHECK,
            &sim.config(&log, ""),
        );
        let victim = format!("{}/{role}", host.dir());
        plant(&bundle.rootfs(), inner, swap, &victim);
        let out = bundle.run();
        if out.success {
            assert!(out.stdout.contains("ALL-OK"), "{context}: {}", out.stdout);
            assert!(
                out.stdout.contains(&sim.uuid(0)),
                "{context}: {}",
                out.stdout
            );
        } else {
            // A path under `inner`, or `inner` itself, is what the line must name.
            assert_one_clear_line(&out.stderr, &bundle.id, &format!("/{inner}"), &context);
        }
        eprintln!(
            "{context}: {}",
            if out.success {
                "started, confined".to_string()
            } else {
                format!("refused: {}", gpuhook_line(&out.stderr))
            }
        );
        host.assert_unchanged(&context);
    }
}

#[test]
fn symlink_swaps_at_the_library_dir() {
    if !prerequisites("symlink_swaps_at_the_library_dir") {
        return;
    }
    swaps_at("swap-lib", "usr/lib/x86_64-linux-gnu", "lib");
}

#[test]
fn symlink_swaps_at_usr_bin() {
    if !prerequisites("symlink_swaps_at_usr_bin") {
        return;
    }
    swaps_at("swap-bin", "usr/bin", "bin");
}

#[test]
fn symlink_swaps_at_the_firmware_dir() {
    if !prerequisites("symlink_swaps_at_the_firmware_dir") {
        return;
    }
    swaps_at("swap-fw", "lib/firmware/nvidia", "fw");
}

#[test]
fn symlink_swaps_at_the_persistenced_dir() {
    if !prerequisites("symlink_swaps_at_the_persistenced_dir") {
        return;
    }
    swaps_at("swap-run", "run/nvidia-persistenced", "run");
}

/// The gpuhook part of runc's error output.
fn gpuhook_line(stderr: &str) -> &str {
    let at = stderr.find("gpuhook: ").unwrap_or(0);
    stderr[at..]
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches("\\n\"")
}

/// `/dev` is runc's own tmpfs mount, and runc (1.1) itself writes its `/dev/fd`, `/dev/stdin`,
/// ... links through an image's `/dev` symlink, onto the host. So each swap runs twice, with a
/// canary tree each: once without a GPU request (the hook does nothing: what runc alone does)
/// and once with one. The hook must add nothing to what runc did, and a start has the GPU's
/// nodes where the container looks for them.
#[test]
fn symlink_swaps_at_dev() {
    if !prerequisites("symlink_swaps_at_dev") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join("gpuhook-test-swap-dev.log");
    for &swap in ALL_SWAPS {
        let context = format!("/dev as {swap:?}");
        let run = |env: &[&str], host: &HostWatch| {
            let bundle = Bundle::new("swap-dev", env, CHECK, &sim.config(&log, ""));
            plant(
                &bundle.rootfs(),
                "dev",
                swap,
                &format!("{}/dev", host.dir()),
            );
            let out = bundle.run();
            (out, bundle.id.clone())
        };
        let runc_alone = HostWatch::new();
        let (control, _) = run(&[], &runc_alone);
        let host = HostWatch::new();
        let (out, id) = run(&["NVIDIA_VISIBLE_DEVICES=all"], &host);
        if out.success {
            assert!(out.stdout.contains("ALL-OK"), "{context}: {}", out.stdout);
        } else if out.stderr.contains("gpuhook: ") {
            assert_one_clear_line(&out.stderr, &id, "/dev", &context);
        } else {
            // runc refused the image before running any hook: so did it without a GPU.
            assert!(!control.success, "{context}: {}", out.stderr);
        }
        let by_runc = runc_alone.changes();
        if !by_runc.is_empty() {
            eprintln!("{context}: runc alone wrote on the host: {by_runc:?}");
        }
        eprintln!("{context}: success={} {}", out.success, out.stderr.trim());
        host.assert_unchanged_but(&by_runc, &context);
        runc_alone.assert_unchanged_but(&by_runc, &context);
    }
}

/// `/proc` is runc's procfs mount: an image cannot put anything at `/proc/driver`; a symlink
/// at `/proc` itself is runc's to resolve. The mask must still land on procfs only.
#[test]
fn symlink_swaps_at_proc() {
    if !prerequisites("symlink_swaps_at_proc") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    for &swap in ALL_SWAPS {
        let context = format!("/proc as {swap:?}");
        let log = std::env::temp_dir().join("gpuhook-test-swap-proc.log");
        let bundle = Bundle::new(
            "swap-proc",
            &["NVIDIA_VISIBLE_DEVICES=all"],
            CHECK,
            &sim.config(&log, ""),
        );
        plant(
            &bundle.rootfs(),
            "proc",
            swap,
            &format!("{}/proc", host.dir()),
        );
        let out = bundle.run();
        if out.success {
            assert!(out.stdout.contains("ALL-OK"), "{context}: {}", out.stdout);
        } else if out.stderr.contains("gpuhook: ") {
            assert_one_clear_line(&out.stderr, &bundle.id, "/proc/driver", &context);
        } else {
            // runc refuses to mount its procfs through a symlink before any hook runs.
            assert!(
                out.stderr.contains("\"/proc\""),
                "{context}: {}",
                out.stderr
            );
        }
        eprintln!("{context}: success={} {}", out.success, out.stderr.trim());
        host.assert_unchanged(&context);
    }
}

/// The ld cache is written in-process through `/etc`'s fd (a symlinked cache is left to
/// ldconfig), or by the host's ldconfig chrooted in the rootfs: either way symlinks at
/// `/etc/ld.so.cache`, at its temporary file `/etc/ld.so.cache~`, and `/etc` itself are
/// resolved inside the rootfs, and magic links lead nowhere (the rootfs's `/proc` is detached).
#[test]
fn symlink_swaps_at_the_ld_cache() {
    if !prerequisites("symlink_swaps_at_the_ld_cache") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-swap-cache.log");
    let v = host.dir();
    for mode in ["", LDCONFIG] {
        swap_cache_and_etc(&sim, &host, &log, &v, mode);
    }
}

const LDCONFIG: &str = "ldcache-update = \"ldconfig\"";

fn swap_cache_and_etc(sim: &Sim, host: &HostWatch, log: &Path, v: &str, mode: &str) {
    for inner in ["etc/ld.so.cache", "etc/ld.so.cache~"] {
        for &swap in ALL_SWAPS {
            let context = format!("/{inner} as {swap:?} ({mode})");
            let bundle = Bundle::new(
                "swap-cache",
                &["NVIDIA_VISIBLE_DEVICES=all"],
                CHECK,
                &sim.config(log, mode),
            );
            plant(&bundle.rootfs(), inner, swap, &format!("{v}/ld.so.cache"));
            let out = bundle.run();
            if out.success {
                assert!(out.stdout.contains("ALL-OK"), "{context}: {}", out.stdout);
            } else {
                assert_one_clear_line(&out.stderr, &bundle.id, "ld.so.cache", &context);
            }
            eprintln!("{context}: success={}", out.success);
            host.assert_unchanged(&context);
        }
    }
    // /etc itself aimed at the host's canary etc/ (which holds an ld.so.cache).
    for &swap in ALL_SWAPS {
        let context = format!("/etc as {swap:?} ({mode})");
        let bundle = Bundle::new(
            "swap-etc",
            &["NVIDIA_VISIBLE_DEVICES=all"],
            CHECK,
            &sim.config(log, mode),
        );
        plant(&bundle.rootfs(), "etc", swap, &format!("{v}/etc"));
        let out = bundle.run();
        if out.success {
            assert!(out.stdout.contains("ALL-OK"), "{context}: {}", out.stdout);
        } else {
            assert_one_clear_line(&out.stderr, &bundle.id, "/etc", &context);
        }
        eprintln!("{context}: success={} {}", out.success, out.stderr.trim());
        host.assert_unchanged(&context);
    }
}

/// The image's `/etc/ld.so.conf` names host directories through magic links (and includes a
/// host file the same way): ldconfig scans what it lists and would make soname links in it.
/// The canary's `lib/` holds a real library, so a reached directory would gain a link.
#[test]
fn ld_so_conf_pointing_at_host_dirs_is_not_followed() {
    if !prerequisites("ld_so_conf_pointing_at_host_dirs_is_not_followed") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let v = host.dir();
    let log = std::env::temp_dir().join("gpuhook-test-ldconf.log");
    let bundle = Bundle::new(
        "ldconf",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        CHECK,
        &sim.config(&log, LDCONFIG),
    );
    std::fs::write(
        bundle.rootfs().join("etc/ld.so.conf"),
        format!(
            "/proc/1/root{v}/lib\n/proc/self/root{v}/lib\n/proc/self/cwd\n{}{v}/lib\ninclude /proc/1/root{v}/etc/*.conf\n",
            "/../../../.."
        ),
    )
    .unwrap();
    let out = bundle.run().expect_success();
    assert!(out.stdout.contains("ALL-OK"), "{}", out.stdout);
    assert!(
        !host.path().join("lib/libvictim.so.1").exists(),
        "ldconfig made a link in a host directory"
    );
    host.assert_unchanged("ld.so.conf naming host directories");
}

/// A directory where the hook expects a file, and a file where it expects a directory.
#[test]
fn wrong_file_types_are_refused_naming_the_path() {
    if !prerequisites("wrong_file_types_are_refused_naming_the_path") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-types.log");
    let lib = format!("usr/lib/x86_64-linux-gnu/libcuda.so.{DRIVER_VERSION}");
    let cases: &[(&str, bool)] = &[
        // (path, is a directory in the image)
        (&lib, true),
        ("usr/bin/nvidia-debugdump", true),
        ("run/nvidia-persistenced/socket", true),
        ("usr/lib/x86_64-linux-gnu", false),
        ("usr/bin", false),
        ("lib/firmware/nvidia", false),
        ("run/nvidia-persistenced", false),
        ("etc/ld.so.cache", true),
    ];
    for &(inner, dir) in cases {
        let context = format!("/{inner} a {}", if dir { "directory" } else { "file" });
        let bundle = Bundle::new(
            "types",
            &["NVIDIA_VISIBLE_DEVICES=all"],
            CHECK,
            &sim.config(&log, ""),
        );
        let path = bundle.rootfs().join(inner);
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if dir {
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("keep"), b"image file").unwrap();
        } else {
            std::fs::write(&path, b"image file").unwrap();
        }
        let rootfs_before = tree_fingerprint(&bundle.rootfs());
        let out = bundle.run();
        assert!(!out.success, "{context}: started:\n{}", out.stdout);
        assert_one_clear_line(&out.stderr, &bundle.id, &format!("/{inner}"), &context);
        eprintln!("{context}: {}", out.stderr.trim());
        let left = left_in_rootfs(&rootfs_before, &bundle.rootfs());
        assert!(
            left.is_empty(),
            "{context}: the failed run left files in the rootfs: {left:?}"
        );
        host.assert_unchanged(&context);
    }
}

/// `/usr/bin/nvidia-smi` already in the image as a symlink to a host path: never followed out.
#[test]
fn existing_nvidia_smi_symlink_to_a_host_path() {
    if !prerequisites("existing_nvidia_smi_symlink_to_a_host_path") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let v = host.dir();
    let log = std::env::temp_dir().join("gpuhook-test-smi-link.log");
    for (name, target, inside) in [
        ("absolute", format!("{v}/nvidia-smi"), false),
        ("absolute-also-inside", format!("{v}/nvidia-smi"), true),
        (
            "climb",
            format!("{}{v}/nvidia-smi", "../".repeat(12)),
            false,
        ),
        ("magic", format!("/proc/self/root{v}/nvidia-smi"), false),
        ("host-etc", "/etc/passwd".to_string(), false),
    ] {
        let bundle = Bundle::new(
            "smi-link",
            &["NVIDIA_VISIBLE_DEVICES=all"],
            CHECK,
            &sim.config(&log, ""),
        );
        let rootfs = bundle.rootfs();
        symlink(&target, rootfs.join("usr/bin/nvidia-smi")).unwrap();
        if inside {
            let file = rootfs.join(format!("{}/nvidia-smi", v.trim_start_matches('/')));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b"image's file").unwrap();
        }
        let out = bundle.run();
        if out.success {
            assert!(out.stdout.contains("ALL-OK"), "{name}: {}", out.stdout);
        } else {
            assert_one_clear_line(&out.stderr, &bundle.id, "/usr/bin/nvidia-smi", name);
        }
        eprintln!("nvidia-smi link {name}: success={}", out.success);
        host.assert_unchanged(name);
    }
}

/// The image's environment names a library of the image in `LD_PRELOAD` and `LD_LIBRARY_PATH`
/// (by container path, by its host path, and relative to the rootfs as CVE-2025-23266 used):
/// its constructor writes a marker on the host. No host process may ever load it.
#[test]
fn image_env_never_reaches_a_host_process() {
    if !prerequisites("image_env_never_reaches_a_host_process") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let marker = host.path().join("pwned");
    let source = format!(
        "#include <stdio.h>\n__attribute__((constructor)) static void pwn(void) {{\n\
         FILE *f = fopen(\"{}\", \"a\"); if (f) {{ fputs(\"loaded\\n\", f); fclose(f); }} }}\n",
        marker.display()
    );
    // The library works: loaded into a host process it leaves the marker.
    let probe = tempfile::tempdir().unwrap();
    build_c(
        &source,
        &probe.path().join("libevil.so"),
        &["-shared", "-fPIC"],
    );
    sh(std::process::Command::new("/bin/true").env("LD_PRELOAD", probe.path().join("libevil.so")));
    assert!(marker.exists(), "the probe library does not work");
    std::fs::remove_file(&marker).unwrap();
    let log = std::env::temp_dir().join("gpuhook-test-ldpreload.log");
    let bundle = Bundle::new("ldpreload", &[], CHECK, &sim.config(&log, ""));
    let evil_host = bundle.rootfs().join("evil/libevil.so");
    std::fs::create_dir_all(evil_host.parent().unwrap()).unwrap();
    build_c(&source, &evil_host, &["-shared", "-fPIC"]);
    // runc runs hooks in the bundle directory: a relative path from there too.
    std::fs::create_dir_all(bundle.dir.path().join("evil")).unwrap();
    std::fs::copy(&evil_host, bundle.dir.path().join("evil/libevil.so")).unwrap();
    let env = [
        "NVIDIA_VISIBLE_DEVICES=all".to_string(),
        // Makes the hook load the host's libcuda and NVML: a leaked LD_PRELOAD would run there.
        "NVIDIA_REQUIRE_CUDA=cuda>=12.0".to_string(),
        "NVIDIA_REQUIRE_ARCH=arch>=1.0".to_string(),
        format!(
            "LD_PRELOAD=/evil/libevil.so {} evil/libevil.so rootfs/evil/libevil.so",
            evil_host.display()
        ),
        format!(
            "LD_LIBRARY_PATH=/evil:{}:evil",
            evil_host.parent().unwrap().display()
        ),
        "LD_AUDIT=/evil/libevil.so".to_string(),
        "GCONV_PATH=/evil".to_string(),
    ];
    bundle.edit_spec(|spec| {
        let list = spec["process"]["env"].as_array_mut().unwrap();
        list.extend(env.iter().map(|e| serde_json::Value::String(e.clone())));
    });

    let out = bundle.run().expect_success();
    assert!(out.stdout.contains("ALL-OK"), "{}", out.stdout);
    assert!(
        !marker.exists(),
        "a host process loaded the image's library"
    );
    host.assert_unchanged("LD_PRELOAD in the image's env");
}

/// `root.readonly`: runc makes the rootfs read-only after the hooks ran; the hook's files are
/// in place and the container cannot write its rootfs.
#[test]
fn read_only_rootfs() {
    if !prerequisites("read_only_rootfs") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-readonly.log");
    let script = format!("{CHECK}\n(touch /etc/x 2>&1 || echo ROOT-IS-READ-ONLY)\n");
    let bundle = Bundle::new(
        "readonly",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        &script,
        &sim.config(&log, ""),
    );
    bundle.edit_spec(|spec| spec["root"]["readonly"] = serde_json::json!(true));
    let out = bundle.run().expect_success();
    assert!(out.stdout.contains("ALL-OK"), "{}", out.stdout);
    assert!(out.stdout.contains("ROOT-IS-READ-ONLY"), "{}", out.stdout);
    host.assert_unchanged("read-only rootfs");
}

/// A rootfs that is itself on a read-only mount: nothing can be created in it; the start fails
/// naming the first path, and the host is unchanged.
#[test]
fn rootfs_on_a_read_only_mount() {
    if !prerequisites("rootfs_on_a_read_only_mount") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join("gpuhook-test-romount.log");
    let bundle = Bundle::new(
        "romount",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        CHECK,
        &sim.config(&log, ""),
    );
    let rootfs = bundle.rootfs();
    let rootfs_before = tree_fingerprint(&rootfs);
    test_mount(&rootfs);
    sh(std::process::Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(&rootfs)
        .arg(&rootfs));
    let _unmount = Unmount(rootfs.clone());
    let host = HostWatch::new();
    let out = bundle.run();
    assert!(
        !out.success,
        "started on a read-only rootfs:\n{}",
        out.stdout
    );
    if out.stderr.contains("gpuhook: ") {
        assert_one_clear_line(&out.stderr, &bundle.id, "/", "read-only mount");
        assert!(
            out.stderr.contains("Read-only file system"),
            "{}",
            out.stderr
        );
    }
    eprintln!("rootfs on a read-only mount: {}", out.stderr.trim());
    host.assert_unchanged("rootfs on a read-only mount");
    drop(_unmount);
    assert_eq!(tree_fingerprint(&rootfs), rootfs_before);
}

/// Unmounts (lazily) on drop.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// 20000 files in the library directory (lib*.so names, so ldconfig looks at each): the start
/// succeeds; the hook's own time is printed, not asserted.
#[test]
fn many_files_in_the_library_dir() {
    if !prerequisites("many_files_in_the_library_dir") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let log = std::env::temp_dir().join(format!("gpuhook-test-many-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let bundle = Bundle::new(
        "many",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        CHECK,
        &sim.config(&log, ""),
    );
    let dir = bundle.rootfs().join("usr/lib/x86_64-linux-gnu");
    for i in 0..20_000 {
        std::fs::write(dir.join(format!("libjunk{i}.so.1")), b"").unwrap();
    }
    let started = std::time::Instant::now();
    let out = bundle.run().expect_success();
    let wall = started.elapsed();
    assert!(out.stdout.contains("ALL-OK"), "{}", out.stdout);
    let text = std::fs::read_to_string(&log).unwrap();
    let elapsed = text
        .lines()
        .find(|l| l.contains(&bundle.id) && l.contains("elapsed_ms="))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .unwrap_or("?");
    eprintln!(
        "20000 files in the library dir: hook {elapsed} ms, whole runc run {} ms",
        wall.as_millis()
    );
    host.assert_unchanged("many files");
}
