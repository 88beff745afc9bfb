//! Starting the C program: install the system-call handler, set up descriptors 0-2, build the
//! Linux initial stack ([`crate::start`]) with the image's auxiliary vector, enter musl's
//! `_start`.
//!
//! The program's main thread runs on a [`MAIN_STACK`]-byte stack: a libos thread's stack with
//! a guard page (feature `threads`), else a heap block (no guard page without the scheduler's
//! stacks). The environment is `HOME=/`, `PATH=/bin:/usr/bin`, `TERM=vt100`, plus every
//! `env=NAME=VALUE` of the kernel command line.

use crate::abi::auxv::*;
use crate::abi::{PT_GNU_STACK, PT_TLS, ProgramHeader};
use crate::{dispatch, fd, start, thread};
use alloc::string::String;
use alloc::vec::Vec;
use libos::syscall::{Frame, UserEntry};

/// Bytes of the main thread's stack (also what `RLIMIT_STACK` reports).
pub const MAIN_STACK: usize = 1 << 20;

unsafe extern "C" {
    /// musl's program entry (crt1.o), linked by the app's build script.
    fn _start();
    /// Where the linker put the TLS template (`.tdata`, then `.tbss`); see the linker scripts.
    static __libos_tls_start: u8;
    /// The template's file size, memory size and alignment.
    static __libos_tls_sizes: [u64; 3];
}

/// The program header table `AT_PHDR` points at: the image's own headers are not in loaded
/// memory, so the shim describes what musl's start-up reads from them: the TLS template and
/// the stack. Lives as long as the program.
static mut PROGRAM_HEADERS: [ProgramHeader; 2] = [ProgramHeader {
    p_type: 0,
    p_flags: 0,
    p_offset: 0,
    p_vaddr: 0,
    p_paddr: 0,
    p_filesz: 0,
    p_memsz: 0,
    p_align: 0,
}; 2];

/// What the start-up needs to know about a program: its first instruction, what its auxiliary
/// vector says about it, and its arguments (`argv[0]` first).
pub(crate) struct Program {
    /// The first instruction (`_start`), also `AT_ENTRY`.
    pub entry: u64,
    /// `AT_PHDR`, `AT_PHENT`, `AT_PHNUM`: the program header table in memory.
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    /// The arguments.
    pub args: Vec<String>,
    /// The path of its file (`/proc/self/exe`; the image's own program has none: its name).
    #[cfg_attr(not(feature = "fs"), allow(dead_code))]
    pub executable: String,
}

/// Runs the C program linked into the image; returns only if it cannot start (the program
/// itself ends the VM through `exit_group`).
pub fn run_c_program() -> i32 {
    let program = Program {
        entry: _start as *const () as u64,
        phdr: program_headers() as u64,
        phent: size_of::<ProgramHeader>() as u64,
        phnum: 2,
        args: libos::env::args().map(String::from).collect(),
        executable: String::from(libos::env::args().next().unwrap_or("program")),
    };
    run(program)
}

/// Installs the system-call handler and the console descriptors, then enters `program` on its
/// main thread. Returns only if it cannot start.
pub(crate) fn run(program: Program) -> i32 {
    let Some(entry) = libos::syscall::user_entry() else {
        libos::println!("posix-shim: this image has no system-call entry");
        return 1;
    };
    entry.install(dispatch::dispatch, dispatch::on_return);
    crate::process::install();
    fd::init_console();
    crate::net::install_hooks();
    let mut env: Vec<String> = ["HOME=/", "PATH=/bin:/usr/bin", "TERM=vt100"].iter().map(|s| String::from(*s)).collect();
    env.extend(libos::env::vars().map(String::from));
    start_main_thread(program, env, 0)
}

/// Enters `program` with `env` on a new main thread whose signal mask is `blocked`, and waits
/// for that thread (the program normally ends the VM first). The first program's start, and
/// `execve`'s.
pub(crate) fn start_main_thread(program: Program, env: Vec<String>, blocked: u64) -> i32 {
    let Some(entry) = libos::syscall::user_entry() else {
        libos::println!("posix-shim: this image has no system-call entry");
        return 1;
    };
    #[cfg(feature = "threads")]
    {
        let main = libos::thread::Builder::new().name("c-main").stack_size(MAIN_STACK).spawn(move || {
            let mut stack = Vec::new();
            let mut program = program;
            start_program(entry, &mut program, &env, blocked, &mut stack)
        });
        match main {
            Ok(handle) => handle.join(),
            Err(e) => {
                libos::println!("posix-shim: cannot start the program's thread: {e}");
                1
            }
        }
    }
    #[cfg(not(feature = "threads"))]
    {
        let mut stack = alloc::vec![0u8; MAIN_STACK];
        let mut program = program;
        start_program(entry, &mut program, &env, blocked, &mut stack)
    }
}

