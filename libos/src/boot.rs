//! The boot sequence libos owns: the platform calls [`kernel_main`] once its hardware is up.
//!
//! 1. heap over the free RAM the platform reported;
//! 2. kernel command line (options, then the app's arguments), logger;
//! 3. mounts from the command line (`root=`, `mount=`; feature `vfs`);
//! 4. boot statistics at `main`;
//! 5. the app's `main`; its return value is the exit code.
//!
//! Components (devices, scheduler) slot in before 4 as their features land.

use crate::rt::App;
use crate::{boot_stats, cmdline, env};
use alloc::string::String;
use alloc::vec::Vec;
use libos_core::console::emergency_print;
use libos_core::hal::{self, BootInfo};
use libos_core::{exit, heap, logger};

#[cfg(target_arch = "x86_64")]
libos_platform_x86_64::entry_point!(kernel_main);
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
libos_platform_aarch64::entry_point!(kernel_main);

unsafe extern "Rust" {
    /// Defined by the app with `libos::main!`.
    static __LIBOS_APP: App;
}

fn kernel_main(info: &'static BootInfo) -> ! {
    let platform = hal::platform();
    // SAFETY: the platform reports RAM that nothing else uses, mapped at phys_to_virt, and this
    // is the only call.
    let heap = unsafe { heap::init(info.free_memory, |phys| platform.phys_to_virt(phys)) };

    let parsed = match cmdline::parse(info.cmdline) {
        Ok(parsed) => parsed,
        Err(e) => {
            emergency_print(format_args!("libos: cannot boot: {e}\n"));
            platform.shutdown(exit::BOOT_ERROR);
        }
    };
    logger::init(parsed.options.log_level);
    log::debug!(
        "{}: {} KiB RAM, {} KiB heap, command line {:?}",
        platform.name(),
        info.total_memory / 1024,
        heap.claimed / 1024,
        info.cmdline
    );

    // SAFETY: `libos::main!` in the app defines this static; it is immutable.
    let app = unsafe { &__LIBOS_APP };

    if let Err(e) = mount_file_systems(&parsed.options, app.initial_files) {
        emergency_print(format_args!("libos: cannot boot: {e}\n"));
        platform.shutdown(exit::BOOT_ERROR);
    }
    let mut args = Vec::with_capacity(parsed.app_args.len() + 1);
    args.push(String::from(app.name));
    args.extend(parsed.app_args);
    env::set_args(args);

    boot_stats::record_main(info.entry_counter, parsed.options.boot_stats);
    let code = (app.main)();
    crate::process::exit(code)
}

#[cfg(feature = "vfs")]
fn mount_file_systems(options: &cmdline::Options, initial_files: &[u8]) -> Result<(), String> {
    crate::fs::mount_at_boot(options.root.as_deref(), &options.mounts)?;
    crate::fs::unpack_initial_files(initial_files)
}

#[cfg(not(feature = "vfs"))]
fn mount_file_systems(options: &cmdline::Options, initial_files: &[u8]) -> Result<(), String> {
    if options.root.is_some() || !options.mounts.is_empty() {
        return Err(String::from(
            "kernel options `root=`/`mount=` need file systems: build the app with libos feature `fs-ramfs`",
        ));
    }
    if !initial_files.is_empty() {
        return Err(String::from("the app has initial files but no file system: enable libos feature `fs-ramfs`"));
    }
    Ok(())
}
