//! The boot sequence libos owns: the platform calls [`kernel_main`] once its hardware is up.
//!
//! 1. heap over the free RAM the platform reported;
//! 2. kernel command line (options, then the app's arguments), logger;
//! 3. the wall clock: `walltime=`, else one reading of the platform's real-time clock
//!    ([`crate::time`]);
//! 4. the other CPUs (`smp=` caps how many): each comes up on its own stacks and waits with
//!    interrupts masked; threads run on the boot CPU only (SMP scheduling is issue 16's next
//!    step);
//! 5. the scheduler (features `sched-*`; the calling code becomes thread `main`), first so that
//!    file systems that block (virtio-fs) block through it;
//! 6. the random-number generator's seed: the CPU's instruction, virtio-rng devices (feature
//!    `virtio-rng`); the boot says once if there is none ([`crate::random`]);
//! 7. mounts from the command line (`root=`, `mount=`; feature `vfs`), whose file times come
//!    from the wall clock;
//! 8. the network (feature `net`): the NIC, its address (`ip=`), the network thread;
//! 9. the control channel to the process host (feature `processes`, [`crate::control`]);
//! 10. boot statistics at `main`;
//! 11. the app's `main`; its return value is the exit code.
//!
//! Components (devices, network) slot in before 8 as their features land.

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

    let parsed = cmdline::parse(info.cmdline).unwrap_or_else(|e| boot_error(format_args!("{e}")));
    logger::init(parsed.options.log_level);
    log::debug!(
        "{}: {} KiB RAM, {} KiB heap, command line {:?}",
        platform.name(),
        info.total_memory / 1024,
        heap.claimed / 1024,
        info.cmdline
    );
    crate::time::start_wall_clock(parsed.options.wall_time_secs);
    heap::set_per_cpu_caches(parsed.options.heap_cache);
    start_cpus(parsed.options.smp);

    start_scheduler(&parsed.options);
    crate::random::seed_at_boot();
    #[cfg(all(feature = "syscalls", target_arch = "x86_64"))]
    libos_core::syscall::set_user_entry(&libos_platform_x86_64::UserEntry);
    #[cfg(all(feature = "syscalls", target_arch = "aarch64"))]
    libos_core::syscall::set_user_entry(&libos_platform_aarch64::UserEntry);

    // SAFETY: `libos::main!` in the app defines this static; it is immutable.
    let app = unsafe { &__LIBOS_APP };

    if let Err(e) = mount_file_systems(&parsed.options, app.initial_files) {
        boot_error(format_args!("{e}"));
    }
    #[cfg(feature = "net")]
    if let Err(e) = crate::net::start(&parsed.options.net) {
        boot_error(format_args!("{e}"));
    }
    #[cfg(feature = "processes")]
    crate::control::start();
    let mut args = Vec::with_capacity(parsed.app_args.len() + 1);
    args.push(String::from(app.name));
    args.extend(parsed.app_args);
    env::set_args(args);
    env::set_vars(parsed.options.env.clone());

    boot_stats::record_main(info.entry_counter, parsed.options.boot_stats);
    let code = (app.main)();
    crate::process::exit(code)
}

#[cfg(feature = "vfs")]
fn mount_file_systems(options: &cmdline::Options, initial_files: &[u8]) -> Result<(), String> {
    #[cfg(feature = "fs-virtiofs")]
    if let Some(secs) = options.virtiofs_timeout_secs {
        crate::virtiofs::set_timeout(u64::from(secs));
    }
    #[cfg(feature = "blk")]
    if let Some(secs) = options.blk_timeout_secs {
        crate::block::set_timeout(u64::from(secs));
    }
    #[cfg(feature = "blk")]
    if let Some(bytes) = options.blk_cache_bytes {
        crate::block::set_cache_bytes(bytes);
    }
    crate::fs::mount_at_boot(options.root.as_deref(), &options.mounts)?;
    crate::fs::unpack_initial_files(initial_files)?;
    match hal::platform().initrd() {
        Some(archive) => crate::fs::unpack_initrd(archive),
        None => Ok(()),
    }
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
    if hal::platform().initrd().is_some() {
        return Err(String::from("the machine has an initial RAM archive (-initrd) but the app no file system: enable libos feature `fs-ramfs`"));
    }
    Ok(())
}

/// Without the feature `smp` the other CPUs stay off.
#[cfg(not(feature = "smp"))]
fn start_cpus(_: Option<usize>) {
    log::info!("cpus: 1 online (the image was built without libos's `smp` feature: other CPUs stay off)");
}

/// Starts the other CPUs (at most `smp` in all) and says how many are online.
#[cfg(feature = "smp")]
fn start_cpus(smp: Option<usize>) {
    let report = hal::platform().start_cpus(smp);
    match report.limit {
        Some(limit) if limit < report.reported => {
            log::info!("cpus: {} online (smp={limit}; the firmware reports {})", report.online, report.reported)
        }
        _ => log::info!("cpus: {} online of {} reported", report.online, report.reported),
    }
}

/// Starts the scheduler the command line picked (`sched=`, `timeslice=`).
#[cfg(any(feature = "sched-coop", feature = "sched-preempt"))]
fn start_scheduler(options: &cmdline::Options) {
    // With the system-call trap (posix-shim), the switch also keeps Linux code's thread pointer.
    #[cfg(all(target_arch = "x86_64", not(feature = "syscalls")))]
    hal::set_context_switch(&libos_platform_x86_64::Context::KERNEL);
    #[cfg(all(target_arch = "x86_64", feature = "syscalls"))]
    hal::set_context_switch(&libos_platform_x86_64::Context::WITH_THREAD_POINTER);
    #[cfg(all(target_arch = "aarch64", not(feature = "syscalls")))]
    hal::set_context_switch(&libos_platform_aarch64::Context::KERNEL);
    #[cfg(all(target_arch = "aarch64", feature = "syscalls"))]
    hal::set_context_switch(&libos_platform_aarch64::Context::WITH_THREAD_POINTER);
    let mut config = libos_sched::policy::Config::default();
    if let Some(ms) = options.time_slice_ms {
        config.time_slice = core::time::Duration::from_millis(u64::from(ms));
    }
    match libos_sched::init_named(options.sched, config) {
        Ok(name) => log::debug!("scheduler: {name}"),
        Err(libos_core::Errno::EINVAL) => boot_error(format_args!(
            "kernel option `sched={}` names a policy this image was built without (its feature `sched-{}` is off)",
            options.sched.unwrap_or(""),
            if options.sched == Some("rr") { "preempt" } else { "coop" }
        )),
        Err(e) => boot_error(format_args!("cannot start the scheduler: {e}")),
    }
}

/// Without a scheduler feature there is nothing to start (`sched=` is an unknown option then).
#[cfg(not(any(feature = "sched-coop", feature = "sched-preempt")))]
fn start_scheduler(_: &cmdline::Options) {}

/// Reports why the kernel cannot boot and powers off with [`exit::BOOT_ERROR`].
fn boot_error(message: core::fmt::Arguments<'_>) -> ! {
    emergency_print(format_args!("libos: cannot boot: {message}\n"));
    hal::platform().shutdown(exit::BOOT_ERROR)
}
