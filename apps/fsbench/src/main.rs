//! `fsbench`: the workloads of `./x bench fs` (on the root ramfs) and `./x bench virtiofs` (the
//! same workloads on a virtio-fs share, then on ramfs, in one boot), through `libos::fs`.
//!
//! Each workload prints `[fsbench] NAME ops=N bytes=B ticks=T`, where ticks are platform
//! counter ticks around the whole workload (under QEMU `-icount shift=0` on x86_64: guest
//! instructions, plus any time the guest waits for the host). Setup that is not part of the
//! operation (formatting names, filling buffers) happens outside the measured span.
//!
//! With `--virtiofs TAG` the share is mounted at `/share` and every workload runs twice, first
//! as `virtiofs/NAME` in `/share/bench`, then as `ramfs/NAME` in `/bench`; each virtio-fs
//! workload adds a line `[fsbench] virtiofs/NAME fuse requests=R lookups=L getattrs=G reads=RD
//! writes=W mappings=M read-bytes=RB window-bytes=XB written-bytes=WB forget-messages=F
//! notifications=N interrupts=I wait-ns=WT`: the mount's FUSE counters (M: DAX SETUPMAPPINGs,
//! XB: bytes read from the DAX window) and the device's queue notifications, interrupts and
//! time spent waiting for the host during the workload.
//!
//! `--seed` adds the rest of the seed workload: 1 MiB reads at random offsets, and 10 files of a
//! tenth of the size each read sequentially in 1 MiB calls and at random in 4 KiB calls.
//!
//! `--reread` reads each sequential file a second time (`seq-reread-4k`, `seq-reread-1m`): what a
//! cache such as a DAX window holds after the first read.
//!
//! Usage: `fsbench [--file-mib N] [--files N] [--virtiofs TAG] [--seed] [--reread]` (defaults
//! 256 MiB and 10 000 files).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use libos::fs::{self, File, Read, Write};
use libos::virtiofs::{FuseStats, MountOptions, Stats, VirtioFs, VirtioFsDevice, op};
use libos::{Errno, hal, println};

libos::main!(main);

fn ticks() -> u64 {
    hal::platform().counter()
}

/// Where a pass runs and what it reports.
struct Pass {
    /// Prefix of the workload names (`""`, `"virtiofs/"`, `"ramfs/"`).
    prefix: &'static str,
    /// The directory the files go in.
    dir: String,
    /// The virtio-fs mount and device whose counters are reported.
    virtiofs: Option<(Arc<VirtioFs>, Arc<VirtioFsDevice>)>,
}

/// The state at the start of a workload.
struct Mark {
    ticks: u64,
    counters: Option<(FuseStats, Stats)>,
}

impl Pass {
    fn start(&self) -> Mark {
        let counters = self.virtiofs.as_ref().map(|(fs, dev)| (fs.stats(), dev.stats()));
        Mark { ticks: ticks(), counters }
    }

    fn report(&self, name: &str, ops: u64, bytes: u64, mark: Mark) {
        let spent = ticks().wrapping_sub(mark.ticks);
        println!("[fsbench] {}{name} ops={ops} bytes={bytes} ticks={spent}", self.prefix);
        if let (Some((fs, dev)), Some((fuse0, dev0))) = (&self.virtiofs, mark.counters) {
            let fuse = fs.stats().since(&fuse0);
            let d = dev.stats();
            println!(
                "[fsbench] {}{name} fuse requests={} lookups={} getattrs={} reads={} writes={} mappings={} read-bytes={} \
                 window-bytes={} written-bytes={} forget-messages={} notifications={} interrupts={} wait-ns={}",
                self.prefix,
                fuse.total(),
                fuse.count(op::LOOKUP),
                fuse.count(op::GETATTR),
                fuse.count(op::READ),
                fuse.count(op::WRITE),
                fuse.count(op::SETUPMAPPING),
                fuse.bytes_read,
                fuse.bytes_read_from_window,
                fuse.bytes_written,
                fuse.forget_messages,
                d.notifications - dev0.notifications,
                d.interrupts - dev0.interrupts,
                d.wait_ns - dev0.wait_ns,
            );
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }
}


fn main() -> Result<(), Errno> {
    let args: Vec<&str> = libos::env::args().skip(1).collect();
    let mut file_mib = 256u64;
    let mut files = 10_000u64;
    let mut tag = None;
    let mut seed = false;
    let mut reread = false;
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        match (arg, rest.clone().next()) {
            ("--file-mib", Some(n)) => file_mib = n.parse().map_err(|_| Errno::EINVAL)?,
            ("--files", Some(n)) => files = n.parse().map_err(|_| Errno::EINVAL)?,
            ("--virtiofs", Some(t)) => tag = Some(String::from(*t)),
            ("--seed", _) => {
                seed = true;
                continue;
            }
            ("--reread", _) => {
                reread = true;
                continue;
            }
            _ => {
                println!("usage: fsbench [--file-mib N] [--files N] [--virtiofs TAG] [--seed]");
                return Err(Errno::EINVAL);
            }
        }
        rest.next();
    }
    println!("[fsbench] counter-hz {}", hal::platform().counter_frequency());
    let mut passes = Vec::new();
    if let Some(tag) = tag {
        let device = libos::virtiofs::device(&tag).map_err(|why| {
            println!("fsbench: {why}");
            Errno::ENODEV
        })?;
        let fs = VirtioFs::mount(device.clone(), MountOptions::default())?;
        fs::create_dir("/share")?;
        fs::mount("/share", fs.clone())?;
        passes.push(Pass { prefix: "virtiofs/", dir: String::from("/share/bench"), virtiofs: Some((fs, device)) });
        passes.push(Pass { prefix: "ramfs/", dir: String::from("/bench"), virtiofs: None });
    } else {
        passes.push(Pass { prefix: "", dir: String::from("/bench"), virtiofs: None });
    }
    for pass in &passes {
        workloads(pass, file_mib, files, seed, reread)?;
    }
    println!("[fsbench] done");
    Ok(())
}

