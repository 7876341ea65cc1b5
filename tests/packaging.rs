//! The distro packages, installed for real: `packaging/build.sh` builds the .deb, `dpkg -i`
//! installs it on this machine, Docker drives GPU containers with nothing but what it
//! installed, an upgrade keeps the edited config, and a purge leaves nothing behind. The .rpm
//! is built and inspected with `rpm -qp`.
//!
//! Installing a package changes the machine (`/usr/bin`, `/etc`), so this runs in CI (`CI`
//! set) or when `GPUHOOK_PACKAGE_TESTS=1` asks for it; otherwise it says loudly that it did
//! not run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::engines::*;
use support::*;

const DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// Every path the package installs (the link and the man page link included).
const PACKAGE_FILES: [&str; 10] = [
    "/usr/bin/gpuhook",
    "/usr/bin/gpuhook-runtime",
    "/usr/bin/nvidia-container-runtime-hook",
    "/etc/gpuhook/config.toml",
    "/usr/share/containers/oci/hooks.d/oci-gpuhook.json",
    "/usr/share/containers/oci/hooks.d/oci-gpuhook-poststop.json",
    "/usr/share/man/man1/gpuhook.1.gz",
    "/usr/share/man/man1/gpuhook-runtime.1.gz",
    "/usr/share/man/man1/nvidia-container-runtime-hook.1.gz",
    "/usr/share/doc/gpuhook/copyright",
];

fn wanted(test: &str, programs: &[&str]) -> bool {
    let asked = std::env::var_os("CI").is_some()
        || std::env::var("GPUHOOK_PACKAGE_TESTS").as_deref() == Ok("1");
    if !asked {
        eprintln!(
            "\n!!!!!!!! {test}: NOT RUN: it installs a package on this machine; set GPUHOOK_PACKAGE_TESTS=1 (CI runs it) !!!!!!!!\n"
        );
        return false;
    }
    prerequisites_with(test, programs)
}

/// Builds a package of the binaries this test run built (the debug build: the recipe is the
/// same for `make deb`'s release build).
fn build(kind: &str, release: u32, out: &Path) -> PathBuf {
    let bin_dir = gpuhook_bin().parent().unwrap().to_path_buf();
    let output = sh(Command::new("bash")
        .arg(repo().join("packaging/build.sh"))
        .arg(kind)
        .arg(out)
        .env("BIN_DIR", bin_dir)
        .env("GPUHOOK_PKG_RELEASE", release.to_string()));
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn dpkg(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new("dpkg");
    command
        .args(["--force-confdef", "--force-confold"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive");
    for (k, v) in env {
        command.env(k, v);
    }
    String::from_utf8_lossy(&sh(&mut command).stdout).into_owned()
}

/// Keeps a pre-existing `/etc/docker/daemon.json` aside and puts it back at the end.
struct DaemonJsonGuard {
    saved: Option<Vec<u8>>,
}

impl DaemonJsonGuard {
    fn take() -> DaemonJsonGuard {
        let saved = std::fs::read(DAEMON_JSON).ok();
        let _ = std::fs::remove_file(DAEMON_JSON);
        DaemonJsonGuard { saved }
    }
}

impl Drop for DaemonJsonGuard {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "gpuhook"])
            .stdout(Stdio::null())
            .status();
        match &self.saved {
            Some(bytes) => {
                let _ = std::fs::write(DAEMON_JSON, bytes);
            }
            None => {
                let _ = std::fs::remove_file(DAEMON_JSON);
            }
        }
    }
}

/// A private dockerd that uses the system's `/etc/docker/daemon.json` and `PATH`: what the
/// package installed is all gpuhook it can find.
fn system_docker() -> (Daemon, Containerd) {
    let containerd = Containerd::start(None);
    let dir = tempfile::Builder::new()
        .prefix("gpuhook-pkg-docker-")
        .tempdir()
        .unwrap();
    let daemon = start_dockerd(
        dir,
        Path::new(DAEMON_JSON),
        &containerd,
        |dockerd| {
            dockerd.env_remove("GPUHOOK_CONFIG").env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        },
        "gpuhook-pkg-test",
    );
    (daemon, containerd)
}

fn docker_run(daemon: &Daemon, args: &[&str]) -> Outcome {
    let socket = daemon.dir.path().join("docker.sock");
    Outcome::from(
        docker_at(&socket)
            .args(["run", "--rm", "--network", "none"])
            .args(args)
            .args(["gpuhook-pkg-test", "sh", "-c", ENGINE_INSPECT])
            .output()
            .unwrap(),
    )
}

