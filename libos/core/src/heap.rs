//! The kernel heap: the `talc` allocator over the free RAM the platform reports.
//!
//! On bare-metal targets it is the global allocator. `libos` calls [`init`] once at boot with
//! [`crate::hal::BootInfo::free_memory`]; [`stats`] reports usage (the self-tests check that
//! freed memory comes back).

use crate::hal::MemoryRegion;
use crate::sync::IrqRawSpinLock;
use talc::{ErrOnOom, Span, Talc, Talck};

/// The allocator. Its lock masks interrupts, so an allocation interrupted by a handler that
/// also allocates cannot deadlock.
#[cfg_attr(target_os = "none", global_allocator)]
static ALLOCATOR: Talck<IrqRawSpinLock, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// Heap usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes handed to the allocator at boot.
    pub claimed: u64,
    /// Bytes in live allocations (the sizes requested; allocator metadata not included).
    pub in_use: u64,
}

/// Gives the allocator every region of `free` (physical addresses, mapped at
/// `phys_to_virt(phys)`). Regions too small for the allocator's metadata are skipped.
///
/// # Safety
/// The memory of every region must be mapped read-write at `phys_to_virt`, unused by anything
/// else for the rest of the kernel's life, and this must be called at most once per region.
pub unsafe fn init(free: &[MemoryRegion], phys_to_virt: impl Fn(u64) -> usize) -> HeapStats {
    let mut claimed = 0;
    let mut talc = ALLOCATOR.lock();
    for region in free.iter().filter(|r| r.len() >= 4096) {
        let base = phys_to_virt(region.start) as *mut u8;
        let span = Span::from_base_size(base, region.len() as usize);
        // SAFETY: the caller guarantees the region is mapped, writable and otherwise unused.
        if unsafe { talc.claim(span) }.is_ok() {
            claimed += region.len();
        }
    }
    CLAIMED.store(claimed, core::sync::atomic::Ordering::Relaxed);
    HeapStats { claimed, in_use: 0 }
}

static CLAIMED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Current heap usage.
pub fn stats() -> HeapStats {
    let counters = *ALLOCATOR.lock().get_counters();
    HeapStats {
        claimed: CLAIMED.load(core::sync::atomic::Ordering::Relaxed),
        in_use: counters.allocated_bytes as u64,
    }
}
