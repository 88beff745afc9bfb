//! Threads and futexes: `clone` with the pthread flag set (feature `threads`), `futex`
//! (wait/wake/requeue/bitset, with timeouts), `set_tid_address`, `set_robust_list`, thread
//! `exit`, `gettid`.
//!
//! A C thread is a libos thread that enters the C code at the `clone` call's return address
//! with the caller's registers, the new stack, the result register 0 and (with `CLONE_SETTLS`)
//! its own thread pointer, which the platform's context switch keeps per thread. Thread ids:
//! the first thread is [`crate::dispatch::PID`] (as on Linux, the main thread's id is the
//! process id), later ones count up.
//!
//! A futex is the waiters on one address, kept in a fixed table of hashed buckets of
//! intrusive lists whose nodes live on the waiting threads' stacks, so waiting allocates
//! nothing (a thread can block with the heap exhausted). `FUTEX_WAIT` checks the value and
//! enqueues under the table lock, so a `FUTEX_WAKE` after the value changed cannot be missed;
//! each waiter blocks on its own wait queue until a waker marks it woken (and unparks it, both
//! under the table lock, after which the waker never touches the node again) or its deadline
//! passes or a signal comes (then it unlinks itself under the table lock).

use crate::user;
use alloc::collections::BTreeSet;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use intrusive_collections::{LinkedList, LinkedListAtomicLink, UnsafeRef, intrusive_adapter};
use libos::sync::{Mutex, ThreadId, WaitQueue};
use libos::time::Instant;
use libos::{Errno, Result};

/// Live thread ids.
static TIDS: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
#[cfg_attr(not(feature = "threads"), allow(dead_code))]
static NEXT_TID: AtomicU64 = AtomicU64::new(crate::dispatch::PID + 1);

/// Per-thread facts the shim keeps.
#[derive(Clone, Copy, Default)]
struct CThread {
    tid: u64,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: zeroed and futex-woken at thread exit.
    clear_tid: u64,
    /// A checked `clone` waiting for the complete frame at the call's return ([`finish_clone`]).
    pending_clone: Option<CloneRequest>,
}

/// The arguments of a `clone` that passed its checks.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "threads"), allow(dead_code))] // without threads, `clone` stops earlier
struct CloneRequest {
    flags: u64,
    stack: u64,
    ptid: u64,
    ctid: u64,
    tls: u64,
}

#[cfg(feature = "threads")]
static CURRENT: libos::thread::tls::Key<CThread> = libos::thread::tls::Key::new();
#[cfg(not(feature = "threads"))]
static MAIN: Mutex<CThread> = Mutex::new(CThread { tid: crate::dispatch::PID, clear_tid: 0, pending_clone: None });

fn current() -> CThread {
    #[cfg(feature = "threads")]
    {
        CURRENT.with(|c| c.copied()).unwrap_or(CThread { tid: crate::dispatch::PID, ..CThread::default() })
    }
    #[cfg(not(feature = "threads"))]
    {
        *MAIN.lock()
    }
}

fn set_current(thread: CThread) {
    #[cfg(feature = "threads")]
    CURRENT.set(thread);
    #[cfg(not(feature = "threads"))]
    {
        *MAIN.lock() = thread;
    }
}

/// Registers the program's first thread (before `_start`), blocking `blocked`.
pub fn init_main_thread(blocked: u64) {
    TIDS.lock().insert(crate::dispatch::PID);
    set_current(CThread { tid: crate::dispatch::PID, ..CThread::default() });
    crate::signal::thread_started(crate::dispatch::PID, blocked);
}

/// `gettid()`.
pub fn gettid() -> u64 {
    current().tid
}

/// Whether `tid` is a live thread of the program.
pub fn tid_exists(tid: u64) -> bool {
    TIDS.lock().contains(&tid)
}

/// `set_tid_address(addr)`: returns the caller's tid.
pub fn set_tid_address(addr: u64) -> u64 {
    let mut me = current();
    me.clear_tid = addr;
    set_current(me);
    me.tid
}

