//! `gpuhook cdi generate --vendor`, `info`, `list --vendor` and `doctor` on a simulated
//! mixed-vendor host (tests/sim/make-vendors.sh over make-driver.sh's NVIDIA GPU), and on an
//! AMD and Intel host with no NVIDIA driver. Needs root for mknod.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::*;

fn gpuhook(config: &Path, args: &[&str]) -> Output {
    Command::new(gpuhook_bin())
        .args(args)
        .env("GPUHOOK_CONFIG", config)
        .output()
        .unwrap()
}

fn config_of(sim: &Sim) -> std::path::PathBuf {
    let path = sim.dir.path().join("gpuhook.toml");
    std::fs::write(&path, sim.config(&sim.dir.path().join("gpuhook.log"), "")).unwrap();
    path
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn paths(nodes: &Value) -> Vec<String> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cdi_generate_writes_one_spec_per_vendor() {
    if !prerequisites("cdi_generate_writes_one_spec_per_vendor") {
        return;
    }
    let sim = mixed_vendor_host();
    let config = config_of(&sim);
    let amd = stdout_json(&gpuhook(&config, &["cdi", "generate", "--vendor", "amd"]));
    assert_eq!(amd["kind"], "amd.com/gpu");
    let names: Vec<&str> = amd["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0", "1", "all"]);
    assert_eq!(
        paths(&amd["devices"][0]["containerEdits"]["deviceNodes"]),
        ["/dev/dri/card10", "/dev/dri/renderD140"]
    );
    assert_eq!(paths(&amd["containerEdits"]["deviceNodes"]), ["/dev/kfd"]);
    assert!(
        amd["containerEdits"].get("hooks").is_none()
            && amd["containerEdits"].get("mounts").is_none()
    );
    let intel = stdout_json(&gpuhook(&config, &["cdi", "generate", "--vendor", "intel"]));
    assert_eq!(intel["kind"], "intel.com/gpu");
    assert_eq!(
        paths(&intel["devices"][1]["containerEdits"]["deviceNodes"]),
        ["/dev/dri/card13", "/dev/dri/renderD143"]
    );
    assert!(intel.get("containerEdits").is_none(), "{intel}");
    // NVIDIA's spec has no AMD or Intel node.
    let nvidia = String::from_utf8(gpuhook(&config, &["cdi", "generate"]).stdout).unwrap();
    for other in ["kfd", "card10", "card12", "renderD143"] {
        assert!(!nvidia.contains(other), "{other} in NVIDIA's spec");
    }
}

#[test]
fn info_list_and_doctor_show_every_vendor() {
    if !prerequisites("info_list_and_doctor_show_every_vendor") {
        return;
    }
    let sim = mixed_vendor_host();
    let config = config_of(&sim);
    let info = stdout_json(&gpuhook(&config, &["info", "--json"]));
    assert_eq!(info["gpus"].as_array().unwrap().len(), 1, "the NVIDIA GPU");
    let vendors: Vec<String> = info["vendor_gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!(
                "{} {} {} {}",
                g["vendor"], g["index"], g["bus_id"], g["driver"]
            )
        })
        .collect();
    assert_eq!(
        vendors,
        [
            r#""amd" 0 "0000:c1:00.0" "amdgpu""#,
            r#""amd" 1 "0000:c2:00.0" "amdgpu""#,
            r#""intel" 0 "0000:05:00.0" "i915""#,
            r#""intel" 1 "0000:06:00.0" "xe""#
        ]
    );
    assert_eq!(info["vendor_gpus"][1]["unique_id"], "0x123456789abcdef");
    let table = String::from_utf8(gpuhook(&config, &["info"]).stdout).unwrap();
    assert!(table.contains("intel  1    0000:06:00.0  xe"), "{table}");
    let list =
        String::from_utf8(gpuhook(&config, &["list", "--vendor", "amd", "--devices", "1"]).stdout)
            .unwrap();
    let lines: Vec<&str> = list
        .lines()
        .map(|l| l.rsplit(" -> ").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        ["/dev/kfd", "/dev/dri/card11", "/dev/dri/renderD141"],
        "{list}"
    );
    let bad = gpuhook(&config, &["list", "--vendor", "intel", "--devices", "5"]);
    assert!(!bad.status.success());
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.contains("INTEL_VISIBLE_DEVICES=\"5\": GPU 5 requested"),
        "{err}"
    );
    let doctor = String::from_utf8(gpuhook(&config, &["doctor"]).stdout).unwrap();
    assert!(
        doctor.contains(
            "ok    AMD GPU 1 (0000:c2:00.0, amdgpu): /dev/dri/card11, /dev/dri/renderD141"
        ),
        "{doctor}"
    );
    assert!(
        doctor.contains("ok    Intel GPU 0 (0000:05:00.0, i915)"),
        "{doctor}"
    );
}

#[test]
fn a_host_without_nvidia_still_shows_its_other_gpus() {
    if !prerequisites("a_host_without_nvidia_still_shows_its_other_gpus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_vendors(dir.path());
    std::fs::remove_file(dir.path().join("dev/kfd")).unwrap();
    let config = dir.path().join("gpuhook.toml");
    std::fs::write(
        &config,
        format!(
            "[driver]\nroot = {:?}\ndev-root = {:?}\nproc-driver-root = {:?}\nsysfs-root = {:?}\n[log]\nfile = {:?}\n",
            dir.path().join("none"),
            dir.path().join("dev"),
            dir.path().join("none/proc"),
            dir.path().join("sys"),
            dir.path().join("log")
        ),
    )
    .unwrap();
    let info = stdout_json(&gpuhook(&config, &["info", "--json"]));
    assert_eq!(info["vendor_gpus"].as_array().unwrap().len(), 4);
    assert!(
        info["note"].as_str().unwrap().contains("no NVIDIA driver"),
        "{info}"
    );
    assert_eq!(info["kfd"], Value::Null);
    let doctor = String::from_utf8(gpuhook(&config, &["doctor"]).stdout).unwrap();
    assert!(doctor.contains("warn  no NVIDIA driver found"), "{doctor}");
    assert!(
        doctor.contains("/dev/kfd (ROCm's compute interface)"),
        "{doctor}"
    );
}
