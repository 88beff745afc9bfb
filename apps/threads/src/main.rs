//! `threads`: checks of libos-sched that need a real (virtual) machine.
//!
//! Run with the names of the checks, in order: `./x run threads -- mutex condvar sleep`.
//! Both policies are compiled in; the kernel option `sched=coop|rr` picks one. Each passing
//! check prints `ok: NAME ...`, a failing one `FAILED: NAME ...` (exit 1). `panic` must end the
//! VM with the kernel's panic report naming the thread. The QEMU integration tests in
//! `tests/tests/threads.rs` drive this app; `./x bench sched` runs the `bench-*` checks.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libos::sync::{Condvar, Mutex, Semaphore};
use libos::thread::{self, Builder, Priority, tls::Key};
use libos::time::{Duration, Instant};
use libos::{hal, println};

mod heap;
mod smp;

libos::main!(main);

type Check = Result<String, String>;

fn main() -> i32 {
    let args: Vec<&str> = libos::env::args().skip(1).collect();
    if args.is_empty() {
        println!("usage: threads CHECK...   (mutex condvar preempt priority fp simd red-zone sleep wake-by join tls semaphore exhaustion idle panic stack-overflow bench-yield bench-spawn bench-idle; with --cpus N: smp-counter smp-ping-pong smp-spin smp-affinity smp-stress smp-heap bench-wake-cross; bench-lock bench-alloc bench-alloc-parallel=ROUNDS)");
        return 2;
    }
    println!("policy: {}", thread::policy_name());
    if args.iter().any(|a| a.starts_with("bench-")) {
        println!("[bench] counter-hz={}", hal::platform().counter_frequency());
    }
    let mut failed = 0;
    for name in &args {
        let result = match *name {
            "mutex" => mutex(),
            "condvar" => condvar(),
            "preempt" => preempt(),
            "priority" => priority(),
            "fp" => fp(),
            "simd" => registers_survive_preemption("vector registers", libos::regcheck::vector_registers_survive),
            "red-zone" => registers_survive_preemption("red zone", libos::regcheck::red_zone_survives),
            "sleep" => sleep(),
            "wake-by" => wake_by(),
            "join" => join(),
            "tls" => tls(),
            "semaphore" => semaphore(),
            "exhaustion" => exhaustion(),
            "idle" => idle(),
            "panic" => panic_in_thread(),
            "stack-overflow" => stack_overflow(),
            "bench-yield" => bench_yield(),
            "bench-spawn" => bench_spawn(),
            "bench-idle" => bench_idle(),
            "smp-counter" => smp::counter(),
            "smp-ping-pong" => smp::ping_pong(),
            "smp-spin" => smp::spin(),
            "smp-affinity" => smp::affinity(),
            "smp-stress" => smp::stress(),
            "bench-lock" => smp::bench_lock(),
            "bench-wake-cross" => smp::bench_wake_cross(),
            "smp-heap" => heap::smp_heap(),
            "bench-alloc" => heap::bench_alloc(),
            other => match other.strip_prefix("bench-alloc-parallel=").map(str::parse) {
                Some(Ok(rounds)) => heap::bench_alloc_parallel(2, rounds),
                Some(Err(_)) => Err(format!("`{other}`: ROUNDS is a number")),
                None => Err(format!("unknown check `{other}`")),
            },
        };
        match result {
            Ok(detail) => println!("ok: {name} {detail}"),
            Err(why) => {
                println!("FAILED: {name}: {why}");
                failed += 1;
            }
        }
    }
    i32::from(failed > 0)
}

