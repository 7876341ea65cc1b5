//! Containers with user namespaces under real runc, against the simulated driver: runc bundles
//! whose ids 0-65535 are host ids 100000.. (what Docker's userns-remap and Podman's
//! `--userns=auto` make) get their GPUs as plain containers do, and runc started by a normal
//! user, which runs its hooks without privileges, is refused in one line. (Each capability's
//! files in such a container: `tests/capabilities_runc.rs`; the engines: `tests/userns_engines.rs`.)

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use support::watch::{assert_one_clear_line, HostWatch};
use support::*;

/// What a user would look at inside, in `== name ==` sections.
const INSPECT: &str = r#"
echo "== ids =="; cat /proc/self/uid_map
echo "== dev =="; ls /dev | grep nvidia
echo "== open =="; for d in $(ls /dev | grep nvidia); do r=$( (exec 3<>"/dev/$d") 2>&1 ); echo "$d ${r##*: }"; done
echo "== bound =="; grep -c ' /dev/nvidia' /proc/mounts
echo "== smi =="; nvidia-smi -L; echo "exit=$?"
echo "== gpus =="; ls /proc/driver/nvidia/gpus
echo "== params =="; grep ModifyDeviceFiles /proc/driver/nvidia/params
echo "== mask =="; grep ' /proc/driver ' /proc/mounts | cut -d' ' -f2-4
echo "== write =="; (echo x > /proc/driver/nvidia/params) 2>&1 || echo refused
echo "== libs =="; ls /usr/lib/x86_64-linux-gnu | grep -e libcuda.so -e libnvidia-ml.so
echo "== end =="
"#;

