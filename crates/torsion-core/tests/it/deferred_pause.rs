//! `Deferred::pause` and `unpause` (Twisted's): while paused no callback runs; the outcome
//! waits, and the callbacks run on it at the last `unpause`.

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
    d.pause();
    let d = d.add_callback(move |x| {
        s.borrow_mut().push(format!("got {x}"));
        x * 10
    });
    fire.callback(4);
    assert!(seen.borrow().is_empty(), "a callback ran while paused");
    assert!(!d.called());
    assert!(d.result().is_none());
    assert_eq!(format!("{d:?}"), r#"Deferred { state: "paused" }"#);
    d.unpause();
    assert_eq!(*seen.borrow(), ["got 4"]);
    assert_eq!(d.result().unwrap().unwrap(), 40);
}

#[test]
fn two_pauses_take_two_unpauses() {
    let d = succeed(1);
    d.pause();
    d.pause();
    let d = d.add_callback(|x| x + 1);
    d.unpause();
    assert!(d.result().is_none(), "ran after one unpause of two");
    d.unpause();
    assert_eq!(d.result().unwrap().unwrap(), 2);
}

#[test]
fn callbacks_added_to_a_fired_paused_deferred_wait() {
    let seen = log();
    let s = seen.clone();
    let d = fail::<i32>(TimeoutError);
    d.pause();
    let d = d.add_errback(move |f| {
        s.borrow_mut().push("errback".into());
        Err(f)
    });
    assert!(seen.borrow().is_empty());
    d.unpause();
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
    d.pause();
    fire_inner.callback(1);
    assert!(d.result().is_none());
    d.unpause();
    assert_eq!(d.result().unwrap().unwrap(), 2);
}

#[test]
fn cancelling_a_paused_deferred_queues_the_cancelled_error() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    d.pause();
    d.cancel();
    assert!(fire.is_called());
    assert!(d.result().is_none());
    d.unpause();
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
#[should_panic(expected = "not paused")]
fn an_unmatched_unpause_panics() {
    let d = Deferred::<i32>::new();
    d.unpause();
}

#[test]
fn a_failure_waiting_in_a_dropped_paused_deferred_is_logged_as_unhandled() {
    let log = captured_log(|| {
        let d = Deferred::<i32>::new();
        let fire = d.trigger();
        d.pause();
        fire.errback(TimeoutError);
        drop(d);
    });
    assert_eq!(
        log.matches("Unhandled error in Deferred").count(),
        1,
        "{log}"
    );
    assert!(log.contains("TimeoutError"), "{log}");
}