/// Many threads increment one counter under a `Mutex`, yielding while holding it.
fn mutex() -> Check {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 500;
    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let counter = counter.clone();
            thread::spawn(move || {
                for i in 0..ROUNDS {
                    let mut guard = counter.lock();
                    let seen = *guard;
                    if i % 7 == 0 {
                        thread::yield_now(); // others must block on the mutex meanwhile
                    }
                    *guard = seen + 1;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join();
    }
    let total = *counter.lock();
    if total == THREADS * ROUNDS { Ok(format!("total {total}")) } else { Err(format!("total {total}, expected {}", THREADS * ROUNDS)) }
}

/// A bounded queue with two condition variables: 2 producers, 2 consumers, every item once.
fn condvar() -> Check {
    const ITEMS: u64 = 400;
    const CAPACITY: usize = 4;
    struct Queue {
        items: Mutex<(VecDeque<u64>, u64)>, // (queue, producers finished)
        not_empty: Condvar,
        not_full: Condvar,
    }
    let queue = Arc::new(Queue { items: Mutex::new((VecDeque::new(), 0)), not_empty: Condvar::new(), not_full: Condvar::new() });
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = queue.clone();
            thread::spawn(move || {
                for i in 0..ITEMS / 2 {
                    let mut items = q.not_full.wait_while(q.items.lock(), |(items, _)| items.len() >= CAPACITY);
                    items.0.push_back(p * ITEMS + i);
                    drop(items);
                    q.not_empty.notify_one();
                }
                q.items.lock().1 += 1;
                q.not_empty.notify_all();
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = queue.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let mut items = q.not_empty.wait_while(q.items.lock(), |(items, done)| items.is_empty() && *done < 2);
                    match items.0.pop_front() {
                        Some(item) => {
                            drop(items);
                            q.not_full.notify_one();
                            got.push(item);
                        }
                        None => return got,
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join();
    }
    let mut all: Vec<u64> = consumers.into_iter().flat_map(|c| c.join()).collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..2u64).flat_map(|p| (0..ITEMS / 2).map(move |i| p * ITEMS + i)).collect();
    if all == expected { Ok(format!("{} items, each once", all.len())) } else { Err(format!("consumed {} items, not each once", all.len())) }
}

/// A thread that never yields must be preempted (rr) so that `main` keeps making progress.
fn preempt() -> Check {
    static STOP: AtomicBool = AtomicBool::new(false);
    static SPINS: AtomicU64 = AtomicU64::new(0);
    let busy = Builder::new().name("busy").spawn(|| {
        while !STOP.load(Ordering::Relaxed) {
            SPINS.fetch_add(1, Ordering::Relaxed);
        }
    });
    let busy = busy.map_err(|e| format!("spawn: {e}"))?;
    let switches = thread::switch_count();
    let mut rounds = 0;
    for _ in 0..5 {
        thread::yield_now(); // busy runs until its slice ends (on one CPU)
        rounds += 1;
    }
    // With several CPUs busy runs beside main on another one, and may not have started yet.
    let start = Instant::now();
    while SPINS.load(Ordering::Relaxed) == 0 && start.elapsed() < Duration::from_secs(5) {
        thread::yield_now();
    }
    STOP.store(true, Ordering::Relaxed);
    busy.join();
    let spins = SPINS.load(Ordering::Relaxed);
    if spins == 0 {
        return Err("the busy thread never ran".into());
    }
    Ok(format!("main ran {rounds} rounds beside a busy thread ({spins} spins, {} switches)", thread::switch_count() - switches))
}

/// A more urgent thread woken by its timer preempts a busy thread at once, long before the
/// (1 s, see the test) time slice would end.
fn priority() -> Check {
    static WOKE: AtomicBool = AtomicBool::new(false);
    let start = Instant::now();
    let urgent = Builder::new().name("urgent").priority(Priority(20)).spawn(|| {
        thread::sleep(Duration::from_millis(10));
        WOKE.store(true, Ordering::SeqCst);
        Instant::now()
    });
    let urgent = urgent.map_err(|e| format!("spawn: {e}"))?;
    // `main` spins without yielding; only preemption lets `urgent` run.
    while !WOKE.load(Ordering::SeqCst) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!("the urgent thread never ran ({} switches, {} timer interrupts)", thread::switch_count(), hal::irq::timer_interrupt_count()));
        }
        core::hint::spin_loop();
    }
    let latency = urgent.join() - start;
    if latency < Duration::from_millis(10) {
        return Err(format!("the urgent thread woke after {latency:?}, before its deadline"));
    }
    if latency >= Duration::from_millis(500) {
        return Err(format!("the urgent thread ran only after {latency:?}: no priority preemption"));
    }
    Ok(format!("woke and ran {latency:?} after the start of a 10 ms sleep"))
}

#[inline(never)]
fn fp_work(seed: f64, rounds: u32) -> f64 {
    let (mut a, mut b, mut c) = (seed, seed * 0.5, 1.0 / seed);
    for i in 0..rounds {
        a = a * 1.000_000_1 + b;
        b = b * 0.999_999_9 - c * 1e-9;
        c = c + f64::from(i % 7) * 1e-12 + a * 1e-15;
    }
    a + b * 3.0 + c * 7.0
}

