//! CDI end to end: `gpuhook cdi generate` on a simulated driver, the spec checked against the
//! published schema, then containers given GPUs three ways that must agree file for file:
//! the legacy hook under runc, Podman applying the spec itself (`--device kind=name`), and the
//! runtime shim in CDI mode under runc.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::engines::Outcome;
use support::*;

/// What a container shows of its GPU files, in `== name ==` sections.
const LIST: &str = r#"
echo "== dev =="; ls /dev | grep nvidia
echo "== lib =="; ls /usr/lib/x86_64-linux-gnu /usr/lib/i386-linux-gnu 2>&1
echo "== bin =="; ls /usr/bin
echo "== firmware =="; ls -R /lib/firmware 2>&1
echo "== gpus =="; ls /proc/driver/nvidia/gpus 2>&1
echo "== ipc =="; ls -d /run/nvidia-persistenced/socket /tmp/nvidia-mps 2>&1
echo "== ldcache =="; tr -c '[:print:]' '\n' < /etc/ld.so.cache | grep -e nvidia -e cuda | sort -u
echo "== smi =="; nvidia-smi -L
echo "== end =="
"#;
const SECTIONS: [&str; 8] = [
    "dev", "lib", "bin", "firmware", "gpus", "ipc", "ldcache", "smi",
];

/// A simulated driver, a gpuhook config for it that also sets up the shim's CDI mode, and a
/// generated spec of a kind unique to this test run.
struct CdiSetup {
    sim: Sim,
    dir: tempfile::TempDir,
    kind: String,
}

impl CdiSetup {
    fn new(name: &str) -> CdiSetup {
        let sim = Sim::build(2);
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-cdi-")
            .tempdir()
            .unwrap();
        let kind = format!("gpuhook-test-{name}-{}.local/gpu", std::process::id());
        let setup = CdiSetup { sim, dir, kind };
        let config = format!(
            "{}[runtime]\nruntimes = [\"runc\"]\nmode = \"auto\"\n[cdi]\nspec-dirs = [{:?}]\n",
            setup.sim.config(&setup.log(), ""),
            setup.spec_dir()
        );
        std::fs::write(setup.config(), config).unwrap();
        let out = setup
            .gpuhook(&["cdi", "generate", "--kind", &setup.kind, "--output"])
            .arg(setup.spec_file())
            .output()
            .unwrap();
        assert!(out.status.success(), "cdi generate failed: {out:?}");
        setup
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("gpuhook.toml")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("gpuhook.log")
    }
    fn spec_dir(&self) -> PathBuf {
        self.dir.path().join("cdi")
    }
    fn spec_file(&self) -> PathBuf {
        self.spec_dir().join("gpu.json")
    }
    fn gpuhook(&self, args: &[&str]) -> Command {
        let mut command = Command::new(gpuhook_bin());
        command.args(args).env("GPUHOOK_CONFIG", self.config());
        command
    }
    fn name(&self, device: &str) -> String {
        format!("{}={device}", self.kind)
    }

    /// The legacy hook under runc, all capabilities (a CDI spec carries them all).
    fn via_hook(&self, devices: &str) -> Outcome {
        let env = [
            format!("NVIDIA_VISIBLE_DEVICES={devices}"),
            "NVIDIA_DRIVER_CAPABILITIES=all".to_string(),
        ];
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let config = std::fs::read_to_string(self.config()).unwrap();
        let bundle = Bundle::new("cdi-hook", &env, LIST, &config);
        let r = bundle.run();
        Outcome {
            success: r.success,
            stdout: r.stdout,
            stderr: r.stderr,
        }
    }

    /// runc run through gpuhook-runtime (CDI mode picked by the qualified names).
    fn via_shim(&self, devices: &str) -> Outcome {
        self.via_shim_with(&format!("NVIDIA_VISIBLE_DEVICES={devices}"), None)
    }

