//! `add_errback_deferred` and `add_both_deferred`: an errback, or a function run either way,
//! that returns a Deferred pauses the chain until it fires, and cancelling the chain reaches it.

use std::cell::Cell;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::error::{CancelledError, ConnectionDone, TimeoutError};

#[test]
fn an_errback_deferred_that_succeeds_recovers_the_chain() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let inner = Deferred::<i32>::new();
    let fire_inner = inner.trigger();
    let end = d
        .add_errback_deferred(move |f| {
            assert!(f.check::<TimeoutError>());
            inner
        })
        .add_callback(|v| v * 2);
    fire.errback(TimeoutError);
    assert!(
        !end.called(),
        "the chain did not wait on the errback's Deferred"
    );
    fire_inner.callback(21);
    assert_eq!(end.result().unwrap().unwrap(), 42);
}

#[test]
fn an_errback_deferred_that_fails_passes_its_failure_on() {
    let end = fail::<i32>(TimeoutError).add_errback_deferred(|_| fail(ConnectionDone));
    assert!(end.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn a_value_skips_the_errback_deferred() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let end = succeed(5).add_errback_deferred(move |_| {
        r.set(true);
        succeed(0)
    });
    assert_eq!(end.result().unwrap().unwrap(), 5);
    assert!(!ran.get());
}

#[test]
fn a_panicking_errback_deferred_becomes_the_failure() {
    let end = fail::<i32>(TimeoutError).add_errback_deferred(|_| panic!("boom"));
    let failure = end.result().unwrap().unwrap_err();
    assert!(!failure.check::<TimeoutError>());
}

#[test]
fn cancelling_while_paused_on_an_errback_deferred_cancels_it_even_if_nobody_holds_it() {
    let inner_cancelled = Rc::new(Cell::new(false));
    let ic = inner_cancelled.clone();
    let end = fail::<i32>(TimeoutError).add_errback_deferred(move |_| {
        // Only a canceller: no trigger kept, nothing else holds this Deferred.
        Deferred::with_canceller(move |_| ic.set(true))
    });
    assert!(!end.called());
    end.cancel();
    assert!(
        inner_cancelled.get(),
        "the errback's Deferred was not cancelled"
    );
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn add_both_deferred_runs_on_success_and_on_failure() {
    let ok = succeed(1).add_both_deferred(|out| succeed(out.is_ok()));
    assert!(ok.result().unwrap().unwrap());
    let bad = fail::<i32>(TimeoutError).add_both_deferred(|out| succeed(out.is_ok()));
    assert!(!bad.result().unwrap().unwrap());
}

#[test]
fn add_both_deferred_waits_and_passes_the_outcome_on() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let cleanup = Deferred::<()>::new();
    let fire_cleanup = cleanup.trigger();
    let end = d
        .add_both_deferred(move |out| cleanup.add_callback_result(move |()| out))
        .add_callback(|v| v + 1);
    fire.errback(ConnectionDone);
    assert!(!end.called());
    fire_cleanup.callback(());
    assert!(end.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn cancelling_while_paused_on_an_add_both_deferred_cancels_it() {
    let inner = Deferred::<String>::with_canceller(|t| t.errback(ConnectionDone));
    let fire_inner = inner.trigger();
    let end = succeed(1)
        .add_both_deferred(move |_| inner)
        .add_callback(|s| s.len());
    end.cancel();
    assert!(fire_inner.is_called());
    assert!(end.result().unwrap().unwrap_err().check::<ConnectionDone>());
}
