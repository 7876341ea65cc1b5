//! User-namespaced and rootless containers through real engines, against the simulated driver:
//! Docker with `--userns-remap=default` (`--gpus all` and `--runtime=gpuhook`), rootless Podman
//! run by a normal account (CDI `--device` with gpuhook's spec and its CDI hooks, and the
//! legacy hook from a hooks.d directory), and Podman as root with `--userns=auto`.
//!
//! The accounts (`dockremap`, the rootless user, `containers` for `--userns=auto`), their
//! subordinate id ranges and the driver's nodes at `/dev/nvidia*` exist only in a private view
//! of the host (`support::private_host`, which says why); the engines run inside it.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::docker::Docker;
use support::engines::*;
use support::private_host::{Account, PrivateHost};
use support::watch::HostWatch;
use support::*;

/// The container's id map, then what `sees_gpus` checks.
fn inspect() -> String {
    format!("echo '== ids =='; cat /proc/self/uid_map\n{ENGINE_INSPECT}")
}

/// The host id the container's uid 0 is, from its `ids` section.
fn container_root(out: &Outcome) -> Option<u32> {
    let ids = out.section("ids");
    let fields: Vec<&str> = ids.first()?.split_whitespace().collect();
    match fields.as_slice() {
        ["0", outside, _] => outside.parse().ok(),
        _ => None,
    }
}

fn expect_gpus(sim: &Sim, out: &Outcome, gpus: &[usize], what: &str) {
    if let Err(problem) = sees_gpus(sim, out, gpus, true) {
        panic!("{what}: {problem}");
    }
}

const DOCKREMAP: Account = Account {
    name: "dockremap",
    uid: 47120,
    subordinate: (231072, 65536),
};

#[test]
fn docker_with_userns_remap_gives_gpus() {
    if !prerequisites_with(
        "docker_with_userns_remap_gives_gpus",
        &["dockerd", "containerd", "runc", "unshare", "nsenter"],
    ) {
        return;
    }
    let sim = Sim::build(2);
    let host = HostWatch::new();
    let view = PrivateHost::new(&sim, &[DOCKREMAP]);
    let docker = Docker::start_by(
        |program| view.command(program),
        "\"userns-remap\": \"default\"",
        |log| view.config(&sim, log),
    );
    let info = sh(docker
        .cmd()
        .args(["info", "--format", "{{json .SecurityOptions}}"]));
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("name=userns"),
        "dockerd is not remapping: {}",
        String::from_utf8_lossy(&info.stdout)
    );
    for (args, gpus) in [
        (&["--gpus", "all"][..], &[0, 1][..]),
        (
            &["--runtime=gpuhook", "-e", "NVIDIA_VISIBLE_DEVICES=1"][..],
            &[1][..],
        ),
    ] {
        let what = format!("docker run {}", args.join(" "));
        let (out, _) = docker.run(args, &inspect());
        expect_gpus(&sim, &out, gpus, &what);
        assert_eq!(
            container_root(&out),
            Some(DOCKREMAP.subordinate.0),
            "{what}: the container's root is not dockremap's first subordinate id: {:?}",
            out.section("ids")
        );
    }
    drop(docker);
    drop(view);
    host.assert_unchanged("docker --userns-remap");
}

/// Podman, as root or as `account`, inside `view`, keeping its storage in `state`.
struct Podman<'a> {
    view: &'a PrivateHost,
    account: Option<&'a Account>,
    state: PathBuf,
}

impl Podman<'_> {
    /// Podman's flags for this machine (ci-machine notes: cgroupfs, runc, rlimits) and, as root,
    /// storage of its own.
    fn command_line(&self, args: &str) -> String {
        let own_storage = match self.account {
            Some(_) => String::new(),
            None => {
                let s = self.state.display();
                format!("--root={s}/root --runroot={s}/run --tmpdir={s}/tmp ")
            }
        };
        format!(
            "podman {own_storage}--cgroup-manager=cgroupfs --runtime=runc --storage-driver=vfs --events-backend=file {args}"
        )
    }

    fn sh(&self, script: &str) -> Command {
        match self.account {
            Some(account) => self.view.as_account(account, script),
            None => {
                let mut command = self.view.command("sh");
                command.args(["-c", script]);
                command
            }
        }
    }

    /// Imports the busybox rootfs (from `tar`) as `img`.
    fn import(&self, tar: &Path) {
        let script = self.command_line(&format!("import - img < {tar:?} > /dev/null"));
        sh(&mut self.sh(&script));
    }

    /// `podman run --rm ARGS img sh -c INSPECT`.
    fn run(&self, args: &str) -> Outcome {
        // The account's shell gets a clean environment: the script travels quoted.
        let quoted = format!("'{}'", inspect().replace('\'', r"'\''"));
        let script = self.command_line(&format!(
            "run --rm --network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 {args} img sh -c {quoted}"
        ));
        self.sh(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }
}

/// What the Podman tests share: a view with `accounts`, gpuhook's config (its log in a
/// directory the rootless account may write), a CDI spec generated in the view, a hooks.d
/// directory with the packaged hook, and the image as a tarball.
struct PodmanSetup {
    view: PrivateHost,
    kind: String,
    log: PathBuf,
    hooks_dir: PathBuf,
    tar: PathBuf,
}

