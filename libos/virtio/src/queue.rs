//! A split virtqueue (virtio 1.2 §2.7) whose descriptors point at the caller's buffers.
//!
//! Memory: one zeroed, page-aligned, physically contiguous block holds the descriptor table,
//! the available ring and (on the next page boundary) the used ring: the layout legacy
//! virtio-mmio requires, and valid for modern transports too.
//!
//! A request is a list of device-readable parts followed by device-writable parts. Each part is
//! split into physically contiguous segments ([`segments`]); one segment becomes one direct
//! descriptor, several become an indirect table (when `VIRTIO_F_INDIRECT_DESC` was negotiated)
//! that takes a single ring slot. The queue never copies payload bytes.
//!
//! The queue is not synchronised: its owner serialises access (the virtio-fs device keeps it
//! under a lock shared with its interrupt path).

use crate::{QueueAddresses, Transport};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};
use libos_core::hal;
use libos_core::memory::PAGE;
use libos_core::{Errno, Result};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
/// `avail.flags`: the driver does not want interrupts for this queue.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// `used.flags`: the device does not need notifications right now.
const USED_F_NO_NOTIFY: u16 = 1;
/// Most descriptors in one indirect table (QEMU rejects longer ones: `VIRTQUEUE_MAX_SIZE`).
pub const MAX_INDIRECT: usize = 1024;

/// One descriptor, as the device reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// Zeroed, page-aligned memory the device reads and writes (freed on drop).
struct DmaMemory {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the memory is owned exclusively by this value; access is serialised by its owner.
unsafe impl Send for DmaMemory {}
// SAFETY: as above: shared references never touch the memory without the owner's lock.
unsafe impl Sync for DmaMemory {}

impl DmaMemory {
    fn new(len: usize) -> Result<DmaMemory> {
        let layout = Layout::from_size_align(len.max(1), PAGE as usize).map_err(|_| Errno::ENOMEM)?;
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Errno::ENOMEM);
        }
        let memory = DmaMemory { ptr, layout };
        // The device needs the block physically contiguous (the legacy transport takes one
        // page number for all of it).
        let platform = hal::platform();
        let first = platform.virt_to_phys(ptr as usize);
        let last = platform.virt_to_phys(ptr as usize + layout.size() - 1);
        if last - first != layout.size() as u64 - 1 {
            return Err(Errno::ENOMEM);
        }
        Ok(memory)
    }

    fn phys(&self) -> u64 {
        hal::platform().virt_to_phys(self.ptr as usize)
    }
}

impl Drop for DmaMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout and not freed since.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A physically contiguous piece of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical address.
    pub phys: u64,
    /// Length in bytes (never 0).
    pub len: u32,
}

/// Splits the buffer `[virt, virt + len)` into physically contiguous segments (one per
/// contiguous run of pages, at most `u32::MAX` bytes each), calling `f` for each.
pub fn segments(virt: usize, len: usize, mut f: impl FnMut(Segment)) {
    let platform = hal::platform();
    let mut at = virt;
    let end = virt + len;
    while at < end {
        let phys = platform.virt_to_phys(at);
        let mut run_end = (at | (PAGE as usize - 1)) + 1; // end of this page
        while run_end < end
            && run_end - at < u32::MAX as usize - PAGE as usize
            && platform.virt_to_phys(run_end) == phys + (run_end - at) as u64
        {
            run_end += PAGE as usize;
        }
        let run_end = run_end.min(end);
        f(Segment { phys, len: (run_end - at) as u32 });
        at = run_end;
    }
}

/// A split virtqueue.
///
/// The device may write anything into the queue memory it shares with us (a buggy or hostile
/// device, or one that was reset and reused the memory). So nothing the driver relies on lives
/// there: the free list and each chain's shape are kept in driver-private memory (`next`,
/// `chains`), the descriptor table is only ever written, and every used-ring entry is checked
/// against what is in flight before it frees anything ([`SplitQueue::pop_used`]).
pub struct SplitQueue {
    index: u16,
    size: u16,
    memory: DmaMemory,
    /// Offsets of the rings in `memory`.
    available_offset: usize,
    used_offset: usize,
    indirect: bool,
    free_head: u16,
    free_count: u16,
    /// Driver-private links: the free list, and the order of each chain's descriptors while
    /// it is in flight (the table's own `next` fields are never read back).
    next: Vec<u16>,
    /// Our copy of `avail.idx`.
    available_index: u16,
    /// The `used.idx` we processed up to.
    last_used: u16,
    /// Per head descriptor: the chain in flight there, if any.
    chains: Vec<Chain>,
    /// Descriptor lists the device gave back, reused so that a request allocates nothing once
    /// the queue has warmed up (at most [`SPARE_LISTS`] are kept).
    spare: Vec<Vec<Descriptor>>,
    /// The first used-ring entry the device should not have written, not yet reported.
    fault: Option<UsedFault>,
}

