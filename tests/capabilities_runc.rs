//! Each driver capability through real runc against the simulated driver: the container gets
//! that capability's files and nothing of the others'; IMEX channels, the fabric manager
//! socket and the MPS pipe directory arrive where a workload looks for them.

mod support;

use std::collections::BTreeSet;

use support::*;

/// How the container is made: plain, or in a user namespace of its own.
#[derive(Clone, Copy, PartialEq)]
enum Container {
    Plain,
    UserNamespaced,
}

fn files_for(capabilities: &str) -> BTreeSet<String> {
    files_in(Container::Plain, capabilities)
}

fn files_in(container: Container, capabilities: &str) -> BTreeSet<String> {
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join(format!("gpuhook-caps-{}.log", std::process::id()));
    let env = [
        "NVIDIA_VISIBLE_DEVICES=0".to_string(),
        format!("NVIDIA_DRIVER_CAPABILITIES={capabilities}"),
    ];
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    let bundle = Bundle::new("caps", &env, NVIDIA_FILES, &sim.config(&log, ""));
    if container == Container::UserNamespaced {
        bundle.user_namespaced(100000);
    }
    bundle
        .run()
        .expect_success()
        .section("files")
        .into_iter()
        .collect()
}

fn libs(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("{LIB_DIR}/{n}.{DRIVER_VERSION}"))
        .collect()
}

/// What each capability brings on the simulated driver (its library list, utilities, loader
/// and server files). Soname links made by ldconfig are listed too.
fn expected(capability: &str) -> BTreeSet<String> {
    let mut files: Vec<String> = Vec::new();
    let with_links = |files: &mut Vec<String>, names: &[(&str, &str)]| {
        for (name, soname) in names {
            files.extend(libs(&[name]));
            files.push(format!("{LIB_DIR}/{name}.{soname}"));
        }
    };
    match capability {
        "utility" => {
            with_links(
                &mut files,
                &[
                    ("libnvidia-ml.so", "1"),
                    ("libnvidia-cfg.so", "1"),
                    ("libnvidia-nscq.so", "1"),
                ],
            );
            files.extend(
                ["nvidia-smi", "nvidia-debugdump", "nvidia-persistenced"]
                    .map(|b| format!("/usr/bin/{b}")),
            );
        }
        "compute" => {
            with_links(
                &mut files,
                &[
                    ("libcuda.so", "1"),
                    ("libcudadebugger.so", "1"),
                    ("libnvidia-opencl.so", "1"),
                    ("libnvidia-gpucomp.so", "1"),
                    ("libnvidia-ptxjitcompiler.so", "1"),
                    ("libnvidia-allocator.so", "1"),
                    ("libnvidia-pkcs11.so", "1"),
                    ("libnvidia-pkcs11-openssl3.so", "1"),
                    ("libnvidia-nvvm.so", "1"),
                ],
            );
            files.extend(
                ["nvidia-cuda-mps-control", "nvidia-cuda-mps-server"]
                    .map(|b| format!("/usr/bin/{b}")),
            );
        }
        "video" => with_links(
            &mut files,
            &[
                ("libvdpau_nvidia.so", "1"),
                ("libnvidia-encode.so", "1"),
                ("libnvidia-opticalflow.so", "1"),
                ("libnvcuvid.so", "1"),
            ],
        ),
        "graphics" => {
            with_links(
                &mut files,
                &[
                    ("libnvidia-eglcore.so", "1"),
                    ("libnvidia-glcore.so", "1"),
                    ("libnvidia-tls.so", "1"),
                    ("libnvidia-glsi.so", "1"),
                    ("libnvidia-fbc.so", "1"),
                    ("libnvidia-rtcore.so", "1"),
                    ("libnvoptix.so", "1"),
                    ("libGLX_nvidia.so", "0"),
                    ("libEGL_nvidia.so", "0"),
                    ("libGLESv2_nvidia.so", "2"),
                    ("libGLESv1_CM_nvidia.so", "1"),
                    ("libnvidia-glvkspirv.so", "1"),
                ],
            );
            files.extend(
                [
                    "/usr/share/vulkan/icd.d/nvidia_icd.json",
                    "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
                    "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
                    "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json",
                ]
                .map(String::from),
            );
            files.push(format!("{LIB_DIR}/gbm/nvidia-drm_gbm.so"));
        }
        "display" => files.extend([
            "/usr/lib/xorg/modules/drivers/nvidia_drv.so".to_string(),
            format!("/usr/lib/xorg/modules/extensions/libglxserver_nvidia.so.{DRIVER_VERSION}"),
        ]),
        "ngx" => with_links(&mut files, &[("libnvidia-ngx.so", "1")]),
        other => panic!("no expectation for {other}"),
    }
    files.into_iter().collect()
}