#[test]
fn deb_installs_drives_docker_upgrades_and_purges_cleanly() {
    if !wanted(
        "deb_installs_drives_docker_upgrades_and_purges_cleanly",
        &[
            "dpkg-deb",
            "lintian",
            "help2man",
            "dockerd",
            "containerd",
            "runc",
        ],
    ) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let guard = DaemonJsonGuard::take();
    let _ = Command::new("dpkg").args(["--purge", "gpuhook"]).output();

    let deb1 = build("deb", 1, out.path());
    let lint = Command::new("lintian").arg(&deb1).output().unwrap();
    let lint = String::from_utf8_lossy(&lint.stdout);
    assert!(
        !lint.lines().any(|l| l.starts_with("E:")),
        "lintian errors:\n{lint}"
    );

    // First install, opting in to the Docker registration.
    dpkg(
        &["-i", deb1.to_str().unwrap()],
        &[("GPUHOOK_CONFIGURE_DOCKER", "1")],
    );
    for file in PACKAGE_FILES {
        assert!(
            Path::new(file).symlink_metadata().is_ok(),
            "{file} not installed"
        );
    }
    assert_eq!(
        std::fs::read_link("/usr/bin/nvidia-container-runtime-hook").unwrap(),
        PathBuf::from("gpuhook")
    );
    let daemon_json = std::fs::read_to_string(DAEMON_JSON).unwrap();
    assert!(
        daemon_json.contains("\"path\": \"/usr/bin/gpuhook-runtime\""),
        "{daemon_json}"
    );

    // The operator points the installed config at the (simulated) driver: a user edit.
    let sim = Sim::build(2);
    let log = out.path().join("gpuhook.log");
    let edited = format!("{}# edited by the operator\n", sim.config(&log, ""));
    std::fs::write("/etc/gpuhook/config.toml", &edited).unwrap();

    let (docker, containerd) = system_docker();
    let all = docker_run(&docker, &["--gpus", "all"]);
    sees_gpus(&sim, &all, &[0, 1], true).unwrap_or_else(|e| panic!("--gpus all: {e}"));
    let one = docker_run(
        &docker,
        &["--runtime=gpuhook", "-e", "NVIDIA_VISIBLE_DEVICES=1"],
    );
    sees_gpus(&sim, &one, &[1], true).unwrap_or_else(|e| panic!("--runtime=gpuhook: {e}"));

    // Upgrade to a rebuilt package: the edited config stays, the runtime entry too.
    let deb2 = build("deb", 2, out.path());
    dpkg(&["-i", deb2.to_str().unwrap()], &[]);
    let status = dpkg(&["-s", "gpuhook"], &[]);
    assert!(status.contains("Version: 0.1.0-2"), "{status}");
    assert_eq!(
        std::fs::read_to_string("/etc/gpuhook/config.toml").unwrap(),
        edited
    );
    assert!(std::fs::read_to_string(DAEMON_JSON)
        .unwrap()
        .contains("/usr/bin/gpuhook-runtime"));
    let again = docker_run(&docker, &["--gpus", "all"]);
    sees_gpus(&sim, &again, &[0, 1], true)
        .unwrap_or_else(|e| panic!("--gpus all after the upgrade: {e}"));
    drop(docker);
    drop(containerd);

    // Purge: no file, no runtime entry, no backup, no log left.
    dpkg(&["--purge", "gpuhook"], &[]);
    for file in PACKAGE_FILES
        .iter()
        .chain(&["/etc/gpuhook", "/usr/share/doc/gpuhook"])
    {
        assert!(
            Path::new(file).symlink_metadata().is_err(),
            "{file} left behind after purge"
        );
    }
    match std::fs::read_to_string(DAEMON_JSON) {
        Ok(text) => assert!(!text.contains("gpuhook"), "runtime entry left: {text}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
    }
    assert!(!Path::new("/etc/docker/daemon.json.gpuhook-backup").exists());
    drop(guard);
}

#[test]
fn rpm_carries_the_files_scripts_and_relations() {
    if !wanted(
        "rpm_carries_the_files_scripts_and_relations",
        &["rpmbuild", "rpm", "help2man"],
    ) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let rpm = build("rpm", 1, out.path());
    let query = |args: &[&str]| {
        String::from_utf8_lossy(&sh(Command::new("rpm").args(args).arg(&rpm)).stdout).into_owned()
    };
    let files = query(&["-qlp"]);
    for file in PACKAGE_FILES.iter().filter(|f| !f.ends_with("copyright")) {
        assert!(
            files.lines().any(|l| l == *file),
            "{file} missing:\n{files}"
        );
    }
    assert!(files.contains("/usr/share/doc/gpuhook/LICENSE"), "{files}");
    let config = query(&["-qcp"]);
    assert_eq!(config.trim(), "/etc/gpuhook/config.toml");
    let scripts = query(&["-qp", "--scripts"]);
    for wanted in [
        "postinstall scriptlet",
        "gpuhook_register first",
        "preuninstall scriptlet",
        "gpuhook_unregister",
        "postuninstall scriptlet",
        "gpuhook_purge",
        "GPUHOOK_CONFIGURE_DOCKER",
    ] {
        assert!(scripts.contains(wanted), "{wanted} missing:\n{scripts}");
    }
    let conflicts = query(&["-qp", "--conflicts"]);
    assert!(
        conflicts.contains("nvidia-container-toolkit"),
        "{conflicts}"
    );
    let provides = query(&["-qp", "--provides"]);
    assert!(
        provides.contains("nvidia-container-runtime-hook"),
        "{provides}"
    );
    // The same scripts are shell-valid.
    for scriptlet in scripts.split("scriptlet (using /bin/sh):").skip(1) {
        let body: String = scriptlet
            .lines()
            .take_while(|l| !l.ends_with("scriptlet (using /bin/sh):"))
            .map(|l| format!("{l}\n"))
            .collect();
        let check = Command::new("sh")
            .args(["-n", "-c", &body])
            .output()
            .unwrap();
        assert!(check.status.success(), "scriptlet does not parse:\n{body}");
    }
}