/// A chain in flight, as the driver posted it.
#[derive(Default)]
struct Chain {
    /// Direct descriptors it holds (0: no chain starts here).
    count: u16,
    /// Bytes of device-writable buffers it carries: the most a used entry may claim.
    writable: u64,
    /// Its indirect table, kept alive until the device returns the chain.
    table: Option<Vec<Descriptor>>,
}

/// A used-ring entry the device should not have written (see [`SplitQueue::take_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsedFault {
    /// The id is not a descriptor of this queue.
    BadId(u32),
    /// The id names a descriptor that starts no chain in flight (never posted, or returned
    /// twice).
    NotInFlight(u16),
    /// The device claims to have written more bytes than the chain's writable buffers hold.
    TooLong {
        /// The chain.
        token: u16,
        /// What the device claimed.
        len: u32,
        /// What the writable buffers hold.
        writable: u64,
    },
    /// `used.idx` moved further ahead than the ring has entries.
    BadIndex(u16),
}

/// How many returned descriptor lists a queue keeps for reuse.
const SPARE_LISTS: usize = 32;

impl SplitQueue {
    /// Sets up queue `index` with the largest size the device allows, capped at `max_size`
    /// (rounded down to a power of two, as legacy devices require). `indirect`: whether
    /// `VIRTIO_F_INDIRECT_DESC` was negotiated. Errors: `ENOENT` when the device has no such
    /// queue, `ENOMEM`.
    pub fn new(transport: &dyn Transport, index: u16, max_size: u16, indirect: bool) -> Result<SplitQueue> {
        let offered = transport.max_queue_size(index);
        if offered == 0 {
            return Err(Errno::ENOENT);
        }
        let wanted = offered.min(max_size.max(1));
        let size = 1u16 << (15 - wanted.leading_zeros());
        let n = usize::from(size);
        let available_offset = 16 * n;
        let used_offset = (available_offset + 6 + 2 * n).next_multiple_of(PAGE as usize);
        let total = used_offset + (6 + 8 * n).next_multiple_of(PAGE as usize);
        let memory = DmaMemory::new(total)?;
        let base = memory.phys();
        let queue = SplitQueue {
            index,
            size,
            memory,
            available_offset,
            used_offset,
            indirect,
            free_head: 0,
            free_count: size,
            next: (0..size).map(|i| (i + 1) % size).collect(),
            available_index: 0,
            last_used: 0,
            chains: (0..n).map(|_| Chain::default()).collect(),
            spare: Vec::new(),
            fault: None,
        };
        transport.setup_queue(
            index,
            size,
            QueueAddresses { descriptors: base, available: base + available_offset as u64, used: base + used_offset as u64 },
        )?;
        Ok(queue)
    }

    /// The queue's index on the device.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The number of entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Most segments one request may have (an indirect table's limit, or the ring's size).
    pub fn max_segments(&self) -> usize {
        if self.indirect { MAX_INDIRECT } else { usize::from(self.size) }
    }

    fn ring_u16(&self, offset: usize) -> *mut u16 {
        self.memory.ptr.wrapping_add(offset).cast::<u16>()
    }

    fn write_descriptor(&mut self, i: u16, descriptor: Descriptor) {
        // `i` always comes from the driver-private free list, whose links are `< size`.
        debug_assert!(i < self.size);
        let slot = self.memory.ptr.wrapping_add(16 * usize::from(i)).cast::<Descriptor>();
        // SAFETY: `i < size`, so the 16-byte aligned slot lies inside the descriptor table of
        // `memory`, which this queue owns; the device reads it only after it is published.
        unsafe { slot.write_volatile(descriptor) }
    }

    /// Asks the device not to interrupt for this queue (`false`) or to interrupt again.
    pub fn set_interrupts(&mut self, enabled: bool) {
        let flags = if enabled { 0 } else { AVAIL_F_NO_INTERRUPT };
        // SAFETY: `avail.flags` is the first u16 of the available ring inside `memory`.
        unsafe { self.ring_u16(self.available_offset).write_volatile(flags) }
        // The device must see the flag before the caller looks at the used ring again (the
        // "enable, then re-check" of virtio 1.2 §2.7.10): without this store-load barrier the
        // re-check can read a stale index while the device still sees interrupts off, and a
        // buffer completed in between raises no interrupt.
        fence(Ordering::SeqCst);
    }

