//! Bad boot input ends with a clear message and exit code 103, never a hang.

use libos_tests::{Boot, arches};

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
    // Enough RAM to load the image (about 1.25 MiB) but not for its page tables and heap.
    for arch in arches() {
        Boot::app("hello")
            .memory("1400K")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("libos: cannot boot: too little memory: ")
            .prints("need RAM up to ");
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
fn early_boot_errors_power_off_cleanly_without_isa_debug_exit() {
    // The shutdown path must work before interrupts and timers are set up, and without the
    // debug-exit device (as on Firecracker or cloud-hypervisor): no triple fault, the code arrives.
    for arch in arches() {
        Boot::app("hello")
            .memory("1400K")
            .without_debug_exit()
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("libos: exit code 103; no isa-debug-exit device, powering off");
        Boot::app("hello").options("bogus").without_debug_exit().on(arch).exits_with(BOOT_ERROR);
    }
}
