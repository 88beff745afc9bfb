//! Signals with honest semantics for a single-process system: `rt_sigaction`,
//! `rt_sigprocmask`, `sigaltstack`, and `kill`/`tgkill`/`tkill` to the program itself.
//!
//! A signal sent to ourselves is acted on before the sending call returns, as Linux does for
//! an unblocked signal sent to the calling thread:
//! - default action "terminate" or "core": the program ends. A shell would show exit status
//!   `128 + signal`, which the console line `posix-shim: terminated by signal N (status
//!   128+N)` reports; the VM's exit code is [`signal_exit_code`] = `64 + N`, because libos exit
//!   codes stop at 127 (x86_64's `isa-debug-exit` carries 7 bits), e.g. 79 for `SIGTERM`, 70
//!   for `SIGABRT` (`abort()`);
//! - default action "ignore" (`SIGCHLD`, `SIGURG`, `SIGWINCH`), `SIG_IGN`, and stop/continue
//!   signals (there is no job control): nothing happens;
//! - a handler: it is called on the sending thread's stack with the handler's `sa_mask` (plus
//!   the signal unless `SA_NODEFER`) blocked, then the mask is restored; `SA_RESETHAND` resets
//!   to the default first. `SA_SIGINFO` handlers get a `siginfo_t` (`si_code` `SI_USER` or
//!   `SI_TKILL`) and a null `ucontext`. `sigaltstack` is recorded but handlers run on the
//!   current stack.
//! - a blocked signal stays pending (one per number) and is acted on when unblocked.
//!
//! Asynchronous signals (timers, faults turned into `SIGSEGV`) are not generated: a fault is a
//! fatal exception reported by the kernel.

use crate::{thread, user};
use libos::sync::Mutex;
use libos::{Errno, Result};

const NSIG: usize = 64;
const SIGKILL: u64 = 9;
const SIGSTOP: u64 = 19;
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SA_SIGINFO: u64 = 4;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
const SI_USER: i32 = 0;
const SI_TKILL: i32 = -6;

/// The kernel's `struct sigaction` (as `rt_sigaction` exchanges it).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct KernelSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

struct State {
    actions: [KernelSigaction; NSIG],
    /// Signals sent while blocked by the sending thread, acted on by the first thread that
    /// unblocks them (one pending set for the program; blocked masks are per thread, see
    /// `thread::blocked_signals`).
    pending: u64,
    altstack: [u64; 3],
}

static STATE: Mutex<State> =
    Mutex::new(State { actions: [KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 }; NSIG], pending: 0, altstack: [0, 2, 0] });

fn bit(sig: u64) -> u64 {
    1 << (sig - 1)
}

fn check_signal(sig: u64) -> Result<()> {
    if sig == 0 || sig as usize > NSIG { Err(Errno::EINVAL) } else { Ok(()) }
}

