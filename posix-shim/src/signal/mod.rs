//! Signals with Linux semantics for a single-process system: `rt_sigaction`,
//! `rt_sigprocmask`, `sigaltstack`, `rt_sigreturn`, `rt_sigpending`, `rt_sigsuspend`, `pause`,
//! `rt_sigtimedwait`, and `kill`/`tgkill`/`tkill` within the program.
//!
//! **Generation.** `kill` makes a signal pending for the process, `tgkill`/`tkill` (and the
//! `SIGPIPE` of a write to a pipe without readers) for one thread; timers ([`timers`],
//! feature `threads`: `alarm`, `setitimer`'s `ITIMER_REAL`, POSIX timers with `SIGEV_SIGNAL`,
//! `SIGEV_THREAD_ID` and thereby musl's `SIGEV_THREAD`) send theirs from a kernel thread, with
//! the `siginfo_t` Linux gives them (`SI_KERNEL`; `SI_TIMER` with `si_timerid`, `si_overrun`,
//! `si_value`). A signal whose action is to ignore it (`SIG_IGN`, or `SIG_DFL` for `SIGCHLD`,
//! `SIGURG`, `SIGWINCH`, `SIGCONT`) is discarded unless blocked; the stop signals are ignored
//! too (no job control). One instance of each number is pending at a time, as for Linux's
//! standard signals (real-time signals are not queued several times).
//!
//! **Delivery** happens when a thread returns from a system call, as on Linux: every pending
//! signal asks for the system-call trap's return hook (libos-core's `syscall` docs), which runs
//! [`on_return`] with the complete register frame. The same hook runs when a thread that an
//! interrupt preempted in program code resumes (the platform's preemption path, with the
//! interrupted registers), so a thread that makes no system call gets its signals too: at
//! once when a timer's signal preempts it (the timer thread runs above it), else at its next
//! preemption (the end of its time slice, when other threads are runnable; under the
//! cooperative scheduler, at its next system call). There, the lowest pending signal the thread
//! does not block is acted on: the default action ends the program (exit status 128 + N, as a
//! shell reports it, with a console line naming the signal); a handler gets a real Linux signal
//! frame on the thread's stack, or on its `sigaltstack` with `SA_ONSTACK` (see
//! [`frame`]): `siginfo_t`, a `ucontext_t` with every general register, the FP/SIMD state and
//! the previous signal mask, and a return address that calls `rt_sigreturn` (`sa_restorer`,
//! else the shim's own trampoline). `rt_sigreturn` restores all of it, so handlers may
//! `siglongjmp` out, inspect or edit their context, and nest. `SA_SIGINFO`, `SA_RESETHAND`,
//! `SA_NODEFER`, `sa_mask`, `SA_ONSTACK` and `SA_RESTART` behave as on Linux.
//!
//! **Blocking calls** (`futex` waits, `nanosleep`/`clock_nanosleep`, `poll`/`select`/`epoll`
//! waits, pipe, eventfd and timerfd reads and writes, `rt_sigsuspend`, `rt_sigtimedwait`) are
//! interrupted when a signal the thread does not block arrives while they wait: they fail with
//! the internal `ERESTARTSYS` ([`wait_interruptible`]), and as the call returns it is either
//! restarted (rewound to its system-call instruction, after the handler when one runs) or
//! fails with `EINTR`, by Linux's rules for the call and the handler's `SA_RESTART` (see
//! [`restart`]).
//!
//! **Not generated**: faults turned into `SIGSEGV`/`SIGBUS`/`SIGFPE` (a fault is a fatal
//! exception the kernel reports), and `ITIMER_VIRTUAL`/`ITIMER_PROF` (no CPU-time
//! accounting: arming them is `EINVAL`).

mod frame;
mod restart;
#[cfg(feature = "threads")]
mod timers;

#[cfg(feature = "threads")]
pub use timers::{alarm, getitimer, setitimer, timer_create, timer_delete, timer_getoverrun, timer_gettime, timer_settime};

use crate::user;
use alloc::vec::Vec;
use libos::sync::{IrqSpinLock, ThreadId, WaitQueue};
use libos::syscall::Frame;
use libos::time::Instant;
use libos::{Errno, Result};

const NSIG: u64 = 64;
const SIGKILL: u64 = 9;
const SIGSEGV: u64 = 11;
const SIGPIPE: u64 = 13;
#[cfg(feature = "processes")]
const SIGCHLD: u64 = 17;
const SIGSTOP: u64 = 19;
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTART: u64 = 0x1000_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
const MINSIGSTKSZ: u64 = 2048;
/// Signals that can be neither caught, blocked nor ignored.
const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);

