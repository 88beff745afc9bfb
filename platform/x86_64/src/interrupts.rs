//! The IDT, the common trap handler, and the fatal-exception report.
//!
//! Every vector has a 16-byte assembly stub (src/boot.s) that pushes the vector number (and a
//! dummy error code where the CPU pushes none) and jumps to one common routine that saves all
//! registers as a [`TrapFrame`] and calls [`libos_x86_64_trap`]. CPU exceptions are fatal: they
//! print a report (vector, error code, registers, CR2, a frame-pointer backtrace, and whether the
//! fault hit a stack's guard page) and power off with [`libos_core::exit::FATAL_EXCEPTION`].
//!
//! # Stacks: every entry on an IST stack
//! Code compiled for Linux (C through posix-shim) keeps live data in the 128 bytes below its
//! stack pointer (the System V red zone), and an interrupt at the same privilege level would
//! have the CPU push its frame right there *before* any of our code runs; skipping the red zone
//! in the stub is too late. So every gate names an IST slot (src/gdt.rs) and the CPU switches
//! stacks first: device and timer interrupts (32-255) run on the interrupt stack, #DF, NMI/#MC
//! and all other exceptions on their own stacks. Interrupt gates mask interrupts, so an IST
//! stack is never re-entered by an interrupt; an exception inside a handler uses another stack
//! (exceptions are fatal, and one during a report stops at once).
//!
//! # Preemption from an interrupt
//! The interrupt stack is shared, so a thread cannot be switched out on it. When a handler
//! asked for preemption, [`crate::context::redirect_to_preempt`] moves the frame (and the
//! FP/SIMD state) onto the interrupted thread's own stack, below its red zone, and makes the
//! `iretq` enter a trampoline there that lets the scheduler switch away; when the thread is
//! resumed the trampoline restores everything and `iretq`s to the interrupted instruction.

use crate::{apic, context, gdt, shutdown};
use core::sync::atomic::{AtomicBool, Ordering};
use libos_core::console::emergency_print;
use libos_core::hal::irq;
use spin::Once;
use x86_64::registers::control::Cr2;

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0x30;
/// Vector of spurious local APIC interrupts (must end in 0xf on old APICs).
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// Vector of the inter-processor interrupt of `libos_core::cpus::run_on`.
pub const IPI_VECTOR: u8 = 0xf0;

const NMI: u64 = 2;
const DOUBLE_FAULT: u64 = 8;
const PAGE_FAULT: u64 = 14;
const MACHINE_CHECK: u64 = 18;

/// The registers saved on trap entry, in stack order (src/boot.s `trap_common`).
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[repr(C, align(16))]
struct Idt([u128; 256]);

static IDT: Once<Idt> = Once::new();

unsafe extern "C" {
    static libos_x86_64_trap_stubs: u8;
}

fn gate(handler: u64, ist: u16) -> u128 {
    const KERNEL_CODE: u128 = 0x08;
    const PRESENT_INTERRUPT_GATE: u128 = 0x8e;
    let handler = u128::from(handler);
    (handler & 0xffff)
        | (KERNEL_CODE << 16)
        | (u128::from(ist) << 32)
        | (PRESENT_INTERRUPT_GATE << 40)
        | (((handler >> 16) & 0xffff) << 48)
        | ((handler >> 32) << 64)
}

/// Builds and loads the IDT.
pub fn init() {
    let idt = IDT.call_once(|| {
        let stubs = (&raw const libos_x86_64_trap_stubs) as u64;
        let mut idt = Idt([0; 256]);
        for (vector, entry) in idt.0.iter_mut().enumerate() {
            let ist = match vector as u64 {
                DOUBLE_FAULT => gdt::IST_DOUBLE_FAULT,
                NMI | MACHINE_CHECK => gdt::IST_NMI,
                0..32 => gdt::IST_FAULT,
                _ => gdt::IST_INTERRUPT,
            };
            *entry = gate(stubs + 16 * vector as u64, ist);
        }
        idt
    });
    load_idt(idt);
}

/// Loads the IDT [`init`] built on this (secondary) CPU: every CPU shares it.
#[cfg(feature = "smp")]
pub fn load() {
    if let Some(idt) = IDT.get() {
        load_idt(idt);
    }
}

fn load_idt(idt: &'static Idt) {
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: x86_64::VirtAddr::new(idt as *const Idt as u64),
    };
    // SAFETY: the IDT lives in a static forever and every gate points at a stub in src/boot.s
    // that ends in `trap_common`, which saves and restores all registers around the handler.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

