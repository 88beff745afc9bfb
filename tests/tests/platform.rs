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

#[test]
fn x86_64_timer_works_in_x2apic_mode_and_on_the_richest_cpu_model() {
    // TCG's default CPU (qemu64) has no x2APIC, so the MSR path of the local APIC driver needs its
    // own boot; `-cpu max` adds every feature TCG offers (x2APIC, TSC deadline, 1 GiB pages...).
    if !arches().contains(&xtask::arch::Arch::X86_64) {
        return;
    }
    for (cpu, mode) in [("qemu64", "xAPIC mode at 0xfee00000"), ("qemu64,+x2apic", "x2APIC mode"), ("max", "x2APIC mode")] {
        Boot::app("selftest")
            .options("loglevel=debug")
            .args(&["timer", "clock"])
            .qemu_args(&["-cpu", cpu])
            .on(xtask::arch::Arch::X86_64)
            .exits_with(0)
            .prints(&format!("local APIC in {mode}"))
            .prints("ok: timer")
            .prints("ok: clock");
    }
}

/// The other CPUs come up (each says so itself once on its own stacks, GDT/TSS, IDT and local
/// APIC) and run what other CPUs post them, `smp=` caps them, and what the firmware does not
/// list is never started.
#[test]
fn x86_64_every_cpu_the_madt_lists_comes_online() {
    use xtask::arch::Arch;
    if !arches().contains(&Arch::X86_64) {
        return;
    }
    let arch = Arch::X86_64;
    // `selftest cpus` runs a function on every CPU through an IPI and checks where it ran.
    for machine in Machine::of(arch) {
        Boot::app("selftest")
            .args(&["cpus"])
            .cpus(4)
            .options("loglevel=info")
            .machine(machine)
            .on(arch)
            .exits_with(0)
            .prints("cpus: 4 online of 4 reported")
            .prints("ok: cpus (4 CPUs");
    }
    // x2APIC mode: the IPIs go through the ICR MSR.
    Boot::app("selftest")
        .args(&["cpus"])
        .cpus(3)
        .options("loglevel=debug")
        .qemu_args(&["-cpu", "max"])
        .on(arch)
        .exits_with(0)
        .prints("x2APIC mode")
        .prints("cpus: 3 online of 3 reported")
        .prints("ok: cpus (3 CPUs");
    Boot::app("selftest").args(&["cpus"]).cpus(4).options("loglevel=info smp=2").on(arch).exits_with(0).prints("cpus: 2 online (smp=2; the firmware reports 4)");
    Boot::app("selftest")
        .args(&["cpus"])
        .cpus(2)
        .options("loglevel=info smp=9")
        .on(arch)
        .exits_with(0)
        .prints("smp=9 asks for more CPUs than the 2 the firmware reports: using 2")
        .prints("cpus: 2 online of 2 reported");
    // Hot-pluggable slots are in the MADT but not enabled: not started, not counted.
    Boot::app("selftest")
        .args(&["cpus"])
        .cpus(1) // the -smp below says it all
        .options("loglevel=info")
        .qemu_args(&["-smp", "2,maxcpus=4"])
        .on(arch)
        .exits_with(0)
        .prints("cpus: 2 online of 2 reported")
        .does_not_print("left out");
    // A single CPU, as every other test boots (unless LIBOS_TEST_CPUS says otherwise).
    Boot::app("selftest").args(&["cpus"]).cpus(1).options("loglevel=info").on(arch).exits_with(0).prints("cpus: 1 online of 1 reported");
    // An image without the `smp` feature (hello) runs on the boot CPU and says so.
    Boot::app("hello").cpus(2).options("loglevel=info").on(arch).exits_with(0).prints("cpus: 1 online (the image was built without libos's `smp` feature");
}

#[test]
fn smp_0_stops_the_boot() {
    for arch in arches() {
        Boot::app("hello").cpus(2).options("smp=0").on(arch).exits_with(103).prints("smp").prints("1 to 64");
    }
}

#[test]
fn aarch64_secondary_cpus_start_with_psci_and_smp_caps_them() {
    // QEMU `virt` describes every CPU in the device tree with enable-method "psci"; the guest
    // starts them with CPU_ON and each reports itself online from its own stacks, then sets up
    // its part of the GIC: `selftest cpus` runs functions on every CPU through SGIs (GICv2:
    // GICD_SGIR and the banked CPU interface; GICv3: ICC_SGI1R_EL1 and each redistributor).
    use xtask::arch::Arch;
    if !arches().contains(&Arch::Aarch64) {
        return;
    }
    for machine in [Machine::VirtGicv2, Machine::VirtGicv3] {
        Boot::app("selftest")
            .args(&["clock", "cpus"])
            .cpus(4)
            .options("loglevel=info")
            .machine(machine)
            .on(Arch::Aarch64)
            .exits_with(0)
            .prints("cpus: 4 online of 4 reported")
            .prints("ok: clock")
            .prints("ok: cpus (4 CPUs, 501 calls each)")
            .does_not_print("left out");
    }
    Boot::app("selftest")
        .args(&["clock"])
        .cpus(4)
        .options("loglevel=info smp=2")
        .on(Arch::Aarch64)
        .exits_with(0)
        .prints("cpus: 2 online (smp=2; the firmware reports 4)");
    Boot::app("selftest")
        .args(&["clock"])
        .cpus(2)
        .options("loglevel=info smp=9")
        .on(Arch::Aarch64)
        .exits_with(0)
        .prints("smp=9 asks for more CPUs than the 2 the firmware reports: using 2")
        .prints("cpus: 2 online");
    // Entered at EL2 (QEMU's virtualization=on: PSCI through `smc`), each CPU drops to EL1
    // itself (and lets EL1 use the GICv3 system registers).
    Boot::app("selftest")
        .args(&["clock", "cpus"])
        .cpus(3)
        .options("loglevel=info")
        .qemu_args(&["-machine", "virtualization=on"])
        .on(Arch::Aarch64)
        .exits_with(0)
        .prints("cpus: 3 online of 3 reported")
        .prints("ok: cpus (3 CPUs");
}
