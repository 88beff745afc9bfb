//! Disks in a real guest on every architecture: virtio-blk devices as `/dev/vda`, `/dev/vdb`
//! seen by an unmodified C program (`c-shimtest disk`): reads of every alignment and size up
//! to 4 MiB checked against what the host wrote into the image, writes checked back on the
//! host byte for byte, fsync, the end of the disk, a read-only disk; on both virtio
//! transports of each arch.

use libos_tests::{Boot, TempDir, arches};
use xtask::arch::Arch;
use xtask::qemu::{Machine, VirtioTransport};

const MIB: u64 = 1 << 20;
const DISK_BYTES: u64 = 16 * MIB;

/// What the host writes at byte `i` (`pattern_a` in apps/c-shimtest/c/disk.c).
fn pattern_a(i: u64) -> u8 {
    ((i >> 9).wrapping_mul(7).wrapping_add(i)) as u8
}

/// What the guest writes at byte `i` (`pattern_b` in disk.c).
fn pattern_b(i: u64) -> u8 {
    (i.wrapping_mul(131).wrapping_add(17)) as u8
}

/// The guest's writes: (offset, length), as `writes` in disk.c.
const WRITES: [(u64, u64); 8] = [
    (4 * MIB, 1),
    (4 * MIB + 4097, 511),
    (4 * MIB + 8703, 513),
    (4 * MIB + 16384, 4096),
    (4 * MIB + 65539, 65536),
    (5 * MIB, MIB),
    (6 * MIB + 512, MIB + 1000),
    (8 * MIB, 4 * MIB),
];

fn expected_after_writes(i: u64) -> u8 {
    if WRITES.iter().any(|&(offset, len)| (offset..offset + len).contains(&i)) { pattern_b(i) } else { pattern_a(i) }
}

#[test]
fn a_c_program_reads_and_writes_raw_disks_byte_exactly() {
    for arch in arches() {
        for transport in [VirtioTransport::Mmio, VirtioTransport::Pci] {
            let dir = TempDir::new("disk-raw", arch);
            let image = dir.path("vda.img");
            let pattern: Vec<u8> = (0..DISK_BYTES).map(pattern_a).collect();
            std::fs::write(&image, &pattern).unwrap();
            let read_only = dir.path("vdb.img");
            std::fs::write(&read_only, vec![0x5a; MIB as usize]).unwrap();
            // x86_64's PCI machine is q35; aarch64's `virt` has both.
            let machine = match (arch, transport) {
                (Arch::X86_64, VirtioTransport::Pci) => Machine::Q35,
                _ => Machine::default_for(arch),
            };
            Boot::app("c-shimtest")
                .machine(machine)
                .disk(&image, false)
                .disk(&read_only, true)
                .transport(transport)
                .memory("128M")
                .args(&["disk"])
                .on(arch)
                .exits_with(0)
                .prints("ok disk\n");
            let after = std::fs::read(&image).unwrap();
            assert_eq!(after.len() as u64, DISK_BYTES, "{arch} {transport:?}: the image keeps its size");
            if let Some(i) = (0..DISK_BYTES).find(|&i| after[i as usize] != expected_after_writes(i)) {
                panic!("{arch} {transport:?}: byte {i} of the image is {}, expected {}", after[i as usize], expected_after_writes(i));
            }
            assert!(std::fs::read(&read_only).unwrap().iter().all(|&b| b == 0x5a), "{arch}: the read-only disk is untouched");
        }
    }
}
