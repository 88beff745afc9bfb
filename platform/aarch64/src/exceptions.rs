//! The exception handler: IRQs (the timer) and the fatal-exception report.
//!
//! Every vector (src/boot.s) saves all general and FP/SIMD registers as a [`TrapFrame`] on the
//! exception stack (SP_EL1; the kernel runs on SP_EL0) and calls [`libos_aarch64_trap`] with
//! the vector's kind. IRQs are acknowledged at the running CPU's GIC interface; the timer's
//! calls [`libos_core::hal::irq::timer_interrupt`], the inter-processor interrupt's
//! [`libos_core::cpus::handle_ipi`], and any of them may end in a preemption of the thread it
//! interrupted (requested for this CPU). Synchronous exceptions are fatal, except the
//! probe for semihosting (src/semihosting.rs): they print a report (exception class decoded,
//! ESR/ELR/FAR, the fault explained, whether it hit a stack's guard page, registers, a
//! frame-pointer backtrace) and power off with [`libos_core::exit::FATAL_EXCEPTION`].

use crate::cpu::read_sysreg;
use crate::esr::{self, Abort};
use crate::{context, gic, semihosting, shutdown, stacks, timer};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use libos_core::console::emergency_print;
use libos_core::hal::irq;

/// The registers saved on exception entry (src/boot.s `trap_common`).
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub sp_el0: u64,
    pub elr: u64,
    pub spsr: u64,
    pub q: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

const _: () = assert!(size_of::<TrapFrame>() == 800);

const SYNC: u64 = 0;
const IRQ: u64 = 1;

/// The virtual timer's interrupt ID (from the DTB).
static TIMER_INTID: AtomicU32 = AtomicU32::new(27);
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Records which interrupt is the timer's.
pub fn set_timer_intid(intid: u32) {
    TIMER_INTID.store(intid, Ordering::Relaxed);
}

/// Called by the vectors with the kind (0-3: sync/IRQ/FIQ/SError from the kernel; 4-7: the
/// same while handling an exception; 8-15: from a lower EL) and the saved registers.
#[unsafe(no_mangle)]
extern "C" fn libos_aarch64_trap(kind: u64, frame: &mut TrapFrame) {
    if kind == IRQ {
        let interrupt = gic::acknowledge();
        let intid = interrupt.id;
        if intid == gic::SPURIOUS {
            return;
        }
        if intid == TIMER_INTID.load(Ordering::Relaxed) {
            timer::disarm();
            gic::end(interrupt);
            irq::timer_interrupt();
        } else if intid == gic::IPI {
            // The mailbox is read after the end of interrupt, so a call posted after that
            // read raises the interrupt anew and is served by the next one.
            gic::end(interrupt);
            libos_core::cpus::handle_ipi();
        } else {
            // The driver acknowledges at the device first, so a level-triggered line is quiet
            // by the end of interrupt.
            if !libos_core::device::device_interrupt(intid) {
                log::warn!("interrupt {intid} has no handler");
            }
            gic::end(interrupt);
        }
        // Kind 1 is an IRQ taken in thread mode (EL1t): a requested preemption happens on the
        // thread's own stack after this handler returns (src/context.rs). An IPI may carry
        // nothing but such a request (`irq::request_preemption_on` from another CPU).
        if irq::take_preemption_request() && !context::redirect_to_preempt(frame) {
            irq::request_preemption();
        }
        return;
    }
    let esr = read_sysreg!("esr_el1");
    if kind == SYNC && semihosting::handle_missing(esr, frame) {
        return;
    }
    fatal(kind, esr, frame);
}

const KINDS: [&str; 4] = ["synchronous exception", "IRQ", "FIQ", "SError"];

fn fatal(kind: u64, esr: u64, frame: &TrapFrame) -> ! {
    let far = read_sysreg!("far_el1");
    let reporting = REPORTING.swap(true, Ordering::SeqCst);
    if reporting || kind >= 4 {
        let during = if reporting { "reporting a crash" } else { "handling an exception" };
        emergency_print(format_args!(
            "\nlibos: another exception while {during}: {} ({}) ESR {esr:#x} ELR {:#x} FAR {far:#x}\n",
            KINDS[(kind & 3) as usize],
            esr::class_name(esr::class(esr)),
            frame.elr
        ));
        shutdown::power_off(libos_core::exit::FATAL_EXCEPTION);
    }
    let ec = esr::class(esr);
    if kind == SYNC {
        emergency_print(format_args!(
            "\nlibos: fatal exception: {} (EC {ec:#04x}) ESR {esr:#x}\n",
            esr::class_name(ec)
        ));
    } else {
        let from = if kind >= 8 { " from a lower exception level" } else { "" };
        emergency_print(format_args!("\nlibos: fatal exception: unexpected {}{from} ESR {esr:#x}\n", KINDS[(kind & 3) as usize]));
    }
    if let Some(abort) = Abort::decode(esr).filter(|_| kind == SYNC && Abort::far_valid(esr)) {
        let (access, what) = abort.describe();
        let level = abort.level().map(|l| LEVELS[l as usize]).unwrap_or("");
        emergency_print(format_args!(
            "  page fault at address {far:#x}: {access} {what} in kernel mode ({}{level})\n",
            abort.status_name()
        ));
        if let Some(stack) = stacks::guarded_by(far) {
            emergency_print(format_args!("  stack overflow: the address is in the guard page below the {stack} stack\n"));
        } else if let Some((cpu, stack)) = crate::smp::guarded_by(far) {
            emergency_print(format_args!("  stack overflow: the address is in the guard page below CPU {cpu}'s {stack} stack\n"));
        } else if let Some(report) = crate::guard::REPORTER.get() {
            report(far);
        }
    }
    emergency_print(format_args!(
        "  elr {:#018x} sp {:#018x} spsr {:#x} far {far:#x}\n",
        frame.elr, frame.sp_el0, frame.spsr
    ));
    for row in 0..8 {
        let mut line = [0u64; 4];
        let count = if row == 7 { 3 } else { 4 };
        line[..count].copy_from_slice(&frame.x[row * 4..row * 4 + count]);
        emergency_print(format_args!("  "));
        for (i, value) in line[..count].iter().enumerate() {
            let n = row * 4 + i;
            emergency_print(format_args!("x{n:<2} {value:#018x} "));
        }
        emergency_print(format_args!("\n"));
    }
    stacks::print_backtrace(frame.elr, frame.x[29]);
    // The image is linked at 0; runners subtract this to find symbols (`./x run` does).
    emergency_print(format_args!("  image loaded at {:#x} (linked at 0)\n", crate::boot::image_start()));
    shutdown::power_off(libos_core::exit::FATAL_EXCEPTION);
}

const LEVELS: [&str; 4] = [", level 0", ", level 1", ", level 2", ", level 3"];
