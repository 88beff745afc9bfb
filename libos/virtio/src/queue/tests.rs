//! The split ring against [`crate::testing::FakeTransport`], a device model that reads the rings
//! the way the spec describes (on the host, where the fake platform maps virtual = physical).

use super::*;
use crate::testing::FakeTransport;
use alloc::boxed::Box;
use alloc::vec;

/// The queue index the tests use.
const Q: u16 = 1;

/// What the fake device read from each chain, in order.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

/// A queue of 8 entries on a fake device that answers every request with `reply` (written into
/// the writable buffers) and records what it read; the test decides when the device runs.
fn setup(indirect: bool, reply: &'static [u8]) -> (SplitQueue, &'static FakeTransport, Seen) {
    libos_core::testing::shared_platform();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let transport: &'static FakeTransport = Box::leak(Box::new(FakeTransport::new(
        26,
        0,
        Vec::new(),
        8,
        Box::new(move |_, input| {
            record.lock().unwrap().push(input.to_vec());
            Some(reply.to_vec())
        }),
    )));
    transport.set_answer_on_notify(false);
    let queue = SplitQueue::new(transport, Q, 1024, indirect).unwrap();
    let (size, addresses) = transport.queue(Q).unwrap();
    assert_eq!(size, 8);
    assert_eq!(addresses.descriptors % PAGE, 0);
    assert_eq!(addresses.used % PAGE, 0, "legacy layout: used ring on a page boundary");
    (queue, transport, seen)
}

const REPLY: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];

fn round_trips(indirect: bool) {
    let (mut queue, device, seen) = setup(indirect, REPLY);
    let header = *b"header";
    let payload = vec![7u8; 3 * PAGE as usize + 5]; // crosses page boundaries
    let mut out_header = [0u8; 4];
    let mut out_data = vec![0u8; 10];
    // Many more requests than the ring has entries: descriptors must come back to the free list.
    for round in 0..50 {
        let token = {
            let mut writable: [&mut [u8]; 2] = [&mut out_header, &mut out_data];
            // SAFETY: the buffers outlive the request (popped below, before they are touched).
            unsafe { queue.add(&[&header, &payload], &mut writable) }.unwrap()
        };
        assert!(queue.should_notify());
        assert!(queue.pop_used().is_none());
        assert_eq!(device.process(Q), 1);
        let input = seen.lock().unwrap().pop().unwrap();
        assert_eq!(&input[..6], b"header");
        assert_eq!(input.len(), 6 + payload.len(), "round {round}");
        assert_eq!(queue.pop_used(), Some((token, 14)));
        assert_eq!(out_header, [0, 1, 2, 3]);
        assert_eq!(out_data, (4..14).collect::<Vec<u8>>());
        assert_eq!(queue.free_descriptors(), 8);
    }
}

#[test]
fn direct_chains_round_trip_and_free_their_descriptors() {
    round_trips(false);
}

#[test]
fn indirect_tables_round_trip() {
    round_trips(true);
}

#[test]
fn several_requests_in_flight_complete_by_token() {
    let (mut queue, device, seen) = setup(false, &[0x55]);
    let inputs: Vec<[u8; 1]> = (0..4u8).map(|i| [i]).collect();
    let mut outputs = vec![[0u8; 1]; 4];
    let mut tokens = Vec::new();
    for (input, output) in inputs.iter().zip(outputs.iter_mut()) {
        let mut writable: [&mut [u8]; 1] = [output];
        // SAFETY: the buffers live until the end of the test, after every pop.
        tokens.push(unsafe { queue.add(&[input], &mut writable) }.unwrap());
    }
    // Two descriptors each: the 8-entry ring is full now.
    let extra = [9u8];
    let mut extra_out = [0u8];
    let mut writable: [&mut [u8]; 1] = [&mut extra_out];
    // SAFETY: rejected, so nothing is published.
    assert_eq!(unsafe { queue.add(&[&extra], &mut writable) }, Err(Errno::ENOSPC));
    assert_eq!(device.process(Q), 4);
    assert_eq!(*seen.lock().unwrap(), vec![vec![0], vec![1], vec![2], vec![3]]);
    let mut popped = Vec::new();
    while let Some((token, len)) = queue.pop_used() {
        assert_eq!(len, 1);
        popped.push(token);
    }
    assert_eq!(popped, tokens);
    assert_eq!(outputs, vec![[0x55u8]; 4]);
    assert_eq!(queue.free_descriptors(), 8);
}

#[test]
fn requests_that_can_never_fit_are_rejected() {
    let (mut queue, _, _) = setup(false, &[]);
    let parts: Vec<[u8; 1]> = vec![[0u8; 1]; 9];
    let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
    // SAFETY: rejected, so nothing is published.
    assert_eq!(unsafe { queue.add(&refs, &mut []) }, Err(Errno::E2BIG));
    // SAFETY: as above.
    assert_eq!(unsafe { queue.add(&[], &mut []) }, Err(Errno::EINVAL));
}

