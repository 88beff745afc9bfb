//! `vfs-share`: the guest side of the virtio-fs integration tests (`tests/tests/virtiofs.rs`).
//!
//! Usage: `vfs-share COMMAND...`, with the share mounted by the kernel command line (e.g.
//! `mount=virtiofs:share:/share`). Commands run in order; each prints one result line:
//!
//! - `write PATH SIZE`: writes SIZE bytes of [`pattern`] (in 1 MiB writes) -> `wrote PATH SIZE`;
//! - `check PATH SIZE`: reads PATH and compares it with the pattern -> `checked PATH SIZE`;
//! - `durable PATH SIZE`: writes, `fsync`s, prints `synced PATH`, then waits forever (the test
//!   kills QEMU and looks at the host file);
//! - `churn DIR N`: creates, writes, closes and unlinks N files in DIR -> `churned N`;
//! - `until-error PATH`: reads PATH in a loop after printing `reading`, until a read fails ->
//!   `read failed: ERRNO` (the test kills virtiofsd meanwhile);
//! - `parallel PATH N`: N threads each write and read back their own file at once -> `parallel N`;
//! - `wait-file PATH`: prints `waiting for PATH` and polls until PATH exists (the host's way to
//!   let the guest go on after it looked at something);
//! - `sum PATH`: reads PATH to its end in 1 MiB reads and prints `sum PATH SIZE HASH`, [`word_hash`]
//!   of its bytes (cheaper than `check` for files of a GiB under TCG; the host computes the same);
//! - `read-any PATH`: reads PATH to its end without checking the bytes -> `read-any PATH N`;
//! - `sleep-ms N`: sleeps N milliseconds (lets cached attributes expire);
//! - `stats`: the device's counters and its shared-memory region 0 (the DAX window), if any;
//! - `mount TAG PATH`: mounts the share TAG at PATH itself (so the next command can read its
//!   counters; the kernel command line then mounts nothing of it) -> `mounted TAG at PATH, DAX
//!   window: SLOTS` (or `none`);
//! - `window-check PATH SIZE ROUNDS`: `check` ROUNDS times on the share mounted by `mount`, and
//!   after each the FUSE requests and device notifications it cost -> `round R: SETUPMAPPING a
//!   READ b GETATTR c requests d window-bytes e notifications f mapped g`.
//!
//! Exits 1 on the first failure (with a `FAILED:` line), 2 for bad arguments.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use libos::fs::{self, File};
use libos::println;
use libos::virtiofs::{MountOptions, VirtioFs, VirtioFsDevice};
use libos::virtiofs::op;

libos::main!(main);

/// The byte at `offset` of every test file (the host side computes the same): not periodic at
/// powers of two, so a misplaced block shows.
pub fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (offset % 251) as u8
}

const CHUNK: usize = 1 << 20;

fn write_pattern(path: &str, size: u64) -> Result<File, String> {
    let file = File::create(path).map_err(|e| format!("create {path}: {e}"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < size {
        let n = (size - offset).min(CHUNK as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(offset + i as u64);
        }
        let written = file.write_at(&buf[..n], offset).map_err(|e| format!("write {path} at {offset}: {e}"))?;
        if written != n {
            return Err(format!("write {path} at {offset}: {written} of {n} bytes"));
        }
        offset += n as u64;
    }
    Ok(file)
}

fn check_pattern(path: &str, size: u64) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    let length = file.metadata().map_err(|e| format!("stat {path}: {e}"))?.size;
    if length != size {
        return Err(format!("{path}: {length} bytes, expected {size}"));
    }
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset).map_err(|e| format!("read {path} at {offset}: {e}"))?;
        if n == 0 {
            break;
        }
        if let Some(i) = (0..n).find(|&i| buf[i] != pattern(offset + i as u64)) {
            return Err(format!("{path}: byte {} differs", offset + i as u64));
        }
        offset += n as u64;
    }
    if offset != size {
        return Err(format!("{path}: read {offset} bytes, expected {size}"));
    }
    Ok(())
}

