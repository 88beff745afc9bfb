//! The kernel heap: the `talc` allocator over the free RAM the platform reports, with a small
//! cache per CPU in front of it for small blocks.
//!
//! On bare-metal targets it is the global allocator. `libos` calls [`init`] once at boot with
//! [`crate::hal::BootInfo::free_memory`]; [`stats`] reports usage (the self-tests check that
//! freed memory comes back).
//!
//! Why the caches: talc is one allocator behind one lock. With several CPUs online every
//! `Box`, `Vec` and thread spawn would take that lock, and the CPUs would take turns at it (and
//! bounce its cache line). Most kernel allocations are small and short-lived, so each CPU keeps
//! the small blocks it frees ([`cache`]) and hands them out again without the lock. A block
//! freed on another CPU than the one that allocated it joins that other CPU's lists; the lists
//! are bounded, so at most a few dozen KiB per CPU sit there unused, and an allocation that
//! talc cannot serve empties the running CPU's lists into talc and tries once more.
//!
//! The caches exist in images built with libos's `smp` feature (which every scheduler feature
//! turns on). An image without it runs one thread on one CPU, where talc's lock is never
//! contended; there every allocation goes to talc, and the image carries no cache code (hello
//! stays within its size target).

mod cache;

use crate::hal::MemoryRegion;
use crate::sync::IrqRawSpinLock;
use crate::{cpus, interrupts};
use cache::{CpuCaches, SizeClass};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use talc::{ErrOnOom, Span, Talc, Talck};

/// The allocator. Talc's lock masks interrupts, so an allocation interrupted by a handler that
/// also allocates cannot deadlock; the caches mask them too.
#[cfg_attr(target_os = "none", global_allocator)]
static ALLOCATOR: Heap = Heap::new(&CACHES);

/// The per-CPU caches, a static of their own: all zero, so they cost the image nothing (in
/// `.bss`), where inside `ALLOCATOR`, whose talc state is not zero, their 12 KiB would be
/// stored in the image.
static CACHES: CpuCaches = CpuCaches::new();

/// Heap usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes handed to the allocator at boot.
    pub claimed: u64,
    /// Bytes in live allocations: the sizes requested (in images with the per-CPU caches, small
    /// ones rounded up to their size class, 16 bytes to 2 KiB, powers of two); allocator
    /// metadata and blocks waiting in the per-CPU caches not included.
    pub in_use: u64,
}

/// Gives the allocator every region of `free` (physical addresses, mapped at
/// `phys_to_virt(phys)`). Regions too small for the allocator's metadata are skipped.
///
/// # Safety
/// The memory of every region must be mapped read-write at `phys_to_virt`, unused by anything
/// else for the rest of the kernel's life, and this must be called at most once per region.
pub unsafe fn init(free: &[MemoryRegion], phys_to_virt: impl Fn(u64) -> usize) -> HeapStats {
    // SAFETY: forwarded from the caller.
    unsafe { ALLOCATOR.claim(free, phys_to_virt) }
}

/// Current heap usage.
pub fn stats() -> HeapStats {
    ALLOCATOR.stats()
}

/// Turns the per-CPU caches on or off (kernel option `heap_cache=`; on by default). Off, every
/// allocation takes talc's lock, as before the caches existed: `./x bench smp` compares the two.
/// Called at boot, before other CPUs start (their cached blocks would stay where they are). In
/// images without the caches (no `smp` feature) it changes nothing.
pub fn set_per_cpu_caches(on: bool) {
    ALLOCATOR.set_per_cpu_caches(on);
}

/// Whether this image has the per-CPU caches (see the module's overview).
const CACHES_BUILT: bool = cfg!(any(test, feature = "smp"));

/// The size class serving `layout`: `None` for layouts the caches do not serve, and for all of
/// them in images without the caches.
fn class_of(layout: Layout) -> Option<SizeClass> {
    if CACHES_BUILT {
        SizeClass::of(layout)
    } else {
        None
    }
}

/// Talc behind its lock, with the per-CPU caches of small blocks in front.
struct Heap {
    talc: Talck<IrqRawSpinLock, ErrOnOom>,
    caches: &'static CpuCaches,
    caches_off: AtomicBool,
    claimed: AtomicU64,
}

