//! Platform services checked from inside the guest by the `selftest` app.

use libos_tests::{Boot, arches};
use xtask::qemu::Machine;

#[test]
fn timer_interrupts_arrive_after_their_deadline() {
    // On every machine: the interrupt controllers differ (x86: APIC on microvm and q35;
    // aarch64: GICv2 and GICv3).
    for arch in arches() {
        for machine in Machine::of(arch) {
            Boot::app("selftest").args(&["timer"]).machine(machine).on(arch).exits_with(0).prints("ok: timer");
        }
    }
}

#[test]
fn heap_keeps_contents_and_returns_freed_memory() {
    for arch in arches() {
        Boot::app("selftest").args(&["heap", "heap-exhaustion"]).on(arch).exits_with(0).prints("ok: heap ").prints("ok: heap-exhaustion");
    }
}

#[test]
fn clock_is_monotonic_and_calibrated() {
    for arch in arches() {
        Boot::app("selftest").args(&["clock"]).on(arch).exits_with(0).prints("ok: clock");
    }
}

#[test]
fn without_a_scheduler_an_event_waits_for_an_interrupt() {
    for arch in arches() {
        Boot::app("selftest").args(&["event"]).on(arch).exits_with(0).prints("ok: event (woken by the timer interrupt");
    }
}

#[test]
fn selftest_reports_failures_with_exit_code_1() {
    for arch in arches() {
        Boot::app("selftest").args(&["no-such-check"]).on(arch).exits_with(1).prints("FAILED: no-such-check");
    }
}

#[test]
fn app_exit_code_from_deep_inside_the_app() {
    for arch in arches() {
        Boot::app("selftest").args(&["heap", "exit=9", "panic"]).on(arch).exits_with(9).does_not_print("panicked");
    }
}