#[test]
fn each_capability_brings_its_files_and_nothing_more() {
    if !prerequisites("each_capability_brings_its_files_and_nothing_more") {
        return;
    }
    let all_caps = ["utility", "compute", "video", "graphics", "display", "ngx"];
    for capability in all_caps {
        assert_eq!(
            files_for(capability),
            expected(capability),
            "NVIDIA_DRIVER_CAPABILITIES={capability}"
        );
    }
    let union: BTreeSet<String> = all_caps.iter().flat_map(|c| expected(c)).collect();
    assert_eq!(files_for("all"), union, "NVIDIA_DRIVER_CAPABILITIES=all");
    assert_eq!(
        files_for("graphics,video"),
        expected("graphics")
            .union(&expected("video"))
            .cloned()
            .collect(),
    );
}

/// The same in containers with a user namespace (ids 0-65535 mapped to host 100000..): each
/// capability's files, no other, and the host as it was.
#[test]
fn each_capability_in_a_user_namespaced_container() {
    if !prerequisites("each_capability_in_a_user_namespaced_container") {
        return;
    }
    let host = support::watch::HostWatch::new();
    let all_caps = ["utility", "compute", "video", "graphics", "display", "ngx"];
    for capability in all_caps {
        assert_eq!(
            files_in(Container::UserNamespaced, capability),
            expected(capability),
            "user namespace, NVIDIA_DRIVER_CAPABILITIES={capability}"
        );
    }
    let union: BTreeSet<String> = all_caps.iter().flat_map(|c| expected(c)).collect();
    assert_eq!(
        files_in(Container::UserNamespaced, "all"),
        union,
        "user namespace, NVIDIA_DRIVER_CAPABILITIES=all"
    );
    host.assert_unchanged("user-namespaced capability containers");
}

const IPC: &str = r#"
echo "== imex =="; ls /dev/nvidia-caps-imex-channels 2>&1
echo "== open =="; for c in 0 1; do (exec 3<>/dev/nvidia-caps-imex-channels/channel$c) 2>&1 | sed 's/.*: //'; done
echo "== sockets =="; ls -d /run/nvidia-fabricmanager/socket /run/nvidia-persistenced/socket 2>&1
echo "== mps =="; cat /var/mps/marker /tmp/nvidia-mps/marker 2>&1
echo "== end =="
"#;

#[test]
fn imex_channels_fabric_manager_and_mps_pipes() {
    if !prerequisites("imex_channels_fabric_manager_and_mps_pipes") {
        return;
    }
    let sim = Sim::build(1);
    std::fs::write(
        sim.driver_root().join("tmp/nvidia-mps/marker"),
        "host mps\n",
    )
    .unwrap();
    let log = std::env::temp_dir().join(format!("gpuhook-ipc-{}.log", std::process::id()));
    let bundle = Bundle::new(
        "ipc",
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_IMEX_CHANNELS=1",
            "CUDA_MPS_PIPE_DIRECTORY=/var/mps",
        ],
        IPC,
        &sim.config(&log, ""),
    );
    let out = bundle.run().expect_success();
    assert_eq!(out.section("imex"), ["channel1"]);
    // channel1 passes the device cgroup (no driver behind it: ENXIO); channel0 is absent.
    let open = out.section("open");
    assert!(
        open.iter().any(|l| l.contains("No such device or address")),
        "{open:?}"
    );
    assert!(
        !open.iter().any(|l| l.contains("not permitted")),
        "{open:?}"
    );
    assert_eq!(
        out.section("sockets"),
        [
            "/run/nvidia-fabricmanager/socket",
            "/run/nvidia-persistenced/socket"
        ]
    );
    let mps = out.section("mps");
    assert_eq!(mps.first().map(String::as_str), Some("host mps"), "{mps:?}");
    assert!(
        mps.get(1).is_some_and(|l| l.contains("No such file")),
        "the pipes must be at the container's CUDA_MPS_PIPE_DIRECTORY only: {mps:?}"
    );

    // An IMEX channel the host does not have: the start fails, naming what it has.
    let bad = Bundle::new(
        "imex-bad",
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=7"],
        "true",
        &sim.config(&log, ""),
    )
    .run();
    assert!(!bad.success);
    assert!(
        bad.stderr
            .contains("IMEX channel 7 requested, this host has IMEX channels 0, 1"),
        "{}",
        bad.stderr
    );
}

