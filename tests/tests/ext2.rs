//! ext2 on virtio-blk in a real guest on every architecture, checked with the host's
//! e2fsprogs: the VFS conformance suite on a volume; an unmodified C program reading what the
//! host's `mke2fs -d` put there and writing a tree (files across indirect levels, symlinks,
//! hard links, renames, truncations, deletions, a big directory) that `e2fsck -fn` finds
//! clean and `debugfs` reads back byte for byte; fsync then SIGKILL of QEMU; a full volume; a
//! read-only disk; corrupt volumes (never a panic).

use libos_tests::{Boot, TempDir, arches};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// The byte at offset `i` of guest-written file number `n` (`file_byte` in
/// apps/c-shimtest/c/disk.c).
fn file_byte(n: u64, i: u64) -> u8 {
    ((i.wrapping_mul(2_654_435_761) & 0xffff_ffff) >> 11).wrapping_add(n * 37).wrapping_add(i % 13) as u8
}

fn file_bytes(n: u64, len: u64) -> Vec<u8> {
    (0..len).map(|i| file_byte(n, i)).collect()
}

/// A fresh ext2 image of `bytes` with `block_size`-byte blocks holding `host/hello.txt` and
/// `host/big.bin` (file 9, 3 MiB + 17).
fn volume(dir: &TempDir, bytes: u64, block_size: u32) -> std::path::PathBuf {
    let tree = dir.path("tree");
    std::fs::create_dir_all(tree.join("host")).unwrap();
    std::fs::write(tree.join("host/hello.txt"), "hello from the host\n").unwrap();
    if bytes >= 16 * MIB {
        std::fs::write(tree.join("host/big.bin"), file_bytes(9, 3 * MIB + 17)).unwrap();
    }
    let image = dir.path("vda.img");
    xtask::disk::create_ext2(&image, bytes, Some(&tree), Some(block_size)).unwrap_or_else(|e| panic!("mke2fs: {e}"));
    image
}

fn e2fsck_clean(image: &Path, what: &str) {
    if let Err(report) = xtask::disk::check_ext2(image).unwrap() {
        panic!("{what}: {report}");
    }
}

/// Asserts that the superblock of `image` says "cleanly unmounted" (`s_state` bit 0): a guest
/// that exits normally shuts its file systems down as Linux unmounts them at power-off, so
/// the next mount (here or on Linux) finds no reason to check the volume.
fn marked_clean(image: &Path, what: &str) {
    let bytes = std::fs::read(image).unwrap();
    let state = u16::from_le_bytes([bytes[1024 + 58], bytes[1024 + 59]]);
    assert_eq!(state & 1, 1, "{what}: the superblock says the volume was not cleanly unmounted (s_state {state:#x})");
}