    /// The same with `env` and, optionally, a CDI annotation naming `annotated` devices.
    fn via_shim_with(&self, env: &str, annotated: Option<&str>) -> Outcome {
        let config = std::fs::read_to_string(self.config()).unwrap();
        let bundle = Bundle::new("cdi-shim", &[env], LIST, &config);
        if let Some(devices) = annotated {
            bundle.edit_spec(|spec| {
                spec["annotations"] = serde_json::json!({ "cdi.k8s.io/gpus": devices });
            });
        }
        let r = bundle.run_through_shim(&self.config());
        Outcome {
            success: r.success,
            stdout: r.stdout,
            stderr: r.stderr,
        }
    }
}

/// A private Podman (own storage, cgroupfs, no network) and the spec made visible to it in
/// `/var/run/cdi` (Podman 4.3 reads no other directory) for as long as this lives.
struct Podman {
    root: tempfile::TempDir,
    published: PathBuf,
    /// A hooks.d directory Podman reads (`--hooks-dir`), when the test installs one.
    hooks_dir: Option<PathBuf>,
}

impl Podman {
    fn new(setup: &CdiSetup) -> Podman {
        let root = tempfile::Builder::new()
            .prefix("gpuhook-podman-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all("/var/run/cdi").unwrap();
        let published = PathBuf::from(format!(
            "/var/run/cdi/gpuhook-test-{}.json",
            setup.kind.replace(['/', '.'], "-")
        ));
        std::fs::copy(setup.spec_file(), &published).unwrap();
        let podman = Podman {
            root,
            published,
            hooks_dir: None,
        };
        let import = format!(
            "tar -C {:?} -c . | podman {} import - gpuhook-cdi-test >/dev/null",
            rootfs_template(),
            podman.global_args().join(" ")
        );
        sh(Command::new("sh").args(["-c", &import]));
        podman
    }
    /// Installs the packaged hooks.d definition (`hook/oci-gpuhook.json`: the legacy hook for
    /// every container) pointing at this build and `config`.
    fn with_packaged_hook(mut self, config: &Path) -> Podman {
        let dir = self.root.path().join("hooks.d");
        support::engines::install_packaged_hook(&dir, config);
        self.hooks_dir = Some(dir);
        self
    }
    fn global_args(&self) -> Vec<String> {
        let dir = self.root.path().display();
        let mut args: Vec<String> = [
            format!("--root={dir}/root"),
            format!("--runroot={dir}/run"),
            "--storage-driver=vfs".into(),
            "--cgroup-manager=cgroupfs".into(),
            "--events-backend=file".into(),
            "--runtime=runc".into(),
        ]
        .into();
        if let Some(hooks) = &self.hooks_dir {
            args.push(format!("--hooks-dir={}", hooks.display()));
        }
        args
    }
    fn run(&self, device: &str) -> Outcome {
        self.run_with_env(device, &[])
    }
    fn run_with_env(&self, device: &str, env: &[&str]) -> Outcome {
        let env: Vec<String> = env
            .iter()
            .flat_map(|e| ["-e".to_string(), e.to_string()])
            .collect();
        let out = Command::new("podman")
            .args(self.global_args())
            .args(["run", "--rm", "--network=none"])
            // The default rlimits exceed this machine's hard limits (ci-machine notes).
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(env)
            .args(["--device", device, "gpuhook-cdi-test", "sh", "-c", LIST])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Outcome::from(out)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.published);
        let _ = Command::new("podman")
            .args(self.global_args())
            .args(["system", "reset", "--force"])
            .output();
        // vfs layers may be left mounted by nothing, but podman may leave its runroot mounts.
        let _ = Command::new("umount")
            .args(["-R", "-l"])
            .arg(self.root.path())
            .stderr(Stdio::null())
            .status();
    }
}

/// The `LIST` sections of a container's output.
fn sections(outcome: &Outcome) -> Vec<(String, Vec<String>)> {
    SECTIONS
        .iter()
        .map(|s| (s.to_string(), outcome.section(s)))
        .collect()
}

fn expect_success(outcome: &Outcome, what: &str) {
    assert!(
        outcome.success,
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        outcome.stdout, outcome.stderr
    );
}

/// The two outcomes list the same files, section by section.
fn assert_same_files(left: (&str, &Outcome), right: (&str, &Outcome)) {
    expect_success(left.1, left.0);
    expect_success(right.1, right.0);
    for ((name, a), (_, b)) in sections(left.1).iter().zip(sections(right.1)) {
        assert_eq!(a, &b, "section {name}: {} and {} differ", left.0, right.0);
    }
}

