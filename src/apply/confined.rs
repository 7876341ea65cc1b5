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

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use seccompiler::sock_filter;

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

/// The child's side, prepared before the clone: only raw syscalls on this data after it.
struct Child<'a> {
    command: &'a Command<'a>,
    devnull: RawFd,
    stderr: RawFd,
    /// The "hook is alive" pipe: (read end, write end).
    life: (RawFd, RawFd),
}

impl Child<'_> {
    /// Clones the child into its new namespaces; returns its pid and pidfd.
    fn spawn(&self) -> std::io::Result<(libc::pid_t, OwnedFd)> {
        let flags = libc::CLONE_NEWPID
            | libc::CLONE_NEWCGROUP
            | self.command.namespaces.fresh
            | libc::CLONE_PIDFD
            | libc::SIGCHLD;
        let mut pidfd: libc::c_int = -1;
        // SAFETY: clone without a new stack behaves like fork; the child runs only
        // `confine_and_exec`, which makes raw syscalls on data prepared above and ends in
        // execveat or _exit. CLONE_PIDFD stores the pidfd through the parent_tid argument,
        // the third on every architecture.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags as libc::c_ulong,
                0usize,
                &mut pidfd as *mut libc::c_int,
                0usize,
                0usize,
            )
        };
        match ret {
            0 => unsafe { self.confine_and_exec() },
            r if r < 0 => Err(std::io::Error::last_os_error()),
            // SAFETY: the kernel stored a new pidfd for us.
            pid => Ok((pid as libc::pid_t, unsafe { OwnedFd::from_raw_fd(pidfd) })),
        }
    }

    /// # Safety
    /// Only in the freshly cloned child.
    unsafe fn confine_and_exec(&self) -> ! {
        let c = self.command;
        let check = |ok: bool, what: &str| {
            if !ok {
                fail(self.stderr, what)
            }
        };
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0,
            "set the parent-death signal",
        );
        // The hook may have died before the signal was armed: then it never comes, but the
        // life pipe (whose write end only the hook holds once ours is closed) has hung up.
        libc::close(self.life.1);
        let mut life = libc::pollfd {
            fd: self.life.0,
            events: libc::POLLIN,
            revents: 0,
        };
        check(
            libc::poll(&mut life, 1, 0) == 0,
            "find the hook (it is gone)",
        );
        for fd in &c.namespaces.join {
            check(libc::setns(*fd, 0) == 0, "join the container's namespaces");
        }
        if let Some(user) = c.namespaces.user {
            check(
                libc::setns(user, libc::CLONE_NEWUSER) == 0,
                "join the container's user namespace",
            );
        }
        check(
            libc::unshare(libc::CLONE_NEWNS) == 0,
            "unshare the mount namespace",
        );
        check(libc::dup2(self.devnull, 0) == 0, "stdin");
        check(libc::dup2(self.devnull, 1) == 1, "stdout");
        check(libc::dup2(self.stderr, 2) == 2, "stderr");
        check(libc::dup2(c.program.as_raw_fd(), 3) == 3, "program fd");
        check(
            libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) == 0,
            "program fd",
        );
        check(
            libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) == 0,
            "close other fds",
        );
        self.isolate_mounts();
        self.enter_root();
        self.limit();
        self.drop_identity();
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0,
            "no_new_privs",
        );
        let program = libc::sock_fprog {
            len: c.filter.len() as libc::c_ushort,
            filter: c.filter.as_ptr() as *mut libc::sock_filter,
        };
        check(
            libc::syscall(libc::SYS_seccomp, 1 /* SET_MODE_FILTER */, 0, &program) == 0,
            "seccomp",
        );
        let mut argv: [*const libc::c_char; MAX_ARGS + 1] = [std::ptr::null(); MAX_ARGS + 1];
        for (slot, arg) in argv.iter_mut().zip(c.argv.iter().take(MAX_ARGS)) {
            *slot = arg.as_ptr();
        }
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        libc::syscall(
            libc::SYS_execveat,
            3,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        fail(2, "execveat")
    }

    unsafe fn isolate_mounts(&self) {
        let c = self.command;
        let private = libc::MS_REC | libc::MS_PRIVATE;
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            private,
            std::ptr::null(),
        ) != 0
        {
            fail(2, "make mounts private")
        }
        // The view is built from what may be seen, not by taking away what may not: a clone of
        // the rootfs mount alone (no submounts) is stacked on the rootfs path, then a clone of
        // each mount to keep is attached on its own path in it, parents first. Everything else
        // (volumes, procfs, sysfs, mqueue, a mount hidden under another) is simply not there.
        let mut kept = [-1 as libc::c_int; MAX_KEEP];
        for (path, fd) in c.keep.iter().zip(kept.iter_mut()) {
            *fd = open_tree_clone(path);
        }
        let root = open_tree_clone(c.root);
        if root < 0 || !move_mount_to(root, c.root) {
            fail(2, "stack a copy of the rootfs alone")
        }
        for (path, fd) in c.keep.iter().zip(kept.iter()) {
            // A mount to keep that cannot be reached (hidden, or inside what is left out) is
            // left out too: ldconfig then sees less, never more.
            if *fd >= 0 && !move_mount_to(*fd, path) && *libc::__errno_location() != libc::ENOENT {
                fail(2, "keep a mount")
            }
        }
        let attr = super::mount::MountAttr {
            attr_set: 0x2 | 0x4 | 0x8, // MOUNT_ATTR_NOSUID | NODEV | NOEXEC
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let set = libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.root.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const super::mount::MountAttr,
            std::mem::size_of::<super::mount::MountAttr>(),
        );
        if set != 0 {
            fail(2, "mount_setattr")
        }
    }

    unsafe fn enter_root(&self) {
        let c = self.command;
        let mut here: libc::stat = std::mem::zeroed();
        if libc::chdir(c.root.as_ptr()) != 0 {
            fail(2, "enter the root")
        }
        if libc::stat(c".".as_ptr(), &mut here) != 0 || (here.st_dev, here.st_ino) != c.root_id {
            fail(2, "enter the root (it changed)")
        }
        if libc::chroot(c".".as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
            fail(2, "chroot")
        }
    }

    unsafe fn limit(&self) {
        let l = self.command.limits;
        let limits = [
            (libc::RLIMIT_AS, l.address_space),
            (libc::RLIMIT_DATA, l.data),
            (libc::RLIMIT_FSIZE, l.file_size),
            (libc::RLIMIT_NOFILE, l.open_files),
            (libc::RLIMIT_CPU, l.cpu_seconds),
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_MEMLOCK, 0),
        ];
        for (resource, value) in limits {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &limit) != 0 {
                fail(2, "setrlimit")
            }
        }
    }

    unsafe fn drop_identity(&self) {
        let (uid, gid) = self.command.ids;
        for cap in 0..64 {
            // EINVAL: past the kernel's last capability.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                && *libc::__errno_location() != libc::EINVAL
            {
                fail(2, "drop the bounding set")
            }
        }
        let ambient = libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if ambient != 0
            || libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            fail(2, "take the ids")
        }
        // A uid 0 keeps its capabilities through setresuid: clear them.
        let header = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            fail(2, "clear capabilities")
        }
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `open_tree(path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)`: a copy of the mount at `path`
/// alone, detached; -1 on failure. Raw: it runs in the cloned child.
unsafe fn open_tree_clone(path: &CStr) -> libc::c_int {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    libc::syscall(
        libc::SYS_open_tree,
        libc::AT_FDCWD,
        path.as_ptr(),
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
    ) as libc::c_int
}

