//! The file workload of `bench/c/fs_tmpfs.c` on the host (ignored by default): create, stat
//! and unlink of many files in one directory, sequential writes and reads in 4 KiB calls, and
//! cached random 4 KiB reads, each timed. For profiling the driver without QEMU:
//! `EXT2_PERF_FILES=10000 cargo test -p libos-fs-ext2 --release perf -- --ignored --nocapture`
//! (or under `valgrind --tool=callgrind`).

use super::*;
use libos_vfs::Vfs;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
#[ignore = "a benchmark, not a test"]
fn perf() {
    let files = env("EXT2_PERF_FILES", 2000);
    let mib = env("EXT2_PERF_MIB", 16);
    let disk = Arc::new(MemDisk::from_image(mkfs("256M", 4096, &[])));
    let mut options = options();
    options.cache_bytes = 128 << 20;
    let fs = Ext2Fs::mount(disk.clone(), options).unwrap();
    let vfs = Vfs::new(fs.clone());
    vfs.mkdir("/bench", 0o755).unwrap();
    let names: Vec<String> = (0..files).map(|i| format!("/bench/file-{i}")).collect();
    let report = |what: &str, ops: usize, start: Instant| {
        println!("{what:14} {:10.0} ns/op", start.elapsed().as_nanos() as f64 / ops as f64);
    };
    let start = Instant::now();
    for name in &names {
        drop(vfs.open(name, OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL, 0o666).unwrap());
    }
    report("create", files, start);
    let start = Instant::now();
    for name in &names {
        vfs.metadata(name).unwrap();
    }
    report("stat", files, start);
    let start = Instant::now();
    for name in &names {
        vfs.unlink(name).unwrap();
    }
    report("unlink", files, start);
    let size = mib << 20;
    let buf = vec![0x5au8; 4096];
    let file = vfs.open("/bench/seq", OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL, 0o666).unwrap();
    let start = Instant::now();
    for _ in 0..size / 4096 {
        assert_eq!(file.write(&buf).unwrap(), 4096);
    }
    report("seq-write-4k", size / 4096, start);
    let reader = vfs.open("/bench/seq", OpenFlags::RDONLY, 0).unwrap();
    let mut page = vec![0u8; 4096];
    let start = Instant::now();
    for _ in 0..size / 4096 {
        assert_eq!(reader.read(&mut page).unwrap(), 4096);
    }
    report("seq-read-4k", size / 4096, start);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let pages = (size / 4096) as u64;
    let offsets: Vec<u64> = (0..10_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % pages) * 4096
        })
        .collect();
    let start = Instant::now();
    for &offset in &offsets {
        assert_eq!(reader.read_at(offset, &mut page).unwrap(), 4096);
    }
    report("rand-read-4k", offsets.len(), start);
    drop((file, reader));
    vfs.unlink("/bench/seq").unwrap();
    drop(vfs);
    drop(fs);
    assert_clean(&disk.image(), "the perf workload");
}
