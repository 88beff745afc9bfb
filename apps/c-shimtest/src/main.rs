//! c-shimtest: the C program in `c/shimtest.c` (one argument per system-call family), linked
//! with musl by `build.rs`, started by posix-shim with ramfs and threads.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

posix_shim::c_main!();
