//! Stack guard pages at run time: [`set`] invalidates or restores one 4 KiB page of the live
//! identity map (for the scheduler's thread stacks), splitting 1 GiB / 2 MiB blocks with table
//! frames from the heap. Fault reports use [`is_guard`] to call a fault there a stack overflow.
//!
//! Splitting a live block needs break-before-make: the block descriptor is invalidated, the TLB
//! flushed, then the table descriptor written, in one assembly sequence that touches no memory
//! but the descriptor (interrupts masked). If the descriptor itself lies inside the block being
//! split, that sequence would fault; the split is then refused and the stack keeps only its
//! canary (see libos-sched).
//!
//! That sequence is only safe while no other CPU can touch the block: between the two stores
//! the whole block is unmapped for every CPU, and one that reads a heap object in it then
//! takes a translation fault. So before the first other CPU starts, [`split_for_smp`] maps the
//! heap with 4 KiB pages once (the only place guard pages are made at run time: thread and
//! per-CPU stacks come from the heap), and from then on blocks of Normal memory are never
//! replaced: a guard page there changes one page entry. (Program pages of Linux code may still
//! split device blocks: those hold no device and are not touched by other CPUs.)

use crate::paging::{self, GuardError, TableMemory, bits};
use crate::cpu::read_sysreg;
use alloc::alloc::{Layout, alloc_zeroed};
use core::sync::atomic::{AtomicBool, Ordering};
use libos_core::hal::MemoryRegion;
use libos_core::sync::IrqSpinLock;
use libos_core::{Errno, Result};

/// Serialises changes to the live tables (and masks interrupts meanwhile).
pub(crate) static LOCK: IrqSpinLock<()> = IrqSpinLock::new(());

/// Set by [`split_for_smp`]: other CPUs may run, so blocks of Normal memory are never
/// replaced any more.
static SHARED: AtomicBool = AtomicBool::new(false);

/// The live tables, reached through the identity map; new tables come from the heap and are
/// never freed (a split block stays split).
pub(crate) struct LiveTables;

impl TableMemory for LiveTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let layout = Layout::from_size_align(4096, 4096).ok()?;
        // SAFETY: the layout has a non-zero size.
        let frame = unsafe { alloc_zeroed(layout) };
        (!frame.is_null()).then_some(frame as u64)
    }

    fn table(&mut self, table: u64) -> &mut [u64; 512] {
        // SAFETY: `table` is a table frame of the live tables (from TTBR0 or a descriptor) or a
        // frame from `alloc_table`; RAM is identity-mapped; `LOCK` (or the single-threaded
        // fault path) makes this the only writer.
        unsafe { &mut *(table as *mut [u64; 512]) }
    }

    fn replace_block(&mut self, table: u64, index: usize, descriptor: u64, start: u64, size: u64) -> bool {
        let slot = table + index as u64 * 8;
        if (start..start + size).contains(&slot) {
            return false;
        }
        if SHARED.load(Ordering::Relaxed) && self.table(table)[index] & bits::ATTR_DEVICE == 0 {
            return false;
        }
        // Make the new table's contents visible to the walker before it becomes reachable.
        // SAFETY: a barrier only orders memory accesses.
        unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
        // SAFETY: break-before-make on a descriptor of the live tables that lies outside the
        // block it maps: between the two stores only registers are used (the code is kernel
        // text, never inside a pure-RAM block), interrupts are masked (LOCK), and the new
        // descriptor maps the same addresses with the same attributes.
        unsafe {
            core::arch::asm!(
                "str xzr, [{slot}]",
                "dsb ish",
                "tlbi vmalle1is",
                "dsb ish",
                "isb",
                "str {descriptor}, [{slot}]",
                "dsb ish",
                "isb",
                slot = in(reg) slot,
                descriptor = in(reg) descriptor,
                options(nostack, preserves_flags),
            );
        }
        true
    }
}

/// Maps the heap (`regions`) with 4 KiB pages, then lets no block of Normal memory be replaced
/// again (module docs). Call it on the boot CPU before any other CPU starts. Costs one 4 KiB
/// table per 2 MiB of heap (0.2%). A block that cannot be split (no memory for its table)
/// stays one: guard pages in it are then refused and those stacks keep only their canary.
pub fn split_for_smp(regions: &[MemoryRegion]) {
    let _lock = LOCK.lock();
    if SHARED.load(Ordering::Relaxed) {
        return;
    }
    for region in regions {
        if let Err(e) = paging::split_to_pages(&mut LiveTables, root(), region.start, region.end) {
            log::warn!("heap {:#x}..{:#x} not mapped with pages ({e:?}): stack guard pages there are refused", region.start, region.end);
        }
    }
    SHARED.store(true, Ordering::Relaxed);
}

pub(crate) fn root() -> u64 {
    read_sysreg!("ttbr0_el1") & bits::ADDRESS
}

/// Invalidates (`guarded`) or restores the page at `page` (4 KiB aligned).
pub fn set(page: u64, guarded: bool) -> Result<()> {
    if page % 4096 != 0 {
        return Err(Errno::EINVAL);
    }
    REPORTER.call_once(|| report);
    READABLE.call_once(|| readable);
    let _lock = LOCK.lock();
    paging::set_guard(&mut LiveTables, root(), page, guarded).map_err(|e| match e {
        GuardError::OutOfTableFrames => Errno::ENOMEM,
        GuardError::CannotSplit => Errno::EBUSY,
        GuardError::NotMapped | GuardError::NotGuarded => Errno::EINVAL,
    })?;
    // SAFETY: TLB maintenance for the changed page; barriers order it with the table write.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vaae1is, {page}",
            "dsb ish",
            "isb",
            page = in(reg) page >> 12,
            options(nostack, preserves_flags),
        );
    }
    Ok(())
}

/// Set on the first [`set`]: the fault report's check for thread guard pages, so images that
/// never create a thread stack carry no table walk in their fault path.
pub static REPORTER: spin::Once<fn(u64)> = spin::Once::new();

/// Set with [`REPORTER`]: lets crash backtraces follow frame pointers through thread stacks.
pub static READABLE: spin::Once<fn(u64) -> bool> = spin::Once::new();

/// Whether a frame-pointer walk may read `address`: mapped, writable Normal memory (a thread
/// stack on the heap), never device memory.
fn readable(address: u64) -> bool {
    paging::translate(&mut LiveTables, root(), address)
        .is_some_and(|(a, _)| a & bits::ATTR_DEVICE == 0 && a & bits::READ_ONLY == 0)
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
    paging::is_guard(&mut LiveTables, root(), address)
}
