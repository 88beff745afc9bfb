//! The thread table: control blocks in slots, found in O(1) from a [`ThreadId`].
//!
//! A thread id is `generation << 32 | slot`. A slot is reused after its thread exits, with the
//! next generation, so an old id never finds a new thread (ids repeat only after 2^32 threads
//! have used the same slot). Slot 0 is the idle thread, slot 1 `main` ([`ThreadId::MAIN`]).

use alloc::boxed::Box;
use alloc::vec::Vec;
use libos_core::sched::ThreadId;

/// Control blocks by id.
pub(crate) struct Table<T> {
    slots: Vec<(u32, Option<Box<T>>)>,
    free: Vec<u32>,
}

fn split(id: ThreadId) -> (usize, u32) {
    ((id.0 & 0xffff_ffff) as usize, (id.0 >> 32) as u32)
}

impl<T> Table<T> {
    pub(crate) fn new() -> Table<T> {
        Table { slots: Vec::new(), free: Vec::new() }
    }

    /// Stores `value` in a free slot and returns its id.
    pub(crate) fn insert(&mut self, value: Box<T>) -> ThreadId {
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
        };
        let entry = &mut self.slots[slot];
        entry.1 = Some(value);
        ThreadId(u64::from(entry.0) << 32 | slot as u64)
    }

    pub(crate) fn get(&self, id: ThreadId) -> Option<&T> {
        let (slot, generation) = split(id);
        match self.slots.get(slot) {
            Some((g, Some(value))) if *g == generation => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: ThreadId) -> Option<&mut T> {
        let (slot, generation) = split(id);
        match self.slots.get_mut(slot) {
            Some((g, Some(value))) if *g == generation => Some(value),
            _ => None,
        }
    }

    /// Slots in use or free: at least the number of live entries.
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Removes the entry; its slot gets the next generation.
    pub(crate) fn remove(&mut self, id: ThreadId) -> Option<Box<T>> {
        let (slot, generation) = split(id);
        let entry = self.slots.get_mut(slot).filter(|(g, v)| *g == generation && v.is_some())?;
        entry.0 = entry.0.wrapping_add(1);
        self.free.push(slot as u32);
        entry.1.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_reused_for_new_threads() {
        let mut table = Table::new();
        let idle = table.insert(Box::new("idle"));
        let main = table.insert(Box::new("main"));
        assert_eq!((idle, main), (ThreadId(0), ThreadId::MAIN));
        let a = table.insert(Box::new("a"));
        assert_eq!(table.remove(a).as_deref(), Some(&"a"));
        assert_eq!(table.get(a), None);
        assert_eq!(table.remove(a), None);
        let b = table.insert(Box::new("b"));
        assert_ne!(a, b); // same slot, next generation
        assert_eq!(b.0 & 0xffff_ffff, a.0 & 0xffff_ffff);
        assert_eq!(table.get(a), None);
        assert_eq!(table.get_mut(b).map(|v| *v), Some("b"));
        assert_eq!(table.get(ThreadId(99)), None);
    }
}