/// `move_mount(fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH)`: attaches the detached mount
/// `fd` on `path`.
unsafe fn move_mount_to(fd: libc::c_int, path: &CStr) -> bool {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    libc::syscall(
        libc::SYS_move_mount,
        fd,
        c"".as_ptr(),
        libc::AT_FDCWD,
        path.as_ptr(),
        MOVE_MOUNT_F_EMPTY_PATH,
    ) == 0
}

/// Reports `what` and errno on `fd` and ends the child, without allocating.
fn fail(fd: RawFd, what: &str) -> ! {
    // SAFETY: errno of this thread; plain writes to an fd; _exit.
    unsafe {
        let errno = *libc::__errno_location();
        let mut line = [0u8; 160];
        let mut len = 0;
        for &b in CHILD_FAILED
            .iter()
            .chain(what.as_bytes())
            .chain(b" failed (errno ")
        {
            if len < line.len() - 14 {
                line[len] = b;
                len += 1;
            }
        }
        let mut digits = [0u8; 10];
        let (mut n, mut count) = (errno.unsigned_abs(), 0);
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 || count == digits.len() {
                break;
            }
        }
        for i in (0..count).rev() {
            line[len] = digits[i];
            len += 1;
        }
        line[len] = b')';
        line[len + 1] = b'\n';
        libc::write(fd, line.as_ptr().cast(), len + 2);
        libc::_exit(127)
    }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> std::io::Result<(File, File)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((File::from(read), File::from(write)))
}

/// Reads the child's stderr (keeping its last 256 KiB) until it exits or the deadline passes.
fn wait(
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
