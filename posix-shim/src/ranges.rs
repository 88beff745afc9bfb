//! The bookkeeping behind `mmap` (pure, host-tested and fuzzed): which address ranges are
//! mapped, each with a value saying what backs it. [`RangeMap::cut`] removes any range of
//! addresses from any mappings, splitting them, and hands back the pieces it removed (so the
//! caller can write shared file mappings back and free allocations outside its lock);
//! [`RangeMap::covers`] says whether a range is mapped with no hole. `mem.rs` keeps one map of
//! the program's mappings with [`Slice`] values that hold the allocation and the file backing.
//!
//! Ranges never overlap; their ends never overflow (`insert` refuses such a range), so the
//! arithmetic below is exact.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// What backs a mapped range; a piece of it starting `by` bytes further in is `advanced(by)`
/// (a file backing's offset moves with it).
pub trait Slice: Clone {
    /// The value for the part of the range that starts `by` bytes after its start.
    fn advanced(&self, by: u64) -> Self;
}

/// A piece of a mapping: `[start, start + len)` and what backs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece<T> {
    /// First address.
    pub start: u64,
    /// Length in bytes (never 0).
    pub len: u64,
    /// What backs it.
    pub value: T,
}

/// Why [`RangeMap::insert`] refused a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// Empty, or its end does not fit in 64 bits.
    Invalid,
    /// It overlaps a mapped range.
    Overlaps,
}

/// Non-overlapping mapped ranges by start address.
#[derive(Debug)]
pub struct RangeMap<T> {
    ranges: BTreeMap<u64, (u64, T)>,
}

impl<T> Default for RangeMap<T> {
    fn default() -> Self {
        RangeMap { ranges: BTreeMap::new() }
    }
}

impl<T: Slice> RangeMap<T> {
    /// No ranges.
    pub const fn new() -> RangeMap<T> {
        RangeMap { ranges: BTreeMap::new() }
    }

    /// Records `[start, start + len)`, which must not overlap a recorded range.
    pub fn insert(&mut self, start: u64, len: u64, value: T) -> Result<(), InsertError> {
        let end = start.checked_add(len).filter(|_| len > 0).ok_or(InsertError::Invalid)?;
        if self.overlapping(start, end).next().is_some() {
            return Err(InsertError::Overlaps);
        }
        self.ranges.insert(start, (len, value));
        Ok(())
    }

    /// The recorded ranges that overlap `[start, end)`, whole, in address order (none when the
    /// range is empty).
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = Piece<&T>> + '_ {
        self.ranges
            .range(..end)
            .filter(move |(s, (len, _))| start < end && *s + *len > start)
            .map(|(s, (len, value))| Piece { start: *s, len: *len, value })
    }

    /// Every recorded range, in address order.
    pub fn iter(&self) -> impl Iterator<Item = Piece<&T>> + '_ {
        self.ranges.iter().map(|(s, (len, value))| Piece { start: *s, len: *len, value })
    }

    /// The value of every recorded range, to change in place (not its extent).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.ranges.values_mut().map(|(_, value)| value)
    }

    /// Removes `[start, end)` from every range, returning the removed pieces in address order.
    pub fn cut(&mut self, start: u64, end: u64) -> Vec<Piece<T>> {
        let overlapping: Vec<u64> = self.overlapping(start, end).map(|p| p.start).collect();
        let mut removed = Vec::new();
        for s in overlapping {
            let Some((len, value)) = self.ranges.remove(&s) else { continue };
            let e = s + len;
            if s < start {
                self.ranges.insert(s, (start - s, value.clone()));
            }
            if e > end {
                self.ranges.insert(end, (e - end, value.advanced(end - s)));
            }
            let (cs, ce) = (s.max(start), e.min(end));
            removed.push(Piece { start: cs, len: ce - cs, value: value.advanced(cs - s) });
        }
        removed
    }

    /// True when every byte of `[start, end)` is in some range (an empty range is covered).
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for piece in self.overlapping(start, end) {
            if piece.start > at {
                return false;
            }
            at = piece.start + piece.len;
            if at >= end {
                return true;
            }
        }
        at >= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mapping of file offset `.0` (as `mem.rs`'s shared backings).
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Offset(u64);

    impl Slice for Offset {
        fn advanced(&self, by: u64) -> Offset {
            Offset(self.0 + by)
        }
    }

    #[test]
    fn cut_splits_and_moves_offsets() {
        let mut map = RangeMap::new();
        map.insert(0x1000, 0x4000, Offset(0x10_000)).unwrap();
        let removed = map.cut(0x2000, 0x3000);
        assert_eq!(removed, [Piece { start: 0x2000, len: 0x1000, value: Offset(0x11_000) }]);
        let left: Vec<_> = map.iter().map(|p| (p.start, p.len, p.value.0)).collect();
        assert_eq!(left, [(0x1000, 0x1000, 0x10_000), (0x3000, 0x2000, 0x12_000)]);
        assert!(map.covers(0x1000, 0x2000) && !map.covers(0x1000, 0x4000) && map.covers(0x3000, 0x5000));
    }

    /// Found by the `mmap` fuzz target: an empty cut inside a mapping split it in two and
    /// returned a zero-length piece.
    #[test]
    fn an_empty_cut_changes_nothing() {
        let mut map = RangeMap::new();
        map.insert(4, 65, Offset(0)).unwrap();
        assert_eq!(map.cut(7, 7), []);
        assert_eq!(map.cut(9, 3), []);
        let left: Vec<_> = map.iter().map(|p| (p.start, p.len)).collect();
        assert_eq!(left, [(4, 65)]);
        assert_eq!(map.overlapping(7, 7).count(), 0);
        assert!(map.covers(7, 7) && map.covers(100, 100));
    }

    #[test]
    fn overlapping_and_wrapping_inserts_are_refused() {
        let mut map = RangeMap::new();
        map.insert(0x1000, 0x2000, Offset(0)).unwrap();
        assert_eq!(map.insert(0x2000, 0x1000, Offset(0)), Err(InsertError::Overlaps));
        assert_eq!(map.insert(0, 0x1001, Offset(0)), Err(InsertError::Overlaps));
        assert_eq!(map.insert(u64::MAX - 0xfff, 0x1000, Offset(0)), Err(InsertError::Invalid));
        assert_eq!(map.insert(0x8000, 0, Offset(0)), Err(InsertError::Invalid));
        map.insert(0x3000, 0x1000, Offset(0)).unwrap();
        assert!(map.covers(0x1000, 0x4000));
    }
}