    /// Publishes a request: `readable` parts for the device to read, then `writable` parts for
    /// it to fill. Returns the token (head descriptor) [`SplitQueue::pop_used`] reports.
    ///
    /// Errors: `ENOSPC` when not enough descriptors are free right now (retry after
    /// completions), `E2BIG` when the request can never fit.
    ///
    /// # Safety
    /// Every part must stay valid, and must not be accessed by the CPU (the writable ones are
    /// written by the device), until `pop_used` returned this token or the device was reset.
    pub unsafe fn add(&mut self, readable: &[&[u8]], writable: &mut [&mut [u8]]) -> Result<u16> {
        let mut list = self.spare.pop().unwrap_or_default();
        list.clear();
        for part in readable {
            segments(part.as_ptr() as usize, part.len(), |s| {
                list.push(Descriptor { addr: s.phys, len: s.len, flags: 0, next: 0 });
            });
        }
        for part in writable.iter_mut() {
            segments(part.as_mut_ptr() as usize, part.len(), |s| {
                list.push(Descriptor { addr: s.phys, len: s.len, flags: DESC_F_WRITE, next: 0 });
            });
        }
        if list.is_empty() {
            return Err(Errno::EINVAL);
        }
        let writable_bytes: u64 = list.iter().filter(|d| d.flags & DESC_F_WRITE != 0).map(|d| u64::from(d.len)).sum();
        let head = self.free_head;
        if self.indirect && list.len() > 1 {
            if list.len() > MAX_INDIRECT {
                return Err(Errno::E2BIG);
            }
            if self.free_count == 0 {
                self.recycle(list); // the caller waits and tries again
                return Err(Errno::ENOSPC);
            }
            let last = list.len() - 1;
            for (i, d) in list.iter_mut().enumerate() {
                if i < last {
                    d.flags |= DESC_F_NEXT;
                    d.next = (i + 1) as u16;
                }
            }
            // The table is not touched again until the device returns the chain (`pop_used`).
            let table = list;
            let mut table_phys = 0;
            let mut pieces = 0;
            let bytes = table.len() * size_of::<Descriptor>();
            segments(table.as_ptr() as usize, bytes, |s| {
                table_phys = s.phys;
                pieces += 1;
            });
            if pieces != 1 {
                return Err(Errno::ENOMEM); // the table itself must be contiguous
            }
            let next = self.next[usize::from(head)];
            self.write_descriptor(head, Descriptor { addr: table_phys, len: bytes as u32, flags: DESC_F_INDIRECT, next: 0 });
            self.free_head = next;
            self.free_count -= 1;
            self.chains[usize::from(head)] = Chain { count: 1, writable: writable_bytes, table: Some(table) };
        } else {
            if list.len() > usize::from(self.size) {
                return Err(Errno::E2BIG);
            }
            if list.len() > usize::from(self.free_count) {
                self.recycle(list); // the caller waits and tries again
                return Err(Errno::ENOSPC);
            }
            let mut at = head;
            let count = list.len();
            for (i, mut d) in list.drain(..).enumerate() {
                // The chain keeps the free list's order, so its private links stay valid
                // while it is in flight and give it back in `pop_used`.
                let next = self.next[usize::from(at)];
                if i + 1 < count {
                    d.flags |= DESC_F_NEXT;
                    d.next = next;
                }
                self.write_descriptor(at, d);
                at = next;
            }
            self.free_head = at;
            self.free_count -= count as u16;
            self.chains[usize::from(head)] = Chain { count: count as u16, writable: writable_bytes, table: None };
            self.recycle(list);
        }
        self.publish(head);
        Ok(head)
    }

    /// [`SplitQueue::add`] for one buffer the device fills whose physical segment the caller
    /// already knows (receive buffers posted again and again): one descriptor, no translation.
    ///
    /// Errors: `ENOSPC` when no descriptor is free.
    ///
    /// # Safety
    /// `segment` must be memory the caller owns and does not access until `pop_used` returned
    /// the token or the device was reset (as for [`SplitQueue::add`]).
    pub unsafe fn add_writable_segment(&mut self, segment: Segment) -> Result<u16> {
        if self.free_count == 0 {
            return Err(Errno::ENOSPC);
        }
        let head = self.free_head;
        let next = self.next[usize::from(head)];
        self.write_descriptor(head, Descriptor { addr: segment.phys, len: segment.len, flags: DESC_F_WRITE, next: 0 });
        self.free_head = next;
        self.free_count -= 1;
        self.chains[usize::from(head)] = Chain { count: 1, writable: u64::from(segment.len), table: None };
        self.publish(head);
        Ok(head)
    }

