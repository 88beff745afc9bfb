//! Stack guard pages at run time: [`set`] unmaps or remaps one 4 KiB page of the live identity
//! map (for the scheduler's thread stacks), splitting a 2 MiB page with frames from the heap.
//! Fault reports use [`is_guard`] to call a fault there a stack overflow.

use crate::paging::{self, GuardError, TableMemory};
use alloc::alloc::{Layout, alloc_zeroed};
use libos_core::sync::IrqSpinLock;
use libos_core::{Errno, Result};
use x86_64::registers::control::Cr3;

/// Serialises changes to the live tables (and masks interrupts meanwhile).
pub(crate) static LOCK: IrqSpinLock<()> = IrqSpinLock::new(());

/// The live tables, reached through the identity map; new tables come from the heap and are
/// never freed (a split page stays split).
pub(crate) struct LiveTables;

impl TableMemory for LiveTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let layout = Layout::from_size_align(4096, 4096).ok()?;
        // SAFETY: the layout has a non-zero size.
        let frame = unsafe { alloc_zeroed(layout) };
        (!frame.is_null()).then_some(frame as u64)
    }

    fn table(&mut self, table: u64) -> &mut [u64; 512] {
        // SAFETY: `table` is a page-table frame of the live tables (from CR3 or an entry) or a
        // frame from `alloc_table`; RAM is identity-mapped; `LOCK` (or the single-threaded
        // fault path) makes this the only writer.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }
}

pub(crate) fn root() -> u64 {
    Cr3::read_raw().0.start_address().as_u64()
}

/// Unmaps (`guarded`) or remaps the page at `page` (4 KiB aligned).
pub fn set(page: u64, guarded: bool) -> Result<()> {
    if page % 4096 != 0 {
        return Err(Errno::EINVAL);
    }
    REPORTER.call_once(|| report);
    READABLE.call_once(|| readable);
    {
        let _lock = LOCK.lock();
        let split = paging::set_guard(&mut LiveTables, root(), page, guarded).map_err(|e| match e {
            GuardError::OutOfTableFrames => Errno::ENOMEM,
            GuardError::NotMapped | GuardError::NotGuarded => Errno::EINVAL,
        })?;
        crate::pages::tables_changed();
        if split {
            let (frame, flags) = Cr3::read_raw();
            // SAFETY: reloading the same root flushes the TLB, including the stale 2 MiB entry.
            unsafe { Cr3::write_raw(frame, flags) };
        } else {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
        }
    }
    // A new guard must fault on every CPU. Lifting one needs no shootdown (no CPU caches a
    // non-present entry), which matters: stacks are freed with interrupts masked.
    if guarded {
        crate::pages::shoot_down();
    }
    Ok(())
}

/// Set on the first [`set`]: the fault report's check for thread guard pages, so images that
/// never create a thread stack carry no table walk in their fault path.
pub static REPORTER: spin::Once<fn(u64)> = spin::Once::new();

/// Set with [`REPORTER`]: lets crash backtraces follow frame pointers through thread stacks.
pub static READABLE: spin::Once<fn(u64) -> bool> = spin::Once::new();

/// Whether a frame-pointer walk may read `address`: mapped, writable, cached RAM (a thread
/// stack on the heap), never device memory.
fn readable(address: u64) -> bool {
    use crate::paging::flags;
    address < (1 << 47)
        && paging::translate(&mut LiveTables, root(), address)
            .is_some_and(|(f, _)| f & flags::WRITABLE != 0 && f & flags::NO_CACHE == 0)
}

/// Prints the stack-overflow line when `address` is in a thread stack's guard page.
fn report(address: u64) {
    if is_guard(address) {
        libos_core::sched::with_current_name(&mut |name| {
            libos_core::console::emergency_print(format_args!(
                "  stack overflow: the address is in the guard page below the stack of thread '{name}'\n"
            ));
        });
    }
}

/// True when `address` is in a guard page made by [`set`].
pub fn is_guard(address: u64) -> bool {
    address < (1 << 47) && paging::is_guard(&mut LiveTables, root(), address)
}