fn smi_uuids(outcome: &Outcome) -> Vec<String> {
    sections(outcome)
        .into_iter()
        .find(|(n, _)| n == "smi")
        .map(|(_, lines)| lines)
        .unwrap_or_default()
}

#[test]
fn generated_spec_validates_against_the_published_schema() {
    if !prerequisites_with("generated_spec_validates_against_the_published_schema", &[]) {
        return;
    }
    let python = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import jsonschema"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    let Some(python) = python else {
        if std::env::var_os("CI").is_some() {
            panic!("python3 with jsonschema is missing in CI (apt-get install python3-jsonschema)");
        }
        eprintln!("\n!!!!!!!! generated_spec_validates_against_the_published_schema: NOT RUN: needs python3-jsonschema !!!!!!!!\n");
        return;
    };
    let setup = CdiSetup::new("schema");
    let schema_dir = repo().join("tests/data/cdi-schema");
    let validate = |spec: &Path| {
        Command::new(python)
            .arg("-c")
            .arg(VALIDATE)
            .arg(&schema_dir)
            .arg(spec)
            .output()
            .unwrap()
    };
    let out = validate(&setup.spec_file());
    assert!(
        out.status.success(),
        "the generated spec does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does reject what the schema forbids (a device without a name, a hook
    // without a path).
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(setup.spec_file()).unwrap()).unwrap();
    spec["devices"][0].as_object_mut().unwrap().remove("name");
    spec["containerEdits"]["hooks"][0]
        .as_object_mut()
        .unwrap()
        .remove("path");
    let broken = setup.dir.path().join("broken.json");
    std::fs::write(&broken, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = validate(&broken);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        report.contains("'name' is a required property")
            && report.contains("'path' is a required property"),
        "{report}"
    );
}

/// Validates `argv[2]` against `argv[1]/schema.json`, and its top-level `containerEdits`
/// against `defs.json`'s definition (this schema version does not list it).
const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft7Validator, RefResolver
schema_dir, spec_path = sys.argv[1], sys.argv[2]
schema = json.load(open(schema_dir + "/schema.json"))
defs = json.load(open(schema_dir + "/defs.json"))
resolver = RefResolver(base_uri="file://" + schema_dir + "/", referrer=schema,
                       store={"file://" + schema_dir + "/defs.json": defs, "defs.json": defs})
spec = json.load(open(spec_path))
errors = list(Draft7Validator(schema, resolver=resolver).iter_errors(spec))
edits = {"$ref": "defs.json#/definitions/containerEdits"}
errors += list(Draft7Validator(edits, resolver=resolver).iter_errors(spec.get("containerEdits", {})))
for e in errors:
    print(e.message)
sys.exit(1 if errors else 0)
"#;

