//! The system-call table: one `match` on the number ([`crate::abi::nr`]) calling the family
//! modules, and [`to_return`], the one place where an [`Errno`] becomes `-errno`.
//!
//! Unknown numbers return `-ENOSYS` and log one warning the first time each number is seen
//! (later calls are silent, so a program probing for a call in a loop does not flood the
//! console). `fork` and friends are [`crate::process`]'s (`ENOSYS` without the `processes`
//! feature), `execve` is [`crate::exec`]'s (`ENOSYS` without the `elf` feature).

use crate::abi::nr;
use crate::fd::{self, Object};
use crate::{clocks, control, events, inflight, mem, net, process, resources, signal, thread, user};
#[cfg(feature = "fs")]
use crate::{attrs, creds, files, locks};
#[cfg(feature = "fs")]
use crate::attrs::XattrTarget;
use alloc::collections::BTreeSet;
use core::sync::atomic::{AtomicU32, Ordering};
use libos::syscall::Frame;
use libos::sync::Mutex;
use libos::time::Instant;
use libos::{Errno, Result};

/// The program's process id (and its first thread's id): it is the only process, like init.
pub const PID: u64 = 1;

static UMASK: AtomicU32 = AtomicU32::new(0o022);
static LOGGED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// The current umask.
pub fn umask_value() -> u32 {
    UMASK.load(Ordering::Relaxed)
}

/// Turns a result into the value of the result register: `-errno` on failure.
pub fn to_return(result: Result<u64>) -> isize {
    match result {
        Ok(value) => value as isize,
        Err(e) => -(e as i32 as isize),
    }
}

/// Logs once per `value` that a system call is not supported (it returns `ENOSYS`).
pub fn log_unsupported(what: &str, value: u64) {
    if LOGGED.lock().insert(value ^ (what.len() as u64) << 56) {
        log::warn!("posix-shim: unsupported {what} {value} ({}): ENOSYS", nr::name(value));
    }
}

/// Logs once per `what` and `value` that something a call asked for is not supported, and
/// the error the call returns for it.
pub fn log_refused(what: &str, value: u64, error: Errno) {
    if LOGGED.lock().insert(value ^ (what.len() as u64) << 56 ^ 1 << 55) {
        log::warn!("posix-shim: unsupported {what} {value}: {error:?}");
    }
}

/// Ends the program (and the VM) with `code` (`exit_group`, the last thread).
pub fn exit_program(code: i32) -> ! {
    end_program(code, process::exited_status(code))
}

/// Ends the program (and the VM) with VM exit code `code`; the parent process, if any, hears
/// wait status `status` (an exit, or a death by signal).
pub fn end_program(code: i32, status: u32) -> ! {
    // As Linux's exit: shared file mappings reach their files, then the program lets go of
    // its mappings' files and its descriptors, so that files unlinked while open are freed
    // before `libos::process::exit` syncs the file systems.
    mem::release_files_at_exit();
    fd::close_all();
    process::report_exit(status);
    libos::process::exit(code & 0xff)
}

/// One entry of the table: the call's implementation, reading its arguments from the frame.
type Entry = fn(&mut Frame) -> isize;

/// Numbers below this index the table directly (both architectures' calls are below 512);
/// anything at or above it is unknown.
const TABLE_LEN: usize = 512;

/// The handler the platform calls for every `syscall` / `svc #0`: one indexed load and a
/// tail call, whatever the number. Nothing may follow the call here: each entry settles its
/// own result ([`settle`]), so that this stays a jump (measured: checking the result here
/// cost 17 instructions per null system call on x86_64, 16 on aarch64, in saved registers).
pub extern "C" fn dispatch(frame: &mut Frame) -> isize {
    match TABLE.get(frame.number() as usize) {
        Some(entry) => entry(frame),
        None => unknown(frame),
    }
}

/// The value a call returns to the program: `result` as the result register holds it. A call a
/// signal interrupted fails with the internal `ERESTARTSYS`, which never reaches the program:
/// the signal layer restarts the call or fails it with `EINTR` as it returns
/// (`signal::restart`). Inlined into every entry, where a call that cannot be interrupted
/// (`getpid`) folds the check away.
#[inline(always)]
fn settle(frame: &mut Frame, result: Result<u64>) -> isize {
    match result {
        Err(Errno::ERESTARTSYS) => signal::interrupted_call(frame),
        other => to_return(other),
    }
}

/// The return hook (libos-core's `syscall` docs): runs at system-call returns while some
/// thread asked for one, with the complete frame; each step checks what the returning thread
/// itself has to do.
pub extern "C" fn on_return(frame: &mut Frame) {
    thread::end_if_forgotten();
    thread::finish_clone(frame);
    signal::on_return(frame);
}

fn unknown(frame: &mut Frame) -> isize {
    log_unsupported("system call", frame.number());
    to_return(Err(Errno::ENOSYS))
}

