//! Running a host program on a container's files, confined like a container process. Generic:
//! what runs, on which directory, as whom and within which limits is the caller's policy (see
//! `ldconfig`); how it is confined is decided here, in one place, so it can be reviewed alone.
//!
//! The child is cloned into new pid and cgroup namespaces; it joins the container's network,
//! IPC and UTS namespaces (or gets new ones where the container shares the hook's own, as a
//! host-network container does) and its user namespace, then unshares a copy of the
//! container's mount namespace (owned by that user namespace, so no mount in it is locked).
//! Then, before `exec`, without allocating:
//! 1. it dies with the hook (`PR_SET_PDEATHSIG`), and exits at once if the hook is gone already;
//! 2. stdin and stdout are `/dev/null`, stderr a pipe to the hook, the program fd 3; every
//!    other fd is closed (`close_range`);
//! 3. in its copy of the container's mount namespace, it sees the root's own mount and only the
//!    mounts the caller names to keep (rebuilt from clones, so nothing else can be left over),
//!    all nosuid, nodev, noexec;
//! 4. it chroots into the root, checked to be the directory the caller opened;
//! 5. rlimits bound its address space, data, file size, open files and CPU time;
//! 6. it takes the caller's uid and gid with no supplementary group, an empty bounding and
//!    ambient set and no capability, `no_new_privs`, and the caller's seccomp filter;
//! 7. it executes the program from the fd opened on the host (`execveat`), with an empty
//!    environment.
//!
//! The hook waits on the child's pidfd with a deadline and kills it when the deadline passes.

mod child;
mod wait;

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitStatus;
use std::time::Duration;

use seccompiler::sock_filter;

use child::Child;
use wait::wait;

/// Resource limits for the child (soft = hard).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub address_space: u64,
    pub data: u64,
    pub file_size: u64,
    pub open_files: u64,
    pub cpu_seconds: u64,
}

/// Which namespaces the child joins from the container and which it gets new.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    /// `CLONE_NEW*` flags for namespaces made new (mount, pid and cgroup are always new).
    pub fresh: libc::c_int,
    /// Namespace fds (opened by the container handle) the child `setns`es into first.
    pub join: Vec<RawFd>,
    /// The container's user namespace, joined last (when it is not the hook's own): the ids
    /// the child then takes are ids of that namespace.
    pub user: Option<RawFd>,
}

/// What to run and how (see the module docs).
pub struct Command<'a> {
    pub program: &'a File,
    pub argv: &'a [CString],
    /// The directory to chroot into, as the current mount namespace names it.
    pub root: &'a CStr,
    /// Its (device, inode): checked after `chdir`, so a path swapped since is refused.
    pub root_id: (u64, u64),
    /// Mount points to keep in the child's view besides the root's own mount (the only ones
    /// it sees), parents before children.
    pub keep: &'a [CString],
    /// The uid and gid to take, in the user namespace the child ends up in.
    pub ids: (u32, u32),
    pub namespaces: Namespaces,
    pub limits: Limits,
    pub timeout: Duration,
    pub filter: &'a [sock_filter],
}

/// How it ended: its status, the end of what it wrote on stderr, and its peak memory.
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: Vec<u8>,
    /// Peak resident set size, in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    #[error("cannot {what}: {source}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("killed after {} s (the deadline): its input in the image never ended", .0.as_secs())]
    TimedOut(Duration),
}

/// The child builds its argv in a fixed array (it must not allocate).
const MAX_ARGS: usize = 63;
/// At most this many mounts to keep (the child holds their fds in a fixed array).
const MAX_KEEP: usize = 1024;

/// What the child writes when a confinement step fails, then exits with 127.
const CHILD_FAILED: &[u8] = b"gpuhook: cannot confine the child: ";

/// Runs `command` and waits for it (see the module docs).
pub fn run(command: &Command) -> Result<Finished, ConfinedError> {
    let setup = |what| move |source| ConfinedError::Setup { what, source };
    if command.keep.len() > MAX_KEEP {
        return Err(setup("keep more than 1024 mounts")(std::io::Error::from(
            std::io::ErrorKind::InvalidInput,
        )));
    }
    if command.argv.len() > MAX_ARGS {
        return Err(setup("pass more than 63 arguments")(std::io::Error::from(
            std::io::ErrorKind::InvalidInput,
        )));
    }
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(setup("open /dev/null"))?;
    let (stderr_read, stderr_write) = pipe().map_err(setup("make a pipe"))?;
    // Held open by the hook only: the child sees it hang up once the hook is gone.
    let (life_read, life_write) = pipe().map_err(setup("make a pipe"))?;
    let child = Child {
        command,
        devnull: devnull.as_raw_fd(),
        stderr: stderr_write.as_raw_fd(),
        life: (life_read.as_raw_fd(), life_write.as_raw_fd()),
    };
    let (pid, pidfd) = child.spawn().map_err(setup("clone the child"))?;
    drop(stderr_write);
    let finished = wait(pid, &pidfd, stderr_read, command.timeout);
    drop(life_write);
    finished
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> std::io::Result<(File, File)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((File::from(read), File::from(write)))
}
