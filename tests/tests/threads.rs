//! libos-sched in a real guest (the `threads` app), on every architecture and under both
//! policies: exact mutex counting, condvar producer/consumer, preemption of a busy thread,
//! FP/SIMD registers across preemption (Rust FP code, and under rr every vector register plus
//! the FP control register, and data in the 128-byte red zone below the stack pointer, held by
//! inline assembly while interrupts and preemption happen), sleep order, a parked thread's
//! wake-up moved earlier (`wake_by`), join results, TLS,
//! semaphores, a tickless idle, a thread's panic reported with its name, and bad scheduler
//! options.
//!
//! Timing assertions only check order and "not before the deadline" (TCG jitter).

use libos_tests::{Boot, arches};

const PANIC: i32 = 101;
const BOOT_ERROR: i32 = 103;

const COMMON: [&str; 10] = ["mutex", "condvar", "join", "tls", "semaphore", "exhaustion", "sleep", "wake-by", "fp", "idle"];

fn checks_pass(options: &str, extra: &[&str], policy: &str) {
    let mut args: Vec<&str> = COMMON.to_vec();
    args.extend_from_slice(extra);
    for arch in arches() {
        let booted = Boot::app("threads").options(options).args(&args).on(arch);
        booted.exits_with(0).prints(&format!("policy: {policy}\n")).does_not_print("FAILED");
        for check in &args {
            booted.prints(&format!("ok: {check} "));
        }
        booted.prints("ok: mutex total 4000").prints("ok: sleep order [10, 20, 30, 50]");
    }
}

#[test]
fn round_robin_passes_every_check_and_preempts_a_busy_thread() {
    // A 2 ms slice preempts the FP threads many times.
    checks_pass("timeslice=2", &["preempt", "simd", "red-zone"], "rr");
}

#[test]
fn a_woken_urgent_thread_preempts_at_once() {
    // With a 1 s slice, only priority preemption can run the woken thread within 500 ms.
    for arch in arches() {
        Boot::app("threads").options("timeslice=1000").args(&["priority"]).on(arch).exits_with(0).prints("ok: priority ");
    }
}

#[test]
fn cooperative_passes_every_check() {
    checks_pass("sched=coop", &[], "coop");
}

#[test]
fn a_panicking_thread_is_named() {
    for arch in arches() {
        Boot::app("threads")
            .args(&["panic"])
            .on(arch)
            .exits_with(PANIC)
            .prints("libos: panicked in thread 'worker-7' at apps/threads/src/main.rs:")
            .prints("deliberate panic in a thread");
    }
}

#[test]
fn bad_scheduler_options_stop_the_boot() {
    for arch in arches() {
        Boot::app("threads")
            .options("sched=fifo")
            .args(&["join"])
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("kernel option `sched` does not accept `fifo` (expected coop or rr)");
        Boot::app("hello")
            .options("sched=rr")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("unknown kernel option `sched=rr`");
    }
}

#[test]
fn a_thread_stack_overflow_hits_its_guard_page() {
    for arch in arches() {
        Boot::app("threads")
            .args(&["stack-overflow"])
            .on(arch)
            .exits_with(102)
            .prints("stack overflow: the address is in the guard page below the stack of thread 'deep'")
            // The backtrace follows the frame pointers through the thread's own stack.
            .prints("... the frame above repeats");
    }
}