/// Entered from `trap_common` with interrupts masked.
#[unsafe(no_mangle)]
extern "C" fn libos_x86_64_trap(frame: &mut TrapFrame) {
    crate::pages::leave_lazy();
    match frame.vector {
        0..=31 => fatal_exception(frame),
        v if v == u64::from(TIMER_VECTOR) => {
            apic::end_of_interrupt();
            irq::timer_interrupt();
        }
        v if v == u64::from(SPURIOUS_VECTOR) => {}
        v if v == u64::from(IPI_VECTOR) => {
            apic::end_of_interrupt();
            libos_core::cpus::handle_ipi();
        }
        v if crate::ioapic::is_device_vector(v) => crate::ioapic::dispatch(v),
        v => {
            apic::end_of_interrupt();
            log::warn!("unexpected interrupt vector {v:#x}");
        }
    }
    // This frame is on the shared interrupt stack: a requested preemption happens on the
    // thread's own stack after the `iretq` (src/context.rs); if the frame cannot be moved there
    // the request stays for the next interrupt.
    if irq::take_preemption_request() && !context::redirect_to_preempt(frame) {
        irq::request_preemption();
    }
}

const EXCEPTION_NAMES: [(&str, &str); 32] = [
    ("#DE", "divide error"),
    ("#DB", "debug"),
    ("NMI", "non-maskable interrupt"),
    ("#BP", "breakpoint"),
    ("#OF", "overflow"),
    ("#BR", "bound range exceeded"),
    ("#UD", "invalid opcode"),
    ("#NM", "device not available"),
    ("#DF", "double fault"),
    ("#MF", "coprocessor segment overrun"),
    ("#TS", "invalid TSS"),
    ("#NP", "segment not present"),
    ("#SS", "stack-segment fault"),
    ("#GP", "general protection fault"),
    ("#PF", "page fault"),
    ("#15", "reserved"),
    ("#MF", "x87 floating-point error"),
    ("#AC", "alignment check"),
    ("#MC", "machine check"),
    ("#XM", "SIMD floating-point error"),
    ("#VE", "virtualization exception"),
    ("#CP", "control protection"),
    ("#22", "reserved"),
    ("#23", "reserved"),
    ("#24", "reserved"),
    ("#25", "reserved"),
    ("#26", "reserved"),
    ("#27", "reserved"),
    ("#HV", "hypervisor injection"),
    ("#VC", "VMM communication"),
    ("#SX", "security exception"),
    ("#31", "reserved"),
];

static IN_FATAL: AtomicBool = AtomicBool::new(false);

fn fatal_exception(frame: &TrapFrame) -> ! {
    if IN_FATAL.swap(true, Ordering::SeqCst) {
        emergency_print(format_args!("\nlibos: another exception while reporting one; giving up\n"));
        shutdown::power_off(libos_core::exit::FATAL_EXCEPTION);
    }
    let (short, name) = EXCEPTION_NAMES[frame.vector as usize & 31];
    emergency_print(format_args!(
        "\nlibos: fatal exception {short} ({name}, vector {}) error code {:#x}\n",
        frame.vector, frame.error_code
    ));
    if frame.vector == PAGE_FAULT {
        let address = Cr2::read_raw();
        let e = frame.error_code;
        emergency_print(format_args!(
            "  page fault at address {address:#x}: {} {} in {} mode{}\n",
            if e & 0x10 != 0 { "instruction fetch" } else if e & 0x2 != 0 { "write" } else { "read" },
            if e & 0x1 != 0 { "violating page protection" } else { "of a non-present page" },
            if e & 0x4 != 0 { "user" } else { "kernel" },
            if e & 0x8 != 0 { " (reserved bit set)" } else { "" },
        ));
        if let Some(stack) = crate::stacks::guarded_by(address) {
            emergency_print(format_args!(
                "  stack overflow: the address is in the guard page below the {stack} stack\n"
            ));
        } else if let Some(report) = crate::guard::REPORTER.get() {
            report(address);
        }
    }
    emergency_print(format_args!(
        "  rip {:#018x} rsp {:#018x} rflags {:#x} cs {:#x}\n",
        frame.rip, frame.rsp, frame.rflags, frame.cs
    ));
    emergency_print(format_args!(
        "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n  rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n  r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n  r13 {:#018x} r14 {:#018x} r15 {:#018x}\n",
        frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp, frame.r8,
        frame.r9, frame.r10, frame.r11, frame.r12, frame.r13, frame.r14, frame.r15
    ));
    // The top of the stack: after a call or jump through a bad pointer (rip 0), the first word
    // is the caller's return address.
    let words: [Option<u64>; 4] = core::array::from_fn(|i| crate::stacks::stack_word(frame.rsp + 8 * i as u64));
    if let [Some(a), Some(b), Some(c), Some(d)] = words {
        emergency_print(format_args!("  stack at rsp: {a:#018x} {b:#018x} {c:#018x} {d:#018x}\n"));
    }
    crate::stacks::print_backtrace(frame.rip, frame.rbp);
    shutdown::power_off(libos_core::exit::FATAL_EXCEPTION);
}
