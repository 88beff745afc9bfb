//! Fakes for host tests of crates above core (enabled by the `testing` feature).
//!
//! [`FakePlatform`] is a [`Platform`] whose clock only moves when a test advances it, whose
//! console is a buffer the test can read back, and whose real-time clock shows what the test
//! sets. [`FakeContext`] is a [`ContextSwitch`] that
//! prepares stacks but refuses to switch, so a scheduler's bookkeeping (run queues, timers)
//! can be tested on the host up to the point where it would switch.

use crate::hal::{ContextSwitch, InterruptState, Platform, WallClockReading};
use crate::time::Instant;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::string::String;
use std::sync::Mutex;

/// A platform for host tests: a 1 GHz manual clock, a captured console, a recorded timer, an
/// optional real-time clock.
#[derive(Default)]
pub struct FakePlatform {
    now: AtomicU64,
    interrupts: AtomicBool,
    console: Mutex<String>,
    timer: Mutex<Option<Instant>>,
    rtc_unix_nanos: Mutex<Option<u64>>,
}

/// The fake platform of this test process, installed as the platform on first use. Every test
/// module of a crate should take it from here: the platform can be installed only once per
/// process, so a module that made its own would advance a clock nobody reads.
pub fn shared_platform() -> &'static FakePlatform {
    static SHARED: std::sync::OnceLock<&'static FakePlatform> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let platform: &'static FakePlatform = Box::leak(Box::new(FakePlatform::new()));
        crate::hal::set_platform(platform);
        platform
    })
}

impl FakePlatform {
    /// A platform at time zero with interrupts masked.
    pub fn new() -> FakePlatform {
        FakePlatform::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, nanos: u64) {
        self.now.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Everything written to the console so far.
    pub fn console_output(&self) -> String {
        self.console.lock().unwrap().clone()
    }

    /// Gives the platform a real-time clock that reads `unix_nanos` now (`None`: no clock).
    pub fn set_rtc(&self, unix_nanos: Option<u64>) {
        *self.rtc_unix_nanos.lock().unwrap() = unix_nanos;
    }

    /// The deadline last passed to `set_timer`.
    pub fn timer(&self) -> Option<Instant> {
        *self.timer.lock().unwrap()
    }
}

impl Platform for FakePlatform {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn console_write(&self, bytes: &[u8]) {
        self.console.lock().unwrap().push_str(&String::from_utf8_lossy(bytes));
    }

    fn counter(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn counter_frequency(&self) -> u64 {
        1_000_000_000
    }

    fn set_timer(&self, deadline: Option<Instant>) {
        *self.timer.lock().unwrap() = deadline;
    }

    fn disable_interrupts(&self) -> InterruptState {
        InterruptState(self.interrupts.swap(false, Ordering::SeqCst))
    }

    fn restore_interrupts(&self, state: InterruptState) {
        self.interrupts.store(state.0, Ordering::SeqCst);
    }

    fn enable_interrupts(&self) {
        self.interrupts.store(true, Ordering::SeqCst);
    }

    fn wait_for_interrupt(&self) {
        self.enable_interrupts();
    }

    fn read_wall_clock(&self) -> Option<WallClockReading> {
        let unix_nanos = (*self.rtc_unix_nanos.lock().unwrap())?;
        Some(WallClockReading { unix_nanos, counter: self.counter() })
    }

    fn shutdown(&self, code: i32) -> ! {
        panic!("FakePlatform::shutdown({code})");
    }
}

/// A context switch for host tests: `init_context` returns a plausible stack pointer without
/// touching memory; its switch routine aborts (a host test cannot switch stacks).
pub struct FakeContext;

impl ContextSwitch for FakeContext {
    unsafe fn init_context(&self, stack_top: usize, _entry: extern "C" fn(usize) -> !, _arg: usize) -> usize {
        stack_top - 64
    }

    fn switch_routine(&self) -> crate::hal::SwitchRoutine {
        extern "C" fn refuse(_save_sp: *mut usize, _load_sp: usize) {
            // Panicking in an `extern "C"` function aborts the test binary, with this message.
            panic!("FakeContext: a host test cannot switch threads");
        }
        refuse
    }
}
