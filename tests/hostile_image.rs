//! A hostile image: symlinks at every place the hook creates or writes, pointing at host paths
//! (absolute, `../` climbs, `/proc/self/root` magic links). The container either starts with
//! everything confined to its rootfs, or fails clearly; the host is unchanged either way.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;

use support::watch::HostWatch;
use support::*;

fn replace_with_symlink(rootfs: &Path, inner: &str, target: &str) {
    let path = rootfs.join(inner);
    let _ = std::fs::remove_dir_all(&path);
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(target, &path).unwrap();
}

#[test]
fn absolute_and_climbing_symlinks_stay_inside_the_rootfs() {
    if !prerequisites("absolute_and_climbing_symlinks_stay_inside_the_rootfs") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let v = host.dir();
    let log = std::env::temp_dir().join("gpuhook-test-hostile.log");
    let script = "ls /usr/lib/x86_64-linux-gnu; nvidia-smi -L";
    let bundle = Bundle::new(
        "hostile",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        script,
        &sim.config(&log, ""),
    );
    let rootfs = bundle.rootfs();
    let climb = format!("{}{}", "../".repeat(16), v.trim_start_matches('/'));
    replace_with_symlink(&rootfs, "usr/lib/x86_64-linux-gnu", &format!("{v}/lib"));
    replace_with_symlink(&rootfs, "usr/bin", &format!("{climb}/bin"));
    replace_with_symlink(&rootfs, "etc/ld.so.cache", &format!("{v}/ld.so.cache"));
    replace_with_symlink(&rootfs, "run/nvidia-persistenced", &format!("{climb}/run"));
    replace_with_symlink(&rootfs, "lib/firmware", "../../../../../../../../etc");

    // The absolute targets exist inside the rootfs too (as an image could arrange): the links
    // are then followed, but only inside it.
    let inside = rootfs.join(v.trim_start_matches('/'));
    for dir in ["lib", "bin", "run"] {
        std::fs::create_dir_all(inside.join(dir)).unwrap();
    }

    let out = bundle.run().expect_success();
    // The links were followed as if the rootfs were `/`: the files landed inside it, and the
    // container works through them.
    assert!(out.stdout.contains("libcuda.so.1"), "{}", out.stdout);
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    let inside = rootfs.join(v.trim_start_matches('/'));
    assert!(inside
        .join(format!("lib/libcuda.so.{DRIVER_VERSION}"))
        .exists());
    assert!(inside.join("bin/nvidia-smi").exists());
    assert!(rootfs
        .join(format!("etc/nvidia/{DRIVER_VERSION}/gsp_ga10x.bin"))
        .exists());
    host.assert_unchanged(&out.stderr);
}

#[test]
fn magic_and_dangling_links_are_refused_with_a_clear_error() {
    if !prerequisites("magic_and_dangling_links_are_refused_with_a_clear_error") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new();
    let v = host.dir();
    let log = std::env::temp_dir().join("gpuhook-test-magic.log");
    for (name, inner, target) in [
        (
            "magic-lib",
            "usr/lib/x86_64-linux-gnu",
            format!("/proc/self/root{v}/lib"),
        ),
        ("magic-bin", "usr/bin", format!("/proc/1/root{v}/bin")),
        ("magic-fw", "lib/firmware", "/proc/self/cwd".to_string()),
        // Dangling inside the rootfs: refused, not followed to the host path of that name.
        (
            "dangling-lib",
            "usr/lib/x86_64-linux-gnu",
            format!("{v}/lib"),
        ),
        (
            "dangling-climb",
            "usr/bin",
            format!("{}{v}/bin", "../".repeat(12)),
        ),
    ] {
        let bundle = Bundle::new(
            name,
            &["NVIDIA_VISIBLE_DEVICES=all"],
            "true",
            &sim.config(&log, ""),
        );
        replace_with_symlink(&bundle.rootfs(), inner, &target);
        let out = bundle.run_refused(name);
        assert!(
            out.stderr.contains("gpuhook: container") && out.stderr.contains("in the container"),
            "{name}: {}",
            out.stderr
        );
        host.assert_unchanged(name);
    }
}

#[test]
fn image_symlink_into_proc_is_refused() {
    if !prerequisites("image_symlink_into_proc_is_refused") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join("gpuhook-test-procsym.log");
    let bundle = Bundle::new(
        "procsym",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "true",
        &sim.config(&log, ""),
    );
    // A plain (not magic) symlink onto a procfs file: mounting there would shadow it.
    replace_with_symlink(&bundle.rootfs(), "usr/bin", "/proc/sys/kernel");
    let out = bundle.run();
    assert!(!out.success);
    assert!(
        out.stderr.contains("leads into /proc or /sys"),
        "{}",
        out.stderr
    );
}
