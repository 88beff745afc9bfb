//! elf-runner: runs the static Linux ELF file named by its first argument through posix-shim's
//! ELF loader, from any file system: the image's initial archive holds the sample programs the
//! tests run (packed by `build.rs`), and `./x run --elf PATH -- args` boots the same image with
//! PATH as `/bin/NAME` in an initial RAM archive (QEMU `-initrd`), running `/bin/NAME args`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn main() -> i32 {
    posix_shim::run_elf_program()
}

posix_shim::libos::main!(main, initial_files = include_bytes!(concat!(env!("OUT_DIR"), "/programs.cpio")));