const fn bit(sig: u64) -> u64 {
    1 << (sig - 1)
}

/// The kernel's `struct sigaction` (as `rt_sigaction` exchanges it).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct KernelSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// `stack_t`: `ss_sp`, `ss_flags` (an int, padded), `ss_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AltStack {
    sp: u64,
    flags: u32,
    _pad: u32,
    size: u64,
}

impl AltStack {
    const DISABLED: AltStack = AltStack { sp: 0, flags: SS_DISABLE, _pad: 0, size: 0 };

    fn enabled(&self) -> bool {
        self.flags & SS_DISABLE == 0 && self.size > 0
    }

    fn contains(&self, sp: u64) -> bool {
        self.enabled() && sp > self.sp && sp - self.sp <= self.size
    }

    /// The structure as a thread at `sp` sees it (`SS_ONSTACK` while running on it).
    fn as_seen_from(&self, sp: u64) -> AltStack {
        if self.contains(sp) { AltStack { flags: SS_ONSTACK, ..*self } } else { *self }
    }
}

/// Where a signal came from: what its `siginfo_t` says (`si_code` and the fields it selects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// `kill`: `SI_USER`, with the sender's pid and uid.
    User,
    /// `tgkill`/`tkill`, or the `SIGPIPE` of a write: `SI_TKILL`, with pid and uid.
    Tkill,
    /// The kernel itself (`alarm`, `setitimer`): `SI_KERNEL`, pid and uid 0.
    #[cfg_attr(not(feature = "threads"), expect(dead_code, reason = "only timers send it (feature `threads`)"))]
    Kernel,
    /// A POSIX timer: `SI_TIMER`, with `si_timerid`, `si_overrun` and `si_value`.
    #[cfg_attr(not(feature = "threads"), expect(dead_code, reason = "only timers send it (feature `threads`)"))]
    Timer { id: i32, value: u64 },
    /// `kill` from another process: `SI_USER`, with the sender's pid.
    #[cfg_attr(not(feature = "processes"), expect(dead_code, reason = "only the process host sends it"))]
    Process { from: u32 },
    /// A child ended (`SIGCHLD`): `CLD_EXITED` or `CLD_KILLED`, with its pid and its exit code
    /// or signal.
    #[cfg_attr(not(feature = "processes"), expect(dead_code, reason = "only the process host sends it"))]
    Child { pid: u32, code: i32, status: i32 },
}

impl Origin {
    fn code(self) -> i32 {
        match self {
            Origin::User | Origin::Process { .. } => 0,
            Origin::Tkill => -6,
            Origin::Kernel => 0x80,
            Origin::Timer { .. } => -2,
            Origin::Child { code, .. } => code,
        }
    }
}

/// What the signal layer keeps per thread.
struct ThreadSignals {
    tid: u64,
    thread: ThreadId,
    blocked: u64,
    pending: u64,
    altstack: AltStack,
    /// The mask to restore once this call's return is done (`rt_sigsuspend`, `ppoll`, ... run
    /// with a temporary mask; a handler frame records this one as the mask to return to).
    restore_mask: Option<u64>,
    /// `rt_sigreturn` was called: the return hook restores the frame from the signal frame.
    sigreturn: bool,
    /// The system call returning now was interrupted ([`restart`]): restart it or fail it.
    interrupted: Option<restart::Interrupted>,
}

struct State {
    actions: [KernelSigaction; NSIG as usize],
    /// Process-directed pending signals (`kill`).
    pending: u64,
    /// Where each pending signal came from, by number (the first sender's, while it stays
    /// pending: one instance per number).
    origins: [Origin; NSIG as usize],
    threads: Vec<ThreadSignals>,
}

impl State {
    fn me(&mut self) -> Option<&mut ThreadSignals> {
        let current = libos::sync::current_thread();
        self.threads.iter_mut().find(|t| t.thread == current)
    }

    fn is_ignored(&self, sig: u64) -> bool {
        match self.actions[sig as usize - 1].handler {
            SIG_IGN => true,
            SIG_DFL => !default_terminates(sig),
            _ => false,
        }
    }
}

/// Interrupt-safe: [`interrupted`] runs inside wait conditions, with interrupts masked.
static STATE: IrqSpinLock<State> = IrqSpinLock::new(State {
    actions: [KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 }; NSIG as usize],
    pending: 0,
    origins: [Origin::User; NSIG as usize],
    threads: Vec::new(),
});

