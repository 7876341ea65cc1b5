//! The hook binary's contract with runc, without containers: exit codes and one-line errors
//! for bad input. No root needed.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::gpuhook_bin;

/// Runs `gpuhook <args>` with `stdin` and a config file; returns (exit code, stderr).
fn hook(args: &[&str], stdin: &[u8], config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(gpuhook_bin())
        .args(args)
        .env("GPUHOOK_CONFIG", &config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The hook may fail (bad config) before it reads stdin; a broken pipe is then expected.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const QUIET: &str = "[log]\nfile = \"\"\n";

fn bundle_with(config_json: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config_json).unwrap();
    dir
}

/// The state a runtime would send; the pid is this test's own (a live process the hook may
/// open: pid 1 is not always readable, e.g. under a sandbox's own init).
fn state_for(bundle: &std::path::Path) -> Vec<u8> {
    format!(
        r#"{{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":{},"bundle":"{}"}}"#,
        std::process::id(),
        bundle.display()
    )
    .into_bytes()
}

fn assert_one_line(stderr: &str) {
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr:?}"
    );
    assert!(stderr.starts_with("gpuhook: "), "{stderr:?}");
}

#[test]
fn malformed_state_json_is_a_clear_error() {
    for input in [
        &b""[..],
        b"{",
        b"[]",
        br#"{"id":"x"}"#,
        br#"{"id":"x","bundle":"relative/dir"}"#,
    ] {
        let (code, stderr) = hook(&["prestart"], input, QUIET);
        assert_eq!(code, 1, "{input:?}");
        assert_one_line(&stderr);
        assert!(stderr.contains("malformed OCI state"), "{stderr}");
    }
}

#[test]
fn malformed_config_json_is_a_clear_error() {
    let bundle = bundle_with("{ not json");
    let (code, stderr) = hook(&["prestart"], &state_for(bundle.path()), QUIET);
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(
        stderr.contains("cannot load the container's spec") && stderr.contains("config.json"),
        "{stderr}"
    );
    // Says what is wrong and where, not a bare "serde failed".
    assert!(
        stderr.contains("not valid JSON") && stderr.contains("line 1 column 3"),
        "{stderr}"
    );
    let bundle = bundle_with(r#"{"ociVersion": 2}"#);
    let (code, stderr) = hook(&["prestart"], &state_for(bundle.path()), QUIET);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("not an OCI runtime spec: invalid type"),
        "{stderr}"
    );
    let missing = tempfile::tempdir().unwrap();
    let (code, stderr) = hook(&["prestart"], &state_for(missing.path()), QUIET);
    assert_eq!(code, 1);
    assert!(stderr.contains("config.json"), "{stderr}");
}

#[test]
fn a_container_that_asks_for_nothing_is_left_alone() {
    let spec = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"env":["PATH=/bin"]}}"#;
    let bundle = bundle_with(spec);
    // No driver is configured at all: asking for nothing must not even look for one.
    let config = format!("{QUIET}[driver]\nproc-driver-root = \"/nonexistent\"\n");
    let (code, stderr) = hook(&["prestart"], &state_for(bundle.path()), &config);
    assert_eq!((code, stderr.as_str()), (0, ""));
    // createRuntime behaves the same; createContainer (run by runc inside the container's
    // namespaces) is refused with a line that says what to use instead.
    assert_eq!(
        hook(&["createRuntime"], &state_for(bundle.path()), &config).0,
        0
    );
    let (code, stderr) = hook(&["createContainer"], &state_for(bundle.path()), &config);
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(
        stderr.contains("createContainer") && stderr.contains("prestart or createRuntime"),
        "{stderr}"
    );
    // poststop: nothing to do for a container gpuhook did not cap; a malformed state is one
    // clear line.
    let config = format!("{config}[memory]\nmps-root = \"/nonexistent/mps\"\n");
    let (code, stderr) = hook(&["poststop"], &state_for(bundle.path()), &config);
    assert_eq!((code, stderr.as_str()), (0, ""));
    let (code, stderr) = hook(&["poststop"], b"", &config);
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(stderr.contains("OCI state"), "{stderr}");
}

#[test]
fn bad_config_names_the_key() {
    let (code, stderr) = hook(&["prestart"], b"{}", "[driver]\nroots = \"/\"\n");
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(
        stderr.contains("roots") && stderr.contains("config.toml"),
        "{stderr}"
    );
}

