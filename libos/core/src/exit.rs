//! Exit codes that the kernel itself reports, so a runner tells an app's own failure apart
//! from a crash. Apps exit with any code in `0..=127` (the range QEMU's `isa-debug-exit` and
//! semihosting carry back to the host unchanged); the kernel uses the top of that range.

/// A Rust panic (in the kernel or the app), like Rust's `std`.
pub const PANIC: i32 = 101;
/// A fatal CPU exception: page fault, general protection fault, stack overflow, ...
pub const FATAL_EXCEPTION: i32 = 102;
/// The kernel could not boot: bad command line, too little memory, bad boot information.
pub const BOOT_ERROR: i32 = 103;
/// The largest code that reaches the host unchanged.
pub const MAX_CODE: i32 = 127;
