//! Checks that need several CPUs (`./x run threads --cpus 4 -- smp-counter ...`): each fails
//! with a clear message on a machine of one CPU.
//!
//! Every wait has a deadline (a watchdog): a lost wake-up or a deadlock fails the check with a
//! report instead of hanging the test.

use crate::Check;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use libos::sync::{Condvar, Mutex};
use libos::thread::{self, Builder, JoinHandle};
use libos::time::{Duration, Instant};

/// How long any one wait of these checks may take before it counts as hung (TCG on a loaded
/// 2-core host is slow, but not this slow).
pub(crate) const WATCHDOG: Duration = Duration::from_secs(60);

/// The CPUs that run threads, as indexes; an error below two.
pub(crate) fn cpus() -> Result<Vec<usize>, alloc::string::String> {
    let set = thread::cpus();
    let cpus: Vec<usize> = (0..64).filter(|cpu| set & (1 << cpu) != 0).collect();
    if cpus.len() < 2 {
        return Err(format!("needs at least 2 CPUs that run threads, has {cpus:?} (boot with --cpus N)"));
    }
    Ok(cpus)
}

/// Joins `handle` within [`WATCHDOG`], naming `what` if it hangs.
pub(crate) fn join<T>(handle: JoinHandle<T>, what: &str) -> Result<T, alloc::string::String> {
    handle.join_until(Instant::now() + WATCHDOG).map_err(|(e, _)| format!("{what} did not finish within {WATCHDOG:?} ({e})"))
}