impl Heap {
    /// An allocator with no memory yet ([`Heap::claim`] gives it some), in front of `caches`.
    const fn new(caches: &'static CpuCaches) -> Heap {
        Heap {
            talc: Talc::new(ErrOnOom).lock(),
            caches,
            caches_off: AtomicBool::new(false),
            claimed: AtomicU64::new(0),
        }
    }

    /// See [`set_per_cpu_caches`]; turning them off empties the running CPU's lists into talc.
    fn set_per_cpu_caches(&self, on: bool) {
        self.caches_off.store(!on, Ordering::Relaxed);
        if !on {
            self.drain_this_cpu();
        }
    }

    /// Gives the running CPU's cached blocks back to talc; false if it had none.
    fn drain_this_cpu(&self) -> bool {
        let mut drained = cache::Drained::default();
        // SAFETY: `on_this_cpu` runs the closure on CPU `cpu` with interrupts masked.
        Self::on_this_cpu(|cpu| unsafe { self.caches.drain(cpu, &mut drained) });
        if drained.is_empty() {
            return false;
        }
        for (block, class) in drained {
            // SAFETY: every cached block was allocated from talc with its class's layout and is
            // free (it was on a list, and the list gave it up).
            unsafe { self.talc.dealloc(block.as_ptr(), class.layout()) };
        }
        true
    }

    /// Gives the allocator every region of `free` (see [`init`]).
    ///
    /// # Safety
    /// As for [`init`].
    unsafe fn claim(
        &self,
        free: &[MemoryRegion],
        phys_to_virt: impl Fn(u64) -> usize,
    ) -> HeapStats {
        let mut claimed = 0;
        let mut talc = self.talc.lock();
        for region in free.iter().filter(|r| r.len() >= 4096) {
            let base = phys_to_virt(region.start) as *mut u8;
            let span = Span::from_base_size(base, region.len() as usize);
            // SAFETY: the caller guarantees the region is mapped, writable and otherwise unused.
            if unsafe { talc.claim(span) }.is_ok() {
                claimed += region.len();
            }
        }
        drop(talc);
        let total = self.claimed.fetch_add(claimed, Ordering::Relaxed) + claimed;
        HeapStats {
            claimed: total,
            in_use: self.stats().in_use,
        }
    }

    /// Current usage (exact when no other CPU allocates meanwhile).
    fn stats(&self) -> HeapStats {
        let allocated = self.talc.lock().get_counters().allocated_bytes as u64;
        HeapStats {
            claimed: self.claimed.load(Ordering::Relaxed),
            in_use: allocated.saturating_sub(self.caches.cached_bytes()),
        }
    }

    /// Runs `f` on the running CPU's index with interrupts masked: the thread cannot move to
    /// another CPU, and no handler on this CPU can touch the same cache, until `f` returns.
    fn on_this_cpu<R>(f: impl FnOnce(usize) -> R) -> R {
        let state = interrupts::disable();
        let result = f(cpus::current());
        interrupts::restore(state);
        result
    }

