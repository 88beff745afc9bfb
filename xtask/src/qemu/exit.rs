//! How a boot ended: the guest's exit code decoded from QEMU's status and console.
//!
//! x86_64 guests report their exit code through `isa-debug-exit` (port 0xf4): QEMU exits with
//! `(code << 1) | 1`. QEMU's own failures also exit 1, so a status of 1 counts as the guest's
//! code 0 only when QEMU printed no error. aarch64 guests use semihosting `SYS_EXIT_EXTENDED`
//! (`-semihosting-config enable=on,target=native`): QEMU exits with the code itself. Without
//! the device or semihosting ([`super::VmConfig::debug_exit`] off), libos prints
//! `libos: exit code N; ...` and powers off (status 0): the runner then reads the code from that
//! line.

use super::VmConfig;
use crate::arch::Arch;
use std::time::Duration;

/// How a boot ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The guest reported this exit code.
    Code(i32),
    /// The guest stopped without reporting a code (reset, triple fault, power-off).
    NoCode,
    /// Killed after the timeout.
    Timeout,
    /// QEMU itself failed (bad option, missing file...): its status and error output.
    QemuFailed(Option<i32>, String),
}

/// The result of a boot.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How it ended.
    pub exit: Exit,
    /// Everything the guest wrote to its console (`\r` removed).
    pub console: String,
    /// QEMU's own error output.
    pub stderr: String,
    /// Wall time of the whole QEMU process.
    pub wall: Duration,
    /// Every fork the process host served (empty for a boot without one).
    pub forks: Vec<crate::process::ForkTiming>,
}

impl Outcome {
    /// The exit code `./x run` returns: the guest's code, 124 on timeout, 125 when QEMU failed,
    /// 1 when the guest gave none.
    pub fn process_code(&self) -> i32 {
        match self.exit {
            Exit::Code(code) => code,
            Exit::NoCode => 1,
            Exit::Timeout => 124,
            Exit::QemuFailed(..) => 125,
        }
    }
}

/// The exit code libos printed when it had no `isa-debug-exit` device.
fn fallback_exit_code(console: &str) -> Option<i32> {
    console.lines().rev().find_map(|line| {
        let rest = line.strip_prefix("libos: exit code ")?;
        rest.split(';').next()?.trim().parse().ok()
    })
}

/// Decodes QEMU's exit status into the guest's exit.
pub fn decode_exit(arch: Arch, status: Option<i32>, console: &str, stderr: &str) -> Exit {
    // QEMU's warnings ("qemu-system-x86_64: warning: icount sleep disabled and no active
    // timers") are not failures.
    let qemu_complained =
        stderr.lines().filter(|l| !l.contains(": warning: ")).any(|l| l.starts_with("qemu-system-") || l.contains("qemu: "));
    match (arch, status) {
        (_, None) => Exit::QemuFailed(None, stderr.into()),
        (_, Some(0)) => fallback_exit_code(console).map_or(Exit::NoCode, Exit::Code),
        (_, Some(1)) if qemu_complained => Exit::QemuFailed(Some(1), stderr.into()),
        // isa-debug-exit: (code << 1) | 1 of the low 7 bits; a larger code was also printed.
        (Arch::X86_64, Some(s)) if s % 2 == 1 => {
            let low = s >> 1;
            Exit::Code(fallback_exit_code(console).filter(|&printed| printed > 127 && printed & 127 == low).unwrap_or(low))
        }
        (Arch::Aarch64, Some(s)) if !qemu_complained => Exit::Code(s),
        (_, Some(s)) => Exit::QemuFailed(Some(s), stderr.into()),
    }
}

/// Decodes the exit of a boot of `config`: [`decode_exit`], except that on aarch64 with
/// semihosting a status of 0 is the guest's `SYS_EXIT_EXTENDED(0)` (the guest always exits
/// through semihosting when QEMU offers it, and the machine has no reset that would also end
/// QEMU with 0 under `-no-reboot` short of PSCI calls libos does not make).
pub fn decode_boot_exit(config: &VmConfig, status: Option<i32>, console: &str, stderr: &str) -> Exit {
    match decode_exit(config.arch, status, console, stderr) {
        Exit::NoCode if config.arch == Arch::Aarch64 && config.debug_exit && status == Some(0) => Exit::Code(0),
        other => other,
    }
}
