//! ELF headers, just far enough to tell a static executable from a dynamic one (the host
//! ldconfig must be static: a dynamic one would load the image's `ld.so` once chrooted).
//! Hand-written: one header field and one program-header scan, for which an ELF crate would be
//! a large dependency. Every offset comes from the file, so all arithmetic on them is checked.

/// `PT_INTERP`: the program header naming a dynamic loader.
const PT_INTERP: u32 = 3;

/// A little-endian 64-bit ELF file whose program headers, all within `head`, include no
/// `PT_INTERP`. A header beyond `head` (or an offset that overflows) gives `false`: what
/// cannot be checked is not called static.
pub fn is_static_elf(head: &[u8]) -> bool {
    if head.len() < 64 || head[..4] != *b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return false; // not a little-endian 64-bit ELF
    }
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([head[at], head[at + 1]]));
    let mut phoff = [0u8; 8];
    phoff.copy_from_slice(&head[32..40]);
    let phoff = u64::from_le_bytes(phoff);
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    if phentsize < 4 {
        return false;
    }
    (0..phnum).all(|i| {
        let at = i.checked_mul(phentsize).and_then(|x| x.checked_add(phoff));
        let entry = at
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| Some(at..at.checked_add(4)?))
            .and_then(|range| head.get(range));
        entry.is_some_and(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]]) != PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn head(path: &str) -> Vec<u8> {
        let mut head = vec![0u8; 4096];
        let n = std::fs::File::open(path).unwrap().read(&mut head).unwrap();
        head.truncate(n);
        head
    }

    /// A minimal ELF header with `phnum` program headers of `phentsize` bytes at `phoff`.
    fn elf(phoff: u64, phentsize: u16, phnum: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..6].copy_from_slice(b"\x7fELF\x02\x01");
        h[32..40].copy_from_slice(&phoff.to_le_bytes());
        h[54..56].copy_from_slice(&phentsize.to_le_bytes());
        h[56..58].copy_from_slice(&phnum.to_le_bytes());
        h
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        assert!(
            is_static_elf(&head("/sbin/ldconfig")),
            "Debian's ldconfig is static"
        );
        assert!(!is_static_elf(&head("/bin/sh")), "a dynamic executable");
        assert!(!is_static_elf(b"#!/bin/sh\nexec ldconfig.real \"$@\"\n"));
        assert!(!is_static_elf(&[]));
    }

    #[test]
    fn program_headers_are_read_where_the_header_says() {
        // Two headers at 64: LOAD (1), then INTERP (3) or NOTE (4).
        for (second, is_static) in [(3u32, false), (4, true)] {
            let mut h = elf(64, 56, 2);
            h.resize(64 + 2 * 56, 0);
            h[64..68].copy_from_slice(&1u32.to_le_bytes());
            h[120..124].copy_from_slice(&second.to_le_bytes());
            assert_eq!(is_static_elf(&h), is_static, "second header type {second}");
            // The same file cut short before the second header cannot be called static.
            assert!(!is_static_elf(&h[..64 + 56 + 3]));
        }
    }

    #[test]
    fn offsets_near_u64_max_are_refused_not_wrapped() {
        // Headers at phoff + i * phentsize + 4 overflow u64 (or usize): an unchecked sum wraps
        // to a small offset inside the buffer, or panics in a debug build.
        for phoff in [u64::MAX, u64::MAX - 3, u64::MAX - 56, u64::MAX - 56 * 3 + 1] {
            let mut h = elf(phoff, 56, 4);
            h.resize(4096, 0);
            assert!(!is_static_elf(&h), "phoff {phoff:#x}");
        }
        assert!(!is_static_elf(&elf(64, 0xffff, 0xffff)));
        assert!(
            !is_static_elf(&elf(64, 3, 1)),
            "entries too small to hold a type"
        );
        // No program header at all: nothing names a loader.
        assert!(is_static_elf(&elf(u64::MAX, 56, 0)));
    }
}