/// Writes `value` at `addr` in a live queue's memory, as a device would.
fn poke<T: Copy>(addr: u64, value: T) {
    // SAFETY: host tests only: physical addresses are virtual ones, and every caller passes an
    // address inside the memory of a queue the test keeps alive, while the fake device is idle.
    unsafe { (addr as usize as *mut T).write_volatile(value) }
}

/// Reads the value at `addr` in a live queue's memory.
fn peek<T: Copy>(addr: u64) -> T {
    // SAFETY: as in `poke`.
    unsafe { (addr as usize as *const T).read_volatile() }
}

/// Writes used-ring entries the way a (misbehaving) device would, and publishes them.
fn device_returns(device: &FakeTransport, entries: &[(u32, u32)]) {
    let (size, addresses) = device.queue(Q).unwrap();
    let mut at: u16 = peek(addresses.used + 2);
    for &(id, len) in entries {
        let element = addresses.used + 4 + 8 * u64::from(at % size);
        poke(element, id);
        poke(element + 4, len);
        at = at.wrapping_add(1);
    }
    poke(addresses.used + 2, at);
}

#[test]
fn a_device_scribbling_on_the_descriptor_table_cannot_corrupt_the_free_list() {
    let (mut queue, device, _) = setup(false, REPLY);
    let (size, addresses) = device.queue(Q).unwrap();
    let mut out = [0u8; 14];
    for round in 0..40u16 {
        let parts: Vec<[u8; 1]> = vec![[1u8]; 1 + usize::from(round % 5)];
        let readable: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let token = {
            let mut writable: [&mut [u8]; 1] = [&mut out];
            // SAFETY: the buffers outlive the request (popped below).
            unsafe { queue.add(&readable, &mut writable) }.unwrap()
        };
        assert_eq!(device.process(Q), 1);
        // The device is done with the chain, but scribbles over the whole table: `next`
        // links out of range or into cycles, lengths and flags of its choosing.
        for i in 0..size {
            let slot = addresses.descriptors + 16 * u64::from(i);
            poke(slot, 0xdead_beef_u64);
            poke(slot + 8, u32::MAX);
            poke(slot + 12, 0xffff_u16);
            poke(slot + 14, if round % 2 == 0 { 0xffff } else { i });
        }
        assert_eq!(queue.pop_used(), Some((token, 14)), "round {round}");
        assert_eq!(queue.free_descriptors(), size, "round {round}: every descriptor is free again");
        assert_eq!(queue.take_fault(), None);
    }
}

#[test]
fn used_entries_with_bad_ids_are_skipped_without_freeing_anything() {
    let (mut queue, device, _) = setup(false, REPLY);
    let input = [1u8];
    let mut out = [0u8; 4];
    let token = {
        let mut writable: [&mut [u8]; 1] = [&mut out];
        // SAFETY: the buffers outlive the request (returned below).
        unsafe { queue.add(&[&input], &mut writable) }.unwrap()
    };
    assert_eq!(queue.free_descriptors(), 6);
    // An id past the ring, one that is not a head in flight, then the real completion.
    let not_in_flight = (token + 5) % 8;
    device_returns(device, &[(99, 4), (u32::from(not_in_flight), 4), (u32::from(token), 4)]);
    assert_eq!(queue.pop_used(), Some((token, 4)), "bad entries are skipped, not taken for completions");
    assert_eq!(queue.take_fault(), Some(UsedFault::BadId(99)));
    assert_eq!(queue.free_descriptors(), 8, "only the real chain was freed");
    // The same token again: not in flight any more, so it frees nothing twice.
    device_returns(device, &[(u32::from(token), 4)]);
    assert_eq!(queue.pop_used(), None);
    assert_eq!(queue.take_fault(), Some(UsedFault::NotInFlight(token)));
    assert_eq!(queue.free_descriptors(), 8);
}

#[test]
fn a_used_length_beyond_the_writable_buffers_is_capped_and_reported() {
    let (mut queue, device, _) = setup(true, REPLY);
    let input = [1u8; 3];
    let (mut a, mut b) = ([0u8; 4], [0u8; 6]);
    let token = {
        let mut writable: [&mut [u8]; 2] = [&mut a, &mut b];
        // SAFETY: the buffers outlive the request (returned below).
        unsafe { queue.add(&[&input], &mut writable) }.unwrap()
    };
    device_returns(device, &[(u32::from(token), 4096)]);
    assert_eq!(queue.pop_used(), Some((token, 10)), "never more than the 10 writable bytes posted");
    assert_eq!(queue.take_fault(), Some(UsedFault::TooLong { token, len: 4096, writable: 10 }));
    assert_eq!(queue.free_descriptors(), 8);
}

#[test]
fn a_used_index_running_ahead_of_the_ring_is_refused() {
    let (mut queue, device, _) = setup(false, REPLY);
    let (_, addresses) = device.queue(Q).unwrap();
    poke(addresses.used + 2, 100_u16);
    assert_eq!(queue.pop_used(), None);
    assert_eq!(queue.take_fault(), Some(UsedFault::BadIndex(100)));
    assert_eq!(queue.free_descriptors(), 8);
}
