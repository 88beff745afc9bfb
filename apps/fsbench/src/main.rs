//! `fsbench`: the workloads of `./x bench fs`, on the root ramfs through `libos::fs`.
//!
//! Each workload prints `[fsbench] NAME ops=N bytes=B ticks=T`, where ticks are platform
//! counter ticks around the whole workload (under QEMU `-icount shift=0` on x86_64: guest
//! instructions). Setup that is not part of the operation (formatting names, filling buffers)
//! happens outside the measured span.
//!
//! Usage: `fsbench [--file-mib N] [--files N]` (defaults 256 MiB and 10 000 files).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use libos::fs::{self, File, Read, Write};
use libos::{Errno, hal, println};

libos::main!(main);

fn ticks() -> u64 {
    hal::platform().counter()
}

fn report(name: &str, ops: u64, bytes: u64, start: u64) {
    let spent = ticks().wrapping_sub(start);
    println!("[fsbench] {name} ops={ops} bytes={bytes} ticks={spent}");
}

fn main() -> Result<(), Errno> {
    let args: Vec<&str> = libos::env::args().skip(1).collect();
    let mut file_mib = 256u64;
    let mut files = 10_000u64;
    for pair in args.chunks(2) {
        match pair {
            ["--file-mib", n] => file_mib = n.parse().map_err(|_| Errno::EINVAL)?,
            ["--files", n] => files = n.parse().map_err(|_| Errno::EINVAL)?,
            _ => {
                println!("usage: fsbench [--file-mib N] [--files N]");
                return Err(Errno::EINVAL);
            }
        }
    }
    println!("[fsbench] counter-hz {}", hal::platform().counter_frequency());

    // Metadata: create, stat, unlink of `files` files in one directory.
    fs::create_dir("/bench")?;
    let names: Vec<String> = (0..files).map(|i| format!("/bench/file-{i}")).collect();
    let start = ticks();
    for name in &names {
        File::create_new(name)?;
    }
    report("create", files, 0, start);
    let start = ticks();
    for name in &names {
        fs::metadata(name)?;
    }
    report("stat", files, 0, start);
    let start = ticks();
    for name in &names {
        fs::remove_file(name)?;
    }
    report("unlink", files, 0, start);

    // Sequential I/O in 4 KiB and 1 MiB calls, then 4 KiB random reads.
    let size = file_mib << 20;
    for (label, chunk) in [("4k", 4096usize), ("1m", 1 << 20)] {
        let mut buf = vec![0x5au8; chunk];
        let path = format!("/bench/seq-{label}");
        let mut file = File::create_new(&path)?;
        let calls = size / chunk as u64;
        let start = ticks();
        for _ in 0..calls {
            file.write_all(&buf)?;
        }
        report(&format!("seq-write-{label}"), calls, size, start);
        let mut file = File::open(&path)?;
        let start = ticks();
        for _ in 0..calls {
            file.read_exact(&mut buf)?;
        }
        report(&format!("seq-read-{label}"), calls, size, start);
        if label == "1m" {
            random_reads(&file, size)?;
        }
        drop(file);
        fs::remove_file(&path)?;
    }
    println!("[fsbench] done");
    Ok(())
}

/// 10 000 reads of 4 KiB at page-aligned pseudo-random offsets.
fn random_reads(file: &File, size: u64) -> Result<(), Errno> {
    let pages = (size / 4096).max(1);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let offsets: Vec<u64> = (0..10_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % pages) * 4096
        })
        .collect();
    let mut buf = [0u8; 4096];
    let start = ticks();
    for &offset in &offsets {
        file.read_at(&mut buf, offset)?;
    }
    report("rand-read-4k", offsets.len() as u64, offsets.len() as u64 * 4096, start);
    Ok(())
}
