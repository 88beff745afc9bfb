//! The node cache: recently looked-up names of a volume, (directory inode, name) -> the
//! [`Ext2Node`] handed out for it, so that looking a hot name up again (every `stat` or
//! `open` of a path walks through it) costs one hash lookup and a reference count, not a
//! directory search, an inode read and a node allocation (measured: those were a third of
//! a `stat` of an ext2 file).
//!
//! Rules that keep it true and bounded:
//!
//! - An entry names what the directory says only while the name is unchanged, so every
//!   operation that removes or retargets a name (unlink, rmdir, both names of a rename) takes
//!   the entry out first ([`Inner::uncache`]); creating a name needs nothing (no negative
//!   entries are kept). `..` is never cached: it changes when its directory moves.
//! - A cached node counts as "live" for the orphan rules in `fs` like any node (it is one),
//!   which would keep a removed inode from being freed; [`Inner::uncache`] therefore retires
//!   a node nobody else holds before the operation looks at the live count, so the inode is
//!   freed at once as without the cache.
//! - No node is dropped while the volume lock is held (the last node of an orphan frees it,
//!   which takes the lock): nodes leaving the cache are retired by hand under the lock, or
//!   handed back to be dropped after it ([`Evicted`]).
//! - Names come in by lookups and by creation (a file just made is most often used next, as
//!   Linux's dentry cache keeps it).
//! - At most [`NodeCache::capacity`] entries, sized with the buffer cache as the decoded
//!   inodes are (one per 16 KiB of it, at least [`NodeCache::MIN_CAPACITY`]; an entry is about
//!   300 bytes with its node: under 2% of the buffer cache's memory); when full it starts over
//!   (cheap, and the hot names are back after one lookup each).
//! - The cache holds nodes, which hold the volume: [`NodeCache::close`] (at the file
//!   system's drop) empties it for good, so the volume is still unmounted when the last
//!   outside reference goes.
//!
//! Guarded by the volume lock, as the rest of [`State`].

use crate::fs::{Inner, State};
use crate::node::Ext2Node;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::hash::BuildHasher;
use hashbrown::{DefaultHashBuilder, HashTable};

/// One cached name.
struct Entry {
    dir: u32,
    name: Box<[u8]>,
    node: Arc<Ext2Node>,
}

/// The nodes of recently looked-up names (see the module docs).
pub struct NodeCache {
    table: HashTable<Entry>,
    hasher: DefaultHashBuilder,
    /// Entries kept at most.
    capacity: usize,
    /// Set by [`NodeCache::close`]: nothing is cached any more.
    closed: bool,
}

/// Nodes that left the cache while the volume lock was held; drop this after releasing it.
#[must_use = "drop it after the volume lock is released"]
pub struct Evicted {
    _nodes: HashTable<Entry>,
}

impl NodeCache {
    /// The fewest entries a cache keeps.
    pub const MIN_CAPACITY: usize = 1024;

    /// An empty cache for a volume whose buffer cache holds `cache_bytes`.
    pub fn new(cache_bytes: usize) -> NodeCache {
        let capacity = (cache_bytes / (16 << 10)).max(Self::MIN_CAPACITY);
        NodeCache { table: HashTable::new(), hasher: DefaultHashBuilder::default(), capacity, closed: false }
    }

    /// Entries kept at most.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn hash(&self, dir: u32, name: &[u8]) -> u64 {
        self.hasher.hash_one((dir, name))
    }

    /// The node cached for `name` in directory `dir`.
    pub fn get(&self, dir: u32, name: &str) -> Option<Arc<Ext2Node>> {
        let name = name.as_bytes();
        let hash = self.hash(dir, name);
        self.table.find(hash, |e| e.dir == dir && same_name(&e.name, name)).map(|e| e.node.clone())
    }

    /// Caches `node` as what `name` in `dir` names (unless `name` is `..` or the cache is
    /// closed). Returns what had to go to make room.
    pub fn insert(&mut self, dir: u32, name: &str, node: &Arc<Ext2Node>) -> Option<Evicted> {
        if self.closed || name == ".." {
            return None;
        }
        let evicted = (self.table.len() >= self.capacity).then(|| Evicted { _nodes: core::mem::take(&mut self.table) });
        let name = name.as_bytes();
        let hash = self.hash(dir, name);
        let entry = Entry { dir, name: Box::from(name), node: node.clone() };
        // No entry for the name exists: the caller looked it up here first, under the lock.
        self.table.insert_unique(hash, entry, |e| self.hasher.hash_one((e.dir, &*e.name)));
        evicted
    }

    /// Takes the entry of `name` in `dir` out of the cache.
    fn remove(&mut self, dir: u32, name: &str) -> Option<Arc<Ext2Node>> {
        let name = name.as_bytes();
        let hash = self.hash(dir, name);
        let entry = self.table.find_entry(hash, |e| e.dir == dir && same_name(&e.name, name)).ok()?;
        Some(entry.remove().0.node)
    }

    /// Empties the cache for good (the volume is being unmounted).
    pub fn close(&mut self) -> Evicted {
        self.closed = true;
        Evicted { _nodes: core::mem::take(&mut self.table) }
    }

    /// Entries cached now.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.table.len()
    }
}

/// `a == b` for names, a word at a time: `==` on slices calls `memcmp`, whose byte loop costs
/// more than a whole cache hit otherwise (measured: about 65 instructions for a 7-byte name).
fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // The 8 (or 4) bytes at `at`; callers keep `at + 8 <= n` (or `at + 4 <= n`).
    let word = |s: &[u8], at: usize| s.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_ne_bytes);
    let half = |s: &[u8], at: usize| s.get(at..at + 4).and_then(|w| w.try_into().ok()).map(u32::from_ne_bytes);
    if n >= 8 {
        // Whole words, then the last 8 bytes (overlapping the previous word).
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        return word(a, n - 8) == word(b, n - 8);
    }
    if n >= 4 {
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    // 0 to 3 bytes: the first, middle and last cover them all.
    n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1])
}

impl Inner {
    /// Takes `name` of directory `dir` out of the node cache before an operation removes or
    /// retargets it. A node nobody else holds is retired now (it stops counting as live, so
    /// the operation frees an inode that loses its last name at once); one still in use by
    /// an open file is left to its holders, as any open node.
    pub fn uncache(&self, st: &mut State, dir: u32, name: &str) {
        let Some(node) = st.nodes.remove(dir, name) else { return };
        // `into_inner` is `None` unless this was the only reference; then it only dropped a
        // count (the node lives on elsewhere), so nothing is dropped under the lock.
        if let Some(node) = Arc::into_inner(node) {
            let ino = node.retire();
            if self.node_closed(ino) {
                // The last node of an orphan: only on a corrupt volume (a cached name means a
                // link), but free it as its drop would have.
                self.reclaim_locked(st, ino);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_name;

    #[test]
    fn names_compare_as_bytes() {
        let names: [&[u8]; 12] = [b"", b"a", b"b", b"ab", b"abc", b"abd", b"file", b"file-42", b"file-43", b"12345678", b"123456789", b"a-long-name-of-22-byte"];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} {b:?}");
            }
            let mut changed = a.to_vec();
            for i in 0..changed.len() {
                changed[i] ^= 1;
                assert!(!same_name(a, &changed), "{a:?} with byte {i} changed");
                changed[i] ^= 1;
            }
        }
    }
}
