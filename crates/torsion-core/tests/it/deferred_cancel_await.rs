//! Cancellation reaches what a Deferred waits on, as in Twisted: the Deferred a callback
//! returned (even one only its canceller can fire), and the Deferred that async code run by
//! `ensure_deferred` awaits.

use std::cell::Cell;
use std::rc::Rc;

use torsion::defer::{succeed, Deferred};
use torsion::error::{CancelledError, ConnectionDone};

/// A flag a canceller sets when it runs.
fn flag() -> Rc<Cell<bool>> {
    Rc::new(Cell::new(false))
}

#[test]
fn cancelling_a_chain_runs_the_canceller_of_a_returned_deferred_nobody_else_holds() {
    // Twisted: `d.addCallback(lambda _: Deferred(canceller)); d.cancel()` runs `canceller`.
    let ran = flag();
    let r = ran.clone();
    let end = succeed(1)
        .add_callback_deferred(move |_| Deferred::<i32>::with_canceller(move |_| r.set(true)))
        .add_callback(|v| v + 1);
    assert!(!end.called());
    end.cancel();
    assert!(ran.get(), "the returned Deferred's canceller never ran");
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn the_canceller_of_a_returned_deferred_can_fire_it_with_its_own_outcome() {
    let end = succeed(())
        .add_callback_deferred(|()| Deferred::<i32>::with_canceller(|t| t.errback(ConnectionDone)))
        .add_callback(|v| v * 2);
    end.cancel();
    assert!(end.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn cancel_reaches_a_returned_deferred_through_two_levels_of_chains() {
    // The inner chain itself waits on a canceller-only Deferred.
    let ran = flag();
    let r = ran.clone();
    let end = succeed(()).add_callback_deferred(move |()| {
        succeed(()).add_callback_deferred(move |()| {
            Deferred::<&str>::with_canceller(move |t| {
                r.set(true);
                t.callback("cancelled, but answered");
            })
        })
    });
    end.cancel();
    assert!(ran.get(), "the innermost canceller never ran");
    assert_eq!(end.result().unwrap().unwrap(), "cancelled, but answered");
}

#[test]
fn a_chain_whose_returned_deferred_fired_is_not_cancelled_again() {
    let inner = Deferred::<i32>::new();
    let fire = inner.trigger();
    let end = succeed(()).add_callback_deferred(move |()| inner);
    fire.callback(4);
    end.cancel();
    assert_eq!(end.result().unwrap().unwrap(), 4);
}