/// `rt_sigsuspend`, `pause` and `rt_sigtimedwait` sleep here; senders wake it.
static SIGNAL_WAIT: WaitQueue = WaitQueue::new();

fn check_signal(sig: u64) -> Result<()> {
    if sig == 0 || sig > NSIG { Err(Errno::EINVAL) } else { Ok(()) }
}

fn check_sigset_size(size: u64) -> Result<()> {
    if size != 8 { Err(Errno::EINVAL) } else { Ok(()) }
}

/// The default action of `sig` ends the program (else it is ignored: `SIGCHLD` 17, `SIGCONT`
/// 18, the stop signals 19-22 without job control, `SIGURG` 23, `SIGWINCH` 28).
fn default_terminates(sig: u64) -> bool {
    !matches!(sig, 17..=23 | 28)
}

/// Registers the calling libos thread as C thread `tid`, blocking `blocked` (a new thread
/// inherits its creator's mask; its alternate stack starts disabled).
pub fn thread_started(tid: u64, blocked: u64) {
    let thread = libos::sync::current_thread();
    let mut state = STATE.lock();
    state.threads.retain(|t| t.thread != thread);
    state.threads.push(ThreadSignals {
        tid,
        thread,
        blocked: blocked & !UNBLOCKABLE,
        pending: 0,
        altstack: AltStack::DISABLED,
        restore_mask: None,
        sigreturn: false,
        interrupted: None,
    });
}

/// Forgets the calling thread (it exits); its pending signals go with it.
pub fn thread_exited() {
    let thread = libos::sync::current_thread();
    let mut state = STATE.lock();
    if let Some(i) = state.threads.iter().position(|t| t.thread == thread) {
        let gone = state.threads.swap_remove(i);
        drop(state);
        let requests = gone.pending.count_ones() + u32::from(gone.interrupted.is_some());
        for _ in 0..requests {
            libos::syscall::return_work_done();
        }
    }
}

/// The calling thread's signal sets, as `/proc/self/status` shows them, and the number of
/// the program's threads.
#[cfg(feature = "fs")]
pub fn sets_and_threads() -> (libos::fs::vfs::procfs::SignalSets, u32) {
    let mut state = STATE.lock();
    let (mut ignored, mut caught) = (0, 0);
    for (i, action) in state.actions.iter().enumerate() {
        match action.handler {
            SIG_IGN => ignored |= 1 << i,
            SIG_DFL => {}
            _ => caught |= 1 << i,
        }
    }
    let shared_pending = state.pending;
    let threads = state.threads.len() as u32;
    let (pending, blocked) = state.me().map_or((0, 0), |t| (t.pending, t.blocked));
    (libos::fs::vfs::procfs::SignalSets { pending, shared_pending, blocked, ignored, caught }, threads)
}

/// The calling thread's blocked mask.
pub fn blocked() -> u64 {
    STATE.lock().me().map_or(0, |t| t.blocked)
}

/// Whether a signal the calling thread does not block is pending for it: a blocking call
/// returns `EINTR` then ([`wait_interruptible`]). Lock-safe inside wait conditions.
fn interrupted() -> bool {
    let mut state = STATE.lock();
    let process = state.pending;
    state.me().is_some_and(|t| (t.pending | process) & !t.blocked != 0)
}

/// Whether the calling thread has a signal to take (a blocking call ends with `EINTR`): for
/// waits outside the shim, such as libos-net's (see `crate::net::install_hooks`).
pub fn has_pending_for_current() -> bool {
    interrupted()
}

/// The wait of a blocking system call: sleeps on `queue` until `ready()` holds, `deadline`
/// passes, or a signal arrives that the calling thread does not block (the sender unparks the
/// thread, and the wait's condition includes [`interrupted`]). `Ok(true)`: woken, the caller
/// re-checks its state; `Ok(false)`: the deadline passed; `Err(ERESTARTSYS)`: a signal is
/// pending. The signal is checked before sleeping, so a caller that loops (check its state,
/// then wait) returns what became ready before it reports the signal.
///
/// `ERESTARTSYS` is the "interrupted, restartable" marker ([`restart`]): the caller passes it
/// up as its error, and the dispatcher turns it into a restart of the call or `EINTR` for the
/// program, by the call's rule and the handler's `SA_RESTART`. A call that must fail with
/// `EINTR` whatever the handler's flags and that the dispatcher cannot tell by its number
/// (a socket call with `SO_RCVTIMEO`/`SO_SNDTIMEO` set) maps the marker to `EINTR` itself.
pub fn wait_interruptible(queue: &WaitQueue, mut ready: impl FnMut() -> bool, deadline: Option<Instant>) -> Result<bool> {
    if interrupted() {
        return Err(Errno::ERESTARTSYS);
    }
    let mut condition = || ready() || interrupted();
    Ok(match deadline {
        Some(deadline) => queue.wait_until_deadline(&mut condition, deadline),
        None => {
            queue.wait_until(&mut condition);
            true
        }
    })
}