    /// Puts chain `head` on the available ring: the ring entry, then (after a barrier) the
    /// index the device polls.
    fn publish(&mut self, head: u16) {
        let slot = self.available_offset + 4 + 2 * usize::from(self.available_index % self.size);
        // SAFETY: `slot` is entry `avail_idx % size` of the available ring inside `memory`.
        unsafe { self.ring_u16(slot).write_volatile(head) }
        fence(Ordering::SeqCst);
        self.available_index = self.available_index.wrapping_add(1);
        // SAFETY: `avail.idx` is the second u16 of the available ring inside `memory`.
        unsafe { self.ring_u16(self.available_offset + 2).write_volatile(self.available_index) }
        fence(Ordering::SeqCst);
    }

    /// Whether the device wants a notification for what was just added.
    pub fn should_notify(&self) -> bool {
        fence(Ordering::SeqCst);
        // SAFETY: `used.flags` is the first u16 of the used ring inside `memory`.
        let flags = unsafe { self.ring_u16(self.used_offset).read_volatile() };
        flags & USED_F_NO_NOTIFY == 0
    }

    /// The device's `used.idx`.
    fn used_index(&self) -> u16 {
        // SAFETY: `used.idx` is the second u16 of the used ring inside `memory`.
        unsafe { self.ring_u16(self.used_offset + 2).read_volatile() }
    }

    /// True when the device returned a chain not yet popped.
    pub fn has_used(&self) -> bool {
        self.used_index() != self.last_used
    }

    /// Takes the next chain the device returned: its token and how many bytes the device wrote
    /// into the writable parts. Frees its descriptors.
    ///
    /// Entries the device should not have written never free anything and are recorded for
    /// [`SplitQueue::take_fault`] (and logged): an id out of range or not in flight is skipped;
    /// a chain returned with a length over its writable buffers is freed and reported with the
    /// length capped to them (so no caller reads past its buffers), and a driver that cares
    /// fails the request on the fault. A `used.idx` more than the ring's size ahead stops
    /// popping (`None`). The driver should reset a device that did any of this.
    pub fn pop_used(&mut self) -> Option<(u16, u32)> {
        loop {
            let used_index = self.used_index();
            if used_index == self.last_used {
                return None;
            }
            if used_index.wrapping_sub(self.last_used) > self.size {
                self.record_fault(UsedFault::BadIndex(used_index));
                return None;
            }
            fence(Ordering::SeqCst);
            let element = self.used_offset + 4 + 8 * usize::from(self.last_used % self.size);
            let element = self.memory.ptr.wrapping_add(element).cast::<u32>();
            // SAFETY: entry `last_used % size` of the used ring (two u32s: id, len) lies inside
            // `memory`; the device published it before advancing `used.idx` (ordered by the
            // fence).
            let id = unsafe { element.read_volatile() };
            // SAFETY: as above, the entry's second word.
            let len = unsafe { element.wrapping_add(1).read_volatile() };
            self.last_used = self.last_used.wrapping_add(1);
            let head = match u16::try_from(id) {
                Ok(head) if head < self.size => head,
                _ => {
                    self.record_fault(UsedFault::BadId(id));
                    continue;
                }
            };
            let chain = core::mem::take(&mut self.chains[usize::from(head)]);
            if chain.count == 0 {
                self.record_fault(UsedFault::NotInFlight(head));
                continue;
            }
            let mut reported = len;
            if u64::from(len) > chain.writable {
                self.record_fault(UsedFault::TooLong { token: head, len, writable: chain.writable });
                reported = chain.writable as u32; // at most `len`, so it fits
            }
            if let Some(table) = chain.table {
                self.recycle(table);
            }
            // Give the chain back to the free list: its private links lead to its last
            // descriptor, which then links to the old head.
            let mut last = head;
            for _ in 1..chain.count {
                last = self.next[usize::from(last)];
            }
            self.next[usize::from(last)] = self.free_head;
            self.free_head = head;
            self.free_count += chain.count;
            return Some((head, reported));
        }
    }

    fn record_fault(&mut self, fault: UsedFault) {
        log::error!("virtqueue {}: the device wrote a bad used entry: {fault:?}", self.index);
        self.fault.get_or_insert(fault);
    }

    /// The first bad used-ring entry seen since the last call (see [`SplitQueue::pop_used`]).
    pub fn take_fault(&mut self) -> Option<UsedFault> {
        self.fault.take()
    }

    /// Keeps a descriptor list the device no longer reads for the next request.
    fn recycle(&mut self, list: Vec<Descriptor>) {
        if self.spare.len() < SPARE_LISTS {
            self.spare.push(list);
        }
    }

    /// Free descriptors (for a caller deciding whether to wait).
    pub fn free_descriptors(&self) -> u16 {
        self.free_count
    }

    /// Forgets every chain in flight (after a device reset: the device no longer uses them).
    /// The queue itself is not usable afterwards (the device forgot it): set up a new one.
    pub fn abandon_all(&mut self) {
        for chain in &mut self.chains {
            *chain = Chain::default();
        }
    }
}

#[cfg(test)]
mod tests;
