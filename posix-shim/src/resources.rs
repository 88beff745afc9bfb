//! What a lone process asks about itself: CPU time (`getrusage`, `times`, the CPU-time clocks),
//! scheduling priority and policy (`getpriority`/`setpriority`, `sched_getscheduler`,
//! `sched_getparam`, `getcpu`), memory locking (`mlock` and its family) and its process
//! group and session (`getpgid`, `getpgrp`, `getsid`, `setpgid`, `setsid`).
//!
//! libos runs one process, so the answers are those Linux gives a process alone in its
//! session: it leads its own process group and session (pid 1), runs under `SCHED_OTHER` on the
//! CPUs the machine has (`getcpu` says which one now), and all of its memory stays resident, so
//! locking it succeeds and changes nothing. CPU time is the time the CPUs were not idle since
//! boot, all of them together: the process's, its threads' together (there is no per-thread
//! accounting yet), all of it counted as user time.

use crate::process;
use crate::user;
use core::sync::atomic::{AtomicI32, Ordering};
use libos::time::{Duration, Instant};
use libos::{Errno, Result};

/// The CPU time the process has used: boot to now on every CPU, less the time each was idle.
pub fn cpu_time() -> Duration {
    Instant::from_counter(libos::idle::busy_ticks()).since_origin()
}

/// `getrusage(who, usage)`: `RUSAGE_SELF` and `RUSAGE_THREAD` report the CPU time as user
/// time and the heap's peak as the maximum resident set; `RUSAGE_CHILDREN` is all zeros (no
/// child has run). `EINVAL` for another `who`.
pub fn getrusage(who: u64, usage: u64) -> Result<u64> {
    const RUSAGE_SELF: i64 = 0;
    const RUSAGE_CHILDREN: i64 = -1;
    const RUSAGE_THREAD: i64 = 1;
    // struct rusage: two timevals, then 14 longs (maxrss first, in KiB).
    let mut words = [0u64; 18];
    match who as i64 {
        RUSAGE_SELF | RUSAGE_THREAD => {
            let cpu = cpu_time();
            words[0] = cpu.as_secs();
            words[1] = u64::from(cpu.subsec_micros());
            words[4] = libos::heap_stats().claimed / 1024;
        }
        RUSAGE_CHILDREN => {}
        _ => return Err(Errno::EINVAL),
    }
    // SAFETY: checked by `user::write`; the C program vouches for the buffer.
    unsafe { user::write(usage, words)? };
    Ok(0)
}

/// `times(buf)`: the CPU time in clock ticks (`USER_HZ`, 100 per second) as user time, the
/// children's zero; returns the ticks since boot. A null `buf` only returns them.
pub fn times(buf: u64) -> Result<u64> {
    const USER_HZ: u64 = 100;
    let ticks = |d: Duration| d.as_millis() as u64 / (1000 / USER_HZ);
    if buf != 0 {
        let tms = [ticks(cpu_time()), 0, 0, 0];
        // SAFETY: checked by `user::write`; the C program vouches for the buffer.
        unsafe { user::write(buf, tms)? };
    }
    Ok(ticks(Instant::now().since_origin()))
}

/// The process's nice value (-20 to 19).
static NICE: AtomicI32 = AtomicI32::new(0);

const PRIO_PROCESS: u64 = 0;
const PRIO_PGRP: u64 = 1;
const PRIO_USER: u64 = 2;

