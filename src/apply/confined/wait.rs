//! The hook's side of a confined run: the child's stderr read while it runs, a deadline, and
//! its end reaped with its peak memory.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use super::{ConfinedError, Finished};

/// Reads the child's stderr (keeping its last 256 KiB) until it exits or the deadline passes.
pub(super) fn wait(
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    mut stderr: File,
    timeout: Duration,
) -> Result<Finished, ConfinedError> {
    const KEEP: usize = 256 * 1024;
    let deadline = Instant::now() + timeout;
    let mut kept = Vec::new();
    let mut open = true;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
            let _ = reap(pid);
            return Err(ConfinedError::TimedOut(timeout));
        }
        let mut fds = vec![PollFd::new(pidfd, PollFlags::IN)];
        if open {
            fds.push(PollFd::new(&stderr, PollFlags::IN | PollFlags::HUP));
        }
        let wait_for = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        match rustix::event::poll(&mut fds, Some(&wait_for)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(ConfinedError::Setup {
                    what: "wait for the child",
                    source: e.into(),
                })
            }
        }
        let exited = !fds[0].revents().is_empty();
        if open && fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
            let mut buf = [0u8; 16 * 1024];
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => open = false,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 2 * KEEP {
                        kept.drain(..kept.len() - KEEP);
                    }
                }
            }
        }
        if exited && !open {
            let (status, max_rss_kib) = reap(pid).map_err(|source| ConfinedError::Setup {
                what: "wait for the child",
                source,
            })?;
            return Ok(Finished {
                status,
                stderr: kept,
                max_rss_kib,
            });
        }
    }
}

/// Waits for our child `pid` to end; returns its status and peak RSS (KiB).
fn reap(pid: libc::pid_t) -> std::io::Result<(ExitStatus, u64)> {
    loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: our own child; valid pointers to a status int and a rusage.
        if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } == pid {
            return Ok((
                ExitStatus::from_raw(status),
                u64::try_from(usage.ru_maxrss).unwrap_or(0),
            ));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