/// Floating-point registers survive preemption: threads computing FP sequences under a short
/// time slice get bit-identical results to a run without other threads.
fn fp() -> Check {
    const ROUNDS: u32 = 300_000;
    let seeds = [1.5f64, 2.25, 3.125, 4.0625];
    let expected: Vec<u64> = seeds.iter().map(|&s| fp_work(s, ROUNDS).to_bits()).collect();
    let handles: Vec<_> = seeds.iter().map(|&s| thread::spawn(move || fp_work(s, ROUNDS).to_bits())).collect();
    let switches = thread::switch_count();
    let got: Vec<u64> = handles.into_iter().map(|h| h.join()).collect();
    let switches = thread::switch_count() - switches;
    if got == expected { Ok(format!("{} threads bit-identical across {switches} switches", seeds.len())) } else { Err(format!("results differ: {got:x?} vs {expected:x?}")) }
}

/// Compiled C code keeps live values in every vector register and below its stack pointer (the
/// red zone); interrupts and preemption must leave both intact. Three threads and `main` run a
/// probe (`libos::regcheck`) in rounds, each with its own values, while a preemptive policy with
/// a short slice switches between them. A round during which the global switch count moved was
/// interrupted by a switch away from its thread (one CPU); the check needs such rounds, so it
/// cannot pass without preemption inside the probe.
fn registers_survive_preemption(what: &str, probe: fn(u64, u64) -> Result<(), usize>) -> Check {
    const THREADS: u64 = 3;
    const ROUNDS: u64 = 40;
    const SPINS: u64 = 500_000;
    fn rounds(id: u64, probe: fn(u64, u64) -> Result<(), usize>) -> Result<u64, String> {
        let mut preempted = 0;
        for round in 0..ROUNDS {
            let before = thread::switch_count();
            probe(id << 32 | round, SPINS).map_err(|changed| format!("thread {id} round {round}: {changed} changed"))?;
            preempted += u64::from(thread::switch_count() != before);
        }
        Ok(preempted)
    }
    let handles: Vec<_> = (1..=THREADS).map(|id| thread::spawn(move || rounds(id, probe))).collect();
    let mine = rounds(0, probe);
    let mut preempted = 0;
    for result in handles.into_iter().map(|h| h.join()).chain([mine]) {
        preempted += result.map_err(|e| format!("{what}: {e}"))?;
    }
    if preempted < THREADS {
        return Err(format!("only {preempted} of {} rounds were preempted: nothing tested", (THREADS + 1) * ROUNDS));
    }
    Ok(format!("intact in {} rounds on {} threads, {preempted} of them preempted", (THREADS + 1) * ROUNDS, THREADS + 1))
}

/// Sleepers wake in deadline order, never before their deadline. (Deadlines are fixed from one
/// start instant, so a host stall while the threads start cannot reorder them.)
fn sleep() -> Check {
    let order = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let handles: Vec<_> = [30u64, 10, 50, 20]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            thread::spawn(move || {
                let deadline = start + Duration::from_millis(ms);
                thread::sleep_until(deadline);
                let on_time = Instant::now() >= deadline;
                order.lock().push(ms);
                on_time
            })
        })
        .collect();
    let on_time = handles.into_iter().all(|h| h.join());
    let order = order.lock().clone();
    if order != [10, 20, 30, 50] {
        return Err(format!("woke in order {order:?}"));
    }
    if !on_time {
        return Err("a thread woke before its deadline".into());
    }
    let elapsed = start.elapsed();
    if elapsed < Duration::from_millis(50) {
        return Err(format!("all sleeps done after {elapsed:?}, before the longest deadline"));
    }
    Ok(format!("order {order:?} in {elapsed:?}"))
}

/// `sync::wake_by` moves a parked thread's wake-up earlier without waking it: a thread parked
/// for 60 s (or with no deadline) wakes about 20 ms after it was told to, a later deadline does
/// not postpone that, and a thread that is not parked is left alone (`false`).
fn wake_by() -> Check {
    use libos::sync::{ThreadId, current_thread, park, park_until, wake_by};
    let mut report = Vec::new();
    for with_deadline in [true, false] {
        let parked: Arc<Mutex<Option<ThreadId>>> = Arc::default();
        let sleeper = {
            let parked = parked.clone();
            thread::spawn(move || {
                *parked.lock() = Some(current_thread());
                let start = Instant::now();
                match with_deadline {
                    true => park_until(start + Duration::from_secs(60)),
                    false => park(),
                }
                // A park may end early (a stale token): park again (bounded, so that a lost
                // wake-up fails the check as "late" instead of hanging it).
                while start.elapsed() < Duration::from_millis(10) {
                    park_until(start + Duration::from_secs(60));
                }
                Instant::now()
            })
        };
        let id = loop {
            if let Some(id) = *parked.lock() {
                break id;
            }
            thread::sleep(Duration::from_millis(1));
        };
        // Once it is parked, `wake_by` takes; until then it says no.
        let told = Instant::now();
        let deadline = loop {
            let deadline = Instant::now() + Duration::from_millis(20);
            if wake_by(id, deadline) {
                break deadline;
            }
            if told.elapsed() > Duration::from_secs(10) {
                return Err("the sleeper never parked".into());
            }
            thread::sleep(Duration::from_millis(1));
        };
        if !wake_by(id, Instant::now() + Duration::from_secs(120)) {
            return Err("a later deadline for a parked thread was refused".into());
        }
        let woke = sleeper.join();
        if woke < deadline {
            return Err(format!("woke {:?} before the deadline it was given", deadline - woke));
        }
        let late = woke - deadline;
        // Far from the 60 s (or never) it parked for; generous for TCG on a loaded host.
        if late > Duration::from_secs(5) {
            return Err(format!("woke {late:?} after the deadline it was given"));
        }
        report.push(format!("{}: woke {late:?} after", if with_deadline { "park_until(60 s)" } else { "park()" }));
    }
    if wake_by(current_thread(), Instant::now()) {
        return Err("wake_by took a running thread".into());
    }
    Ok(report.join(", "))
}

