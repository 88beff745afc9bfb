//! The kernel heap under threads on several CPUs: a check that blocks move between CPUs intact
//! and all come back, and the benchmarks of `./x bench smp` (single-thread cost of an
//! allocation under icount; wall time of an allocation-heavy job on 1 and 2 vCPUs).

use crate::Check;
use crate::smp::{WATCHDOG, cpus, join};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos::sync::{Condvar, Mutex};
use libos::thread::{self, Builder};
use libos::time::Instant;

/// Sizes the check cycles through: every size class of the per-CPU caches, odd sizes, and one
/// larger than the largest class (served by talc directly).
const SIZES: [usize; 9] = [8, 24, 48, 100, 200, 500, 1000, 2000, 3000];

/// Sizes the benchmarks cycle through: small blocks (what the caches serve; a larger block
/// takes talc's lock either way).
const SMALL: [usize; 8] = [8, 24, 48, 100, 200, 500, 1000, 2000];

/// A block of `size` bytes, each byte a function of `seed` and its index.
fn filled(size: usize, seed: u64) -> Vec<u8> {
    (0..size)
        .map(|i| (seed as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

fn intact(block: &[u8], seed: u64) -> bool {
    block
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (seed as usize).wrapping_mul(31).wrapping_add(i) as u8)
}

/// One thread per CPU allocates blocks of every size, fills them, and hands each to the thread
/// of the next CPU, which checks and frees it (so most blocks are freed on another CPU than the
/// one that allocated them, and land in that CPU's cache). Every block must be intact, and after
/// a second round the heap's usage must be back where the first left it (the first warms up
/// what grows once: run queues, the caches' lists).
pub fn smp_heap() -> Check {
    let cpus = cpus()?;
    hand_blocks_around(&cpus)?;
    let baseline = libos::heap_stats().in_use;
    let checked = hand_blocks_around(&cpus)?;
    // A finished thread's own memory goes back when its CPU next switches, which may come a
    // little after the join: look again for up to a second. The same holds for the first
    // round's threads when the baseline is read, so usage may end below it (by a control
    // block); above it is a leak.
    let deadline = Instant::now() + libos::time::Duration::from_secs(1);
    let mut after = libos::heap_stats().in_use;
    while after > baseline && Instant::now() < deadline {
        thread::sleep(libos::time::Duration::from_millis(10));
        after = libos::heap_stats().in_use;
    }
    if after > baseline {
        return Err(format!(
            "{baseline} bytes in use before, {after} a second after every block was freed"
        ));
    }
    Ok(format!(
        "{checked} blocks handed between {} CPUs, all intact; usage back to {after} bytes (before: {baseline})",
        cpus.len()
    ))
}

/// One round of [`smp_heap`]: how many blocks arrived intact.
fn hand_blocks_around(cpus: &[usize]) -> Result<u64, alloc::string::String> {
    const BLOCKS: u64 = 2_000;
    // Mailbox `i`: blocks for the thread on the `i`-th CPU, with their seeds.
    type Mailbox = (Mutex<Vec<(u64, Vec<u8>)>>, Condvar);
    let mailboxes: Arc<Vec<Mailbox>> = Arc::new(
        cpus.iter()
            .map(|_| (Mutex::new(Vec::new()), Condvar::new()))
            .collect(),
    );
    let handles: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(slot, &cpu)| {
            let mailboxes = mailboxes.clone();
            let next = (slot + 1) % mailboxes.len();
            Builder::new().affinity(1 << cpu).spawn(move || -> Result<u64, alloc::string::String> {
                let (mut sent, mut checked) = (0, 0);
                let deadline = Instant::now() + WATCHDOG;
                while sent < BLOCKS || checked < BLOCKS {
                    if sent < BLOCKS {
                        let seed = (slot as u64) << 32 | sent;
                        let block = filled(SIZES[sent as usize % SIZES.len()], seed);
                        let (queue, ready) = &mailboxes[next];
                        queue.lock().push((seed, block));
                        ready.notify_one();
                        sent += 1;
                    }
                    let (queue, ready) = &mailboxes[slot];
                    let mut inbox = queue.lock();
                    if inbox.is_empty() && sent == BLOCKS && checked < BLOCKS {
                        let (guard, timed_out) = ready.wait_until(inbox, deadline);

                        if timed_out && guard.is_empty() {
                            return Err(format!("CPU {cpu}: {checked} of {BLOCKS} blocks arrived within {WATCHDOG:?}"));
                        }
                        inbox = guard;
                    }
                    for (seed, block) in inbox.drain(..) {
                        if !intact(&block, seed) {
                            return Err(format!("CPU {cpu}: block {seed:#x} of {} bytes changed", block.len()));
                        }
                        checked += 1;
                    }
                }
                Ok(checked)
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("spawn: {e}"))?;
    let mut checked = 0;
    for handle in handles {
        checked += join(handle, "a heap thread")??;
    }
    Ok(checked)
}

/// `[bench] alloc ticks=T ops=N`: an allocation and its free, N times on one thread, over
/// [`SMALL`] in turn.
pub fn bench_alloc() -> Check {
    const ROUNDS: u64 = 8_000;
    let mut warm: Vec<Vec<u8>> = SMALL.iter().map(|&size| Vec::with_capacity(size)).collect();
    warm.clear();
    let start = libos::hal::platform().counter();
    for round in 0..ROUNDS {
        let block: Vec<u8> = Vec::with_capacity(SMALL[round as usize % SMALL.len()]);
        core::hint::black_box(&block);
    }
    let ticks = libos::hal::platform().counter() - start;
    libos::println!("[bench] alloc ticks={ticks} ops={ROUNDS}");
    Ok(alloc::string::String::new())
}

/// `[bench] wall-ns: W` and `[bench] ops: N`: `threads` threads each allocate 16 small blocks
/// of mixed sizes ([`SMALL`]), touch them and free them, `rounds` times; W is the wall time of the whole job, N the
/// allocations (`./x bench smp` runs it on 1 and 2 vCPUs, with the per-CPU caches on and off).
pub fn bench_alloc_parallel(threads: usize, rounds: u64) -> Check {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut held: Vec<Vec<u8>> = Vec::with_capacity(16);
                let mut sum = 0u64;
                for round in 0..rounds {
                    for i in 0..16 {
                        let mut block =
                            Vec::with_capacity(SMALL[(round as usize + i + t) % SMALL.len()]);
                        block.push(round as u8);
                        held.push(block);
                    }
                    sum += held.drain(..).map(|b| u64::from(b[0])).sum::<u64>();
                }
                sum
            })
        })
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += join(handle, "an allocating thread")?;
    }
    let wall = start.elapsed();
    let expected: u64 = threads as u64 * (0..rounds).map(|r| 16 * u64::from(r as u8)).sum::<u64>();
    if sum != expected {
        return Err(format!(
            "blocks lost their first byte: sum {sum}, want {expected}"
        ));
    }
    libos::println!(
        "[bench] wall-ns: {}\n[bench] ops: {}",
        wall.as_nanos(),
        threads as u64 * rounds * 16
    );
    Ok(alloc::string::String::new())
}