fn start_program(entry: &'static dyn UserEntry, program: &mut Program, env: &[String], blocked: u64, heap_stack: &mut Vec<u8>) -> i32 {
    thread::init_main_thread(blocked);
    // The initial stack: on the heap block, or (with threads) in a buffer below this frame on
    // the thread's own stack, which is where `_start` then keeps running.
    let mut on_thread_stack = [0u8; 16 * 1024];
    let (buffer, base): (&mut [u8], u64) = if heap_stack.is_empty() {
        let base = on_thread_stack.as_ptr() as u64;
        (&mut on_thread_stack, base)
    } else {
        let base = heap_stack.as_ptr() as u64;
        (heap_stack.as_mut_slice(), base)
    };
    let args: Vec<&str> = program.args.iter().map(String::as_str).collect();
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    let auxv = [
        (AT_PHDR, program.phdr),
        (AT_PHENT, program.phent),
        (AT_PHNUM, program.phnum),
        (AT_PAGESZ, crate::mem::PAGE),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, program.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_HWCAP, hwcap()),
        (AT_HWCAP2, 0),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
    ];
    let mut random = [0u8; 16];
    random_bytes(&mut random);
    #[cfg(feature = "fs")]
    let page = crate::mem::PAGE;
    #[cfg(feature = "fs")]
    let stack = (base & !(page - 1), (base + buffer.len() as u64).next_multiple_of(page));
    let sp = match start::build(buffer, base, &args, &env, &auxv, crate::abi::MACHINE, random) {
        Ok(sp) => sp,
        Err(e) => {
            libos::println!("posix-shim: cannot build the initial stack: {e:?}");
            return 1;
        }
    };
    // For /proc/self: only what is at hand (see `procview`). Open question: with the first,
    // eager version of this call (commit ececfaa: cmdline, environ and exe copied here), fsx
    // on aarch64 (tests/tests/fsx.rs) crashes early in its own code (a freed pointer of 4);
    // it passes under qemu-aarch64 on Linux. With today's call, a busy loop of 20 000 or
    // 3 000 000 iterations here does not bring the crash back (fsx passed on all three
    // roots), so it is not a plain delay; the cause is not found.
    #[cfg(feature = "fs")]
    {
        // `[stack]`: the thread's stack, or the heap block the program runs on.
        #[cfg(feature = "threads")]
        let stack = libos::thread::current_stack_bounds().map_or(stack, |(bottom, top)| (bottom as u64, top as u64));
        crate::procview::program_started(core::mem::take(&mut program.executable), stack, sp);
    }
    let frame = Frame::new_entry(program.entry, sp);
    // SAFETY: `program.entry` is the program's `_start` (musl's, linked into the image, or a
    // loaded ELF file's, mapped executable); `sp` points at the initial stack built above, in
    // memory that stays alive (this frame never returns, or the heap block is never freed).
    unsafe { entry.enter(&frame) }
}

fn program_headers() -> *const ProgramHeader {
    // SAFETY: linker-script symbols: the address of the TLS template and three sizes.
    let (tls_start, [file_size, mem_size, align]) = unsafe { (&raw const __libos_tls_start as u64, __libos_tls_sizes) };
    let tls = ProgramHeader {
        p_type: if mem_size == 0 { PT_GNU_STACK } else { PT_TLS },
        p_flags: 4,
        p_vaddr: tls_start,
        p_paddr: tls_start,
        p_filesz: file_size,
        p_memsz: mem_size,
        p_align: align.max(1),
        ..ProgramHeader::default()
    };
    let stack = ProgramHeader { p_type: PT_GNU_STACK, p_flags: 6, p_memsz: 0, ..ProgramHeader::default() };
    let table = &raw mut PROGRAM_HEADERS;
    // SAFETY: written once, before the program (the only reader) starts.
    unsafe {
        (*table)[0] = tls;
        (*table)[1] = stack;
    }
    table.cast::<ProgramHeader>()
}

#[cfg(not(target_arch = "aarch64"))]
fn hwcap() -> u64 {
    // AT_HWCAP on x86_64: CPUID leaf 1's EDX feature bits.
    u64::from(core::arch::x86_64::__cpuid(1).edx)
}

#[cfg(target_arch = "aarch64")]
fn hwcap() -> u64 {
    const HWCAP_FP: u64 = 1 << 0;
    const HWCAP_ASIMD: u64 = 1 << 1;
    HWCAP_FP | HWCAP_ASIMD
}

/// Fills `out` with random bytes that never block: the kernel's generator
/// ([`libos::random::fill_insecure`]), seeded by virtio-rng or the CPU's instruction where the
/// machine has one (as Linux's `get_random_bytes` for `AT_RANDOM`: a program must start even
/// before the pool is seeded).
pub fn random_bytes(out: &mut [u8]) {
    libos::random::fill_insecure(out);
}
