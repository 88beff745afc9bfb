//! Exit codes that the kernel itself reports, so a runner tells an app's own failure apart
//! from a crash. Apps exit with any code in `0..=255`, like a process (a C program killed by a
//! signal exits 128 + N, as a shell reports it). aarch64 semihosting carries the whole code to
//! the host; x86_64's `isa-debug-exit` carries 7 bits, so a code above 127 is also printed as
//! `libos: exit code N`, which `./x` reads when the device's 7 bits match it.

/// A Rust panic (in the kernel or the app), like Rust's `std`.
pub const PANIC: i32 = 101;
/// A fatal CPU exception: page fault, general protection fault, stack overflow, ...
pub const FATAL_EXCEPTION: i32 = 102;
/// The kernel could not boot: bad command line, too little memory, bad boot information.
pub const BOOT_ERROR: i32 = 103;
/// The largest exit code.
pub const MAX_CODE: i32 = 255;
/// The largest code x86_64's `isa-debug-exit` carries by itself.
pub const MAX_DEVICE_CODE: i32 = 127;
