//! The runtime shim's pass-through contract and the admin commands (`install`, `configure`),
//! run as a user would run them, against temporary files. No root, no containers.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{gpuhook_bin, gpuhook_runtime_bin};

/// A fake low-level runtime that records its arguments (one per line) and exits 0.
fn fake_runtime(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("fake-runc");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {:?}\n",
            dir.join("args")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs gpuhook-runtime with a config whose runtime search list is `runtimes`.
fn shim(dir: &Path, runtimes: &[&Path], args: &[&str]) -> Output {
    let list: Vec<String> = runtimes.iter().map(|p| format!("{p:?}")).collect();
    let config = dir.join("gpuhook.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nfile = {:?}\n[runtime]\nruntimes = [{}]\n",
            dir.join("gpuhook.log"),
            list.join(", ")
        ),
    )
    .unwrap();
    Command::new(gpuhook_runtime_bin())
        .args(args)
        .env("GPUHOOK_CONFIG", &config)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn recorded_args(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("args"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn shim_passes_every_argument_through_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let runc = fake_runtime(dir.path());
    let args = [
        "--root",
        "/run/x",
        "--log-format=json",
        "--future-flag",
        "kill",
        "--all",
        "c1",
        "SIGTERM",
        "arg with spaces",
    ];
    let out = shim(dir.path(), &[&runc], &args);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(recorded_args(dir.path()), args);
}

#[test]
fn shim_leaves_a_spec_without_gpu_request_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let runc = fake_runtime(dir.path());
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    // The large real spec, less its GPU request (the same bytes otherwise).
    let spec = std::fs::read_to_string(support::repo().join("tests/data/large-spec.json"))
        .unwrap()
        .replace("\"NVIDIA_VISIBLE_DEVICES=all\",", "");
    assert!(!spec.contains("NVIDIA_"));
    std::fs::write(bundle.join("config.json"), &spec).unwrap();
    let bundle_arg = bundle.to_string_lossy().into_owned();
    let args = ["create", "--bundle", bundle_arg.as_str(), "c2"];
    let out = shim(dir.path(), &[&runc], &args);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(recorded_args(dir.path()), args);
    assert_eq!(
        std::fs::read_to_string(bundle.join("config.json")).unwrap(),
        spec
    );
}

#[test]
fn missing_runtime_is_a_clear_error_also_in_runcs_log() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-runc");
    let log_json = dir.path().join("log.json");
    let log_arg = log_json.to_string_lossy().into_owned();
    let out = shim(
        dir.path(),
        &[&missing],
        &["--log", &log_arg, "--log-format", "json", "state", "c3"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no low-level runtime found") && stderr.contains("no-such-runc"),
        "{stderr}"
    );
    // containerd reads the reason from runc's --log file, not from stderr.
    let entry: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log_json).unwrap().trim()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(entry["msg"]
        .as_str()
        .unwrap()
        .contains("no low-level runtime found"));
}

#[test]
fn shim_refuses_to_create_from_a_malformed_spec() {
    let dir = tempfile::tempdir().unwrap();
    let runc = fake_runtime(dir.path());
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    // No --bundle: runc's rule is the current directory.
    let out = shim(dir.path(), &[&runc], &["create", "c4"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("gpuhook-runtime: container c4: cannot parse")
            && stderr.contains("config.json"),
        "{stderr}"
    );
    assert!(recorded_args(dir.path()).is_empty(), "runc ran anyway");
}

#[test]
fn shim_refuses_a_spec_over_the_size_limit_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let runc = fake_runtime(dir.path());
    let limit = gpuhook::limits::MAX_SPEC_BYTES;
    let spec = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"env":["PATH=/bin"]}}"#;
    let padded = |bytes: usize| format!("{spec}{}", " ".repeat(bytes - spec.len()));
    std::fs::write(dir.path().join("config.json"), padded(limit)).unwrap();
    let out = shim(dir.path(), &[&runc], &["create", "c5"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(recorded_args(dir.path()), ["create", "c5"]);
    std::fs::remove_file(dir.path().join("args")).unwrap();
    std::fs::write(dir.path().join("config.json"), padded(limit + 1)).unwrap();
    let out = shim(dir.path(), &[&runc], &["create", "c5"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("gpuhook-runtime: container c5: cannot read")
            && stderr.contains(
                "config.json: the file is 16777217 bytes long, over gpuhook's limit of 16777216"
            ),
        "{stderr}"
    );
    assert!(recorded_args(dir.path()).is_empty(), "runc ran anyway");
}

fn gpuhook(args: &[&str]) -> Output {
    Command::new(gpuhook_bin()).args(args).output().unwrap()
}

#[test]
fn install_links_the_compatibility_name_and_respects_a_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().to_string_lossy().into_owned();
    let link = dir.path().join("nvidia-container-runtime-hook");

    let out = gpuhook(&["install", "--bin-dir", &bin]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        link.canonicalize().unwrap(),
        gpuhook_bin().canonicalize().unwrap()
    );
    // Again: nothing to do.
    assert!(gpuhook(&["install", "--bin-dir", &bin]).status.success());

    // NVIDIA's own hook is there: refused, left alone, and the error says what to do.
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, "#!/bin/sh\n# NVIDIA's hook\n").unwrap();
    let out = gpuhook(&["install", "--bin-dir", &bin]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        "#!/bin/sh\n# NVIDIA's hook\n"
    );

    let out = gpuhook(&["install", "--bin-dir", &bin, "--force"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        link.canonicalize().unwrap(),
        gpuhook_bin().canonicalize().unwrap()
    );
}

#[test]
fn configure_docker_dry_run_writes_nothing_and_malformed_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon_json = dir.path().join("daemon.json");
    let original =
        "{\n  \"log-driver\": \"journald\",\n  \"runtimes\": {\"other\": {\"path\": \"/x\"}}\n}\n";
    std::fs::write(&daemon_json, original).unwrap();
    let path = daemon_json.to_string_lossy().into_owned();

    let out = gpuhook(&[
        "configure",
        "--runtime",
        "docker",
        "--config",
        &path,
        "--runtime-path",
        "/opt/gpuhook/gpuhook-runtime",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{out:?}");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["runtimes"]["gpuhook"]["path"],
        "/opt/gpuhook/gpuhook-runtime"
    );
    assert_eq!(printed["runtimes"]["other"]["path"], "/x");
    assert_eq!(printed["log-driver"], "journald");
    assert_eq!(std::fs::read_to_string(&daemon_json).unwrap(), original);

    std::fs::write(&daemon_json, "{ \"runtimes\": ").unwrap();
    let out = gpuhook(&["configure", "--runtime", "docker", "--config", &path]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&path), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&daemon_json).unwrap(),
        "{ \"runtimes\": "
    );
    assert!(!dir.path().join("daemon.json.gpuhook-backup").exists());
}
