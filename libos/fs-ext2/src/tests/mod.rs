//! Host tests. Volumes are made by the host's e2fsprogs (`mke2fs`), loaded into a
//! [`MemDisk`], used through the VFS, and checked afterwards with `e2fsck -fn` and `debugfs`.
//! e2fsprogs is required: a missing tool fails the test with a message saying so.
//!
//! - `conformance`: the VFS conformance suite and the model test on ext2.
//! - `workload`: files across all indirect levels, directories, links, renames, truncation,
//!   at 1, 2 and 4 KiB blocks; e2fsck clean, debugfs reads the same bytes; hashed directories.
//! - `limits`: ENOSPC, read-only, refused features, crash and fsync.
//! - `fuzz`: random byte flips in a volume's metadata never panic.
//! - `node_cache`: cached lookups follow every name change; shared nodes' readers.
//! - `xattrs`: extended attributes debugfs reads back, and attributes the host put in inodes.

mod conformance;
mod fuzz;
mod limits;
mod node_cache;
mod perf;
mod workload;
mod xattrs;

use crate::{Ext2Fs, MountOptions};
use libos_block::testing::MemDisk;
use libos_vfs::{OpenFlags, TickClock, Vfs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A time in 2023, so that e2fsck sees plausible times; the tick clock adds a nanosecond per
/// reading.
const START: u64 = 1_700_000_000_000_000_000;

/// An e2fsprogs tool; panics with a clear message if it is not installed.
fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} not found: these tests need e2fsprogs (apt-get install e2fsprogs; ./x setup installs it)");
}

/// A fresh temporary file path (removed by [`Temp`]'s drop).
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Temp(std::env::temp_dir().join(format!("libos-ext2-{}-{tag}-{n}", std::process::id())))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0).or_else(|_| std::fs::remove_dir_all(&self.0));
    }
}

fn run(program: &Path, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// `mke2fs -q -t ext2 -b BLOCK_SIZE [EXTRA...] -F FILE SIZE` and the image it made (`EXTRA`
/// starting with `-t` names another type).
fn mkfs(size: &str, block_size: u32, extra: &[&str]) -> Vec<u8> {
    let file = Temp::new("mkfs");
    let bs = block_size.to_string();
    let mut args = vec!["-q", "-b", &bs];
    if extra.first() != Some(&"-t") {
        args.extend_from_slice(&["-t", "ext2"]);
    }
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-F", file.path(), size]);
    let out = run(&tool("mke2fs"), &args);
    assert!(out.status.success(), "mke2fs {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(&file.0).expect("reading the image")
}

/// `e2fsck -fn` of `image`: (exit code, what it printed).
fn fsck(image: &[u8]) -> (i32, String) {
    let file = Temp::new("fsck");
    std::fs::write(&file.0, image).expect("writing the image");
    let out = run(&tool("e2fsck"), &["-fn", file.path()]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Asserts that `e2fsck -fn` finds nothing wrong with `image`.
fn assert_clean(image: &[u8], what: &str) {
    let (code, text) = fsck(image);
    assert_eq!(code, 0, "e2fsck -fn after {what} reports problems:\n{text}");
}

/// Runs a `debugfs` request on `image`; returns its standard output.
fn debugfs(image: &[u8], request: &str) -> Vec<u8> {
    let file = Temp::new("debugfs");
    std::fs::write(&file.0, image).expect("writing the image");
    let out = run(&tool("debugfs"), &["-R", request, file.path()]);
    assert!(out.status.success(), "debugfs -R {request:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Changes `image` with `debugfs -w -R REQUEST`.
fn debugfs_write(image: &[u8], request: &str) -> Vec<u8> {
    let file = Temp::new("debugfs-w");
    std::fs::write(&file.0, image).expect("writing the image");
    let out = run(&tool("debugfs"), &["-w", "-R", request, file.path()]);
    assert!(out.status.success(), "debugfs -w -R {request:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(&file.0).expect("reading the image back")
}

fn options() -> MountOptions {
    MountOptions { read_only: false, cache_bytes: 256 * 1024, clock: Arc::new(TickClock::new(START)), dir_index_bytes: 1 << 20 }
}

/// Mounts `disk` read-write with a deterministic clock.
fn mount(disk: &Arc<MemDisk>) -> Arc<Ext2Fs> {
    Ext2Fs::mount(disk.clone(), options()).expect("mounting the volume")
}

fn new_file() -> OpenFlags {
    OpenFlags::CREAT | OpenFlags::RDWR | OpenFlags::TRUNC
}

fn write_file(vfs: &Vfs, path: &str, data: &[u8]) {
    let file = vfs.open(path, new_file(), 0o644).unwrap_or_else(|e| panic!("creating {path}: {e}"));
    let mut done = 0;
    while done < data.len() {
        done += file.write(&data[done..]).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
}

fn read_file(vfs: &Vfs, path: &str) -> Vec<u8> {
    let file = vfs.open(path, OpenFlags::RDONLY, 0).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        if n == 0 {
            return data;
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// A fresh volume made by `mke2fs` (`size`, `block_size`, `extra` options), mounted: the disk,
/// the file system and a namespace on it.
fn volume(size: &str, block_size: u32, extra: &[&str]) -> (Arc<MemDisk>, Arc<Ext2Fs>, Vfs) {
    let disk = Arc::new(MemDisk::from_image(mkfs(size, block_size, extra)));
    let fs = mount(&disk);
    let vfs = Vfs::new(fs.clone());
    (disk, fs, vfs)
}

/// A 64 MiB volume (4 KiB blocks) holding `/big`, 4 MiB of `pattern(_, seed)`, mounted again
/// with a 16 MiB cache (so nothing of the file is cached yet): the disk, the file's bytes, the
/// volume and a namespace on it, for read-ahead tests.
fn big_file_volume(seed: u32) -> (Arc<MemDisk>, Vec<u8>, Arc<Ext2Fs>, Vfs) {
    let disk = Arc::new(MemDisk::from_image(mkfs("64M", 4096, &[])));
    let data = pattern(4 << 20, seed);
    {
        let vfs = Vfs::new(mount(&disk));
        write_file(&vfs, "/big", &data);
    }
    let mut options = options();
    options.cache_bytes = 16 << 20;
    let fs = Ext2Fs::mount(disk.clone(), options).unwrap();
    let vfs = Vfs::new(fs.clone());
    (disk, data, fs, vfs)
}

/// Deterministic bytes, different per `seed`.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}
