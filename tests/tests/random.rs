//! Randomness in a real guest on every architecture (issue 18, item 10): the kernel's
//! generator seeded by the default virtio-rng device gives different `getrandom` bytes on two
//! boots and the boot names the source; a guest without any source (no virtio-rng, a CPU
//! model without a random instruction) refuses `GRND_NONBLOCK` with `EAGAIN`, blocks a plain
//! `getrandom` until a signal interrupts it, still answers `GRND_INSECURE`, and says once at
//! boot that it has no source; a CPU model with a random instruction (`-cpu max`: RDSEED or
//! RDRAND, RNDR) seeds it on its own. The C side is `apps/c-shimtest/c/random.c`.

use libos_tests::{Boot, arches};
use xtask::arch::Arch;

#[test]
fn virtio_rng_seeds_getrandom_and_two_boots_differ() {
    for arch in arches() {
        let boot = || Boot::app("c-shimtest").options("loglevel=info").args(&["random"]).on(arch);
        let first = boot();
        first.exits_with(0).does_not_print("FAIL").prints("ok random\n").prints("random: seeded from virtio-rng");
        let second = boot();
        second.exits_with(0).does_not_print("FAIL").prints("ok random\n");
        for label in ["getrandom: ", "at_random: "] {
            let (a, b) = (first.line_after(label), second.line_after(label));
            assert_eq!(a.len(), 32, "{arch}: {label}{a}");
            assert_ne!(a, b, "{arch}: {label}the same bytes on two boots");
        }
    }
}

#[test]
fn without_an_entropy_source_getrandom_blocks_and_nonblock_is_eagain() {
    for arch in arches() {
        Boot::app("c-shimtest")
            .without_rng()
            .args(&["random-unseeded"])
            .on(arch)
            .exits_with(0)
            .does_not_print("FAIL")
            .prints("blocking in getrandom\n")
            .prints("ok random-unseeded\n")
            // Said once, at the default log level.
            .prints("random: no entropy source");
    }
}

#[test]
fn a_cpu_random_instruction_seeds_the_generator_without_virtio_rng() {
    for arch in arches() {
        let booted = Boot::app("c-shimtest").without_rng().qemu_args(&["-cpu", "max"]).options("loglevel=info").args(&["random"]).on(arch);
        booted.exits_with(0).does_not_print("FAIL").prints("ok random\n").does_not_print("no entropy source");
        let source = booted
            .outcome
            .console
            .lines()
            .find_map(|l| l.split_once("random: seeded from ").map(|(_, rest)| rest.to_string()))
            .unwrap_or_else(|| panic!("{arch}: no `random: seeded from` line:\n{}", booted.outcome.console));
        match arch {
            Arch::X86_64 => assert!(source == "rdseed" || source == "rdrand", "{arch}: {source}"),
            Arch::Aarch64 => assert_eq!(source, "rndr", "{arch}"),
        }
    }
}
