//! `vfs-conformance`: the VFS conformance suite inside the guest.
//!
//! Usage: `vfs-conformance [--fs ramfs|tinyfs|virtiofs:TAG|ext2:DISK] [CASE...]` or
//! `vfs-conformance [--fs F] --model N`.
//!
//! Runs every case of `libos_vfs::conformance` (or those named) on fresh instances of the file
//! system (default ramfs, timed by the platform clock; `tinyfs` is the suite's own minimal
//! example; `virtiofs:TAG` mounts the host share with that tag once, `ext2:DISK` the ext2 volume
//! on that disk (`vda`), and gives every instance a fresh, empty directory `conformance-N` of it
//! as its root; the volume is synced before the exit), printing `ok: CASE` or `FAILED: CASE: why` per case and a summary line
//! `conformance: N passed, M failed`. Exits 1 if any case failed, 2 for bad arguments.
//! `--model N` runs only the model test, with N sequences.
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
use core::sync::atomic::{AtomicUsize, Ordering};
use libos::fs::vfs::{FileSystem, NewNode, Node, Owner, StatFs, XattrSet};
use libos::fs::vfs::conformance::{self, Case, FileSystemFactory, ModelConfig, TinyFs};
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

struct Tiny;

impl FileSystemFactory for Tiny {
    fn name(&self) -> &str {
        "tinyfs"
    }

    fn create(&self) -> Result<Arc<dyn FileSystem>, String> {
        Ok(Arc::new(TinyFs::new()))
    }
}

/// A fresh directory of one mounted file system per instance (a FUSE session cannot be
/// re-initialised, and a disk holds one volume, so instances share the mount and differ by
/// their root directory).
struct SharedMount {
    fs: Arc<dyn FileSystem>,
    next: AtomicUsize,
}

impl FileSystemFactory for SharedMount {
    fn name(&self) -> &str {
        self.fs.name()
    }

    /// virtiofsd 1.14 answers FUSE_TMPFILE with ENOSYS (a Linux guest gets `EOPNOTSUPP`), so
    /// libos sends none: `O_TMPFILE` is `EOPNOTSUPP` on virtio-fs.
    fn makes_unnamed_files(&self) -> bool {
        self.fs.name() != "virtiofs"
    }

    fn create(&self) -> Result<Arc<dyn FileSystem>, String> {
        let name = alloc::format!("conformance-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let root = self.fs.root().create(&name, NewNode::Directory, 0o755, Owner::default()).map_err(|e| alloc::format!("mkdir {name}: {e}"))?;
        Ok(Arc::new(Subtree { fs: self.fs.clone(), root }))
    }
}

/// A file system whose root is a directory of another.
struct Subtree {
    fs: Arc<dyn FileSystem>,
    root: Arc<dyn Node>,
}

impl FileSystem for Subtree {
    fn name(&self) -> &str {
        self.fs.name()
    }

    fn root(&self) -> Arc<dyn Node> {
        self.root.clone()
    }

    fn statfs(&self) -> libos::Result<StatFs> {
        self.fs.statfs()
    }

    fn sync(&self) -> libos::Result<()> {
        self.fs.sync()
    }
}

/// The cases a full run on the shared file system `fs` leaves out, and why (naming one runs
/// it): on virtio-fs, what the host daemon decides.
fn leaves_out(fs: &dyn FileSystem) -> Vec<(&'static str, &'static str)> {
    if fs.name() != "virtiofs" {
        return Vec::new();
    }
    if fs.root().list_xattr() == Err(libos::Errno::EOPNOTSUPP) {
        let why = "the host daemon serves no extended attributes (EOPNOTSUPP for every call, as a Linux guest gets)";
        return XATTR_CASES.iter().map(|&name| (name, why)).collect();
    }
    if sets_trusted_attributes(fs) {
        return Vec::new();
    }
    let why = "the host daemon decides: virtiofsd keeps no CAP_SYS_ADMIN, so the host refuses trusted.* and security.* attributes (EPERM) for every guest, Linux's too";
    alloc::vec![("privileged_attribute_namespaces", why)]
}

/// Whether the host daemon may set `trusted.*` attributes (ours runs with root's capabilities,
/// virtiofsd drops CAP_SYS_ADMIN), tried on a scratch directory that is removed afterwards.
fn sets_trusted_attributes(fs: &dyn FileSystem) -> bool {
    const PROBE: &str = "conformance-probe";
    let Ok(dir) = fs.root().create(PROBE, NewNode::Directory, 0o755, Owner::default()) else {
        return false;
    };
    let set = dir.set_xattr("trusted.probe", b"1", XattrSet::Either).is_ok();
    if let Err(e) = fs.root().rmdir(PROBE) {
        println!("vfs-conformance: removing {PROBE}: {e}");
    }
    set
}

/// The extended-attribute cases.
const XATTR_CASES: [&str; 4] = [
    "extended_attributes",
    "extended_attributes_of_links_and_descriptors",
    "extended_attribute_permissions",
    "privileged_attribute_namespaces",
];

const USAGE: &str = "usage: vfs-conformance [--fs ramfs|tinyfs|virtiofs:TAG|ext2:DISK] [CASE... | --model SEQUENCES]";

fn main() -> i32 {
    let mut args: Vec<&str> = libos::env::args().skip(1).collect();
    let share;
    let mut shared_fs = None;
    let factory: &dyn FileSystemFactory = match args[..] {
        ["--fs", "ramfs", ..] => &Ramfs,
        ["--fs", "tinyfs", ..] => &Tiny,
        ["--fs", name, ..] if name.starts_with("virtiofs:") || name.starts_with("ext2:") => match libos::fs::new_file_system(name) {
            Ok(fs) => {
                shared_fs = Some(fs.clone());
                share = SharedMount { fs, next: AtomicUsize::new(0) };
                &share
            }
            Err(why) => {
                println!("vfs-conformance: {why}");
                return 2;
            }
        },
        ["--fs", ..] => {
            println!("{USAGE}");
            return 2;
        }
        _ => &Ramfs,
    };
    if args.first() == Some(&"--fs") {
        args.drain(..2);
    }
    let left_out = shared_fs.as_ref().map_or_else(Vec::new, |fs| leaves_out(&**fs));
    let code = run(factory, &args, &left_out);
    // The shared volume is not mounted in the namespace, so the exit does not sync it.
    if let Some(Err(e)) = shared_fs.map(|fs| fs.sync()) {
        println!("vfs-conformance: sync: {e}");
        return 1;
    }
    code
}

/// Runs the model test or the cases named in `args` (all when none, but those in `left_out`,
/// each said with its reason) on `factory`.
fn run(factory: &dyn FileSystemFactory, args: &[&str], left_out: &[(&str, &str)]) -> i32 {
    if let ["--model", sequences] = args[..] {
        let Ok(sequences) = sequences.parse() else {
            println!("{USAGE}");
            return 2;
        };
        let config = ModelConfig { sequences, ..ModelConfig::QUICK };
        return match conformance::run_model(factory, config) {
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
    for name in args {
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
        for (name, why) in left_out {
            cases.retain(|case| case.name != *name);
            println!("skipped: {name}: {why}");
        }
    }
    println!("conformance: {} cases on {}", cases.len(), factory.name());
    let report = conformance::run_cases(factory, &cases, &mut |name, result| match result {
        Ok(()) => println!("ok: {name}"),
        Err(why) => println!("FAILED: {name}: {why}"),
    });
    println!("conformance: {} passed, {} failed", report.passed, report.failed);
    i32::from(report.failed > 0)
}
