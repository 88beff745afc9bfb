//! `fsdemo`: the `libos::fs` API on the root ramfs, step by step.
//!
//! Creates a directory tree, writes and appends to files, reads them back, lists a directory,
//! renames and links, reads `/dev/urandom`, writes through `/dev/console`, and prints the
//! mounts (so `./x run fsdemo --cmdline "mount=ramfs:/scratch"` shows the extra mount). Every
//! step prints one line; the first failure ends the app with exit code 1.
//!
//! The image carries `apps/fsdemo/rootfs/` as initial files (packed by `build.rs`), so
//! `/etc/motd` exists at `main`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use libos::fs::{self, File, OpenOptions, Read, Write};
use libos::{Errno, print, println};

libos::main!(main, initial_files = include_bytes!(concat!(env!("OUT_DIR"), "/rootfs.cpio")));

fn main() -> Result<(), Errno> {
    print!("fsdemo: /etc/motd: {}", fs::read_to_string("/etc/motd")?);
    let words = fs::read_to_string("/share/fsdemo/words.txt")?;
    println!("fsdemo: words.txt has {} words", words.lines().count());
    fs::create_dir_all("/data/logs")?;
    println!("fsdemo: created /data/logs");

    let mut file = File::create("/data/logs/app.log")?;
    writeln!(file, "line 1")?;
    drop(file);
    let mut log = OpenOptions::new().append(true).open("/data/logs/app.log")?;
    for n in 2..=3 {
        writeln!(log, "line {n}")?;
    }
    let text = fs::read_to_string("/data/logs/app.log")?;
    println!("fsdemo: app.log has {} lines, {} bytes", text.lines().count(), text.len());

    fs::write("/data/config", "answer=42\n")?;
    fs::rename("/data/config", "/data/settings")?;
    fs::hard_link("/data/settings", "/data/settings.link")?;
    fs::symlink("/data/settings", "/data/latest")?;
    let meta = fs::metadata("/data/latest")?;
    println!("fsdemo: settings: {} bytes, {} links, mode {:o}", meta.size, meta.nlink, meta.mode());

    let mut names: Vec<String> = fs::read_dir("/data")?.map(|e| e.map(|e| e.name)).collect::<Result<_, _>>()?;
    names.sort();
    println!("fsdemo: /data: {}", names.join(" "));

    match fs::remove_dir("/data") {
        Err(Errno::ENOTEMPTY) => println!("fsdemo: remove_dir(/data) refused: ENOTEMPTY"),
        other => println!("fsdemo: remove_dir(/data) unexpectedly gave {other:?}"),
    }
    fs::remove_file("/data/settings")?;
    println!("fsdemo: after remove_file, the hard link still reads {:?}", fs::read_to_string("/data/settings.link")?);
    println!("fsdemo: the symlink now dangles: {:?}", fs::metadata("/data/latest").err());

    let sparse = File::create_new("/data/sparse")?;
    sparse.write_at(b"end", 10 << 20)?;
    let meta = sparse.metadata()?;
    println!("fsdemo: sparse file: {} bytes in {} blocks", meta.size, meta.blocks);

    let mut random = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut random)?;
    let mut zeros = [1u8; 4];
    File::open("/dev/zero")?.read_exact(&mut zeros)?;
    println!("fsdemo: /dev/zero gave {zeros:?}, /dev/urandom gave {} bytes", random.len());
    let mut console = OpenOptions::new().write(true).open("/dev/console")?;
    writeln!(console, "fsdemo: written through /dev/console")?;
    println!("fsdemo: /dev/full: {:?}", OpenOptions::new().write(true).open("/dev/full")?.write(b"x").err());

    let vfs = fs::vfs()?;
    for mount in vfs.mounts() {
        println!("fsdemo: mount {} on {}", mount.fs_name, mount.path);
    }
    let stat = vfs.statfs("/")?;
    println!("fsdemo: root statfs: type {:#x}, block size {}", stat.fs_type, stat.block_size);
    println!("fsdemo: done");
    Ok(())
}
