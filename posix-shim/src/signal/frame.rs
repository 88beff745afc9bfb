//! Linux signal frames: what a handler finds on its stack, and what `rt_sigreturn` reads back.
//!
//! The layouts are Linux's own for the architecture (`struct rt_sigframe`, `ucontext_t`,
//! `siginfo_t`; x86_64 `struct sigcontext` with a pointer to the `XSAVE`/`FXSAVE` image;
//! aarch64 `struct sigcontext` with an `fpsimd_context` record in `__reserved`), so C code that
//! reads its context (`uc_mcontext`, `si_pid`) works unmodified.
//!
//! **Where the frame goes.** On Linux the frame lies right below the interrupted stack pointer
//! (below the 128-byte red zone on x86_64), or at the top of the alternate stack. Here the
//! kernel itself runs on the program's stack, below that pointer: the trap's register frame
//! and the return hook's own calls live there while the signal frame is written. So the frame
//! goes below the writer's current stack pointer (with a gap for the calls it makes) whenever
//! that is lower than Linux's place; the bytes in between are dead once the handler runs.

use super::{AltStack, Origin};
use crate::user;
use libos::syscall::Frame;
use libos::{Errno, Result};

/// What the handler is entered with.
pub(super) struct Delivery {
    pub sig: u64,
    /// Its `siginfo_t`.
    pub info: SigInfo,
    /// Entered as `handler(sig, &info, &ucontext)`; a one-argument handler ignores the rest.
    pub handler: u64,
    /// `sa_restorer` when `SA_RESTORER` was given.
    pub restorer: Option<u64>,
    /// The thread's alternate stack (reported in `uc_stack` whatever the handler's flags).
    pub altstack: AltStack,
    /// Run on it (`SA_ONSTACK` and one is set up).
    pub on_altstack: bool,
    /// The mask `rt_sigreturn` restores.
    pub mask: u64,
}

/// What `rt_sigreturn` found in the frame besides the registers.
pub(super) struct Restored {
    pub mask: u64,
    pub altstack: AltStack,
}

/// `siginfo_t` (128 bytes): `si_signo`, `si_errno`, `si_code`, then at offset 16 the fields
/// `si_code` selects: `si_pid`, `si_uid` (`kill`, `tgkill`, the kernel); `si_timerid`,
/// `si_overrun`, `si_value` (a POSIX timer).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct SigInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    /// `si_pid` or `si_timerid`.
    first: i32,
    /// `si_uid` or `si_overrun`.
    second: i32,
    /// `si_value` of a timer.
    value: u64,
    _rest: [u8; 96],
}

const _: () = assert!(size_of::<SigInfo>() == 128);

/// The `siginfo_t` of signal `sig` from `origin`; `overrun` is a timer's `si_overrun`.
pub(super) fn siginfo(sig: u64, origin: Origin, overrun: i32) -> SigInfo {
    let (first, second, value) = match origin {
        Origin::User | Origin::Tkill => (crate::process::pid() as i32, 0, 0),
        Origin::Process { from } => (from as i32, 0, 0),
        Origin::Kernel => (0, 0, 0),
        Origin::Timer { id, value } => (id, overrun, value),
        // `si_pid`, `si_uid`, then `si_status` where a timer's value starts.
        Origin::Child { pid, status, .. } => (pid as i32, 0, status as u32 as u64),
    };
    SigInfo { signo: sig as i32, errno: 0, code: origin.code(), _pad: 0, first, second, value, _rest: [0; 96] }
}

/// Bytes left free below the writer's stack pointer for the calls it makes while it writes
/// the frame (they use a few hundred bytes).
const WRITER_GAP: u64 = 4096;

/// The current stack pointer.
fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: reads a register; no memory or flags change.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// The highest address a frame on the stack the kernel runs on may reach: Linux's place
/// (`natural_top`), or below the writer's own stack use when that is lower.
fn frame_top(natural_top: u64) -> u64 {
    natural_top.min(stack_pointer().saturating_sub(WRITER_GAP))
}

/// `addr - bytes` for a frame growing down from a program-supplied stack pointer: `EFAULT`
/// when that would leave the address space (the program's stack pointer is garbage).
fn below(addr: u64, bytes: u64) -> Result<u64> {
    addr.checked_sub(bytes).ok_or(Errno::EFAULT)
}

/// Copies `value` to user memory at `addr` (already range-checked by the caller).
///
/// # Safety
/// `addr..addr + size_of::<T>()` is writable memory the program gave up (below its stack
/// pointer or on its alternate stack) that nothing else uses.
unsafe fn put<T: Copy>(addr: u64, value: &T) {
    // SAFETY: the caller's contract; unaligned writes are fine for plain data.
    unsafe { core::ptr::write_unaligned(addr as *mut T, *value) };
}

