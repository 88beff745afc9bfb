//! The wall clock: read from the machine's real-time clock at boot (x86_64: the CMOS clock on
//! microvm and q35; aarch64: the PL031 of `virt`), carried forward by the monotonic clock, seen
//! by Rust (`libos::time::SystemTime`, `apps/selftest`) and by C (`CLOCK_REALTIME` and friends,
//! `apps/c-shimtest`). QEMU's real-time clocks follow the host's UTC clock, so the guest's time
//! must be the host's, within a margin for boot time and the clocks' one-second resolution.

use libos_tests::{Boot, Booted, arches};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xtask::arch::Arch;
use xtask::qemu::Machine;

/// How far the guest's wall clock may be from the host's.
const MARGIN: Duration = Duration::from_secs(120);

/// Asserts that `guest_secs` (seconds since 1970, as the guest printed them) is the host's time.
fn assert_is_host_time(booted: &Booted, what: &str, guest_secs: f64) {
    let host = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let off = (host - guest_secs).abs();
    assert!(
        off <= MARGIN.as_secs_f64(),
        "{what}: the guest's wall clock reads {guest_secs:.3} s since 1970, the host's {host:.3} s ({off:.1} s apart)\n{}",
        booted.outcome.console
    );
    eprintln!("{what}: guest {guest_secs:.3}, host {host:.3} ({off:.3} s apart)");
}

/// The seconds of selftest's `ok: wall-clock SECONDS s since 1970 (...)` line.
fn selftest_seconds(booted: &Booted) -> u64 {
    let line = booted.line_after("ok: wall-clock ");
    line.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no seconds in {line:?}"))
}

#[test]
fn c_programs_read_the_hosts_time_from_clock_realtime() {
    for arch in arches() {
        let booted = Boot::app("c-shimtest").args(&["wallclock"]).on(arch);
        booted.exits_with(0).does_not_print("FAIL").prints("ok wallclock\n");
        let realtime: f64 = booted.line_after("wallclock realtime ").trim().parse().expect("a number of seconds");
        assert_is_host_time(&booted, &format!("{arch} CLOCK_REALTIME"), realtime);
        // The C program checked that 100 ms of sleep moved both clocks alike; the figures:
        eprintln!("{arch}: {}", booted.line_after("wallclock slept: "));
    }
}

#[test]
fn every_machine_has_a_real_time_clock_read_at_boot() {
    for arch in arches() {
        for machine in Machine::of(arch) {
            let booted = Boot::app("selftest").options("loglevel=debug").args(&["wall-clock"]).machine(machine).on(arch);
            booted.exits_with(0).prints("from RealTimeClock").does_not_print("no real-time clock");
            booted.prints(match arch {
                Arch::X86_64 => "CMOS RTC: ",
                Arch::Aarch64 => "PL031 RTC at 0x9010000: ",
            });
            assert_is_host_time(&booted, &format!("{arch} {} SystemTime", machine.name()), selftest_seconds(&booted) as f64);
        }
    }
}

#[test]
fn walltime_option_sets_the_wall_clock() {
    for arch in arches() {
        let booted = Boot::app("selftest").options("walltime=1000000000").args(&["wall-clock"]).on(arch);
        booted.exits_with(0).prints("(2001-09-09 01:46:").prints("from CommandLine");
        let seconds = selftest_seconds(&booted);
        assert!((1_000_000_000..1_000_000_060).contains(&seconds), "{arch}: walltime=1000000000 gave {seconds}");
    }
}

#[test]
fn without_a_real_time_clock_the_wall_clock_counts_from_1970_and_says_so() {
    // x86 microvm without its CMOS clock (as Firecracker): nothing answers at the ports. The
    // second `-machine` merges into the first.
    if !arches().contains(&Arch::X86_64) {
        return;
    }
    let booted = Boot::app("selftest").options("loglevel=info").args(&["wall-clock"]).qemu_args(&["-machine", "rtc=off"]).on(Arch::X86_64);
    booted.exits_with(0).prints("no real-time clock: the wall clock counts from 1970-01-01").prints("from None");
    assert!(selftest_seconds(&booted) < 60, "1970 plus the uptime:\n{}", booted.outcome.console);
    // There, `walltime=` gives C programs a real date.
    Boot::app("c-shimtest")
        .options("walltime=1750000000")
        .args(&["wallclock"])
        .qemu_args(&["-machine", "rtc=off"])
        .on(Arch::X86_64)
        .exits_with(0)
        .prints("wallclock date 2025-06-15 15:06:")
        .prints("ok wallclock\n");
}
