//! The architecture gpuhook runs on, and what follows from it for containers: the multiarch
//! library directories of Debian-family images and the ld cache's ABI flags. Containers run
//! natively, so the image's architecture is the host's; x86_64 and aarch64 (GH200, Jetson) are
//! supported.

/// A supported CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// The ld cache's ABI values (`flags & 0xff00`, glibc's `sysdeps/generic/ldconfig.h`).
const FLAG_X8664_LIB64: u32 = 0x0300;
const FLAG_ARM_LIBHF: u32 = 0x0900;
const FLAG_AARCH64_LIB64: u32 = 0x0a00;

/// Which of the host's ABIs an ld cache entry is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryAbi {
    /// The host's own 64-bit ABI.
    Native,
    /// The 32-bit ABI it also runs (`compat32`): i386 on x86_64, ARM hard-float on aarch64.
    Compat32,
    /// Anything else (x32 on x86_64, another architecture's library).
    Foreign,
}

impl Arch {
    /// The architecture this build runs on.
    #[cfg(target_arch = "x86_64")]
    pub const fn host() -> Arch {
        Arch::X86_64
    }
    #[cfg(target_arch = "aarch64")]
    pub const fn host() -> Arch {
        Arch::Aarch64
    }

    /// Debian's multiarch triplet of the 64-bit libraries (`/usr/lib/<triplet>`).
    pub fn multiarch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
        }
    }

    /// Debian's multiarch triplet of the 32-bit compat libraries.
    pub fn multiarch32(self) -> &'static str {
        match self {
            Arch::X86_64 => "i386-linux-gnu",
            Arch::Aarch64 => "arm-linux-gnueabihf",
        }
    }

    /// The ABI of an ld cache entry with `flags` on this architecture.
    pub fn library_abi(self, flags: u32) -> LibraryAbi {
        match (self, flags & 0xff00) {
            (Arch::X86_64, FLAG_X8664_LIB64) | (Arch::Aarch64, FLAG_AARCH64_LIB64) => {
                LibraryAbi::Native
            }
            (Arch::X86_64, 0) | (Arch::Aarch64, FLAG_ARM_LIBHF) => LibraryAbi::Compat32,
            _ => LibraryAbi::Foreign,
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("gpuhook supports x86_64 and aarch64 hosts");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_flags_per_architecture() {
        let x86 = Arch::X86_64;
        assert_eq!(x86.library_abi(0x0303), LibraryAbi::Native);
        assert_eq!(x86.library_abi(0x0003), LibraryAbi::Compat32);
        assert_eq!(
            x86.library_abi(0x0803),
            LibraryAbi::Foreign,
            "x32 is not 64-bit x86_64"
        );
        assert_eq!(x86.library_abi(0x0a03), LibraryAbi::Foreign);
        let arm = Arch::Aarch64;
        assert_eq!(arm.library_abi(0x0a03), LibraryAbi::Native);
        assert_eq!(arm.library_abi(0x0903), LibraryAbi::Compat32);
        assert_eq!(arm.library_abi(0x0303), LibraryAbi::Foreign);
        assert_eq!(arm.library_abi(0x0003), LibraryAbi::Foreign);
        assert_eq!(arm.multiarch(), "aarch64-linux-gnu");
        assert_eq!(x86.multiarch32(), "i386-linux-gnu");
    }
}
