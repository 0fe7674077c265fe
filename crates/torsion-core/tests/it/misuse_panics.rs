//! Calls Twisted refuses with an `AssertionError` panic here: `call_later` with a negative
//! or NaN delay (Twisted's `callLater`: "delay is not greater than or equal to 0 seconds"),
//! and `LoopingCall::stop` on a loop that is not running ("Tried to stop a LoopingCall that
//! was not running."). docs/design.md ("Misusing call_later or LoopingCall panics") says why.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::support::new_reactor;
use torsion::error::ConnectionDone;
use torsion::task::LoopingCall;
use torsion::testing::Clock;
use torsion::Failure;

/// The message of the panic `f` raises, or `None` if it returns.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let payload = catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

#[test]
fn call_later_refuses_a_negative_or_nan_delay() {
    let r = new_reactor();
    let message = panic_message(|| drop(r.call_later(-1.0, || {}))).expect("a panic");
    assert_eq!(
        message,
        "call_later: the delay must be 0 seconds or more, not -1"
    );
    let message = panic_message(|| drop(r.call_later(f64::NAN, || {}))).expect("a panic");
    assert!(message.ends_with("not NaN"), "{message}");
    assert!(r.pending_call_times().is_empty(), "nothing was scheduled");
    // Zero, in either form and sign, is fine: the call runs on the next turn.
    for zero in [0.0, -0.0] {
        assert!(panic_message(|| r.call_later(zero, || {}).cancel().unwrap()).is_none());
    }
    assert!(panic_message(|| r.call_later(Duration::ZERO, || {}).cancel().unwrap()).is_none());
}

#[test]
fn the_test_clock_refuses_them_too() {
    let clock = Clock::new();
    let message = panic_message(|| drop(clock.call_later(-0.5, || {}))).expect("a panic");
    assert!(message.contains("not -0.5"), "{message}");
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn stopping_a_looping_call_that_is_not_running_panics() {
    let clock = Clock::new();
    let lc = LoopingCall::new(|| {});
    lc.set_clock(clock.clone());
    // Never started.
    let message = panic_message(|| lc.stop()).expect("a panic");
    assert_eq!(message, "Tried to stop a LoopingCall that was not running");
    // Stopped already.
    let done = lc.start(1.0, false);
    lc.stop();
    assert!(done.result().unwrap().is_ok());
    assert!(panic_message(|| lc.stop()).is_some());
    // Guarded cleanup does not panic.
    if lc.running() {
        lc.stop();
    }
}

#[test]
fn a_loop_ended_by_a_failure_is_not_running_either() {
    let clock = Clock::new();
    let lc = LoopingCall::new(|| Err::<(), Failure>(Failure::new(ConnectionDone)));
    lc.set_clock(clock.clone());
    let done = lc.start(1.0, true);
    assert!(!lc.running());
    assert!(done.result().unwrap().is_err());
    assert!(panic_message(|| lc.stop()).is_some());
}