/// FNV-1a over the file's little-endian 64-bit words (the last one zero-padded), then its
/// length: position-sensitive, and eight times fewer steps than a byte-wise check.
pub fn word_hash(hash: u64, words: &[u8]) -> u64 {
    words.chunks(8).fold(hash, |h, word| {
        let mut padded = [0u8; 8];
        padded[..word.len()].copy_from_slice(word);
        (h ^ u64::from_le_bytes(padded)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn sum(path: &str) -> Result<(u64, u64), String> {
    let file = File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    let mut buf = vec![0u8; CHUNK];
    let (mut hash, mut total) = (0xcbf2_9ce4_8422_2325u64, 0u64);
    loop {
        // Fill the whole buffer (or reach the end), so words never straddle two reads.
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read_at(&mut buf[filled..], total + filled as u64).map_err(|e| format!("read {path}: {e}"))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        hash = word_hash(hash, &buf[..filled]);
        total += filled as u64;
        if filled < buf.len() {
            return Ok((total, hash ^ total));
        }
    }
}

fn churn(dir: &str, count: usize) -> Result<(), String> {
    for i in 0..count {
        let path = format!("{dir}/churn-{i}");
        let file = File::create(&path).map_err(|e| format!("create {path}: {e}"))?;
        file.write_at(b"x", 0).map_err(|e| format!("write {path}: {e}"))?;
        drop(file);
        fs::remove_file(&path).map_err(|e| format!("unlink {path}: {e}"))?;
    }
    // Flush queued FORGETs (the mount batches them).
    fs::vfs().and_then(|v| v.sync()).map_err(|e| format!("sync: {e}"))?;
    Ok(())
}

fn parallel(dir: &str, threads: usize) -> Result<(), String> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let path = format!("{dir}/parallel-{t}");
            libos::thread::spawn(move || -> Result<(), String> {
                for _ in 0..4 {
                    write_pattern(&path, 300_000 + t as u64)?;
                    check_pattern(&path, 300_000 + t as u64)?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join()?;
    }
    Ok(())
}

/// A share `mount` mounted, with its device.
type Mounted = (Arc<VirtioFs>, Arc<VirtioFsDevice>);

fn mount(tag: &str, path: &str) -> Result<Mounted, String> {
    let device = libos::virtiofs::device(tag)?;
    let fs = VirtioFs::mount(device.clone(), MountOptions::default()).map_err(|e| format!("mount {tag}: {e}"))?;
    fs::create_dir(path).map_err(|e| format!("mkdir {path}: {e}"))?;
    fs::mount(path, fs.clone()).map_err(|e| format!("mount at {path}: {e}"))?;
    match fs.dax_usage() {
        Some((slots, _)) => println!("mounted {tag} at {path}, DAX window: {slots}"),
        None => println!("mounted {tag} at {path}, DAX window: none"),
    }
    Ok((fs, device))
}

fn window_check(mounted: Option<&Mounted>, path: &str, size: u64, rounds: u64) -> Result<(), String> {
    let (fs, device) = mounted.ok_or("window-check needs a share mounted by `mount`")?;
    for round in 1..=rounds {
        let (fuse0, device0) = (fs.stats(), device.stats());
        check_pattern(path, size)?;
        let fuse = fs.stats().since(&fuse0);
        let notifications = device.stats().notifications - device0.notifications;
        let mapped = fs.dax_usage().map_or(0, |(_, mapped)| mapped);
        println!(
            "round {round}: SETUPMAPPING {} READ {} GETATTR {} requests {} window-bytes {} notifications {notifications} mapped {mapped}",
            fuse.count(op::SETUPMAPPING),
            fuse.count(op::READ),
            fuse.count(op::GETATTR),
            fuse.total(),
            fuse.bytes_read_from_window,
        );
    }
    Ok(())
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn run(args: &[String]) -> Result<(), String> {
    let mut rest = args;
    let mut mounted: Option<Mounted> = None;
    while !rest.is_empty() {
        match rest {
            [cmd, path, size, tail @ ..] if cmd == "write" => {
                write_pattern(path, number(size)?)?;
                println!("wrote {path} {size}");
                rest = tail;
            }
            [cmd, path, size, tail @ ..] if cmd == "check" => {
                check_pattern(path, number(size)?)?;
                println!("checked {path} {size}");
                rest = tail;
            }
            [cmd, path, size, ..] if cmd == "durable" => {
                let file = write_pattern(path, number(size)?)?;
                file.sync_all().map_err(|e| format!("fsync {path}: {e}"))?;
                println!("synced {path}");
                loop {
                    libos::thread::sleep(core::time::Duration::from_secs(1));
                }
            }
            [cmd, dir, count, tail @ ..] if cmd == "churn" => {
                let count = number(count)? as usize;
                churn(dir, count)?;
                println!("churned {count}");
                rest = tail;
            }
            [cmd, path, ..] if cmd == "until-error" => {
                println!("reading");
                let mut buf = vec![0u8; 4096];
                loop {
                    let result = File::open(path).and_then(|f| f.read_at(&mut buf, 0));
                    if let Err(e) = result {
                        println!("read failed: {}", e.name());
                        return Ok(());
                    }
                    libos::thread::sleep(core::time::Duration::from_millis(20));
                }
            }
            [cmd, dir, count, tail @ ..] if cmd == "parallel" => {
                let count = number(count)? as usize;
                parallel(dir, count)?;
                println!("parallel {count}");
                rest = tail;
            }
            [cmd, path, tail @ ..] if cmd == "wait-file" => {
                println!("waiting for {path}");
                while !fs::exists(path) {
                    libos::thread::sleep(core::time::Duration::from_millis(50));
                }
                rest = tail;
            }
            [cmd, path, tail @ ..] if cmd == "sum" => {
                let (size, hash) = sum(path)?;
                println!("sum {path} {size} {hash:016x}");
                rest = tail;
            }
            [cmd, path, tail @ ..] if cmd == "read-any" => {
                // The hash is what `sum` prints; here only the bytes read count.
                let (total, _) = sum(path)?;
                println!("read-any {path} {total}");
                rest = tail;
            }
            [cmd, ms, tail @ ..] if cmd == "sleep-ms" => {
                libos::thread::sleep(core::time::Duration::from_millis(number(ms)?));
                rest = tail;
            }
            [cmd, tag, path, tail @ ..] if cmd == "mount" => {
                mounted = Some(mount(tag, path)?);
                rest = tail;
            }
            [cmd, path, size, rounds, tail @ ..] if cmd == "window-check" => {
                window_check(mounted.as_ref(), path, number(size)?, number(rounds)?)?;
                println!("window-checked {path} {size}");
                rest = tail;
            }
            [cmd, tail @ ..] if cmd == "stats" => {
                for device in libos::virtiofs::devices() {
                    println!("stats {}: {:?}", device.tag(), device.stats());
                    // The DAX window (shared-memory region 0), if the host offers one.
                    println!("shared memory {}: {:?}", device.tag(), device.shared_memory(0));
                }
                rest = tail;
            }
            _ => return Err(format!("bad arguments: {rest:?}")),
        }
    }
    Ok(())
}

fn main() -> i32 {
    let args: Vec<String> = libos::env::args().skip(1).map(String::from).collect();
    if args.is_empty() {
        println!("usage: vfs-share COMMAND... (see the crate docs)");
        return 2;
    }
    match run(&args) {
        Ok(()) => 0,
        Err(why) if why.starts_with("bad arguments") || why.starts_with("not a number") => {
            println!("vfs-share: {why}");
            2
        }
        Err(why) => {
            println!("FAILED: {why}");
            1
        }
    }
}
