//! x87/SSE/AVX state: switched on at boot, saved and restored around a preemption.
//!
//! The kernel is built for `x86_64-unknown-none`, which never emits x87/SSE instructions, so
//! kernel code leaves the FP/SIMD registers alone. C code (posix-shim) is compiled for Linux and
//! uses SSE freely. So:
//!
//! - [`init`] (boot) enables SSE: CR0.EM clear, CR0.MP set, CR4.OSFXSR and CR4.OSXMMEXCPT set;
//!   where the CPU has XSAVE also CR4.OSXSAVE and XCR0 = x87 | SSE, plus AVX and AVX-512 state
//!   when supported. It then loads the default x87 control word and MXCSR.
//! - A **preempted** thread can be stopped between any two instructions, with live values in
//!   every register: the preemption path (src/context.rs) saves the whole state with
//!   [`save`] (XSAVE where available, else FXSAVE) into an area on the thread's own stack and
//!   restores it with [`restore`] when the thread resumes.
//! - A **voluntary** switch is a function call: the SysV ABI makes all vector registers and the
//!   x87/MXCSR status flags caller-saved, so only the callee-saved control words (x87 FCW and
//!   MXCSR control bits) are switched, by the switch routine itself (two stores, two loads).

use crate::cpu;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::xcontrol::{XCr0, XCr0Flags};

/// Alignment of a save area (XSAVE needs 64, FXSAVE 16).
pub const AREA_ALIGN: usize = 64;
/// The x87 control word after `fninit` (all exceptions masked, 64-bit precision, round to nearest).
pub const DEFAULT_FCW: u16 = 0x037f;
/// MXCSR at reset (all exceptions masked, round to nearest).
pub const DEFAULT_MXCSR: u32 = 0x1f80;

/// Bytes of a save area: 512 (FXSAVE) or what CPUID leaf 0xD reports for the enabled XCR0.
static AREA_SIZE: AtomicUsize = AtomicUsize::new(512);
static USE_XSAVE: AtomicBool = AtomicBool::new(false);

/// CPUID.1:ECX bits.
const CPUID_XSAVE: u32 = 1 << 26;
const CPUID_AVX: u32 = 1 << 28;

/// Enables the FPU, SSE and (where present) XSAVE-managed state; loads default control words.
pub fn init() {
    // SAFETY: EM clear / MP set / TS clear is the documented setting for an OS that runs SSE
    // code natively; it changes no memory.
    unsafe {
        Cr0::update(|flags| {
            flags.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            flags.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
    }
    let basic = cpu::cpuid(1, 0);
    // XSAVE needs leaf 0xD to size its area and to say which components exist; some CPU models
    // report the XSAVE bit with a lower maximum leaf: FXSAVE then.
    let xsave = basic.ecx & CPUID_XSAVE != 0 && cpu::cpuid(0, 0).eax >= 0xd && {
        let supported = u64::from(cpu::cpuid(0xd, 0).eax);
        let base = (XCr0Flags::X87 | XCr0Flags::SSE).bits();
        supported & base == base
    };
    // SAFETY: OSFXSR/OSXMMEXCPT declare that the OS saves SSE state (it does: `save`) and
    // handles #XM (a fatal exception report); OSXSAVE only when the CPU has XSAVE.
    unsafe {
        Cr4::update(|flags| {
            flags.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
            if xsave {
                flags.insert(Cr4Flags::OSXSAVE);
            }
        });
    }
    if xsave {
        let supported = u64::from(cpu::cpuid(0xd, 0).eax);
        let mut wanted = XCr0Flags::X87 | XCr0Flags::SSE;
        if basic.ecx & CPUID_AVX != 0 {
            wanted |= XCr0Flags::AVX;
            let avx512 = XCr0Flags::OPMASK | XCr0Flags::ZMM_HI256 | XCr0Flags::HI16_ZMM;
            if supported & avx512.bits() == avx512.bits() {
                wanted |= avx512;
            }
        }
        // SAFETY: CR4.OSXSAVE is set; every bit written is one the CPU reports as supported
        // (AVX-512 only as the complete set, and only with AVX), as XSETBV requires.
        unsafe { XCr0::write_raw(wanted.bits() & supported) };
        // EBX: the save-area size for the components now enabled in XCR0.
        AREA_SIZE.store(cpu::cpuid(0xd, 0).ebx as usize, Ordering::Relaxed);
        USE_XSAVE.store(true, Ordering::Relaxed);
    }
    let mxcsr = DEFAULT_MXCSR;
    // SAFETY: SSE is enabled above; FNINIT resets the x87 unit, LDMXCSR loads a valid value.
    unsafe { core::arch::asm!("fninit", "ldmxcsr [{}]", in(reg) &mxcsr, options(nostack, readonly)) };
}

/// Bytes [`save`] writes (a multiple of 64).
pub fn area_size() -> usize {
    AREA_SIZE.load(Ordering::Relaxed).next_multiple_of(AREA_ALIGN)
}

/// Saves the x87/SSE/AVX state into `area`.
///
/// # Safety
/// `area` is [`AREA_ALIGN`]-aligned and valid for writes of [`area_size`] bytes; [`init`] ran.
pub unsafe fn save(area: *mut u8) {
    if USE_XSAVE.load(Ordering::Relaxed) {
        // XSAVE's header (bytes 512..576) must start zeroed for XRSTOR to accept the area;
        // XSAVE writes XSTATE_BV but leaves XCOMP_BV and the reserved bytes as they are.
        // SAFETY: inside the area (the caller's contract; XSAVE areas are at least 576 bytes).
        unsafe { core::ptr::write_bytes(area.add(512), 0, 64) };
        // SAFETY: the caller's contract; EDX:EAX = all ones saves every component XCR0 enables.
        unsafe { core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack)) };
    } else {
        // SAFETY: the caller's contract (512 bytes, 16-byte aligned).
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack)) };
    }
}

