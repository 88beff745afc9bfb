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
//! file is missing, [`CANNOT_EXECUTE`] when it may not run (no execute permission, a `noexec`
//! mount, open for writing), is not a static executable for this machine or cannot be mapped;
//! one `posix-shim:` line says why. The file refuses writers (`ETXTBSY`) while the program runs.

use crate::elf::{self, LoadPlan, Protection};
use crate::run::{self, Program};
use alloc::string::String;
use alloc::vec::Vec;
use libos::Errno;
use libos::fs::vfs::TextBusy;

/// Exit code when the program file is missing (as `sh` for a missing command).
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
    let (file, text) = match read_program(path) {
        Ok(read) => read,
        Err(e) => {
            libos::println!("posix-shim: cannot read {path}: {e}");
            // As a shell: a missing file is "not found", one that may not run "cannot execute".
            return if matches!(e, Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) { NOT_FOUND } else { CANNOT_EXECUTE };
        }
    };
    set_running_text(text);
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

/// The file the running program came from, kept from writers (`ETXTBSY`) until `execve`
/// replaces the program.
static RUNNING_TEXT: libos::sync::Mutex<Option<TextBusy>> = libos::sync::Mutex::new(None);

/// Marks `text` as the running program's file, releasing the one before, and tells the
/// other processes (through the process host, when there is one).
pub(crate) fn set_running_text(text: TextBusy) {
    let (dev, ino) = text.file();
    let previous = RUNNING_TEXT.lock().replace(text);
    drop(previous);
    crate::process::report_text(dev, ino);
}

/// Opens `path` as a program to run ([`libos::fs::vfs::Vfs::open_executable`]: a regular file
/// with execute permission, not on a `noexec` mount, not open for writing) and reads it whole.
/// The [`TextBusy`] keeps writers away while the caller holds it.
/// It is read up to the size it had when opened (no writer in this VM can change it meanwhile).
pub(crate) fn read_program(path: &str) -> Result<(Vec<u8>, TextBusy), Errno> {
    let (file, text) = libos::fs::vfs()?.open_executable(path)?;
    let size = usize::try_from(file.metadata()?.size).map_err(|_| Errno::ENOMEM)?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size).map_err(|_| Errno::ENOMEM)?;
    bytes.resize(size, 0);
    let mut done = 0;
    while done < size {
        match file.read(&mut bytes[done..])? {
            0 => break,
            n => done += n,
        }
    }
    bytes.truncate(done);
    Ok((bytes, text))
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
