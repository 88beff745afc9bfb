//! A small software TLB for `pages::check_user_access`: the last few pages (or large pages)
//! that a system call's buffer was found usable in, so the next call on the same buffer skips
//! the four-level table walk (about 80 guest instructions per page under TCG, measured on
//! `pread` and `stat`; a hit costs about 30 with the lock).
//!
//! Staleness is ruled out by generations, not by finding entries to drop: every change to the
//! live tables (`pages::map`/`protect`/`unmap`, `guard::set`) bumps a counter under the tables'
//! lock after it changed them, and an entry counts only while its generation is the current
//! one. A walker reads the generation before it walks, so a result that raced with a change
//! is stored under the old generation and never used.

/// Entries kept: a call passes at most a few buffers (a path and a result, an iovec array
/// and its buffers), and a program's hot buffers are few.
const ENTRIES: usize = 4;

/// One remembered page or large page: `[start, end)` allowed reads, and writes if `writable`,
/// as of `generation`.
#[derive(Clone, Copy, Default)]
struct Entry {
    start: u64,
    end: u64,
    writable: bool,
    generation: u64,
}

/// The remembered pages (see the module docs).
#[derive(Default)]
pub struct Verified {
    entries: [Entry; ENTRIES],
    /// The entry the next [`Verified::remember`] replaces (round robin).
    next: usize,
}

impl Verified {
    /// An empty set (generation 0 is never current: the counter starts at 1).
    pub const fn new() -> Verified {
        Verified { entries: [Entry { start: 0, end: 0, writable: false, generation: 0 }; ENTRIES], next: 0 }
    }

    /// The end of the remembered page holding `addr` if it allows the access (`write` or
    /// read) as of `generation`.
    pub fn lookup(&self, addr: u64, write: bool, generation: u64) -> Option<u64> {
        self.entries
            .iter()
            .find(|e| e.generation == generation && e.start <= addr && addr < e.end && (e.writable || !write))
            .map(|e| e.end)
    }

    /// Remembers that `[start, end)` allowed reads (and writes if `writable`) when the tables
    /// had `generation`.
    pub fn remember(&mut self, start: u64, end: u64, writable: bool, generation: u64) {
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
        for page in 0..=ENTRIES as u64 {
            v.remember(page << 12, (page + 1) << 12, true, 1);
        }
        assert_eq!(v.lookup(0, false, 1), None, "the oldest went");
        for page in 1..=ENTRIES as u64 {
            assert_eq!(v.lookup(page << 12, true, 1), Some((page + 1) << 12));
        }
    }
}