/// One thread per CPU adds to an atomic counter and to a counter behind a mutex: both end exact;
/// then two threads pinned to two CPUs prove they run at the same time ([`handshake`]).
pub fn counter() -> Check {
    const ATOMIC_ADDS: u64 = 200_000;
    const LOCKED_ADDS: u64 = 20_000;
    let cpus = cpus()?;
    let atomic = Arc::new(AtomicU64::new(0));
    let locked = Arc::new(Mutex::new(0u64));
    let running = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = cpus
        .iter()
        .map(|_| {
            let (atomic, locked, running, most_at_once, seen) =
                (atomic.clone(), locked.clone(), running.clone(), most_at_once.clone(), seen.clone());
            thread::spawn(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most_at_once.fetch_max(now, Ordering::SeqCst);
                for i in 0..ATOMIC_ADDS {
                    atomic.fetch_add(1, Ordering::Relaxed);
                    if i % 1024 == 0 {
                        seen.fetch_or(1 << thread::current_cpu(), Ordering::Relaxed);
                    }
                }
                for _ in 0..LOCKED_ADDS {
                    *locked.lock() += 1;
                }
                seen.fetch_or(1 << thread::current_cpu(), Ordering::Relaxed);
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for handle in handles {
        join(handle, "a counting thread")?;
    }
    let n = cpus.len() as u64;
    let (atomic, locked) = (atomic.load(Ordering::SeqCst), *locked.lock());
    if atomic != n * ATOMIC_ADDS || locked != n * LOCKED_ADDS {
        return Err(format!("atomic {atomic} (want {}), mutex {locked} (want {})", n * ATOMIC_ADDS, n * LOCKED_ADDS));
    }
    let seen = seen.load(Ordering::SeqCst);
    let rounds = handshake(cpus[0], cpus[cpus.len() - 1])?;
    Ok(format!(
        "{n} threads, atomic {atomic}, mutex {locked}, CPUs seen {seen:#b}, at most {} at once; {rounds} spin hand-overs between two CPUs",
        most_at_once.load(Ordering::SeqCst)
    ))
}

/// Proof of simultaneous execution: two threads pinned to CPUs `a` and `b` hand a turn back and
/// forth by spinning on one atomic, never yielding or blocking. A spinning thread keeps its CPU
/// (no other thread is pinned there), so every hand-over needs the other CPU running at the
/// same time; on one CPU this could not finish (the watchdog reports it).
fn handshake(a: usize, b: usize) -> Result<u64, alloc::string::String> {
    const ROUNDS: u64 = 500;
    let turn = Arc::new(AtomicU64::new(0));
    let player = |cpu: usize, parity: u64| {
        let turn = turn.clone();
        Builder::new()
            .name(format!("spin-{cpu}"))
            .affinity(1 << cpu)
            .spawn(move || -> Result<(), alloc::string::String> {
                let deadline = Instant::now() + WATCHDOG;
                for round in 0..ROUNDS {
                    let mine = 2 * round + parity;
                    let mut spins = 0u64;
                    while turn.load(Ordering::Acquire) != mine {
                        spins += 1;
                        if spins % 4096 == 0 && Instant::now() > deadline {
                            return Err(format!("CPU {cpu} waited {WATCHDOG:?} for its turn {mine}: the other CPU did not run"));
                        }
                        core::hint::spin_loop();
                    }
                    if thread::current_cpu() != cpu {
                        return Err(format!("a thread pinned to CPU {cpu} ran on CPU {}", thread::current_cpu()));
                    }
                    turn.store(mine + 1, Ordering::Release);
                }
                Ok(())
            })
            .map_err(|e| format!("spawn: {e}"))
    };
    let (first, second) = (player(a, 0)?, player(b, 1)?);
    join(first, "a spinning thread")??;
    join(second, "a spinning thread")??;
    Ok(ROUNDS)
}

/// Two threads pinned to different CPUs hand a token back and forth through a mutex and a
/// condition variable: every hand-over wakes a thread on the other CPU.
pub fn ping_pong() -> Check {
    const ROUNDS: u64 = 2_000;
    let cpus = cpus()?;
    let (a, b) = (cpus[0], cpus[cpus.len() - 1]);
    let state = Arc::new((Mutex::new(0u64), Condvar::new()));
    let player = |me: usize, parity: u64| {
        let state = state.clone();
        Builder::new()
            .name(format!("ping-pong-{me}"))
            .affinity(1 << me)
            .spawn(move || -> Result<(), alloc::string::String> {
                let (token, turn) = &*state;
                let mut value = token.lock();
                while *value < ROUNDS {
                    if *value % 2 == parity {
                        if thread::current_cpu() != me {
                            return Err(format!("a thread pinned to CPU {me} ran on CPU {}", thread::current_cpu()));
                        }
                        *value += 1;
                        turn.notify_all();
                    } else {
                        let deadline = Instant::now() + WATCHDOG;
                        let (guard, timed_out) = turn.wait_until(value, deadline);
                        value = guard;
                        if timed_out && *value % 2 != parity {
                            return Err(format!("lost wake-up: the token stayed at {} for {WATCHDOG:?}", *value));
                        }
                    }
                }
                Ok(())
            })
            .map_err(|e| format!("spawn: {e}"))
    };
    let (first, second) = (player(a, 0)?, player(b, 1)?);
    join(first, "the first player")??;
    join(second, "the second player")??;
    Ok(format!("{ROUNDS} hand-overs between CPU {a} and CPU {b}"))
}

/// A thread that spins without end does not stop its siblings: one pinned beside it on its CPU
/// gets the CPU by preemption (that CPU's time slice; not under `sched=coop`, which never
/// preempts), and threads on the other CPUs run.
pub fn spin() -> Check {
    let cpus = cpus()?;
    let spin_cpu = cpus[cpus.len() - 1];
    static STOP: AtomicBool = AtomicBool::new(false);
    STOP.store(false, Ordering::SeqCst);
    let spinner = Builder::new()
        .name("spinner")
        .affinity(1 << spin_cpu)
        .spawn(|| {
            while !STOP.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        })
        .map_err(|e| format!("spawn: {e}"))?;
    // Give the spinner time to take its CPU.
    thread::sleep(Duration::from_millis(20));
    let preemptive = thread::policy_name() != "coop";
    let neighbour = Builder::new()
        .name("neighbour")
        .affinity(1 << spin_cpu)
        .spawn(move || {
            let mut sum = 0u64;
            for i in 0..100_000u64 {
                sum = sum.wrapping_add(i);
            }
            (sum, thread::current_cpu())
        })
        .map_err(|e| format!("spawn: {e}"))?;
    let others: Vec<_> = (0..cpus.len()).map(|i| thread::spawn(move || (0..50_000u64).fold(i as u64, |s, x| s ^ x))).collect();
    let outcome = (|| {
        for other in others {
            join(other, "a thread on another CPU")?;
        }
        if !preemptive {
            return Ok(Some(neighbour));
        }
        let (sum, ran_on) = join(neighbour, "the thread beside the spinner (was the spinner preempted?)")?;
        if sum != 4_999_950_000 || ran_on != spin_cpu {
            return Err(format!("the neighbour summed {sum} on CPU {ran_on} (pinned to {spin_cpu})"));
        }
        Ok(None)
    })();
    STOP.store(true, Ordering::SeqCst);
    join(spinner, "the spinner after it was told to stop")?;
    if let Some(neighbour) = outcome? {
        join(neighbour, "the thread beside the spinner, once the spinner stopped")?;
        return Ok(format!("{} threads on the other CPUs finished beside a spinner on CPU {spin_cpu} (coop: its neighbour waited)", cpus.len()));
    }
    Ok(format!("a thread beside a spinner on CPU {spin_cpu} and {} others finished", cpus.len()))
}

/// Affinity is honoured: a thread pinned to one CPU is found only there across sleeps and
/// yields, moves when its set changes, and a set without a running CPU is refused.
pub fn affinity() -> Check {
    let cpus = cpus()?;
    let (first, last) = (cpus[0], cpus[cpus.len() - 1]);
    let pinned = Builder::new()
        .name("pinned")
        .affinity(1 << last)
        .spawn(move || -> Result<(), alloc::string::String> {
            for round in 0..50 {
                if thread::current_cpu() != last || thread::affinity() != 1 << last {
                    return Err(format!("round {round}: on CPU {} with set {:#b}", thread::current_cpu(), thread::affinity()));
                }
                if round % 2 == 0 { thread::yield_now() } else { thread::sleep(Duration::from_micros(200)) }
            }
            thread::set_affinity(thread::current().id(), 1 << first).map_err(|e| format!("set_affinity: {e}"))?;
            if thread::current_cpu() != first {
                return Err(format!("after moving to CPU {first} it runs on CPU {}", thread::current_cpu()));
            }
            Ok(())
        })
        .map_err(|e| format!("spawn: {e}"))?;
    join(pinned, "the pinned thread")??;
    let unknown_cpu = !thread::cpus();
    if unknown_cpu != 0 {
        match Builder::new().affinity(unknown_cpu).spawn(|| ()) {
            Err(libos::Errno::EINVAL) => {}
            Err(e) => return Err(format!("a set of no running CPU failed with {e}, not EINVAL")),
            Ok(_) => return Err("a set of no running CPU was accepted".into()),
        }
    }
    Ok(format!("pinned to CPU {last} for 50 switches, then moved to CPU {first}"))
}

/// Thousands of short threads spawned and joined, and wake-ups across CPUs, with no thread lost
/// and no deadlock.
pub fn stress() -> Check {
    const THREADS: u64 = 2_000;
    const BATCH: u64 = 50;
    let cpus = cpus()?;
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for batch in 0..THREADS / BATCH {
        let handles: Vec<_> = (0..BATCH)
            .map(|i| {
                let total = total.clone();
                thread::spawn(move || {
                    if i % 3 == 0 {
                        thread::yield_now();
                    }
                    total.fetch_add(batch * BATCH + i, Ordering::Relaxed);
                    thread::current_cpu()
                })
            })
            .collect();
        for handle in handles {
            join(handle, "a short thread")?;
        }
    }
    let want = THREADS * (THREADS - 1) / 2;
    if total.load(Ordering::SeqCst) != want {
        return Err(format!("the threads added {} instead of {want}", total.load(Ordering::SeqCst)));
    }
    // Wake-ups: a producer on one CPU, consumers everywhere, through one mutex and condvar.
    const ITEMS: u64 = 5_000;
    let queue = Arc::new((Mutex::new((Vec::<u64>::new(), false)), Condvar::new()));
    let consumed = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = cpus
        .iter()
        .map(|_| {
            let (queue, consumed) = (queue.clone(), consumed.clone());
            thread::spawn(move || -> Result<u64, alloc::string::String> {
                let (items, ready) = &*queue;
                let mut got = 0;
                let mut guard = items.lock();
                loop {
                    if let Some(item) = guard.0.pop() {
                        consumed.fetch_add(item, Ordering::Relaxed);
                        got += 1;
                        continue;
                    }
                    if guard.1 {
                        return Ok(got);
                    }
                    let (next, timed_out) = ready.wait_until(guard, Instant::now() + WATCHDOG);
                    guard = next;
                    if timed_out && guard.0.is_empty() && !guard.1 {
                        return Err(format!("a consumer waited {WATCHDOG:?} for an item: lost wake-up"));
                    }
                }
            })
        })
        .collect();
    for item in 1..=ITEMS {
        let (items, ready) = &*queue;
        items.lock().0.push(item);
        ready.notify_one();
        if item % 100 == 0 {
            thread::yield_now();
        }
    }
    {
        let (items, ready) = &*queue;
        items.lock().1 = true;
        ready.notify_all();
    }
    let mut got = 0;
    for consumer in consumers {
        got += join(consumer, "a consumer")??;
    }
    if got != ITEMS || consumed.load(Ordering::SeqCst) != ITEMS * (ITEMS + 1) / 2 {
        return Err(format!("{got} items consumed, sum {} (want {ITEMS}, {})", consumed.load(Ordering::SeqCst), ITEMS * (ITEMS + 1) / 2));
    }
    Ok(format!("{THREADS} threads spawned and joined, {ITEMS} items through {} consumers in {:?}", cpus.len(), start.elapsed()))
}

/// `[bench] lock ticks=T ops=N`: an uncontended `Mutex` lock + unlock, N times on one thread.
pub fn bench_lock() -> Check {
    const ROUNDS: u64 = 20_000;
    let lock = Mutex::new(0u64);
    let start = libos::hal::platform().counter();
    for _ in 0..ROUNDS {
        *lock.lock() += 1;
    }
    let ticks = libos::hal::platform().counter() - start;
    if *lock.lock() != ROUNDS {
        return Err("the lock lost an increment".into());
    }
    libos::println!("[bench] lock ticks={ticks} ops={ROUNDS}");
    Ok(alloc::string::String::new())
}

/// `[bench] wake-cross ticks=T wakeups=N`: two threads pinned to two CPUs wake each other in
/// turn (`unpark`, then `park` until woken): each wake-up crosses CPUs (an inter-processor
/// interrupt to a halted CPU, its switch to the woken thread). Under icount the ticks count
/// both CPUs' instructions.
pub fn bench_wake_cross() -> Check {
    const ROUNDS: u64 = 1_000;
    let cpus = cpus()?;
    let (a, b) = (cpus[0], cpus[1]);
    // The round each thread last saw; a thread waits until the other has moved it on.
    let turn = Arc::new(AtomicU64::new(0));
    let partner = Arc::new(AtomicU64::new(u64::MAX)); // wake-b's thread id, once it runs
    let (their_turn, their_partner) = (turn.clone(), partner.clone());
    let main_id = thread::current().id();
    let other = Builder::new()
        .name("wake-b")
        .affinity(1 << b)
        .spawn(move || {
            their_partner.store(thread::current().id().0, Ordering::Release);
            for round in 0..ROUNDS {
                while their_turn.load(Ordering::Acquire) != 2 * round + 1 {
                    libos::sync::park();
                }
                their_turn.store(2 * round + 2, Ordering::Release);
                libos::sync::unpark(main_id);
            }
        })
        .map_err(|e| format!("spawn: {e}"))?;
    thread::set_affinity(main_id, 1 << a).map_err(|e| format!("set_affinity: {e}"))?;
    while partner.load(Ordering::Acquire) == u64::MAX {
        thread::yield_now();
    }
    let b_id = libos::sync::ThreadId(partner.load(Ordering::Acquire));
    let start = libos::hal::platform().counter();
    for round in 0..ROUNDS {
        turn.store(2 * round + 1, Ordering::Release);
        libos::sync::unpark(b_id);
        while turn.load(Ordering::Acquire) != 2 * round + 2 {
            libos::sync::park();
        }
    }
    let ticks = libos::hal::platform().counter() - start;
    join(other, "the woken thread")?;
    thread::set_affinity(main_id, u64::MAX).map_err(|e| format!("set_affinity: {e}"))?;
    libos::println!("[bench] wake-cross ticks={ticks} wakeups={}", 2 * ROUNDS);
    Ok(alloc::string::String::new())
}
