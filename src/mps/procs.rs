//! Processes, as the reaper and the daemon control see them: alive or not (pid and start
//! time), and which processes belong to a pool. A pool's processes (its control daemon and the
//! MPS servers it starts) are those in gpuhook's own mount namespace whose environment names
//! the pool's pipe directory: a container's process may set that variable too, but lives in
//! another mount namespace.

use std::ffi::OsStr;
use std::path::Path;

use super::registry::ProcessId;

/// The start time of `pid`, when it runs.
pub fn start_time(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.starttime)
}

/// Whether that very process still runs (not a later one with its pid). A zombie counts as
/// gone: it runs nothing.
pub fn alive(process: ProcessId) -> bool {
    let Ok(pid) = i32::try_from(process.pid) else {
        return false;
    };
    let Ok(stat) = procfs::process::Process::new(pid).and_then(|p| p.stat()) else {
        return false;
    };
    stat.starttime == process.start_time && stat.state != 'Z'
}

/// `pid` as a [`ProcessId`], if it runs.
pub fn identify(pid: u32) -> Option<ProcessId> {
    start_time(pid).map(|start_time| ProcessId { pid, start_time })
}

fn mount_namespace(pid: &str) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?;
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

/// Every process of the pool whose pipe directory is `pipe` (see the module docs).
pub fn pool_processes(pipe: &Path) -> Vec<ProcessId> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter(|p| p.pid() != std::process::id() as i32)
        .filter_map(|p| of_pool(&p, pipe))
        .collect()
}

/// `pid`, if it is a process of the pool whose pipe directory is `pipe`.
pub fn pool_process(pid: u32, pipe: &Path) -> Option<ProcessId> {
    of_pool(
        &procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?,
        pipe,
    )
}

fn of_pool(process: &procfs::process::Process, pipe: &Path) -> Option<ProcessId> {
    let own_ns = mount_namespace("self")?;
    if mount_namespace(&process.pid().to_string())? != own_ns {
        return None;
    }
    let env = process.environ().ok()?;
    if env.get(OsStr::new("CUDA_MPS_PIPE_DIRECTORY"))? != pipe.as_os_str() {
        return None;
    }
    let stat = process.stat().ok()?;
    (stat.state != 'Z').then_some(ProcessId {
        pid: process.pid() as u32,
        start_time: stat.starttime,
    })
}

/// Sends SIGKILL to that very process (through a pidfd, so never to a later one).
pub fn kill(process: ProcessId) {
    let Some(pid) = rustix::process::Pid::from_raw(process.pid as i32) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    // The pidfd names whoever has the pid now: check it is still the one meant.
    if alive(process) {
        let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = identify(std::process::id()).unwrap();
        assert!(alive(me));
        assert!(!alive(ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1
        }));
        assert!(!alive(ProcessId {
            pid: u32::MAX,
            start_time: 0
        }));
    }

    #[test]
    fn processes_are_found_by_their_pipe_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("CUDA_MPS_PIPE_DIRECTORY", dir.path())
            .spawn()
            .unwrap();
        // Until it has exec'd, the child's environment is still this process's.
        let mut found = Vec::new();
        for _ in 0..200 {
            found = pool_processes(dir.path());
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let other = pool_processes(&dir.path().join("x"));
        kill(identify(child.id()).unwrap());
        let status = child.wait().unwrap();
        assert_eq!(
            found.iter().map(|p| p.pid).collect::<Vec<_>>(),
            [child.id()]
        );
        assert!(other.is_empty());
        assert!(!status.success());
    }
}