#[test]
fn unknown_hook_stage_is_refused() {
    let (code, stderr) = hook(&["prestrat"], b"", QUIET);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("prestrat"), "{stderr}");
}

#[test]
fn nvidia_compatibility_name_works() {
    // dockerd's --gpus runs `nvidia-container-runtime-hook prestart`.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("nvidia-container-runtime-hook");
    std::os::unix::fs::symlink(gpuhook_bin(), &link).unwrap();
    let out = Command::new(&link).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("prestart"));
}

/// A spec asking for nothing, padded with trailing spaces to exactly `bytes`.
fn spec_of_size(bytes: usize) -> String {
    let spec = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"env":["PATH=/bin"]}}"#;
    format!("{spec}{}", " ".repeat(bytes - spec.len()))
}

#[test]
fn config_json_over_the_size_limit_is_refused_naming_it() {
    let limit = gpuhook::limits::MAX_SPEC_BYTES;
    let at_limit = bundle_with(&spec_of_size(limit));
    let (code, stderr) = hook(&["prestart"], &state_for(at_limit.path()), QUIET);
    assert_eq!((code, stderr.as_str()), (0, ""));
    let over = bundle_with(&spec_of_size(limit + 1));
    let (code, stderr) = hook(&["prestart"], &state_for(over.path()), QUIET);
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(
        stderr.contains(
            "config.json: the file is 16777217 bytes long, over gpuhook's limit of 16777216"
        ),
        "{stderr}"
    );
}

#[test]
fn a_state_over_the_size_limit_is_refused_naming_it() {
    let limit = gpuhook::limits::MAX_STATE_BYTES;
    let bundle = bundle_with(&spec_of_size(1000));
    let pad = |bytes: usize| {
        let mut state = state_for(bundle.path());
        state.resize(bytes, b' ');
        state
    };
    let (code, stderr) = hook(&["prestart"], &pad(limit), QUIET);
    assert_eq!((code, stderr.as_str()), (0, ""));
    let (code, stderr) = hook(&["prestart"], &pad(limit + 1), QUIET);
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(
        stderr.contains("the OCI state on stdin is over gpuhook's limit of 16777216 bytes"),
        "{stderr}"
    );
}

#[test]
fn a_one_megabyte_config_json_is_read_whole() {
    // 1 MB of env and annotations around a GPU request: the request is read whole, and the
    // hook goes on to the container (the state's pid is this test, in the host's own mount
    // namespace, which the hook refuses), not stopping at a size limit or a parse error.
    let mut env: Vec<String> = (0..25_000).map(|i| format!("VAR_{i}=value-{i}")).collect();
    env.push(format!(
        "NVIDIA_VISIBLE_DEVICES={}",
        (0..1000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    let annotations: serde_json::Map<String, serde_json::Value> = (0..12_000)
        .map(|i| (format!("example.com/key-{i}"), format!("value {i}").into()))
        .collect();
    let spec = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": env},
        "annotations": annotations,
    })
    .to_string();
    assert!(spec.len() > 1_000_000, "{}", spec.len());
    let bundle = bundle_with(&spec);
    let config = format!("{QUIET}[driver]\nproc-driver-root = \"/nonexistent\"\n");
    let (code, stderr) = hook(&["prestart"], &state_for(bundle.path()), &config);
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(
        stderr.contains("is in the host's own mount namespace"),
        "{stderr}"
    );
}

#[test]
fn a_long_bad_value_is_quoted_in_part_on_one_short_line() {
    // A 100 KiB bad item in NVIDIA_VISIBLE_DEVICES: the error names the variable, quotes the
    // start of the value and of the item with their lengths, and stays a readable line.
    let item = format!("GPU-{}", "x".repeat(100_000));
    let spec = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                    "env": [format!("NVIDIA_VISIBLE_DEVICES=0,{item}")]},
    })
    .to_string();
    let bundle = bundle_with(&spec);
    let (code, stderr) = hook(&["prestart"], &state_for(bundle.path()), QUIET);
    assert_eq!(code, 1);
    assert_one_line(&stderr);
    assert!(stderr.len() < 500, "{} bytes: {stderr}", stderr.len());
    assert!(
        stderr.contains("NVIDIA_VISIBLE_DEVICES=\"0,GPU-xxx"),
        "{stderr}"
    );
    assert!(stderr.contains("... (100006 bytes): \"GPU-xxx"), "{stderr}");
    assert!(
        stderr.contains("... (100004 bytes) is not a GPU index"),
        "{stderr}"
    );
}
