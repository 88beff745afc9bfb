//! The final GDT and the TSS whose interrupt stack table gives every interrupt and exception a
//! stack of its own: a stack overflow's page fault must not run on the overflowed stack, and no
//! entry may write below the interrupted code's stack pointer, where the System V red zone holds
//! live data (see src/interrupts.rs). One CPU: with SMP each CPU needs its own TSS and stacks.

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

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, SegmentSelector, SegmentSelector, SegmentSelector)> = Once::new();

/// Loads the GDT and TSS and reloads the segment registers.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let top = |stack: *const u8| VirtAddr::new(stack as u64);
        tss.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT - 1)] = top(&raw const libos_x86_64_double_fault_stack_top);
        tss.interrupt_stack_table[usize::from(IST_FAULT - 1)] = top(&raw const libos_x86_64_fault_stack_top);
        tss.interrupt_stack_table[usize::from(IST_NMI - 1)] = top(&raw const libos_x86_64_nmi_stack_top);
        tss.interrupt_stack_table[usize::from(IST_INTERRUPT - 1)] = top(&raw const libos_x86_64_interrupt_stack_top);
        tss
    });
    let (gdt, code, data, tss_selector) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        assert_eq!((code.0, data.0), (KERNEL_CODE, KERNEL_DATA), "the selectors the trap's iretq names");
        let tss_selector = gdt.append(Descriptor::tss_segment(tss));
        (gdt, code, data, tss_selector)
    });
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded, which lives forever in a static; the
    // TSS descriptor points at a static TSS.
    unsafe {
        CS::set_reg(*code);
        DS::set_reg(*data);
        ES::set_reg(*data);
        SS::set_reg(*data);
        load_tss(*tss_selector);
    }
}
