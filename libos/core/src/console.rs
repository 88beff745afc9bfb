//! The kernel console: formatted output to [`crate::hal::Platform::console_write`], one writer at
//! a time so lines from different contexts do not interleave.
//!
//! [`print`] is what `libos::println!` and the logger call. [`emergency_print`] is for panic and
//! exception reports: it does not wait for the lock, because the code that crashed may hold it.

use crate::hal;
use crate::sync::IrqSpinLock;
use core::fmt::{self, Write};

static CONSOLE_LOCK: IrqSpinLock<()> = IrqSpinLock::new(());

struct PlatformConsole;

impl Write for PlatformConsole {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if let Some(platform) = hal::try_platform() {
            platform.console_write(text.as_bytes());
        }
        Ok(())
    }
}

/// Writes formatted text to the console, holding the console lock for the whole message.
pub fn print(args: fmt::Arguments<'_>) {
    let _guard = CONSOLE_LOCK.lock();
    // Console writes cannot fail; an error here could only come from a `Display` impl.
    let _ = PlatformConsole.write_fmt(args);
}

/// Writes formatted text without waiting for the console lock (for crash reports).
pub fn emergency_print(args: fmt::Arguments<'_>) {
    let _ = PlatformConsole.write_fmt(args);
}

/// Writes raw bytes (not necessarily UTF-8: C programs' output) under the console lock.
pub fn write_bytes(bytes: &[u8]) {
    let _guard = CONSOLE_LOCK.lock();
    if let Some(platform) = hal::try_platform() {
        platform.console_write(bytes);
    }
}
