//! fsx, the file-system exerciser (its Rust rewrite, `fsx` [`VERSION`] from the Rust
//! registry), on libos's roots: a pseudorandom, seeded sequence of reads, writes, `mmap` reads
//! and writes, `msync(MS_INVALIDATE)`, truncations, `fsync`/`fdatasync`, `posix_fallocate`,
//! hole punching, `sendfile`, `posix_fadvise`, `copy_file_range` and close/reopen on one file,
//! every read checked against the bytes fsx expects (`./x fsx`, `tests/tests/fsx.rs`). Built
//! and booted by [`crate::outside`]; the configurations are `tests/fsx/fsx.toml` and, for an
//! ext2 root, `tests/fsx/fsx-ext2.toml` (no hole punching, which ext2 refuses on Linux too).

use crate::Result;
use crate::arch::Arch;
use crate::outside::{self, Root, Tool};
use crate::qemu::Exit;

/// The fsx release on the Rust registry.
pub const VERSION: &str = "0.3.2";

/// fsx as a [`Tool`].
pub const TOOL: Tool = Tool { name: "fsx", version: VERSION, static_libraries: &[], extras: outside::no_extras };

/// What fsx prints when every operation checked out.
const PASSED: &str = "All operations completed A-OK!";

/// Runs `ops` operations of seed `seed` on `/tmp/testfile` of a fresh `root` in a libos guest
/// for `arch`; `Ok` with the console when fsx passed, an error with the console (fsx's log of
/// the last operations and the difference it found) when it did not.
pub fn run(arch: Arch, root: Root, ops: u64, seed: u64) -> Result<String> {
    let config = if root == Root::Ext2 { "/fsx-ext2.toml" } else { "/fsx.toml" };
    let args: Vec<String> =
        ["/bin/fsx", "-f", config, "-N", &ops.to_string(), "-S", &seed.to_string(), "-P", "/tmp", "/tmp/testfile"].map(String::from).to_vec();
    let outcome = outside::boot(&TOOL, arch, root, &args)?;
    match outcome.exit {
        Exit::Code(0) if outcome.console.contains(PASSED) => Ok(outcome.console),
        _ => Err(format!("fsx -N {ops} -S {seed} on libos {arch}, {} root: {:?}\n{}", root.name(), outcome.exit, outcome.console).into()),
    }
}

/// `./x fsx`: runs fsx for every arch and root, prints a line per run, and returns 1 when any
/// run failed (its console is printed).
pub fn main(arches: &[Arch], roots: &[Root], ops: u64, seed: u64) -> Result<i32> {
    let mut failed = 0;
    for &arch in arches {
        for &root in roots {
            let started = std::time::Instant::now();
            match run(arch, root, ops, seed) {
                Ok(_) => println!("fsx {ops} operations, seed {seed}: libos {arch}, {} root: passed ({:.1} s, TCG)", root.name(), started.elapsed().as_secs_f64()),
                Err(e) => {
                    println!("{e}");
                    failed += 1;
                }
            }
        }
    }
    Ok(i32::from(failed > 0))
}
