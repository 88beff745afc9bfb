//! Host tests of the scheduler core against libos-core's fakes: the timer bookkeeping
//! (tickless, time slices, sleeper deadlines) without ever switching threads.

use crate::policy::rr::RoundRobin;
use crate::thread::Builder;
use core::time::Duration;
use libos_core::hal::{self, irq};
use libos_core::sched::ThreadId;
use libos_core::testing::{FakeContext, FakePlatform};
use libos_core::time::Instant;

const MS: u64 = 1_000_000;

#[test]
fn tickless_until_a_slice_is_needed_then_preempts_after_a_whole_slice() {
    let platform: &'static FakePlatform = Box::leak(Box::new(FakePlatform::new()));
    hal::set_platform(platform);
    hal::set_context_switch(&FakeContext);
    crate::init(Box::new(RoundRobin::new(Duration::from_millis(10)))).unwrap();
    assert_eq!(crate::init(Box::new(RoundRobin::new(Duration::from_millis(10)))), Err(libos_core::Errno::EBUSY));
    assert_eq!(libos_core::sched::current(), ThreadId::MAIN);

    // Only `main` runs: no timer at all.
    assert_eq!(platform.timer(), None);

    // A second runnable thread: a slice timer, one slice from now.
    platform.advance(3 * MS);
    let handle = Builder::new().name("worker").spawn(|| 7).unwrap();
    assert_eq!(handle.thread().name(), Some("worker"));
    assert_eq!(platform.timer(), Some(Instant::from_nanos(13 * MS)));
    assert!(!irq::take_preemption_request());

    // A spurious early interrupt changes nothing and re-arms for the same slice end.
    platform.advance(5 * MS);
    irq::timer_interrupt();
    assert!(!irq::take_preemption_request());
    assert_eq!(platform.timer(), Some(Instant::from_nanos(13 * MS)));

    // The slice ends with no switch since it began: preempt `main`.
    platform.advance(5 * MS);
    irq::timer_interrupt();
    assert!(irq::take_preemption_request());

    // Waking an unknown or already-running thread never panics; a running thread gets a token.
    libos_core::sched::unpark(ThreadId(0xdead_0000_0000));
    libos_core::sched::unpark(ThreadId::MAIN);
    libos_core::sched::park(); // consumes the token instead of switching
    assert_eq!(crate::switch_count(), 0);

    // `wake_by` only moves the deadline of a parked thread: a running, ready or unknown one
    // is left to `unpark`.
    let later = Instant::now() + Duration::from_secs(1);
    assert!(!libos_core::sched::wake_by(ThreadId::MAIN, later));
    assert!(!libos_core::sched::wake_by(handle.thread().id(), later));
    assert!(!libos_core::sched::wake_by(ThreadId(0xdead_0000_0000), later));
    assert_eq!(crate::policy_name(), "rr");
}
