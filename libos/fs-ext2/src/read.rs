//! Reading file contents, with read-ahead, and the state a node keeps between reads
//! ([`Reader`]).
//!
//! All data comes through the buffer cache. A read first maps the blocks it needs (each
//! indirect block read once for all its pointers in the range) and asks the cache to fetch
//! each uncached run of adjacent disk blocks in one request, so reading a file laid out
//! contiguously costs one device request per run rather than per block. A sequential reader
//! also reads ahead ([`ReadAhead`]); a random or cached one does not.
//!
//! The common read, within one block of a cached file, has a short path: the node remembers
//! the file's size and the runs of blocks its reads mapped ([`Memo`]), true as long as no
//! inode changed and no block left a file (the generation of [`crate::bmap::Runs`]). A read
//! inside one of those runs then needs neither the inode nor the block map: only the
//! read-ahead bookkeeping and the copy out of the cache. The node keeps all the runs its reads
//! found (up to [`MEMO_RUNS`]), not just the last one: a random reader of a large file moves
//! between leaves of the block map, so one run would miss most of the time, and each miss
//! costs a look-up of the inode and of the volume's run cache (measured: random 4 KiB reads
//! of a 64 MiB file, 16 runs, spent about 280 guest instructions per read on that path).

use crate::bmap::{Run, RunList};
use crate::fs::{Inner, State};
use crate::inode::Inode;
use alloc::vec::Vec;
use core::ops::Range;
use libos_core::{Errno, Result};

/// The first read-ahead window of a sequential reader, in blocks.
const READ_AHEAD_MIN: u64 = 4;
/// The largest window: it doubles on every sequential read up to this.
const READ_AHEAD_MAX: u64 = 64;
/// How many readers of one node [`ReadAhead`] follows at once.
const STREAMS: usize = 4;
/// Runs a node's [`Memo`] keeps at most (then it starts over): a file written in one go has
/// one run per leaf of its block map, so this covers such a file of 256 MiB (4 KiB blocks).
const MEMO_RUNS: usize = 64;

/// What a node keeps between reads: read-ahead and the memo of its reads' block runs.
#[derive(Default)]
pub struct Reader {
    ahead: ReadAhead,
    memo: Memo,
}

/// The size of the file and runs of its blocks as reads found them, true while
/// [`crate::bmap::Runs::generation`] is `generation` (`None`: nothing remembered).
#[derive(Default)]
struct Memo {
    generation: Option<u64>,
    size: u64,
    runs: RunList,
    /// The index of the run the last read used (looked at first: reads are often sequential).
    last: usize,
}

impl Memo {
    /// The disk block of logical block `lblock` if a run remembered as of `generation`
    /// holds it.
    fn block(&mut self, generation: u64, lblock: u64) -> Option<u32> {
        if self.generation != Some(generation) {
            return None;
        }
        self.runs.block(lblock, &mut self.last)
    }

    /// Remembers that the file had `size` bytes and `run` as of `generation` (forgetting
    /// what was remembered as of another generation).
    fn note(&mut self, generation: u64, size: u64, run: Run) {
        if self.generation != Some(generation) {
            self.runs.clear();
            self.generation = Some(generation);
        }
        self.size = size;
        self.last = self.runs.insert(run, MEMO_RUNS);
    }
}

/// The read-ahead state of a node's readers. One node may serve several open files (the node
/// cache hands the same node to every lookup of a name), so it follows up to [`STREAMS`]
/// read streams at once, as Linux keeps one per open file: a read continues the stream that
/// ended where it starts, else it starts a new one in place of the least recently used.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadAhead {
    streams: [Stream; STREAMS],
    /// Counts reads, for [`Stream::used`].
    clock: u64,
    /// The stream of the last read (looked at first: most often there is one reader).
    last: usize,
}

/// One reader's read-ahead: it starts only once reads are sequential (a read starting where
/// the previous one ended, or at the start of the file), and fetches a window of blocks past
/// the read that doubles with every sequential read up to [`READ_AHEAD_MAX`]. The next window
/// is fetched when the reader enters the second half of the current one, so a streaming
/// reader finds its blocks cached; a random reader never reads ahead, and a cached one costs
/// no block map lookups beyond its own blocks.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    /// The byte offset where the previous read ended.
    next: u64,
    /// The current window in blocks (0: not sequential).
    window: u64,
    /// Read-ahead has been issued for logical blocks below this.
    ahead_end: u64,
    /// [`ReadAhead::clock`] at its last read (0: never used).
    used: u64,
}

impl ReadAhead {
    /// Notes a read of `len` bytes at `offset` ending in logical block `last` of a file of
    /// `file_blocks` blocks; returns the blocks to read ahead now, if any. Inlined into the
    /// read paths: every cached read passes here, and most return at once.
    #[inline(always)]
    fn plan(&mut self, offset: u64, len: u64, last: u64, file_blocks: u64) -> Option<Range<u64>> {
        let (stream, sequential) = self.stream(offset);
        stream.next = offset + len;
        if !sequential {
            return None;
        }
        stream.window = if stream.window == 0 { READ_AHEAD_MIN } else { (stream.window * 2).min(READ_AHEAD_MAX) };
        // Fetch the next window once the reader is in the second half of the last one.
        let from = stream.ahead_end.max(last + 1);
        let to = (last + 1 + stream.window).min(file_blocks);
        if from < to && last + 1 + stream.window / 2 >= stream.ahead_end {
            stream.ahead_end = to;
            return Some(from..to);
        }
        None
    }