/// An image carrying CUDA forward-compatibility libraries (`libcuda.so.<version>` in
/// `/usr/local/cuda/compat`): newer than the host driver, its libcuda is the one the
/// container's ld cache resolves first; older, the host's stays first.
#[test]
fn cuda_forward_compat_is_used_only_when_newer() {
    if !prerequisites("cuda_forward_compat_is_used_only_when_newer") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join(format!("gpuhook-compat-{}.log", std::process::id()));
    for (version, compat_first) in [("590.48.01", true), ("575.57.08", false)] {
        let bundle = Bundle::new(
            "compat",
            &["NVIDIA_VISIBLE_DEVICES=0"],
            "true",
            &sim.config(&log, ""),
        );
        let compat = bundle.rootfs().join("usr/local/cuda/compat");
        std::fs::create_dir_all(&compat).unwrap();
        let source = bundle.dir.path().join("compat.c");
        std::fs::write(&source, "int cuda_compat_marker;\n").unwrap();
        sh(std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
            .arg(compat.join(format!("libcuda.so.{version}")))
            .arg(&source));
        std::os::unix::fs::symlink(format!("libcuda.so.{version}"), compat.join("libcuda.so.1"))
            .unwrap();
        bundle.run().expect_success();
        let cache = sh(std::process::Command::new("ldconfig")
            .args(["-p", "-C"])
            .arg(bundle.rootfs().join("etc/ld.so.cache")));
        let cache = String::from_utf8_lossy(&cache.stdout);
        let first = cache
            .lines()
            .find(|l| l.trim_start().starts_with("libcuda.so.1 "))
            .unwrap_or_default();
        let want = if compat_first {
            "/usr/local/cuda/compat/libcuda.so.1"
        } else {
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
        };
        assert!(
            first.ends_with(want),
            "compat {version}: first libcuda.so.1 is {first:?}, want {want}\n{cache}"
        );
    }
}

/// As libnvidia-container gives them: the uvm nodes with compute, nvidia-modeset with display,
/// the persistenced socket with utility, fabric manager and MPS with compute; nvidiactl and the
/// GPU's node always.
#[test]
fn control_nodes_and_sockets_follow_the_capabilities() {
    if !prerequisites("control_nodes_and_sockets_follow_the_capabilities") {
        return;
    }
    let sim = Sim::build(1);
    let log = std::env::temp_dir().join(format!("gpuhook-ctl-{}.log", std::process::id()));
    let script = "echo '== dev =='; ls /dev | grep nvidia; echo '== ipc =='; \
                  ls -d /run/nvidia-persistenced/socket /run/nvidia-fabricmanager/socket \
                  /tmp/nvidia-mps 2>/dev/null; echo '== end =='";
    for (caps, dev, ipc) in [
        (
            "utility",
            &["nvidia0", "nvidiactl"][..],
            &["/run/nvidia-persistenced/socket"][..],
        ),
        (
            "compute",
            &["nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidiactl"][..],
            &["/run/nvidia-fabricmanager/socket", "/tmp/nvidia-mps"][..],
        ),
        (
            "display",
            &["nvidia-modeset", "nvidia0", "nvidiactl"][..],
            &[][..],
        ),
    ] {
        let env = [
            "NVIDIA_VISIBLE_DEVICES=0".to_string(),
            format!("NVIDIA_DRIVER_CAPABILITIES={caps}"),
        ];
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let out = Bundle::new("ctl", &env, script, &sim.config(&log, ""))
            .run()
            .expect_success();
        assert_eq!(out.section("dev"), dev, "{caps}");
        assert_eq!(out.section("ipc"), ipc, "{caps}");
    }
}

/// With `graphics` or `display`, a container gets its GPU's DRM card and render nodes, allowed
/// in the device cgroup, and no other GPU's (nor the host's own display adapter's `card0`);
/// without them, no DRM node at all.
#[test]
fn graphics_containers_get_exactly_their_gpus_dri_nodes() {
    if !prerequisites("graphics_containers_get_exactly_their_gpus_dri_nodes") {
        return;
    }
    let sim = Sim::build(2);
    let log = std::env::temp_dir().join(format!("gpuhook-dri-{}.log", std::process::id()));
    let script = "echo '== dri =='; ls /dev/dri 2>/dev/null; echo '== open =='; \
                  for n in /dev/dri/*; do [ -e \"$n\" ] && (exec 3<>\"$n\") 2>&1 | sed 's/.*: //'; done; \
                  echo '== end =='";
    for (devices, caps, expected) in [
        ("1", "graphics", &["card2", "renderD129"][..]),
        ("0", "display", &["card1", "renderD128"][..]),
        (
            "all",
            "graphics,compute",
            &["card1", "card2", "renderD128", "renderD129"][..],
        ),
        ("1", "compute,utility", &[][..]),
        ("all", "video", &[][..]),
    ] {
        let env = [
            format!("NVIDIA_VISIBLE_DEVICES={devices}"),
            format!("NVIDIA_DRIVER_CAPABILITIES={caps}"),
        ];
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let out = Bundle::new("dri", &env, script, &sim.config(&log, ""))
            .run()
            .expect_success();
        assert_eq!(out.section("dri"), expected, "{devices} {caps}");
        // No driver behind the simulated nodes, but the device cgroup lets them be opened.
        let open = out.section("open");
        assert!(
            !open.iter().any(|l| l.contains("not permitted")),
            "{devices} {caps}: {open:?}"
        );
    }
}
