//! The stacks defined in src/boot.s, their guard pages, and frame-pointer backtraces.

use libos_core::console::emergency_print;

unsafe extern "C" {
    static libos_aarch64_stacks_start: u8;
    static libos_aarch64_stacks_end: u8;
    static libos_aarch64_boot_stack_guard: u8;
    static libos_aarch64_exception_stack_guard: u8;
    static libos_aarch64_nested_stack_guard: u8;
}

const PAGE: u64 = 4096;

/// The guard pages (one unmapped page below each stack) with the stack's name.
pub fn guard_pages() -> [(u64, &'static str); 3] {
    [
        ((&raw const libos_aarch64_boot_stack_guard) as u64, "boot"),
        ((&raw const libos_aarch64_exception_stack_guard) as u64, "exception"),
        ((&raw const libos_aarch64_nested_stack_guard) as u64, "nested-exception"),
    ]
}

/// The stack whose guard page holds `address`, if any.
pub fn guarded_by(address: u64) -> Option<&'static str> {
    guard_pages().into_iter().find(|&(guard, _)| (guard..guard + PAGE).contains(&address)).map(|(_, name)| name)
}

fn on_a_stack(address: u64) -> bool {
    let start = (&raw const libos_aarch64_stacks_start) as u64;
    let end = (&raw const libos_aarch64_stacks_end) as u64;
    ((start..end).contains(&address) && guarded_by(address).is_none())
        || crate::guard::READABLE.get().is_some_and(|readable| readable(address))
}

/// Prints return addresses by following the frame records (`[x29]` = previous x29,
/// `[x29 + 8]` = return address; the image is built with frame pointers). Stops at a null,
/// misaligned or off-stack frame pointer. Runs of the same return address (deep recursion) are
/// printed once with a count, as on x86_64.
pub fn print_backtrace(pc: u64, mut fp: u64) {
    const MAX_FRAMES: u32 = 4096;
    emergency_print(format_args!("  backtrace:\n    #0  {pc:#018x}\n"));
    let mut repeats = 0u32;
    let mut previous = 0u64;
    let mut depth = 1;
    while depth < MAX_FRAMES && fp != 0 && fp % 8 == 0 && on_a_stack(fp) && on_a_stack(fp + 8) {
        // SAFETY: `fp` and `fp + 8` lie inside the mapped stack area (checked above) and are
        // aligned, so reading them cannot fault; the values are only printed.
        let (next, ret) = unsafe { (*(fp as *const u64), *((fp + 8) as *const u64)) };
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
        fp = next;
        depth += 1;
    }
    if repeats > 0 {
        emergency_print(format_args!("    ... the frame above repeats {repeats} more times\n"));
    }
}
