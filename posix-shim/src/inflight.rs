//! Program buffers with I/O in flight, so `munmap` cannot free memory a blocked call still
//! fills or a device still reaches by DMA.
//!
//! `read`, `write` and their vector and positioned forms [`pin`] the span of their buffers
//! for as long as they run (a blocking read on a pipe, a socket or a slow virtio-fs reply may
//! take any time, and the buffer is handed to devices directly). `munmap` (and `mremap`,
//! which unmaps the old range) asks [`overlaps`] for every piece it removes; a piece with I/O
//! in flight has its heap memory parked in a deferred list instead of freed, and the last
//! [`Pin`] over it releases it. This is Linux's behaviour: the unmap takes effect at once for
//! the program (the range is gone from its mappings; a new `mmap` never returns it while it
//! is parked, because the heap still owns it), while the pages a call pinned stay alive until
//! the I/O completes, and the data lands in them, not in whatever the heap would have
//! reused the memory for.
//!
//! Pins live in `SLOTS` fixed slots of two atomics each, so a `read` pays one compare-
//! and-swap and a few stores, no lock and no allocation. More concurrent calls than slots
//! count in `OVERFLOW`, which makes every unmap defer (correct, just less prompt).
//! A call that registers its pin only after an unmap removed its buffer was given an
//! unmapped pointer: as on Linux, that is the program's own use-after-unmap.

#[cfg(target_os = "none")]
use crate::mem::release_deferred;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Host builds have no `mmap` (the `mem` module is guest-only), so nothing is ever parked.
#[cfg(not(target_os = "none"))]
fn release_deferred() {}

/// How many calls can have their buffers pinned individually at once.
const SLOTS: usize = 32;

/// One pinned span `[start, end)`. `end == 0`: free. While a slot is being filled, `end` is
/// `u64::MAX` and `start` 0, so a concurrent reader sees a span covering everything
/// (conservative: it defers), never a wrong narrow one.
struct Slot {
    start: AtomicU64,
    end: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot { start: AtomicU64::new(0), end: AtomicU64::new(0) };
static PINS: [Slot; SLOTS] = [FREE; SLOTS];
/// Calls in flight that found no free slot: while nonzero, every span counts as pinned.
static OVERFLOW: AtomicUsize = AtomicUsize::new(0);
/// Set when an unmap parked memory: releasing a pin then looks at the deferred list.
pub(crate) static DEFERRED: AtomicBool = AtomicBool::new(false);

/// A pinned span; unpinned (and parked memory it kept alive released) when dropped.
pub struct Pin {
    slot: Option<usize>,
}

/// Pins `[start, end)` for the life of the returned value. An empty span pins nothing.
pub fn pin(start: u64, end: u64) -> Pin {
    if start >= end {
        return Pin { slot: None };
    }
    for (i, slot) in PINS.iter().enumerate() {
        if slot.end.compare_exchange(0, u64::MAX, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
            slot.start.store(start, Ordering::SeqCst);
            slot.end.store(end, Ordering::SeqCst);
            return Pin { slot: Some(i) };
        }
    }
    OVERFLOW.fetch_add(1, Ordering::SeqCst);
    Pin { slot: Some(SLOTS) }
}

/// Pins the span covering all of `buffers` (`(address, length)` pairs).
pub fn pin_all(buffers: &[(u64, u64)]) -> Pin {
    let start = buffers.iter().filter(|b| b.1 > 0).map(|b| b.0).min().unwrap_or(0);
    // No overflow: every buffer passed `user::check_range`.
    let end = buffers.iter().filter(|b| b.1 > 0).map(|b| b.0 + b.1).max().unwrap_or(0);
    pin(start, end)
}

impl Drop for Pin {
    fn drop(&mut self) {
        match self.slot {
            None => return,
            Some(SLOTS) => {
                OVERFLOW.fetch_sub(1, Ordering::SeqCst);
            }
            Some(i) => {
                // Widen before freeing, so a reader never sees a narrower span than the truth.
                PINS[i].start.store(0, Ordering::SeqCst);
                PINS[i].end.store(0, Ordering::SeqCst);
            }
        }
        if DEFERRED.load(Ordering::SeqCst) {
            release_deferred();
        }
    }
}

/// True when some call in flight has pinned a span overlapping `[start, end)`.
pub fn overlaps(start: u64, end: u64) -> bool {
    if OVERFLOW.load(Ordering::SeqCst) > 0 {
        return true;
    }
    PINS.iter().any(|slot| {
        let s = slot.start.load(Ordering::SeqCst);
        let e = slot.end.load(Ordering::SeqCst);
        e != 0 && s < end && start < e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_cover_their_span_until_dropped() {
        // One test touches the global slots, so tests running in parallel cannot disturb it.
        let a = pin(0x10_000, 0x12_000);
        let b = pin_all(&[(0x50_000, 0x1000), (0x40_000, 0x10), (0x90_000, 0)]);
        assert!(overlaps(0x11_000, 0x11_001));
        assert!(!overlaps(0x12_000, 0x13_000));
        assert!(overlaps(0x40_00f, 0x40_010) && overlaps(0x48_000, 0x49_000), "the covering span");
        assert!(!overlaps(0x51_000, 0x60_000));
        drop(a);
        assert!(!overlaps(0x11_000, 0x11_001));
        let many: Vec<Pin> = (0..SLOTS as u64 + 2).map(|i| pin(0x100_000 + i * 0x1000, 0x100_000 + i * 0x1000 + 1)).collect();
        assert!(overlaps(0x7000_0000, 0x7000_1000), "overflowed pins make everything pinned");
        drop(many);
        drop(b);
        assert!(!overlaps(0, u64::MAX));
    }
}
