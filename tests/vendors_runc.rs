//! AMD and Intel GPUs through real runc on a simulated host (tests/sim/make-vendors.sh, on
//! top of make-driver.sh's NVIDIA GPU for the mixed-vendor cases): each request form gets
//! exactly its GPUs' DRM nodes (and, for AMD, /dev/kfd) with device cgroup rules, no
//! library and nothing of another vendor; bad requests fail with one clear line and leave
//! nothing on the host.

mod support;

use std::process::Command;

use support::watch::{assert_one_clear_line, HostWatch};
use support::*;

/// Lists the GPU nodes the container has, opens each (ENXIO: the cgroup lets it through and
/// no driver answers; EPERM: the cgroup refuses), and lists vendor libraries and procfs.
const SCRIPT: &str = r#"
echo "== dev =="
for f in /dev/kfd /dev/dri/* /dev/nvidia*; do [ -e "$f" ] && echo "$f"; done
echo "== open =="
for f in /dev/kfd /dev/dri/* /dev/nvidia0; do
    [ -c "$f" ] || continue
    echo "$f: $( (exec 3<>"$f") 2>&1 | sed 's/.*: //')"
done
echo "== libs =="
ls /usr/lib/x86_64-linux-gnu | grep -i -e nvidia -e cuda -e amdhip -e rocm -e level_zero
echo "== procfs =="
ls /proc/driver 2>/dev/null
echo "== end =="
"#;

fn run(name: &str, sim: &Sim, env: &[&str]) -> (Bundle, RunResult) {
    let log = std::env::temp_dir().join(format!("gpuhook-vendors-{}.log", std::process::id()));
    let bundle = Bundle::new(name, env, SCRIPT, &sim.config(&log, ""));
    let out = bundle.run();
    (bundle, out)
}

fn nodes(cards: &[u32]) -> Vec<String> {
    let mut nodes: Vec<String> = cards
        .iter()
        .flat_map(|c| {
            [
                format!("/dev/dri/card{c}"),
                format!("/dev/dri/renderD{}", c + 130),
            ]
        })
        .collect();
    nodes.sort();
    nodes
}

/// Asserts the container got exactly `want` (sorted as the shell lists them), each usable.
fn assert_given(out: &RunResult, want: &[String], context: &str) {
    assert_eq!(out.section("dev"), want, "{context}");
    let open = out.section("open");
    assert_eq!(open.len(), want.len(), "{context}: {open:?}");
    assert!(
        open.iter().all(|l| l.contains("No such device or address")),
        "{context}: the device cgroup refuses a given node: {open:?}"
    );
    assert!(
        out.section("libs").is_empty(),
        "{context}: {:?}",
        out.section("libs")
    );
}

#[test]
fn each_amd_request_form_gets_kfd_and_exactly_its_gpus() {
    if !prerequisites("each_amd_request_form_gets_kfd_and_exactly_its_gpus") {
        return;
    }
    let sim = mixed_vendor_host();
    let host = HostWatch::new();
    let with_kfd = |cards: &[u32]| {
        let mut want = vec!["/dev/kfd".to_string()];
        want.extend(nodes(cards));
        want
    };
    let cases: [(&str, Vec<String>); 6] = [
        ("all", with_kfd(&[10, 11])),
        ("0", with_kfd(&[10])),
        ("1", with_kfd(&[11])),
        ("0-1", with_kfd(&[10, 11])),
        ("0x0123456789abcdef", with_kfd(&[11])),
        ("0x1F2E3D4C5B6A7980,1", with_kfd(&[10, 11])),
    ];
    for (value, want) in cases {
        let env = format!("AMD_VISIBLE_DEVICES={value}");
        let (_, out) = run("amd", &sim, &[&env]);
        let out = out.expect_success();
        assert_given(&out, &want, &env);
        assert!(
            out.section("procfs").is_empty(),
            "{env}: {:?}",
            out.section("procfs")
        );
    }
    host.assert_unchanged("AMD requests");
}

#[test]
fn each_intel_request_form_gets_exactly_its_gpus() {
    if !prerequisites("each_intel_request_form_gets_exactly_its_gpus") {
        return;
    }
    let sim = mixed_vendor_host();
    let host = HostWatch::new();
    let cases: [(&str, Vec<String>); 5] = [
        ("all", nodes(&[12, 13])),
        ("0", nodes(&[12])),
        ("1", nodes(&[13])),
        ("0-1", nodes(&[12, 13])),
        ("0000:06:00.0", nodes(&[13])),
    ];
    for (value, want) in cases {
        let env = format!("INTEL_VISIBLE_DEVICES={value}");
        let (_, out) = run("intel", &sim, &[&env]);
        assert_given(&out.expect_success(), &want, &env);
    }
    host.assert_unchanged("Intel requests");
}

#[test]
fn vendors_never_leak_into_each_others_requests() {
    if !prerequisites("vendors_never_leak_into_each_others_requests") {
        return;
    }
    let sim = mixed_vendor_host();
    // NVIDIA's `all` with graphics (which brings DRM nodes): only NVIDIA's own card1.
    let (_, out) = run(
        "nvidia",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_DRIVER_CAPABILITIES=graphics",
        ],
    );
    let dev = out.expect_success().section("dev");
    assert!(dev.contains(&"/dev/nvidia0".to_string()), "{dev:?}");
    let dri: Vec<&String> = dev
        .iter()
        .filter(|d| d.starts_with("/dev/dri/") || *d == "/dev/kfd")
        .collect();
    assert_eq!(dri, ["/dev/dri/card1", "/dev/dri/renderD128"], "{dev:?}");
    // All three vendors at once: each gets its own, and NVIDIA's libraries come only with it.
    let (_, out) = run(
        "mixed",
        &sim,
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "AMD_VISIBLE_DEVICES=1",
            "INTEL_VISIBLE_DEVICES=0",
        ],
    );
    let out = out.expect_success();
    let dev = out.section("dev");
    let mut want = vec!["/dev/kfd".to_string()];
    want.extend(nodes(&[11, 12]));
    want.extend(
        [
            "/dev/nvidia0",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia-uvm-tools",
        ]
        .map(String::from),
    );
    let mut sorted_dev = dev.clone();
    sorted_dev.sort();
    want.sort();
    assert_eq!(sorted_dev, want);
    assert!(
        !out.section("libs").is_empty(),
        "NVIDIA's compute libraries"
    );
    assert!(
        !out.section("open")
            .iter()
            .any(|l| l.contains("not permitted")),
        "{:?}",
        out.section("open")
    );
}

#[test]
fn an_amd_only_host_needs_no_nvidia_driver() {
    if !prerequisites("an_amd_only_host_needs_no_nvidia_driver") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_vendors(dir.path());
    let log = dir.path().join("gpuhook.log");
    let config = format!(
        "[driver]\nroot = {:?}\ndev-root = {:?}\nproc-driver-root = {:?}\nsysfs-root = {:?}\n[log]\nfile = {:?}\n",
        dir.path().join("no-driver"),
        dir.path().join("dev"),
        dir.path().join("no-proc"),
        dir.path().join("sys"),
        log
    );
    let bundle = Bundle::new("amdonly", &["AMD_VISIBLE_DEVICES=0"], SCRIPT, &config);
    let mut want = vec!["/dev/kfd".to_string()];
    want.extend(nodes(&[10]));
    assert_given(&bundle.run().expect_success(), &want, "AMD-only host");
    // NVIDIA's request on that host still says there is no NVIDIA driver.
    let bundle = Bundle::new("nvonly", &["NVIDIA_VISIBLE_DEVICES=0"], SCRIPT, &config);
    let out = bundle.run_refused("NVIDIA on an AMD-only host");
    assert_one_clear_line(
        &out.stderr,
        &bundle.id,
        "no NVIDIA driver",
        "NVIDIA on an AMD host",
    );
}

#[test]
fn bad_requests_fail_with_one_clear_line_and_leave_nothing() {
    if !prerequisites("bad_requests_fail_with_one_clear_line_and_leave_nothing") {
        return;
    }
    let sim = mixed_vendor_host();
    let host = HostWatch::new();
    let cases = [
        ("AMD_VISIBLE_DEVICES=gpu0", "AMD_VISIBLE_DEVICES=\"gpu0\": \"gpu0\" is not a GPU index"),
        ("AMD_VISIBLE_DEVICES=2", "GPU 2 requested, this host has AMD GPUs 0 (0x1f2e3d4c5b6a7980, 0000:c1:00.0), 1 (0x123456789abcdef, 0000:c2:00.0)"),
        ("AMD_VISIBLE_DEVICES=0-5", "AMD_VISIBLE_DEVICES=\"0-5\": GPU 0-5 requested"),
        ("AMD_VISIBLE_DEVICES=0xdeadbeef", "GPU 0xdeadbeef requested"),
        ("INTEL_VISIBLE_DEVICES=0000:07:00.0", "INTEL_VISIBLE_DEVICES=\"0000:07:00.0\": GPU 0000:07:00.0 requested, this host has Intel GPUs 0 (0000:05:00.0), 1 (0000:06:00.0)"),
        ("INTEL_VISIBLE_DEVICES=0x1", "INTEL_VISIBLE_DEVICES=\"0x1\": \"0x1\" is not a GPU index"),
    ];
    for (env, message) in cases {
        let log = sim.dir.path().join("bad.log");
        let bundle = Bundle::new("bad", &[env], SCRIPT, &sim.config(&log, ""));
        let out = bundle.run_refused(env);
        assert_one_clear_line(&out.stderr, &bundle.id, message, env);
    }
    // The KFD node gone: AMD requests are refused, Intel's still work.
    std::fs::remove_file(sim.dev().join("kfd")).unwrap();
    let log = sim.dir.path().join("kfd.log");
    let bundle = Bundle::new(
        "nokfd",
        &["AMD_VISIBLE_DEVICES=0"],
        SCRIPT,
        &sim.config(&log, ""),
    );
    let out = bundle.run_refused("no /dev/kfd");
    assert_one_clear_line(
        &out.stderr,
        &bundle.id,
        "the host has no /dev/kfd",
        "no kfd",
    );
    let (_, out) = run("intel", &sim, &["INTEL_VISIBLE_DEVICES=1"]);
    assert_given(&out.expect_success(), &nodes(&[13]), "Intel without kfd");
    host.assert_unchanged("bad requests");
}

#[test]
fn the_device_cgroup_rules_are_what_makes_the_nodes_usable() {
    if !prerequisites("the_device_cgroup_rules_are_what_makes_the_nodes_usable") {
        return;
    }
    let sim = mixed_vendor_host();
    let log = sim.dir.path().join("nocg.log");
    let config = sim.config(&log, "no-cgroups = true");
    let bundle = Bundle::new("nocg", &["AMD_VISIBLE_DEVICES=0"], SCRIPT, &config);
    let out = bundle.run().expect_success();
    let open = out.section("open");
    assert!(
        open.len() == 3 && open.iter().all(|l| l.contains("Operation not permitted")),
        "{open:?}"
    );
}

#[test]
fn the_shim_gives_the_same_devices_and_cdi_specs_work() {
    if !prerequisites("the_shim_gives_the_same_devices_and_cdi_specs_work") {
        return;
    }
    let sim = mixed_vendor_host();
    let host = HostWatch::new();
    let spec_dir = sim.dir.path().join("cdi");
    let config_path = sim.dir.path().join("shim.toml");
    let config = format!(
        "{}[cdi]\nspec-dirs = [{:?}]\n",
        sim.config(&sim.dir.path().join("shim.log"), ""),
        spec_dir
    );
    std::fs::write(&config_path, &config).unwrap();
    // Legacy mode: the shim puts the nodes in the spec and adds the hook, which mounts them.
    let bundle = Bundle::new(
        "shim",
        &["AMD_VISIBLE_DEVICES=1", "INTEL_VISIBLE_DEVICES=0"],
        SCRIPT,
        &config,
    );
    let out = bundle.run_through_shim(&config_path).expect_success();
    let mut want = vec!["/dev/kfd".to_string()];
    want.extend(nodes(&[11, 12]));
    assert_given(&out, &want, "through the shim");
    // CDI: one spec per vendor, asked for by annotation.
    for vendor in ["amd", "intel"] {
        let spec = spec_dir.join(format!("{vendor}.json"));
        let generate = Command::new(gpuhook_bin())
            .args(["cdi", "generate", "--vendor", vendor, "--output"])
            .arg(&spec)
            .env("GPUHOOK_CONFIG", &config_path)
            .output()
            .unwrap();
        assert!(
            generate.status.success(),
            "{}",
            String::from_utf8_lossy(&generate.stderr)
        );
    }
    let bundle = Bundle::new("shimcdi", &[], SCRIPT, &config);
    bundle.edit_spec(|spec| {
        spec["annotations"] =
            serde_json::json!({ "cdi.k8s.io/gpus": "amd.com/gpu=0,intel.com/gpu=1" });
    });
    let out = bundle.run_through_shim(&config_path).expect_success();
    let mut want = vec!["/dev/kfd".to_string()];
    want.extend(nodes(&[10, 13]));
    assert_given(&out, &want, "CDI");
    host.assert_unchanged("shim");
}

/// A bundle whose cgroup is `/<id>` and whose hook reads a simulated cgroup tree at `fake`
/// (device rules off: the fake tree holds no BPF programs; the cap is what is checked).
fn dmem_bundle(sim: &Sim, fake: &std::path::Path, env: &[&str]) -> Bundle {
    let log = sim.dir.path().join("dmem.log");
    let extra = format!("no-cgroups = true\ncgroup-root = {fake:?}");
    let bundle = Bundle::new("dmem", env, SCRIPT, &sim.config(&log, &extra));
    let path = format!("/{}", bundle.id);
    bundle.edit_spec(|spec| spec["linux"]["cgroupsPath"] = serde_json::json!(path));
    bundle
}

#[test]
fn dmem_caps_go_to_the_containers_cgroup_or_the_container_does_not_start() {
    if !prerequisites("dmem_caps_go_to_the_containers_cgroup_or_the_container_does_not_start") {
        return;
    }
    let sim = mixed_vendor_host();
    let host = HostWatch::new();
    let fake = sim.dir.path().join("cgroup");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(
        fake.join("dmem.capacity"),
        "drm/0000:c1:00.0/vram0 68702699520\ndrm/0000:c2:00.0/vram0 68702699520\ndrm/0000:06:00.0/vram0 17163091968\n",
    )
    .unwrap();
    let env = ["AMD_VISIBLE_DEVICES=1", "AMD_GPU_MEMORY_LIMIT=4G"];
    let bundle = dmem_bundle(&sim, &fake, &env);
    let cgroup = fake.join(&bundle.id);
    std::fs::create_dir_all(&cgroup).unwrap();
    std::fs::write(cgroup.join("dmem.max"), "").unwrap();
    bundle.run().expect_success();
    assert_eq!(
        std::fs::read_to_string(cgroup.join("dmem.max")).unwrap(),
        "drm/0000:c2:00.0/vram0 4294967296\n"
    );
    // The container's cgroup has no dmem controller: refused, one line.
    let bundle = dmem_bundle(&sim, &fake, &env);
    std::fs::create_dir_all(fake.join(&bundle.id)).unwrap();
    let out = bundle.run_refused("no dmem.max");
    assert_one_clear_line(
        &out.stderr,
        &bundle.id,
        "dmem.max is missing: the kernel has no dmem cgroup controller (Linux 6.14+, cgroup v2)",
        "no dmem.max",
    );
    // An i915 GPU registers no region: refused.
    let bundle = dmem_bundle(
        &sim,
        &fake,
        &["INTEL_VISIBLE_DEVICES=0", "INTEL_GPU_MEMORY_LIMIT=1G"],
    );
    let out = bundle.run_refused("i915 cap");
    assert_one_clear_line(
        &out.stderr,
        &bundle.id,
        "Intel GPU 0 (0000:05:00.0) has no dmem region",
        "i915 cap",
    );
    // A kernel without the controller at all.
    std::fs::remove_file(fake.join("dmem.capacity")).unwrap();
    let bundle = dmem_bundle(&sim, &fake, &env);
    let out = bundle.run_refused("no dmem.capacity");
    assert_one_clear_line(
        &out.stderr,
        &bundle.id,
        "dmem.capacity is missing",
        "no dmem.capacity",
    );
    host.assert_unchanged("dmem caps");
}
