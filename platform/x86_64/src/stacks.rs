//! The boot-time stacks defined in src/boot.s, their guard pages, and frame-pointer backtraces.

use libos_core::console::emergency_print;

unsafe extern "C" {
    static libos_x86_64_stacks_start: u8;
    static libos_x86_64_stacks_end: u8;
    static libos_x86_64_boot_stack_guard: u8;
    static libos_x86_64_double_fault_stack_guard: u8;
    static libos_x86_64_fault_stack_guard: u8;
    static libos_x86_64_nmi_stack_guard: u8;
}

const PAGE: u64 = 4096;

/// The guard pages (one unmapped page below each stack) with the stack's name.
pub fn guard_pages() -> [(u64, &'static str); 4] {
    [
        ((&raw const libos_x86_64_boot_stack_guard) as u64, "boot"),
        ((&raw const libos_x86_64_double_fault_stack_guard) as u64, "double-fault"),
        ((&raw const libos_x86_64_fault_stack_guard) as u64, "page-fault"),
        ((&raw const libos_x86_64_nmi_stack_guard) as u64, "NMI"),
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

/// Prints return addresses by following the frame-pointer chain from `rbp` (the image is built
/// with frame pointers). Stops at a null, misaligned or off-stack frame pointer. Runs of the
/// same return address (deep recursion) are printed once with a count.
pub fn print_backtrace(rip: u64, mut rbp: u64) {
    const MAX_FRAMES: u32 = 4096;
    emergency_print(format_args!("  backtrace:\n    #0  {rip:#018x}\n"));
    let mut repeats = 0u32;
    let mut previous = 0u64;
    let mut depth = 1;
    while depth < MAX_FRAMES && rbp != 0 && rbp % 8 == 0 && on_a_stack(rbp) && on_a_stack(rbp + 8) {
        // SAFETY: `rbp` and `rbp + 8` lie inside the mapped stack area (checked above) and are
        // aligned, so reading them cannot fault; the values are only printed.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        if ret == previous {
            repeats += 1;
        } else {
            if repeats > 0 {
                emergency_print(format_args!("    ... the frame above repeats {repeats} more times\n"));
                repeats = 0;
            }
            emergency_print(format_args!("    #{depth:<2} {ret:#018x}\n"));
        }
        previous = ret;
        rbp = next;
        depth += 1;
    }
    if repeats > 0 {
        emergency_print(format_args!("    ... the frame above repeats {repeats} more times\n"));
    }
}
