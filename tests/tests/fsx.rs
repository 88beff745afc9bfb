//! fsx, the file-system exerciser from outside this repository (`xtask::fsx`: its Rust rewrite
//! from the Rust registry, an unmodified static Linux program run by elf-runner), on each root
//! file system and both architectures: a seeded random sequence of reads, writes, `mmap` reads
//! and writes, truncations, syncs, `fallocate`, hole punching (not on ext2), `sendfile` and
//! `copy_file_range` on one file, every read checked against what fsx expects. The ext2 volume
//! must be clean for `e2fsck -fn` afterwards (`xtask::outside::boot` checks it).
//!
//! The first run builds fsx (about 2 minutes for both arches, cached in `/var/cache/libos`).

use libos_tests::arches;
use xtask::outside::Root;

/// Operations per run: hundreds of each kind (3 to 9 s of TCG per run here).
const OPS: u64 = 5000;

fn passes_on(root: Root, seed: u64) {
    for arch in arches() {
        xtask::fsx::run(arch, root, OPS, seed).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn fsx_passes_on_a_ramfs_root() {
    passes_on(Root::Ramfs, 11);
}

#[test]
fn fsx_passes_on_a_virtio_fs_root() {
    passes_on(Root::Virtiofs, 12);
}

#[test]
fn fsx_passes_on_an_ext2_root() {
    passes_on(Root::Ext2, 13);
}
