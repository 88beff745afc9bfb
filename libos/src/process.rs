//! Ending the app: [`exit`] powers the VM off with an exit code, like `std::process::exit`.

use libos_core::hal;

/// Ends the app (and the VM) with `code` (`0..=255`, as a process's exit status).
pub fn exit(code: i32) -> ! {
    crate::boot_stats::report_exit();
    hal::platform().shutdown(code)
}
