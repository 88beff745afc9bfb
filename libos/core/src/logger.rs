//! The `log` backend: records go to the console as `[LEVEL target] message`.
//!
//! `libos` installs it at boot with the level from the `loglevel=` kernel option.

use crate::console;
use log::{LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            console::print(format_args!("[{:<5} {}] {}\n", record.level(), record.target(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console logger with the given maximum level. Later calls only change the level.
pub fn init(level: LevelFilter) {
    // `set_logger` fails only when a logger is already installed, which is fine: keep it.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
