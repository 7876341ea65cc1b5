//! Starting, telling and stopping a pool's MPS control daemon: the driver's
//! `nvidia-cuda-mps-control`, run with only the environment [`PoolKey::daemon_env`] builds
//! (never a tenant's), `/dev/null` as its stdio (runc reads a hook's stdout and stderr until
//! every holder closes them) and `/` as its working directory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pool::PoolKey;
use super::procs;
use super::registry::ProcessId;
use super::MpsError;

/// How long the daemon may take to start or to answer, and its processes to exit after `quit`.
const DEADLINE: Duration = Duration::from_secs(10);
/// Polls start at 100 µs and double up to 5 ms: the daemon usually answers within a
/// millisecond, and a start should not wait for a fixed tick.
const POLL: Duration = Duration::from_millis(5);

struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_micros(100))
    }
    fn sleep(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(POLL);
    }
}
/// The file the control daemon writes its pid to, in its pipe directory.
const PID_FILE: &str = "nvidia-cuda-mps-control.pid";

/// Starts the daemon on an empty `pipe` directory and sends it the pool's defaults; returns
/// the daemon process.
pub fn start(
    control: &Path,
    key: &PoolKey,
    pipe: &Path,
    log: &Path,
    library_dirs: &str,
) -> Result<ProcessId, MpsError> {
    let mut command = Command::new(control);
    command
        .arg("-d")
        .env_clear()
        .envs(key.daemon_env(pipe, log, library_dirs))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command
        .spawn()
        .map_err(MpsError::io(format!("run {} -d", control.display())))?;
    let status = wait(child, control)?;
    if !status.success() {
        return Err(MpsError::Daemon {
            control: control.to_path_buf(),
            problem: format!("`-d` exited with {status}"),
        });
    }
    let daemon = wait_for_daemon(control, pipe)?;
    let commands = key.default_commands();
    if !commands.is_empty() {
        send(control, pipe, &commands)?;
    }
    Ok(daemon)
}

/// The daemon's pid file names a process of this pool once it serves.
fn wait_for_daemon(control: &Path, pipe: &Path) -> Result<ProcessId, MpsError> {
    let started = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        let pid = std::fs::read_to_string(pipe.join(PID_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(found) = pid.and_then(|pid| procs::pool_process(pid, pipe)) {
            return Ok(found);
        }
        if started.elapsed() > DEADLINE {
            return Err(MpsError::Daemon {
                control: control.to_path_buf(),
                problem: format!(
                    "no daemon serving {} after {} s",
                    pipe.display(),
                    DEADLINE.as_secs()
                ),
            });
        }
        backoff.sleep();
    }
}

/// Sends `commands` (one per line) as `nvidia-cuda-mps-control` reads them on stdin; returns
/// what it printed.
pub fn send(control: &Path, pipe: &Path, commands: &[String]) -> Result<String, MpsError> {
    let mut child = Command::new(control)
        .env_clear()
        .env("CUDA_MPS_PIPE_DIRECTORY", pipe)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(MpsError::io(format!("run {}", control.display())))?;
    let mut input = commands.join("\n");
    input.push('\n');
    if let Some(mut stdin) = child.stdin.take() {
        // A daemon that is gone makes the client exit early; its status says so below.
        let _ = stdin.write_all(input.as_bytes());
    }
    let mut stdout = child.stdout.take();
    let status = wait(child, control)?;
    let mut output = String::new();
    if let Some(out) = stdout.as_mut() {
        let _ = out.take(1 << 20).read_to_string(&mut output);
    }
    if !status.success() {
        return Err(MpsError::Daemon {
            control: control.to_path_buf(),
            problem: format!(
                "`{}` to the daemon of {} failed ({status})",
                commands.join("; "),
                pipe.display()
            ),
        });
    }
    Ok(output)
}

/// Tells the daemon (when there is one) to quit, waits for every process of the pool to exit,
/// and kills what is left after the deadline. Without a known daemon (its start was cut short)
/// there is nobody to tell: the pool's processes are killed at once.
pub fn stop(control: Option<&Path>, pipe: &Path, daemon: Option<ProcessId>) {
    let told = match (control, daemon) {
        (Some(control), Some(daemon)) if procs::alive(daemon) => {
            send(control, pipe, &["quit".to_string()]).is_ok()
        }
        _ => false,
    };
    let started = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        let mut left = procs::pool_processes(pipe);
        left.extend(daemon.filter(|d| procs::alive(*d) && !left.contains(d)));
        if left.is_empty() {
            return;
        }
        if !told || started.elapsed() > DEADLINE {
            left.into_iter().for_each(procs::kill);
        }
        if started.elapsed() > DEADLINE * 2 {
            return;
        }
        backoff.sleep();
    }
}

/// Waits for a child for at most [`DEADLINE`], killing it after that.
fn wait(mut child: Child, control: &Path) -> Result<std::process::ExitStatus, MpsError> {
    let started = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(MpsError::Daemon {
                    control: control.to_path_buf(),
                    problem: format!("did not finish within {} s", DEADLINE.as_secs()),
                });
            }
            Ok(None) => backoff.sleep(),
            Err(e) => return Err(MpsError::io(format!("wait for {}", control.display()))(e)),
        }
    }
}
