//! Ending the app: [`exit`] writes back what file systems still hold in memory and marks disk
//! volumes clean, then powers the VM off with an exit code, like `std::process::exit`.

use libos_core::hal;

/// Ends the app (and the VM) with `code` (`0..=255`, as a process's exit status). Every mounted
/// file system is shut down first (a disk file system's write-back cache reaches the disk,
/// the disk's own cache is flushed, and the volume is marked cleanly unmounted, as Linux's
/// unmount at power-off leaves it), so data written before exit survives it.
pub fn exit(code: i32) -> ! {
    #[cfg(feature = "vfs")]
    if let Some(vfs) = crate::fs::try_vfs() {
        if let Err(e) = vfs.shut_down() {
            log::error!("shutting the file systems down at exit: {e}; data written since the last sync may be lost");
        }
    }
    crate::boot_stats::report_exit();
    hal::platform().shutdown(code)
}
