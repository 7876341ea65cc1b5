//! cgroup v2 device access: extend the container's eBPF device program(s) with our rules.
//!
//! Every `BPF_CGROUP_DEVICE` program attached to a cgroup must allow an access, so attaching
//! one more program that allows the GPUs changes nothing while the runtime's own program
//! denies unknown devices. Instead, for each attached program we load a copy of it with a
//! prefix that allows our devices and falls through to the original code, and swap it in
//! atomically (`BPF_F_REPLACE`). The `bpf(2)` calls are made directly: the five commands used
//! take small fixed structs, and the crates that wrap them (aya, libbpf-rs) bring a loader
//! framework or a C toolchain for what is here ~150 lines.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::ApplyError;
use crate::plan::DeviceRule;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;
/// `BPF_DEVCG_DEV_CHAR` and `BPF_DEVCG_ACC_MKNOD` of `struct bpf_cgroup_dev_ctx`.
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;

/// One eBPF instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
}

// Opcodes used: LDX W mem, ALU64 AND/RSH/MOV imm, MOV reg, JNE imm, EXIT.
const LDX_W: u8 = 0x61;
const AND_K: u8 = 0x57;
const RSH_K: u8 = 0x77;
const MOV_K: u8 = 0xb7;
const MOV_X: u8 = 0xbf;
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

/// The prefix: for each rule, "character device MAJOR:MINOR, read and/or write (no mknod)
/// -> allow"; anything else falls through to the original program. R1 (the context) is left
/// untouched for it.
pub fn allow_prefix(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut insns = vec![
        Insn::new(LDX_W, 2, 1, 0, 0),      // r2 = ctx->access_type
        Insn::new(AND_K, 2, 0, 0, 0xffff), // r2 = device type
        Insn::new(LDX_W, 3, 1, 0, 0),      // r3 = ctx->access_type
        Insn::new(RSH_K, 3, 0, 0, 16),     // r3 = access bits
        Insn::new(LDX_W, 4, 1, 4, 0),      // r4 = ctx->major
        Insn::new(LDX_W, 5, 1, 8, 0),      // r5 = ctx->minor
    ];
    for rule in rules {
        insns.extend([
            Insn::new(JNE_K, 2, 0, 7, DEV_CHAR),
            Insn::new(JNE_K, 4, 0, 6, rule.major as i32),
            Insn::new(JNE_K, 5, 0, 5, rule.minor as i32),
            Insn::new(MOV_X, 6, 3, 0, 0),
            Insn::new(AND_K, 6, 0, 0, ACC_MKNOD),
            Insn::new(JNE_K, 6, 0, 2, 0),
            Insn::new(MOV_K, 0, 0, 0, 1),
            Insn::new(EXIT, 0, 0, 0, 0),
        ]);
    }
    insns
}

fn bpf(cmd: libc::c_long, attr: &mut [u64]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised, 8-byte aligned buffer at least as large as the
    // command's struct; pointers inside it point at live buffers owned by the caller.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Packs 32-bit fields into the u64 words of a `bpf_attr` (little- and big-endian alike).
fn put_u32(attr: &mut [u64], index: usize, value: u32) {
    let mut bytes: Vec<u8> = attr.iter().flat_map(|w| w.to_ne_bytes()).collect();
    bytes[index * 4..index * 4 + 4].copy_from_slice(&value.to_ne_bytes());
    for (word, chunk) in attr.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *word = u64::from_ne_bytes(b);
    }
}

fn get_u32(attr: &[u64], index: usize) -> u32 {
    let bytes: Vec<u8> = attr.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[index * 4..index * 4 + 4]);
    u32::from_ne_bytes(b)
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

pub fn allow_devices(cgroup_dir: &Path, rules: &[DeviceRule]) -> Result<(), ApplyError> {
    let fail = |message: String| ApplyError::Cgroup {
        path: cgroup_dir.to_path_buf(),
        message,
    };
    let cgroup = std::fs::File::open(cgroup_dir).map_err(|e| fail(format!("open: {e}")))?;
    let cgroup_fd = cgroup.as_raw_fd() as u32;

    // BPF_PROG_QUERY: target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt.
    let mut ids = [0u32; 64];
    let mut attr = [0u64; 8];
    put_u32(&mut attr, 0, cgroup_fd);
    put_u32(&mut attr, 1, BPF_CGROUP_DEVICE);
    attr[2] = ids.as_mut_ptr() as u64;
    put_u32(&mut attr, 6, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| fail(format!("query device programs: {e}")))?;
    let attach_flags = get_u32(&attr, 3);
    let count = (get_u32(&attr, 6) as usize).min(ids.len());
    // No program: the cgroup restricts no device.
    for &id in &ids[..count] {
        let old = program_by_id(id).map_err(|e| fail(format!("open device program {id}: {e}")))?;
        let old_insns =
            instructions(&old).map_err(|e| fail(format!("read device program {id}: {e}")))?;
        let Some(insns) = extended(old_insns, rules) else {
            continue;
        };
        let new = load(&insns).map_err(|e| fail(format!("load device program: {e}")))?;
        // BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd.
        let mut attr = [0u64; 4];
        put_u32(&mut attr, 0, cgroup_fd);
        put_u32(&mut attr, 1, new.as_raw_fd() as u32);
        put_u32(&mut attr, 2, BPF_CGROUP_DEVICE);
        if attach_flags & BPF_F_ALLOW_MULTI != 0 {
            put_u32(&mut attr, 3, BPF_F_ALLOW_MULTI | BPF_F_REPLACE);
            put_u32(&mut attr, 4, old.as_raw_fd() as u32);
        } else {
            // Single-program mode: attaching replaces the one program.
            put_u32(&mut attr, 3, attach_flags);
        }
        bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| fail(format!("attach device program: {e}")))?;
    }
    Ok(())
}

