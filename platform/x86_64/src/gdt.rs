//! The final GDT and the TSS whose interrupt stack table gives every interrupt and exception a
//! stack of its own: a stack overflow's page fault must not run on the overflowed stack, and no
//! entry may write below the interrupted code's stack pointer, where the System V red zone holds
//! live data (see src/interrupts.rs). Every CPU has its own TSS and stacks: the boot CPU the
//! static ones of src/boot.s ([`init`]), the others stacks from the heap ([`init_secondary`]).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// The kernel code selector (the GDT's first entry after the null one), which the system-call
/// trap's `iretq` exit also names.
pub const KERNEL_CODE: u16 = 0x08;
/// The kernel data (and stack) selector.
pub const KERNEL_DATA: u16 = 0x10;

/// IST slot (1-based, as in the IDT) of the double-fault stack.
pub const IST_DOUBLE_FAULT: u16 = 1;
/// IST slot of the page-fault (and every other, fatal, exception) stack.
pub const IST_FAULT: u16 = 2;
/// IST slot of the NMI and machine-check stack.
pub const IST_NMI: u16 = 3;
/// IST slot of the stack that device and timer interrupts (vectors 32-255) run on.
pub const IST_INTERRUPT: u16 = 4;

unsafe extern "C" {
    static libos_x86_64_double_fault_stack_top: u8;
    static libos_x86_64_fault_stack_top: u8;
    static libos_x86_64_nmi_stack_top: u8;
    static libos_x86_64_interrupt_stack_top: u8;
}

/// The tops of one CPU's interrupt stacks.
#[derive(Clone, Copy, Debug)]
pub struct IstTops {
    /// Double fault.
    pub double_fault: u64,
    /// Page fault and the other exceptions.
    pub fault: u64,
    /// NMI and machine check.
    pub nmi: u64,
    /// Device and timer interrupts.
    pub interrupt: u64,
}

/// A GDT with its code, data and TSS selectors.
type Gdt = (GlobalDescriptorTable, SegmentSelector, SegmentSelector, SegmentSelector);

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<Gdt> = Once::new();

fn tss_with(tops: IstTops) -> TaskStateSegment {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT - 1)] = VirtAddr::new(tops.double_fault);
    tss.interrupt_stack_table[usize::from(IST_FAULT - 1)] = VirtAddr::new(tops.fault);
    tss.interrupt_stack_table[usize::from(IST_NMI - 1)] = VirtAddr::new(tops.nmi);
    tss.interrupt_stack_table[usize::from(IST_INTERRUPT - 1)] = VirtAddr::new(tops.interrupt);
    tss
}

fn gdt_with(tss: &'static TaskStateSegment) -> Gdt {
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    assert_eq!((code.0, data.0), (KERNEL_CODE, KERNEL_DATA), "the selectors the trap's iretq names");
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));
    (gdt, code, data, tss_selector)
}

fn load((gdt, code, data, tss_selector): &'static Gdt) {
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded, which lives forever (a static or a
    // leaked allocation); the TSS descriptor points at a TSS that lives as long.
    unsafe {
        CS::set_reg(*code);
        DS::set_reg(*data);
        ES::set_reg(*data);
        SS::set_reg(*data);
        load_tss(*tss_selector);
    }
}

/// Loads the boot CPU's GDT and TSS (its stacks are the static ones of src/boot.s) and reloads
/// the segment registers.
pub fn init() {
    let top = |stack: *const u8| stack as u64;
    let tss = TSS.call_once(|| {
        tss_with(IstTops {
            double_fault: top(&raw const libos_x86_64_double_fault_stack_top),
            fault: top(&raw const libos_x86_64_fault_stack_top),
            nmi: top(&raw const libos_x86_64_nmi_stack_top),
            interrupt: top(&raw const libos_x86_64_interrupt_stack_top),
        })
    });
    load(GDT.call_once(|| gdt_with(tss)));
}

/// Loads a GDT and TSS of its own on a secondary CPU, with the interrupt stacks at `tops`.
/// Both are leaked: CPUs never go away.
#[cfg(feature = "smp")]
pub fn init_secondary(tops: IstTops) {
    let tss: &'static TaskStateSegment = alloc::boxed::Box::leak(alloc::boxed::Box::new(tss_with(tops)));
    load(alloc::boxed::Box::leak(alloc::boxed::Box::new(gdt_with(tss))));
}
