//! The app runtime contract: how libos finds the app ([`App`], defined by [`crate::main!`]) and
//! how its return value becomes an exit code ([`Termination`]). On bare metal it also installs
//! the panic handler.

/// The app, as [`crate::main!`] describes it.
pub struct App {
    /// The package name, used as `args()[0]`.
    pub name: &'static str,
    /// The app's `main`, returning its exit code.
    pub main: fn() -> i32,
    /// A `newc` cpio archive unpacked into `/` at boot (empty: none). See [`crate::main!`].
    pub initial_files: &'static [u8],
}

/// A `main` return value that becomes an exit code, like `std::process::Termination`.
pub trait Termination {
    /// The exit code (`0..=255`, see `libos_core::exit`).
    fn report(self) -> i32;
}

impl Termination for () {
    fn report(self) -> i32 {
        0
    }
}

impl Termination for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl<E: core::fmt::Debug> Termination for Result<(), E> {
    fn report(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                crate::println!("Error: {e:?}");
                1
            }
        }
    }
}

#[cfg(target_os = "none")]
mod panic {
    use core::sync::atomic::{AtomicBool, Ordering};
    use libos_core::console::emergency_print;
    use libos_core::{exit, hal};

    static PANICKING: AtomicBool = AtomicBool::new(false);

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        if PANICKING.swap(true, Ordering::SeqCst) {
            emergency_print(format_args!("\nlibos: panic while panicking; giving up\n"));
        } else {
            emergency_print(format_args!("\nlibos: panicked"));
            #[cfg(any(feature = "sched-coop", feature = "sched-preempt"))]
            libos_core::sched::with_current_name(&mut |name| {
                emergency_print(format_args!(" in thread '{name}'"));
            });
            if let Some(location) = info.location() {
                emergency_print(format_args!(" at {location}"));
            }
            emergency_print(format_args!(":\n{}\n", info.message()));
        }
        match hal::try_platform() {
            Some(platform) => platform.shutdown(exit::PANIC),
            // Platforms register before running anything that can panic; if one did not, there
            // is no console and no way to stop the machine, so spin rather than recurse.
            None => loop {
                core::hint::spin_loop();
            },
        }
    }
}