/// `old` with the allow prefix for `rules` in front; `None` when `old` starts with that very
/// prefix already (a second hook run for the same container: stacking another would only
/// lengthen the program on every run).
pub fn extended(old: Vec<Insn>, rules: &[DeviceRule]) -> Option<Vec<Insn>> {
    let mut insns = allow_prefix(rules);
    if old.starts_with(&insns) {
        return None;
    }
    insns.extend(old);
    Some(insns)
}

fn program_by_id(id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = [0u64; 2];
    put_u32(&mut attr, 0, id);
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)
}

/// The program's instructions as the kernel holds them (`xlated_prog_insns`).
fn instructions(program: &OwnedFd) -> std::io::Result<Vec<Insn>> {
    // struct bpf_prog_info: type, id, tag[8], jited_prog_len, xlated_prog_len (u32 index 5),
    // jited_prog_insns (u64 index 3), xlated_prog_insns (u64 index 4).
    let mut info = [0u64; 5];
    let query = |info: &mut [u64; 5]| {
        let mut attr = [0u64; 2];
        put_u32(&mut attr, 0, program.as_raw_fd() as u32);
        put_u32(&mut attr, 1, std::mem::size_of_val(info) as u32);
        attr[1] = info.as_mut_ptr() as u64;
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)
    };
    query(&mut info)?;
    let len = get_u32(&info, 5) as usize;
    let mut insns = vec![Insn::new(0, 0, 0, 0, 0); len / std::mem::size_of::<Insn>()];
    info = [0u64; 5];
    put_u32(
        &mut info,
        5,
        (insns.len() * std::mem::size_of::<Insn>()) as u32,
    );
    info[4] = insns.as_mut_ptr() as u64;
    query(&mut info)?;
    Ok(insns)
}

fn load(insns: &[Insn]) -> std::io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    // BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log fields left zero.
    let mut attr = [0u64; 8];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put_u32(&mut attr, 1, insns.len() as u32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    bpf(BPF_PROG_LOAD, &mut attr).map(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_jumps_land_after_each_rule() {
        let rules = [
            DeviceRule {
                major: 195,
                minor: 0,
            },
            DeviceRule {
                major: 195,
                minor: 255,
            },
        ];
        let insns = allow_prefix(&rules);
        assert_eq!(insns.len(), 6 + 8 * 2);
        for (i, insn) in insns.iter().enumerate() {
            if insn.code == JNE_K {
                let target = i as i64 + 1 + insn.off as i64;
                let rule_end = 6 + ((i - 6) / 8 + 1) * 8;
                assert_eq!(target, rule_end as i64, "insn {i} jumps to the next rule");
            }
        }
        assert_eq!(insns[6 + 1].imm, 195);
        assert_eq!(insns[6 + 8 + 2].imm, 255);
    }

    #[test]
    fn a_program_is_extended_once() {
        let rules = [DeviceRule {
            major: 195,
            minor: 0,
        }];
        let runtime = vec![Insn::new(MOV_K, 0, 0, 0, 0), Insn::new(EXIT, 0, 0, 0, 0)];
        let once = extended(runtime.clone(), &rules).unwrap();
        assert_eq!(once.len(), allow_prefix(&rules).len() + runtime.len());
        assert!(once.ends_with(&runtime));
        assert_eq!(extended(once.clone(), &rules), None, "second run");
        let other = [DeviceRule {
            major: 195,
            minor: 1,
        }];
        assert!(
            extended(once, &other).is_some(),
            "other rules still get their prefix"
        );
    }

    #[test]
    fn attr_packing() {
        let mut attr = [0u64; 2];
        put_u32(&mut attr, 0, 7);
        put_u32(&mut attr, 3, 9);
        assert_eq!(get_u32(&attr, 0), 7);
        assert_eq!(get_u32(&attr, 3), 9);
        assert_eq!(get_u32(&attr, 1), 0);
    }
}