/// The shim's own `rt_sigreturn` trampoline, the return address of handlers installed without
/// `SA_RESTORER` (glibc on aarch64 relies on the vDSO's, which libos has not).
mod trampoline {
    #[cfg(target_arch = "x86_64")]
    core::arch::global_asm!(
        ".section .text.posix_shim_sigreturn, \"ax\"",
        ".global posix_shim_sigreturn",
        "posix_shim_sigreturn:",
        "mov eax, 15", // rt_sigreturn
        "syscall",
        "ud2",
    );
    #[cfg(target_arch = "aarch64")]
    core::arch::global_asm!(
        ".section .text.posix_shim_sigreturn, \"ax\"",
        ".balign 4",
        ".global posix_shim_sigreturn",
        "posix_shim_sigreturn:",
        "mov x8, #139", // rt_sigreturn
        "svc #0",
        "brk #0",
    );
    unsafe extern "C" {
        pub fn posix_shim_sigreturn();
    }

    pub fn address() -> u64 {
        posix_shim_sigreturn as *const () as u64
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::*;

    /// `struct sigcontext` (x86_64).
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct SigContext {
        pub r8: u64,
        pub r9: u64,
        pub r10: u64,
        pub r11: u64,
        pub r12: u64,
        pub r13: u64,
        pub r14: u64,
        pub r15: u64,
        pub rdi: u64,
        pub rsi: u64,
        pub rbp: u64,
        pub rbx: u64,
        pub rdx: u64,
        pub rax: u64,
        pub rcx: u64,
        pub rsp: u64,
        pub rip: u64,
        pub eflags: u64,
        pub cs_gs_fs_ss: u64,
        pub err: u64,
        pub trapno: u64,
        pub oldmask: u64,
        pub cr2: u64,
        pub fpstate: u64,
        pub reserved: [u64; 8],
    }

    /// `struct ucontext` as the x86_64 kernel writes it (the 8-byte kernel `sigset_t`).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct UContext {
        pub flags: u64,
        pub link: u64,
        pub stack: AltStack,
        pub mcontext: SigContext,
        pub sigmask: u64,
    }

