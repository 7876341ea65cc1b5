//! Least privilege, seen from the processes themselves. A static "ldconfig" spy, configured as
//! the host ldconfig, reports what it can and cannot do from inside its confinement (into a
//! file in the rootfs, the only place it can write), then waits; meanwhile the test reads
//! what the kernel says of it and of the hook from the host's `/proc`: capability sets, ids,
//! `no_new_privs`, seccomp mode, namespaces and rlimits.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::watch::{build_c, HostWatch};
use support::*;

/// Writes `key=value` lines to /spy.txt and /spy-ready, waits for /spy-go (at most 30 s),
/// then exits 0 (the ld cache is not its business).
const SPY: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static FILE *out;

static void result(const char *what, long rc) {
    fprintf(out, "%s=%s\n", what, rc == 0 ? "allowed" : strerrorname_np(errno));
}

int main(void) {
    out = fopen("/spy.txt", "w");
    if (!out) return 1;
    fprintf(out, "uid=%d\ngid=%d\npid=%d\n", getuid(), getgid(), getpid());
    char cwd[256] = "";
    fprintf(out, "cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    result("proc_self", access("/proc/self/root", F_OK));
    result("sys_class", access("/sys/class", F_OK));
    result("volume", access("/vol/marker", F_OK));
    struct stat dev, mq;
    int separate = stat("/dev", &dev) == 0 && stat("/dev/mqueue", &mq) == 0 && dev.st_dev != mq.st_dev;
    fprintf(out, "mqueue=%s\n", separate ? "mounted" : "gone");
    result("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    result("chroot", chroot("/tmp"));
    result("unshare_user", unshare(CLONE_NEWUSER));
    result("socket", socket(AF_UNIX, SOCK_STREAM, 0) < 0 ? -1 : 0);
    result("kill", kill(1, 0));
    result("x32_getpid", syscall(0x40000000 | SYS_getpid) < 0 ? -1 : 0);
    result("capget", syscall(SYS_capget, NULL, NULL) < 0 ? -1 : 0);
    struct rlimit lim = { 8, 8 };
    result("setrlimit", setrlimit(RLIMIT_NOFILE, &lim));
    result("setpriority", setpriority(PRIO_PROCESS, 0, 5));
    cpu_set_t set; CPU_ZERO(&set); CPU_SET(0, &set);
    result("sched_setaffinity", sched_setaffinity(0, sizeof set, &set));
    result("shmget", shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) < 0 ? -1 : 0);
    result("mq_open", syscall(SYS_mq_open, "/q", O_CREAT | O_RDWR, 0600, NULL) < 0 ? -1 : 0);
    result("memfd_create", syscall(SYS_memfd_create, "x", 0) < 0 ? -1 : 0);
    result("exec_image_binary", access("/bin/busybox", X_OK));
    fclose(out);
    close(open("/spy-ready", O_CREAT | O_WRONLY, 0644));
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (access("/spy-go", F_OK) != 0 && now.tv_sec - start.tv_sec < 30);
    return 0;
}
"#;

fn spy(dir: &Path) -> PathBuf {
    let path = dir.join("ldconfig-spy");
    build_c(SPY, &path, &["-static"]);
    path
}

fn key_values(text: &str, separator: char) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(separator))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The host pid of the process running `exe`.
fn pid_running(exe: &Path) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .as_deref()
                == Some(exe)
        })
}

/// What the kernel says of the spy and of the hook (its parent) while the spy runs.
struct Observed {
    spy: BTreeMap<String, String>,
    spy_limits: String,
    hook: BTreeMap<String, String>,
    /// The spy's namespace links, the hook's and the host's (this test's).
    namespaces: Vec<(String, String, String, String)>,
    report: BTreeMap<String, String>,
}

