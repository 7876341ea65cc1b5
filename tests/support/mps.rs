//! For the memory-cap tests: a simulated driver with the fake MPS control daemon
//! (tests/sim/sim_mps_control.c), gpuhook configured with its own MPS root, and what is left
//! there: pools, registrations, the commands each daemon got, and the processes of its pools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::gpu_processes::Detached;
use super::{gpuhook_bin, sh, Bundle, Sim};

/// What a container runs to reach its pool's daemon: the server's pid comes back.
pub const QUERY: &str = "echo get_server_list | nvidia-cuda-mps-control";

/// The runc state directory of a node's detached containers.
pub fn runc_root(node: &MpsNode) -> PathBuf {
    node.dir.path().join("runc")
}

pub struct MpsNode {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

impl MpsNode {
    pub fn new(gpus: usize) -> MpsNode {
        MpsNode::with_sim(Sim::build(gpus))
    }

    pub fn with_sim(sim: Sim) -> MpsNode {
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-mps-")
            .tempdir()
            .unwrap();
        MpsNode { sim, dir }
    }

    /// Puts `marker` ("host mps") into the host's own MPS pipe directory, to see where it goes.
    pub fn mark_host_mps_dir(&self) {
        let dir = self.sim.driver_root().join("tmp/nvidia-mps");
        std::fs::write(dir.join("marker"), "host mps\n").unwrap();
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("mps")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("gpuhook.log")
    }

    /// The config: the simulated driver, this MPS root, and `memory` appended to `[memory]`.
    pub fn config(&self, memory: &str) -> String {
        format!(
            "{}[memory]\nmps-root = {:?}\n{memory}\n",
            self.sim.config(&self.log(), ""),
            self.root()
        )
    }

    /// A bundle whose container runs `script` with `env`, gpuhook as its prestart hook and,
    /// with `poststop`, the packaged hooks.d poststop entry (`hook/oci-gpuhook-poststop.json`,
    /// its stage and arguments, with this build's gpuhook).
    pub fn bundle(
        &self,
        name: &str,
        env: &[&str],
        script: &str,
        memory: &str,
        poststop: bool,
    ) -> Bundle {
        let b = Bundle::new(name, env, script, &self.config(memory));
        if poststop {
            let packaged: serde_json::Value = serde_json::from_slice(
                &std::fs::read(super::repo().join("hook/oci-gpuhook-poststop.json")).unwrap(),
            )
            .unwrap();
            let stage = packaged["stages"][0].as_str().unwrap().to_string();
            assert_eq!(packaged["when"]["always"], true);
            let config = b.dir.path().join("gpuhook.toml");
            b.edit_spec(|spec| {
                spec["hooks"][stage] = serde_json::json!([{
                    "path": gpuhook_bin(),
                    "args": packaged["hook"]["args"],
                    "env": [format!("GPUHOOK_CONFIG={}", config.display())],
                }]);
            });
        }
        b
    }

    /// A detached container sleeping with `env` (and the poststop hook); the bundle must live
    /// as long as the container (its hooks read the config in it).
    pub fn sleeper(&self, name: &str, env: &[&str]) -> (Bundle, Detached) {
        let bundle = self.bundle(name, env, "sleep 60", "", true);
        let running = Detached::start(&bundle, Some(&runc_root(self)));
        (bundle, running)
    }

    pub fn pools(&self) -> Vec<String> {
        names(&self.root().join("pools"))
    }

    pub fn registrations(&self) -> Vec<serde_json::Value> {
        names(&self.root().join("containers"))
            .into_iter()
            .filter(|n| n.ends_with(".json"))
            .map(|n| {
                let text = std::fs::read(self.root().join("containers").join(n)).unwrap();
                serde_json::from_slice(&text).unwrap()
            })
            .collect()
    }

    /// The commands pool `name`'s daemon got, in order (`started` first).
    pub fn commands(&self, name: &str) -> Vec<String> {
        read_lines(&self.root().join("pools").join(name).join("log/commands"))
    }

    /// The environment the daemon of pool `name` started with.
    pub fn daemon_env(&self, name: &str) -> Vec<String> {
        read_lines(&self.root().join("pools").join(name).join("log/environ"))
    }

    /// Processes whose `CUDA_MPS_PIPE_DIRECTORY` is under this MPS root (daemons, servers).
    pub fn mps_processes(&self) -> Vec<u32> {
        let root = self.root();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                    return false;
                };
                let state =
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = state
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z'));
                !zombie
                    && env.split(|b| *b == 0).any(|kv| {
                        kv.strip_prefix(b"CUDA_MPS_PIPE_DIRECTORY=")
                            .is_some_and(|v| {
                                Path::new(&*String::from_utf8_lossy(v)).starts_with(&root)
                            })
                    })
            })
            .collect()
    }

    /// No pool, registration or pool process is left.
    pub fn assert_nothing_left(&self, context: &str) {
        assert_eq!(self.pools(), Vec::<String>::new(), "{context}: pools left");
        assert_eq!(
            self.registrations(),
            Vec::<serde_json::Value>::new(),
            "{context}: registrations left"
        );
        assert_eq!(
            self.mps_processes(),
            Vec::<u32>::new(),
            "{context}: MPS processes left"
        );
    }

    /// `gpuhook ARGS` with this node's config (written next to the MPS root).
    pub fn gpuhook(&self, memory: &str, args: &[&str]) -> Output {
        let config = self.dir.path().join("admin.toml");
        std::fs::write(&config, self.config(memory)).unwrap();
        Command::new(gpuhook_bin())
            .args(args)
            .env("GPUHOOK_CONFIG", &config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// `runc exec` in a detached container; its stdout.
pub fn exec(root: Option<&Path>, id: &str, script: &str) -> String {
    let mut command = Command::new("runc");
    if let Some(root) = root {
        command.arg("--root").arg(root);
    }
    let out = sh(command
        .args(["exec", id, "/bin/sh", "-c", script])
        .stdin(Stdio::null()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
