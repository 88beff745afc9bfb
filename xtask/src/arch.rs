//! Guest architectures: their Rust target, QEMU binary and default machine.

use std::fmt;
use std::str::FromStr;

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64: PVH ELF images.
    X86_64,
    /// aarch64: Linux arm64 `Image` (raw binary, position independent).
    Aarch64,
}

impl Arch {
    /// Every architecture.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// Parses an `--arch` value that may also be `all` (every architecture).
    pub fn parse_list(value: &str) -> Result<Vec<Arch>, String> {
        if value == "all" { Ok(Arch::ALL.to_vec()) } else { Ok(vec![value.parse()?]) }
    }

    /// The architecture of the machine running `./x`.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") { Arch::Aarch64 } else { Arch::X86_64 }
    }

    /// The bare-metal Rust target.
    pub fn target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none-softfloat",
        }
    }

    /// The Rust target of a static glibc Linux program for this architecture (host tools
    /// built to run inside the guest, such as pjdfstest).
    pub fn linux_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The QEMU system emulator.
    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// True when libos has a platform crate for this architecture.
    pub fn is_supported(self) -> bool {
        matches!(self, Arch::X86_64 | Arch::Aarch64)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Arch, String> {
        match s {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(format!("unknown architecture `{other}` (expected x86_64 or aarch64)")),
        }
    }
}
