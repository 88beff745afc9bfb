//! The static ELF loader (feature `elf`): [`run_elf_program`] reads an unmodified static Linux
//! ELF file from the file system (the image's initial archive, or a virtio-fs root), loads it
//! as [`crate::elf::plan`] says, with the platform's program pages
//! ([`libos::hal::Platform::map_pages`]): every page run mapped read-write, the file's bytes
//! copied in, then each run given its segment's protection (R, RW or RX; never writable and
//! executable). It then starts the program like a linked C app: the same initial stack (with
//! `AT_PHDR`/`AT_PHNUM`/`AT_ENTRY` of the loaded file, `AT_BASE` 0), the same system-call table.
//! Before mapping anything it refuses a file whose pages would cover memory the platform
//! keeps (the kernel image, device windows: [`crate::elf::check_reserved`]).
//!
//! Exit codes when the program cannot start, as a shell reports them: [`NOT_FOUND`] when the
//! file cannot be read, [`CANNOT_EXECUTE`] when it is not a static executable for this machine
//! or cannot be mapped; one `posix-shim:` line says why.

use crate::elf::{self, LoadPlan, Protection};
use crate::run::{self, Program};
use alloc::string::String;
use alloc::vec::Vec;
use libos::Errno;

/// Exit code when the program file cannot be read (as `sh` for a missing command).
pub const NOT_FOUND: i32 = 127;
/// Exit code when the file is not a static executable for this machine (as `sh`).
pub const CANNOT_EXECUTE: i32 = 126;
/// Exit code when the image was started without a program path.
pub const USAGE: i32 = 2;

/// Runs the static ELF file named by the image's first argument, with the remaining arguments
/// (`argv[0]` is the path). Returns only if the program cannot start; the program itself ends
/// the VM through `exit_group`.
pub fn run_elf_program() -> i32 {
    let mut args = libos::env::args().skip(1);
    let Some(path) = args.next() else {
        libos::println!("posix-shim: usage: elf-runner PATH [ARGS...] (the static ELF file to run)");
        return USAGE;
    };
    let file = match libos::fs::read(path) {
        Ok(file) => file,
        Err(e) => {
            libos::println!("posix-shim: cannot read {path}: {e}");
            return NOT_FOUND;
        }
    };
    let plan = match elf::plan(&file, elf::NATIVE_MACHINE) {
        Ok(plan) => plan,
        Err(e) => {
            libos::println!("posix-shim: cannot run {path}: {e}");
            return CANNOT_EXECUTE;
        }
    };
    if let Err(e) = elf::check_reserved(&plan, &libos::hal::platform().reserved_regions()) {
        libos::println!("posix-shim: cannot run {path}: {e}");
        return CANNOT_EXECUTE;
    }
    if let Err(e) = replace_program(&file, &plan) {
        libos::println!("posix-shim: cannot load {path}: mapping its segments failed: {e}");
        return CANNOT_EXECUTE;
    }
    drop(file);
    log::info!(
        "posix-shim: loaded {path} ({}, entry {:#x}, {} page runs)",
        if plan.pie { "static-PIE" } else { "non-PIE" },
        plan.entry,
        plan.runs.len()
    );
    let mut argv = Vec::from([String::from(path)]);
    argv.extend(args.map(String::from));
    let executable = String::from(path);
    run::run(Program { entry: plan.entry, phdr: plan.phdr, phent: plan.phent, phnum: plan.phnum, args: argv, executable })
}

/// The page runs of the ELF file loaded last (unmapped when `execve` replaces it).
static LOADED: libos::sync::Mutex<Vec<elf::PageRun>> = libos::sync::Mutex::new(Vec::new());

/// The loaded program's page runs as `/proc/self/maps` areas of file `executable`.
#[cfg(feature = "fs")]
pub fn program_areas(executable: &str) -> Vec<libos::fs::vfs::procfs::Mapping> {
    LOADED
        .lock()
        .iter()
        .map(|run| libos::fs::vfs::procfs::Mapping {
            start: run.start,
            end: run.end,
            read: true,
            write: run.protection == Protection::ReadWrite,
            exec: run.protection == Protection::ReadExecute,
            name: String::from(executable),
            ..Default::default()
        })
        .collect()
}

/// Unmaps the program loaded before (if any) and loads `file` as `plan` says. On error nothing
/// of either stays mapped.
pub fn replace_program(file: &[u8], plan: &LoadPlan) -> Result<(), Errno> {
    let mut loaded = LOADED.lock();
    unmap(&loaded);
    loaded.clear();
    load(file, plan)?;
    loaded.extend(plan.runs.iter().cloned());
    Ok(())
}

/// Maps the plan's page runs, copies the file's bytes, applies the protections. On error
/// nothing stays mapped.
fn load(file: &[u8], plan: &LoadPlan) -> Result<(), Errno> {
    let platform = libos::hal::platform();
    for (i, run) in plan.runs.iter().enumerate() {
        // SAFETY: the runs lie at the program's own addresses, which the platform checks are not
        // kernel RAM; nothing of the kernel uses the device addresses they may replace (4 MiB
        // on aarch64 virt is the unused flash) or the PIE window.
        let mapped = unsafe { platform.map_pages(run.start, run.end - run.start, Protection::ReadWrite) };
        if let Err(e) = mapped {
            unmap(&plan.runs[..i]);
            return Err(e);
        }
    }
    for copy in &plan.copies {
        let bytes = &file[copy.offset as usize..(copy.offset + copy.len) as usize];
        // SAFETY: `plan` checked that the bytes lie in the file and the destination in its
        // runs, all mapped read-write just above and used by nothing else yet.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), copy.addr as *mut u8, bytes.len()) };
    }
    for run in &plan.runs {
        if run.protection != Protection::ReadWrite {
            // SAFETY: the pages were mapped above; nothing writes them after the copies.
            if let Err(e) = unsafe { platform.protect_pages(run.start, run.end - run.start, run.protection) } {
                unmap(&plan.runs);
                return Err(e);
            }
        }
    }
    Ok(())
}

fn unmap(runs: &[elf::PageRun]) {
    for run in runs {
        // SAFETY: the program never started, or `execve` replaced it: nothing uses its pages
        // (its threads are forgotten and the caller runs kernel code).
        let _ = unsafe { libos::hal::platform().unmap_pages(run.start, run.end - run.start) };
    }
}
