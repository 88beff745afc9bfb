//! Fuzz targets for libos's parsers of untrusted input, driven by libFuzzer (`./x fuzz`).
//!
//! Each module is one target: a `run(&[u8])` that feeds the bytes to the code under test and
//! checks what must hold whatever the bytes are (no panic, no overflow, no escape from a
//! destination, bookkeeping equal to a simple model). The binaries in `fuzz_targets/` are
//! one-line `fuzz_target!` wrappers built by `./x fuzz` with sanitizer coverage; the library
//! itself builds and tests without libFuzzer, and `cargo test -p libos-fuzz` replays the corpus
//! kept in `fuzz/corpus/TARGET/` (regression inputs included) through the same functions.
//!
//! | target | what it feeds |
//! |---|---|
//! | [`cpio`] | initial-files archives unpacked into a ramfs (`libos_vfs::cpio::unpack`) |
//! | [`dtb`] | flattened device trees (`libos_platform_aarch64::dtb`) |
//! | [`acpi`] | firmware memory with ACPI tables (`libos_platform_x86_64::{acpi, devices}`) |
//! | [`cmdline`] | kernel command lines (`libos::cmdline::parse`) |
//! | [`elf`] | ELF files to plan loading for (`posix_shim::elf::plan`) |
//! | [`mmap`] | sequences of map/unmap/remap calls on the mapping bookkeeping (`posix_shim::ranges`) |
//! | [`fuse`] | file operations over virtio-fs whose FUSE replies (from the fake server) are damaged |
//!
//! Why a top-level crate and not `fuzz/` under each crate (cargo-fuzz's layout): the targets
//! cross crates (the FUSE target needs the VFS, ramfs and the fake server; cpio needs ramfs), one
//! crate keeps one build of the instrumented dependencies, and `./x fuzz` knows one place.

pub mod acpi;
pub mod cmdline;
pub mod cpio;
pub mod dtb;
pub mod elf;
pub mod fuse;
pub mod input;
pub mod mmap;

/// A target's body: runs one input.
pub type Body = fn(&[u8]);

/// Every target: its name (the binary and the corpus folder) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("acpi", acpi::run),
    ("cmdline", cmdline::run),
    ("cpio", cpio::run),
    ("dtb", dtb::run),
    ("elf", elf::run),
    ("fuse", fuse::run),
    ("mmap", mmap::run),
];
