//! Restarting system calls that a signal interrupted (`SA_RESTART`), as Linux does.
//!
//! **The marker.** A blocking call that a signal interrupts fails with
//! [`Errno::ERESTARTSYS`](libos::Errno::ERESTARTSYS): [`super::wait_interruptible`] returns it
//! and callers pass it up with `?` like any error. It never reaches the program: the
//! dispatcher sees it in the result and calls [`super::interrupted_call`], which records the
//! call ([`Interrupted`]: its number, first argument and [`Rule`]) for the thread,
//! asks for the return hook and leaves `-EINTR` in the result register. At the return, the
//! signal work decides, as Linux's `handle_signal` and `arch_do_signal_or_restart` do:
//!
//! - a handler runs: the call is restarted if its rule is [`Rule::WithSaRestart`] and the
//!   handler's action has `SA_RESTART`, else it fails with `EINTR`;
//! - no handler runs (the signal was ignored, or another thread took a process-directed
//!   signal first): the call is restarted unless its rule is [`Rule::Never`].
//!
//! **Restarting** is rewinding ([`rewind`]): the program counter goes back over the
//! system-call instruction (x86_64 `syscall`: 2 bytes; aarch64 `svc #0`: 4 bytes) and the
//! registers the return overwrote get their entry values back (x86_64 `rax`, the number;
//! aarch64 `x0`, the first argument; the number stays in `x8`). When a handler runs first,
//! its signal frame records the rewound state, so `rt_sigreturn` lands on the instruction and
//! the call runs again with its original arguments.
//!
//! **Which calls** ([`rule`], following `man 7 signal`, "Interruption of system calls and
//! library functions by signal handlers"): everything that waits on a descriptor or a futex
//! restarts with `SA_RESTART` (`read`/`write`/`readv`/`writev` on pipes, eventfd, timerfd and
//! sockets, `accept`, `connect`, `recv*`/`send*`, `futex` waits without a timeout). Never
//! restarted when a handler ran: `poll`/`ppoll`/`select`/`pselect6`, `epoll_wait`/`epoll_pwait`,
//! `nanosleep`/`clock_nanosleep`, `pause`/`rt_sigsuspend`/`rt_sigtimedwait`, `futex` waits with
//! a timeout (Linux's `ERESTART_RESTARTBLOCK`). A socket call with a receive or send timeout
//! (`SO_RCVTIMEO`/`SO_SNDTIMEO`) must never restart either: the socket code turns the marker
//! into `EINTR` itself, as Linux's `sock_intr_errno` does.
//!
//! When no handler runs, Linux restarts the multiplexers without a timeout and the absolute
//! sleeps, and continues relative sleeps for the time left (`restart_syscall`); here calls
//! with a relative timeout report `EINTR` instead ([`Rule::Never`]) rather than start
//! their full timeout again. That case needs a signal that is pending and unblocked when the
//! call is interrupted but that no handler takes by the time it returns: a race with another
//! thread, or an ignored signal unblocked by the call's temporary mask.

use crate::abi::nr;
use libos::syscall::Frame;

/// What happens to an interrupted call at its return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Restarted unless a handler without `SA_RESTART` runs (Linux's `ERESTARTSYS`).
    WithSaRestart,
    /// Restarted only when no handler runs (Linux's `ERESTARTNOHAND`).
    UnlessHandled,
    /// Always fails with `EINTR`.
    Never,
}

/// An interrupted call of a thread, waiting for its return to decide.
#[derive(Clone, Copy, Debug)]
pub(super) struct Interrupted {
    rule: Rule,
    number: u64,
    first_arg: u64,
}

impl Interrupted {
    /// The call `frame` entered with (read before anything rewrites it).
    pub fn of(frame: &Frame) -> Interrupted {
        let args = frame.args();
        Interrupted { rule: rule(frame.number(), args), number: frame.number(), first_arg: args[0] }
    }

    /// Settles the call as a handler of an action with `sa_restart` is about to run.
    pub fn before_handler(self, frame: &mut Frame, sa_restart: bool) {
        if self.rule == Rule::WithSaRestart && sa_restart {
            rewind(frame, self);
        }
    }

    /// Settles the call when its return runs no handler.
    pub fn without_handler(self, frame: &mut Frame) {
        if self.rule != Rule::Never {
            rewind(frame, self);
        }
    }
}

