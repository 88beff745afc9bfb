//! Frame-pointer backtraces for crash reports, shared by the platforms.
//!
//! Both architectures keep a frame record at the frame pointer: `[fp]` holds the caller's frame
//! pointer and `[fp + 8]` the return address (x86_64 `rbp` chain; aarch64 `x29`/`x30` records),
//! and libos images are built with frame pointers. The walk stops at a null, misaligned or
//! unreadable frame pointer; the platform says what is readable (its stacks, minus guard pages).

use crate::console::emergency_print;

/// Most frames a walk visits (a corrupted chain must not loop forever).
pub const MAX_FRAMES: usize = 4096;

/// The return addresses along the frame-pointer chain starting at `fp`. `readable(address)`
/// tells whether 8 bytes at `address` may be read; `read` reads them.
pub fn return_addresses<'a>(
    mut fp: u64,
    readable: &'a dyn Fn(u64) -> bool,
    read: &'a dyn Fn(u64) -> u64,
) -> impl Iterator<Item = u64> + 'a {
    core::iter::from_fn(move || {
        if fp == 0 || fp % 8 != 0 || !readable(fp) || !readable(fp.checked_add(8)?) {
            return None;
        }
        let (next, ret) = (read(fp), read(fp + 8));
        if ret == 0 {
            return None;
        }
        fp = next;
        Some(ret)
    })
    .take(MAX_FRAMES)
}

/// Prints `#0 pc` and the return addresses from `fp` on the console without taking its lock
/// (crash context). Runs of the same return address (deep recursion) are printed once with a
/// count.
pub fn print(pc: u64, fp: u64, readable: &dyn Fn(u64) -> bool) {
    // SAFETY: `return_addresses` only reads addresses for which `readable` (the platform's map of
    // its mapped stacks) returned true, and only 8-byte aligned ones.
    let read = |address: u64| unsafe { core::ptr::read_volatile(address as *const u64) };
    emergency_print(format_args!("  backtrace:\n    #0  {pc:#018x}\n"));
    let mut repeats = 0usize;
    let mut previous = 0u64;
    for (depth, ret) in return_addresses(fp, readable, &read).enumerate() {
        if ret == previous {
            repeats += 1;
            continue;
        }
        if repeats > 0 {
            emergency_print(format_args!("    ... the frame above repeats {repeats} more times\n"));
            repeats = 0;
        }
        emergency_print(format_args!("    #{:<2} {ret:#018x}\n", depth + 1));
        previous = ret;
    }
    if repeats > 0 {
        emergency_print(format_args!("    ... the frame above repeats {repeats} more times\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    fn walk(memory: &BTreeMap<u64, u64>, fp: u64) -> Vec<u64> {
        let readable = |a: u64| memory.contains_key(&a);
        let read = |a: u64| memory[&a];
        return_addresses(fp, &readable, &read).collect()
    }

    #[test]
    fn follows_the_chain_until_it_ends() {
        // Three frames: 0x1000 -> 0x1040 -> 0x1080 -> null.
        let memory = BTreeMap::from([
            (0x1000, 0x1040), (0x1008, 0xaaa),
            (0x1040, 0x1080), (0x1048, 0xbbb),
            (0x1080, 0), (0x1088, 0xccc),
        ]);
        assert_eq!(walk(&memory, 0x1000), [0xaaa, 0xbbb, 0xccc]);
    }

    #[test]
    fn stops_at_unreadable_misaligned_or_null_frames() {
        let memory = BTreeMap::from([(0x1000, 0x2004), (0x1008, 0xaaa), (0x2000, 0), (0x2008, 0xbbb)]);
        assert_eq!(walk(&memory, 0x1000), [0xaaa]); // 0x2004 is misaligned
        assert_eq!(walk(&memory, 0x3000), []); // unreadable
        assert_eq!(walk(&memory, 0), []);
        let no_return = BTreeMap::from([(0x1000, 0x1040), (0x1008, 0)]);
        assert_eq!(walk(&no_return, 0x1000), []);
    }

    #[test]
    fn a_looping_chain_is_bounded() {
        let memory = BTreeMap::from([(0x1000, 0x1000), (0x1008, 0xaaa)]);
        assert_eq!(walk(&memory, 0x1000).len(), MAX_FRAMES);
    }
}
