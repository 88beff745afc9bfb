//! libos-sched in a real guest (the `threads` app), on every architecture and under both
//! policies: exact mutex counting, condvar producer/consumer, preemption of a busy thread,
//! FP/SIMD registers across preemption (Rust FP code, and under rr every vector register plus
//! the FP control register, and data in the 128-byte red zone below the stack pointer, held by
//! inline assembly while interrupts and preemption happen), sleep order, a parked thread's
//! wake-up moved earlier (`wake_by`), join results, TLS,
//! semaphores, a tickless idle, a thread's panic reported with its name, bad scheduler
//! options, and the same on 4 CPUs with the SMP checks (parallel counting, cross-CPU wake-ups,
//! preemption beside a spinner, affinity, spawn/wake-up stress).
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

/// With 4 CPUs (QEMU `-smp 4`, multi-threaded TCG): threads spread over the CPUs and count
/// exactly (atomics and a mutex), a condition variable hands a token between two CPUs, a
/// spinning thread is preempted on its CPU while threads elsewhere run, affinity is honoured,
/// thousands of spawns/joins and wake-ups lose nothing, heap blocks handed between CPUs (freed on
/// another CPU than the one that allocated them) stay intact and all come back; and every
/// single-CPU check passes too.
/// Each SMP check waits with a deadline, so a lost wake-up fails with a report instead of a hang.
#[test]
fn four_cpus_run_threads_in_parallel_under_both_policies() {
    const SMP: [&str; 6] = ["smp-counter", "smp-ping-pong", "smp-spin", "smp-affinity", "smp-stress", "smp-heap"];
    for (options, policy) in [("timeslice=2 loglevel=info", "rr"), ("sched=coop loglevel=info", "coop")] {
        let mut args: Vec<&str> = COMMON.to_vec();
        args.extend_from_slice(&["preempt", "simd"]);
        args.extend_from_slice(&SMP);
        for arch in arches() {
            let booted = Boot::app("threads").cpus(4).options(options).args(&args).on(arch);
            booted.exits_with(0).prints(&format!("policy: {policy}\n")).prints("cpus: 4 online").does_not_print("FAILED").does_not_print("joined within");
            for check in &args {
                booted.prints(&format!("ok: {check} "));
            }
            booted.prints("ok: smp-counter 4 threads, atomic 800000, mutex 80000");
        }
    }
    // One CPU: the SMP checks refuse to run rather than pass vacuously.
    for arch in arches() {
        Boot::app("threads").cpus(1).args(&["smp-counter"]).on(arch).exits_with(1).prints("FAILED: smp-counter: needs at least 2 CPUs");
    }
}
