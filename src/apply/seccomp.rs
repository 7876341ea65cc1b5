//! The seccomp filter of a confined file tool (the ldconfig child): an allow-list of what a
//! static program that reads directories and ELF files and writes one cache file needs, built
//! for the architecture gpuhook runs on. Everything else fails with `ENOSYS` (so glibc falls
//! back from newer calls where it can); a syscall of another architecture (x32 numbers on
//! x86_64 are not in the list either) gets the same, and a foreign audit architecture kills
//! the process.
//!
//! Not allowed, among others: processes (`clone*`, `fork`), signals to anyone (`kill`,
//! `tgkill`: an `abort()` ends in a fault instead), sockets, mounts and namespaces, `ptrace`,
//! SysV IPC and `mq_*`, `memfd_create`, `setpriority`, `sched_setaffinity`, `prlimit64` that
//! sets a limit (reading one is allowed: static glibc does at start), `ioctl` other than the
//! two terminal queries `isatty` makes, `execveat` other than of the program fd the hook
//! passes (fd 3, close-on-exec), and every id or capability change.
//!
//! The list was taken from `strace -f` of Debian 12's (glibc 2.36) and Debian 13's (glibc
//! 2.41) static ldconfig over an image with a library directory, `include` lines and broken
//! links; `tests/least_privilege.rs` runs the real ldconfig under it.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::ApplyError;

/// Allowed without condition, on every architecture.
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_getdents64,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_symlinkat,
    libc::SYS_readlinkat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdirat,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_fcntl,
    libc::SYS_umask,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_set_tid_address,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_getrandom,
    libc::SYS_futex,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_uname,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
];

/// The older path-based calls x86_64 still has (aarch64 only has the `*at` ones).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_symlink,
    libc::SYS_readlink,
    libc::SYS_unlink,
    libc::SYS_rename,
    libc::SYS_mkdir,
    libc::SYS_chmod,
    libc::SYS_arch_prctl,
    libc::SYS_time,
];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_ARCH: &[libc::c_long] = &[];

/// `ioctl` requests allowed: `TCGETS` and `TIOCGWINSZ` (what `isatty` and stdio ask).
const ALLOWED_IOCTLS: &[u64] = &[0x5401, 0x5413];

#[cfg(target_arch = "x86_64")]
fn target_arch() -> Result<TargetArch, String> {
    Ok(TargetArch::x86_64)
}
#[cfg(target_arch = "aarch64")]
fn target_arch() -> Result<TargetArch, String> {
    Ok(TargetArch::aarch64)
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn target_arch() -> Result<TargetArch, String> {
    Err(format!(
        "no seccomp filter for {}: gpuhook confines ldconfig on x86_64 and aarch64 only",
        std::env::consts::ARCH
    ))
}

/// The compiled filter, made before the child is forked (compiling allocates).
pub fn file_tool_filter() -> Result<BpfProgram, ApplyError> {
    let err = |e: String| ApplyError::Ldconfig {
        message: format!("cannot build the seccomp filter: {e}"),
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .map(|nr| (*nr, Vec::new()))
        .collect();
    let arg_is = |index: u8, value: u64, len: SeccompCmpArgLen| {
        SeccompCondition::new(index, len, SeccompCmpOp::Eq, value)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| err(e.to_string()))
    };
    let ioctl = ALLOWED_IOCTLS
        .iter()
        .map(|request| arg_is(1, *request, SeccompCmpArgLen::Dword))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl);
    // The filter is installed before exec: execveat(3, "", ..., AT_EMPTY_PATH) of the program
    // fd must pass. fd 3 is close-on-exec, so afterwards this matches no file the program
    // did not open itself, and whatever it could execute runs under this same filter.
    let exec = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, 3)
        .and_then(|fd| {
            let flags = SeccompCondition::new(
                4,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                libc::AT_EMPTY_PATH as u64,
            )?;
            SeccompRule::new(vec![fd, flags])
        })
        .map_err(|e| err(e.to_string()))?;
    rules.insert(libc::SYS_execveat, vec![exec]);
    // prlimit64(pid, resource, new_limit = NULL, old_limit): reading only.
    rules.insert(
        libc::SYS_prlimit64,
        vec![arg_is(2, 0, SeccompCmpArgLen::Qword)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::ENOSYS as u32),
        SeccompAction::Allow,
        target_arch().map_err(err)?,
    )
    .map_err(|e| err(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_and_starts_with_the_architecture_check() {
        let program = file_tool_filter().unwrap();
        assert_eq!(program[0].k, 4, "loads seccomp_data.arch");
        assert_eq!(program[2].k, libc::SECCOMP_RET_KILL_PROCESS);
        assert!(program.len() < 4096);
        // Nothing that starts processes, signals or talks to the network is listed.
        for denied in [
            libc::SYS_clone,
            libc::SYS_kill,
            libc::SYS_socket,
            libc::SYS_setpriority,
            libc::SYS_sched_setaffinity,
            libc::SYS_memfd_create,
            libc::SYS_shmget,
            libc::SYS_mq_open,
            libc::SYS_ptrace,
            libc::SYS_setresuid,
        ] {
            assert!(!ALLOWED.contains(&denied) && !ALLOWED_ARCH.contains(&denied));
        }
    }
}
