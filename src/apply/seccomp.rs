//! The seccomp filter of the ldconfig child: a deny-list (EPERM) of what a static ldconfig
//! never calls and what an exploit of it (it parses the image's ELF files) would need to
//! leave its chroot or reach the host: mounts and namespaces, chroot, tracing other
//! processes, signals to them, sockets, keyrings, eBPF, io_uring, kernel modules, new ids.
//! Everything else is allowed, so a future ldconfig using a new syscall keeps working.
//!
//! The child also runs with no capability, a non-root or capability-less uid, no `/proc`
//! and no way out of its chroot; the filter is the second wall, not the first.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::ApplyError;

/// Denied outright.
const DENIED: &[libc::c_long] = &[
    // Mount table and namespaces: the way out of a chroot.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    // New processes (ldconfig never forks; a child could unshare a user namespace).
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_fork,
    libc::SYS_vfork,
    // Other processes: tracing, memory, signals, pidfds.
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_send_signal,
    libc::SYS_kill,
    libc::SYS_tkill,
    // Also the child's own `raise`: abort() then ends the process by a fault instead.
    libc::SYS_tgkill,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    // The network: the child shares the host's network namespace (abstract unix sockets).
    libc::SYS_socket,
    libc::SYS_socketpair,
    // Kernel attack surface no file tool needs.
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_personality,
    // Identity: the child's ids and capabilities are final.
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_setgroups,
    libc::SYS_capset,
];

/// `ioctl` requests denied: pushing input into a terminal (`TIOCSTI`, `TIOCLINUX`).
const DENIED_IOCTLS: &[u64] = &[0x5412, 0x541C];

/// `nr` values at or above this are the x32 ABI's: the same syscalls under other numbers,
/// which a deny-list keyed on x86_64 numbers would miss.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The compiled filter, made before the child is forked (compiling allocates).
pub fn ldconfig_filter() -> Result<BpfProgram, ApplyError> {
    let err = |e: seccompiler::BackendError| ApplyError::Ldconfig {
        message: format!("cannot build the ldconfig seccomp filter: {e}"),
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|nr| (*nr, Vec::new())).collect();
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|request| {
            let cond =
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *request)?;
            SeccompRule::new(vec![cond])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(err)?;
    let program: BpfProgram = filter.try_into().map_err(err)?;
    Ok(with_x32_guard(program))
}

/// Inserts, right after seccompiler's architecture check (three instructions: load arch,
/// jump over the kill when it matches, kill), a refusal of every x32 syscall number.
fn with_x32_guard(mut program: BpfProgram) -> BpfProgram {
    // BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20).
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_DATA_NR_OFFSET: u32 = 0;
    let guard = [
        sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: SECCOMP_DATA_NR_OFFSET,
        },
        sock_filter {
            code: BPF_JMP_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
    ];
    let at = 3.min(program.len());
    program.splice(at..at, guard);
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_with_the_x32_guard_after_the_arch_check() {
        let program = ldconfig_filter().unwrap();
        // Arch check: load arch, jump over the kill, kill.
        assert_eq!(program[0].k, 4, "loads seccomp_data.arch");
        assert_eq!(program[2].k, libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(program[4].k, X32_SYSCALL_BIT);
        assert!(program.len() < 4096);
    }
}
