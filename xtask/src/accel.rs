//! Choosing the accelerator: KVM only where it is really hardware-accelerated.
//!
//! A `/dev/kvm` that opens is not enough: on nested-virtualization hosts it may be a software
//! module that emulates guests thousands of times slower than TCG. So the first time on each
//! host boot we time a calibration guest of the host's architecture
//! ([`crate::floor::probe_image_for`], a 20-million-iteration loop) under TCG and under KVM (with
//! a short timeout) and pick KVM only if it wins. The verdict is cached in `target/accel-probe`
//! for the rest of the host's uptime.

use crate::arch::Arch;
use crate::qemu::{self, Exit, VmConfig};
use crate::{Result, floor, root};
use std::fmt;
use std::time::Duration;

/// A QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's binary translator.
    Tcg,
}

impl Accel {
    /// The name QEMU's `-accel` takes.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Accel, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!("unknown accelerator `{other}` (expected kvm or tcg)")),
        }
    }
}

/// The accelerator to use and why.
#[derive(Clone, Debug)]
pub struct Choice {
    /// The accelerator.
    pub accel: Accel,
    /// One line for the user.
    pub reason: String,
}

const PROBE_ITERATIONS: u32 = 20_000_000;

fn kvm_usable() -> std::result::Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm is not usable ({e})"))
}

fn probe_time(accel: Accel, timeout: Duration) -> Result<Option<Duration>> {
    let arch = Arch::host();
    let mut config = VmConfig::new(arch, floor::probe_image_for(arch, PROBE_ITERATIONS)?);
    config.accel = accel;
    config.memory = "16M".into();
    config.timeout = timeout;
    let outcome = qemu::run(&config, false)?;
    Ok((outcome.exit == Exit::Code(0)).then_some(outcome.wall))
}

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_string()
}

/// Measures whether KVM beats TCG on this host (cached per host boot).
fn kvm_is_fast() -> Result<(bool, String)> {
    let cache = root().join("target/accel-probe");
    let boot_id = host_boot_id();
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some((id, verdict)) = text.split_once('\n') {
            if id == boot_id && !boot_id.is_empty() {
                let (fast, detail) = verdict.split_once(' ').unwrap_or((verdict, ""));
                return Ok((fast == "fast", detail.trim().to_string()));
            }
        }
    }
    eprintln!("==> checking whether KVM is hardware-accelerated here (once per host boot)");
    let tcg = probe_time(Accel::Tcg, Duration::from_secs(30))?.ok_or("the TCG calibration boot failed")?;
    let kvm = probe_time(Accel::Kvm, Duration::from_secs(2).max(tcg * 4))?;
    let (fast, detail) = match kvm {
        Some(kvm) if kvm < tcg => (true, format!("calibration boot: KVM {kvm:.2?}, TCG {tcg:.2?}")),
        Some(kvm) => (false, format!("calibration boot: KVM {kvm:.2?}, slower than TCG {tcg:.2?}")),
        None => (false, format!("calibration boot: KVM did not finish in {:.1?}, TCG took {tcg:.2?}", (tcg * 4).max(Duration::from_secs(2)))),
    };
    std::fs::create_dir_all(root().join("target"))?;
    std::fs::write(&cache, format!("{boot_id}\n{} {detail}", if fast { "fast" } else { "slow" }))?;
    Ok((fast, detail))
}

/// Picks the accelerator for `arch`: the requested one, or KVM when a calibration boot shows it
/// is hardware-accelerated and TCG otherwise.
pub fn choose(arch: Arch, requested: Option<Accel>) -> Result<Choice> {
    if requested == Some(Accel::Tcg) {
        return Ok(Choice { accel: Accel::Tcg, reason: "TCG (requested)".into() });
    }
    if arch != Arch::host() {
        let reason = format!("TCG ({arch} guest on a {} host)", Arch::host());
        if requested == Some(Accel::Kvm) {
            return Err(format!("cannot use KVM for an {arch} guest on a {} host", Arch::host()).into());
        }
        return Ok(Choice { accel: Accel::Tcg, reason });
    }
    if let Err(why) = kvm_usable() {
        if requested == Some(Accel::Kvm) {
            return Err(format!("KVM requested but {why}").into());
        }
        return Ok(Choice { accel: Accel::Tcg, reason: format!("TCG ({why})") });
    }
    let (fast, detail) = kvm_is_fast()?;
    Ok(match (requested, fast) {
        (_, true) => Choice { accel: Accel::Kvm, reason: format!("KVM ({detail})") },
        (Some(Accel::Kvm), false) => Choice {
            accel: Accel::Kvm,
            reason: format!("KVM (requested; warning: it is not hardware-accelerated here: {detail})"),
        },
        (_, false) => Choice { accel: Accel::Tcg, reason: format!("TCG (/dev/kvm is emulated, not hardware: {detail})") },
    })
}