/// `set_robust_list(head, len)`: recorded as accepted. Robust futexes matter when a thread
/// dies holding a lock; threads here only end through `exit`, after unlocking.
pub fn set_robust_list(_head: u64, len: u64) -> Result<u64> {
    if len != 24 { Err(Errno::EINVAL) } else { Ok(0) }
}

/// Thread `exit(code)`: clears and wakes the `clear_tid` word, then ends the thread; the last
/// thread to exit ends the program with `code`.
pub fn exit_thread(code: i32) -> ! {
    // Its joiner may unmap this stack once the id is cleared; this thread still runs here.
    crate::mem::thread_ending();
    let me = current();
    if me.clear_tid != 0 {
        // SAFETY: the address was given by the C program for exactly this (set_tid_address
        // or CLONE_CHILD_CLEARTID) and is checked by `user::write`.
        if unsafe { user::write(me.clear_tid, 0u32) }.is_ok() {
            futex_wake(me.clear_tid, 1, u32::MAX);
        }
    }
    crate::signal::thread_exited();
    let last = {
        let mut tids = TIDS.lock();
        tids.remove(&me.tid);
        tids.is_empty()
    };
    if last {
        crate::dispatch::exit_program(code);
    }
    #[cfg(feature = "threads")]
    libos::thread::exit();
    #[cfg(not(feature = "threads"))]
    crate::dispatch::exit_program(code)
}

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
/// What a thread (not a process) needs: shared memory, files, handlers, thread group.
const THREAD_FLAGS: u64 = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const SUPPORTED: u64 = THREAD_FLAGS
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID
    | 0xff; // the exit signal (ignored for threads)

/// Stack of the libos thread under a C thread: only the few frames before entering C code
/// live there (system calls run on the C thread's own stack).
#[cfg(feature = "threads")]
const KERNEL_STACK: usize = 16 * 1024;