/// Builds [`TABLE`]: `NUMBER => |frame, [args]| result;` per call. Each body becomes a small
/// function the table points at; a number the architecture lacks ([`nr::ABSENT`]) is skipped.
macro_rules! table {
    ($($(#[$attr:meta])* $number:path => |$frame:ident, $args:pat_param| $body:expr;)*) => {
        static TABLE: [Entry; TABLE_LEN] = {
            let mut table: [Entry; TABLE_LEN] = [unknown; TABLE_LEN];
            $(
                $(#[$attr])*
                {
                    #[allow(unused_variables, unreachable_code)]
                    fn entry($frame: &mut Frame) -> isize {
                        #[allow(unused_variables)]
                        let $args = $frame.args();
                        let result = $body;
                        settle($frame, result)
                    }
                    let index = $number as usize;
                    if index < TABLE_LEN {
                        table[index] = entry;
                    }
                }
            )*
            table
        };
    };
}

table! {
    nr::GETPPID => |f, _| Ok(process::parent());
    nr::GETPID => |f, _| Ok(process::pid());
    nr::GETTID => |f, _| Ok(thread::gettid());
    // Credentials live in the VFS (feature `fs`); an image without files runs as root.
    #[cfg(not(feature = "fs"))]
    nr::GETUID => |f, _| Ok(0);
    #[cfg(not(feature = "fs"))]
    nr::GETEUID => |f, _| Ok(0);
    #[cfg(not(feature = "fs"))]
    nr::GETGID => |f, _| Ok(0);
    #[cfg(not(feature = "fs"))]
    nr::GETEGID => |f, _| Ok(0);
    #[cfg(feature = "fs")]
    nr::GETUID => |f, _| creds::get_id(|c| c.ruid);
    #[cfg(feature = "fs")]
    nr::GETEUID => |f, _| creds::get_id(|c| c.euid);
    #[cfg(feature = "fs")]
    nr::GETGID => |f, _| creds::get_id(|c| c.rgid);
    #[cfg(feature = "fs")]
    nr::GETEGID => |f, _| creds::get_id(|c| c.egid);
    #[cfg(feature = "fs")]
    nr::GETRESUID => |f, [a0, a1, a2, ..]| creds::getres(a0, a1, a2, false);
    #[cfg(feature = "fs")]
    nr::GETRESGID => |f, [a0, a1, a2, ..]| creds::getres(a0, a1, a2, true);
    #[cfg(feature = "fs")]
    nr::SETUID => |f, [a0, ..]| creds::setuid(a0);
    #[cfg(feature = "fs")]
    nr::SETGID => |f, [a0, ..]| creds::setgid(a0);
    #[cfg(feature = "fs")]
    nr::SETREUID => |f, [a0, a1, ..]| creds::setreuid(a0, a1);
    #[cfg(feature = "fs")]
    nr::SETREGID => |f, [a0, a1, ..]| creds::setregid(a0, a1);
    #[cfg(feature = "fs")]
    nr::SETRESUID => |f, [a0, a1, a2, ..]| creds::setresuid(a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::SETRESGID => |f, [a0, a1, a2, ..]| creds::setresgid(a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::SETFSUID => |f, [a0, ..]| creds::setfsuid(a0);
    #[cfg(feature = "fs")]
    nr::SETFSGID => |f, [a0, ..]| creds::setfsgid(a0);
    #[cfg(feature = "fs")]
    nr::GETGROUPS => |f, [a0, a1, ..]| creds::getgroups(a0, a1);
    #[cfg(feature = "fs")]
    nr::SETGROUPS => |f, [a0, a1, ..]| creds::setgroups(a0, a1);
    #[cfg(feature = "fs")]
    nr::CAPGET => |f, [a0, a1, ..]| creds::capget(a0, a1);
    #[cfg(feature = "fs")]
    nr::CAPSET => |f, [a0, a1, ..]| creds::capset(a0, a1);
    nr::READ => |f, [a0, a1, a2, ..]| read(a0, a1, a2);
    nr::WRITE => |f, [a0, a1, a2, ..]| write(a0, a1, a2);
    nr::READV => |f, [a0, a1, a2, ..]| readv(a0, a1, a2);
    nr::WRITEV => |f, [a0, a1, a2, ..]| writev(a0, a1, a2);
    nr::PREAD64 => |f, [a0, a1, a2, a3, ..]| pread(a0, a1, a2, a3);
    nr::PWRITE64 => |f, [a0, a1, a2, a3, ..]| pwrite(a0, a1, a2, a3);
    nr::CLOSE => |f, [a0, ..]| fd::close(a0).map(|()| 0);
    nr::IOCTL => |f, [a0, a1, a2, ..]| control::ioctl(a0, a1, a2);
    nr::FCNTL => |f, [a0, a1, a2, ..]| control::fcntl(a0, a1, a2);
    nr::DUP => |f, [a0, ..]| fd::get_descriptor(a0).and_then(|d| fd::insert_from(0, fd::Descriptor { cloexec: false, ..d }));
    nr::DUP2 => |f, [a0, a1, ..]| control::dup3(a0, a1, 0, true);
    nr::DUP3 => |f, [a0, a1, a2, ..]| control::dup3(a0, a1, a2, false);
    nr::UMASK => |f, [a0, ..]| Ok(u64::from(UMASK.swap(a0 as u32 & 0o777, Ordering::Relaxed)));
    nr::EXIT => |f, [a0, ..]| thread::exit_thread(a0 as i32);
    nr::EXIT_GROUP => |f, [a0, ..]| exit_program(a0 as i32);
    nr::SET_TID_ADDRESS => |f, [a0, ..]| Ok(thread::set_tid_address(a0));
    nr::SET_ROBUST_LIST => |f, [a0, a1, ..]| thread::set_robust_list(a0, a1);
    nr::FUTEX => |f, [a0, a1, a2, a3, a4, a5]| thread::futex(a0, a1, a2, a3, a4, a5);
    // clone(flags, stack, ptid, ctid, tls) on x86_64; (flags, stack, ptid, tls, ctid) on aarch64.
    #[cfg(not(target_arch = "aarch64"))]
    nr::CLONE => |f, [a0, a1, a2, a3, a4, _]| thread::clone(a0, a1, a2, a3, a4);
    #[cfg(target_arch = "aarch64")]
    nr::CLONE => |f, [a0, a1, a2, a3, a4, _]| thread::clone(a0, a1, a2, a4, a3);
    nr::SCHED_YIELD => |f, _| {
        yield_now();
        Ok(0)
    };
    nr::SCHED_GETAFFINITY => |f, [a0, a1, a2, ..]| thread::sched_getaffinity(a0, a1, a2);
    nr::SCHED_SETAFFINITY => |f, [a0, a1, a2, ..]| thread::sched_setaffinity(a0, a1, a2);
    nr::ARCH_PRCTL => |f, [a0, a1, ..]| arch_prctl(a0, a1);
    nr::PRCTL => |f, [a0, a1, ..]| crate::prctl::prctl(a0, a1);
    nr::GETRUSAGE => |f, [a0, a1, ..]| resources::getrusage(a0, a1);
    nr::TIMES => |f, [a0, ..]| resources::times(a0);
    nr::GETPRIORITY => |f, [a0, a1, ..]| resources::getpriority(a0, a1);
    nr::SETPRIORITY => |f, [a0, a1, a2, ..]| resources::setpriority(a0, a1, a2);
    nr::SCHED_GETSCHEDULER => |f, [a0, ..]| resources::sched_getscheduler(a0);
    nr::SCHED_GETPARAM => |f, [a0, a1, ..]| resources::sched_getparam(a0, a1);
    nr::GETCPU => |f, [a0, a1, ..]| resources::getcpu(a0, a1);
    nr::MLOCK => |f, [a0, a1, ..]| resources::mlock(a0, a1);
    nr::MUNLOCK => |f, [a0, a1, ..]| resources::mlock(a0, a1);
    nr::MLOCKALL => |f, [a0, ..]| resources::mlockall(a0);
    nr::MUNLOCKALL => |f, _| Ok(0);
    nr::GETPGID => |f, [a0, ..]| resources::group_of(a0);
    nr::GETSID => |f, [a0, ..]| resources::session_of(a0);
    nr::GETPGRP => |f, _| Ok(process::group());
    nr::SETPGID => |f, [a0, a1, ..]| resources::setpgid(a0, a1);
    nr::SETSID => |f, _| resources::setsid();
    nr::BRK => |f, [a0, ..]| Ok(mem::brk(a0));
    nr::MMAP => |f, [a0, a1, a2, a3, a4, a5]| mem::mmap(a0, a1, a2, a3, a4, a5);
    nr::MUNMAP => |f, [a0, a1, ..]| mem::munmap(a0, a1);
    nr::MREMAP => |f, [a0, a1, a2, a3, a4, _]| mem::mremap(a0, a1, a2, a3, a4);
    nr::MPROTECT => |f, [a0, a1, a2, ..]| mem::mprotect(a0, a1, a2);
    nr::MADVISE => |f, [a0, a1, a2, ..]| mem::madvise(a0, a1, a2);
    nr::MSYNC => |f, [a0, a1, a2, ..]| mem::msync(a0, a1, a2);
    nr::CLOCK_GETTIME => |f, [a0, a1, ..]| clocks::clock_gettime(a0, a1);
    nr::CLOCK_SETTIME => |f, [a0, a1, ..]| clocks::clock_settime(a0, a1);
    nr::TIME => |f, [a0, ..]| clocks::time(a0);
    nr::CLOCK_GETRES => |f, [a0, a1, ..]| clocks::clock_getres(a0, a1);
    nr::GETTIMEOFDAY => |f, [a0, a1, ..]| clocks::gettimeofday(a0, a1);
    nr::NANOSLEEP => |f, [a0, a1, ..]| clocks::nanosleep(a0, a1);
    nr::CLOCK_NANOSLEEP => |f, [a0, a1, a2, a3, ..]| clocks::clock_nanosleep(a0, a1, a2, a3);
    nr::UNAME => |f, [a0, ..]| uname(a0);
    nr::GETRANDOM => |f, [a0, a1, a2, ..]| getrandom(a0, a1, a2);
    nr::SYSINFO => |f, [a0, ..]| sysinfo(a0);
    nr::PRLIMIT64 => |f, [a0, a1, a2, a3, ..]| prlimit64(a0, a1, a2, a3);
    nr::RT_SIGACTION => |f, [a0, a1, a2, a3, ..]| signal::rt_sigaction(a0, a1, a2, a3);
    nr::RT_SIGPROCMASK => |f, [a0, a1, a2, a3, ..]| signal::rt_sigprocmask(a0, a1, a2, a3);
    nr::SIGALTSTACK => |f, [a0, a1, ..]| signal::sigaltstack(a0, a1, f.stack_pointer());
    nr::RT_SIGRETURN => |f, _| signal::rt_sigreturn();
    nr::RT_SIGPENDING => |f, [a0, a1, ..]| signal::rt_sigpending(a0, a1);
    nr::RT_SIGSUSPEND => |f, [a0, a1, ..]| signal::rt_sigsuspend(a0, a1);
    nr::RT_SIGTIMEDWAIT => |f, [a0, a1, a2, a3, ..]| signal::rt_sigtimedwait(a0, a1, a2, a3);
    nr::PAUSE => |f, _| signal::pause();
    nr::KILL => |f, [a0, a1, ..]| signal::kill(a0, a1);
    nr::TGKILL => |f, [a0, a1, a2, ..]| signal::tgkill(a0, a1, a2);
    // Timers that send signals (feature `threads`: a kernel thread fires them).
    #[cfg(feature = "threads")]
    nr::ALARM => |f, [a0, ..]| signal::alarm(a0);
    #[cfg(feature = "threads")]
    nr::SETITIMER => |f, [a0, a1, a2, ..]| signal::setitimer(a0, a1, a2);
    #[cfg(feature = "threads")]
    nr::GETITIMER => |f, [a0, a1, ..]| signal::getitimer(a0, a1);
    #[cfg(feature = "threads")]
    nr::TIMER_CREATE => |f, [a0, a1, a2, ..]| signal::timer_create(a0, a1, a2);
    #[cfg(feature = "threads")]
    nr::TIMER_SETTIME => |f, [a0, a1, a2, a3, ..]| signal::timer_settime(a0, a1, a2, a3);
    #[cfg(feature = "threads")]
    nr::TIMER_GETTIME => |f, [a0, a1, ..]| signal::timer_gettime(a0, a1);
    #[cfg(feature = "threads")]
    nr::TIMER_GETOVERRUN => |f, [a0, ..]| signal::timer_getoverrun(a0);
    #[cfg(feature = "threads")]
    nr::TIMER_DELETE => |f, [a0, ..]| signal::timer_delete(a0);
    nr::TKILL => |f, [a0, a1, ..]| signal::tgkill(0, a0, a1);
    nr::FORK => |f, _| process::fork();
    // A copy is a valid vfork: the child cannot change what its parent sees.
    nr::VFORK => |f, _| process::vfork();
    #[cfg(feature = "elf")]
    nr::EXECVE => |f, [a0, a1, a2, ..]| crate::exec::execve(a0, a1, a2, f.stack_pointer());
    #[cfg(not(feature = "elf"))]
    nr::EXECVE => |f, _| unsupported(f);
    nr::WAIT4 => |f, [a0, a1, a2, a3, ..]| process::wait4(a0, a1, a2, a3);
    nr::WAITID => |f, [a0, a1, a2, a3, a4, ..]| process::waitid(a0, a1, a2, a3, a4);
    nr::PIPE2 => |f, [a0, a1, ..]| events::pipe2(a0, a1);
    nr::PIPE => |f, [a0, ..]| events::pipe2(a0, 0);
    nr::EVENTFD2 => |f, [a0, a1, ..]| events::eventfd2(a0, a1);
    nr::POLL => |f, [a0, a1, a2, ..]| events::poll_ms(a0, a1, a2);
    nr::PPOLL => |f, [a0, a1, a2, a3, a4, _]| events::ppoll(a0, a1, a2, a3, a4);
    nr::SELECT => |f, [a0, a1, a2, a3, a4, _]| events::select_timeval(a0, a1, a2, a3, a4);
    nr::PSELECT6 => |f, [a0, a1, a2, a3, a4, a5]| events::pselect6(a0, a1, a2, a3, a4, a5);
    nr::EPOLL_CREATE1 => |f, [a0, ..]| events::epoll_create1(a0);
    nr::EPOLL_CREATE => |f, [a0, ..]| if (a0 as i32) <= 0 { Err(Errno::EINVAL) } else { events::epoll_create1(0) };
    nr::EPOLL_CTL => |f, [a0, a1, a2, a3, ..]| events::epoll_ctl(a0, a1, a2, a3);
    nr::EPOLL_WAIT => |f, [a0, a1, a2, a3, ..]| events::epoll_pwait(a0, a1, a2, a3, 0, 0);
    nr::EPOLL_PWAIT => |f, [a0, a1, a2, a3, a4, a5]| events::epoll_pwait(a0, a1, a2, a3, a4, a5);
    nr::TIMERFD_CREATE => |f, [a0, a1, ..]| events::timerfd_create(a0, a1);
    nr::TIMERFD_SETTIME => |f, [a0, a1, a2, a3, ..]| events::timerfd_settime(a0, a1, a2, a3);
    nr::TIMERFD_GETTIME => |f, [a0, a1, ..]| events::timerfd_gettime(a0, a1);
    nr::SOCKET => |f, [a0, a1, a2, ..]| net::socket(a0, a1, a2);
    nr::SOCKETPAIR => |f, [a0, a1, a2, a3, ..]| net::socketpair(a0, a1, a2, a3);
    nr::BIND => |f, [a0, a1, a2, ..]| net::bind(a0, a1, a2);
    nr::LISTEN => |f, [a0, a1, ..]| net::listen(a0, a1);
    nr::ACCEPT => |f, [a0, a1, a2, ..]| net::accept4(a0, a1, a2, 0);
    nr::ACCEPT4 => |f, [a0, a1, a2, a3, ..]| net::accept4(a0, a1, a2, a3);
    nr::CONNECT => |f, [a0, a1, a2, ..]| net::connect(a0, a1, a2);
    nr::SENDTO => |f, [a0, a1, a2, a3, a4, a5]| net::sendto(a0, a1, a2, a3, a4, a5);
    nr::RECVFROM => |f, [a0, a1, a2, a3, a4, a5]| net::recvfrom(a0, a1, a2, a3, a4, a5);
    nr::SENDMSG => |f, [a0, a1, a2, ..]| net::sendmsg(a0, a1, a2);
    nr::RECVMSG => |f, [a0, a1, a2, ..]| net::recvmsg(a0, a1, a2);
    nr::SENDMMSG => |f, [a0, a1, a2, a3, ..]| net::sendmmsg(a0, a1, a2, a3);
    nr::RECVMMSG => |f, [a0, a1, a2, a3, a4, _]| net::recvmmsg(a0, a1, a2, a3, a4);
    nr::SHUTDOWN => |f, [a0, a1, ..]| net::shutdown(a0, a1);
    nr::GETSOCKNAME => |f, [a0, a1, a2, ..]| net::getsockname(a0, a1, a2);
    nr::GETPEERNAME => |f, [a0, a1, a2, ..]| net::getpeername(a0, a1, a2);
    nr::SETSOCKOPT => |f, [a0, a1, a2, a3, a4, _]| net::setsockopt(a0, a1, a2, a3, a4);
    nr::GETSOCKOPT => |f, [a0, a1, a2, a3, a4, _]| net::getsockopt(a0, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::SENDFILE => |f, [a0, a1, a2, a3, ..]| net::sendfile(a0, a1, a2, a3);
    // Descriptors 0-2 are the console, so these work without a file system.
    nr::FSTAT => |f, [a0, a1, ..]| fstat(a0, a1);
    nr::LSEEK => |f, [a0, a1, a2, ..]| lseek(a0, a1, a2);
    // The file system calls (feature `fs`; without it they stay unknown: -ENOSYS).
    #[cfg(feature = "fs")]
    nr::OPENAT => |f, [a0, a1, a2, a3, ..]| files::openat(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::OPEN => |f, [a0, a1, a2, ..]| files::openat(CWD, a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::NEWFSTATAT => |f, [a0, a1, a2, a3, ..]| files::newfstatat(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::STAT => |f, [a0, a1, ..]| files::newfstatat(CWD, a0, a1, 0);
    #[cfg(feature = "fs")]
    nr::LSTAT => |f, [a0, a1, ..]| files::newfstatat(CWD, a0, a1, 0x100);
    #[cfg(feature = "fs")]
    nr::STATX => |f, [a0, a1, a2, a3, a4, _]| files::statx(a0, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::GETDENTS64 => |f, [a0, a1, a2, ..]| files::getdents64(a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::MKDIRAT => |f, [a0, a1, a2, ..]| files::mkdirat(a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::MKDIR => |f, [a0, a1, ..]| files::mkdirat(CWD, a0, a1);
    #[cfg(feature = "fs")]
    nr::UNLINKAT => |f, [a0, a1, a2, ..]| files::unlinkat(a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::UNLINK => |f, [a0, ..]| files::unlinkat(CWD, a0, 0);
    #[cfg(feature = "fs")]
    nr::RMDIR => |f, [a0, ..]| files::unlinkat(CWD, a0, 0x200);
    #[cfg(feature = "fs")]
    nr::RENAMEAT => |f, [a0, a1, a2, a3, ..]| files::renameat2(a0, a1, a2, a3, 0);
    #[cfg(feature = "fs")]
    nr::RENAMEAT2 => |f, [a0, a1, a2, a3, a4, _]| files::renameat2(a0, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::RENAME => |f, [a0, a1, ..]| files::renameat2(CWD, a0, CWD, a1, 0);
    #[cfg(feature = "fs")]
    nr::LINKAT => |f, [a0, a1, a2, a3, a4, _]| files::linkat(a0, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::LINK => |f, [a0, a1, ..]| files::linkat(CWD, a0, CWD, a1, 0);
    #[cfg(feature = "fs")]
    nr::SYMLINKAT => |f, [a0, a1, a2, ..]| files::symlinkat(a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::SYMLINK => |f, [a0, a1, ..]| files::symlinkat(a0, CWD, a1);
    #[cfg(feature = "fs")]
    nr::READLINKAT => |f, [a0, a1, a2, a3, ..]| files::readlinkat(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::READLINK => |f, [a0, a1, a2, ..]| files::readlinkat(CWD, a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::FTRUNCATE => |f, [a0, a1, ..]| files::ftruncate(a0, a1);
    #[cfg(feature = "fs")]
    nr::TRUNCATE => |f, [a0, a1, ..]| files::truncate(a0, a1);
    #[cfg(feature = "fs")]
    nr::FSYNC => |f, [a0, ..]| files::fsync(a0);
    #[cfg(feature = "fs")]
    nr::FDATASYNC => |f, [a0, ..]| files::fsync(a0);
    #[cfg(feature = "fs")]
    nr::FACCESSAT => |f, [a0, a1, a2, ..]| attrs::faccessat(a0, a1, a2, 0);
    #[cfg(feature = "fs")]
    nr::FACCESSAT2 => |f, [a0, a1, a2, a3, ..]| attrs::faccessat(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::ACCESS => |f, [a0, a1, ..]| attrs::faccessat(CWD, a0, a1, 0);
    #[cfg(feature = "fs")]
    nr::FCHMODAT => |f, [a0, a1, a2, ..]| attrs::fchmodat(a0, a1, a2, 0);
    #[cfg(feature = "fs")]
    nr::FCHMODAT2 => |f, [a0, a1, a2, a3, ..]| attrs::fchmodat(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::CHMOD => |f, [a0, a1, ..]| attrs::fchmodat(CWD, a0, a1, 0);
    #[cfg(feature = "fs")]
    nr::FCHMOD => |f, [a0, a1, ..]| attrs::fchmod(a0, a1);
    #[cfg(feature = "fs")]
    nr::FCHOWNAT => |f, [a0, a1, a2, a3, a4, _]| attrs::fchownat(a0, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::CHOWN => |f, [a0, a1, a2, ..]| attrs::fchownat(CWD, a0, a1, a2, 0);
    #[cfg(feature = "fs")]
    nr::LCHOWN => |f, [a0, a1, a2, ..]| attrs::fchownat(CWD, a0, a1, a2, 0x100);
    #[cfg(feature = "fs")]
    nr::FCHOWN => |f, [a0, a1, a2, ..]| attrs::fchown(a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::MKNODAT => |f, [a0, a1, a2, a3, ..]| attrs::mknodat(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::MKNOD => |f, [a0, a1, a2, ..]| attrs::mknodat(CWD, a0, a1, a2);
    #[cfg(feature = "fs")]
    nr::FALLOCATE => |f, [a0, a1, a2, a3, ..]| attrs::fallocate(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::COPY_FILE_RANGE => |f, [a0, a1, a2, a3, a4, a5]| attrs::copy_file_range(a0, a1, a2, a3, a4, a5);
    #[cfg(feature = "fs")]
    nr::FLOCK => |f, [a0, a1, ..]| locks::flock(a0, a1);
    #[cfg(feature = "fs")]
    nr::UTIMENSAT => |f, [a0, a1, a2, a3, ..]| files::utimensat(a0, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::STATFS => |f, [a0, a1, ..]| files::statfs(a0, a1);
    #[cfg(feature = "fs")]
    nr::GETCWD => |f, [a0, a1, ..]| files::getcwd(a0, a1);
    #[cfg(feature = "fs")]
    nr::CHDIR => |f, [a0, ..]| files::chdir(a0);
    #[cfg(feature = "fs")]
    nr::FCHDIR => |f, [a0, ..]| files::fchdir(a0);
    #[cfg(feature = "fs")]
    nr::FSTATFS => |f, [a0, a1, ..]| files::fstatfs(a0, a1);
    #[cfg(feature = "fs")]
    nr::SYNC => |f, _| files::sync();
    #[cfg(feature = "fs")]
    nr::MOUNT => |f, [a0, a1, a2, a3, a4, ..]| crate::mounts::mount(a0, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::UMOUNT2 => |f, [a0, a1, ..]| crate::mounts::umount2(a0, a1);
    #[cfg(feature = "fs")]
    nr::SYNCFS => |f, [a0, ..]| files::syncfs(a0);
    #[cfg(feature = "fs")]
    nr::FADVISE64 => |f, [a0, a1, a2, a3, ..]| files::fadvise64(a0, a1, a2, a3);
    // Extended attributes (see `attrs::getxattr`).
    #[cfg(feature = "fs")]
    nr::GETXATTR => |f, [a0, a1, a2, a3, ..]| attrs::getxattr(XattrTarget::Path { path: a0, follow: true }, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::LGETXATTR => |f, [a0, a1, a2, a3, ..]| attrs::getxattr(XattrTarget::Path { path: a0, follow: false }, a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::FGETXATTR => |f, [a0, a1, a2, a3, ..]| attrs::getxattr(XattrTarget::Fd(a0), a1, a2, a3);
    #[cfg(feature = "fs")]
    nr::SETXATTR => |f, [a0, a1, a2, a3, a4, _]| attrs::setxattr(XattrTarget::Path { path: a0, follow: true }, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::LSETXATTR => |f, [a0, a1, a2, a3, a4, _]| attrs::setxattr(XattrTarget::Path { path: a0, follow: false }, a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::FSETXATTR => |f, [a0, a1, a2, a3, a4, _]| attrs::setxattr(XattrTarget::Fd(a0), a1, a2, a3, a4);
    #[cfg(feature = "fs")]
    nr::LISTXATTR => |f, [a0, a1, a2, ..]| attrs::listxattr(XattrTarget::Path { path: a0, follow: true }, a1, a2);
    #[cfg(feature = "fs")]
    nr::LLISTXATTR => |f, [a0, a1, a2, ..]| attrs::listxattr(XattrTarget::Path { path: a0, follow: false }, a1, a2);
    #[cfg(feature = "fs")]
    nr::FLISTXATTR => |f, [a0, a1, a2, ..]| attrs::listxattr(XattrTarget::Fd(a0), a1, a2);
    #[cfg(feature = "fs")]
    nr::REMOVEXATTR => |f, [a0, a1, ..]| attrs::removexattr(XattrTarget::Path { path: a0, follow: true }, a1);
    #[cfg(feature = "fs")]
    nr::LREMOVEXATTR => |f, [a0, a1, ..]| attrs::removexattr(XattrTarget::Path { path: a0, follow: false }, a1);
    #[cfg(feature = "fs")]
    nr::FREMOVEXATTR => |f, [a0, a1, ..]| attrs::removexattr(XattrTarget::Fd(a0), a1);
}

/// `AT_FDCWD` as an argument value.
#[cfg(feature = "fs")]
const CWD: u64 = files::AT_FDCWD as u64;

/// A call this image cannot make (`execve` without the ELF loader).
#[cfg(not(feature = "elf"))]
fn unsupported(frame: &Frame) -> Result<u64> {
    log_unsupported("system call", frame.number());
    Err(Errno::ENOSYS)
}

#[cfg(feature = "fs")]
fn fstat(fd_number: u64, buf: u64) -> Result<u64> {
    files::fstat(fd_number, buf)
}

#[cfg(feature = "fs")]
fn lseek(fd_number: u64, offset: u64, whence: u64) -> Result<u64> {
    files::lseek(fd_number, offset, whence)
}

#[cfg(not(feature = "fs"))]
fn fstat(fd_number: u64, buf: u64) -> Result<u64> {
    fd::get(fd_number)?;
    let st = crate::abi::Stat { st_mode: 0o020620, st_rdev: (5 << 8) | 1, ..Default::default() };
    // SAFETY: checked by `user::write`.
    unsafe { user::write(buf, st)? };
    Ok(0)
}

#[cfg(not(feature = "fs"))]
fn lseek(fd_number: u64, _offset: u64, _whence: u64) -> Result<u64> {
    fd::get(fd_number).and(Err(Errno::ESPIPE))
}

fn yield_now() {
    #[cfg(feature = "threads")]
    libos::thread::yield_now();
}

fn read(fd_number: u64, buf: u64, len: u64) -> Result<u64> {
    let object = fd::get(fd_number)?;
    // SAFETY: checked by `slice_mut`; the C program vouches for the buffer (syscall contract).
    let buf = unsafe { user::slice_mut(buf, len)? };
    let _pin = inflight::pin(buf.as_ptr() as u64, buf.as_ptr() as u64 + len);
    object.read(buf).map(|n| n as u64)
}

fn write(fd_number: u64, buf: u64, len: u64) -> Result<u64> {
    let object = fd::get(fd_number)?;
    // SAFETY: as in `read`.
    let buf = unsafe { user::slice(buf, len)? };
    let _pin = inflight::pin(buf.as_ptr() as u64, buf.as_ptr() as u64 + len);
    object.write(buf).map(|n| n as u64)
}

fn pread(fd_number: u64, buf: u64, len: u64, offset: u64) -> Result<u64> {
    let object = fd::get(fd_number)?;
    if (offset as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: as in `read`.
    let buf = unsafe { user::slice_mut(buf, len)? };
    let _pin = inflight::pin(buf.as_ptr() as u64, buf.as_ptr() as u64 + len);
    object.read_at(offset, buf).map(|n| n as u64)
}

fn pwrite(fd_number: u64, buf: u64, len: u64, offset: u64) -> Result<u64> {
    let object = fd::get(fd_number)?;
    if (offset as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: as in `read`.
    let buf = unsafe { user::slice(buf, len)? };
    let _pin = inflight::pin(buf.as_ptr() as u64, buf.as_ptr() as u64 + len);
    object.write_at(offset, buf).map(|n| n as u64)
}

/// The buffers of a `readv`/`writev` iovec array, copied and checked before any I/O.
fn iovecs(iov: u64, count: u64) -> Result<user::Iovecs> {
    if count > user::IOV_MAX {
        return Err(Errno::EINVAL);
    }
    user::iovec_buffers(iov, count)
}

/// Moves bytes through each of `buffers` in order with `step` (which gets the buffer and
/// returns the bytes it moved), stopping after a short step: the total. As Linux, an error
/// (a bad buffer, a failed transfer) is the result only when nothing moved yet; later it ends
/// the transfer with the bytes so far.
fn vectored(buffers: &[(u64, u64)], mut step: impl FnMut(u64, u64) -> Result<usize>) -> Result<u64> {
    let mut total = 0u64;
    for &(base, len) in buffers {
        let n = match step(base, len) {
            Ok(n) => n,
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        };
        total += n as u64;
        if (n as u64) < len {
            break;
        }
    }
    Ok(total)
}

/// `readv`: fills the buffers in order (see [`vectored`]).
fn readv(fd_number: u64, iov: u64, count: u64) -> Result<u64> {
    let object = fd::get(fd_number)?;
    let buffers = iovecs(iov, count)?;
    let _pin = inflight::pin_all(&buffers);
    vectored(&buffers, |base, len| {
        // SAFETY: as in `read`; the range was checked by `iovecs`.
        object.read(unsafe { user::slice_mut(base, len)? })
    })
}

/// `writev`: writes the buffers in order (see [`vectored`]); a socket sends them as one.
fn writev(fd_number: u64, iov: u64, count: u64) -> Result<u64> {
    let object = fd::get(fd_number)?;
    if let Object::Socket(socket) = &*object {
        return net::writev(socket, iov, count); // the pieces leave together
    }
    let buffers = iovecs(iov, count)?;
    let _pin = inflight::pin_all(&buffers);
    vectored(&buffers, |base, len| {
        // SAFETY: as in `read`; the range was checked by `iovecs`.
        object.write(unsafe { user::slice(base, len)? })
    })
}

#[cfg(not(target_arch = "aarch64"))]
fn arch_prctl(code: u64, addr: u64) -> Result<u64> {
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    let entry = libos::syscall::user_entry().ok_or(Errno::ENOSYS)?;
    match code {
        ARCH_SET_FS => {
            if addr >= user::ADDRESS_LIMIT {
                return Err(Errno::EPERM);
            }
            entry.set_thread_pointer(addr as usize);
            Ok(0)
        }
        ARCH_GET_FS => {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(addr, entry.thread_pointer() as u64)? };
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(target_arch = "aarch64")]
fn arch_prctl(_: u64, _: u64) -> Result<u64> {
    Err(Errno::ENOSYS)
}

fn uname(out: u64) -> Result<u64> {
    let mut buf = [0u8; 6 * crate::abi::UTSNAME_FIELD];
    let fields = ["Linux", "libos", "6.1.0-libos", "#1 libos posix-shim", crate::abi::MACHINE, "(none)"];
    for (i, value) in fields.iter().enumerate() {
        let at = i * crate::abi::UTSNAME_FIELD;
        buf[at..at + value.len()].copy_from_slice(value.as_bytes());
    }
    // SAFETY: checked by `user::write`.
    unsafe { user::write(out, buf)? };
    Ok(0)
}

fn getrandom(buf: u64, len: u64, flags: u64) -> Result<u64> {
    const GRND_NONBLOCK: u64 = 1;
    const GRND_RANDOM: u64 = 2;
    const GRND_INSECURE: u64 = 4;
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0 || flags & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE) {
        return Err(Errno::EINVAL);
    }
    // As Linux: `GRND_INSECURE` never waits; otherwise bytes come only from a seeded
    // generator, so before a source seeded it (a machine without virtio-rng or a CPU random
    // instruction) `GRND_NONBLOCK` is `EAGAIN` and a plain call blocks, interruptibly.
    // `GRND_RANDOM` changes nothing since Linux 5.6.
    if flags & GRND_INSECURE == 0 && !libos::random::is_seeded() {
        if flags & GRND_NONBLOCK != 0 {
            return Err(Errno::EAGAIN);
        }
        signal::wait_interruptible(libos::random::seeded_waiters(), libos::random::is_seeded, None)?;
        if !libos::random::is_seeded() {
            return Err(Errno::ERESTARTSYS); // a signal came first
        }
    }
    // SAFETY: checked by `slice_mut`. Taken after the wait: the program may have changed its
    // mappings meanwhile.
    let out = unsafe { user::slice_mut(buf, len)? };
    if flags & GRND_INSECURE != 0 {
        libos::random::fill_insecure(out);
    } else {
        libos::random::fill(out)?;
    }
    Ok(len)
}

fn sysinfo(out: u64) -> Result<u64> {
    let stats = libos::heap_stats();
    let uptime = Instant::now().since_origin().as_secs();
    // struct sysinfo (112 bytes on 64-bit): uptime, loads[3], totalram, freeram, sharedram,
    // bufferram, totalswap, freeswap, procs (u16) + pad, totalhigh, freehigh, mem_unit (u32).
    let mut words = [0u64; 14];
    words[0] = uptime;
    words[4] = stats.claimed;
    words[5] = stats.claimed.saturating_sub(stats.in_use);
    words[10] = 1; // procs
    words[13] = 1; // mem_unit
    // SAFETY: checked by `user::write`.
    unsafe { user::write(out, words)? };
    Ok(0)
}

fn prlimit64(pid: u64, resource: u64, new: u64, old: u64) -> Result<u64> {
    const RLIMIT_STACK: u64 = 3;
    const RLIMIT_NOFILE: u64 = 7;
    const RLIM_INFINITY: u64 = u64::MAX;
    if pid != 0 && pid != process::pid() {
        return Err(Errno::ESRCH);
    }
    if resource >= 16 {
        return Err(Errno::EINVAL);
    }
    if new != 0 {
        // Limits are fixed; lowering one is allowed to succeed only where it changes nothing
        // the program could notice: refuse honestly.
        return Err(Errno::EPERM);
    }
    if old != 0 {
        let limit = match resource {
            RLIMIT_STACK => [crate::run::MAIN_STACK as u64, crate::run::MAIN_STACK as u64],
            RLIMIT_NOFILE => [fd::MAX_FDS as u64; 2],
            _ => [RLIM_INFINITY; 2],
        };
        // SAFETY: checked by `user::write`.
        unsafe { user::write(old, limit)? };
    }
    Ok(0)
}