#[test]
fn list_shows_the_devices_of_the_generated_spec() {
    if !prerequisites_with("list_shows_the_devices_of_the_generated_spec", &[]) {
        return;
    }
    let setup = CdiSetup::new("list");
    let out = setup.gpuhook(&["cdi", "list"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let expected: Vec<String> = ["0", "1", "all"].iter().map(|d| setup.name(d)).collect();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn podman_with_the_spec_sees_what_the_hook_gives() {
    if !prerequisites_with(
        "podman_with_the_spec_sees_what_the_hook_gives",
        &["runc", "podman"],
    ) {
        return;
    }
    let setup = CdiSetup::new("podman");
    let podman = Podman::new(&setup);
    for (devices, gpus) in [("all", vec![0, 1]), ("0", vec![0])] {
        let hook = setup.via_hook(devices);
        let cdi = podman.run(&setup.name(devices));
        assert_same_files(("the legacy hook", &hook), ("podman --device", &cdi));
        let want: Vec<String> = gpus.iter().map(|&i| setup.sim.uuid(i)).collect();
        let seen = smi_uuids(&cdi);
        assert!(
            seen.len() == want.len() && want.iter().all(|u| seen.iter().any(|l| l.contains(u))),
            "podman --device {devices}: nvidia-smi saw {seen:?}, want {want:?}"
        );
    }
    // A device the spec does not have: Podman refuses to start the container.
    let out = podman.run(&setup.name("7"));
    assert!(!out.success, "podman started with an unknown CDI device");
    assert!(out.stderr.contains(&setup.name("7")), "{}", out.stderr);
}

#[test]
fn runtime_shim_in_cdi_mode_gives_the_same_files() {
    if !prerequisites("runtime_shim_in_cdi_mode_gives_the_same_files") {
        return;
    }
    let setup = CdiSetup::new("shim");
    for devices in ["all", "1"] {
        let hook = setup.via_hook(devices);
        let shim = setup.via_shim(&setup.name(devices));
        assert_same_files(
            ("the legacy hook", &hook),
            ("gpuhook-runtime cdi mode", &shim),
        );
    }
    let log = std::fs::read_to_string(setup.log()).unwrap();
    assert!(
        log.lines().any(|l| l.contains("runtime: container=")
            && l.contains(&format!("cdi=[{}]", setup.name("1")))),
        "no shim log line for the CDI request:\n{log}"
    );
    // Unknown device: the shim refuses, naming it and what the specs offer.
    let out = setup.via_shim(&setup.name("7"));
    assert!(!out.success);
    assert!(
        out.stderr
            .contains(&format!("CDI device {} not found in", setup.name("7")))
            && out.stderr.contains(&setup.name("all")),
        "{}",
        out.stderr
    );
}

/// Lines of the `dev` section naming GPU nodes (`nvidia0`, `nvidia1`, ...).
fn gpu_nodes(outcome: &Outcome) -> Vec<String> {
    outcome
        .section("dev")
        .into_iter()
        .filter(|l| {
            let name = l.rsplit(' ').next().unwrap_or(l);
            name.strip_prefix("nvidia")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

/// A container given GPU 0 through CDI gets GPU 0 only, although its env asks for all GPUs (as
/// the official CUDA images' does) and the packaged hooks.d entry runs the legacy hook for every
/// container: the spec sets NVIDIA_VISIBLE_DEVICES=void, and the hook never gives more GPUs
/// than the spec declares anyway. The same through the shim with a CDI annotation.
#[test]
fn cdi_gpus_are_all_a_container_gets_whatever_its_env_says() {
    if !prerequisites_with(
        "cdi_gpus_are_all_a_container_gets_whatever_its_env_says",
        &["runc", "podman"],
    ) {
        return;
    }
    let setup = CdiSetup::new("ceiling");
    let podman = Podman::new(&setup).with_packaged_hook(&setup.config());
    let out = podman.run_with_env(&setup.name("0"), &["NVIDIA_VISIBLE_DEVICES=all"]);
    expect_success(&out, "podman --device =0 -e NVIDIA_VISIBLE_DEVICES=all");
    let shim = setup.via_shim_with("NVIDIA_VISIBLE_DEVICES=all", Some(&setup.name("0")));
    expect_success(
        &shim,
        "the shim with a CDI annotation and NVIDIA_VISIBLE_DEVICES=all",
    );
    for (what, outcome) in [("podman", &out), ("shim", &shim)] {
        let nodes = gpu_nodes(outcome);
        assert_eq!(nodes.len(), 1, "{what}: GPU nodes {nodes:?}");
        assert!(nodes[0].ends_with("nvidia0"), "{what}: {nodes:?}");
        let gpus = outcome.section("gpus");
        assert_eq!(gpus.len(), 1, "{what}: /proc/driver/nvidia/gpus {gpus:?}");
        let seen = smi_uuids(outcome);
        assert_eq!(seen.len(), 1, "{what}: nvidia-smi {seen:?}");
        assert!(seen[0].contains(&setup.sim.uuid(0)), "{what}: {seen:?}");
    }
    // The packaged hook did run for the Podman container, and found no request.
    let log = std::fs::read_to_string(setup.log()).unwrap_or_default();
    assert!(
        log.contains("no GPU requested"),
        "the hooks.d hook did not run:\n{log}"
    );
}

/// `cdi generate` on a simulated driver with MIG on GPU 0: each MIG device is a device named
/// as the incumbent names it, with its parent's node and its own two capability nodes; and
/// `--mode imex` writes the IMEX channels' spec, which `cdi list` then offers beside the GPUs.
#[test]
fn generate_gives_mig_devices_and_a_spec_of_imex_channels() {
    if !prerequisites_with(
        "generate_gives_mig_devices_and_a_spec_of_imex_channels",
        &[],
    ) {
        return;
    }
    let sim = Sim::build_with_mig(2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gpuhook.toml");
    std::fs::write(&config, sim.config(&dir.path().join("log"), "")).unwrap();
    let generate = |args: &[&str], file: &str| {
        let out = Command::new(gpuhook_bin())
            .args(["cdi", "generate", "--output"])
            .arg(dir.path().join("cdi").join(file))
            .args(args)
            .env("GPUHOOK_CONFIG", &config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read(dir.path().join("cdi").join(file)).unwrap();
        serde_json::from_slice::<serde_json::Value>(&text).unwrap()
    };
    let spec = generate(&["--device-name-strategy", "both"], "gpu.json");
    let devices = spec["devices"].as_array().unwrap();
    let names: Vec<&str> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let migs: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("MIG-"))
        .collect();
    assert_eq!(migs.len(), 2, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.contains(':')).collect::<Vec<_>>(),
        [&"0:0", &"0:1"]
    );
    let nodes = |name: &str| -> Vec<String> {
        let device = devices.iter().find(|d| d["name"] == name).unwrap();
        device["containerEdits"]["deviceNodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["path"].as_str().unwrap().to_string())
            .collect()
    };
    // make-driver.sh's minors: gpu0/gi<G> 3+9G, its ci0 4+9G.
    let expected = [
        "/dev/nvidia0",
        "/dev/nvidia-caps/nvidia-cap12",
        "/dev/nvidia-caps/nvidia-cap13",
    ];
    assert_eq!(nodes("0:0"), expected);
    assert_eq!(nodes(migs[0]), expected);
    assert_eq!(
        nodes("0:1"),
        [
            "/dev/nvidia0",
            "/dev/nvidia-caps/nvidia-cap21",
            "/dev/nvidia-caps/nvidia-cap22"
        ]
    );

    let imex = generate(&["--mode", "imex"], "imex.json");
    assert_eq!(imex["kind"], "nvidia.com/imex-channel");
    let out = Command::new(gpuhook_bin())
        .args(["cdi", "list", "--spec-dir"])
        .arg(dir.path().join("cdi"))
        .env("GPUHOOK_CONFIG", &config)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    for name in [
        "nvidia.com/imex-channel=0",
        "nvidia.com/imex-channel=1",
        "nvidia.com/imex-channel=all",
        "nvidia.com/gpu=0:1",
    ] {
        assert!(listed.lines().any(|l| l == name), "{name} not in {listed}");
    }
}

/// A RHEL-style image for the shim's CDI mode: no `/etc/debian_version`, an `ld.so.conf` that
/// includes `ld.so.conf.d/*.conf`, an empty `/usr/lib64`, and (for the test) a static
/// `ldconfig` of its own, the host's.
fn rhel_style(rootfs: &Path) {
    let _ = std::fs::remove_file(rootfs.join("etc/debian_version"));
    std::fs::write(
        rootfs.join("etc/ld.so.conf"),
        "include ld.so.conf.d/*.conf\n",
    )
    .unwrap();
    std::fs::create_dir_all(rootfs.join("etc/ld.so.conf.d")).unwrap();
    std::fs::create_dir_all(rootfs.join("usr/lib64")).unwrap();
    std::fs::create_dir_all(rootfs.join("sbin")).unwrap();
    std::fs::copy("/sbin/ldconfig", rootfs.join("sbin/ldconfig")).unwrap();
}

/// The CDI `update-ldcache` hook leaves an `ld.so.conf.d` drop-in naming the folders the spec
/// mounted libraries into, so the image's own `ldconfig`, run after start, indexes them again.
/// (The test's ldconfig is Debian's, which indexes the multiarch directory by itself; `-v`
/// shows it reads it from the drop-in first, as a RHEL ldconfig, which does not, must.)
#[test]
fn an_in_container_ldconfig_keeps_the_cdi_libraries() {
    if !prerequisites("an_in_container_ldconfig_keeps_the_cdi_libraries") {
        return;
    }
    let setup = CdiSetup::new("ldconf");
    let config = std::fs::read_to_string(setup.config()).unwrap();
    let script = "cat /etc/ld.so.conf.d/00-gpuhook-cdi.conf; echo == rebuilt ==; \
                  rm /etc/ld.so.cache; ldconfig -v 2>/dev/null | grep '^/'; \
                  ldconfig -p";
    let env = format!("NVIDIA_VISIBLE_DEVICES={}", setup.name("0"));
    let bundle = Bundle::new("cdi-ldconf", &[env.as_str()], script, &config);
    rhel_style(&bundle.rootfs());
    let out = bundle.run_through_shim(&setup.config()).expect_success();
    let (dropin, rebuilt) = out.stdout.split_once("== rebuilt ==").unwrap();
    assert!(
        dropin.lines().any(|l| l == "/usr/lib/x86_64-linux-gnu"),
        "{}",
        out.stdout
    );
    assert!(
        rebuilt.lines().any(|l| l.starts_with(
            "/usr/lib/x86_64-linux-gnu: (from /etc/ld.so.conf.d/00-gpuhook-cdi.conf:"
        )),
        "{}",
        out.stdout
    );
    assert!(
        rebuilt
            .lines()
            .any(|l| l.trim()
                == "libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "the image's ldconfig dropped libcuda:\n{}",
        out.stdout
    );
}

/// A hostile image's `/etc/ld.so.conf.d` (or the drop-in's own name) is a symlink at a host
/// directory: the drop-in is written inside the rootfs or not at all, never on the host.
#[test]
fn a_symlinked_ld_so_conf_d_never_writes_on_the_host() {
    if !prerequisites("a_symlinked_ld_so_conf_d_never_writes_on_the_host") {
        return;
    }
    let setup = CdiSetup::new("ldconf-hostile");
    let config = std::fs::read_to_string(setup.config()).unwrap();
    let host = support::watch::HostWatch::new();
    let v = host.dir();
    let env = format!("NVIDIA_VISIBLE_DEVICES={}", setup.name("0"));
    let climb = format!("{}{}", "../".repeat(16), v.trim_start_matches('/'));
    let cases = [
        // Followed as if the rootfs were `/`: nothing there, so no drop-in, and it starts.
        (
            "absolute",
            "etc/ld.so.conf.d",
            format!("{v}/etc"),
            Some(false),
        ),
        (
            "climbing",
            "etc/ld.so.conf.d",
            format!("{climb}/etc"),
            Some(false),
        ),
        // The same target made inside the rootfs too: the drop-in lands there.
        ("inside", "etc/ld.so.conf.d", format!("{v}/etc"), Some(true)),
        // Never followed: the start fails, naming the path.
        (
            "magic",
            "etc/ld.so.conf.d",
            format!("/proc/1/root{v}/etc"),
            None,
        ),
        (
            "file",
            "etc/ld.so.conf.d/00-gpuhook-cdi.conf",
            format!("{v}/etc/evil.conf"),
            None,
        ),
    ];
    for (name, inner, target, starts) in cases {
        let bundle = Bundle::new(name, &[env.as_str()], "true", &config);
        let rootfs = bundle.rootfs();
        rhel_style(&rootfs);
        let link = rootfs.join(inner);
        let _ = std::fs::remove_dir_all(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let inside = rootfs.join(v.trim_start_matches('/')).join("etc");
        if name == "inside" {
            std::fs::create_dir_all(&inside).unwrap();
        }
        let out = bundle.run_through_shim(&setup.config());
        match starts {
            Some(dropped_in) => {
                assert!(out.success, "{name}: {}", out.stderr);
                assert_eq!(
                    inside.join("00-gpuhook-cdi.conf").exists(),
                    dropped_in,
                    "{name}"
                );
            }
            None => {
                assert!(!out.success, "{name}: started");
                assert!(
                    out.stderr.contains("/etc/ld.so.conf.d"),
                    "{name}: {}",
                    out.stderr
                );
            }
        }
        host.assert_unchanged(name);
    }
}