/// Runs `bundle`, whose ldconfig is `spy`, and observes the spy while it waits.
fn run_and_observe(bundle: &Bundle, spy: &Path) -> (RunResult, Observed) {
    let rootfs = bundle.rootfs();
    std::thread::scope(|scope| {
        let run = scope.spawn(|| bundle.run());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !rootfs.join("spy-ready").exists() {
            assert!(Instant::now() < deadline, "the spy never became ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = pid_running(spy).expect("the spy's process");
        let status = |pid: &str| {
            key_values(
                &std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap(),
                ':',
            )
        };
        let spy_status = status(&pid.to_string());
        let hook_pid = spy_status["PPid"].clone();
        let link = |pid: &str, ns: &str| {
            std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
                .map(|l| l.display().to_string())
                .unwrap_or_default()
        };
        let namespaces = ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"]
            .iter()
            .map(|ns| {
                let spy_ns = link(&pid.to_string(), ns);
                let hook_ns = link(&hook_pid, ns);
                (ns.to_string(), spy_ns, hook_ns, link("self", ns))
            })
            .collect();
        let observed = Observed {
            spy_limits: std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap(),
            hook: status(&hook_pid),
            spy: spy_status,
            namespaces,
            report: key_values(
                &std::fs::read_to_string(rootfs.join("spy.txt")).unwrap(),
                '=',
            ),
        };
        std::fs::write(rootfs.join("spy-go"), b"").unwrap();
        (run.join().expect("runc thread"), observed)
    })
}

fn cap_mask(caps: &[caps::Capability]) -> String {
    let mask: u64 = caps.iter().map(|c| c.bitmask()).fold(0, |a, b| a | b);
    format!("{mask:016x}")
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

/// What every confined ldconfig child must show, whatever the container.
fn assert_confined(o: &Observed) {
    let zero = "0000000000000000";
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(o.spy[set], zero, "ldconfig child's {set}: {:?}", o.spy);
    }
    assert_eq!(o.spy["NoNewPrivs"], "1", "{:?}", o.spy);
    assert_eq!(o.spy["Seccomp"], "2", "filter mode: {:?}", o.spy);
    // pid 1 of a pid namespace of its own (NSpid: host pid, then its pid there).
    assert!(
        o.spy["NSpid"].ends_with("\t1") || o.spy["NSpid"].ends_with(" 1"),
        "{:?}",
        o.spy
    );
    assert_eq!(o.report["pid"], "1");
    // The user namespace is the container's (the host's for a container without one).
    for (ns, spy, hook, host) in o.namespaces.iter().filter(|n| n.0 != "user") {
        assert_ne!(
            spy, host,
            "{ns}: the ldconfig child shares the host's {ns} namespace"
        );
        if ns == "mnt" || ns == "pid" || ns == "cgroup" {
            assert_ne!(spy, hook, "{ns}: shared with the hook");
        }
    }
    for (limit, value) in [
        ("Max address space", "8589934592"),
        ("Max data size", "536870912"),
        ("Max file size", "268435456"),
        ("Max open files", "256"),
        ("Max cpu time", "60"),
        ("Max core file size", "0"),
    ] {
        let line = o
            .spy_limits
            .lines()
            .find(|l| l.starts_with(limit))
            .unwrap_or("");
        let fields: Vec<&str> = line[limit.len()..].split_whitespace().collect();
        assert_eq!(
            fields.get(..2),
            Some(&[value, value][..]),
            "{limit}: {line}"
        );
    }
    let r = &o.report;
    assert_eq!(r["cwd"], "/");
    // Only the image and what gpuhook mounted: /proc, /sys, volumes, mqueue are detached.
    for gone in ["proc_self", "sys_class", "volume"] {
        assert_eq!(r[gone], "ENOENT", "{gone}: {r:?}");
    }
    assert_eq!(r["mqueue"], "gone", "{r:?}");
    // Every way out, every other process and every kernel resource: not on the allow-list.
    for attempt in [
        "mount",
        "chroot",
        "unshare_user",
        "socket",
        "kill",
        "x32_getpid",
        "capget",
        "setrlimit",
        "setpriority",
        "sched_setaffinity",
        "shmget",
        "mq_open",
        "memfd_create",
    ] {
        assert_eq!(r[attempt], "ENOSYS", "{attempt}: {r:?}");
    }
    // The rootfs is noexec for it: nothing of the image can be executed.
    assert_eq!(r["exec_image_binary"], "EACCES", "{r:?}");
    // The hook itself, while ldconfig runs: only what the work in the container needs.
    assert_eq!(o.hook["CapEff"], cap_mask(HOOK_KEEPS), "{:?}", o.hook);
    assert_eq!(o.hook["CapPrm"], cap_mask(HOOK_KEEPS), "{:?}", o.hook);
    assert_eq!(o.hook["CapInh"], zero, "{:?}", o.hook);
}

/// A bundle whose ldconfig is the spy, with a volume at /vol and mqueue at /dev/mqueue.
fn spied_bundle(name: &str, sim: &Sim, spy: &Path, volume: &Path) -> Bundle {
    let log = std::env::temp_dir().join(format!("gpuhook-test-{name}.log"));
    let bundle = Bundle::new(
        name,
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "true",
        &sim.config(
            &log,
            &format!(
                "ldconfig = \"@{}\"\nldcache-update = \"ldconfig\"",
                spy.display()
            ),
        ),
    );
    std::fs::write(volume.join("marker"), b"host volume").unwrap();
    bundle.edit_spec(|spec| {
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({
            "destination": "/vol", "type": "bind", "source": volume, "options": ["rbind", "rw"]
        }));
    });
    bundle
}

#[test]
fn ldconfig_child_holds_nothing_and_the_hook_only_what_it_needs() {
    if !prerequisites("ldconfig_child_holds_nothing_and_the_hook_only_what_it_needs") {
        return;
    }
    let sim = Sim::build(1);
    let tools = tempfile::tempdir().unwrap();
    let spy = spy(tools.path());
    let volume = tempfile::tempdir().unwrap();
    let host = HostWatch::new();
    let bundle = spied_bundle("spy", &sim, &spy, volume.path());
    let (out, observed) = run_and_observe(&bundle, &spy);
    out.expect_success();
    assert_confined(&observed);
    // No user namespace: the container's root is host root, without any capability.
    assert_eq!(observed.spy["Uid"].split_whitespace().next(), Some("0"));
    assert_eq!(observed.report["uid"], "0");
    host.assert_unchanged("spy ldconfig");
}

/// A user-namespaced container (ids 0-65535 mapped to host 100000..): the hook creates its
/// placeholders as the container's root, ldconfig runs as that user (uid 0 of the container's
/// user namespace, host uid 100000) with no capability, and the container works.
#[test]
fn user_namespaced_container_gets_its_gpu_and_ldconfig_runs_as_its_root() {
    if !prerequisites("user_namespaced_container_gets_its_gpu_and_ldconfig_runs_as_its_root") {
        return;
    }
    let sim = Sim::build(1);
    let tools = tempfile::tempdir().unwrap();
    let spy = spy(tools.path());
    let volume = tempfile::tempdir().unwrap();
    let host = HostWatch::new();
    let bundle = spied_bundle("userns-spy", &sim, &spy, volume.path());
    bundle.user_namespaced(100000);
    let (out, observed) = run_and_observe(&bundle, &spy);
    out.expect_success();
    assert_confined(&observed);
    assert_eq!(
        observed.spy["Uid"].split_whitespace().next(),
        Some("100000")
    );
    assert_eq!(
        observed.spy["Gid"].split_whitespace().next(),
        Some("100000")
    );
    assert_eq!(
        observed.report["uid"], "0",
        "uid 0 of the container's user namespace"
    );
    let user = observed.namespaces.iter().find(|n| n.0 == "user").unwrap();
    assert_ne!(
        user.1, user.3,
        "the child is in the container's user namespace"
    );

    // The real ldconfig: the container works and its cache and placeholders belong to the
    // container's root.
    let log = std::env::temp_dir().join("gpuhook-test-userns.log");
    let bundle = Bundle::new(
        "userns",
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "nvidia-smi -L && ls /usr/lib/x86_64-linux-gnu/libcuda.so.1 && cat /proc/driver/nvidia/gpus/*/information | grep UUID",
        &sim.config(&log, ""),
    );
    bundle.user_namespaced(100000);
    let out = bundle.run().expect_success();
    assert!(out.stdout.contains(&sim.uuid(0)), "{}", out.stdout);
    let owner = |path: &str| {
        let meta = std::fs::symlink_metadata(bundle.rootfs().join(path)).unwrap();
        (meta.uid(), meta.gid())
    };
    assert_eq!(owner("etc/ld.so.cache"), (100000, 100000));
    let placeholder = format!("usr/lib/x86_64-linux-gnu/libcuda.so.{DRIVER_VERSION}");
    assert_eq!(owner(&placeholder), (100000, 100000));
    host.assert_unchanged("user-namespaced container");
}
