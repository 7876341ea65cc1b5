//! A private dockerd set up the way a user sets up gpuhook, and the checks the engine tests
//! share: a list of named cases run together, and a failure that must carry a message.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::engines::*;
use super::*;

pub const IMAGE: &str = "gpuhook-test:latest";

/// A private dockerd: `gpuhook install` puts the compatibility name on its PATH, `gpuhook
/// configure --runtime docker` writes its daemon.json, gpuhook's config points at `sim`.
pub struct Docker {
    pub daemon: Daemon,
    /// Declared after `daemon`: dropped after dockerd has stopped.
    _containerd: Containerd,
}

impl Docker {
    pub fn start(sim: &Sim) -> Docker {
        Docker::start_by(
            |program| Command::new(program),
            "",
            |log| sim.config(log, ""),
        )
    }

    /// The same with `settings` (more `"key": value` members) in daemon.json, containerd and
    /// dockerd started by `launch` (the program itself, or a launcher that execs it in another
    /// mount namespace: `private_host`), and gpuhook's config made by `config` from the path
    /// of its log.
    pub fn start_by(
        launch: impl Fn(&str) -> Command,
        settings: &str,
        config: impl FnOnce(&Path) -> String,
    ) -> Docker {
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-docker-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        // A remapped root (`userns-remap`) must reach its part of the data root.
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let bin = root.join("bin");
        std::fs::create_dir(&bin).unwrap();
        sh(Command::new(gpuhook_bin())
            .args(["install", "--bin-dir"])
            .arg(&bin));
        assert!(
            bin.join("nvidia-container-runtime-hook").exists(),
            "gpuhook install made no nvidia-container-runtime-hook in {bin:?}"
        );
        let daemon_json = root.join("daemon.json");
        let settings = match settings {
            "" => String::new(),
            more => format!(",\n  {more}"),
        };
        std::fs::write(
            &daemon_json,
            format!("{{\n  \"log-level\": \"warn\"{settings}\n}}\n"),
        )
        .unwrap();
        sh(Command::new(gpuhook_bin())
            .args(["configure", "--runtime", "docker", "--config"])
            .arg(&daemon_json)
            .arg("--runtime-path")
            .arg(gpuhook_runtime_bin()));
        let gpuhook_config = root.join("gpuhook.toml");
        std::fs::write(&gpuhook_config, config(&root.join("gpuhook.log"))).unwrap();
        // dockerd's own containerd is whichever one /run/containerd holds if any (a host's
        // system containerd, with its own environment); give it ours explicitly.
        let containerd = Containerd::start_by(launch("containerd"), Some(&gpuhook_config));

        let daemon = start_dockerd_by(
            launch("dockerd"),
            dir,
            &daemon_json,
            &containerd,
            |dockerd| {
                // dockerd runs `--gpus`'s hook with its own environment (containerd's shim
                // runs the runtime with containerd's, set above): both reach gpuhook this way.
                dockerd.env("GPUHOOK_CONFIG", &gpuhook_config).env(
                    "PATH",
                    format!(
                        "{}:{}",
                        bin.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                );
            },
            IMAGE,
        );
        Docker {
            daemon,
            _containerd: containerd,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.daemon.dir.path().join("docker.sock")
    }

    pub fn gpuhook_log(&self) -> String {
        std::fs::read_to_string(self.daemon.dir.path().join("gpuhook.log")).unwrap_or_default()
    }

    pub fn cmd(&self) -> Command {
        docker_at(&self.socket())
    }

    /// `docker run --rm --network none ARGS IMAGE sh -c SCRIPT`; also returns the container id.
    pub fn run(&self, args: &[&str], script: &str) -> (Outcome, String) {
        self.run_command(args, &["sh", "-c", script])
    }

    /// `docker run --rm --network none ARGS IMAGE COMMAND...` (the test's dockerd has no
    /// network); also returns the container id.
    pub fn run_command(&self, args: &[&str], command: &[&str]) -> (Outcome, String) {
        let cidfile = self.daemon.dir.path().join(format!(
            "cid-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let out = self
            .cmd()
            .args(["run", "--rm", "--network", "none", "--cidfile"])
            .arg(&cidfile)
            .args(args)
            .arg(IMAGE)
            .args(command)
            .output()
            .unwrap();
        let id = std::fs::read_to_string(&cidfile).unwrap_or_default();
        (Outcome::from(out), id)
    }
}

/// A named check; `Err` says what was wrong.
pub type Case<'a> = (&'static str, Box<dyn FnOnce() -> Result<(), String> + 'a>);

/// Runs every case, then fails once with all that went wrong (so one run shows everything).
pub fn run_cases(cases: Vec<Case<'_>>) {
    let mut failures = Vec::new();
    for (name, case) in cases {
        match case() {
            Ok(()) => eprintln!("ok: {name}"),
            Err(why) => {
                eprintln!("FAILED: {name}: {why}");
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The command failed, and its stderr carries `message`.
pub fn expect_failure_naming(out: &Outcome, message: &str) -> Result<(), String> {
    if out.success {
        return Err(format!("container started: {}", out.describe()));
    }
    if !out.stderr.contains(message) {
        return Err(format!(
            "docker's error does not carry {message:?}: {}",
            out.stderr
        ));
    }
    Ok(())
}
