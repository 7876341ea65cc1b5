//! `gpuhook info` and `gpuhook list` against the simulated driver, read as a script would read
//! them (`--json`), and compared with what the hook really injects.

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

fn gpuhook_json(config: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(gpuhook_bin())
        .args(args)
        .arg("--json")
        .env("GPUHOOK_CONFIG", config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn info_reports_the_driver_and_every_gpu() {
    if !prerequisites_with("info_reports_the_driver_and_every_gpu", &[]) {
        return;
    }
    let sim = Sim::build(2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gpuhook.toml");
    std::fs::write(&config, sim.config(&dir.path().join("log"), "")).unwrap();
    let info = gpuhook_json(&config, &["info"]);
    assert_eq!(info["driver_version"], DRIVER_VERSION);
    assert_eq!(info["cuda_version"], "13.0");
    let gpus = info["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2);
    for (i, gpu) in gpus.iter().enumerate() {
        assert_eq!(gpu["index"], i);
        assert_eq!(gpu["uuid"], sim.uuid(i));
        assert_eq!(gpu["minor"], i);
        assert_eq!(gpu["model"], "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu["arch"], "9.0", "from the (simulated) NVML");
    }
    assert_eq!(gpus[1]["bus_id"], "0000:11:00.0");
    assert_eq!(gpus[0]["mig_mode"], "disabled");

    // With MIG on GPU 0: its mode and its MIG devices, as the (simulated) NVML reports them.
    let sim = Sim::build_with_mig(2);
    std::fs::write(&config, sim.config(&dir.path().join("log"), "")).unwrap();
    let info = gpuhook_json(&config, &["info"]);
    let gpus = info["gpus"].as_array().unwrap();
    assert_eq!(gpus[0]["mig_mode"], "enabled");
    assert_eq!(gpus[1]["mig_mode"], "disabled");
    let migs: Vec<(u64, u64)> = gpus[0]["mig_devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["index"].as_u64().unwrap(),
                d["gpu_instance"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(migs, [(0, 1), (1, 2)]);
}

#[test]
fn info_without_nvml_still_reports_the_cuda_version() {
    if !prerequisites_with("info_without_nvml_still_reports_the_cuda_version", &[]) {
        return;
    }
    let sim = Sim::build(2);
    let nvml = sim.break_nvml();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gpuhook.toml");
    std::fs::write(&config, sim.config(&dir.path().join("log"), "")).unwrap();
    let info = gpuhook_json(&config, &["info"]);
    // libcuda still answers: the CUDA version is there.
    assert_eq!(info["cuda_version"], "13.0", "{info:#}");
    // Only what needs NVML is missing, and the note says so and names the library.
    let gpus = info["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2);
    assert!(gpus
        .iter()
        .all(|g| g["arch"].is_null() && g["brand"].is_null()));
    assert_eq!(gpus[1]["uuid"], sim.uuid(1));
    let note = info["note"].as_str().unwrap_or_default();
    assert!(
        note.starts_with("architecture, brand and MIG mode unknown (they come from NVML)")
            && note.contains(&nvml.display().to_string())
            && !note.contains("CUDA"),
        "{note}"
    );
    // The table says the same.
    let out = Command::new(gpuhook_bin())
        .arg("info")
        .env("GPUHOOK_CONFIG", &config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l == "cuda 13.0") && text.contains("note: architecture, brand"),
        "{text}"
    );
}

#[test]
fn info_and_cdi_show_an_unusable_gpu_and_the_brand() {
    if !prerequisites_with("info_and_cdi_show_an_unusable_gpu_and_the_brand", &[]) {
        return;
    }
    let sim = Sim::build_with_env(2, &[("SIM_BRAND", "14")]);
    std::fs::write(
        sim.proc_driver().join("gpus/0000:10:00.0/information"),
        "garbage\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gpuhook.toml");
    std::fs::write(&config, sim.config(&dir.path().join("log"), "")).unwrap();
    let info = gpuhook_json(&config, &["info"]);
    let gpus = info["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 1, "{info:#}");
    assert_eq!(gpus[0]["index"], 1, "GPU 1 keeps its index");
    assert_eq!(
        gpus[0]["brand"], "nvidia",
        "NVML_BRAND_NVIDIA by the incumbent's name"
    );
    let unusable = info["unusable_gpus"].as_array().unwrap();
    assert_eq!(unusable.len(), 1);
    assert_eq!(unusable[0]["index"], 0);
    assert_eq!(unusable[0]["bus_id"], "0000:10:00.0");
    assert!(unusable[0]["reason"]
        .as_str()
        .unwrap()
        .contains("0000:10:00.0/information has no valid"));

    // A CDI spec offers the usable GPU under its own index, and says what it left out.
    let out = Command::new(gpuhook_bin())
        .args(["cdi", "generate"])
        .env("GPUHOOK_CONFIG", &config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["1", "all"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "gpuhook: warning: GPU 0 (0000:10:00.0) left out of the spec, it cannot be used: "
        ),
        "{out:?}"
    );
}

#[test]
fn list_shows_what_the_hook_mounts() {
    if !prerequisites("list_shows_what_the_hook_mounts") {
        return;
    }
    let sim = Sim::build(2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gpuhook.toml");
    let log = dir.path().join("log");
    std::fs::write(&config, sim.config(&log, "")).unwrap();
    let listed = gpuhook_json(
        &config,
        &["list", "--devices", "1", "--capabilities", "utility"],
    );
    let targets: Vec<String> = listed["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["container_path"].as_str().unwrap().to_string())
        .collect();
    assert!(targets.contains(&"/dev/nvidia1".to_string()), "{targets:?}");
    assert!(
        !targets.contains(&"/dev/nvidia0".to_string()),
        "{targets:?}"
    );
    assert!(
        !targets.iter().any(|t| t.contains("libcuda")),
        "{targets:?}"
    );

    // The same request through runc: every listed target is there in the container.
    let script = format!(
        "for f in {}; do [ -e \"$f\" ] || echo \"missing $f\"; done; echo done",
        targets.join(" ")
    );
    let bundle = Bundle::new(
        "list",
        &[
            "NVIDIA_VISIBLE_DEVICES=1",
            "NVIDIA_DRIVER_CAPABILITIES=utility",
        ],
        &script,
        &sim.config(&log, ""),
    );
    let out = bundle.run().expect_success();
    assert_eq!(out.stdout.trim(), "done", "{}", out.stdout);

    // A GPU the host lacks: the hook's own message.
    let out = Command::new(gpuhook_bin())
        .args(["list", "--devices", "7"])
        .env("GPUHOOK_CONFIG", &config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GPU 7 requested, this host has GPUs 0-1")
    );
}