/// `join` returns each closure's value, also for a thread that finished long before.
fn join() -> Check {
    let handles: Vec<_> = (1..=10u64).map(|i| thread::spawn(move || i * i)).collect();
    let early = Builder::new().name("early").spawn(|| String::from("done")).map_err(|e| format!("spawn: {e}"))?;
    // Let it finish before joining (a generous bound: TCG on a busy host can stall for a while).
    let start = Instant::now();
    while !early.is_finished() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("a trivial thread did not finish within 10 s".into());
        }
        thread::sleep(Duration::from_millis(1));
    }
    let name = String::from(early.thread().name().unwrap_or("?"));
    let text = early.join();
    let sum: u64 = handles.into_iter().map(|h| h.join()).sum();
    if sum != 385 || text != "done" || name != "early" {
        return Err(format!("sum {sum}, text {text:?}, name {name:?}"));
    }
    // A join with a deadline gives up (and hands the handle back) while the thread sleeps.
    let sleeper = thread::spawn(|| {
        thread::sleep(Duration::from_millis(20));
        7u32
    });
    let sleeper = match sleeper.join_until(Instant::now() + Duration::from_millis(1)) {
        Ok(_) => return Err("join_until returned before the thread finished".into()),
        Err((errno, handle)) if errno == libos::Errno::ETIMEDOUT => handle,
        Err((errno, _)) => return Err(format!("join_until failed with {errno}")),
    };
    if sleeper.join() != 7 {
        return Err("the sleeper's value got lost".into());
    }
    let bad = Builder::new().stack_size(1).spawn(|| ());
    if bad.is_ok() {
        return Err("a 1-byte stack was accepted".into());
    }
    Ok(format!("sum of squares {sum}, finished thread joined; bad stack size: {}", bad.err().map(|e| e.name()).unwrap_or("?")))
}

/// Thread-local keys: each thread sees only its own value.
fn tls() -> Check {
    static KEY: Key<u64> = Key::new();
    KEY.set(1);
    let other = thread::spawn(|| {
        let before = KEY.with(|v| v.copied());
        KEY.set(2);
        thread::yield_now();
        (before, KEY.with(|v| v.copied()))
    })
    .join();
    let mine = KEY.with(|v| v.copied());
    if other == (None, Some(2)) && mine == Some(1) { Ok("per-thread values".into()) } else { Err(format!("other thread saw {other:?}, main {mine:?}")) }
}

/// A semaphore hands out exactly its permits.
fn semaphore() -> Check {
    static INSIDE: AtomicU64 = AtomicU64::new(0);
    static MAX: AtomicU64 = AtomicU64::new(0);
    let semaphore = Arc::new(Semaphore::new(2));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let s = semaphore.clone();
            thread::spawn(move || {
                s.acquire();
                let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                MAX.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(2));
                INSIDE.fetch_sub(1, Ordering::SeqCst);
                s.release();
            })
        })
        .collect();
    for h in handles {
        h.join();
    }
    let max = MAX.load(Ordering::SeqCst);
    if (1..=2).contains(&max) { Ok(format!("at most 2 holders (max {max})")) } else { Err(format!("{max} holders at once")) }
}

/// Spawning until the heap has no room for another stack fails with ENOMEM, and everything
/// works again once those threads are joined.
fn exhaustion() -> Check {
    // The threads must not run (and free their stacks) while main piles them up: all on
    // main's CPU, main pinned there too (on one CPU that is the default).
    let me = thread::current().id();
    let here = 1 << thread::current_cpu();
    thread::set_affinity(me, here).map_err(|e| format!("set_affinity: {e}"))?;
    let result = exhaust(here);
    thread::set_affinity(me, u64::MAX).map_err(|e| format!("set_affinity: {e}"))?;
    result
}

