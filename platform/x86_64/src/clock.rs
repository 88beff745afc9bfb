//! Frequencies of the TSC (the monotonic clock) and of the local APIC timer.
//!
//! Calibration is lazy: it runs the first time something converts ticks to time or arms the
//! timer, so an app that never asks pays nothing at boot. Sources, in order:
//! 1. the hypervisor's timing leaf 0x4000_0010 (TSC and APIC bus kHz; KVM with
//!    `vmware-cpuid-freq`, VMware);
//! 2. otherwise the PIT: while channel 0 counts 1193 ticks (1 ms at 1.193182 MHz) we read the
//!    TSC and the APIC timer before and after; error about one PIT tick, 0.1 %.
//!
//! Under QEMU TCG with `-icount shift=0` the TSC and the PIT both follow the virtual clock, so
//! the TSC calibrates to 1 GHz and TSC ticks are guest instructions.

use crate::{apic, cpu};
use spin::Once;
use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;
const PIT_WINDOW_TICKS: u16 = 1193;

/// Measured frequencies.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// APIC timer ticks per second (after its divider).
    pub apic_timer_hz: u64,
    /// Where the numbers came from.
    pub source: &'static str,
}

static CALIBRATION: Once<Calibration> = Once::new();

/// The calibration (measured on first call).
pub fn calibration() -> Calibration {
    *CALIBRATION.call_once(calibrate)
}

fn calibrate() -> Calibration {
    let calibration = from_cpuid().or_else(measure_with_pit).unwrap_or_else(|| {
        log::warn!("no TSC frequency source (no CPUID timing leaf, no PIT): assuming 1 GHz");
        Calibration { tsc_hz: 1_000_000_000, apic_timer_hz: 1_000_000_000 / apic::TIMER_DIVISOR, source: "assumed" }
    });
    // Logged here rather than at boot: the platform boots before libos installs the logger.
    log::debug!(
        "clock: TSC {} Hz, APIC timer {} Hz (from {}); local APIC in {}",
        calibration.tsc_hz,
        calibration.apic_timer_hz,
        calibration.source,
        apic::mode()
    );
    calibration
}

fn from_cpuid() -> Option<Calibration> {
    let hypervisor_max = cpu::cpuid(0x4000_0000, 0).eax;
    if (0x4000_0010..0x4001_0000).contains(&hypervisor_max) {
        let timing = cpu::cpuid(0x4000_0010, 0);
        if timing.eax != 0 && timing.ebx != 0 {
            return Some(Calibration {
                tsc_hz: u64::from(timing.eax) * 1000,
                apic_timer_hz: u64::from(timing.ebx) * 1000 / apic::TIMER_DIVISOR,
                source: "CPUID 0x40000010",
            });
        }
    }
    None
}

/// Counts TSC and APIC timer ticks across [`PIT_WINDOW_TICKS`] ticks of PIT channel 0, read
/// with latch commands (channel 2's gate at port 0x61 does not exist on microvm). `None` when
/// no PIT answers.
///
/// Both ends of the window read the TSC and the APIC count right after seeing the PIT count
/// change, through the same code, and a short warm-up window runs that code once first: under
/// binary translation the first run of new code is slow, and an asymmetric delay would skew the
/// result by percents.
fn measure_with_pit() -> Option<Calibration> {
    // SAFETY: ports 0x43/0x40 are the PIT's mode and channel-0 data registers. Channel 0 drives
    // IRQ 0, which is masked (PICs masked, nothing routed through the I/O APIC), so
    // reprogramming it disturbs nothing. Mode 2 (rate generator), low then high byte, full
    // 16-bit count.
    unsafe {
        Port::<u8>::new(0x43).write(0b0011_0100);
        Port::<u8>::new(0x40).write(0xff);
        Port::<u8>::new(0x40).write(0xff);
    }
    apic::start_counting(u32::MAX);
    let window = measure_window(16).and_then(|_| measure_window(PIT_WINDOW_TICKS));
    apic::start_counting(0);
    stop_pit();
    let window = window?;
    let per_second = |ticks: u64| ticks * PIT_HZ / u64::from(window.pit_ticks);
    Some(Calibration {
        tsc_hz: per_second(window.tsc_ticks),
        apic_timer_hz: per_second(window.apic_ticks),
        source: "PIT",
    })
}

/// Leaves channel 0 in one-shot mode 0 with a count of 1, which runs out at once and then
/// stops. A rate generator left running would tick forever inside QEMU even with its IRQ masked,
/// and under `-icount sleep=off` a halted guest's clock jumps to the next such tick: idle time
/// would show up as instructions in every measurement.
fn stop_pit() {
    // SAFETY: the same ports as in `measure_with_pit`; IRQ 0 is masked.
    unsafe {
        Port::<u8>::new(0x43).write(0b0011_0000);
        Port::<u8>::new(0x40).write(0x01);
        Port::<u8>::new(0x40).write(0x00);
    }
}

struct Window {
    pit_ticks: u16,
    tsc_ticks: u64,
    apic_ticks: u64,
}

/// The PIT's channel-0 count, latched.
fn pit_count() -> u16 {
    // SAFETY: see `measure_with_pit`; the latch command and two data reads only read the count.
    unsafe {
        Port::<u8>::new(0x43).write(0x00);
        let low = Port::<u8>::new(0x40).read();
        let high = Port::<u8>::new(0x40).read();
        u16::from_le_bytes([low, high])
    }
}

/// Waits for the PIT count to change from `from` (bounded: without a PIT it never does) and
/// returns the new count with the TSC and APIC count read right after it.
#[inline(never)]
fn next_pit_edge(from: u16) -> Option<(u16, u64, u32)> {
    for _ in 0..1_000_000 {
        let count = pit_count();
        if count != from {
            return Some((count, cpu::rdtsc(), apic::current_count()));
        }
    }
    None
}

/// Measures TSC and APIC ticks over at least `pit_ticks` PIT ticks, edge to edge.
fn measure_window(pit_ticks: u16) -> Option<Window> {
    let (start, tsc_start, apic_start) = next_pit_edge(pit_count())?;
    let mut end = (start, tsc_start, apic_start);
    while start.wrapping_sub(end.0) < pit_ticks {
        end = next_pit_edge(end.0)?;
    }
    Some(Window {
        pit_ticks: start.wrapping_sub(end.0),
        tsc_ticks: end.1 - tsc_start,
        apic_ticks: u64::from(apic_start.wrapping_sub(end.2)),
    })
}