/// `debugfs -R REQUEST image`'s standard output.
fn debugfs(image: &Path, request: &str) -> Vec<u8> {
    let output = Command::new("/usr/sbin/debugfs").arg("-R").arg(request).arg(image).output().expect("running debugfs");
    assert!(output.status.success(), "debugfs -R {request:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn assert_file(image: &Path, path: &str, expected: &[u8], what: &str) {
    let got = debugfs(image, &format!("cat {path}"));
    assert!(got.len() == expected.len() && got == expected, "{what}: debugfs reads {} bytes of {path} that differ from the {} the guest wrote", got.len(), expected.len());
}

#[test]
fn the_conformance_suite_passes_on_ext2_and_leaves_a_clean_volume() {
    for arch in arches() {
        for block_size in [1024, 4096] {
            let dir = TempDir::new(&format!("ext2-conformance-{block_size}"), arch);
            let image = volume(&dir, 32 * MIB, block_size);
            Boot::app("vfs-conformance")
                .disk(&image, false)
                .memory("128M")
                .args(&["--fs", "ext2:vda"])
                .timeout(Duration::from_secs(300))
                .on(arch)
                .exits_with(0)
                .prints("passed, 0 failed")
                .does_not_print("FAILED");
            e2fsck_clean(&image, &format!("{arch}, {block_size}-byte blocks, after the conformance suite"));
        }
    }
}

#[test]
fn what_a_c_program_writes_is_clean_for_e2fsck_and_identical_for_debugfs() {
    for arch in arches() {
        let dir = TempDir::new("ext2-write", arch);
        let image = volume(&dir, 64 * MIB, 1024);
        Boot::app("c-shimtest")
            .disk(&image, false)
            .memory("128M")
            .options("mount=ext2:vda:/data")
            .args(&["ext2"])
            .timeout(Duration::from_secs(300))
            .on(arch)
            .exits_with(0)
            .prints("ok ext2\n");
        let what = format!("{arch}: after the guest's writes");
        e2fsck_clean(&image, &what);
        marked_clean(&image, &what);
        assert_file(&image, "/guest/small", &file_bytes(1, 6), &what);
        assert_file(&image, "/guest/f1k", &file_bytes(2, 1000), &what);
        assert_file(&image, "/guest/hard", &file_bytes(2, 1000), &what);
        assert_file(&image, "/guest/renamed", &file_bytes(3, 300 * 1024), &what);
        assert_file(&image, "/guest/f5m", &file_bytes(4, 2 * MIB + 123), &what);
        assert_file(&image, "/guest/moved/d2/d3/deep", &file_bytes(6, 4096), &what);
        assert_file(&image, "/guest/many/entry-with-a-longish-name-299", &file_bytes(7, 299), &what);
        let listing = String::from_utf8_lossy(&debugfs(&image, "ls -p /guest")).into_owned();
        for absent in ["/gone/", "/f300k/", "/d1/", "/empty/"] {
            assert!(!listing.contains(absent), "{what}: {absent} is still listed:\n{listing}");
        }
        let short = String::from_utf8_lossy(&debugfs(&image, "stat /guest/short-link")).into_owned();
        assert!(short.contains("Fast link dest: \"small\""), "{what}: the short symlink:\n{short}");
        let long = String::from_utf8_lossy(&debugfs(&image, "cat /guest/long-link")).into_owned();
        assert_eq!(long, "x".repeat(200), "{what}: a long symlink's target lives in its data block");
        // `ls -p` lines: /INODE/MODE/UID/GID/NAME/SIZE/; a removed entry that begins a block
        // stays as an entry with inode 0, which ext2 readers skip.
        let many = String::from_utf8_lossy(&debugfs(&image, "ls -p /guest/many")).into_owned();
        let live = many.lines().filter(|l| l.contains("entry-with-a-longish-name-") && !l.starts_with("/0/")).count();
        assert_eq!(live, 150, "{what}: half of the 300 entries remain:\n{many}");
    }
}

#[test]
fn fsynced_data_survives_a_sigkill_of_qemu() {
    for arch in arches() {
        let dir = TempDir::new("ext2-sync", arch);
        let image = volume(&dir, 16 * MIB, 1024);
        let trace = dir.path("blk.trace");
        let trace_args = libos_tests::blk_trace_args(&trace);
        let started = Boot::app("c-shimtest")
            .disk(&image, false)
            .memory("128M")
            .options("mount=ext2:vda:/data")
            .args(&["ext2sync"])
            .qemu_args(&trace_args.iter().map(String::as_str).collect::<Vec<_>>())
            .timeout(Duration::from_secs(300))
            .start(arch);
        started.wait_for("synced\n", Duration::from_secs(200));
        // The fsync returned: the device must have been told to FLUSH its volatile cache
        // (QEMU's `cache=writeback`: the host page cache) while it ran, else the data below
        // is on the host only because QEMU happened to write it there.
        let log = std::fs::read_to_string(&trace).unwrap_or_default();
        let (rw, flushes) = libos_tests::blk_requests_between(&log, "fsync of durable starts", "fsync of durable returned")
            .unwrap_or_else(|| panic!("{arch}: the trace {} does not show the fsync markers", trace.display()));
        assert!(flushes >= 1, "{arch}: the fsync sent {rw} reads/writes and no FLUSH reached QEMU's block layer");
        // Dropping a started boot kills QEMU with SIGKILL: no exit, no sync.
        drop(started);
        assert_file(&image, "/durable", &file_bytes(8, 256 * 1024 + 5), &format!("{arch}: after SIGKILL"));
    }
}

#[test]
fn a_full_volume_gives_enospc_and_stays_consistent() {
    for arch in arches() {
        let dir = TempDir::new("ext2-full", arch);
        let image = volume(&dir, 2 * MIB, 1024);
        let booted = Boot::app("c-shimtest").disk(&image, false).options("mount=ext2:vda:/data").args(&["ext2full"]).on(arch);
        booted.exits_with(0).prints("ok ext2full ");
        e2fsck_clean(&image, &format!("{arch}: after filling the volume"));
        assert_file(&image, "/after", &file_bytes(10, 4096), &format!("{arch}: the file written after a delete"));
    }
}

#[test]
fn a_read_only_disk_mounts_read_only() {
    for arch in arches() {
        let dir = TempDir::new("ext2-ro", arch);
        let image = volume(&dir, 8 * MIB, 1024);
        let before = std::fs::read(&image).unwrap();
        Boot::app("c-shimtest").disk(&image, true).options("mount=ext2:vda:/data").args(&["ext2ro"]).on(arch).exits_with(0).prints("ok ext2ro\n");
        assert!(std::fs::read(&image).unwrap() == before, "{arch}: a read-only disk was changed");
    }
}

/// A deterministic generator for the corruption test.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn corrupt_volumes_give_errors_never_a_panic() {
    // 1 KiB blocks: superblock at 1024, group descriptors at 2048, then bitmaps, the inode
    // table and the first directories within the first ~300 KiB.
    for arch in arches() {
        let dir = TempDir::new("ext2-corrupt", arch);
        let clean = std::fs::read(volume(&dir, 16 * MIB, 1024)).unwrap();
        let mut rng = Lcg(0x5eed + arch.name().len() as u64);
        let regions: [(&str, std::ops::Range<usize>); 4] =
            [("superblock", 1024..2048), ("group descriptors", 2048..3072), ("inode table", 3072..256 * 1024), ("directories and data", 256 * 1024..1024 * 1024)];
        for (region, range) in regions {
            for round in 0..2 {
                let mut bytes = clean.clone();
                for _ in 0..(8 << round) {
                    let at = range.start + rng.next() as usize % range.len();
                    bytes[at] = rng.next() as u8;
                }
                let image = dir.path(&format!("corrupt-{region}-{round}.img"));
                std::fs::write(&image, &bytes).unwrap();
                let booted = Boot::app("c-shimtest").disk(&image, false).options("mount=ext2:vda:/data").args(&["ext2walk"]).on(arch);
                let console = &booted.outcome.console;
                let what = format!("{arch}: {region}, round {round}");
                assert!(!console.contains("panicked") && !console.contains("kernel panic"), "{what}: a panic:\n{console}");
                let walked = console.contains("ok ext2walk ");
                let refused = console.contains("cannot mount ext2 on vda");
                assert!(walked || refused, "{what}: neither a walk nor a refused mount:\n{console}");
            }
        }
    }
}

#[test]
fn a_disk_can_be_the_root_file_system() {
    for arch in arches() {
        let dir = TempDir::new("ext2-root", arch);
        let tree = dir.path("tree");
        std::fs::create_dir_all(tree.join("dev")).unwrap();
        std::fs::create_dir_all(tree.join("data/host")).unwrap();
        std::fs::write(tree.join("data/host/hello.txt"), "hello from the host\n").unwrap();
        let image = dir.path("root.img");
        xtask::disk::create_ext2(&image, 8 * MIB, Some(&tree), Some(1024)).unwrap();
        // The volume is `/`; /data is a directory of it, so the read-only family's reads work
        // and its writes succeed or fail as the family expects only on a read-only disk.
        Boot::app("c-shimtest").disk(&image, true).options("root=ext2:vda").args(&["ext2ro"]).on(arch).exits_with(0).prints("ok ext2ro\n");
    }
}
