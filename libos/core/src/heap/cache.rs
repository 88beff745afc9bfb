//! Per-CPU lists of free small blocks, by size class.
//!
//! A small allocation (up to 2 KiB, aligned to at most 16) is rounded up to a power-of-two
//! [`SizeClass`] from 16 bytes to 2 KiB. Each CPU has one singly linked list per class, threaded
//! through the free blocks themselves (the first word of a free block points at the next), and
//! a bound per class ([`SizeClass::capacity`], about 8 KiB of blocks, at least 8). Only the CPU
//! that owns a list touches it, with interrupts masked, so the lists need no lock and no atomic
//! read-modify-write; the byte count beside them is atomic only so that `stats` may read it
//! from any CPU.

use crate::cpus::MAX_CPUS;
use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

/// Size classes: 16 << 0 ..= 16 << 7 (2 KiB).
const CLASSES: usize = 8;
const SMALLEST: usize = 16;
const LARGEST: usize = SMALLEST << (CLASSES - 1);
/// The alignment every class block has (talc is asked for it).
const ALIGN: usize = 16;

/// A power-of-two block size for small allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SizeClass(u8);

impl SizeClass {
    /// The class serving `layout`, or `None` when it is too large or too aligned for one.
    #[inline]
    pub(super) fn of(layout: Layout) -> Option<SizeClass> {
        if layout.size() > LARGEST || layout.align() > ALIGN {
            return None;
        }
        let size = layout.size().max(SMALLEST);
        // ceil(log2(size)) - log2(SMALLEST): 16 -> 0, 17..=32 -> 1, ..., 2048 -> 7.
        Some(SizeClass(
            (usize::BITS - (size - 1).leading_zeros() - SMALLEST.trailing_zeros()) as u8,
        ))
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }

    fn size(self) -> usize {
        SMALLEST << self.0
    }

    /// The layout blocks of this class have in talc.
    pub(super) fn layout(self) -> Layout {
        // SAFETY: the size is a power of two of at most 2 KiB, a multiple of the power-of-two
        // alignment 16.
        unsafe { Layout::from_size_align_unchecked(self.size(), ALIGN) }
    }

    /// How many free blocks of this class one CPU keeps: about 8 KiB worth, 8 to 128 blocks.
    fn capacity(self) -> u32 {
        (8192 / self.size()).clamp(8, 128) as u32
    }
}

/// The first word of a free block.
struct FreeBlock {
    next: Option<NonNull<FreeBlock>>,
}

#[derive(Clone, Copy)]
struct FreeList {
    head: Option<NonNull<FreeBlock>>,
    len: u32,
}

const EMPTY_LIST: FreeList = FreeList { head: None, len: 0 };

/// One CPU's lists, on a cache line of their own start (no false sharing between CPUs).
#[repr(align(64))]
struct CpuCache {
    lists: UnsafeCell<[FreeList; CLASSES]>,
    /// Bytes on the lists. Only the owning CPU writes it; anyone may read it.
    bytes: AtomicU64,
}

/// The lists of every CPU.
pub(super) struct CpuCaches {
    cpus: [CpuCache; MAX_CPUS],
}

// SAFETY: CPU `i` is the only one that reads or writes `cpus[i].lists` (callers of `take`,
// `keep` and `drain` promise it, with interrupts masked so no handler on that CPU interleaves);
// `bytes` is atomic.
unsafe impl Sync for CpuCaches {}

/// The blocks [`CpuCaches::drain`] took off a CPU's lists, by class.
#[derive(Default)]
pub(super) struct Drained {
    heads: [Option<NonNull<FreeBlock>>; CLASSES],
}

impl Drained {
    pub(super) fn is_empty(&self) -> bool {
        self.heads.iter().all(Option::is_none)
    }
}

impl Iterator for Drained {
    type Item = (NonNull<u8>, SizeClass);

    fn next(&mut self) -> Option<Self::Item> {
        let (index, head) = self
            .heads
            .iter_mut()
            .enumerate()
            .find(|(_, head)| head.is_some())?;
        let block = head.take()?;
        // SAFETY: `block` was on a free list, so its first word is a `FreeBlock` written by
        // `keep`, and nothing else uses the block.
        *head = unsafe { block.as_ref() }.next;
        Some((block.cast(), SizeClass(index as u8)))
    }
}

impl CpuCaches {
    pub(super) const fn new() -> CpuCaches {
        #[allow(clippy::declare_interior_mutable_const)]
        const EMPTY: CpuCache = CpuCache {
            lists: UnsafeCell::new([EMPTY_LIST; CLASSES]),
            bytes: AtomicU64::new(0),
        };
        CpuCaches {
            cpus: [EMPTY; MAX_CPUS],
        }
    }

    /// The lists of `cpu`, mutable.
    ///
    /// # Safety
    /// The caller runs on CPU `cpu` with interrupts masked, and drops the reference before
    /// unmasking them.
    #[allow(clippy::mut_from_ref)]
    unsafe fn lists(&self, cpu: usize) -> Option<(&mut [FreeList; CLASSES], &AtomicU64)> {
        let cache = self.cpus.get(cpu)?;
        // SAFETY: only this CPU touches its lists, and nothing on it interleaves (the caller's
        // promise), so this is the only reference.
        Some((unsafe { &mut *cache.lists.get() }, &cache.bytes))
    }