/// The restart rule of call `number` with arguments `args` (see the module docs).
pub fn rule(number: u64, args: [u64; 6]) -> Rule {
    const FUTEX_CMD_MASK: u64 = !(128 | 256); // without FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAIT_BITSET: u64 = 9;
    let [_, _, a2, a3, a4, _] = args;
    let timeout_or = |has_timeout: bool, rule: Rule| if has_timeout { Rule::Never } else { rule };
    match number {
        n if n == nr::POLL => timeout_or((a2 as i32) >= 0, Rule::UnlessHandled),
        n if n == nr::PPOLL => timeout_or(a2 != 0, Rule::UnlessHandled),
        n if n == nr::SELECT || n == nr::PSELECT6 => timeout_or(a4 != 0, Rule::UnlessHandled),
        n if n == nr::PAUSE || n == nr::RT_SIGSUSPEND => Rule::UnlessHandled,
        n if n == nr::EPOLL_WAIT || n == nr::EPOLL_PWAIT || n == nr::RT_SIGTIMEDWAIT => Rule::Never,
        n if n == nr::NANOSLEEP || n == nr::CLOCK_NANOSLEEP => Rule::Never,
        n if n == nr::FUTEX => {
            let waits = matches!(args[1] & FUTEX_CMD_MASK, FUTEX_WAIT | FUTEX_WAIT_BITSET);
            timeout_or(waits && a3 != 0, Rule::WithSaRestart)
        }
        _ => Rule::WithSaRestart,
    }
}

/// Makes the return re-execute the system-call instruction with the call's entry registers.
fn rewind(frame: &mut Frame, call: Interrupted) {
    #[cfg(target_arch = "x86_64")]
    {
        const SYSCALL_LEN: u64 = 2; // 0f 05
        frame.rip -= SYSCALL_LEN;
        frame.rax = call.number;
        let _ = call.first_arg; // rdi is not the result register: it still holds it
    }
    #[cfg(target_arch = "aarch64")]
    {
        const SVC_LEN: u64 = 4;
        frame.pc -= SVC_LEN;
        frame.x[0] = call.first_arg;
        let _ = call.number; // x8 is not the result register: it still holds it
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_calls_restart_with_sa_restart() {
        assert_eq!(rule(nr::READ, [3, 0, 1, 0, 0, 0]), Rule::WithSaRestart);
        assert_eq!(rule(nr::WRITEV, [3, 0, 1, 0, 0, 0]), Rule::WithSaRestart);
        assert_eq!(rule(nr::FUTEX, [0x1000, 128, 0, 0, 0, 0]), Rule::WithSaRestart);
    }

    #[test]
    fn multiplexers_and_sleeps_never_restart_after_a_handler() {
        assert_eq!(rule(nr::PPOLL, [0, 1, 0, 0, 0, 0]), Rule::UnlessHandled);
        assert_eq!(rule(nr::PPOLL, [0, 1, 0x1000, 0, 0, 0]), Rule::Never);
        assert_eq!(rule(nr::PSELECT6, [1, 0, 0, 0, 0, 0]), Rule::UnlessHandled);
        assert_eq!(rule(nr::PSELECT6, [1, 0, 0, 0, 0x1000, 0]), Rule::Never);
        assert_eq!(rule(nr::EPOLL_PWAIT, [3, 0, 1, u64::MAX, 0, 0]), Rule::Never);
        assert_eq!(rule(nr::NANOSLEEP, [0x1000, 0, 0, 0, 0, 0]), Rule::Never);
        assert_eq!(rule(nr::RT_SIGSUSPEND, [0x1000, 8, 0, 0, 0, 0]), Rule::UnlessHandled);
        assert_eq!(rule(nr::RT_SIGTIMEDWAIT, [0x1000, 0, 0, 8, 0, 0]), Rule::Never);
        // FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG with a timeout.
        assert_eq!(rule(nr::FUTEX, [0x1000, 9 | 128, 0, 0x2000, 0, !0]), Rule::Never);
    }

    #[test]
    fn rewinding_backs_over_the_instruction_and_restores_the_entry_registers() {
        let mut frame = Frame::default();
        #[cfg(target_arch = "x86_64")]
        {
            frame.rax = nr::READ;
            frame.rdi = 5;
            frame.rip = 0x40_1002;
        }
        #[cfg(target_arch = "aarch64")]
        {
            frame.x[8] = nr::READ;
            frame.x[0] = 5;
            frame.pc = 0x40_1004;
        }
        let call = Interrupted::of(&frame);
        frame.set_result(-4i64 as u64); // the result the return would leave: -EINTR
        call.before_handler(&mut frame, true);
        assert_eq!(frame.program_counter(), 0x40_1000);
        assert_eq!(frame.number(), nr::READ);
        assert_eq!(frame.args()[0], 5);

        let mut plain = Frame::default();
        plain.set_result(-4i64 as u64);
        call.before_handler(&mut plain, false);
        assert_eq!(plain.program_counter(), 0, "no SA_RESTART: EINTR stays");
    }

    #[test]
    fn without_a_handler_only_never_restart_calls_fail() {
        let mut frame = Frame::default();
        frame.set_program_counter(0x1004);
        Interrupted { rule: Rule::UnlessHandled, number: nr::PPOLL, first_arg: 0 }.without_handler(&mut frame);
        assert!(frame.program_counter() < 0x1004, "restarted");
        let mut frame = Frame::default();
        frame.set_program_counter(0x1004);
        Interrupted { rule: Rule::Never, number: nr::NANOSLEEP, first_arg: 0 }.without_handler(&mut frame);
        assert_eq!(frame.program_counter(), 0x1004, "fails with EINTR");
    }
}
