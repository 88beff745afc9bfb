//! File offsets shared between VMs: after a fork, parent and child share an open file
//! description and its offset, as on Linux. The guest registers each description a fork
//! copies (`offset-new`); the host keeps the value, and every read, write or seek in any VM
//! holding it takes it first (`offset-lock`, answered with the value once no other VM holds
//! it, in the order asked) and gives it back with the new value (`offset-unlock`). A VM that
//! ends while holding one gives it back unchanged; an offset no VM holds any more is
//! forgotten.

use super::pipes::Outbox;
use libos_process_protocol::{HostMessage, OffsetId, Pid, Reply};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const EBADF: i32 = nix::errno::Errno::EBADF as i32;

/// One shared offset.
#[derive(Debug, Default)]
struct Offset {
    value: u64,
    /// The VMs that hold its description.
    holders: BTreeSet<Pid>,
    /// The VM using it now.
    locked_by: Option<Pid>,
    /// `offset-lock` requests waiting: the VM and its request id.
    waiting: VecDeque<(Pid, u32)>,
}

/// Every shared offset of a run.
#[derive(Debug, Default)]
pub struct Offsets {
    offsets: BTreeMap<OffsetId, Offset>,
    next_id: OffsetId,
}

impl Offsets {
    /// A new offset at `value`, held by `pid`.
    pub fn create(&mut self, pid: Pid, value: u64) -> OffsetId {
        self.next_id += 1;
        let holders = BTreeSet::from([pid]);
        self.offsets.insert(self.next_id, Offset { value, holders, ..Offset::default() });
        self.next_id
    }

    /// `offset-lock` (request `request` of `pid`): answered now when free, else when the VMs
    /// before it gave it back. `EBADF` for an offset `pid` does not hold.
    pub fn lock(&mut self, pid: Pid, request: u32, id: OffsetId, out: &mut Outbox) {
        let Some(offset) = self.offsets.get_mut(&id).filter(|o| o.holders.contains(&pid)) else {
            out.push((pid, HostMessage::Reply(request, Reply::Error { errno: EBADF })));
            return;
        };
        offset.waiting.push_back((pid, request));
        Self::grant(offset, out);
    }

    /// `offset-unlock`: `pid` gives `id` back at `value`; the next waiter gets it.
    pub fn unlock(&mut self, pid: Pid, request: u32, id: OffsetId, value: u64, out: &mut Outbox) {
        let reply = match self.offsets.get_mut(&id) {
            Some(offset) if offset.locked_by == Some(pid) => {
                offset.value = value;
                offset.locked_by = None;
                Self::grant(offset, out);
                Reply::Done
            }
            _ => Reply::Error { errno: EBADF },
        };
        out.insert(0, (pid, HostMessage::Reply(request, reply)));
    }

    /// `pid` closed its description of `id`.
    pub fn drop_holder(&mut self, pid: Pid, id: OffsetId, out: &mut Outbox) {
        if let Some(offset) = self.offsets.get_mut(&id) {
            Self::leave(offset, pid, out);
        }
        self.forget_unheld();
    }

    /// A fork: `child` holds every offset `parent` holds.
    pub fn forked(&mut self, parent: Pid, child: Pid) {
        for offset in self.offsets.values_mut().filter(|o| o.holders.contains(&parent)) {
            offset.holders.insert(child);
        }
    }

    /// VM `pid` ended: it holds nothing any more, and what it had locked is free.
    pub fn vm_ended(&mut self, pid: Pid, out: &mut Outbox) {
        for offset in self.offsets.values_mut() {
            Self::leave(offset, pid, out);
        }
        self.forget_unheld();
    }

    fn leave(offset: &mut Offset, pid: Pid, out: &mut Outbox) {
        offset.holders.remove(&pid);
        offset.waiting.retain(|&(waiter, _)| waiter != pid);
        if offset.locked_by == Some(pid) {
            offset.locked_by = None;
            Self::grant(offset, out);
        }
    }

    fn forget_unheld(&mut self) {
        self.offsets.retain(|_, offset| !offset.holders.is_empty());
    }

    /// Hands a free offset to its first waiter.
    fn grant(offset: &mut Offset, out: &mut Outbox) {
        if offset.locked_by.is_some() {
            return;
        }
        if let Some((pid, request)) = offset.waiting.pop_front() {
            offset.locked_by = Some(pid);
            out.push((pid, HostMessage::Reply(request, Reply::Count { bytes: offset.value })));
        }
    }

    /// How many offsets are kept (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.offsets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(out: &Outbox, pid: Pid, request: u32) -> Option<u64> {
        out.iter().find_map(|(to, m)| match m {
            HostMessage::Reply(r, Reply::Count { bytes }) if *to == pid && *r == request => Some(*bytes),
            _ => None,
        })
    }

    #[test]
    fn parent_and_child_take_turns_and_see_each_others_offset() {
        let mut offsets = Offsets::default();
        let id = offsets.create(1, 100);
        offsets.forked(1, 2);
        let mut out = Outbox::new();
        offsets.lock(2, 7, id, &mut out);
        assert_eq!(value(&out, 2, 7), Some(100));
        out.clear();
        offsets.lock(1, 3, id, &mut out);
        assert!(out.is_empty(), "the parent waits while the child holds it");
        offsets.unlock(2, 8, id, 250, &mut out);
        assert!(matches!(out[0], (2, HostMessage::Reply(8, Reply::Done))));
        assert_eq!(value(&out, 1, 3), Some(250), "the parent continues where the child stopped");
    }

    #[test]
    fn strangers_are_refused_and_a_dead_holder_frees_its_lock() {
        let mut offsets = Offsets::default();
        let id = offsets.create(1, 0);
        let mut out = Outbox::new();
        offsets.lock(5, 1, id, &mut out);
        assert!(matches!(out[0], (5, HostMessage::Reply(1, Reply::Error { errno: EBADF }))));
        offsets.forked(1, 2);
        out.clear();
        offsets.lock(2, 1, id, &mut out);
        offsets.lock(1, 2, id, &mut out);
        assert_eq!(value(&out, 1, 2), None);
        offsets.vm_ended(2, &mut out);
        assert_eq!(value(&out, 1, 2), Some(0), "the lock of a VM that died goes to the next");
        out.clear();
        offsets.unlock(2, 9, id, 5, &mut out);
        assert!(matches!(out[0], (2, HostMessage::Reply(9, Reply::Error { errno: EBADF }))), "only the holder unlocks");
    }

    #[test]
    fn an_offset_is_forgotten_when_no_vm_holds_it() {
        let mut offsets = Offsets::default();
        let id = offsets.create(1, 0);
        offsets.forked(1, 2);
        let mut out = Outbox::new();
        offsets.drop_holder(1, id, &mut out);
        assert_eq!(offsets.len(), 1);
        offsets.drop_holder(2, id, &mut out);
        assert_eq!(offsets.len(), 0);
        let other = offsets.create(3, 0);
        assert_ne!(other, id, "ids are not reused");
        offsets.vm_ended(3, &mut out);
        assert_eq!(offsets.len(), 0);
    }
}
