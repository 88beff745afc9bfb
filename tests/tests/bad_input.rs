//! Bad boot input ends with a clear message and exit code 103, never a hang.

use libos_tests::dtb::VirtDtb;
use libos_tests::{Boot, arches, expect};
use xtask::arch::Arch;
use xtask::qemu::Exit;

const BOOT_ERROR: i32 = 103;

#[test]
fn unknown_kernel_option_stops_the_boot() {
    for arch in arches() {
        Boot::app("hello")
            .options("bogus=1")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("libos: cannot boot: unknown kernel option `bogus=1`")
            .does_not_print("Hello");
    }
}

#[test]
fn bad_option_value_names_what_is_accepted() {
    for arch in arches() {
        Boot::app("hello")
            .options("loglevel=loud")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("kernel option `loglevel` does not accept `loud` (expected off, error, warn, info, debug or trace)");
    }
}

#[test]
fn bad_walltime_stops_the_boot() {
    for arch in arches() {
        Boot::app("hello")
            .options("walltime=9223372037")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("kernel option `walltime` does not accept `9223372037` (expected seconds since 1970-01-01 00:00:00 UTC, 0 to 9223372036)")
            .does_not_print("Hello");
    }
}

#[test]
fn unterminated_quote_is_reported() {
    for arch in arches() {
        Boot::app("hello").options("-- \"open").on(arch).exits_with(BOOT_ERROR).prints("unterminated `\"`");
    }
}

#[test]
fn overlong_command_line_is_reported() {
    for arch in arches() {
        let long = format!("-- {}", "x".repeat(5000));
        Boot::app("hello")
            .options(&long)
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("kernel command line is longer than 4096 bytes");
    }
}

#[test]
fn too_little_memory_is_reported_by_the_kernel() {
    for arch in arches() {
        match arch {
            // Enough RAM to load the image (about 1.25 MiB) but not for its page tables and heap.
            Arch::X86_64 => {
                Boot::app("hello")
                    .memory("1400K")
                    .on(arch)
                    .exits_with(BOOT_ERROR)
                    .prints("libos: cannot boot: too little memory: ")
                    .prints("need RAM up to ");
            }
            // QEMU virt loads the image 2 MiB into RAM, keeps the 2 MiB below it for the heap, and
            // puts the DTB at the next 2 MiB boundary after the image: RAM that holds the image
            // but not the DTB makes QEMU refuse with its own message (no hang). The kernel's own
            // check, for loaders that do start it, is host-tested (platform/aarch64
            // `memory::tests::too_little_memory_is_an_error`).
            Arch::Aarch64 => {
                Boot::app("hello").memory("3M").on(arch).qemu_refuses("Not enough space for DTB");
            }
        }
    }
}

#[test]
fn memory_too_small_for_the_image_is_refused_before_booting() {
    // QEMU and the firmware hang silently when the image does not fit; ./x refuses instead.
    for arch in arches() {
        let image = libos_tests::image("hello", arch);
        let mut config = xtask::qemu::VmConfig::new(arch, image);
        config.memory = "1M".into();
        let error = xtask::qemu::run(&config, false).unwrap_err().to_string();
        assert!(error.contains("is smaller than the image"), "{error}");
    }
}

#[test]
fn aarch64_device_tree_problems_are_reported() {
    // QEMU virt boots the image with a device tree the test wrote (QEMU fills in memory and
    // bootargs). Each problem is named, with the boot-error code, and nothing hangs.
    if !arches().contains(&Arch::Aarch64) {
        return;
    }
    let with_dtb = |name: &str, dtb: VirtDtb| {
        let path = dtb.write(name);
        Boot::app("hello").qemu_args(&["-dtb", path.to_str().expect("a UTF-8 path")])
    };
    let boot = |name: &str, dtb: VirtDtb| with_dtb(name, dtb).on(Arch::Aarch64);
    // The tree itself works: the same tree with nothing removed boots.
    boot("virt-complete", VirtDtb::default()).exits_with(0).prints("Hello from libos on aarch64 GICv3!");
    boot("virt-no-timer", VirtDtb { timer: false, ..VirtDtb::default() })
        .exits_with(BOOT_ERROR)
        .prints("libos: cannot boot: the device tree has no arm,armv8-timer node with the virtual timer interrupt");
    boot("virt-gic-v5", VirtDtb { gic: "arm,gic-v5", ..VirtDtb::default() })
        .exits_with(BOOT_ERROR)
        .prints("libos: cannot boot: unsupported interrupt controller `arm,gic-v5` (GICv2 or GICv3 needed)");
    // No UART: the message goes to the semihosting console (QEMU's own output).
    let booted = boot("virt-no-uart", VirtDtb { uart: false, ..VirtDtb::default() });
    booted.exits_with(BOOT_ERROR);
    let all = format!("{}{}", booted.outcome.console, booted.outcome.stderr);
    assert!(all.contains("libos: cannot boot: the device tree has no UART for the console (PL011 or 16550)"), "{booted:?}");
    // No UART, no semihosting, no PSCI node: nothing can carry a message or a code, but the
    // machine still powers off (PSCI through whichever conduit exists), at EL1 and from EL2.
    for el2 in [false, true] {
        let dtb = VirtDtb { uart: false, psci: false, ..VirtDtb::default() };
        let mut boot = with_dtb("virt-no-uart-no-psci", dtb).without_debug_exit();
        if el2 {
            boot = boot.qemu_args(&["-M", "virtualization=on"]);
        }
        let booted = boot.on(Arch::Aarch64);
        assert_eq!(booted.outcome.exit, Exit::NoCode, "{booted:?}");
    }
}

#[test]
fn early_boot_errors_power_off_cleanly_without_isa_debug_exit() {
    // The shutdown path must work before interrupts and timers are set up, and without the
    // exit device (as on Firecracker or cloud-hypervisor): no triple fault or hang, the code
    // arrives. On x86_64 too little memory stops the boot that early; on aarch64 QEMU refuses
    // such RAM itself, so a device tree without the timer (read before the GIC and timer are
    // set up) does.
    for arch in arches() {
        let boot = match arch {
            Arch::X86_64 => Boot::app("hello").memory("1400K"),
            Arch::Aarch64 => {
                let path = VirtDtb { timer: false, ..VirtDtb::default() }.write("virt-no-timer-early");
                Boot::app("hello").qemu_args(&["-dtb", path.to_str().expect("a UTF-8 path")])
            }
        };
        boot.without_debug_exit()
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints(&expect::exit_code_fallback(arch, BOOT_ERROR));
        Boot::app("hello").options("bogus").without_debug_exit().on(arch).exits_with(BOOT_ERROR);
    }
}