/// Runs INSPECT in a user-namespaced bundle asking for `devices`; returns the output and the
/// bundle (its rootfs holds the ld cache the hook built).
fn run_user_namespaced(sim: &Sim, devices: &str) -> (RunResult, Bundle) {
    let log = std::env::temp_dir().join(format!("gpuhook-userns-{}.log", std::process::id()));
    let env = format!("NVIDIA_VISIBLE_DEVICES={devices}");
    let bundle = Bundle::new("userns", &[&env], INSPECT, &sim.config(&log, ""));
    bundle.user_namespaced(100000);
    let out = bundle.run();
    assert!(
        out.success,
        "{devices}: container failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    (out, bundle)
}

/// The first `soname` entry of the container's ld cache, as the host's ldconfig reads it.
fn ld_cache_entry(bundle: &Bundle, soname: &str) -> Option<String> {
    let cache = sh(Command::new("ldconfig")
        .args(["-p", "-C"])
        .arg(bundle.rootfs().join("etc/ld.so.cache")));
    String::from_utf8_lossy(&cache.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{soname} ")))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
}

#[test]
fn user_namespaced_containers_get_their_gpus() {
    if !prerequisites("user_namespaced_containers_get_their_gpus") {
        return;
    }
    let sim = Sim::build(2);
    let host = HostWatch::new();
    for (devices, gpus) in [("all", vec![0, 1]), ("1", vec![1])] {
        let (out, bundle) = run_user_namespaced(&sim, devices);
        let what = format!("NVIDIA_VISIBLE_DEVICES={devices}");
        let ids = out.section("ids").join(" ");
        assert_eq!(
            ids.split_whitespace().collect::<Vec<_>>(),
            ["0", "100000", "65536"],
            "{what}: not user-namespaced"
        );
        let mut want_nodes: Vec<String> = gpus.iter().map(|i| format!("nvidia{i}")).collect();
        // The default capabilities (utility, compute): uvm with compute, no modeset.
        want_nodes.extend(["nvidia-uvm", "nvidia-uvm-tools", "nvidiactl"].map(String::from));
        want_nodes.sort();
        assert_eq!(out.section("dev"), want_nodes, "{what}");
        // Bound from the host, one mount per node: a user-namespaced /dev takes no mknod.
        assert_eq!(
            out.section("bound"),
            [want_nodes.len().to_string()],
            "{what}: device node mounts"
        );
        // Every node opens as far as a node with no driver behind it can (ENXIO): the mount
        // is not nodev and the device cgroup allows it.
        for line in out.section("open") {
            assert!(
                line.ends_with("No such device or address"),
                "{what}: {line}"
            );
        }
        let smi = out.section("smi");
        for (index, uuid) in (0..sim.gpus).map(|i| (i, sim.uuid(i))) {
            assert_eq!(
                smi.iter().any(|l| l.contains(&uuid)),
                gpus.contains(&index),
                "{what}: nvidia-smi -L said {smi:?}"
            );
        }
        assert_eq!(smi.last().map(String::as_str), Some("exit=0"), "{what}");
        let bus_ids: Vec<String> = gpus
            .iter()
            .map(|i| format!("0000:{}:00.0", 10 + i))
            .collect();
        assert_eq!(
            out.section("gpus"),
            bus_ids,
            "{what}: /proc/driver/nvidia/gpus"
        );
        assert_eq!(out.section("params"), ["ModifyDeviceFiles: 0"], "{what}");
        let mask = out.section("mask").join(" ");
        assert!(
            mask.starts_with("/proc/driver tmpfs ro,"),
            "{what}: /proc/driver is not masked by a read-only tmpfs: {mask:?}"
        );
        assert!(
            out.section("write").join(" ").ends_with("refused"),
            "{what}: {:?}",
            out.section("write")
        );
        for soname in ["libcuda.so.1", "libnvidia-ml.so.1"] {
            assert_eq!(
                ld_cache_entry(&bundle, soname),
                Some(format!("{LIB_DIR}/{soname}")),
                "{what}: {soname} in the container's ld cache"
            );
        }
    }

    // `none`: the driver's files, no device node, no GPU.
    let (out, bundle) = run_user_namespaced(&sim, "none");
    assert!(
        out.section("dev").is_empty(),
        "none: {:?}",
        out.section("dev")
    );
    assert!(
        out.section("gpus").is_empty(),
        "none: {:?}",
        out.section("gpus")
    );
    let smi = out.section("smi").join("\n");
    assert!(smi.contains("No devices were found"), "none: {smi}");
    assert!(
        out.section("libs")
            .contains(&format!("libcuda.so.{DRIVER_VERSION}")),
        "none: {:?}",
        out.section("libs")
    );
    assert_eq!(
        ld_cache_entry(&bundle, "libcuda.so.1"),
        Some(format!("{LIB_DIR}/libcuda.so.1"))
    );
    assert_eq!(out.section("params"), ["ModifyDeviceFiles: 0"]);
    host.assert_unchanged("user-namespaced containers");
}

/// A uid no account on a test machine uses; runc runs as it without any capability.
const NORMAL_USER: u32 = 47110;

/// runc started by a normal user (a rootless bundle: its own user namespace, that user as
/// root) runs the hook as the user, outside the container's user namespace and without
/// capabilities. The start fails with one line saying why and what to use instead, and the
/// rootfs is left as it was.
#[test]
fn rootless_runc_is_refused_in_one_line() {
    if !prerequisites_with("rootless_runc_is_refused_in_one_line", &["runc", "setpriv"]) {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join(format!("gpuhook-rootless-{}.log", std::process::id()));
    let bundle = Bundle::new(
        "rootless",
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "nvidia-smi -L",
        &sim.config(&log, ""),
    );
    make_rootless(&bundle, NORMAL_USER);
    let rootfs_before = tree_fingerprint(&bundle.rootfs());
    let state = bundle.dir.path().join("user-state");
    std::fs::create_dir(&state).unwrap();
    sh(Command::new("chown")
        .arg(NORMAL_USER.to_string())
        .arg(&state));
    let out = Command::new("setpriv")
        .args(["--reuid", &NORMAL_USER.to_string()])
        .args(["--regid", &NORMAL_USER.to_string(), "--clear-groups"])
        .arg("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(bundle.dir.path())
        .arg(&bundle.id)
        .env("XDG_RUNTIME_DIR", &state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("setpriv")
        .args(["--reuid", &NORMAL_USER.to_string(), "--regid"])
        .arg(NORMAL_USER.to_string())
        .args(["--clear-groups", "runc", "--root"])
        .arg(&state)
        .args(["delete", "--force", &bundle.id])
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr).replace("\\\"", "\"");
    assert!(!out.status.success(), "rootless runc started: {stderr}");
    assert_one_clear_line(
        &stderr,
        &bundle.id,
        &format!("gpuhook runs as uid {NORMAL_USER} without CAP_SYS_ADMIN"),
        "rootless runc",
    );
    assert!(
        stderr.contains("run the container as root, or rootless with Podman"),
        "{stderr}"
    );
    assert_eq!(tree_fingerprint(&bundle.rootfs()), rootfs_before);
}

/// Turns `bundle` into what `runc spec --rootless` makes for `uid`: a user namespace with
/// that user as its only id, no network namespace of its own, `/sys` bound from the host;
/// the bundle readable and its rootfs owned by the user.
fn make_rootless(bundle: &Bundle, uid: u32) {
    let template = tempfile::tempdir().unwrap();
    sh(Command::new("runc")
        .args(["spec", "--rootless", "--bundle"])
        .arg(template.path()));
    let rootless: serde_json::Value =
        serde_json::from_slice(&std::fs::read(template.path().join("config.json")).unwrap())
            .unwrap();
    bundle.edit_spec(|spec| {
        spec["mounts"] = rootless["mounts"].clone();
        spec["linux"] = rootless["linux"].clone();
        let map = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        spec["linux"]["uidMappings"] = map.clone();
        spec["linux"]["gidMappings"] = map;
    });
    std::fs::set_permissions(bundle.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    sh(Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{uid}")])
        .arg(bundle.rootfs()));
}