/// Whether `(which, who)` names this process (its pid or 0; its group; its user, here root).
fn names_this_process(which: u64, who: u64) -> Result<bool> {
    match which {
        PRIO_PROCESS => Ok(who == 0 || who == process::pid()),
        PRIO_PGRP => Ok(who == 0 || who == process::group()),
        PRIO_USER => Ok(who == 0 || who as u32 == current_uid()),
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(feature = "fs")]
fn current_uid() -> u32 {
    crate::creds::get_id(|c| c.ruid).map_or(0, |uid| uid as u32)
}

#[cfg(not(feature = "fs"))]
fn current_uid() -> u32 {
    0
}

/// `getpriority(which, who)`: the raw system call's answer, `20 - nice` (1 to 40); `ESRCH`
/// for another process, group or user.
pub fn getpriority(which: u64, who: u64) -> Result<u64> {
    if !names_this_process(which, who)? {
        return Err(Errno::ESRCH);
    }
    Ok((20 - NICE.load(Ordering::Relaxed)) as u64)
}

/// `setpriority(which, who, prio)`: records the nice value (clamped to -20..=19, as Linux).
/// It changes nothing else: the scheduler has no priorities between threads of a program yet.
pub fn setpriority(which: u64, who: u64, prio: u64) -> Result<u64> {
    if !names_this_process(which, who)? {
        return Err(Errno::ESRCH);
    }
    NICE.store((prio as i64).clamp(-20, 19) as i32, Ordering::Relaxed);
    Ok(0)
}

/// `sched_getscheduler(pid)`: `SCHED_OTHER` (0) for this process; `ESRCH` for another,
/// `EINVAL` for a negative pid.
pub fn sched_getscheduler(pid: u64) -> Result<u64> {
    this_pid(pid).map(|()| 0)
}

/// `sched_getparam(pid, param)`: priority 0, as for every `SCHED_OTHER` thread.
pub fn sched_getparam(pid: u64, param: u64) -> Result<u64> {
    this_pid(pid)?;
    // SAFETY: checked by `user::write`; the C program vouches for the buffer.
    unsafe { user::write(param, 0i32)? };
    Ok(0)
}

fn this_pid(pid: u64) -> Result<()> {
    match pid as i64 {
        p if p < 0 => Err(Errno::EINVAL),
        0 => Ok(()),
        p if p as u64 == process::pid() => Ok(()),
        _ => Err(Errno::ESRCH),
    }
}

/// `getcpu(cpu, node, cache)`: the CPU the caller runs on now, node 0 (either pointer may be
/// null).
pub fn getcpu(cpu: u64, node: u64) -> Result<u64> {
    let here = libos::hal::platform().cpu_id() as u32;
    for (out, value) in [(cpu, here), (node, 0)] {
        if out != 0 {
            // SAFETY: checked by `user::write`; the C program vouches for the buffer.
            unsafe { user::write(out, value)? };
        }
    }
    Ok(0)
}

/// `mlock(addr, len)` / `munlock`: the range must be plausible (`ENOMEM` as Linux for one
/// that wraps or leaves the address space); the memory is resident already.
pub fn mlock(addr: u64, len: u64) -> Result<u64> {
    user::check_range(addr & !4095, len.saturating_add(addr & 4095)).map_err(|_| Errno::ENOMEM).map(|()| 0)
}

/// `mlockall(flags)`: `MCL_CURRENT`, `MCL_FUTURE`, `MCL_ONFAULT` (with one of the others).
pub fn mlockall(flags: u64) -> Result<u64> {
    const MCL_CURRENT: u64 = 1;
    const MCL_FUTURE: u64 = 2;
    const MCL_ONFAULT: u64 = 4;
    if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 || flags == MCL_ONFAULT {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `getpgid(pid)`: this process's group (1, the first process's, unless it made its own), or
/// another process's from the process host. A negative pid names no process: `ESRCH`, as
/// Linux (not the `EINVAL` of the scheduling calls).
pub fn group_of(pid: u64) -> Result<u64> {
    if (pid as i64) < 0 {
        return Err(Errno::ESRCH);
    }
    match this_pid(pid) {
        Ok(()) => Ok(process::group()),
        Err(Errno::ESRCH) => process::ask_id_of(pid, false),
        Err(e) => Err(e),
    }
}

/// `getsid(pid)`: this process's session, or another process's from the process host
/// (`ESRCH` for a negative pid, as [`group_of`]).
pub fn session_of(pid: u64) -> Result<u64> {
    if (pid as i64) < 0 {
        return Err(Errno::ESRCH);
    }
    match this_pid(pid) {
        Ok(()) => Ok(process::session()),
        Err(Errno::ESRCH) => process::ask_id_of(pid, true),
        Err(e) => Err(e),
    }
}

/// `setpgid(pid, pgid)`: decided by the process host, which knows every process's group
/// (Linux's rules). Without one this process is alone, and the same rules in Linux's order
/// leave: any other pid is `ESRCH`, a session leader cannot move (`EPERM`, so neither can
/// process 1, which leads session 1), and the only groups are its own number and the one it
/// is in (any other is `EPERM`).
pub fn setpgid(pid: u64, pgid: u64) -> Result<u64> {
    if (pgid as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    if (pid as i64) < 0 {
        return Err(Errno::ESRCH);
    }
    match process::ask_setpgid(pid, pgid) {
        Err(Errno::ENOSYS) => {}
        decided => return decided,
    }
    this_pid(pid)?;
    let me = process::pid();
    let pgid = if pgid == 0 { me } else { pgid };
    if me == process::session() || (pgid != me && pgid != process::group()) {
        return Err(Errno::EPERM);
    }
    process::set_group(pgid);
    Ok(0)
}

/// `setsid()`: a new session and group led by this process; `EPERM` when a group with its
/// number exists (it leads one), as Linux answers. The process host decides when there is one.
pub fn setsid() -> Result<u64> {
    match process::ask_setsid() {
        Err(Errno::ENOSYS) => {}
        decided => return decided,
    }
    let me = process::pid();
    if process::group() == me {
        return Err(Errno::EPERM);
    }
    process::set_session(me);
    Ok(me)
}
