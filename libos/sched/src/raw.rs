//! One of the two modules of libos-sched allowed `unsafe` (with [`crate::sched`]): thread
//! stacks (raw heap memory with a guard page) and the call into the platform's context switch.

#![allow(unsafe_code)]

use alloc::alloc::{Layout, alloc, dealloc};
use alloc::vec::Vec;
use core::sync::atomic::AtomicUsize;
use libos_core::sync::IrqSpinLock;
use libos_core::{Errno, Result, hal};

const PAGE: usize = 4096;

/// The platform's context switch (checked by `sched::init`).
fn context() -> &'static dyn hal::ContextSwitch {
    hal::context_switch().expect("libos-sched: the platform registered no context switch")
}
/// Written at the lowest usable word of every stack; checked whenever its thread switches out.
const CANARY: u64 = 0x5ca1_ab1e_57ac_cafe;

/// A thread stack: `[base, base + PAGE)` is the guard page (unmapped where the platform can,
/// see [`hal::ContextSwitch::set_guard_page`]), the usable stack is above it.
pub struct Stack {
    base: usize,
    layout: Layout,
    guarded: bool,
}

impl Stack {
    /// Allocates a stack with `size` usable bytes (rounded up to pages) and a guard page below;
    /// a stack of [`POOLED_SIZE`] comes from the pool of recycled stacks when it has one.
    pub fn new(size: usize) -> Result<Stack> {
        let size = size.max(PAGE).checked_next_multiple_of(PAGE).ok_or(Errno::EINVAL)?;
        if size == POOLED_SIZE
            && let Some(stack) = POOL.lock().pop()
        {
            return Ok(stack);
        }
        let layout = Layout::from_size_align(size.checked_add(PAGE).ok_or(Errno::EINVAL)?, PAGE).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc(layout) } as usize;
        if base == 0 {
            return Err(Errno::ENOMEM);
        }
        // SAFETY: the word at base + PAGE lies inside the allocation, which we own.
        unsafe { core::ptr::write((base + PAGE) as *mut u64, CANARY) };
        let guarded = context().set_guard_page(base, true).is_ok();
        Ok(Stack { base, layout, guarded })
    }

    /// One past the highest byte (16-byte aligned).
    pub fn top(&self) -> usize {
        self.base + self.layout.size()
    }

    /// The lowest usable address (just above the guard page).
    pub fn bottom(&self) -> usize {
        self.base + PAGE
    }

    /// Whether the guard page is really unmapped (else only the canary detects overflows).
    pub fn is_guarded(&self) -> bool {
        self.guarded
    }

    /// True while the canary at the bottom of the stack is intact.
    pub fn canary_intact(&self) -> bool {
        // SAFETY: the word lies inside our allocation (above the guard page) and is aligned.
        unsafe { core::ptr::read_volatile((self.base + PAGE) as *const u64) == CANARY }
    }

    /// Prepares the stack so that switching to the returned stack pointer calls `entry(arg)`.
    pub fn init_context(&self, entry: extern "C" fn(usize) -> !, arg: usize) -> usize {
        // SAFETY: `top` is page aligned, the top of memory we own and nobody runs on yet.
        unsafe { context().init_context(self.top(), entry, arg) }
    }
}

/// Stacks of this usable size (the default) are recycled.
pub const POOLED_SIZE: usize = 64 * 1024;
/// At most this many stacks wait in the pool.
const POOL_CAPACITY: usize = 8;

/// Stacks of exited threads, kept with their guard page in place, so spawning does not pay for
/// an allocation and two page-table changes each time.
static POOL: IrqSpinLock<Vec<Stack>> = IrqSpinLock::new(Vec::new());

/// Returns an exited thread's stack to the pool, or frees it (the pool is full, the size is not
/// the pooled one, or its canary shows it was overrun).
pub fn recycle(stack: Stack) {
    if stack.layout.size() == POOLED_SIZE + PAGE && stack.canary_intact() {
        let mut pool = POOL.lock();
        if pool.len() < POOL_CAPACITY {
            pool.push(stack);
            return;
        }
    }
    drop(stack);
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.guarded {
            context().set_guard_page(self.base, false).expect("remapping a stack guard page");
        }
        // SAFETY: allocated in `new` with this layout; the scheduler drops a stack only after
        // its thread exited and the CPU switched away from it.
        unsafe { dealloc(self.base as *mut u8, self.layout) };
    }
}

/// Switches from the running thread (its stack pointer saved to `*save`) to the one saved in
/// `*load`.
///
/// # Safety
/// Interrupts are masked; `save` points into the running thread's control block, which stays
/// alive until that thread is resumed or reaped; `load` points at the saved stack pointer of a
/// thread that is not running and whose stack is alive; the scheduler lock is not held.
#[inline(always)]
pub unsafe fn switch(routine: hal::SwitchRoutine, save: *const AtomicUsize, load: *const AtomicUsize) {
    // SAFETY: `save` points into the running thread's live control block (the caller's contract).
    let save = unsafe { (*save).as_ptr() };
    // SAFETY: `load` points into a live control block of a thread that is not running.
    let target = unsafe { (*load).load(core::sync::atomic::Ordering::Relaxed) };
    // SAFETY: the caller's contract is the platform's (`hal::SwitchRoutine`): interrupts masked,
    // thread context, `target` saved by an earlier switch or made by `init_context`.
    unsafe { routine(save, target) }
}
