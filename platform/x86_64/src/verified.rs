//! A small software TLB for `pages::check_user_access`: the last few pages (or large pages)
//! that a system call's buffer was found usable in, so the next call on the same buffer skips
//! the four-level table walk (about 80 guest instructions per page under TCG, measured on
//! `pread` and `stat`; a hit costs about 30 with the lock).
//!
//! Adjacent pages with the same rights verified under the same generation join into one
//! entry, so a buffer that straddles pages (a 4 KiB `pread` into an unaligned buffer spans
//! two) is found whole by one lookup, and [`Verified::covered`] answers a whole buffer in one
//! lock round.
//!
//! Staleness is ruled out by generations, not by finding entries to drop: every change to the
//! live tables (`pages::map`/`protect`/`unmap`, `guard::set`) bumps a counter under the tables'
//! lock after it changed them, and an entry counts only while its generation is the current
//! one. A walker reads the generation before it walks, so a result that raced with a change
//! is stored under the old generation and never used.

/// Entries kept: a call passes at most a few buffers (a path and a result, an iovec array
/// and its buffers), and a program's hot buffers are few.
const ENTRIES: usize = 4;

/// Remembered pages: every page of `[start, end)` allowed reads, and writes if `writable`, as
/// of `generation`.
#[derive(Clone, Copy, Default)]
struct Entry {
    start: u64,
    end: u64,
    writable: bool,
    generation: u64,
}

impl Entry {
    /// Whether it vouches for an access (`write` or read) at `addr` as of `generation`.
    #[inline(always)]
    fn allows(&self, addr: u64, write: bool, generation: u64) -> bool {
        self.generation == generation && self.start <= addr && addr < self.end && (self.writable || !write)
    }
}

/// The remembered pages (see the module docs).
#[derive(Default)]
pub struct Verified {
    entries: [Entry; ENTRIES],
    /// The entry the next [`Verified::remember`] replaces (round robin).
    next: usize,
    /// The entry that last answered a read and a write (indexed by `write`), looked at first:
    /// a call's buffers are most often the previous call's (a loop's `pread` into one
    /// buffer; `stat`'s path, read, and its result, written).
    last: [usize; 2],
}

impl Verified {
    /// An empty set (generation 0 is never current: the counter starts at 1).
    pub const fn new() -> Verified {
        Verified { entries: [Entry { start: 0, end: 0, writable: false, generation: 0 }; ENTRIES], next: 0, last: [0; 2] }
    }

    /// The end of the remembered pages holding `addr` if they allow the access (`write` or
    /// read) as of `generation`.
    #[cfg(test)]
    pub fn lookup(&self, addr: u64, write: bool, generation: u64) -> Option<u64> {
        self.entries.iter().find(|e| e.allows(addr, write, generation)).map(|e| e.end)
    }

    /// The first address of `[start, end)` from which on the remembered pages do not vouch for
    /// the access (`end` if they cover all of it). The common case, all of it in the entry
    /// that answered last, is a few comparisons.
    #[inline(always)]
    pub fn covered(&mut self, start: u64, end: u64, write: bool, generation: u64) -> u64 {
        let last = &self.entries[self.last[usize::from(write)] % ENTRIES];
        if last.allows(start, write, generation) && end <= last.end {
            return end.max(start);
        }
        self.covered_by_any(start, end, write, generation)
    }

    /// [`Verified::covered`] looking at every entry.
    #[inline(never)]
    fn covered_by_any(&mut self, start: u64, end: u64, write: bool, generation: u64) -> u64 {
        let mut at = start;
        while at < end {
            match self.entries.iter().position(|e| e.allows(at, write, generation)) {
                Some(i) => {
                    self.last[usize::from(write)] = i;
                    at = self.entries[i].end;
                }
                None => break,
            }
        }
        at.min(end)
    }