/// `rt_sigaction(sig, act, oldact, sigsetsize)`.
pub fn rt_sigaction(sig: u64, act: u64, old: u64, sigsetsize: u64) -> Result<u64> {
    check_signal(sig)?;
    if sigsetsize != 8 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: checked by `user::read`; the C program vouches for the structure.
    let new = if act != 0 { Some(unsafe { user::read::<KernelSigaction>(act)? }) } else { None };
    if new.is_some() && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let mut state = STATE.lock();
    let previous = state.actions[sig as usize - 1];
    if old != 0 {
        // SAFETY: as above.
        unsafe { user::write(old, previous)? };
    }
    if let Some(new) = new {
        state.actions[sig as usize - 1] = new;
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`.
pub fn rt_sigprocmask(how: u64, set: u64, old: u64, sigsetsize: u64) -> Result<u64> {
    if sigsetsize != 8 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: as in `rt_sigaction`.
    let new = if set != 0 { Some(unsafe { user::read::<u64>(set)? }) } else { None };
    let blocked = thread::blocked_signals();
    if old != 0 {
        // SAFETY: as above.
        unsafe { user::write(old, blocked)? };
    }
    let Some(new) = new else { return Ok(0) };
    let unkillable = bit(SIGKILL) | bit(SIGSTOP);
    let blocked = match how {
        SIG_BLOCK => blocked | new,
        SIG_UNBLOCK => blocked & !new,
        SIG_SETMASK => new,
        _ => return Err(Errno::EINVAL),
    } & !unkillable;
    thread::set_blocked_signals(blocked);
    let unblocked = {
        let mut state = STATE.lock();
        let ready = state.pending & !blocked;
        state.pending &= !ready;
        ready
    };
    for sig in 1..=NSIG as u64 {
        if unblocked & bit(sig) != 0 {
            act_on(sig, SI_USER);
        }
    }
    Ok(0)
}

/// `sigaltstack(ss, old_ss)`: recorded only (handlers run on the current stack).
pub fn sigaltstack(new: u64, old: u64) -> Result<u64> {
    // SAFETY: as in `rt_sigaction`.
    let new = if new != 0 { Some(unsafe { user::read::<[u64; 3]>(new)? }) } else { None };
    let mut state = STATE.lock();
    if old != 0 {
        // SAFETY: as above.
        unsafe { user::write(old, state.altstack)? };
    }
    if let Some(stack) = new {
        const SS_DISABLE: u64 = 2;
        const MINSIGSTKSZ: u64 = 2048;
        let flags = stack[1] & 0xffff_ffff;
        if flags & !SS_DISABLE != 0 {
            return Err(Errno::EINVAL);
        }
        if flags != SS_DISABLE && stack[2] < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        state.altstack = stack;
    }
    Ok(0)
}

/// `kill(pid, sig)`: only the program itself exists (pid 1, or 0/-1 meaning "us").
pub fn kill(pid: u64, sig: u64) -> Result<u64> {
    let pid = pid as i64 as i32;
    if pid != crate::dispatch::PID as i32 && pid != 0 && pid != -1 {
        return Err(Errno::ESRCH);
    }
    send(sig, SI_USER)
}

/// `tgkill(tgid, tid, sig)` / `tkill(tid, sig)` (`tgid` 0 for `tkill`).
pub fn tgkill(tgid: u64, tid: u64, sig: u64) -> Result<u64> {
    if (tgid != 0 && tgid != crate::dispatch::PID) || (tid as i64) <= 0 {
        return Err(if (tid as i64) <= 0 || (tgid as i64) <= 0 { Errno::EINVAL } else { Errno::ESRCH });
    }
    if !thread::tid_exists(tid) {
        return Err(Errno::ESRCH);
    }
    send(sig, SI_TKILL)
}

/// Sends `SIGPIPE` to the program (a write to a pipe without readers).
pub fn raise_pipe() {
    const SIGPIPE: u64 = 13;
    let _ = send(SIGPIPE, SI_USER);
}

fn send(sig: u64, code: i32) -> Result<u64> {
    if sig == 0 {
        return Ok(0); // existence check
    }
    check_signal(sig)?;
    if thread::blocked_signals() & bit(sig) != 0 {
        STATE.lock().pending |= bit(sig);
        return Ok(0);
    }
    act_on(sig, code);
    Ok(0)
}

/// The VM exit code of a program terminated by signal `sig` (see the module docs).
pub const fn signal_exit_code(sig: u64) -> i32 {
    64 + sig as i32
}

/// What the default action of `sig` does.
fn default_terminates(sig: u64) -> bool {
    // SIGCHLD 17, SIGCONT 18, SIGSTOP 19, SIGTSTP 20, SIGTTIN 21, SIGTTOU 22, SIGURG 23,
    // SIGWINCH 28: ignore (or stop/continue, which a single program without job control ignores).
    !matches!(sig, 17..=23 | 28)
}

fn act_on(sig: u64, code: i32) {
    let (action, saved_mask) = {
        let mut state = STATE.lock();
        let action = state.actions[sig as usize - 1];
        if action.handler == SIG_DFL || action.handler == SIG_IGN {
            (action, 0)
        } else {
            if action.flags & SA_RESETHAND != 0 {
                state.actions[sig as usize - 1] = KernelSigaction::default();
            }
            let saved = thread::blocked_signals();
            thread::set_blocked_signals(saved | action.mask | if action.flags & SA_NODEFER != 0 { 0 } else { bit(sig) });
            (action, saved)
        }
    };
    match action.handler {
        SIG_IGN => {}
        SIG_DFL => {
            if default_terminates(sig) {
                libos::println!("posix-shim: terminated by signal {sig} (status {})", 128 + sig);
                crate::dispatch::exit_program(signal_exit_code(sig));
            }
        }
        handler => {
            let mut info = [0i32; 32];
            info[0] = sig as i32;
            info[2] = code;
            info[4] = crate::dispatch::PID as i32;
            if action.flags & SA_SIGINFO != 0 {
                // SAFETY: the C program installed this address as an SA_SIGINFO handler
                // (`void (*)(int, siginfo_t *, void *)`); `info` outlives the call.
                let f: extern "C" fn(i32, *mut i32, *mut u8) = unsafe { core::mem::transmute(handler as usize) };
                f(sig as i32, info.as_mut_ptr(), core::ptr::null_mut());
            } else {
                // SAFETY: the C program installed this address as a `void (*)(int)` handler.
                let f: extern "C" fn(i32) = unsafe { core::mem::transmute(handler as usize) };
                f(sig as i32);
            }
            thread::set_blocked_signals(saved_mask);
        }
    }
}
