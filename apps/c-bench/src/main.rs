//! c-bench: `bench/c/shim_ops.c`, unmodified (the Linux guest of `./x bench shim` runs the same
//! source), on libos with ramfs through posix-shim.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

posix_shim::c_main!();
