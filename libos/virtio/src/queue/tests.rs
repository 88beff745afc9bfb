//! The split ring against a device model that reads the rings the way the spec describes (on
//! the host, where the fake platform maps virtual = physical).

use super::*;
use crate::QueueAddresses;
use alloc::string::String;
use core::cell::RefCell;
use libos_core::hal::MemoryRegion;

/// A transport that only records the queue addresses.
#[derive(Default)]
struct RecordingTransport {
    queue: std::sync::Mutex<Option<(u16, QueueAddresses)>>,
}

impl Transport for RecordingTransport {
    fn describe(&self) -> String {
        "test".into()
    }
    fn device_id(&self) -> u32 {
        26
    }
    fn is_modern(&self) -> bool {
        true
    }
    fn device_features(&self) -> u64 {
        0
    }
    fn set_driver_features(&self, _: u64) {}
    fn status(&self) -> u8 {
        0
    }
    fn set_status(&self, _: u8) {}
    fn max_queue_size(&self, _: u16) -> u16 {
        8
    }
    fn setup_queue(&self, _: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
        *self.queue.lock().unwrap() = Some((size, addresses));
        Ok(())
    }
    fn notify(&self, _: u16) {}
    fn read_config(&self, _: usize, _: &mut [u8]) {}
    fn acknowledge_interrupt(&self) -> u32 {
        0
    }
    fn shared_memory(&self, _: u8) -> Option<MemoryRegion> {
        None
    }
}

/// Reads the rings as a device would: takes the next available chain, concatenates what it
/// may read, fills what it may write with `reply`, and returns the chain on the used ring.
struct Device {
    size: u16,
    addresses: QueueAddresses,
    next_available: u16,
    used_index: u16,
}

fn read<T: Copy>(phys: u64) -> T {
    // SAFETY: on the host the fake platform's phys = virt, and the addresses come from the
    // queue's own live allocation or the test's live buffers.
    unsafe { (phys as *const T).read_volatile() }
}

impl Device {
    fn descriptor(&self, table: u64, i: u16) -> Descriptor {
        read(table + 16 * u64::from(i))
    }

    /// Processes one chain; returns (bytes read, bytes written).
    fn process(&mut self, reply: &[u8]) -> Option<(Vec<u8>, usize)> {
        let available_index: u16 = read(self.addresses.available + 2);
        if available_index == self.next_available {
            return None;
        }
        let head: u16 = read(self.addresses.available + 4 + 2 * u64::from(self.next_available % self.size));
        self.next_available = self.next_available.wrapping_add(1);
        let mut descriptor = self.descriptor(self.addresses.descriptors, head);
        let mut table = self.addresses.descriptors;
        if descriptor.flags & DESC_F_INDIRECT != 0 {
            table = descriptor.addr;
            descriptor = self.descriptor(table, 0);
        }
        let (mut input, mut written) = (Vec::new(), 0);
        loop {
            if descriptor.flags & DESC_F_WRITE != 0 {
                let n = (descriptor.len as usize).min(reply.len() - written);
                // SAFETY: the descriptor points at a live writable test buffer (phys = virt).
                unsafe { core::ptr::copy_nonoverlapping(reply[written..].as_ptr(), descriptor.addr as *mut u8, n) };
                written += n;
            } else {
                assert_eq!(written, 0, "readable descriptor after a writable one");
                // SAFETY: as above, a live readable buffer.
                input.extend_from_slice(unsafe { core::slice::from_raw_parts(descriptor.addr as *const u8, descriptor.len as usize) });
            }
            if descriptor.flags & DESC_F_NEXT == 0 {
                break;
            }
            descriptor = self.descriptor(table, descriptor.next);
        }
        let element = self.addresses.used + 4 + 8 * u64::from(self.used_index % self.size);
        // SAFETY: the used ring inside the queue's live allocation.
        unsafe {
            (element as *mut u32).write_volatile(u32::from(head));
            ((element + 4) as *mut u32).write_volatile(written as u32);
            self.used_index = self.used_index.wrapping_add(1);
            ((self.addresses.used + 2) as *mut u16).write_volatile(self.used_index);
        }
        Some((input, written))
    }
}

fn setup(indirect: bool) -> (SplitQueue, Device) {
    static PLATFORM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    PLATFORM.get_or_init(|| hal::set_platform(Box::leak(Box::new(libos_core::testing::FakePlatform::new()))));
    let transport = RecordingTransport::default();
    let queue = SplitQueue::new(&transport, 1, 1024, indirect).unwrap();
    let (size, addresses) = transport.queue.lock().unwrap().unwrap();
    assert_eq!(size, 8);
    assert_eq!(addresses.descriptors % PAGE, 0);
    assert_eq!(addresses.used % PAGE, 0, "legacy layout: used ring on a page boundary");
    (queue, Device { size, addresses, next_available: 0, used_index: 0 })
}

fn round_trips(indirect: bool) {
    let (mut queue, mut device) = setup(indirect);
    let header = *b"header";
    let payload = vec![7u8; 3 * PAGE as usize + 5]; // crosses page boundaries
    let mut out_header = [0u8; 4];
    let mut out_data = vec![0u8; 10];
    let reply: Vec<u8> = (0..14).collect();
    // Many more requests than the ring has entries: descriptors must come back to the free list.
    for round in 0..50 {
        let token = {
            let mut writable: [&mut [u8]; 2] = [&mut out_header, &mut out_data];
            // SAFETY: the buffers outlive the request (popped below, before they are touched).
            unsafe { queue.add(&[&header, &payload], &mut writable) }.unwrap()
        };
        assert!(queue.should_notify());
        assert!(queue.pop_used().is_none());
        let (input, written) = device.process(&reply).unwrap();
        assert_eq!(&input[..6], b"header");
        assert_eq!(input.len(), 6 + payload.len(), "round {round}");
        assert_eq!(written, 14);
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
fn several_requests_in_flight_complete_out_of_order_by_token() {
    let (mut queue, mut device) = setup(false);
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
    let seen = RefCell::new(Vec::new());
    while let Some((input, _)) = device.process(&[0x55]) {
        seen.borrow_mut().push(input[0]);
    }
    assert_eq!(*seen.borrow(), vec![0, 1, 2, 3]);
    let mut popped = Vec::new();
    while let Some((token, len)) = queue.pop_used() {
        assert_eq!(len, 1);
        popped.push(token);
    }
    assert_eq!(popped, tokens);
    assert_eq!(queue.free_descriptors(), 8);
}

#[test]
fn requests_that_can_never_fit_are_rejected() {
    let (mut queue, _device) = setup(false);
    let parts: Vec<[u8; 1]> = vec![[0u8; 1]; 9];
    let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
    // SAFETY: rejected, so nothing is published.
    assert_eq!(unsafe { queue.add(&refs, &mut []) }, Err(Errno::E2BIG));
    // SAFETY: as above.
    assert_eq!(unsafe { queue.add(&[], &mut []) }, Err(Errno::EINVAL));
}