fn exhaust(cpus: u64) -> Check {
    let mut handles = Vec::new();
    let errno = loop {
        match Builder::new().stack_size(8 * 1024 * 1024).affinity(cpus).spawn(|| 1u64) {
            Ok(handle) => handles.push(handle),
            Err(errno) => break errno,
        }
        if handles.len() > 1000 {
            return Err("1000 threads with 8 MiB stacks fit in this guest?".into());
        }
    };
    if errno != libos::Errno::ENOMEM {
        return Err(format!("spawning without memory failed with {errno}, not ENOMEM"));
    }
    let count = handles.len();
    let sum: u64 = handles.into_iter().map(|h| h.join()).sum();
    if sum != count as u64 {
        return Err(format!("{count} threads returned {sum}"));
    }
    let again = Builder::new().stack_size(8 * 1024 * 1024).spawn(|| 5u8).map_err(|e| format!("after joining: {e}"))?;
    if again.join() != 5 {
        return Err("a thread after the exhaustion returned the wrong value".into());
    }
    Ok(format!("{count} threads with 8 MiB stacks, then ENOMEM; memory back after joining"))
}

/// An idle system with one sleeping thread takes only the timer interrupts its sleeps need.
fn idle() -> Check {
    const SLEEPS: u64 = 10;
    thread::sleep(Duration::from_millis(1)); // settle any timer armed earlier
    let before = hal::irq::timer_interrupt_count();
    for _ in 0..SLEEPS {
        thread::sleep(Duration::from_millis(20));
    }
    let interrupts = hal::irq::timer_interrupt_count() - before;
    // One per sleep; a timer that fires a hair early (counter rounding) may need a second.
    if (SLEEPS..=2 * SLEEPS).contains(&interrupts) {
        Ok(format!("{interrupts} timer interrupts for {SLEEPS} sleeps of 20 ms"))
    } else {
        Err(format!("{interrupts} timer interrupts for {SLEEPS} sleeps of 20 ms"))
    }
}

/// A panic in a thread is reported with the thread's name (and stops the VM with 101).
fn panic_in_thread() -> Check {
    let handle = Builder::new().name("worker-7").spawn(|| -> u32 { panic!("deliberate panic in a thread") });
    let value = handle.map_err(|e| format!("spawn: {e}"))?.join();
    Err(format!("the panicking thread returned {value}"))
}

/// A thread overflowing its stack hits the guard page below it (a fault report naming the
/// thread, exit 102), never the memory below.
fn stack_overflow() -> Check {
    let handle = Builder::new().name("deep").stack_size(16 * 1024).spawn(libos::fault::overflow_stack);
    let value = handle.map_err(|e| format!("spawn: {e}"))?.join();
    Err(format!("the overflowing thread returned {value}"))
}

/// Counter ticks per yield between two threads (the bench converts ticks to instructions).
fn bench_yield() -> Check {
    const ROUNDS: u64 = 2_000;
    let other = thread::spawn(|| {
        for _ in 0..ROUNDS {
            thread::yield_now();
        }
    });
    thread::yield_now(); // let it start
    let start = hal::platform().counter();
    for _ in 0..ROUNDS {
        thread::yield_now();
    }
    let ticks = hal::platform().counter() - start;
    other.join();
    // Each round is two switches (to the other thread and back).
    println!("[bench] yield-switch ticks={ticks} switches={}", 2 * ROUNDS);
    Ok(String::new())
}

/// Counter ticks per spawn + join of a trivial thread.
fn bench_spawn() -> Check {
    const ROUNDS: u64 = 200;
    thread::spawn(|| ()).join(); // warm up the heap
    let start = hal::platform().counter();
    for i in 0..ROUNDS {
        let value = thread::spawn(move || i).join();
        core::hint::black_box(value);
    }
    let ticks = hal::platform().counter() - start;
    println!("[bench] spawn-join ticks={ticks} ops={ROUNDS}");
    Ok(String::new())
}

/// Timer interrupts while the only thread sleeps for one second (tickless: one).
fn bench_idle() -> Check {
    thread::sleep(Duration::from_millis(1)); // settle any timer armed earlier
    let before = hal::irq::timer_interrupt_count();
    let start = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let interrupts = hal::irq::timer_interrupt_count() - before;
    println!("[bench] idle-1s timer-interrupts={interrupts} elapsed-ns={}", start.elapsed().as_nanos());
    Ok(String::new())
}
