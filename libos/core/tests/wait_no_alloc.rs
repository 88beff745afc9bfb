//! Regression test: blocking on a [`WaitQueue`] and being woken allocates nothing, so a thread can
//! always block, even when the heap is exhausted (issue 18, item 13).
//!
//! The test binary installs a counting global allocator that counts only while a thread-local
//! "watch" flag is set, and registers a scheduler hook backed by host threads
//! (`std::thread::park`/`unpark`), so the core's real wait-queue code runs unchanged. Thread
//! registration (which does allocate) happens before the watched window opens.

use libos_core::blocking::{Condvar, Mutex, Semaphore, WaitQueue};
use libos_core::sched::{self, Scheduler, ThreadId};
use libos_core::time::Instant;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::thread::Thread;

/// The system allocator, counting the allocations made by threads that are watching.
struct Counting;

static WATCHED_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static MY_ID: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter
// and the const thread-local flag neither allocate nor touch the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            WATCHED_ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout` (the caller's contract).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            WATCHED_ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A scheduler hook over host threads: ids are handed out by `register`.
struct HostThreads {
    threads: StdMutex<Vec<(u64, Thread)>>,
}

static HOST: HostThreads = HostThreads { threads: StdMutex::new(Vec::new()) };
static NEXT_ID: AtomicUsize = AtomicUsize::new(10);

impl HostThreads {
    /// Gives the calling host thread an id (allocates: call it before watching).
    fn register(&'static self) {
        sched::set_scheduler(self);
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst) as u64;
        MY_ID.with(|me| me.set(id));
        let mut threads = self.threads.lock().unwrap();
        threads.reserve(16);
        threads.push((id, std::thread::current()));
    }
}

impl Scheduler for HostThreads {
    fn current(&self) -> ThreadId {
        ThreadId(MY_ID.with(Cell::get))
    }

    fn with_current_name(&self, f: &mut dyn FnMut(&str)) {
        f("host");
    }

    fn park(&self) {
        std::thread::park();
    }

    fn park_until(&self, _deadline: Instant) {
        std::thread::park_timeout(std::time::Duration::from_millis(1));
    }

    fn unpark(&self, thread: ThreadId) {
        let threads = self.threads.lock().unwrap();
        if let Some((_, handle)) = threads.iter().find(|(id, _)| *id == thread.0) {
            handle.unpark();
        }
    }

    fn yield_now(&self) {
        std::thread::yield_now();
    }
}

fn watch(on: bool) {
    WATCHING.with(|w| w.set(on));
}

/// Waits until `queue` has `n` waiters (without watching: the test's own polling may allocate).
fn until_waiting(queue: &WaitQueue, n: usize) {
    while queue.len() < n {
        std::thread::yield_now();
    }
}

// All scenarios run in one test function: the counter is process-wide and the hook is
// registered once, so parallel tests would blur which thread allocated.
#[test]
fn waiting_and_waking_never_allocate() {
    HOST.register();

    // A bare wait queue: two threads block, one wake_one and one wake_all release them.
    static QUEUE: WaitQueue = WaitQueue::new();
    static GO: AtomicUsize = AtomicUsize::new(0);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                HOST.register();
                watch(true);
                QUEUE.wait_until(|| GO.load(Ordering::SeqCst) > 0);
                watch(false);
            })
        })
        .collect();
    until_waiting(&QUEUE, 2);
    watch(true);
    GO.store(1, Ordering::SeqCst);
    assert!(QUEUE.wake_one());
    QUEUE.wake_all();
    watch(false);
    for waiter in waiters {
        waiter.join().unwrap();
    }
    assert!(QUEUE.is_empty());

    // A contended mutex, a condition variable and a semaphore (each waits on a queue inside).
    let shared = Arc::new((Mutex::new(false), Condvar::new(), Semaphore::new(0), AtomicBool::new(false)));
    let other = Arc::clone(&shared);
    let waiter = std::thread::spawn(move || {
        HOST.register();
        let (mutex, condvar, semaphore, started) = &*other;
        watch(true);
        let mut ready = mutex.lock();
        started.store(true, Ordering::SeqCst);
        while !*ready {
            ready = condvar.wait(ready);
        }
        drop(ready);
        semaphore.acquire();
        watch(false);
    });
    while !shared.3.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    watch(true);
    {
        let (mutex, condvar, semaphore, _) = &*shared;
        *mutex.lock() = true;
        condvar.notify_all();
        semaphore.release();
    }
    watch(false);
    waiter.join().unwrap();

    assert_eq!(WATCHED_ALLOCATIONS.load(Ordering::SeqCst), 0, "waiting or waking allocated");
}
