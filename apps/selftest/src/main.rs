//! `selftest`: checks of the platform and kernel that need a real (virtual) machine.
//!
//! Run with the names of the checks to run, in order: `./x run selftest -- timer heap clock`.
//! Each passing check prints `ok: NAME ...`; a failing one prints `FAILED: NAME ...` and the app
//! exits 1. `hang` prints `hanging until killed` and never returns. The crash checks (`panic`, `page-fault`, `null`, `write-code`, `exec-data`,
//! `stack-overflow`) must end the VM with a crash report and the kernel's exit code; if one
//! returns, that is a failure too. The QEMU integration tests in `tests/` drive this app.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use libos::time::{DateTime, Duration, Instant, SystemTime, UNIX_EPOCH};
use libos::{cpus as smp, fault, hal, println};

libos::main!(main);

/// The byte at `i` of a test pattern (a formula, so no reference copy is needed).
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 3)) as u8 | 1
}

/// The kernel's string routines (aarch64: the platform's own `memcpy`/`memmove`/`memset`;
/// x86_64: compiler_builtins', and the platform's own `memcmp`/`bcmp`): every size up to 300
/// and some large ones, every alignment of source and destination within a word, overlaps in
/// both directions; bytes around the target must stay untouched; compares find the first
/// differing byte, unsigned.
fn mem() -> Result<alloc::string::String, alloc::string::String> {
    use core::hint::black_box;
    const GUARD: u8 = 0xee;
    let sizes: Vec<usize> = (0..=300).chain([511, 512, 513, 1000, 4096 + 7, 70_000]).collect();
    let mut checked = 0u64;
    for &n in &sizes {
        for (so, dof) in [(0, 0), (1, 0), (0, 3), (5, 7), (8, 1), (7, 7)] {
            let n = black_box(n);
            let src: Vec<u8> = (0..n + so).map(pattern).collect();
            // memcpy
            let mut dst = alloc::vec![GUARD; n + dof + 16];
            dst[dof..dof + n].copy_from_slice(&src[so..so + n]);
            for (i, &b) in dst.iter().enumerate() {
                let want = if (dof..dof + n).contains(&i) { pattern(so + i - dof) } else { GUARD };
                if b != want {
                    return Err(alloc::format!("memcpy n={n} src+{so} dst+{dof}: byte {i} is {b:#x}, not {want:#x}"));
                }
            }
            // memmove, destination after and before the source, overlapping
            for (from, to) in [(so, so + dof + 1), (so + dof + 1, so)] {
                let mut buf: Vec<u8> = (0..n + 2 * (so + dof + 1)).map(pattern).collect();
                buf.copy_within(black_box(from)..from + n, black_box(to));
                for (i, &b) in buf.iter().enumerate() {
                    let want = if (to..to + n).contains(&i) { pattern(from + i - to) } else { pattern(i) };
                    if b != want {
                        return Err(alloc::format!("memmove n={n} {from}->{to}: byte {i} is {b:#x}, not {want:#x}"));
                    }
                }
            }
            // memset
            let mut buf = alloc::vec![GUARD; n + dof + 16];
            buf[dof..dof + n].fill(black_box(0x5c));
            if let Some(i) = buf.iter().enumerate().position(|(i, &b)| b != if (dof..dof + n).contains(&i) { 0x5c } else { GUARD }) {
                return Err(alloc::format!("memset n={n} dst+{dof}: byte {i} is {:#x}", buf[i]));
            }
            // memcmp (`cmp`) and bcmp (`==`): equal, then differing at the first, a middle and
            // the last byte, above and below (unsigned bytes)
            let a = &src[so..so + n];
            let mut b = alloc::vec![0u8; n + dof];
            b[dof..].copy_from_slice(a);
            let (a, b) = (black_box(a), &mut b[dof..]);
            if a.cmp(b) != core::cmp::Ordering::Equal || a != &b[..] {
                return Err(alloc::format!("memcmp n={n} a+{so} b+{dof}: equal bytes compare unequal"));
            }
            for at in [0, n / 2, n.wrapping_sub(1)].into_iter().filter(|&at| at < n) {
                for (value, want) in [(a[at].wrapping_add(0x80), a[at].cmp(&a[at].wrapping_add(0x80))), (0, a[at].cmp(&0)), (0xff, a[at].cmp(&0xff))] {
                    b[at] = value;
                    if black_box(a).cmp(b) != want || (a == &b[..]) != (want == core::cmp::Ordering::Equal) {
                        return Err(alloc::format!("memcmp n={n} a+{so} b+{dof}: byte {at} {:#x} vs {value:#x} not {want:?}", a[at]));
                    }
                    b[at] = a[at];
                }
            }
            checked += 1;
        }
    }
    Ok(alloc::format!("({checked} cases)"))
}