fn workloads(pass: &Pass, file_mib: u64, files: u64, seed: bool, reread: bool) -> Result<(), Errno> {
    // Metadata: create, stat, unlink of `files` files in one directory.
    fs::create_dir(&pass.dir)?;
    let names: Vec<String> = (0..files).map(|i| pass.path(&format!("file-{i}"))).collect();
    let mark = pass.start();
    for name in &names {
        File::create_new(name)?;
    }
    pass.report("create", files, 0, mark);
    let mark = pass.start();
    for name in &names {
        fs::metadata(name)?;
    }
    pass.report("stat", files, 0, mark);
    let mark = pass.start();
    for name in &names {
        fs::remove_file(name)?;
    }
    pass.report("unlink", files, 0, mark);

    // Sequential I/O in 4 KiB and 1 MiB calls, then 4 KiB (and with --seed 1 MiB) random reads.
    let size = file_mib << 20;
    for (label, chunk) in [("4k", 4096usize), ("1m", 1 << 20)] {
        let mut buf = vec![0x5au8; chunk];
        let path = pass.path(&format!("seq-{label}"));
        let mut file = File::create_new(&path)?;
        let calls = size / chunk as u64;
        let mark = pass.start();
        for _ in 0..calls {
            file.write_all(&buf)?;
        }
        pass.report(&format!("seq-write-{label}"), calls, size, mark);
        let mut file = File::open(&path)?;
        let mark = pass.start();
        for _ in 0..calls {
            file.read_exact(&mut buf)?;
        }
        pass.report(&format!("seq-read-{label}"), calls, size, mark);
        if reread {
            // The same file again: what a cache (a DAX window) holds after the first read.
            let mut file = File::open(&path)?;
            let mark = pass.start();
            for _ in 0..calls {
                file.read_exact(&mut buf)?;
            }
            pass.report(&format!("seq-reread-{label}"), calls, size, mark);
        }
        if label == "1m" {
            random_reads(pass, "rand-read-4k", &[&file], size, 4096, 10_000)?;
            if seed {
                random_reads(pass, "rand-read-1m", &[&file], size, 1 << 20, (size >> 20).min(1000))?;
            }
        }
        drop(file);
        fs::remove_file(&path)?;
    }
    if seed {
        ten_files(pass, size / 10)?;
    }
    fs::remove_dir(&pass.dir)
}

/// 10 files of `size` bytes each: written, then read sequentially in 1 MiB calls (one after the
/// other), then 10 000 4 KiB reads at random offsets of random files.
fn ten_files(pass: &Pass, size: u64) -> Result<(), Errno> {
    let chunk = 1usize << 20;
    let size = size.max(chunk as u64) / chunk as u64 * chunk as u64;
    let mut buf = vec![0xa5u8; chunk];
    let paths: Vec<String> = (0..10).map(|i| pass.path(&format!("ten-{i}"))).collect();
    for path in &paths {
        let mut file = File::create_new(path)?;
        for _ in 0..size / chunk as u64 {
            file.write_all(&buf)?;
        }
    }
    let mut opened: Vec<File> = paths.iter().map(|p| File::open(p)).collect::<Result<_, _>>()?;
    let calls = size / chunk as u64;
    let mark = pass.start();
    for file in &mut opened {
        for _ in 0..calls {
            file.read_exact(&mut buf)?;
        }
    }
    pass.report("ten-files-seq-read-1m", calls * 10, size * 10, mark);
    let refs: Vec<&File> = opened.iter().collect();
    random_reads(pass, "ten-files-rand-read-4k", &refs, size, 4096, 10_000)?;
    drop(opened);
    for path in &paths {
        fs::remove_file(path)?;
    }
    Ok(())
}

/// `count` reads of `chunk` bytes at pseudo-random chunk-aligned offsets of the `files`
/// (each `size` bytes), the file picked by the same generator.
fn random_reads(pass: &Pass, name: &str, files: &[&File], size: u64, chunk: usize, count: u64) -> Result<(), Errno> {
    let slots = (size / chunk as u64).max(1);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let picks: Vec<(usize, u64)> = (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let offset = (state % slots) * chunk as u64;
            let file = if files.len() == 1 { 0 } else { ((state >> 40) % files.len() as u64) as usize };
            (file, offset)
        })
        .collect();
    let mut buf = vec![0u8; chunk];
    let mark = pass.start();
    for &(file, offset) in &picks {
        files[file].read_at(&mut buf, offset)?;
    }
    pass.report(name, count, count * chunk as u64, mark);
    Ok(())
}
