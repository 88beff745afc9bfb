//! `hello`: the default libos app.
//!
//! Greets, prints its arguments and the time since boot, allocates and frees some memory, and
//! exits with the code given by `--exit N` (0 otherwise): `./x run hello -- --exit 3` exits 3.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use libos::println;
use libos::time;

libos::main!(main);

fn main() -> i32 {
    println!("Hello from libos on {}!", libos::platform_name());

    let args: Vec<&str> = libos::env::args().collect();
    println!("arguments: {:?}", &args[1..]);

    let now = time::Instant::now();
    let since_boot = now.since_origin();
    let since_entry = now - time::kernel_entry();
    println!("time since boot: {since_boot:?} (kernel running for {since_entry:?})");

    let before = libos::heap_stats();
    let squares: Vec<u64> = (0..4096u64).map(|i| i * i).collect();
    let during = libos::heap_stats();
    let sum: u64 = squares.iter().sum();
    drop(squares);
    let after = libos::heap_stats();
    println!(
        "heap: {} KiB free; allocated {} bytes for 4096 squares (sum {sum}), freed them: {} bytes in use before, {} after",
        (after.claimed - after.in_use) / 1024,
        during.in_use - before.in_use,
        before.in_use,
        after.in_use
    );

    match exit_code(&args[1..]) {
        Ok(code) => code,
        Err(message) => {
            println!("hello: {message}\nusage: hello [--exit CODE]");
            2
        }
    }
}

/// The code from `--exit N`, 0 without it.
fn exit_code(args: &[&str]) -> Result<i32, &'static str> {
    match args {
        [] => Ok(0),
        ["--exit", code] => code.parse().map_err(|_| "--exit needs a number"),
        _ => Err("unexpected arguments"),
    }
}
