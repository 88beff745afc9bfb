//! Ending the app: [`exit`] writes back what file systems still hold in memory, then powers the
//! VM off with an exit code, like `std::process::exit`.

use libos_core::hal;

/// Ends the app (and the VM) with `code` (`0..=255`, as a process's exit status). Every mounted
/// file system is synced first (a disk file system's write-back cache reaches the disk, and
/// the disk's own cache is flushed), so data written before exit survives it, as on Linux
/// where the page cache outlives the process.
pub fn exit(code: i32) -> ! {
    #[cfg(feature = "vfs")]
    if let Some(vfs) = crate::fs::try_vfs() {
        if let Err(e) = vfs.sync() {
            log::error!("syncing the file systems at exit: {e}; data written since the last sync may be lost");
        }
    }
    crate::boot_stats::report_exit();
    hal::platform().shutdown(code)
}
