//! `execve` (feature `elf`): replaces the program in this VM by a static ELF file from the file
//! system, keeping the process (its pid, descriptors without `FD_CLOEXEC`, ignored signals,
//! the signal mask, pending signals and the current directory), as Linux does.
//!
//! Everything that can fail is checked before anything is torn down, so a failing `execve`
//! returns to the caller with the error: `ENOENT`/`ENOTDIR`/`EACCES` from the walk, `EACCES`
//! for a file without an execute bit or not a regular file, `ENOEXEC` for a file that is not a
//! static executable for this machine (dynamic, foreign architecture, corrupt), `E2BIG` for
//! arguments and environment over [`ARG_MAX`], `ELOOP` past [`MAX_INTERPRETERS`] `#!` lines.
//! A file starting with `#!` runs its interpreter with the script's path as an argument.
//!
//! Past that point the old program is gone: the other threads are forgotten (as after a fork),
//! signal handlers reset to the default, descriptors with `FD_CLOEXEC` closed, every mapping
//! and the `brk` heap released, the old ELF file's pages unmapped; the new program starts on a
//! fresh main thread ([`crate::run`]), and the calling kernel thread waits for it for good. Its
//! stack is the one thing of the old program that is not freed (the call runs on it). If loading
//! fails there (out of memory), the process ends as if killed by `SIGKILL`, as Linux kills a
//! process whose `execve` fails past that point.

use crate::user::{self, StrBuffer};
use alloc::string::String;
use alloc::vec::Vec;
use libos::fs::vfs::TextBusy;
use libos::{Errno, Result};

/// Bytes of arguments and environment (with their NULs) an `execve` may pass (Linux's
/// default is a quarter of the stack limit; posix-shim's main stack is 1 MiB).
pub const ARG_MAX: usize = 256 * 1024;
/// Nested `#!` interpreters followed (Linux follows 4 more after the first).
pub const MAX_INTERPRETERS: usize = 5;
/// The longest `#!` line read (Linux's `BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;
/// Longest path accepted (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// The program to start: its file, plan, and the arguments it gets.
struct Image {
    path: String,
    file: Vec<u8>,
    /// The file kept from writers while the program runs from it (`ETXTBSY`).
    text: TextBusy,
    plan: crate::elf::LoadPlan,
    args: Vec<String>,
}

/// `execve(path, argv, envp)`. Returns only with an error.
///
/// System calls run on the caller's stack, and a program may call `execve` on a small one
/// (musl's `posix_spawn` child runs on 5 KiB inside its parent's frame); reading and mapping a
/// file needs far more. So only the copying of the arguments runs here; the file's checks and
/// everything after the point of no return run on a kernel thread's stack ([`on_kernel_stack`]).
pub fn execve(path: u64, argv: u64, envp: u64, stack_pointer: u64) -> Result<u64> {
    let mut buffer = StrBuffer::new();
    // SAFETY: checked by `c_string`.
    let path = String::from(unsafe { user::c_string(path, PATH_MAX, &mut buffer)? });
    let mut budget = ARG_MAX;
    let args = strings(argv, &mut budget)?;
    let env = strings(envp, &mut budget)?;
    let image = on_kernel_stack(move || find(path, args))??;
    log::info!("posix-shim: execve {} ({}, entry {:#x})", image.path, if image.plan.pie { "static-PIE" } else { "non-PIE" }, image.plan.entry);
    // The point of no return. What concerns the calling thread itself happens on it.
    let blocked = crate::signal::blocked();
    crate::thread::forget_all_threads();
    crate::signal::reset_for_exec();
    crate::process::report_exec();
    let code = on_kernel_stack(move || replace(image, env, blocked, stack_pointer)).unwrap_or(1);
    // The new program's main thread ended without ending the VM: its code is the process's.
    crate::dispatch::exit_program(code)
}

