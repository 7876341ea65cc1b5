//! `elf::is_static_elf` on any bytes. Invariants: it agrees with a reading of the program
//! headers done in u128 (no overflow possible); a static verdict survives appended bytes and
//! turns dynamic when a header becomes `PT_INTERP`.
#![no_main]
use libfuzzer_sys::fuzz_target;

use gpuhook::elf::is_static_elf;

/// Static by the ELF layout, computed with arithmetic that cannot overflow.
fn oracle(head: &[u8]) -> bool {
    if head.len() < 64 || &head[..6] != b"\x7fELF\x02\x01" {
        return false;
    }
    let u16_at = |at: usize| u128::from(u16::from_le_bytes([head[at], head[at + 1]]));
    let phoff = u128::from(u64::from_le_bytes(head[32..40].try_into().unwrap()));
    let (entsize, count) = (u16_at(54), u16_at(56));
    if entsize < 4 {
        return false;
    }
    (0..count).all(|i| {
        let at = phoff + i * entsize;
        at + 4 <= head.len() as u128 && {
            let at = at as usize;
            u32::from_le_bytes(head[at..at + 4].try_into().unwrap()) != 3
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let verdict = is_static_elf(data);
    assert_eq!(verdict, oracle(data));
    if verdict {
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[3, 0, 0, 0, 0xff]);
        assert!(is_static_elf(&longer), "appended bytes changed the verdict");
        let count = u16::from_le_bytes([data[56], data[57]]);
        let at = u64::from_le_bytes(data[32..40].try_into().unwrap()) as usize;
        // (A first header inside the ELF header would change phnum itself when written.)
        if count > 0 && at >= 64 {
            let mut interp = data.to_vec();
            interp[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
            assert!(!is_static_elf(&interp), "a PT_INTERP header went unseen");
        }
    }
});
