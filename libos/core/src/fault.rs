//! Deliberate faults, for testing that a platform reports crashes instead of corrupting memory
//! (the `selftest` app and the integration tests use these). Each one must end the VM with
//! [`crate::exit::FATAL_EXCEPTION`] and a report; returning would be a platform bug.
//!
//! They live here, where `unsafe` is allowed, so apps can keep `#![forbid(unsafe_code)]`.

use core::hint::black_box;

/// Reads an address that is never mapped (far above RAM, below the canonical-address limit).
pub fn read_unmapped() -> u8 {
    let address = black_box(0x0000_7fff_dead_0000usize);
    // SAFETY: deliberately invalid: the read must fault and never return.
    unsafe { core::ptr::read_volatile(address as *const u8) }
}

/// Reads through a null pointer (page 0 is unmapped).
pub fn read_null() -> u8 {
    let address = black_box(0usize);
    // SAFETY: deliberately invalid: the read must fault and never return.
    unsafe { core::ptr::read_volatile(address as *const u8) }
}

/// Writes into the kernel's own code (mapped read-only).
pub fn write_to_code() {
    let address = black_box(write_to_code as fn() as usize);
    // SAFETY: deliberately invalid: the write must fault and never complete.
    unsafe { core::ptr::write_volatile(address as *mut u8, 0xcc) }
}

/// Jumps into writable data (mapped no-execute).
pub fn execute_data() {
    static RETURN_INSTRUCTIONS: [u8; 4] = [0xc3, 0xc3, 0xc3, 0xc3]; // x86 `ret` (never reached)
    let mut data = [0u8; 4];
    data.copy_from_slice(&RETURN_INSTRUCTIONS);
    let address = black_box(data.as_ptr() as usize);
    // SAFETY: deliberately invalid: fetching from a non-executable stack page must fault.
    let function: fn() = unsafe { core::mem::transmute::<usize, fn()>(address) };
    function();
}

/// Recurses until the stack runs into its guard page.
pub fn overflow_stack() -> u64 {
    #[inline(never)]
    #[allow(unconditional_recursion)]
    fn recurse(depth: u64) -> u64 {
        let frame = black_box([depth; 32]);
        recurse(depth + 1).wrapping_add(frame[7])
    }
    recurse(0)
}