impl PodmanSetup {
    fn new(sim: &Sim, accounts: &[Account], name: &str) -> PodmanSetup {
        let view = PrivateHost::new(sim, accounts);
        let d = view.dir.path().to_path_buf();
        let log_dir = d.join("log");
        std::fs::create_dir(&log_dir).unwrap();
        std::fs::set_permissions(
            &log_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let log = log_dir.join("gpuhook.log");
        let config = d.join("gpuhook.toml");
        std::fs::write(&config, view.config(sim, &log)).unwrap();
        let kind = format!("gpuhook-{name}-{}.local/gpu", std::process::id());
        let spec = view.cdi_dir().join("gpuhook.json");
        sh(view
            .command(gpuhook_bin())
            .args(["cdi", "generate", "--kind", &kind, "--output"])
            .arg(&spec)
            .env("GPUHOOK_CONFIG", &config));
        std::fs::set_permissions(&spec, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        // `cdi generate` opened the log as root; the hooks are to make it as whoever they are.
        let _ = std::fs::remove_file(&log);
        let hooks_dir = d.join("hooks.d");
        install_packaged_hook(&hooks_dir, &config);
        let tar = d.join("rootfs.tar");
        sh(Command::new("tar")
            .arg("-C")
            .arg(rootfs_template())
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        PodmanSetup {
            view,
            kind,
            log,
            hooks_dir,
            tar,
        }
    }

    fn podman<'a>(&'a self, account: Option<&'a Account>) -> Podman<'a> {
        let podman = Podman {
            view: &self.view,
            account,
            state: self.view.dir.path().join("podman"),
        };
        podman.import(&self.tar);
        podman
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

const ROOTLESS: Account = Account {
    name: "gpuhook-rootless",
    uid: 47121,
    subordinate: (300000, 65536),
};

/// A normal account runs Podman: `--device <kind>=0` with gpuhook's CDI spec (its two hooks
/// run by the account, in Podman's user namespace), and the legacy hook from a hooks.d
/// directory, which leaves the device cgroup alone there and says so in its log.
#[test]
fn rootless_podman_gets_gpus_through_cdi_and_the_hook() {
    if !prerequisites_with(
        "rootless_podman_gets_gpus_through_cdi_and_the_hook",
        &[
            "podman",
            "runc",
            "unshare",
            "nsenter",
            "setpriv",
            "newuidmap",
        ],
    ) {
        return;
    }
    let sim = Sim::build(2);
    let host = HostWatch::new();
    let setup = PodmanSetup::new(&sim, &[ROOTLESS], "rootless");
    let podman = setup.podman(Some(&ROOTLESS));

    for (device, gpus) in [("0", &[0][..]), ("all", &[0, 1][..])] {
        let what = format!("rootless podman --device {}={device}", setup.kind);
        let out = podman.run(&format!("--device {}={device}", setup.kind));
        expect_gpus(&sim, &out, gpus, &what);
        assert_eq!(container_root(&out), Some(ROOTLESS.uid), "{what}");
    }
    let log = setup.log();
    assert!(
        log.contains("cdi-hook: container=") && log.contains("proc-driver gpus=[0]"),
        "the CDI hooks did not log:\n{log}"
    );
    // The hooks ran as the account: the log file they made is its own, not root's.
    let owner = std::fs::metadata(&setup.log).unwrap().uid();
    assert_eq!(owner, ROOTLESS.uid, "the hooks ran as host uid {owner}");

    let what = "rootless podman with the legacy hook";
    let out = podman.run(&format!(
        "--hooks-dir {:?} -e NVIDIA_VISIBLE_DEVICES=1",
        setup.hooks_dir
    ));
    expect_gpus(&sim, &out, &[1], what);
    let log = setup.log();
    assert!(
        log.contains(
            "left out: device cgroup rules: gpuhook runs in a rootless engine's user namespace"
        ),
        "{what}: no word of the device cgroup:\n{log}"
    );
    drop(podman);
    drop(setup);
    host.assert_unchanged("rootless podman");
}

/// `containers`: the account whose subordinate range `--userns=auto` takes ranges from.
const CONTAINERS: Account = Account {
    name: "containers",
    uid: 47122,
    subordinate: (400000, 65536),
};

/// Podman as root giving each container a user namespace of its own (`--userns=auto`): CDI
/// `--device` and the legacy hook.
#[test]
fn podman_userns_auto_gets_gpus() {
    if !prerequisites_with(
        "podman_userns_auto_gets_gpus",
        &["podman", "runc", "unshare", "nsenter"],
    ) {
        return;
    }
    let sim = Sim::build(2);
    let host = HostWatch::new();
    let setup = PodmanSetup::new(&sim, &[CONTAINERS], "userns-auto");
    let podman = setup.podman(None);
    let cases = [
        (format!("--userns=auto --device {}=1", setup.kind), vec![1]),
        (
            format!(
                "--userns=auto --hooks-dir {:?} -e NVIDIA_VISIBLE_DEVICES=all",
                setup.hooks_dir
            ),
            vec![0, 1],
        ),
    ];
    for (args, gpus) in &cases {
        let what = format!("podman run {args}");
        let out = podman.run(args);
        expect_gpus(&sim, &out, gpus, &what);
        let root = container_root(&out);
        let range = CONTAINERS.subordinate.0..CONTAINERS.subordinate.0 + CONTAINERS.subordinate.1;
        assert!(
            root.is_some_and(|id| range.contains(&id)),
            "{what}: the container's root is {root:?}, not in containers' range {range:?}"
        );
    }
    drop(podman);
    drop(setup);
    host.assert_unchanged("podman --userns=auto");
}
