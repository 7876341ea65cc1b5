//! Nothing the tenant controls picks where the hook creates or mounts things on the host's
//! behalf: the GPUs a spec already declares bound what the hook gives; a container-chosen
//! `CUDA_MPS_PIPE_DIRECTORY` cannot cover a system directory; no target is resolved through a
//! mount the hook made; targets that resolve onto a volume are refused (or, for an optional
//! endpoint, left out); and whatever a failed run created is taken back. Each case runs real
//! runc against the simulated driver and checks the host (canary tree, `/etc`, mount table,
//! cgroups, the driver's MPS pipe directory, the volume) afterwards.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;

use support::watch::{assert_one_clear_line, HostWatch};
use support::*;

/// The driver's MPS pipe directory on the host (inside the simulated driver root).
fn mps_dir(sim: &Sim) -> std::path::PathBuf {
    sim.driver_root().join("tmp/nvidia-mps")
}

fn bundle(name: &str, sim: &Sim, env: &[&str], script: &str) -> Bundle {
    let log = std::env::temp_dir().join(format!("gpuhook-test-{name}.log"));
    Bundle::new(name, env, script, &sim.config(&log, ""))
}

/// A spec that already declares GPU 0 (as an engine that applied CDI does) bounds the hook:
/// `NVIDIA_VISIBLE_DEVICES=all` in the image gives GPU 0 only.
#[test]
fn gpus_the_spec_declares_bound_what_the_hook_gives() {
    if !prerequisites("gpus_the_spec_declares_bound_what_the_hook_gives") {
        return;
    }
    let sim = Sim::build(2);
    let host = HostWatch::new();
    let script = "ls /dev | grep -x 'nvidia[0-9]*'; ls /proc/driver/nvidia/gpus; nvidia-smi -L";
    let b = bundle("declared", &sim, &["NVIDIA_VISIBLE_DEVICES=all"], script);
    b.edit_spec(|spec| {
        spec["linux"]["devices"] = serde_json::json!([{
            "path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0,
            "fileMode": 438, "uid": 0, "gid": 0
        }]);
        spec["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"allow": true, "type": "c", "major": 195, "minor": 0, "access": "rw"}));
    });
    let out = b.run().expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    assert!(
        !out.stdout.contains(&sim.uuid(1)),
        "GPU 1 given: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("nvidia1"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("0000:1").count(), 1, "{}", out.stdout);
    host.assert_unchanged("declared GPU 0");
}

/// `CUDA_MPS_PIPE_DIRECTORY` naming a system directory (or one that would cover another
/// target) is refused with one line naming the variable; nothing reaches the host's MPS
/// directory (before: `/etc` became the host MPS directory and ldconfig wrote its cache there).
#[test]
fn a_tenant_mps_directory_may_not_cover_a_system_directory() {
    if !prerequisites("a_tenant_mps_directory_may_not_cover_a_system_directory") {
        return;
    }
    let sim = Sim::build(1);
    std::fs::write(mps_dir(&sim).join("control"), b"pipe").unwrap();
    let host = HostWatch::new().watch(&mps_dir(&sim));
    for bad in [
        "/etc",
        "/",
        "/usr",
        "/usr/lib/x86_64-linux-gnu",
        "/tmp",
        "/dev/mps",
        "/proc/mps",
        "/usr/bin/nvidia-smi",
        "/tmp/../etc",
    ] {
        let env = [
            "NVIDIA_VISIBLE_DEVICES=all".to_string(),
            format!("CUDA_MPS_PIPE_DIRECTORY={bad}"),
        ];
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let b = bundle("mps-bad", &sim, &env, "true");
        let out = b.run_refused(bad);
        assert_one_clear_line(&out.stderr, &b.id, "CUDA_MPS_PIPE_DIRECTORY", bad);
    }
    // A directory of its own works, and the host's MPS pipes are there.
    let env = [
        "NVIDIA_VISIBLE_DEVICES=all",
        "CUDA_MPS_PIPE_DIRECTORY=/tmp/my-mps",
    ];
    let out = bundle("mps-good", &sim, &env, "cat /tmp/my-mps/control")
        .run()
        .expect_success();
    assert_eq!(out.stdout.trim(), "pipe");
    host.assert_unchanged("tenant MPS directories");
}

/// An image whose `/tmp/my-mps` is a symlink to `/etc`: the lexical rule lets the path pass, the
/// identity check on what it resolves to refuses it.
#[test]
fn a_tenant_mps_directory_reaching_etc_through_a_symlink_is_refused() {
    if !prerequisites("a_tenant_mps_directory_reaching_etc_through_a_symlink_is_refused") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new().watch(&mps_dir(&sim));
    for target in ["/etc", "../../etc", "/usr/lib/x86_64-linux-gnu"] {
        let env = [
            "NVIDIA_VISIBLE_DEVICES=all",
            "CUDA_MPS_PIPE_DIRECTORY=/tmp/my-mps",
        ];
        let b = bundle("mps-link", &sim, &env, "true");
        symlink(target, b.rootfs().join("tmp/my-mps")).unwrap();
        let out = b.run_refused(target);
        assert_one_clear_line(&out.stderr, &b.id, "/tmp/my-mps", target);
        assert!(out.stderr.contains("system directory"), "{}", out.stderr);
    }
    host.assert_unchanged("MPS directory through a symlink");
}

/// The loader files of `graphics` reached through a symlink to the directory where the host's
/// MPS pipe directory is mounted: directories are mounted last (and never over a mount made
/// already), so nothing is created in the host's directory (before: `icd.d` and its
/// placeholder landed in it, on the host).
#[test]
fn nothing_is_resolved_through_a_mount_the_hook_made() {
    if !prerequisites("nothing_is_resolved_through_a_mount_the_hook_made") {
        return;
    }
    let sim = Sim::build(1);
    let host = HostWatch::new().watch(&mps_dir(&sim));
    let env = [
        "NVIDIA_VISIBLE_DEVICES=all",
        "NVIDIA_DRIVER_CAPABILITIES=graphics,compute,utility",
    ];
    let b = bundle("through-mps", &sim, &env, "ls /tmp/nvidia-mps");
    let vulkan = b.rootfs().join("usr/share/vulkan");
    std::fs::create_dir_all(vulkan.parent().unwrap()).unwrap();
    symlink("/tmp/nvidia-mps", &vulkan).unwrap();
    std::fs::create_dir_all(b.rootfs().join("tmp/nvidia-mps")).unwrap();
    let out = b.run();
    eprintln!("through-mps: success={} {}", out.success, out.stderr.trim());
    host.assert_unchanged("a symlink into the MPS mount");
}

/// An image whose `/usr/bin` is a symlink into a volume: the hook refuses (a volume is not
/// where driver files belong) with one line naming the path, and the host's volume directory
/// is untouched (before: five root-owned nvidia-* placeholders stayed on it).
#[test]
fn targets_on_a_volume_are_refused_and_nothing_stays_on_it() {
    if !prerequisites("targets_on_a_volume_are_refused_and_nothing_stays_on_it") {
        return;
    }
    let sim = Sim::build(1);
    let volume = tempfile::tempdir().unwrap();
    let host = HostWatch::new().watch(volume.path());
    let b = bundle("volume", &sim, &["NVIDIA_VISIBLE_DEVICES=all"], "true");
    add_volume(&b, volume.path(), "/vol");
    std::fs::remove_dir_all(b.rootfs().join("usr/bin")).unwrap();
    symlink("/vol", b.rootfs().join("usr/bin")).unwrap();
    let out = b.run_refused("usr/bin -> volume");
    assert_one_clear_line(
        &out.stderr,
        &b.id,
        "/usr/bin in the container is on /vol",
        "volume",
    );
    host.assert_unchanged("targets on a volume");
}

/// The persistenced socket's directory is a volume: the socket (an optional endpoint) is left
/// out with a log line, the container starts with everything else.
#[test]
fn an_optional_endpoint_on_a_volume_is_left_out() {
    if !prerequisites("an_optional_endpoint_on_a_volume_is_left_out") {
        return;
    }
    let sim = Sim::build(1);
    let volume = tempfile::tempdir().unwrap();
    let host = HostWatch::new().watch(volume.path());
    let script = "nvidia-smi -L; ls /run/nvidia-persistenced";
    let b = bundle("optional", &sim, &["NVIDIA_VISIBLE_DEVICES=all"], script);
    add_volume(&b, volume.path(), "/run/nvidia-persistenced");
    let out = b.run().expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    assert!(!out.stdout.contains("socket"), "{}", out.stdout);
    let log = std::fs::read_to_string(std::env::temp_dir().join("gpuhook-test-optional.log"))
        .unwrap_or_default();
    assert!(
        log.contains(&format!(
            "container={} left out: /run/nvidia-persistenced",
            b.id
        )),
        "no log line for the endpoint left out:\n{log}"
    );
    host.assert_unchanged("optional endpoint on a volume");
}

/// A read-write bind mount of `dir` at `destination` (a volume, as `docker -v` makes; its
/// mount point made in the image, as runc would).
fn add_volume(b: &Bundle, dir: &Path, destination: &str) {
    std::fs::create_dir_all(b.rootfs().join(destination.trim_start_matches('/'))).unwrap();
    b.edit_spec(|spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": destination, "type": "bind", "source": dir,
                "options": ["rbind", "rw"]
            }));
    });
}
