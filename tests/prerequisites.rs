//! scripts/prerequisites.sh, the set-up `make demo` and `make test` (and CI) run first: the one
//! package list, and what it does when something is missing: installs it as root on
//! Debian/Ubuntu, saying so; stops with the exact command elsewhere. The missing thing is a
//! fake program (from a fake package, installed by a fake apt-get), never a real package:
//! other work on the machine uses those.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

const FAKE_PACKAGE: &str = "gpuhook-fake-package";
const FAKE_PROGRAM: &str = "gpuhook-fake-program";

/// A fake apt-get that logs its arguments and, on `install`, puts the fake program in `bin`.
struct Fakes {
    dir: tempfile::TempDir,
}

impl Fakes {
    fn new() -> Fakes {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let apt = dir.path().join("apt-get");
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$1\" in install) printf '#!/bin/sh\\n' > {program}; chmod 755 {program} ;; esac\n",
            log = dir.path().join("apt.log").display(),
            program = bin.join(FAKE_PROGRAM).display(),
        );
        std::fs::write(&apt, script).unwrap();
        std::fs::set_permissions(&apt, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        // Readable by the unprivileged user of the non-root case.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Fakes { dir }
    }
    fn os_release(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("os-release");
        std::fs::write(&path, text).unwrap();
        path
    }
    fn apt_calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apt.log")).unwrap_or_default()
    }
    /// `prerequisites.sh selftest` with only the fake entry wanted (target `selftest`), run
    /// through `runner` (plain, or as another user).
    fn run(&self, os_release: &Path, mut runner: Command) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        runner
            .arg("bash")
            .arg(repo().join("scripts/prerequisites.sh"))
            .arg("selftest")
            .env(
                "GPUHOOK_PREREQUISITES_EXTRA",
                format!("apt:{FAKE_PACKAGE} {FAKE_PROGRAM} selftest"),
            )
            .env("GPUHOOK_OS_RELEASE", os_release)
            .env("GPUHOOK_APT_GET", self.dir.path().join("apt-get"))
            .env("PATH", path)
            .output()
            .unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";

#[test]
fn as_root_on_debian_a_missing_package_is_installed_and_named() {
    if !prerequisites_with(
        "as_root_on_debian_a_missing_package_is_installed_and_named",
        &[],
    ) {
        return;
    }
    for (system, release) in [
        ("debian", DEBIAN.to_string()),
        ("ubuntu", "ID=ubuntu\nID_LIKE=debian\n".to_string()),
    ] {
        let fakes = Fakes::new();
        let out = fakes.run(&fakes.os_release(&release), Command::new("env"));
        assert!(out.status.success(), "{system}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim(),
            format!("prerequisites: installing with apt-get: {FAKE_PACKAGE}"),
            "{system}"
        );
        assert_eq!(
            fakes.apt_calls(),
            format!("update -qq\ninstall -y -qq {FAKE_PACKAGE}\n"),
            "{system}: only the missing package, after an update"
        );
        // Present now: a second run installs nothing.
        let again = fakes.run(&fakes.os_release(&release), Command::new("env"));
        assert!(
            again.status.success() && stderr(&again).is_empty(),
            "{}",
            stderr(&again)
        );
        assert_eq!(fakes.apt_calls().lines().count(), 2);
    }
}

#[test]
fn elsewhere_a_missing_package_stops_with_the_command() {
    if !prerequisites_with(
        "elsewhere_a_missing_package_stops_with_the_command",
        &["setpriv"],
    ) {
        return;
    }
    // Not root, on Debian: the exact command to run as root, and nothing installed.
    let fakes = Fakes::new();
    let mut nobody = Command::new("setpriv");
    nobody.args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"]);
    let out = fakes.run(&fakes.os_release(DEBIAN), nobody);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "missing Debian packages: {FAKE_PACKAGE}; install them as root:"
        )) && text.contains(&format!("\n    apt-get install -y {FAKE_PACKAGE}\n")),
        "{text}"
    );
    assert_eq!(fakes.apt_calls(), "", "apt-get was run");

    // Root, but not a Debian-family system: no apt-get, the package named.
    let fakes = Fakes::new();
    let out = fakes.run(
        &fakes.os_release("ID=fedora\nID_LIKE=\"rhel centos fedora\"\n"),
        Command::new("env"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "missing: {FAKE_PACKAGE} (Debian package names); this script installs packages only on Debian and Ubuntu"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(fakes.apt_calls(), "");
}

#[test]
fn the_one_package_list_covers_every_test_program() {
    // The packages CI installs are the script's: the test target lists every one the
    // integration tests check for, and the demo's are among them.
    let packages = |target: &str| -> Vec<String> {
        let out = Command::new("bash")
            .arg(repo().join("scripts/prerequisites.sh"))
            .args(["--packages", target])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let test = packages("test");
    for package in [
        "runc",
        "busybox-static",
        "gcc",
        "libc6-dev",
        "python3",
        "docker.io",
        "containerd",
        "podman",
        "python3-jsonschema",
        "rpm",
        "lintian",
        "help2man",
        "docker-compose",
    ] {
        assert!(test.contains(&package.to_string()), "{package}: {test:?}");
    }
    let demo = packages("demo");
    assert!(demo.iter().all(|p| test.contains(p)), "{demo:?}");
    assert!(demo.contains(&"runc".to_string()) && !demo.contains(&"podman".to_string()));
    // `make test` and CI use the script, and CI runs nothing but `make test`.
    let makefile = std::fs::read_to_string(repo().join("Makefile")).unwrap();
    assert!(makefile.contains("\tbash scripts/prerequisites.sh test\n"));
    assert!(makefile.contains("\tbash scripts/prerequisites.sh demo\n"));
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let commands: Vec<&str> = ci
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            "set -euo pipefail",
            "cd \"$(dirname \"$0\")/..\"",
            "exec make test"
        ]
    );
}

#[test]
fn without_rust_it_stops_with_rustups_command() {
    if !prerequisites_with(
        "without_rust_it_stops_with_rustups_command",
        &["runc", "busybox", "gcc"],
    ) {
        return;
    }
    // The demo's packages are there (system directories), cargo is not on this PATH.
    let out = Command::new("bash")
        .arg(repo().join("scripts/prerequisites.sh"))
        .arg("demo")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("prerequisites: no Rust toolchain (cargo not on PATH); install it with:\n    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y"),
        "{text}"
    );
}