    /// `struct rt_sigframe`: the return address the handler's `ret` pops, then the context.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct RtSigframe {
        pub pretcode: u64,
        pub uc: UContext,
        pub info: SigInfo,
    }

    const _: () = assert!(size_of::<SigContext>() == 256);
    const _: () = assert!(size_of::<UContext>() == 304);
    const _: () = assert!(size_of::<RtSigframe>() == 440);

    /// `UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS`, as Linux sets them.
    const UC_FLAGS: u64 = 0x2 | 0x4;
    /// The flags a program may change through its frame: CF, PF, AF, ZF, SF, DF, OF (not TF,
    /// IF or IOPL: the program runs in ring 0 here).
    const USER_FLAGS: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x400 | 0x800;
    /// TF and DF, cleared for the handler (as Linux does).
    const CLEARED_FOR_HANDLER: u64 = 0x100 | 0x400;
    /// The code segment selector the program runs with (gdt.rs), reported in `cs`.
    const KERNEL_CS: u64 = 0x08;

    pub fn enter_handler(frame: &mut Frame, d: &Delivery, entry: &dyn libos::syscall::UserEntry) -> Result<()> {
        let top = if d.on_altstack && !d.altstack.contains(frame.rsp) {
            d.altstack.sp + d.altstack.size // another stack: nothing of ours lives there
        } else {
            frame_top(below(frame.rsp, 128)?) // below the red zone, and below the kernel's own use
        };
        let fpstate = below(top, entry.fp_state_size() as u64)? & !63;
        let at = below(below(fpstate, size_of::<RtSigframe>() as u64)? & !15, 8)?; // as after a `call`
        user::check_access(at, top - at, libos::hal::Access::Write)?;
        let mcontext = SigContext {
            r8: frame.r8,
            r9: frame.r9,
            r10: frame.r10,
            r12: frame.r12,
            r13: frame.r13,
            r14: frame.r14,
            r15: frame.r15,
            rdi: frame.rdi,
            rsi: frame.rsi,
            rbp: frame.rbp,
            rbx: frame.rbx,
            rdx: frame.rdx,
            rax: frame.rax,
            rcx: frame.rcx, // after a system call: the return address and flags, as `syscall` left them
            r11: frame.r11,
            rsp: frame.rsp,
            rip: frame.rip,
            eflags: frame.rflags,
            cs_gs_fs_ss: KERNEL_CS,
            oldmask: d.mask,
            fpstate,
            ..SigContext::default()
        };
        let sigframe = RtSigframe {
            pretcode: d.restorer.unwrap_or_else(trampoline::address),
            uc: UContext {
                flags: UC_FLAGS,
                link: 0,
                stack: d.altstack.as_seen_from(frame.rsp),
                mcontext,
                sigmask: d.mask,
            },
            info: d.info,
        };
        // SAFETY: the range is checked, below everything live (frame_top), 64-byte aligned
        // for the FP image; the platform saves the program's FP state, untouched by the
        // kernel, straight into it.
        unsafe {
            entry.save_fp_state(fpstate as *mut u8);
            put(at, &sigframe);
        }
        let info = at + core::mem::offset_of!(RtSigframe, info) as u64;
        let uc = at + core::mem::offset_of!(RtSigframe, uc) as u64;
        frame.rsp = at;
        frame.rip = d.handler;
        frame.rdi = d.sig;
        frame.rsi = info;
        frame.rdx = uc;
        frame.rax = 0;
        frame.rflags &= !CLEARED_FOR_HANDLER;
        Ok(())
    }

    pub fn restore(frame: &mut Frame, entry: &dyn libos::syscall::UserEntry) -> Result<Restored> {
        // The handler's `ret` popped `pretcode`: the frame starts 8 bytes below.
        let at = frame.rsp.checked_sub(8).ok_or(Errno::EFAULT)?;
        // SAFETY: range-checked by `user::read`.
        let uc: UContext = unsafe { user::read(at.checked_add(core::mem::offset_of!(RtSigframe, uc) as u64).ok_or(Errno::EFAULT)?)? };
        let m = &uc.mcontext;
        if m.fpstate != 0 {
            user::check_access(m.fpstate, entry.fp_state_size() as u64, libos::hal::Access::Read)?;
            // SAFETY: range-checked; the platform sanitizes what the CPU would refuse.
            unsafe { entry.restore_fp_state(m.fpstate as *const u8) };
        }
        frame.r8 = m.r8;
        frame.r9 = m.r9;
        frame.r10 = m.r10;
        frame.r12 = m.r12;
        frame.r13 = m.r13;
        frame.r14 = m.r14;
        frame.r15 = m.r15;
        frame.rdi = m.rdi;
        frame.rsi = m.rsi;
        frame.rbp = m.rbp;
        frame.rbx = m.rbx;
        frame.rdx = m.rdx;
        frame.rax = m.rax;
        frame.rcx = m.rcx;
        frame.r11 = m.r11;
        frame.rsp = m.rsp;
        frame.rip = m.rip;
        frame.rflags = (frame.rflags & !USER_FLAGS) | (m.eflags & USER_FLAGS);
        Ok(Restored { mask: uc.sigmask, altstack: uc.stack })
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::*;

    /// `struct sigcontext` (aarch64) without its 4096-byte `__reserved` area.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct SigContextHead {
        pub fault_address: u64,
        pub regs: [u64; 31],
        pub sp: u64,
        pub pc: u64,
        pub pstate: u64,
        _pad: u64,
    }

    /// `struct ucontext` up to `uc_mcontext` (aarch64: the sigmask is padded to 128 bytes and
    /// `uc_mcontext` is 16-byte aligned).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct UContextHead {
        pub flags: u64,
        pub link: u64,
        pub stack: AltStack,
        pub sigmask: u64,
        _unused: [u8; 120],
        _align: u64,
    }

    /// Bytes of `struct sigcontext`'s `__reserved` (records: `fpsimd_context`, then a null one).
    const RESERVED: u64 = 4096;
    /// `struct rt_sigframe`: `siginfo_t`, then `ucontext_t`.
    const UC_OFFSET: u64 = 128;
    const MCONTEXT_OFFSET: u64 = UC_OFFSET + size_of::<UContextHead>() as u64;
    const RESERVED_OFFSET: u64 = MCONTEXT_OFFSET + size_of::<SigContextHead>() as u64;
    const FRAME_SIZE: u64 = RESERVED_OFFSET + RESERVED;
    /// `fpsimd_context`: header (magic, size), fpsr, fpcr, 32 vector registers.
    const FPSIMD_MAGIC: u32 = 0x4650_8001;
    const FPSIMD_SIZE: u32 = 528;
    /// The PSTATE bits a program may change through its frame: NZCV.
    const USER_PSTATE: u64 = 0xf000_0000;

    const _: () = assert!(size_of::<UContextHead>() == 176);
    const _: () = assert!(size_of::<SigContextHead>() == 288);
    const _: () = assert!(FRAME_SIZE == 4688);

    pub fn enter_handler(frame: &mut Frame, d: &Delivery, entry: &dyn libos::syscall::UserEntry) -> Result<()> {
        let top = if d.on_altstack && !d.altstack.contains(frame.sp) {
            d.altstack.sp + d.altstack.size // another stack: nothing of ours lives there
        } else {
            frame_top(frame.sp) // below the kernel's own use of this stack
        } & !15;
        let record = below(top, 16)?; // frame record {x29, x30}, as Linux links it
        let at = below(record, FRAME_SIZE)? & !15;
        user::check_access(at, top - at, libos::hal::Access::Write)?;
        let head = UContextHead {
            flags: 0,
            link: 0,
            stack: d.altstack.as_seen_from(frame.sp),
            sigmask: d.mask,
            _unused: [0; 120],
            _align: 0,
        };
        let mcontext = SigContextHead { fault_address: 0, regs: frame.x, sp: frame.sp, pc: frame.pc, pstate: frame.pstate, _pad: 0 };
        let reserved = at + RESERVED_OFFSET;
        // SAFETY: the range is checked and below everything live (frame_top); the platform
        // saves the program's FP state (untouched by the kernel) into the fpsimd record body.
        unsafe {
            put(at, &d.info);
            put(at + UC_OFFSET, &head);
            put(at + MCONTEXT_OFFSET, &mcontext);
            put(reserved, &[FPSIMD_MAGIC, FPSIMD_SIZE]);
            entry.save_fp_state((reserved + 8) as *mut u8);
            put(reserved + u64::from(FPSIMD_SIZE), &[0u32, 0u32]); // the terminating record
            put(record, &[frame.x[29], frame.x[30]]);
        }
        frame.sp = at;
        frame.pc = d.handler;
        frame.x[0] = d.sig;
        frame.x[1] = at;
        frame.x[2] = at + UC_OFFSET;
        frame.x[29] = record;
        frame.x[30] = d.restorer.unwrap_or_else(trampoline::address);
        Ok(())
    }

    pub fn restore(frame: &mut Frame, entry: &dyn libos::syscall::UserEntry) -> Result<Restored> {
        let at = frame.sp;
        // Every offset below stays inside a range checked first (no wrap-around).
        user::check_access(at, FRAME_SIZE, libos::hal::Access::Write)?;
        // SAFETY: range-checked by `user::read`.
        let head: UContextHead = unsafe { user::read(at + UC_OFFSET)? };
        // SAFETY: as above.
        let m: SigContextHead = unsafe { user::read(at + MCONTEXT_OFFSET)? };
        // Walk the records for fpsimd_context (Linux ignores unknown ones it can skip).
        let reserved = at + RESERVED_OFFSET;
        let mut offset = 0u64;
        while offset + 8 <= RESERVED {
            // SAFETY: as above.
            let [magic, size]: [u32; 2] = unsafe { user::read(reserved + offset)? };
            if magic == 0 || size < 8 || u64::from(size) > RESERVED - offset {
                break;
            }
            if magic == FPSIMD_MAGIC && size >= FPSIMD_SIZE {
                user::check_access(reserved + offset + 8, entry.fp_state_size() as u64, libos::hal::Access::Read)?;
                // SAFETY: range-checked; every FPSR/FPCR value is accepted by the CPU.
                unsafe { entry.restore_fp_state((reserved + offset + 8) as *const u8) };
            }
            offset += u64::from(size).next_multiple_of(16);
        }
        frame.x = m.regs;
        frame.sp = m.sp;
        frame.pc = m.pc;
        frame.pstate = (frame.pstate & !USER_PSTATE) | (m.pstate & USER_PSTATE);
        Ok(Restored { mask: head.sigmask, altstack: head.stack })
    }
}

/// Redirects `frame` into the handler of `d` with a signal frame written for it.
pub(super) fn enter_handler(frame: &mut Frame, d: &Delivery) -> Result<()> {
    let entry = libos::syscall::user_entry().ok_or(Errno::ENOSYS)?;
    arch::enter_handler(frame, d, entry)
}

/// Restores `frame` (every register and the FP state) from the signal frame at its stack
/// pointer, as `rt_sigreturn` does.
pub(super) fn restore(frame: &mut Frame) -> Result<Restored> {
    let entry = libos::syscall::user_entry().ok_or(Errno::ENOSYS)?;
    arch::restore(frame, entry)
}