fn main() -> i32 {
    let args: Vec<&str> = libos::env::args().skip(1).collect();
    if args.is_empty() {
        println!("usage: selftest CHECK...   (timer heap heap-exhaustion clock wall-clock event mem cpus exit=N hang panic page-fault null write-code exec-data stack-overflow)");
        return 2;
    }
    let mut failed = 0;
    for name in args {
        let result = match name {
            "timer" => timer(),
            "heap" => heap(),
            "heap-exhaustion" => heap_exhaustion(),
            "clock" => clock(),
            "wall-clock" => wall_clock(),
            "event" => event(),
            "mem" => mem(),
            "cpus" => cpus(),
            "panic" => panic!("selftest: deliberate panic"),
            "page-fault" => crashed(fault::read_unmapped),
            "null" => crashed(fault::read_null),
            "write-code" => crashed(fault::write_to_code),
            "exec-data" => crashed(fault::execute_data),
            "stack-overflow" => crashed(fault::overflow_stack),
            "hang" => hang(),
            other => match other.strip_prefix("exit=").map(str::parse::<i32>) {
                Some(Ok(code)) => libos::process::exit(code),
                _ => Err(alloc::format!("unknown check `{other}`")),
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

type Check = Result<alloc::string::String, alloc::string::String>;

/// Never returns: for tests that kill QEMU while the guest runs.
fn hang() -> Check {
    println!("hanging until killed");
    loop {
        hal::platform().wait_for_interrupt();
    }
}

fn crashed<T>(fault: impl FnOnce() -> T) -> Check {
    fault();
    Err("the deliberate fault returned instead of ending the VM".into())
}

/// Every online CPU runs functions posted to it (`cpus::run_on`, an inter-processor
/// interrupt each) and knows who it is: `cpu_id` there is the index the call named. Then many
/// calls round-robin over the CPUs add to one counter, which must end exact; CPUs that are not
/// online are refused.
fn cpus() -> Check {
    let online: Vec<usize> = (0..smp::MAX_CPUS).filter(|&i| smp::is_online(i)).collect();
    if online.len() != smp::online_count() {
        return Err(alloc::format!("online set {online:?} but count {}", smp::online_count()));
    }
    for &cpu in &online {
        let seen = AtomicU64::new(u64::MAX);
        let record = || seen.store(hal::platform().cpu_id() as u64, Ordering::SeqCst);
        smp::run_on(cpu, &record).map_err(|e| alloc::format!("run_on({cpu}): {e}"))?;
        if seen.load(Ordering::SeqCst) != cpu as u64 {
            return Err(alloc::format!("a call to CPU {cpu} ran on CPU {}", seen.load(Ordering::SeqCst)));
        }
    }
    const ROUNDS: u64 = 500;
    let sum = AtomicU64::new(0);
    let add = || {
        sum.fetch_add(1 + hal::platform().cpu_id() as u64, Ordering::Relaxed);
    };
    for _ in 0..ROUNDS {
        for &cpu in &online {
            smp::run_on(cpu, &add).map_err(|e| alloc::format!("run_on({cpu}): {e}"))?;
        }
    }
    let expected: u64 = online.iter().map(|&cpu| ROUNDS * (1 + cpu as u64)).sum();
    if sum.load(Ordering::Relaxed) != expected {
        return Err(alloc::format!("calls added {} instead of {expected}", sum.load(Ordering::Relaxed)));
    }
    let offline = smp::online_count();
    if !smp::is_online(offline) && smp::run_on(offline, &add) != Err(libos::Errno::EINVAL) {
        return Err(alloc::format!("a call to CPU {offline}, not online, was not refused with EINVAL"));
    }
    Ok(alloc::format!("({} CPUs, {} calls each)", online.len(), ROUNDS + 1))
}

static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);

/// A one-shot timer interrupt arrives, not before its deadline, while the CPU idles in halt.
fn timer() -> Check {
    let platform = hal::platform();
    let _ = Instant::now(); // calibrates the clock, so the first measurement below is not skewed
    hal::irq::set_timer_handler(|| {
        TIMER_FIRED.fetch_add(1, Ordering::SeqCst);
    });
    let mut report = alloc::string::String::new();
    for delay_us in [100u64, 2_000, 10_000] {
        let fired_before = TIMER_FIRED.load(Ordering::SeqCst);
        let start = Instant::now();
        let deadline = start + Duration::from_micros(delay_us);
        platform.set_timer(Some(deadline));
        let mut halts = 0u64;
        while TIMER_FIRED.load(Ordering::SeqCst) == fired_before {
            if start.elapsed() > Duration::from_secs(5) {
                return Err(alloc::format!("no interrupt within 5 s of a {delay_us} us timer"));
            }
            platform.wait_for_interrupt();
            halts += 1;
        }
        let woke = Instant::now();
        let state = platform.disable_interrupts();
        platform.restore_interrupts(state);
        if woke < deadline {
            return Err(alloc::format!("{delay_us} us timer fired {:?} early", deadline - woke));
        }
        report += &alloc::format!("[{delay_us} us: woke after {:?}, {halts} halt(s)] ", woke - start);
    }
    // A disarmed timer stays quiet.
    platform.set_timer(Some(Instant::now() + Duration::from_micros(500)));
    platform.set_timer(None);
    let fired = TIMER_FIRED.load(Ordering::SeqCst);
    let until = Instant::now() + Duration::from_millis(3);
    while Instant::now() < until {
        core::hint::spin_loop();
    }
    if TIMER_FIRED.load(Ordering::SeqCst) != fired {
        return Err("a disarmed timer fired".into());
    }
    Ok(report)
}

static EVENT: libos::sync::Event = libos::sync::Event::new();

/// "Block until an interrupt wakes me" without a scheduler: `Event::wait` halts the CPU until
/// the timer interrupt's handler signals the event (the fallback of the core scheduler hook).
fn event() -> Check {
    let platform = hal::platform();
    let _ = Instant::now(); // calibrates the clock
    hal::irq::set_timer_handler(|| EVENT.signal());
    let start = Instant::now();
    let deadline = start + Duration::from_millis(2);
    platform.set_timer(Some(deadline));
    EVENT.wait();
    let woke = Instant::now();
    if woke < deadline {
        return Err(alloc::format!("woke {:?} before the interrupt's deadline", deadline - woke));
    }
    // A deadline wait with no signal times out instead of hanging (the fallback arms the timer
    // for the deadline; its interrupt must not signal the event now).
    hal::irq::set_timer_handler(|| {});
    let signalled = EVENT.wait_until(Instant::now() + Duration::from_millis(1));
    if signalled {
        return Err("an unsignalled event reported a signal".into());
    }
    Ok(alloc::format!("(woken by the timer interrupt after {:?})", woke - start))
}

/// Allocations of many sizes keep their contents, and freeing them returns the memory.
fn heap() -> Check {
    let baseline = libos::heap_stats().in_use;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for round in 0..200usize {
        let size = (round * 7919) % 65_536 + 1;
        blocks.push(alloc::vec![(round % 251) as u8; size]);
        if round % 3 == 0 {
            blocks.remove(round % blocks.len());
        }
    }
    let large = alloc::vec![0xa5u8; 1 << 20];
    for block in &blocks {
        let expected = block[0];
        if block.iter().any(|&b| b != expected) {
            return Err("a block's contents changed".into());
        }
    }
    if large.iter().any(|&b| b != 0xa5) {
        return Err("the 1 MiB block's contents changed".into());
    }
    let peak = libos::heap_stats().in_use;
    drop(blocks);
    drop(large);
    let after = libos::heap_stats().in_use;
    if after != baseline {
        return Err(alloc::format!("{baseline} bytes in use before, {after} after freeing everything"));
    }
    Ok(alloc::format!("(peak {} KiB in use, back to {baseline} bytes)", peak / 1024))
}

/// Asking for more memory than exists fails cleanly instead of crashing.
fn heap_exhaustion() -> Check {
    let stats = libos::heap_stats();
    let mut huge: Vec<u8> = Vec::new();
    match huge.try_reserve_exact(stats.claimed as usize + 1) {
        Ok(()) => Err("reserving more than the whole heap succeeded".into()),
        Err(_) => Ok(alloc::format!("(reserving {} KiB failed cleanly)", stats.claimed / 1024 + 1)),
    }
}

/// The clock is monotonic and agrees with itself over a busy-waited millisecond.
/// The wall clock: prints its time (seconds since 1970, for the host to compare with its own)
/// and where it came from, and checks that it advances with the monotonic clock and can be set.
fn wall_clock() -> Check {
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_err(|e| alloc::format!("before 1970: {e}"));
    let _ = Instant::now(); // calibrates the clock
    // The wall-clock interval lies inside the monotonic one, so it may only be shorter.
    let mono_start = Instant::now();
    let wall_start = SystemTime::now();
    while mono_start.elapsed() < Duration::from_millis(10) {}
    let wall_end = SystemTime::now();
    let mono_end = Instant::now();
    let wall = wall_end.duration_since(wall_start).map_err(|e| alloc::format!("the wall clock went backwards: {e}"))?;
    let mono = mono_end - mono_start;
    if wall > mono || mono - wall > Duration::from_millis(1) {
        return Err(alloc::format!("over {mono:?} of monotonic time the wall clock advanced {wall:?}"));
    }
    // Stepping the clock a day ahead and back again.
    let day = Duration::from_secs(86_400);
    libos::time::set_system_time(SystemTime::now() + day);
    let ahead = since_epoch(SystemTime::now())?.saturating_sub(since_epoch(wall_end)?);
    libos::time::set_system_time(SystemTime::now() - day);
    if !(day..day + Duration::from_secs(1)).contains(&ahead) {
        return Err(alloc::format!("set a day ahead, the clock moved {ahead:?}"));
    }
    let now = since_epoch(SystemTime::now())?.as_secs();
    Ok(alloc::format!(
        "{now} s since 1970 ({} UTC, from {:?}; advanced {wall:?} in {mono:?} monotonic)",
        DateTime::from_unix_seconds(now),
        libos::time::wall_clock_source()
    ))
}

fn clock() -> Check {
    let _ = Instant::now(); // calibrates the clock
    let start = Instant::now();
    let mut last = start;
    let mut reads = 0u64;
    while last - start < Duration::from_millis(1) {
        let now = Instant::now();
        if now < last {
            return Err(alloc::format!("time went backwards: {now:?} after {last:?}"));
        }
        last = now;
        reads += 1;
    }
    let frequency = hal::platform().counter_frequency();
    if frequency < 1_000_000 {
        return Err(alloc::format!("implausible counter frequency {frequency} Hz"));
    }
    Ok(alloc::format!("({reads} monotonic reads over 1 ms; counter at {frequency} Hz)"))
}