/// [`wait_interruptible`] for a wait whose `deadline` comes from a timeout the program set on
/// the object (`SO_RCVTIMEO`/`SO_SNDTIMEO`; `None` when it set none): Linux never restarts a
/// call with such a timeout, so an interruption is `EINTR` then, else the restartable marker.
pub fn wait_interruptible_timed(queue: &WaitQueue, ready: impl FnMut() -> bool, deadline: Option<Instant>) -> Result<bool> {
    wait_interruptible(queue, ready, deadline).map_err(|e| if e == Errno::ERESTARTSYS && deadline.is_some() { Errno::EINTR } else { e })
}

/// Runs the rest of this system call with `mask` blocked (`ppoll`, `pselect6`, `epoll_pwait`,
/// `rt_sigsuspend`); the previous mask comes back when the call returns, after any handler
/// the call's return runs (whose frame records the previous mask), as on Linux.
pub fn set_temporary_mask(mask: u64) {
    let mut state = STATE.lock();
    let Some(me) = state.me() else { return };
    if me.restore_mask.is_none() {
        me.restore_mask = Some(me.blocked);
        libos::syscall::request_return_work();
    }
    me.blocked = mask & !UNBLOCKABLE;
}

/// `rt_sigaction(sig, act, oldact, sigsetsize)`.
pub fn rt_sigaction(sig: u64, act: u64, old: u64, sigsetsize: u64) -> Result<u64> {
    check_signal(sig)?;
    check_sigset_size(sigsetsize)?;
    // SAFETY: checked by `user::read`; the C program vouches for the structure.
    let new = if act != 0 { Some(unsafe { user::read::<KernelSigaction>(act)? }) } else { None };
    if new.is_some() && bit(sig) & UNBLOCKABLE != 0 {
        return Err(Errno::EINVAL);
    }
    let (previous, discarded) = {
        let mut state = STATE.lock();
        let previous = state.actions[sig as usize - 1];
        let mut discarded = 0;
        if let Some(new) = new {
            state.actions[sig as usize - 1] = KernelSigaction { mask: new.mask & !UNBLOCKABLE, ..new };
            // POSIX: setting an action that ignores a signal discards its pending instances.
            if state.is_ignored(sig) {
                discarded += u32::from(state.pending & bit(sig) != 0);
                state.pending &= !bit(sig);
                for t in &mut state.threads {
                    discarded += u32::from(t.pending & bit(sig) != 0);
                    t.pending &= !bit(sig);
                }
            }
        }
        (previous, discarded)
    };
    for _ in 0..discarded {
        libos::syscall::return_work_done();
    }
    if old != 0 {
        // SAFETY: as above.
        unsafe { user::write(old, previous)? };
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`. Signals it unblocks are delivered as the
/// call returns.
pub fn rt_sigprocmask(how: u64, set: u64, old: u64, sigsetsize: u64) -> Result<u64> {
    check_sigset_size(sigsetsize)?;
    // SAFETY: as in `rt_sigaction`.
    let new = if set != 0 { Some(unsafe { user::read::<u64>(set)? }) } else { None };
    if new.is_some() && how > SIG_SETMASK {
        return Err(Errno::EINVAL);
    }
    let blocked = {
        let mut state = STATE.lock();
        let Some(me) = state.me() else { return Err(Errno::ESRCH) };
        let blocked = me.blocked;
        if let Some(new) = new {
            me.blocked = match how {
                SIG_BLOCK => blocked | new,
                SIG_UNBLOCK => blocked & !new,
                _ => new,
            } & !UNBLOCKABLE;
        }
        blocked
    };
    if old != 0 {
        // SAFETY: as above.
        unsafe { user::write(old, blocked)? };
    }
    Ok(0)
}

/// `sigaltstack(ss, old_ss)` for the calling thread, whose stack pointer is `sp`.
pub fn sigaltstack(new: u64, old: u64, sp: u64) -> Result<u64> {
    // SAFETY: as in `rt_sigaction`.
    let new = if new != 0 { Some(unsafe { user::read::<AltStack>(new)? }) } else { None };
    let current = STATE.lock().me().map_or(AltStack::DISABLED, |t| t.altstack);
    if let Some(stack) = new {
        if current.contains(sp) {
            return Err(Errno::EPERM);
        }
        if stack.flags & !SS_DISABLE != 0 {
            return Err(Errno::EINVAL);
        }
        let stack = if stack.flags & SS_DISABLE != 0 {
            AltStack::DISABLED
        } else if stack.size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        } else {
            user::check_range(stack.sp, stack.size)?;
            stack
        };
        if let Some(me) = STATE.lock().me() {
            me.altstack = stack;
        }
    }
    if old != 0 {
        // SAFETY: as above.
        unsafe { user::write(old, current.as_seen_from(sp))? };
    }
    Ok(0)
}

/// `kill(pid, sig)`: to this process, to another one, to a group (0: the caller's, `-PGID`)
/// or to everyone else (-1); every process but this one is reached through the process host
/// ([`crate::process`]), which answers `ESRCH` when it finds none (and without a host there is
/// none).
pub fn kill(pid: u64, sig: u64) -> Result<u64> {
    let pid = pid as i64 as i32;
    if sig != 0 {
        check_signal(sig)?;
    }
    if pid == i32::MIN {
        return Err(Errno::ESRCH);
    }
    let (pid, me) = (i64::from(pid), crate::process::pid() as i64);
    // kill(0) and kill(-PGID) of the caller's own group reach the caller too; kill(-1) reaches
    // everyone but process 1 and the caller (Linux's rule); the process host finds the others.
    let includes_me = pid == me || pid == 0 || (pid < -1 && pid.unsigned_abs() == crate::process::group());
    let others = if pid == me { Err(Errno::ESRCH) } else { crate::process::kill_other(pid, sig) };
    if !includes_me {
        return others;
    }
    if sig != 0 {
        send(None, sig, Origin::User);
    }
    Ok(0)
}

/// `tgkill(tgid, tid, sig)` / `tkill(tid, sig)` (`tgid` 0 for `tkill`).
pub fn tgkill(tgid: u64, tid: u64, sig: u64) -> Result<u64> {
    if (tid as i64) <= 0 || (tgid as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    if tgid != 0 && tgid != crate::process::pid() {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        check_signal(sig)?;
    }
    if !thread_exists(tid) {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        send(Some(tid), sig, Origin::Tkill);
    }
    Ok(0)
}

/// The kernel thread behind C thread `tid`, if it exists.
pub fn kernel_thread(tid: u64) -> Option<ThreadId> {
    STATE.lock().threads.iter().find(|t| t.tid == tid).map(|t| t.thread)
}

/// Whether C thread `tid` exists.
fn thread_exists(tid: u64) -> bool {
    STATE.lock().threads.iter().any(|t| t.tid == tid)
}

/// Sends `SIGPIPE` to the calling thread (a write to a pipe without readers).
pub fn raise_pipe() {
    // The lock must be released before `send` takes it again (an `if let` on the locked
    // value would hold it through the call: a deadlock).
    let me = STATE.lock().me().map(|t| t.tid);
    if let Some(tid) = me {
        send(Some(tid), SIGPIPE, Origin::Tkill);
    }
}

/// Makes `sig` pending for thread `to`, or for the process: then, as Linux does, it goes to
/// the main thread if that does not block it, else to the sending thread, else to any thread
/// that does not block it; when all block it, it waits in the process's set for the first
/// thread to unblock it. Ignored signals are discarded unless blocked. Wakes the receiver
/// from a blocking call. Returns true when the signal was already pending at its receiver
/// (the new instance merged into it: a timer counts an overrun).
fn send(to: Option<u64>, sig: u64, origin: Origin) -> bool {
    let woken: Option<ThreadId> = {
        let mut state = STATE.lock();
        let ignored = state.is_ignored(sig) || sig == SIGSTOP;
        let current = libos::sync::current_thread();
        let takes = |t: &ThreadSignals| t.blocked & bit(sig) == 0;
        let receiver = match to {
            Some(tid) => match state.threads.iter().position(|t| t.tid == tid) {
                Some(i) => Some(i),
                None => return false,
            },
            None => state
                .threads
                .iter()
                .position(|t| t.tid == crate::dispatch::PID && takes(t))
                .or_else(|| state.threads.iter().position(|t| t.thread == current && takes(t)))
                .or_else(|| state.threads.iter().position(takes)),
        };
        let (newly, woken) = match receiver {
            Some(i) => {
                let t = &mut state.threads[i];
                if ignored && takes(t) {
                    return false;
                }
                let newly = t.pending & bit(sig) == 0;
                t.pending |= bit(sig);
                (newly, Some(t.thread))
            }
            None => {
                // Blocked everywhere (or no thread yet): pending for the process.
                let newly = state.pending & bit(sig) == 0;
                state.pending |= bit(sig);
                (newly, None)
            }
        };
        if !newly {
            return true;
        }
        state.origins[sig as usize - 1] = origin;
        libos::syscall::request_return_work();
        woken
    };
    if let Some(thread) = woken {
        libos::sync::unpark(thread);
        // Running on another CPU, it sees the signal when that CPU's interrupt returns.
        libos::sync::kick(thread);
    }
    SIGNAL_WAIT.wake_all();
    false
}

/// `rt_sigpending(set, sigsetsize)`: pending signals the calling thread blocks.
pub fn rt_sigpending(set: u64, sigsetsize: u64) -> Result<u64> {
    check_sigset_size(sigsetsize)?;
    let pending = {
        let mut state = STATE.lock();
        let process = state.pending;
        state.me().map_or(0, |t| (t.pending | process) & t.blocked)
    };
    // SAFETY: checked by `user::write`.
    unsafe { user::write(set, pending)? };
    Ok(0)
}

/// `rt_sigsuspend(mask, sigsetsize)`: waits with `mask` blocked until a signal is delivered;
/// always `EINTR` (the handler runs as the call returns, then the previous mask is back).
pub fn rt_sigsuspend(mask: u64, sigsetsize: u64) -> Result<u64> {
    check_sigset_size(sigsetsize)?;
    // SAFETY: checked by `user::read`.
    let mask: u64 = unsafe { user::read(mask)? };
    set_temporary_mask(mask);
    wait_for_a_signal()
}

/// Sleeps until a signal the thread does not block is pending: always `EINTR`.
fn wait_for_a_signal() -> Result<u64> {
    loop {
        wait_interruptible(&SIGNAL_WAIT, || false, None)?;
    }
}

/// `pause()`: waits until a signal is delivered.
pub fn pause() -> Result<u64> {
    wait_for_a_signal()
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: takes a pending signal of `set` without
/// running its handler; `EAGAIN` at the timeout, `EINTR` if another signal arrives.
pub fn rt_sigtimedwait(set: u64, info: u64, timeout: u64, sigsetsize: u64) -> Result<u64> {
    check_sigset_size(sigsetsize)?;
    // SAFETY: checked by `user::read`.
    let wanted: u64 = unsafe { user::read::<u64>(set)? } & !UNBLOCKABLE;
    let deadline = if timeout == 0 { None } else { Some(Instant::now() + crate::clocks::duration_of(timeout)?) };
    let take = || -> Option<(u64, Origin)> {
        let mut state = STATE.lock();
        let process = state.pending;
        let me = state.me()?;
        let ready = (me.pending | process) & wanted;
        if ready == 0 {
            return None;
        }
        let sig = u64::from(ready.trailing_zeros()) + 1;
        if me.pending & bit(sig) != 0 {
            me.pending &= !bit(sig);
        } else {
            state.pending &= !bit(sig);
        }
        Some((sig, state.origins[sig as usize - 1]))
    };
    loop {
        if let Some((sig, origin)) = take() {
            libos::syscall::return_work_done();
            let info_of_it = siginfo_at_delivery(sig, origin);
            if info != 0 {
                // SAFETY: checked by `user::write`.
                unsafe { user::write(info, info_of_it)? };
            }
            return Ok(sig);
        }
        if !wait_interruptible(&SIGNAL_WAIT, || wanted_pending(wanted), deadline)? {
            return Err(Errno::EAGAIN);
        }
    }
}

/// Whether a signal of `wanted` is pending for the calling thread (or the process).
fn wanted_pending(wanted: u64) -> bool {
    let mut state = STATE.lock();
    let process = state.pending;
    state.me().is_some_and(|t| (t.pending | process) & wanted != 0)
}

/// `rt_sigreturn()`: the return hook restores every register from the signal frame (the
/// system call's own result would overwrite `rax`/`x0`).
pub fn rt_sigreturn() -> Result<u64> {
    if let Some(me) = STATE.lock().me() {
        if !me.sigreturn {
            me.sigreturn = true;
            libos::syscall::request_return_work();
        }
    }
    Ok(0)
}

/// The `siginfo_t` of signal `sig` from `origin`, as it is taken from the pending set: a
/// timer's reports the expirations it missed meanwhile (`si_overrun`).
fn siginfo_at_delivery(sig: u64, origin: Origin) -> frame::SigInfo {
    let overrun = match origin {
        #[cfg(feature = "threads")]
        Origin::Timer { id, .. } => timers::take_overrun(id),
        _ => 0,
    };
    frame::siginfo(sig, origin, overrun)
}

/// Called by the dispatcher when a call failed with `ERESTARTSYS` (see [`restart`]): records
/// the call for its return, which restarts it or fails it. Returns the result register's value
/// until then: `-EINTR`.
#[cold]
#[inline(never)]
pub fn interrupted_call(frame: &Frame) -> isize {
    let call = restart::Interrupted::of(frame);
    if let Some(me) = STATE.lock().me() {
        if me.interrupted.replace(call).is_none() {
            libos::syscall::request_return_work();
        }
    }
    -(Errno::EINTR as i32 as isize)
}

/// The signal work of a system call's return (called by the return hook with the complete
/// frame): a pending `rt_sigreturn`, then delivery of the lowest deliverable pending signal
/// (settling an interrupted call as its handler starts), then the restart of an interrupted
/// call no handler ran for, then the restore of a temporary mask.
pub fn on_return(frame: &mut Frame) {
    let sigreturn = STATE.lock().me().is_some_and(|t| core::mem::take(&mut t.sigreturn));
    if sigreturn {
        libos::syscall::return_work_done();
        if let Err(bad) = sigreturn_from(frame) {
            bad_signal_frame(bad);
        }
    }
    deliver(frame);
    let unhandled = STATE.lock().me().and_then(|t| t.interrupted.take());
    if let Some(call) = unhandled {
        call.without_handler(frame);
        libos::syscall::return_work_done();
    }
    let restore = STATE.lock().me().and_then(|t| t.restore_mask.take().map(|mask| t.blocked = mask));
    if restore.is_some() {
        libos::syscall::return_work_done();
    }
}

/// A signal frame `rt_sigreturn` cannot use: the program ends as Linux ends it (`SIGSEGV`).
fn bad_signal_frame(why: Errno) -> ! {
    libos::println!("posix-shim: rt_sigreturn with a bad signal frame ({why}): SIGSEGV");
    terminate(SIGSEGV)
}

/// Ends the program as the default action of `sig` does: its parent sees it killed by `sig`.
fn terminate(sig: u64) -> ! {
    libos::println!("posix-shim: terminated by signal {sig} (status {})", signal_exit_code(sig));
    crate::dispatch::end_program(signal_exit_code(sig), sig as u32 & 0x7f)
}

/// `execve`: handlers go back to the default action (ignored signals stay ignored), with
/// their flags and masks; the alternate stacks go with the old threads.
#[cfg(feature = "elf")]
pub fn reset_for_exec() {
    let mut state = STATE.lock();
    for action in &mut state.actions {
        if action.handler != SIG_IGN {
            *action = KernelSigaction { handler: SIG_DFL, flags: 0, restorer: 0, mask: 0 };
        }
    }
}

/// A signal from process `from` (through the process host).
#[cfg(feature = "processes")]
pub fn send_from_process(sig: u64, from: u32) {
    if check_signal(sig).is_err() {
        log::warn!("posix-shim: process {from} sent signal {sig}, which does not exist; ignored");
        return;
    }
    if sig == SIGKILL {
        terminate(SIGKILL);
    }
    send(None, sig, Origin::Process { from });
}

/// `SIGCHLD` for child `pid`, which ended with wait status `status`.
#[cfg(feature = "processes")]
pub fn send_child_ended(pid: u32, status: u32) {
    let (code, value) = crate::process::child_code(status);
    send(None, SIGCHLD, Origin::Child { pid, code, status: value as i32 });
}

/// Whether a child that ends is reaped at once (`SIGCHLD` set to `SIG_IGN`, or its action
/// has `SA_NOCLDWAIT`), as Linux does instead of keeping a zombie.
#[cfg(feature = "processes")]
pub fn discards_children() -> bool {
    const SA_NOCLDWAIT: u64 = 2;
    let action = STATE.lock().actions[SIGCHLD as usize - 1];
    action.handler == SIG_IGN || action.flags & SA_NOCLDWAIT != 0
}

/// In a fresh child: no signal is pending (Linux clears the pending set at fork), and only the
/// calling thread is left (the others are forgotten by [`crate::thread`]).
#[cfg(feature = "processes")]
pub fn forget_for_child() {
    let current = libos::sync::current_thread();
    let mut state = STATE.lock();
    let mut settled = state.pending.count_ones();
    state.pending = 0;
    state.threads.retain_mut(|t| {
        if t.thread == current {
            settled += t.pending.count_ones();
            t.pending = 0;
            true
        } else {
            settled += t.pending.count_ones() + u32::from(t.interrupted.is_some());
            false
        }
    });
    drop(state);
    for _ in 0..settled {
        libos::syscall::return_work_done();
    }
    #[cfg(feature = "threads")]
    timers::forget_for_child();
}

/// The exit status of a program ended by signal `sig`: 128 + N, as a shell reports it.
pub const fn signal_exit_code(sig: u64) -> i32 {
    128 + sig as i32
}

fn sigreturn_from(frame: &mut Frame) -> Result<()> {
    let restored = frame::restore(frame)?;
    let mut state = STATE.lock();
    if let Some(me) = state.me() {
        me.blocked = restored.mask & !UNBLOCKABLE;
        // Linux's restore_altstack: the frame's stack_t is applied like a sigaltstack call,
        // silently ignored when invalid.
        let stack = restored.altstack;
        if !me.altstack.contains(frame.stack_pointer()) && stack.flags & !(SS_DISABLE | SS_ONSTACK) == 0 {
            if stack.flags & SS_DISABLE != 0 {
                me.altstack = AltStack::DISABLED;
            } else if stack.size >= MINSIGSTKSZ && user::check_range(stack.sp, stack.size).is_ok() {
                me.altstack = AltStack { flags: 0, ..stack };
            }
        }
    }
    Ok(())
}

/// Takes the lowest pending signal the calling thread does not block and acts on it.
fn deliver(frame: &mut Frame) {
    loop {
        let taken = {
            let mut guard = STATE.lock();
            let state = &mut *guard;
            let current = libos::sync::current_thread();
            let Some(me) = state.threads.iter_mut().find(|t| t.thread == current) else { return };
            let ready = (me.pending | state.pending) & !me.blocked;
            if ready == 0 {
                return;
            }
            let sig = u64::from(ready.trailing_zeros()) + 1;
            let from_thread = me.pending & bit(sig) != 0;
            if from_thread {
                me.pending &= !bit(sig);
            }
            let action = state.actions[sig as usize - 1];
            let handled = action.handler != SIG_DFL && action.handler != SIG_IGN;
            let taken = handled.then(|| {
                let mask_after = me.restore_mask.unwrap_or(me.blocked);
                let origin = state.origins[sig as usize - 1];
                let delivery = frame::Delivery {
                    sig,
                    // A timer's overrun is filled in once this lock is dropped.
                    info: frame::siginfo(sig, origin, 0),
                    handler: action.handler,
                    restorer: (action.flags & SA_RESTORER != 0).then_some(action.restorer),
                    altstack: me.altstack,
                    on_altstack: action.flags & SA_ONSTACK != 0 && me.altstack.enabled(),
                    mask: mask_after,
                };
                // The handler runs with its mask (and the signal itself unless SA_NODEFER)
                // added to the mask the interrupted code had.
                me.blocked = (mask_after | action.mask | if action.flags & SA_NODEFER != 0 { 0 } else { bit(sig) }) & !UNBLOCKABLE;
                if me.restore_mask.take().is_some() {
                    libos::syscall::return_work_done(); // the frame carries the mask back
                }
                (delivery, me.interrupted.take(), origin)
            });
            if !from_thread {
                state.pending &= !bit(sig);
            }
            if handled && action.flags & SA_RESETHAND != 0 {
                state.actions[sig as usize - 1] = KernelSigaction::default();
            }
            (sig, action.handler, action.flags, taken)
        };
        libos::syscall::return_work_done();
        match taken {
            (_, SIG_IGN, _, _) => {}
            (sig, SIG_DFL, _, _) => {
                if default_terminates(sig) {
                    terminate(sig);
                }
            }
            (sig, _, flags, Some((mut delivery, interrupted, origin))) => {
                // The handler's frame records the interrupted call restarted (rewound) or
                // failed with EINTR, and a timer's overrun as of now.
                if let Some(call) = interrupted {
                    call.before_handler(frame, flags & SA_RESTART != 0);
                    libos::syscall::return_work_done();
                }
                delivery.info = siginfo_at_delivery(sig, origin);
                if frame::enter_handler(frame, &delivery).is_err() {
                    // No room for the frame (or a bad alternate stack): Linux forces SIGSEGV.
                    libos::println!("posix-shim: cannot write the frame for signal {sig}");
                    terminate(SIGSEGV);
                }
                // One handler per return: further signals come at its first system call (or
                // its rt_sigreturn), as the frame chain nests them.
                return;
            }
            _ => {}
        }
    }
}