    /// A block from talc; when talc has none, the running CPU's cached blocks go back to talc
    /// first (they may be what a large request needs) and talc is asked once more (in images
    /// with the caches).
    fn alloc_from_talc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` has a non-zero size (size classes are at least 16 bytes; other
        // layouts come from our own callers under `GlobalAlloc`'s contract).
        let block = unsafe { self.talc.alloc(layout) };
        if block.is_null() && CACHES_BUILT && self.drain_this_cpu() {
            // SAFETY: as above.
            return unsafe { self.talc.alloc(layout) };
        }
        block
    }
}

// SAFETY: blocks of a size class are always allocated from talc with the class's layout (in
// `alloc`, whether or not the cache had one) and returned to talc with it, so talc sees matching
// layouts; a cached block is on exactly one list and handed out once. Other layouts go to talc
// unchanged. Every block is at least as large and as aligned as the layout asked for.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            return self.alloc_from_talc(layout);
        };
        if self.caches_off.load(Ordering::Relaxed) {
            return self.alloc_from_talc(class.layout());
        }
        // SAFETY: `on_this_cpu` runs the closure on CPU `cpu` with interrupts masked.
        match Self::on_this_cpu(|cpu| unsafe { self.caches.take(cpu, class) }) {
            Some(block) => block.as_ptr(),
            None => self.alloc_from_talc(class.layout()),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: `ptr` came from `alloc_from_talc(layout)` (the caller's contract).
            return unsafe { self.talc.dealloc(ptr, layout) };
        };
        let Some(block) = NonNull::new(ptr) else {
            return;
        };
        if self.caches_off.load(Ordering::Relaxed) {
            // SAFETY: the block was allocated from talc with the class's layout.
            return unsafe { self.talc.dealloc(ptr, class.layout()) };
        }
        // SAFETY: `on_this_cpu` runs the closure on CPU `cpu` with interrupts masked; `block` is
        // a free block of `class` (allocated with that class's layout, given back by the caller).
        let kept = Self::on_this_cpu(|cpu| unsafe { self.caches.keep(cpu, class, block) });
        if !kept {
            // SAFETY: the block was allocated from talc with the class's layout.
            unsafe { self.talc.dealloc(ptr, class.layout()) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // Talc grows or shrinks in place where it can.
            // SAFETY: forwarded from the caller; both layouts are talc's own.
            (None, None) => unsafe { self.talc.realloc(ptr, layout, new_size) },
            // The block already has room for the new size, and frees as the same class.
            (Some(old), Some(new)) if old == new => ptr,
            _ => {
                // SAFETY: `new_layout` has a non-zero size (the caller's contract).
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks are live, distinct, and at least this long.
                    unsafe { core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size)) };
                    // SAFETY: `ptr` is live with `layout` (the caller's contract) and no longer used.
                    unsafe { self.dealloc(ptr, layout) };
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A heap over its own arena, with safe calls for the tests: each test frees every block
    /// once, with the layout it was allocated (or last reallocated) with, and touches a block
    /// only within its size.
    struct TestHeap {
        heap: &'static Heap,
        claimed: u64,
    }

    impl TestHeap {
        /// Over an arena of `bytes` (leaked: talc keeps pointers into it).
        fn with(bytes: usize) -> TestHeap {
            let arena: &'static mut [u8] = Vec::leak(alloc::vec![0u8; bytes]);
            let heap: &'static Heap =
                Box::leak(Box::new(Heap::new(Box::leak(Box::new(CpuCaches::new())))));
            let start = arena.as_mut_ptr() as u64;
            // SAFETY: the arena is leaked (lives forever), writable, and given to this heap only.
            let stats = unsafe {
                heap.claim(
                    &[MemoryRegion {
                        start,
                        end: start + bytes as u64,
                    }],
                    |phys| phys as usize,
                )
            };
            TestHeap {
                heap,
                claimed: stats.claimed,
            }
        }

        fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the tests' layouts have non-zero sizes.
            unsafe { self.heap.alloc(layout) }
        }

        fn free(&self, block: *mut u8, layout: Layout) {
            // SAFETY: the tests free each block once with its layout (see `TestHeap`).
            unsafe { self.heap.dealloc(block, layout) }
        }

        fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: as for `free`; the new sizes are small.
            unsafe { self.heap.realloc(block, layout, new_size) }
        }

        fn in_use(&self) -> u64 {
            self.heap.stats().in_use
        }

        fn cached(&self) -> u64 {
            self.heap.caches.cached_bytes()
        }
    }

    /// The first `len` bytes of a live block.
    fn bytes<'a>(block: *mut u8, len: usize) -> &'a mut [u8] {
        // SAFETY: the tests pass live blocks of at least `len` bytes that nothing else uses
        // while the slice lives.
        unsafe { core::slice::from_raw_parts_mut(block, len) }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_small_block_is_reused_and_usage_returns_to_zero() {
        let heap = TestHeap::with(1 << 20);
        assert_eq!(
            heap.heap.stats(),
            HeapStats {
                claimed: heap.claimed,
                in_use: 0
            }
        );
        let first = heap.alloc(layout(24, 8));
        assert!(!first.is_null());
        assert_eq!(first as usize % 16, 0);
        assert_eq!(heap.in_use(), 32, "24 bytes take the 32-byte class");
        bytes(first, 24).fill(0xaa);
        heap.free(first, layout(24, 8));
        assert_eq!(heap.in_use(), 0, "a cached block is not in use");
        // Any size of the same class gets the cached block back, without talc.
        let again = heap.alloc(layout(30, 2));
        assert_eq!(again, first);
        heap.free(again, layout(30, 2));
        let big = heap.alloc(layout(5000, 64));
        assert_eq!(big as usize % 64, 0);
        assert_eq!(heap.in_use(), 5000);
        heap.free(big, layout(5000, 64));
        assert_eq!(heap.in_use(), 0);
    }

    #[test]
    fn with_the_caches_off_blocks_go_straight_back_to_talc() {
        let heap = TestHeap::with(1 << 20);
        let small = layout(100, 8);
        let cached = heap.alloc(small);
        heap.free(cached, small);
        assert_eq!(heap.cached(), 128);
        heap.heap.set_per_cpu_caches(false);
        assert_eq!(
            heap.cached(),
            0,
            "turning them off empties this CPU's lists"
        );
        let block = heap.alloc(small);
        assert_eq!(heap.in_use(), 128, "still rounded to the class");
        heap.free(block, small);
        assert_eq!((heap.cached(), heap.in_use()), (0, 0));
        // Blocks allocated with the caches off may be freed with them on, and back.
        let block = heap.alloc(small);
        heap.heap.set_per_cpu_caches(true);
        heap.free(block, small);
        assert_eq!(heap.cached(), 128);
        let block = heap.alloc(small);
        heap.heap.set_per_cpu_caches(false);
        heap.free(block, small);
        assert_eq!(heap.in_use(), 0);
    }

    #[test]
    fn alignment_over_16_and_sizes_over_2k_bypass_the_cache() {
        assert_eq!(SizeClass::of(layout(16, 32)), None);
        assert_eq!(SizeClass::of(layout(2049, 8)), None);
        assert_eq!(
            SizeClass::of(layout(2048, 16)).map(|c| c.layout().size()),
            Some(2048)
        );
        assert_eq!(
            SizeClass::of(layout(0, 1)).map(|c| c.layout().size()),
            Some(16)
        );
        assert_eq!(
            SizeClass::of(layout(17, 1)).map(|c| c.layout().size()),
            Some(32)
        );
    }

    #[test]
    fn realloc_keeps_contents_across_classes_and_into_talc() {
        let heap = TestHeap::with(1 << 20);
        let mut block = heap.alloc(layout(10, 1));
        for (i, byte) in bytes(block, 10).iter_mut().enumerate() {
            *byte = i as u8;
        }
        // Same class: the same block.
        assert_eq!(heap.realloc(block, layout(10, 1), 16), block);
        let mut size = 16;
        for new_size in [100, 3000, 40, 9000, 12] {
            block = heap.realloc(block, layout(size, 1), new_size);
            assert!(!block.is_null());
            assert_eq!(
                bytes(block, 10),
                &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                "after resizing to {new_size}"
            );
            size = new_size;
        }
        heap.free(block, layout(size, 1));
        assert_eq!(heap.in_use(), 0);
    }

    #[test]
    fn an_allocation_talc_cannot_serve_gets_the_cached_blocks_back() {
        let heap = TestHeap::with(64 << 10);
        // The largest block this heap can give, to the KiB.
        let largest = (1..=heap.claimed as usize / 1024)
            .rev()
            .map(|kib| layout(kib * 1024, 16))
            .find(|&l| {
                let block = heap.alloc(l);
                if !block.is_null() {
                    heap.free(block, l);
                }
                !block.is_null()
            })
            .unwrap();
        // Fill the heap with 2 KiB blocks and free them: some stay in the cache.
        let two_k = layout(2048, 16);
        let blocks: Vec<*mut u8> =
            core::iter::from_fn(|| Some(heap.alloc(two_k)).filter(|b| !b.is_null())).collect();
        assert!(blocks.len() > 16, "{} blocks", blocks.len());
        for block in blocks {
            heap.free(block, two_k);
        }
        assert!(heap.cached() >= 8 * 2048);
        let again = heap.alloc(largest);
        assert!(!again.is_null(), "the cached blocks went back to talc");
        assert_eq!(heap.cached(), 0);
        heap.free(again, largest);
        assert_eq!(heap.in_use(), 0);
    }
}
