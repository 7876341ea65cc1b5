//! Least privilege, seen from the processes themselves: a static "ldconfig" spy configured as
//! the host ldconfig reports what the ldconfig child holds (capabilities, ids, no_new_privs,
//! seccomp, what it can reach) and what the hook process still holds at that point, into a
//! file in the rootfs (the only place it can write). And a rootfs owned by a non-root uid, as
//! a user-namespaced container's is, shows what the kept capabilities are needed for.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use support::watch::{build_c, HostWatch};
use support::*;

/// Writes `key=value` lines to /spy.txt, then exits 0 (the ld cache is not its business).
const SPY: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static FILE *out;

static void caps_of(const char *who, pid_t pid) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, pid };
    struct __user_cap_data_struct d[2] = {0};
    if (syscall(SYS_capget, &h, d) != 0) { fprintf(out, "%s=capget-failed\n", who); return; }
    fprintf(out, "%sEff=%llx\n%sPrm=%llx\n%sInh=%llx\n",
        who, ((unsigned long long)d[1].effective << 32) | d[0].effective,
        who, ((unsigned long long)d[1].permitted << 32) | d[0].permitted,
        who, ((unsigned long long)d[1].inheritable << 32) | d[0].inheritable);
}

static void result(const char *what, long rc) {
    fprintf(out, "%s=%s\n", what, rc == 0 ? "allowed" : strerrorname_np(errno));
}

int main(void) {
    out = fopen("/spy.txt", "w");
    if (!out) return 1;
    caps_of("Cap", 0);
    caps_of("HookCap", getppid());
    unsigned long long bnd = 0, amb = 0;
    for (int c = 0; c < 64; c++) {
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) bnd |= 1ULL << c;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) amb |= 1ULL << c;
    }
    fprintf(out, "CapBnd=%llx\nCapAmb=%llx\n", bnd, amb);
    fprintf(out, "NoNewPrivs=%d\nSeccomp=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
        prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
    fprintf(out, "uid=%d\ngid=%d\n", getuid(), getgid());
    char cwd[256] = "";
    fprintf(out, "cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    result("proc_self", access("/proc/self/root", F_OK));
    result("sys_class", access("/sys/class", F_OK));
    result("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    result("chroot", chroot("/tmp"));
    result("unshare_user", unshare(CLONE_NEWUSER));
    result("socket", socket(AF_UNIX, SOCK_STREAM, 0) < 0 ? -1 : 0);
    result("kill_hook", kill(getppid(), 0));
    result("x32_getpid", syscall(0x40000000 | SYS_getpid) < 0 ? -1 : 0);
    result("exec_image_binary", access("/bin/busybox", X_OK));
    fclose(out);
    return 0;
}
"#;

/// Builds the spy once per test into `dir`.
fn spy(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("ldconfig-spy");
    build_c(SPY, &path, &["-static"]);
    path
}

fn report(rootfs: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(rootfs.join("spy.txt"))
        .expect("the spy ran and wrote /spy.txt in the rootfs");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cap_mask(caps: &[caps::Capability]) -> String {
    let mask: u64 = caps.iter().map(|c| c.bitmask()).fold(0, |a, b| a | b);
    format!("{mask:x}")
}

/// The capabilities the hook keeps for its work inside the container (src/apply/privileges.rs).
const HOOK_KEEPS: &[caps::Capability] = &[
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_SETPCAP,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETGID,
];

#[test]
fn ldconfig_child_holds_nothing_and_the_hook_only_what_it_needs() {
    if !prerequisites("ldconfig_child_holds_nothing_and_the_hook_only_what_it_needs") {
        return;
    }
    let sim = Sim::build(1);
    let tools = tempfile::tempdir().unwrap();
    let spy = spy(tools.path());
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-spy.log");
    let bundle = Bundle::new(
        "spy",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "true",
        &sim.config(&log, &format!("ldconfig = \"@{}\"", spy.display())),
    );
    bundle.run().expect_success();
    let r = report(&bundle.rootfs());
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("missing");
    // The ldconfig child: no capability in any set, no way to gain one, a seccomp filter.
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(get(set), "0", "ldconfig child's {set}: {r:?}");
    }
    assert_eq!(get("NoNewPrivs"), "1", "{r:?}");
    assert_eq!(get("Seccomp"), "2", "filter mode: {r:?}");
    assert_eq!(
        (get("uid"), get("gid")),
        ("0", "0"),
        "owner of a root-owned /etc"
    );
    // Chrooted in the rootfs, whose /proc and /sys are detached.
    assert_eq!(get("cwd"), "/");
    assert_eq!(get("proc_self"), "ENOENT", "{r:?}");
    assert_eq!(get("sys_class"), "ENOENT", "{r:?}");
    // Denied by capabilities or by the filter: every way out and every other process.
    for attempt in [
        "mount",
        "chroot",
        "unshare_user",
        "socket",
        "kill_hook",
        "x32_getpid",
    ] {
        assert_eq!(get(attempt), "EPERM", "{attempt}: {r:?}");
    }
    // The rootfs is noexec for it: nothing of the image can be executed.
    assert_eq!(get("exec_image_binary"), "EACCES", "{r:?}");
    // The hook process itself, while ldconfig runs: only what the work in the container needs.
    assert_eq!(get("HookCapEff"), cap_mask(HOOK_KEEPS), "{r:?}");
    assert_eq!(get("HookCapPrm"), cap_mask(HOOK_KEEPS), "{r:?}");
    assert_eq!(get("HookCapInh"), "0", "{r:?}");
    host.assert_unchanged("spy ldconfig");
}

/// A rootfs owned by uid/gid 100000 (as a user-namespaced container's is): the hook creates its
/// placeholders there (CAP_DAC_OVERRIDE, kept for this), and ldconfig runs as 100000 with no
/// capability and writes the container's ld cache as that owner.
#[test]
fn rootfs_owned_by_a_mapped_uid() {
    if !prerequisites("rootfs_owned_by_a_mapped_uid") {
        return;
    }
    let sim = Sim::build(1);
    let tools = tempfile::tempdir().unwrap();
    let spy = spy(tools.path());
    let host = HostWatch::new();
    let log = std::env::temp_dir().join("gpuhook-test-mapped.log");
    let chown = |rootfs: &Path| {
        sh(std::process::Command::new("chown")
            .args(["-R", "-h", "100000:100000"])
            .arg(rootfs));
    };
    // The spy: who ldconfig runs as.
    let bundle = Bundle::new(
        "mapped-spy",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "true",
        &sim.config(&log, &format!("ldconfig = \"@{}\"", spy.display())),
    );
    chown(&bundle.rootfs());
    bundle.run().expect_success();
    let r = report(&bundle.rootfs());
    assert_eq!(
        (r["uid"].as_str(), r["gid"].as_str()),
        ("100000", "100000"),
        "{r:?}"
    );
    assert_eq!(r["CapEff"], "0", "{r:?}");
    assert_eq!(r["CapBnd"], "0", "{r:?}");

    // The real ldconfig: the container works and its cache belongs to the rootfs's owner.
    let bundle = Bundle::new(
        "mapped",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "nvidia-smi -L && ls /usr/lib/x86_64-linux-gnu/libcuda.so.1",
        &sim.config(&log, ""),
    );
    chown(&bundle.rootfs());
    let out = bundle.run().expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    let cache = std::fs::metadata(bundle.rootfs().join("etc/ld.so.cache")).unwrap();
    assert_eq!((cache.uid(), cache.gid()), (100000, 100000));
    host.assert_unchanged("rootfs owned by uid 100000");
}
