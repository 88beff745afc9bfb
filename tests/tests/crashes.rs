//! Crashes are reported, with the kernel's exit codes: panics (101) and CPU exceptions (102).

use libos_tests::{Boot, arches, expect};

const PANIC: i32 = 101;
const FATAL_EXCEPTION: i32 = 102;

#[test]
fn panic_prints_message_and_location() {
    for arch in arches() {
        Boot::app("selftest")
            .args(&["panic"])
            .on(arch)
            .exits_with(PANIC)
            .prints("libos: panicked at apps/selftest/src/main.rs:")
            .prints("selftest: deliberate panic");
    }
}

#[test]
fn unmapped_read_is_reported_with_address_and_backtrace() {
    for arch in arches() {
        Boot::app("selftest")
            .args(&["page-fault"])
            .on(arch)
            .exits_with(FATAL_EXCEPTION)
            .prints(expect::data_fault_header(arch))
            .prints("page fault at address 0x7fffdead0000: read of a non-present page in kernel mode")
            .prints("backtrace:")
            .prints("    #1 ");
    }
}

#[test]
fn null_pointer_faults() {
    for arch in arches() {
        Boot::app("selftest")
            .args(&["null"])
            .on(arch)
            .exits_with(FATAL_EXCEPTION)
            .prints(expect::data_fault_header(arch))
            .prints("page fault at address 0x0: read of a non-present page");
    }
}

#[test]
fn kernel_text_is_read_only() {
    for arch in arches() {
        Boot::app("selftest")
            .args(&["write-code"])
            .on(arch)
            .exits_with(FATAL_EXCEPTION)
            .prints(expect::data_fault_header(arch))
            .prints("write violating page protection in kernel mode");
    }
}

#[test]
fn data_is_not_executable() {
    for arch in arches() {
        Boot::app("selftest")
            .args(&["exec-data"])
            .on(arch)
            .exits_with(FATAL_EXCEPTION)
            .prints(expect::fetch_fault_header(arch))
            .prints("instruction fetch violating page protection in kernel mode");
    }
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    for arch in arches() {
        Boot::app("selftest")
            .args(&["stack-overflow"])
            .on(arch)
            .exits_with(FATAL_EXCEPTION)
            .prints(expect::data_fault_header(arch))
            .prints("stack overflow: the address is in the guard page below the boot stack")
            .does_not_print("another exception while reporting");
    }
}

#[test]
fn crash_exit_codes_reach_the_host_without_the_exit_device() {
    // As on Firecracker/cloud-hypervisor: the crash report, then the printed code and a
    // power-off. On aarch64 this runs the semihosting probe's trap path while a crash is being
    // handled (it must not nest).
    for arch in arches() {
        Boot::app("selftest")
            .args(&["page-fault"])
            .without_debug_exit()
            .on(arch)
            .exits_with(FATAL_EXCEPTION)
            .prints(expect::data_fault_header(arch))
            .prints(&expect::exit_code_fallback(arch, FATAL_EXCEPTION))
            .does_not_print("another exception");
        Boot::app("selftest")
            .args(&["panic"])
            .without_debug_exit()
            .on(arch)
            .exits_with(PANIC)
            .prints(&expect::exit_code_fallback(arch, PANIC));
    }
}