    /// A free block of `class` from `cpu`'s list, if it has one.
    ///
    /// # Safety
    /// As for [`CpuCaches::lists`].
    #[inline]
    pub(super) unsafe fn take(&self, cpu: usize, class: SizeClass) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        let (lists, bytes) = unsafe { self.lists(cpu) }?;
        let list = &mut lists[class.index()];
        let block = list.head?;
        // SAFETY: `block` is on the list, so its first word is the `FreeBlock` `keep` wrote.
        list.head = unsafe { block.as_ref() }.next;
        list.len -= 1;
        bytes.store(
            bytes.load(Ordering::Relaxed) - class.size() as u64,
            Ordering::Relaxed,
        );
        Some(block.cast())
    }

    /// Puts `block` on `cpu`'s list of `class`; false (and the block untouched) when the list
    /// is full.
    ///
    /// # Safety
    /// As for [`CpuCaches::lists`]; `block` is a free block of `class` (at least its size and
    /// aligned to 16) that nobody else uses.
    #[inline]
    pub(super) unsafe fn keep(&self, cpu: usize, class: SizeClass, block: NonNull<u8>) -> bool {
        // SAFETY: forwarded from the caller.
        let Some((lists, bytes)) = (unsafe { self.lists(cpu) }) else {
            return false;
        };
        let list = &mut lists[class.index()];
        if list.len >= class.capacity() {
            return false;
        }
        let block = block.cast::<FreeBlock>();
        // SAFETY: the block is free, ours, and large and aligned enough for a `FreeBlock`.
        unsafe { block.write(FreeBlock { next: list.head }) };
        list.head = Some(block);
        list.len += 1;
        bytes.store(
            bytes.load(Ordering::Relaxed) + class.size() as u64,
            Ordering::Relaxed,
        );
        true
    }

    /// Empties `cpu`'s lists into `drained` (which the caller frees after unmasking interrupts).
    ///
    /// # Safety
    /// As for [`CpuCaches::lists`].
    pub(super) unsafe fn drain(&self, cpu: usize, drained: &mut Drained) {
        // SAFETY: forwarded from the caller.
        let Some((lists, bytes)) = (unsafe { self.lists(cpu) }) else {
            return;
        };
        for (list, head) in lists.iter_mut().zip(&mut drained.heads) {
            *head = list.head.take();
            list.len = 0;
        }
        bytes.store(0, Ordering::Relaxed);
    }

    /// Bytes on all CPUs' lists.
    pub(super) fn cached_bytes(&self) -> u64 {
        self.cpus
            .iter()
            .map(|cache| cache.bytes.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn every_size_up_to_2k_gets_the_smallest_class_that_holds_it() {
        for size in 0..=LARGEST {
            let class = SizeClass::of(Layout::from_size_align(size, 1).unwrap()).unwrap();
            assert!(class.size() >= size);
            assert!(
                class.size() == SMALLEST || class.size() / 2 < size,
                "{size} -> {}",
                class.size()
            );
        }
    }

    /// 16-aligned blocks of `class` from a leaked arena.
    fn blocks(class: SizeClass, count: usize) -> Vec<NonNull<u8>> {
        let arena: &'static mut [u128] = Vec::leak(alloc::vec![0u128; class.size() / 16 * count]);
        arena
            .chunks_mut(class.size() / 16)
            .map(|chunk| NonNull::from(&mut chunk[0]).cast())
            .collect()
    }

    /// Safe calls for the test below: it is single-threaded ("CPUs" are just indices, nothing
    /// interleaves), and the blocks it passes are its own, free, of the class.
    fn keep(caches: &CpuCaches, cpu: usize, class: SizeClass, block: NonNull<u8>) -> bool {
        // SAFETY: see above.
        unsafe { caches.keep(cpu, class, block) }
    }

    fn take(caches: &CpuCaches, cpu: usize, class: SizeClass) -> Option<NonNull<u8>> {
        // SAFETY: see `keep`.
        unsafe { caches.take(cpu, class) }
    }

    #[test]
    fn each_cpu_keeps_its_own_blocks_up_to_the_bound_and_drains_them() {
        let caches = Box::new(CpuCaches::new());
        let class = SizeClass::of(Layout::new::<[u8; 1000]>()).unwrap();
        assert_eq!((class.size(), class.capacity()), (1024, 8));
        let mine = blocks(class, 9);
        let theirs = blocks(class, 1);
        for &block in &mine[..8] {
            assert!(keep(&caches, 0, class, block));
        }
        assert!(
            !keep(&caches, 0, class, mine[8]),
            "the ninth block goes back to talc"
        );
        assert!(keep(&caches, 1, class, theirs[0]));
        assert_eq!(caches.cached_bytes(), 9 * 1024);
        assert_eq!(take(&caches, 1, class), Some(theirs[0]));
        assert_eq!(
            take(&caches, 1, class),
            None,
            "CPU 1 does not take CPU 0's blocks"
        );
        assert_eq!(
            take(&caches, 0, class),
            Some(mine[7]),
            "last in, first out: still warm"
        );
        assert_eq!(take(&caches, MAX_CPUS, class), None);
        let mut drained = Drained::default();
        // SAFETY: see `keep`.
        unsafe { caches.drain(0, &mut drained) };
        assert_eq!(caches.cached_bytes(), 0);
        let back: Vec<_> = drained.collect();
        assert_eq!(back.len(), 7);
        assert!(
            back.iter()
                .all(|&(block, c)| c == class && mine[..7].contains(&block))
        );
        assert_eq!(take(&caches, 0, class), None);
    }
}