/// `clone(flags, stack, ptid, ctid, tls)` (arguments in Linux order for the architecture,
/// already sorted by the dispatcher). The child starts with the parent's registers, which the
/// system-call trap saves completely only at a return with outstanding work: so this checks
/// the call, asks for that return, and [`finish_clone`] creates the thread there.
pub fn clone(flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> Result<u64> {
    if flags & CLONE_THREAD == 0 {
        return clone_process(flags, stack, ptid, ctid);
    }
    if flags & THREAD_FLAGS != THREAD_FLAGS || flags & CLONE_VFORK != 0 {
        log::warn!("posix-shim: clone flags {flags:#x} (a thread without all of CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND): EINVAL");
        return Err(Errno::EINVAL);
    }
    if flags & !SUPPORTED != 0 {
        log::warn!("posix-shim: clone flags {:#x} are not supported: EINVAL", flags & !SUPPORTED);
        return Err(Errno::EINVAL);
    }
    if stack == 0 {
        return Err(Errno::EINVAL);
    }
    if !cfg!(feature = "threads") {
        log::warn!("posix-shim: clone needs the `threads` feature of posix-shim: EAGAIN");
        return Err(Errno::EAGAIN);
    }
    let mut me = current();
    me.pending_clone = Some(CloneRequest { flags, stack, ptid, ctid, tls });
    set_current(me);
    libos::syscall::request_return_work();
    Ok(0) // replaced by `finish_clone`
}

/// At the return of this thread's `clone` (the return hook, with the complete frame): creates
/// the thread (or the process, see [`clone_process`]) and puts its id (or `-errno`) in the
/// frame's result register.
pub fn finish_clone(frame: &mut libos::syscall::Frame) {
    let mut me = current();
    let Some(request) = me.pending_clone.take() else { return };
    set_current(me);
    libos::syscall::return_work_done();
    let result = if request.flags & CLONE_THREAD == 0 { fork_onto_stack(frame, request) } else { spawn(frame, request) };
    frame.set_result(crate::dispatch::to_return(result) as u64);
}

/// Flags a new process may be cloned with: fork's (`SIGCHLD` as the exit signal, the tid
/// stores glibc's fork asks for) and posix_spawn's `CLONE_VM | CLONE_VFORK` with a stack,
/// which a copy of the VM serves (the child cannot change what the parent sees).
const PROCESS_FLAGS: u64 = 0xff | CLONE_VM | CLONE_VFORK | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;

/// `clone` of a new process (no `CLONE_THREAD`): a fork ([`crate::process::fork`]). Without a
/// stack it happens now; with one (musl's `posix_spawn`) at the call's return, where the
/// child's stack pointer can be moved to it.
fn clone_process(flags: u64, stack: u64, ptid: u64, ctid: u64) -> Result<u64> {
    // `CLONE_VM` without a stack is only vfork's (aarch64 musl and glibc): the child would run
    // on the parent's stack, which a copy of the VM makes harmless.
    if flags & !PROCESS_FLAGS != 0 || (flags & CLONE_VM != 0 && stack == 0 && flags & CLONE_VFORK == 0) {
        log::warn!("posix-shim: clone of a process with flags {:#x}: EINVAL", flags & !PROCESS_FLAGS);
        return Err(Errno::EINVAL);
    }
    if stack == 0 {
        let child = if flags & CLONE_VFORK != 0 { crate::process::vfork()? } else { crate::process::fork()? };
        settle_tids(flags, child, ptid, ctid)?;
        return Ok(child);
    }
    let mut me = current();
    me.pending_clone = Some(CloneRequest { flags, stack, ptid, ctid, tls: 0 });
    set_current(me);
    libos::syscall::request_return_work();
    Ok(0) // replaced by `finish_clone`
}

/// Bytes of the stack a process clone's child gets instead of the one it passed.
const SPAWN_STACK: u64 = 256 * 1024;
/// Bytes from the top of the passed stack that move with it: what the C library's `clone`
/// stored there for its child (musl: the function and its argument).
const SPAWN_STACK_CARRIED: u64 = 64;

/// A fork whose child continues on a stack of its own (the return hook's half of
/// [`clone_process`]). The C library passed `request.stack`, meant for a child sharing its
/// memory (musl's `posix_spawn`: 5 KiB inside the parent's frame), but system calls and
/// interrupts here run on the program's stack and need more than that (an interrupt on it
/// overwrote the parent's `posix_spawn` arguments below it). The child is a copy, so it moves
/// to a fresh [`SPAWN_STACK`]-byte mapping with the top of the passed stack carried over.
fn fork_onto_stack(frame: &mut libos::syscall::Frame, request: CloneRequest) -> Result<u64> {
    let child = crate::process::fork()?;
    if child == 0 {
        frame.set_stack_pointer(roomy_copy_of_stack(request.stack).unwrap_or(request.stack));
    }
    settle_tids(request.flags, child, request.ptid, request.ctid)?;
    if child != 0 && request.flags & CLONE_VFORK != 0 {
        crate::process::wait_for_vfork_child(child);
    }
    Ok(child)
}

/// A new mapping whose top holds the [`SPAWN_STACK_CARRIED`] bytes at `stack` (same alignment);
/// the stack pointer to continue with. `None` when it cannot be made (the passed stack is used).
fn roomy_copy_of_stack(stack: u64) -> Option<u64> {
    const PROT_READ_WRITE: u64 = 3;
    const MAP_PRIVATE_ANONYMOUS_STACK: u64 = 0x02 | 0x20 | 0x20000;
    // SAFETY: checked by `user::slice`; the C library stored these bytes for its child.
    let carried = unsafe { user::slice(stack, SPAWN_STACK_CARRIED) }.ok()?.to_vec();
    let base = crate::mem::mmap(0, SPAWN_STACK, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS_STACK, u64::MAX, 0).ok()?;
    let top = base + SPAWN_STACK - 4096 + (stack & 15);
    // SAFETY: inside the mapping just made (4 KiB below its end, 64 bytes long).
    let room = unsafe { user::slice_mut(top, SPAWN_STACK_CARRIED) }.ok()?;
    room.copy_from_slice(&carried);
    Some(top)
}

/// The tid stores of a process clone: the parent's `CLONE_PARENT_SETTID` gets the child's pid;
/// the child's `CLONE_CHILD_SETTID` its own pid, and `CLONE_CHILD_CLEARTID` arms its clear.
fn settle_tids(flags: u64, child: u64, ptid: u64, ctid: u64) -> Result<()> {
    if child != 0 {
        if flags & CLONE_PARENT_SETTID != 0 {
            // SAFETY: checked by `user::write`; the C program passed this address for the tid.
            unsafe { user::write(ptid, child as u32)? };
        }
        return Ok(());
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        // SAFETY: as above.
        unsafe { user::write(ctid, crate::process::pid() as u32)? };
    }
    if flags & CLONE_CHILD_CLEARTID != 0 {
        let mut me = current();
        me.clear_tid = ctid;
        set_current(me);
    }
    Ok(())
}

/// The kernel threads of C threads a fork left behind in the child (see
/// [`forget_other_threads`]). Interrupt-safe: the return hook reads it.
static FORGOTTEN: libos::sync::IrqSpinLock<alloc::vec::Vec<ThreadId>> = libos::sync::IrqSpinLock::new(alloc::vec::Vec::new());

/// In a fresh child: only the calling thread exists. The others' kernel threads are copies
/// that must never run program code again: each ends at its next return to the program
/// ([`end_if_forgotten`]); one blocked for good stays blocked (its stack is the only cost).
pub fn forget_other_threads() {
    let me = current().tid;
    let others: alloc::vec::Vec<u64> = {
        let mut tids = TIDS.lock();
        let others = tids.iter().copied().filter(|&t| t != me).collect();
        tids.retain(|&t| t == me);
        others
    };
    let threads: alloc::vec::Vec<ThreadId> = others.into_iter().filter_map(crate::signal::kernel_thread).collect();
    if threads.is_empty() {
        return;
    }
    let mut forgotten = FORGOTTEN.lock();
    if forgotten.is_empty() {
        libos::syscall::request_return_work();
    }
    forgotten.extend(threads);
    ANY_FORGOTTEN.store(true, Ordering::Release);
}

/// Whether [`FORGOTTEN`] may hold a thread: the return hook's check costs one load otherwise.
static ANY_FORGOTTEN: AtomicBool = AtomicBool::new(false);

/// `execve`: every thread of the old program goes, the caller too (its kernel thread stays,
/// waiting for the new program's main thread; it never returns to the old program).
#[cfg(feature = "elf")]
pub fn forget_all_threads() {
    forget_other_threads();
    TIDS.lock().clear();
    crate::signal::thread_exited();
}

/// The return hook's first check: a thread a fork left behind ends here, before it runs any
/// more program code.
pub fn end_if_forgotten() {
    if !ANY_FORGOTTEN.load(Ordering::Acquire) {
        return;
    }
    let me = libos::sync::current_thread();
    {
        let mut forgotten = FORGOTTEN.lock();
        let Some(i) = forgotten.iter().position(|&t| t == me) else { return };
        forgotten.swap_remove(i);
        if forgotten.is_empty() {
            ANY_FORGOTTEN.store(false, Ordering::Release);
            libos::syscall::return_work_done();
        }
    }
    #[cfg(feature = "threads")]
    libos::thread::exit();
}

#[cfg(feature = "threads")]
fn spawn(frame: &libos::syscall::Frame, request: CloneRequest) -> Result<u64> {
    use alloc::boxed::Box;
    let CloneRequest { flags, stack, ptid, ctid, tls } = request;
    let entry = libos::syscall::user_entry().ok_or(Errno::ENOSYS)?;
    let tid = NEXT_TID.fetch_add(1, Ordering::Relaxed);
    let mut child = Box::new(frame.clone());
    child.set_stack_pointer(stack);
    child.set_result(0);
    let clear_tid = if flags & CLONE_CHILD_CLEARTID != 0 { ctid } else { 0 };
    if flags & CLONE_PARENT_SETTID != 0 {
        // SAFETY: checked by `user::write`; the C program passed this address for the tid.
        unsafe { user::write(ptid, tid as u32)? };
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        // SAFETY: as above (same memory: threads share it).
        unsafe { user::write(ctid, tid as u32)? };
    }
    TIDS.lock().insert(tid);
    let parent_tp = entry.thread_pointer();
    let blocked = crate::signal::blocked();
    let spawned = libos::thread::Builder::new().name(alloc::format!("c-thread-{tid}")).stack_size(KERNEL_STACK).spawn(move || {
        set_current(CThread { tid, clear_tid, pending_clone: None });
        crate::signal::thread_started(tid, blocked);
        entry.set_thread_pointer(if flags & CLONE_SETTLS != 0 { tls as usize } else { parent_tp });
        let frame = *child;
        // SAFETY: the frame is the parent's at its `clone`, with the stack the C program
        // allocated for this thread; the code continues after the `syscall`/`svc`.
        unsafe { entry.enter(&frame) }
    });
    match spawned {
        Ok(handle) => {
            drop(handle); // detached: C threads end through `exit`
            Ok(tid)
        }
        Err(e) => {
            TIDS.lock().remove(&tid);
            Err(if e == Errno::ENOMEM { Errno::EAGAIN } else { e })
        }
    }
}

#[cfg(not(feature = "threads"))]
fn spawn(_: &libos::syscall::Frame, _: CloneRequest) -> Result<u64> {
    Err(Errno::EAGAIN) // `clone` refused it already
}

/// `sched_getaffinity(pid, size, mask)`: the CPUs C thread `pid` (0: the caller) may run on,
/// among those that run threads (8 bytes: up to 64 CPUs).
pub fn sched_getaffinity(pid: u64, size: u64, mask: u64) -> Result<u64> {
    let thread = affinity_target(pid)?;
    if size < 8 || size % 8 != 0 {
        return Err(Errno::EINVAL);
    }
    let set = cpu_set(thread);
    // SAFETY: checked by `user::write`.
    unsafe { user::write(mask, set)? };
    Ok(8)
}

/// `sched_setaffinity(pid, size, mask)`: the C thread `pid` (0: the caller) runs only on the
/// CPUs of `mask` from now on (the caller moves at once). CPUs that do not exist are ignored;
/// a mask without a CPU the program may use is `EINVAL`, as Linux.
pub fn sched_setaffinity(pid: u64, size: u64, mask: u64) -> Result<u64> {
    let thread = affinity_target(pid)?;
    if size == 0 {
        return Err(Errno::EINVAL);
    }
    // Bits beyond the first 64 CPUs name CPUs that cannot exist here.
    let mut bytes = [0u8; 8];
    let len = size.min(8) as usize;
    // SAFETY: checked by `user::slice`; the C program vouches for the buffer.
    bytes[..len].copy_from_slice(unsafe { user::slice(mask, len as u64)? });
    let wanted = u64::from_le_bytes(bytes) & usable_cpus();
    if wanted == 0 {
        return Err(Errno::EINVAL);
    }
    set_cpu_set(thread, wanted)?;
    Ok(0)
}

/// The kernel thread of C thread `pid` (0: the caller), for the affinity calls.
fn affinity_target(pid: u64) -> Result<ThreadId> {
    match pid {
        0 => Ok(libos::sync::current_thread()),
        _ => crate::signal::kernel_thread(pid).ok_or(Errno::ESRCH),
    }
}

/// The CPUs the program's threads may use: every CPU that runs threads. (Linux code runs on
/// several CPUs at once because the platforms keep the system-call trap's "in Linux code" flag
/// and x86_64's `syscall` MSRs per CPU, shoot TLB entries down after `mmap`/`mprotect`, and a
/// signal interrupts its thread on another CPU: `libos::sync::kick`.)
#[cfg(feature = "threads")]
fn usable_cpus() -> u64 {
    libos::thread::cpus()
}

#[cfg(feature = "threads")]
fn cpu_set(thread: ThreadId) -> u64 {
    libos::thread::affinity_of(thread).unwrap_or(1) & usable_cpus()
}

#[cfg(feature = "threads")]
fn set_cpu_set(thread: ThreadId, cpus: u64) -> Result<()> {
    libos::thread::set_affinity(thread, cpus)
}

/// The CPUs the calling thread may run on (`/proc/self/status`).
pub fn process_cpus() -> u64 {
    cpu_set(libos::sync::current_thread())
}

/// Without a scheduler the program runs on the boot CPU alone.
#[cfg(not(feature = "threads"))]
fn usable_cpus() -> u64 {
    1
}

#[cfg(not(feature = "threads"))]
fn cpu_set(_: ThreadId) -> u64 {
    1
}

#[cfg(not(feature = "threads"))]
fn set_cpu_set(_: ThreadId, _: u64) -> Result<()> {
    Ok(())
}

/// One thread in `FUTEX_WAIT`: a node on its own stack, linked into its address's bucket
/// while it waits. (Atomic fields only so the node is `Sync`; all of them but `woken`, which
/// the waiter reads in its wait condition, change only under the table lock.)
struct Waiter {
    link: LinkedListAtomicLink,
    /// The futex word's address (moved by `FUTEX_REQUEUE`, with the node's bucket).
    addr: AtomicU64,
    bitset: u32,
    thread: ThreadId,
    /// Set by the waker that unlinked the node.
    woken: AtomicBool,
    queue: WaitQueue,
}

intrusive_adapter!(WaiterAdapter = UnsafeRef<Waiter>: Waiter { link => LinkedListAtomicLink });

/// Buckets of the futex table: addresses hash to one; a wake scans only its bucket.
const BUCKETS: usize = 64;

struct Table {
    buckets: [LinkedList<WaiterAdapter>; BUCKETS],
}

fn bucket(addr: u64) -> usize {
    ((addr >> 2) ^ (addr >> 12)) as usize % BUCKETS
}

static FUTEXES: Mutex<Table> = Mutex::new(Table { buckets: [const { LinkedList::new(WaiterAdapter::NEW) }; BUCKETS] });

impl Table {
    /// Unlinks `waiter` from its bucket if it is linked.
    fn unlink(&mut self, waiter: &Waiter) -> bool {
        if !waiter.link.is_linked() {
            return false;
        }
        let list = &mut self.buckets[bucket(waiter.addr.load(Ordering::Relaxed))];
        // SAFETY: a linked node is in the bucket of its `addr` (both change together, under
        // the table lock, which we hold).
        unsafe { list.cursor_mut_from_ptr(waiter) }.remove();
        true
    }
}

/// Marks a waiter just unlinked from the table as woken and unparks its thread. Called with
/// the table lock held: once it is released the waiter may return, so the node must not be
/// touched after.
fn wake(waiter: &Waiter) {
    waiter.woken.store(true, Ordering::Release);
    libos::sync::unpark(waiter.thread);
}

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// `futex(addr, op, val, timeout_or_val2, addr2, val3)`.
pub fn futex(addr: u64, op: u64, val: u64, timeout: u64, addr2: u64, val3: u64) -> Result<u64> {
    if addr % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    user::check_access(addr, 4, libos::hal::Access::Read)?;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { u32::MAX } else { val3 as u32 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let deadline = if timeout == 0 {
                None
            } else {
                let d = crate::clocks::duration_of(timeout)?;
                // FUTEX_WAIT: relative; FUTEX_WAIT_BITSET: absolute on the chosen clock
                // (CLOCK_REALTIME converts through the wall clock, `clocks::instant_of_clock`).
                Some(if cmd == FUTEX_WAIT { Instant::now() + d } else { crate::clocks::instant_of_clock(op & FUTEX_CLOCK_REALTIME != 0, d) })
            };
            futex_wait(addr, val as u32, bitset, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 as u32 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            Ok(futex_wake(addr, val as u32, bitset))
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            if addr2 % 4 != 0 {
                return Err(Errno::EINVAL);
            }
            user::check_access(addr2, 4, libos::hal::Access::Read)?;
            futex_requeue(addr, val as u32, timeout as u32, addr2, (cmd == FUTEX_CMP_REQUEUE).then_some(val3 as u32))
        }
        _ => {
            crate::dispatch::log_unsupported("futex operation", op);
            Err(Errno::ENOSYS)
        }
    }
}

fn load(addr: u64) -> u32 {
    // SAFETY: the range was checked by the caller; futex words are read atomically by Linux.
    unsafe { (*(addr as *const core::sync::atomic::AtomicU32)).load(Ordering::SeqCst) }
}

fn futex_wait(addr: u64, expected: u32, bitset: u32, deadline: Option<Instant>) -> Result<u64> {
    let waiter = Waiter {
        link: LinkedListAtomicLink::new(),
        addr: AtomicU64::new(addr),
        bitset,
        thread: libos::sync::current_thread(),
        woken: AtomicBool::new(false),
        queue: WaitQueue::new(),
    };
    {
        let mut table = FUTEXES.lock();
        if load(addr) != expected {
            return Err(Errno::EAGAIN);
        }
        // SAFETY: the node outlives its membership: it is unlinked under the table lock before
        // this frame ends, by a waker or below (nothing in between can unwind: no call there
        // panics, and the kernel aborts on panic).
        table.buckets[bucket(addr)].push_back(unsafe { UnsafeRef::from_raw(&waiter) });
    }
    let waited = crate::signal::wait_interruptible(&waiter.queue, || waiter.woken.load(Ordering::Acquire), deadline);
    // Taken even when woken: the waker may still hold the lock (and the node) until it is done.
    let mut table = FUTEXES.lock();
    if !table.unlink(&waiter) {
        return Ok(0); // a waker took us off the list and counted us as woken
    }
    // Timed out, or woken without `woken`: a signal (restartable, see `signal::restart`).
    Err(match waited {
        Ok(false) => Errno::ETIMEDOUT,
        Ok(true) => Errno::ERESTARTSYS,
        Err(e) => e,
    })
}

/// Wakes up to `count` waiters on `addr` whose bitset intersects `bitset`; returns how many.
pub fn futex_wake(addr: u64, count: u32, bitset: u32) -> u64 {
    let mut table = FUTEXES.lock();
    let mut cursor = table.buckets[bucket(addr)].front_mut();
    let mut woken = 0;
    while woken < u64::from(count) {
        let Some(waiter) = cursor.get() else { break };
        if waiter.addr.load(Ordering::Relaxed) == addr && waiter.bitset & bitset != 0 {
            let waiter = cursor.remove().expect("the cursor is on a node");
            wake(&waiter);
            woken += 1;
        } else {
            cursor.move_next();
        }
    }
    woken
}

fn futex_requeue(addr: u64, wake_count: u32, requeue: u32, addr2: u64, compare: Option<u32>) -> Result<u64> {
    let mut table = FUTEXES.lock();
    if let Some(expected) = compare {
        if load(addr) != expected {
            return Err(Errno::EAGAIN);
        }
    }
    // Moved nodes wait here (a list on this stack, so nothing allocates) until the cursor on
    // the first bucket is done, then go to `addr2`'s bucket.
    let mut moved = LinkedList::new(WaiterAdapter::NEW);
    let (mut woken, mut requeued) = (0u64, 0u64);
    let mut cursor = table.buckets[bucket(addr)].front_mut();
    while woken < u64::from(wake_count) || requeued < u64::from(requeue) {
        let Some(waiter) = cursor.get() else { break };
        if waiter.addr.load(Ordering::Relaxed) != addr {
            cursor.move_next();
            continue;
        }
        let waiter = cursor.remove().expect("the cursor is on a node");
        if woken < u64::from(wake_count) {
            wake(&waiter);
            woken += 1;
        } else {
            waiter.addr.store(addr2, Ordering::Relaxed);
            moved.push_back(waiter);
            requeued += 1;
        }
    }
    let target = &mut table.buckets[bucket(addr2)];
    while let Some(waiter) = moved.pop_front() {
        target.push_back(waiter);
    }
    Ok(woken)
}
