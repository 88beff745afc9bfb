//! `vfs-conformance`: the VFS conformance suite inside the guest.
//!
//! Runs every case of `libos_vfs::conformance` (or those named as arguments) on fresh ramfs
//! instances timed by the platform clock, printing `ok: CASE` or `FAILED: CASE: why` per case
//! and a summary line `conformance: N passed, M failed`. Exits 1 if any case failed, 2 for an
//! unknown case name. `--model SEQUENCES` runs only the model test with that many sequences.
//!
//! A new file system runs the same cases by adding a factory here (and a feature for it).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos::fs::ramfs::RamFs;
use libos::fs::vfs::FileSystem;
use libos::fs::vfs::conformance::{self, Case, FileSystemFactory, ModelConfig};
use libos::println;

libos::main!(main);

struct Ramfs;

impl FileSystemFactory for Ramfs {
    fn name(&self) -> &str {
        "ramfs"
    }

    fn create(&self) -> Result<Arc<dyn FileSystem>, String> {
        Ok(Arc::new(RamFs::new()))
    }
}

fn main() -> i32 {
    let args: Vec<&str> = libos::env::args().skip(1).collect();
    if let ["--model", sequences] = args[..] {
        let Ok(sequences) = sequences.parse() else {
            println!("usage: vfs-conformance [CASE...] | --model SEQUENCES");
            return 2;
        };
        let config = ModelConfig { sequences, ..ModelConfig::QUICK };
        return match conformance::run_model(&Ramfs, config) {
            Ok(()) => {
                println!("model: {sequences} sequences of {} operations agree", config.operations);
                0
            }
            Err(why) => {
                println!("FAILED: model: {why}");
                1
            }
        };
    }
    let mut cases: Vec<Case> = Vec::new();
    for name in &args {
        match conformance::case(name) {
            Some(case) => cases.push(case),
            None => {
                println!("vfs-conformance: no case `{name}`");
                return 2;
            }
        }
    }
    if cases.is_empty() {
        cases.extend_from_slice(conformance::CASES);
    }
    println!("conformance: {} cases on {}", cases.len(), Ramfs.name());
    let report = conformance::run_cases(&Ramfs, &cases, &mut |name, result| match result {
        Ok(()) => println!("ok: {name}"),
        Err(why) => println!("FAILED: {name}: {why}"),
    });
    println!("conformance: {} passed, {} failed", report.passed, report.failed);
    i32::from(report.failed > 0)
}
