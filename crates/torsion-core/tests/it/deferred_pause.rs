//! `Deferred::pause` and `Paused::unpause` (Twisted's `pause` and `unpause`): while paused no
//! callback runs; the outcome waits, and the callbacks run on it at the last `unpause`.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::error::{CancelledError, TimeoutError};

use crate::support::captured_log;

/// A log of what ran.
fn log() -> Rc<RefCell<Vec<String>>> {
    Rc::new(RefCell::new(Vec::new()))
}

#[test]
fn callbacks_wait_while_paused_and_run_at_unpause() {
    let seen = log();
    let s = seen.clone();
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let paused = d.pause();
    let d = d.add_callback(move |x| {
        s.borrow_mut().push(format!("got {x}"));
        x * 10
    });
    fire.callback(4);
    assert!(seen.borrow().is_empty(), "a callback ran while paused");
    assert!(!d.called());
    assert!(d.result().is_none());
    assert_eq!(format!("{d:?}"), r#"Deferred { state: "paused" }"#);
    paused.unpause();
    assert_eq!(*seen.borrow(), ["got 4"]);
    assert_eq!(d.result().unwrap().unwrap(), 40);
}

#[test]
fn two_pauses_take_two_unpauses() {
    let d = succeed(1);
    let first = d.pause();
    let second = d.pause();
    let d = d.add_callback(|x| x + 1);
    second.unpause();
    assert!(d.result().is_none(), "ran after one unpause of two");
    first.unpause();
    assert_eq!(d.result().unwrap().unwrap(), 2);
}

#[test]
fn callbacks_added_to_a_fired_paused_deferred_wait() {
    let seen = log();
    let s = seen.clone();
    let d = fail::<i32>(TimeoutError);
    let paused = d.pause();
    let d = d.add_errback(move |f| {
        s.borrow_mut().push("errback".into());
        Err(f)
    });
    assert!(seen.borrow().is_empty());
    paused.unpause();
    assert_eq!(*seen.borrow(), ["errback"]);
    assert!(d.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn an_inner_deferred_firing_while_paused_waits_too() {
    let inner = Deferred::<i32>::new();
    let fire_inner = inner.trigger();
    let d = succeed(())
        .add_callback_deferred(move |()| inner)
        .add_callback(|x| x + 1);
    let paused = d.pause();
    fire_inner.callback(1);
    assert!(d.result().is_none());
    paused.unpause();
    assert_eq!(d.result().unwrap().unwrap(), 2);
}

#[test]
fn cancelling_a_paused_deferred_queues_the_cancelled_error() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let paused = d.pause();
    d.cancel();
    assert!(fire.is_called());
    assert!(d.result().is_none());
    paused.unpause();
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn dropping_the_pause_token_unpauses() {
    let d = succeed(1);
    let paused = d.pause();
    let d = d.add_callback(|x| x + 1);
    assert!(d.result().is_none());
    drop(paused);
    assert_eq!(d.result().unwrap().unwrap(), 2);
}

#[test]
fn a_failure_waiting_in_a_dropped_paused_deferred_is_logged_as_unhandled() {
    let log = captured_log(|| {
        let d = Deferred::<i32>::new();
        let fire = d.trigger();
        let paused = d.pause();
        fire.errback(TimeoutError);
        // The pause does not keep the chain alive: dropping its last handle drops it.
        drop(d);
        drop(paused);
    });
    assert_eq!(
        log.matches("Unhandled error in Deferred").count(),
        1,
        "{log}"
    );
    assert!(log.contains("TimeoutError"), "{log}");
}

#[torsion::test(timeout = 10)]
async fn awaiting_a_paused_deferred_waits_for_unpause() -> Result<(), torsion::Failure> {
    let unpaused = Rc::new(std::cell::Cell::new(false));
    let d = succeed(3);
    let paused = d.pause();
    let u = unpaused.clone();
    torsion::reactor().call_later(0.0, move || {
        u.set(true);
        paused.unpause();
    });
    let value = d.add_callback(|x| x + 1).await?;
    assert!(unpaused.get(), "the await ended while paused");
    assert_eq!(value, 4);
    Ok(())
}
