//! Booting `hello`: greeting, arguments, exit codes, machine types, memory sizes, boot stats.

use libos_tests::{Boot, arches, expect};
use xtask::arch::Arch;
use xtask::qemu::Machine;

#[test]
fn hello_greets_and_exits_zero() {
    for arch in arches() {
        Boot::app("hello")
            .on(arch)
            .exits_with(0)
            .prints(&format!("Hello from libos on {arch}"))
            .prints("arguments: []")
            .prints("time since boot: ")
            .does_not_print("libos: exit code"); // the debug-exit path ended QEMU, no fallback
    }
}

#[test]
fn string_routines_copy_move_and_fill_exactly() {
    // aarch64 has its own (general-register) memcpy/memmove/memset; x86_64 compiler_builtins'.
    for arch in arches() {
        Boot::app("selftest").args(&["mem"]).on(arch).exits_with(0).prints("ok: mem");
    }
}

#[test]
fn hello_returns_the_exit_code_it_is_given() {
    for arch in arches() {
        for code in [3, 0, 42, 127, 128, 200, 255] {
            Boot::app("hello").args(&["--exit", &code.to_string()]).on(arch).exits_with(code);
        }
    }
}

#[test]
fn arguments_with_spaces_and_quotes_arrive_intact() {
    for arch in arches() {
        Boot::app("hello")
            .args(&["two words", "say \"hi\"", ""])
            .on(arch)
            .exits_with(2)
            .prints(r#"arguments: ["two words", "say \"hi\"", ""]"#)
            .prints("hello: unexpected arguments");
    }
}

#[test]
fn hello_allocates_and_frees() {
    for arch in arches() {
        let booted = Boot::app("hello").on(arch);
        let heap = booted.exits_with(0).line_after("heap: ");
        let before = heap.split(": ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse::<u64>().ok());
        let after = heap.split(", ").last().and_then(|s| s.split(' ').next()).and_then(|n| n.parse::<u64>().ok());
        assert!(before.is_some() && before == after, "heap usage changed: {heap}");
        assert!(heap.contains("allocated 32768 bytes"), "{heap}");
    }
}

#[test]
fn boots_in_8_mib_and_on_q35() {
    for arch in arches() {
        Boot::app("hello").memory("8M").on(arch).exits_with(0).prints("Hello from libos");
        if arch == Arch::X86_64 {
            Boot::app("hello").machine(Machine::Q35).on(arch).exits_with(0).prints("Hello from libos");
            Boot::app("hello").memory("1G").machine(Machine::Q35).on(arch).exits_with(0);
        }
    }
}

#[test]
fn aarch64_boots_with_gicv2_and_gicv3() {
    // The platform names the GIC it drives, so the greeting shows which driver ran.
    if !arches().contains(&Arch::Aarch64) {
        return;
    }
    for (machine, name) in [(Machine::VirtGicv2, "aarch64 GICv2"), (Machine::VirtGicv3, "aarch64 GICv3")] {
        Boot::app("hello")
            .machine(machine)
            .memory("1G")
            .on(Arch::Aarch64)
            .exits_with(0)
            .prints(&format!("Hello from libos on {name}!"));
    }
}

#[test]
fn aarch64_entered_at_el2_drops_to_el1() {
    // With `virtualization=on` QEMU starts the image at EL2 and describes PSCI through `smc`.
    if !arches().contains(&Arch::Aarch64) {
        return;
    }
    for machine in Machine::of(Arch::Aarch64) {
        Boot::app("selftest")
            .args(&["timer", "exit=4"])
            .machine(machine)
            .qemu_args(&["-M", "virtualization=on"])
            .on(Arch::Aarch64)
            .exits_with(4)
            .prints("ok: timer");
        Boot::app("hello")
            .args(&["--exit", "6"])
            .machine(machine)
            .qemu_args(&["-M", "virtualization=on"])
            .without_debug_exit()
            .on(Arch::Aarch64)
            .exits_with(6)
            .prints(&expect::exit_code_fallback(Arch::Aarch64, 6));
    }
}

#[test]
fn boot_stats_report_counter_ticks() {
    for arch in arches() {
        let booted = Boot::app("hello").options("bootstats").on(arch);
        booted.exits_with(0);
        let to_main: u64 = booted.line_after("[boot-stats] entry-to-main ticks: ").trim().parse().unwrap();
        let to_exit: u64 = booted.line_after("[boot-stats] entry-to-exit ticks: ").trim().parse().unwrap();
        assert!(0 < to_main && to_main < to_exit, "entry-to-main {to_main}, entry-to-exit {to_exit}");
        booted.prints("[boot-stats] counter: ");
    }
}

#[test]
fn exit_code_reaches_the_host_without_isa_debug_exit() {
    // Without the device (as on Firecracker/cloud-hypervisor), libos prints the code and powers
    // off: through ACPI on x86_64 (hardware-reduced sleep control on microvm, PM1a control on
    // q35), through PSCI SYSTEM_OFF on aarch64 (after its semihosting probe traps).
    for arch in arches() {
        for machine in Machine::of(arch) {
            Boot::app("hello")
                .args(&["--exit", "5"])
                .machine(machine)
                .without_debug_exit()
                .on(arch)
                .exits_with(5)
                .prints(&expect::exit_code_fallback(arch, 5));
        }
    }
}

#[test]
fn hello_image_is_at_most_128_kib() {
    // The image-size target of the boot benchmark, on every arch (aarch64: the raw Image).
    for arch in arches() {
        let bytes = std::fs::metadata(libos_tests::image("hello", arch)).expect("the hello image").len();
        assert!(bytes <= 128 * 1024, "hello for {arch} is {bytes} bytes");
    }
}
