//! `maybe_deferred`: Twisted's `maybeDeferred`, a function called now whose outcome, or
//! panic, becomes a Deferred.

use std::cell::Cell;
use std::rc::Rc;

use torsion::defer::{maybe_deferred, Deferred};
use torsion::error::{CancelledError, ConnectionDone};
use torsion::Failure;

#[test]
fn the_function_runs_now() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let d = maybe_deferred(move || r.set(true));
    assert!(ran.get());
    d.result().unwrap().unwrap();
}

#[test]
fn an_ok_value_fires_the_deferred_with_it() {
    let d = maybe_deferred(|| Ok::<_, Failure>("hello"));
    assert_eq!(d.result().unwrap().unwrap(), "hello");
}

#[test]
fn an_err_becomes_the_failure() {
    let d = maybe_deferred(|| Err::<u8, _>(ConnectionDone));
    assert!(d.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn a_returned_deferred_is_the_result_unfired_and_cancellable() {
    let inner = Deferred::<i32>::new();
    let fire = inner.trigger();
    let d = maybe_deferred(move || inner);
    assert!(!d.called());
    d.cancel();
    assert!(fire.is_called());
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn a_panic_becomes_the_failure_with_its_message() {
    let d = maybe_deferred(|| -> Result<i32, ConnectionDone> { panic!("kaboom") });
    let failure = d.result().unwrap().unwrap_err();
    assert!(!failure.check::<ConnectionDone>());
    assert!(failure.to_string().contains("kaboom"), "{failure}");
}