    /// The stream a read at `offset` belongs to, and whether the read is sequential in it: the
    /// one that ended at `offset`, else a fresh one (sequential at the start of the file).
    fn stream(&mut self, offset: u64) -> (&mut Stream, bool) {
        self.clock += 1;
        let continues = |s: &Stream| s.used != 0 && s.next == offset;
        let found = match self.streams.get(self.last) {
            Some(stream) if continues(stream) => Some(self.last),
            _ => self.streams.iter().position(continues),
        };
        let (at, sequential) = match found {
            Some(at) => (at, true),
            None => {
                // `min_by_key` finds one: there are STREAMS > 0 of them.
                let oldest = (0..STREAMS).min_by_key(|&i| self.streams[i].used).unwrap_or(0);
                self.streams[oldest] = Stream::default();
                (oldest, offset == 0)
            }
        };
        self.last = at;
        let stream = &mut self.streams[at];
        stream.used = self.clock;
        (stream, sequential)
    }
}

impl Inner {
    /// The short path of a read (see the module docs): `Some(bytes read)` if `reader`'s memo
    /// is still true and holds the read's one block, else `None` (nothing was done: take
    /// [`Inner::read_data`]).
    pub fn read_remembered(&self, st: &State, ino: u32, reader: &mut Reader, offset: u64, buf: &mut [u8]) -> Result<Option<usize>> {
        let memo = &mut reader.memo;
        if offset >= memo.size || buf.is_empty() {
            return Ok(None);
        }
        let len = (memo.size - offset).min(buf.len() as u64);
        // Shifts, not divisions: the block size is a power of two.
        let shift = self.geo.block_size.trailing_zeros();
        let last = (offset + len - 1) >> shift;
        if offset >> shift != last {
            return Ok(None);
        }
        let Some(block) = memo.block(st.runs.borrow().generation(), last) else { return Ok(None) };
        let file_blocks = (memo.size >> shift) + u64::from(memo.size & u64::from(self.geo.block_size - 1) != 0);
        if let Some(ahead) = reader.ahead.plan(offset, len, last, file_blocks) {
            self.with_inode(st, ino, |inode| self.read_ahead(st, ino, inode, ahead))??;
        }
        let len = len as usize;
        let within = (offset & u64::from(self.geo.block_size - 1)) as usize;
        self.cache.read(u64::from(block), within, &mut buf[..len])?;
        Ok(Some(len))
    }

    /// Reads up to `buf.len()` bytes at `offset` of `inode` (inode number `ino`); returns the
    /// count (0 at the end). `reader` is the node's read state; a read within one block
    /// leaves its memo there.
    pub fn read_data(&self, st: &State, ino: u32, inode: &Inode, offset: u64, buf: &mut [u8], reader: &mut Reader) -> Result<usize> {
        if offset >= inode.size || buf.is_empty() {
            return Ok(0);
        }
        let len = (inode.size - offset).min(buf.len() as u64) as usize;
        let block_size = u64::from(self.geo.block_size);
        let first = offset / block_size;
        let last = (offset + len as u64 - 1) / block_size;
        // A read within one block (the common 4 KiB read) maps it without building a list.
        let mut map = Vec::new();
        let single = if first == last {
            let run = self.run_cached(st, ino, inode, first)?;
            if let Some(run) = run {
                reader.memo.note(st.runs.borrow().generation(), inode.size, run);
            }
            run.and_then(|run| run.block(first))
        } else {
            self.bmap_run(inode, first, last + 1 - first, &mut map)?;
            if map.len() as u64 != last + 1 - first {
                return Err(Errno::EFBIG);
            }
            // One request per run of uncached adjacent blocks of the read itself.
            self.prefetch(&map);
            None
        };
        if let Some(ahead) = reader.ahead.plan(offset, len as u64, last, inode.size.div_ceil(block_size)) {
            self.read_ahead(st, ino, inode, ahead)?;
        }
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let lblock = at / block_size;
            let within = (at % block_size) as usize;
            let n = (block_size as usize - within).min(len - done);
            let piece = &mut buf[done..done + n];
            let block = if first == last { single } else { map.get((lblock - first) as usize).copied().flatten() };
            match block {
                Some(block) => self.cache.read(u64::from(block), within, piece)?,
                None => piece.fill(0),
            }
            done += n;
        }
        Ok(len)
    }

    /// Reads logical blocks `blocks` of `inode` ahead, unless the last of them is cached
    /// already (then the window most likely is: it was read ahead before, or written
    /// recently), which costs no block map walk beyond that one block.
    fn read_ahead(&self, st: &State, ino: u32, inode: &Inode, blocks: Range<u64>) -> Result<()> {
        if let Some(last) = self.bmap_cached(st, ino, inode, blocks.end - 1)? {
            if self.cache.contains(u64::from(last)) {
                return Ok(());
            }
        }
        let mut ahead = Vec::new();
        self.bmap_run(inode, blocks.start, blocks.end - blocks.start, &mut ahead)?;
        self.prefetch(&ahead);
        Ok(())
    }

    /// Asks the cache to fetch the mapped blocks of `map`, one request per run of adjacent
    /// disk blocks.
    fn prefetch(&self, map: &[Option<u32>]) {
        let mut i = 0;
        while i < map.len() {
            let Some(start) = map[i] else {
                i += 1;
                continue;
            };
            let mut run = 1;
            while map.get(i + run).copied().flatten() == Some(start.wrapping_add(run as u32)) {
                run += 1;
            }
            if run > 1 {
                self.cache.read_ahead(u64::from(start), run as u64);
            }
            i += run;
        }
    }
}
