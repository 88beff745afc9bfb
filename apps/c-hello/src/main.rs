//! c-hello: the C program in `c/hello.c`, linked with musl by `build.rs`, started by posix-shim.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

posix_shim::c_main!();