/// The rest of `execve` past the point of no return: the old program's descriptors and memory
/// go, the new one is loaded and started; returns when its main thread ends.
fn replace(image: Image, env: Vec<String>, blocked: u64, stack_pointer: u64) -> i32 {
    crate::fd::close_on_exec();
    crate::mem::release_for_exec(stack_pointer);
    if let Err(e) = crate::load::replace_program(&image.file, &image.plan) {
        libos::println!("posix-shim: execve {}: mapping its segments failed ({e}); the process ends", image.path);
        crate::dispatch::end_program(crate::signal::signal_exit_code(9), 9);
    }
    let program = crate::run::Program {
        entry: image.plan.entry,
        phdr: image.plan.phdr,
        phent: image.plan.phent,
        phnum: image.plan.phnum,
        args: image.args,
        executable: image.path,
    };
    drop(image.file);
    crate::load::set_running_text(image.text);
    crate::run::start_main_thread(program, env, blocked)
}

/// Bytes of the kernel thread's stack [`on_kernel_stack`] runs on.
#[cfg(feature = "threads")]
const KERNEL_STACK: usize = 128 * 1024;

/// Runs `f` on a kernel thread's own stack and waits for it. Errors: the thread could not
/// start (`EAGAIN` for want of memory).
#[cfg(feature = "threads")]
fn on_kernel_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let thread = libos::thread::Builder::new().name("execve").stack_size(KERNEL_STACK).spawn(f);
    thread.map(|handle| handle.join()).map_err(|e| if e == Errno::ENOMEM { Errno::EAGAIN } else { e })
}

/// Without threads the call runs where it is.
#[cfg(not(feature = "threads"))]
fn on_kernel_stack<T>(f: impl FnOnce() -> T) -> Result<T> {
    Ok(f())
}

/// The NUL-terminated strings of the NULL-terminated array at `array` (none when it is NULL,
/// as Linux allows), charged against `budget`.
fn strings(array: u64, budget: &mut usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if array == 0 {
        return Ok(out);
    }
    for index in 0u64.. {
        let slot = array.checked_add(index * 8).ok_or(Errno::EFAULT)?;
        // SAFETY: checked by `user::read`.
        let pointer: u64 = unsafe { user::read(slot)? };
        if pointer == 0 {
            break;
        }
        let mut buffer = StrBuffer::new();
        // SAFETY: checked by `c_string`.
        let string = unsafe { user::c_string(pointer, *budget, &mut buffer) }.map_err(|e| if e == Errno::ENAMETOOLONG { Errno::E2BIG } else { e })?;
        *budget = budget.checked_sub(string.len() + 1 + 8).ok_or(Errno::E2BIG)?;
        out.push(String::from(string));
    }
    Ok(out)
}

/// Reads `path` and what it needs (its `#!` interpreters), checking everything.
fn find(mut path: String, mut args: Vec<String>) -> Result<Image> {
    for _ in 0..MAX_INTERPRETERS {
        let (file, text) = crate::load::read_program(&path)?;
        if let Some(line) = file.strip_prefix(b"#!") {
            let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len()).min(SHEBANG_MAX);
            let line = core::str::from_utf8(&line[..end]).map_err(|_| Errno::ENOEXEC)?;
            let line = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
            let (interpreter, argument) = match line.find([' ', '\t']) {
                Some(at) => (&line[..at], Some(line[at..].trim_matches(|c| c == ' ' || c == '\t'))),
                None => (line, None),
            };
            if interpreter.is_empty() {
                return Err(Errno::ENOEXEC);
            }
            // argv[0] is replaced by the interpreter (and its argument), then the script's path.
            let mut new_args = Vec::from([String::from(interpreter)]);
            new_args.extend(argument.filter(|a| !a.is_empty()).map(String::from));
            new_args.push(path);
            new_args.extend(args.into_iter().skip(1));
            args = new_args;
            path = String::from(interpreter);
            continue;
        }
        let plan = crate::elf::plan(&file, crate::elf::NATIVE_MACHINE).map_err(|e| {
            log::info!("posix-shim: execve {path}: {e}");
            Errno::ENOEXEC
        })?;
        crate::elf::check_reserved(&plan, &libos::hal::platform().reserved_regions()).map_err(|e| {
            log::info!("posix-shim: execve {path}: {e}");
            Errno::ENOEXEC
        })?;
        return Ok(Image { path, file, text, plan, args });
    }
    Err(Errno::ELOOP)
}