/// Restores the state [`save`] wrote into `area`.
///
/// # Safety
/// `area` holds a state written by [`save`] and is still valid.
pub unsafe fn restore(area: *const u8) {
    if USE_XSAVE.load(Ordering::Relaxed) {
        // SAFETY: the caller's contract; the mask restores every enabled component.
        unsafe { core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack, readonly)) };
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack, readonly)) };
    }
}

/// The MXCSR bits the CPU accepts when the FXSAVE image says nothing (SDM: MXCSR_MASK 0 means
/// 0xffbf).
const DEFAULT_MXCSR_MASK: u32 = 0xffbf;

/// Restores a state that Linux code may have edited (a signal frame's FP area, given back by
/// `rt_sigreturn`): the bits FXRSTOR/XRSTOR would fault on are cleared first, in a copy, so a
/// bad frame gives odd FP values, never a #GP in the kernel.
///
/// # Safety
/// `area` is valid for reads of [`area_size`] bytes (any alignment); [`init`] ran.
pub unsafe fn restore_untrusted(area: *const u8) {
    #[repr(C, align(64))]
    struct Copy([u8; libos_core::syscall::FP_STATE_MAX]);
    let size = area_size();
    let mut copy = Copy([0; libos_core::syscall::FP_STATE_MAX]);
    // SAFETY: the caller's contract for `area`; `copy` is FP_STATE_MAX >= `size` bytes
    // (checked when the trap was installed).
    unsafe { core::ptr::copy_nonoverlapping(area, copy.0.as_mut_ptr(), size.min(copy.0.len())) };
    let bytes = &mut copy.0;
    let word = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    // FXSAVE layout: MXCSR at 24, MXCSR_MASK at 28.
    let mask = match word(bytes, 28) {
        0 => DEFAULT_MXCSR_MASK,
        m => m & 0xffff,
    };
    let mxcsr = word(bytes, 24) & mask;
    bytes[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    if USE_XSAVE.load(Ordering::Relaxed) {
        // XSAVE header at 512: XSTATE_BV may name only enabled components, XCOMP_BV must be
        // zero for the standard format, the rest of the header is reserved (zero).
        let enabled = XCr0::read_raw();
        let bv = u64::from_le_bytes(bytes[512..520].try_into().unwrap_or([0; 8])) & enabled;
        bytes[512..520].copy_from_slice(&bv.to_le_bytes());
        bytes[520..576].fill(0);
    }
    // SAFETY: `copy` now holds a state XRSTOR/FXRSTOR accepts, aligned as they need.
    unsafe { restore(copy.0.as_ptr()) };
}
