//! A private view of the host for engine tests that need accounts, subordinate id ranges and
//! device nodes at their real paths: a mount namespace (`unshare -m`, slave propagation, so
//! the host's mounts reach it and none of its own reach the host) in which
//! - `/etc/passwd`, `group`, `subuid` and `subgid` are copies with the test's accounts added
//!   (what `useradd` and `usermod --add-subuids` would write);
//! - `/dev` is a tmpfs with the host's basic nodes and the simulated driver's nodes at
//!   `/dev/nvidia*`, where a real driver has them (runc bind-mounts a user-namespaced
//!   container's device nodes from their container path, `linux.devices[].path`);
//! - `/var/run/cdi` (and `/etc/cdi`, when the host has it) is the test's own spec directory.
//!
//! Why not the host itself: other tests, of this suite and of other checkouts on the same
//! machine, run meanwhile and compare `/etc/passwd` and the mount table before and after; an
//! account added and removed under them would fail them, and a GPU-less host must not grow
//! `/dev/nvidia*` nodes. Whatever runs in here (daemons, `setpriv` to an account) is started
//! through `nsenter`; everything is gone when the namespace's holder process ends.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Sim;

/// An account in the private view: name, uid = gid, and its subordinate id range.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: &'static str,
    pub uid: u32,
    pub subordinate: (u32, u32),
}

pub struct PrivateHost {
    pub dir: tempfile::TempDir,
    holder: Child,
    accounts: Vec<Account>,
}

/// Runs in the new namespace as root, then stays there (`sleep`) as the namespace's holder.
const SETUP: &str = r#"
set -eu
d=$1; sim_dev=$2
for f in passwd group subuid subgid; do mount --bind "$d/etc/$f" "/etc/$f"; done
mkdir -p "$d/host-dev"
mount --rbind /dev "$d/host-dev"
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
for n in null zero full tty random urandom fuse; do
    if [ -e "$d/host-dev/$n" ]; then touch "/dev/$n"; mount --bind "$d/host-dev/$n" "/dev/$n"; fi
done
mkdir /dev/pts /dev/shm /dev/mqueue
mount --rbind "$d/host-dev/pts" /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
for i in 0 1 2; do ln -s "/proc/self/fd/$i" "/dev/$(echo stdin stdout stderr | cut -d' ' -f$((i + 1)))"; done
cp -a "$sim_dev/." /dev/
umount -l "$d/host-dev"
mount --bind "$d/cdi" /var/run/cdi
if [ -d /etc/cdi ]; then mount --bind "$d/cdi" /etc/cdi; fi
# Podman wants / shared; only now, so that the binds above made no peers of each other.
mount --make-rshared /
touch "$d/ready"
exec sleep 100000
"#;

impl PrivateHost {
    /// Sets the view up with `accounts` (each with a home under `dir`) and `sim`'s nodes.
    pub fn new(sim: &Sim, accounts: &[Account]) -> PrivateHost {
        let dir = tempfile::Builder::new()
            .prefix("gpuhook-private-host-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // The accounts must reach what is in here (homes, specs, the config).
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::create_dir_all(d.join("cdi")).unwrap();
        std::fs::create_dir_all(d.join("run")).unwrap();
        // ... and the driver's files, as on a real host.
        std::fs::set_permissions(sim.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let mut group = std::fs::read_to_string("/etc/group").unwrap();
        let mut subordinate = String::new();
        for a in accounts {
            let home = d.join("home").join(a.name);
            std::fs::create_dir_all(&home).unwrap();
            super::sh(
                Command::new("chown")
                    .arg(format!("{0}:{0}", a.uid))
                    .arg(&home),
            );
            passwd.push_str(&format!(
                "{0}:x:{1}:{1}::{2}:/bin/sh\n",
                a.name,
                a.uid,
                home.display()
            ));
            group.push_str(&format!("{}:x:{}:\n", a.name, a.uid));
            subordinate.push_str(&format!(
                "{}:{}:{}\n",
                a.name, a.subordinate.0, a.subordinate.1
            ));
        }
        for (file, text) in [
            ("passwd", &passwd),
            ("group", &group),
            ("subuid", &subordinate),
            ("subgid", &subordinate),
        ] {
            std::fs::write(d.join("etc").join(file), text).unwrap();
        }
        // Podman 4.3 reads CDI specs from /var/run/cdi and /etc/cdi only; the first must exist
        // to be mounted over (it is on /run, a tmpfs, and the CDI tests make it too).
        std::fs::create_dir_all("/var/run/cdi").unwrap();
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "slave", "sh", "-c", SETUP, "setup"])
            .arg(d)
            .arg(sim.dev())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("setup.log")).unwrap())
            .spawn()
            .expect("cannot run unshare");
        let mut host = PrivateHost {
            dir,
            holder,
            accounts: accounts.to_vec(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !host.dir.path().join("ready").exists() {
            let setup_log = std::fs::read_to_string(host.dir.path().join("setup.log"));
            assert!(
                Instant::now() < deadline && matches!(host.holder.try_wait(), Ok(None)),
                "the private host view was not set up: {setup_log:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        host
    }

    /// `program` run as root inside the view.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--"])
            .arg(program);
        command
    }

    /// `sh -c script` run inside the view as `account` (no capability, no supplementary
    /// group), with only what a login would set: PATH, HOME, USER and XDG_RUNTIME_DIR.
    pub fn as_account(&self, account: &Account, script: &str) -> Command {
        let home = self.home(account);
        let runtime_dir = self.runtime_dir(account);
        if !runtime_dir.exists() {
            std::fs::create_dir(&runtime_dir).unwrap();
            std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            super::sh(
                Command::new("chown")
                    .arg(format!("{0}:{0}", account.uid))
                    .arg(&runtime_dir),
            );
        }
        let mut command = self.command("setpriv");
        command
            .args(["--reuid", &account.uid.to_string()])
            .args(["--regid", &account.uid.to_string(), "--clear-groups"])
            .args(["env", "-i", "PATH=/usr/bin:/bin:/usr/sbin:/sbin"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!("USER={}", account.name))
            .arg(format!("XDG_RUNTIME_DIR={}", runtime_dir.display()))
            .args(["sh", "-c", script]);
        command
    }

    pub fn home(&self, account: &Account) -> PathBuf {
        self.dir.path().join("home").join(account.name)
    }

    /// The account's `XDG_RUNTIME_DIR` (where rootless Podman keeps its pause process's pid).
    pub fn runtime_dir(&self, account: &Account) -> PathBuf {
        self.dir.path().join("run").join(account.name)
    }

    /// What `/var/run/cdi` is inside the view.
    pub fn cdi_dir(&self) -> PathBuf {
        self.dir.path().join("cdi")
    }

    /// A gpuhook config for `sim` as the view shows it: device nodes under `/dev`.
    pub fn config(&self, sim: &Sim, log: &Path) -> String {
        sim.config(log, "").replace(
            &format!("dev-root = {:?}", sim.dev()),
            "dev-root = \"/dev\"",
        )
    }
}

impl Drop for PrivateHost {
    fn drop(&mut self) {
        // Rootless Podman leaves a pause process holding its user namespace; it was started for
        // this view's accounts and goes with it.
        for account in &self.accounts {
            let pid_file = self.runtime_dir(account).join("libpod/tmp/pause.pid");
            if let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
