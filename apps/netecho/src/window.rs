//! A benchmark window: the counter and the ticks spent halted when it opened, and, when it
//! closes, the report `./x bench net` reads: `[bench] mark end`, then `[bench] NAME: VALUE`
//! lines (the protocol of the Linux-guest programs, `bench/c/bench_common.h`, so one parser
//! reads both), then the NIC's counters.

use super::print_nic_stats;
use libos::{hal, println};

/// An open window.
pub struct Window {
    start_ticks: u64,
    start_idle: u64,
}

impl Window {
    /// Opens a window now.
    pub fn open() -> Window {
        let start_idle = libos::idle::ticks();
        Window { start_ticks: hal::platform().counter(), start_idle }
    }

    /// Closes it over `operations` (MiB, round trips, echoes) and prints the report.
    pub fn close(self, operations: u64) {
        let end = hal::platform().counter();
        let idle = libos::idle::ticks() - self.start_idle;
        println!("[bench] mark end");
        println!("[bench] counter-hz: {}", hal::platform().counter_frequency());
        println!("[bench] operations: {operations}");
        println!("[bench] window-ticks: {}", end.wrapping_sub(self.start_ticks));
        println!("[bench] idle-ticks: {idle}");
        print_nic_stats();
    }
}
