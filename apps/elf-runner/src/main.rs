//! elf-runner: runs the static Linux ELF file named by its first argument, taken from the
//! image's initial archive (packed by `build.rs`), through posix-shim's ELF loader. `./x run
//! --elf PATH -- args` builds it with PATH packed as `/bin/NAME` and boots it with
//! `/bin/NAME args`; without `--elf` the archive holds the sample programs the tests run.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn main() -> i32 {
    posix_shim::run_elf_program()
}

posix_shim::libos::main!(main, initial_files = include_bytes!(concat!(env!("OUT_DIR"), "/programs.cpio")));
