//! The child's side of a confined run: after the clone, only raw syscalls on data prepared
//! before it (no allocation, no lock), each step checked, ending in `execveat` or `_exit`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Command, CHILD_FAILED, MAX_ARGS, MAX_KEEP};

/// The child's side, prepared before the clone: only raw syscalls on this data after it.
pub(super) struct Child<'a> {
    pub(super) command: &'a Command<'a>,
    pub(super) devnull: RawFd,
    pub(super) stderr: RawFd,
    /// The "hook is alive" pipe: (read end, write end).
    pub(super) life: (RawFd, RawFd),
}

impl Child<'_> {
    /// Clones the child into its new namespaces; returns its pid and pidfd.
    pub(super) fn spawn(&self) -> std::io::Result<(libc::pid_t, OwnedFd)> {
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
        let attr = crate::apply::mount::MountAttr {
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
            &attr as *const crate::apply::mount::MountAttr,
            std::mem::size_of::<crate::apply::mount::MountAttr>(),
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
