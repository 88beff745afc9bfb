//! The boot-time stacks defined in src/boot.s, their guard pages, and frame-pointer backtraces.


unsafe extern "C" {
    static libos_x86_64_stacks_start: u8;
    static libos_x86_64_stacks_end: u8;
    static libos_x86_64_boot_stack_guard: u8;
    static libos_x86_64_double_fault_stack_guard: u8;
    static libos_x86_64_fault_stack_guard: u8;
    static libos_x86_64_nmi_stack_guard: u8;
    static libos_x86_64_interrupt_stack_guard: u8;
}

const PAGE: u64 = 4096;

/// The guard pages (one unmapped page below each stack) with the stack's name.
pub fn guard_pages() -> [(u64, &'static str); 5] {
    [
        ((&raw const libos_x86_64_boot_stack_guard) as u64, "boot"),
        ((&raw const libos_x86_64_double_fault_stack_guard) as u64, "double-fault"),
        ((&raw const libos_x86_64_fault_stack_guard) as u64, "page-fault"),
        ((&raw const libos_x86_64_nmi_stack_guard) as u64, "NMI"),
        ((&raw const libos_x86_64_interrupt_stack_guard) as u64, "interrupt"),
    ]
}

/// The stack whose guard page holds `address`, if any.
pub fn guarded_by(address: u64) -> Option<&'static str> {
    guard_pages().into_iter().find(|&(guard, _)| (guard..guard + PAGE).contains(&address)).map(|(_, name)| name)
}

/// True when `[start, end)` touches a guard page.
pub fn overlaps_guard(start: u64, end: u64) -> bool {
    guard_pages().iter().any(|&(guard, _)| start < guard + PAGE && guard < end)
}

fn on_a_stack(address: u64) -> bool {
    let start = (&raw const libos_x86_64_stacks_start) as u64;
    let end = (&raw const libos_x86_64_stacks_end) as u64;
    ((start..end).contains(&address) && guarded_by(address).is_none())
        || crate::guard::READABLE.get().is_some_and(|readable| readable(address))
}

/// The word at `address` if it lies on a stack this module knows (8-byte aligned), for fault
/// reports.
pub fn stack_word(address: u64) -> Option<u64> {
    // SAFETY: only aligned addresses on a mapped stack (`on_a_stack`) are read.
    (address % 8 == 0 && on_a_stack(address)).then(|| unsafe { core::ptr::read_volatile(address as *const u64) })
}

/// Prints the frame-pointer backtrace from `pc`/`fp` (`libos_core::backtrace`), reading only
/// the stacks this module knows (boot, exception and thread stacks, guard pages excluded).
pub fn print_backtrace(pc: u64, fp: u64) {
    libos_core::backtrace::print(pc, fp, &on_a_stack);
}