    /// Remembers that `[start, end)` allowed reads (and writes if `writable`) when the tables
    /// had `generation`: joined to an entry it touches with the same rights and generation,
    /// else in place of the oldest.
    pub fn remember(&mut self, start: u64, end: u64, writable: bool, generation: u64) {
        let joins = |e: &&mut Entry| e.generation == generation && e.writable == writable && (e.end == start || e.start == end);
        if let Some(entry) = self.entries.iter_mut().find(joins) {
            entry.start = entry.start.min(start);
            entry.end = entry.end.max(end);
            return;
        }
        self.entries[self.next] = Entry { start, end, writable, generation };
        self.next = (self.next + 1) % ENTRIES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_for_the_current_generation_and_the_right_access() {
        let mut v = Verified::new();
        assert_eq!(v.lookup(0x1000, false, 0), None, "empty entries never match, not even generation 0");
        v.remember(0x1000, 0x2000, false, 1);
        assert_eq!(v.lookup(0x1fff, false, 1), Some(0x2000));
        assert_eq!(v.lookup(0x2000, false, 1), None, "end is exclusive");
        assert_eq!(v.lookup(0x0fff, false, 1), None);
        assert_eq!(v.lookup(0x1000, true, 1), None, "a read-only page is no answer for a write");
        assert_eq!(v.lookup(0x1000, false, 2), None, "a change to the tables voids it");
        v.remember(0x20_0000, 0x40_0000, true, 2);
        assert_eq!(v.lookup(0x30_0000, true, 2), Some(0x40_0000), "a large page is one entry");
    }

    #[test]
    fn keeps_the_last_entries_round_robin() {
        let mut v = Verified::new();
        // Every other page: none touches another, so none joins.
        for page in 0..=ENTRIES as u64 {
            v.remember(page << 13, (page << 13) + 0x1000, true, 1);
        }
        assert_eq!(v.lookup(0, false, 1), None, "the oldest went");
        for page in 1..=ENTRIES as u64 {
            assert_eq!(v.lookup(page << 13, true, 1), Some((page << 13) + 0x1000));
        }
    }

    #[test]
    fn adjacent_pages_with_the_same_rights_join() {
        let mut v = Verified::new();
        v.remember(0x2000, 0x3000, true, 1);
        v.remember(0x3000, 0x4000, true, 1);
        v.remember(0x1000, 0x2000, true, 1);
        assert_eq!(v.lookup(0x1000, true, 1), Some(0x4000), "one entry for three pages");
        assert_eq!(v.covered(0x1800, 0x3800, true, 1), 0x3800, "a straddling buffer in one lookup");
        v.remember(0x4000, 0x5000, false, 1);
        assert_eq!(v.lookup(0x4000, true, 1), None, "a read-only neighbour does not join a writable run");
        assert_eq!(v.lookup(0x4000, false, 1), Some(0x5000));
        v.remember(0x5000, 0x6000, false, 2);
        assert_eq!(v.lookup(0x4000, false, 2), None, "nor does a page of another generation");
        assert_eq!(v.covered(0x1000, 0x5800, false, 1), 0x5000, "covered stops where the remembered pages stop");
        assert_eq!(v.covered(0x1000, 0x5800, true, 1), 0x4000, "or where they do not allow the access");
        assert_eq!(v.covered(0x9000, 0x9001, false, 1), 0x9000);
        assert_eq!(v.covered(0x3000, 0x3000, true, 1), 0x3000, "an empty range is covered");
    }

    /// The entry that answered last is asked first, and it too answers only for its
    /// generation, its rights and its range.
    #[test]
    fn the_last_answer_is_no_answer_for_another_generation_right_or_range() {
        let mut v = Verified::new();
        v.remember(0x1000, 0x2000, false, 1);
        v.remember(0x8000, 0xa000, true, 1);
        assert_eq!(v.covered(0x1000, 0x1800, false, 1), 0x1800);
        assert_eq!(v.covered(0x1000, 0x1800, false, 2), 0x1000, "the tables changed");
        assert_eq!(v.covered(0x1000, 0x1800, true, 1), 0x1000, "read-only");
        assert_eq!(v.covered(0x8000, 0x9000, true, 1), 0x9000);
        assert_eq!(v.covered(0x9000, 0xb000, true, 1), 0xa000, "past its end");
        assert_eq!(v.covered(0x7000, 0x9000, true, 1), 0x7000, "before its start");
        assert_eq!(v.covered(0x1200, 0x1300, false, 1), 0x1300, "the other entry, for reads");
    }
}
