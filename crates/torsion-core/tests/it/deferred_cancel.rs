//! Cancelling a `Deferred`, and `add_timeout` on a test clock.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torsion::defer::{succeed, Deferred, Trigger};
use torsion::error::{CancelledError, ConnectionDone, TimeoutError};
use torsion::testing::Clock;

/// A flag a canceller sets when it runs.
fn flag() -> Rc<Cell<bool>> {
    Rc::new(Cell::new(false))
}

#[test]
fn cancelling_an_unfired_deferred_gives_cancelled_error_to_the_errback() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let d = Deferred::<i32>::new();
    let _keep = d.trigger();
    d.cancel();
    assert!(d.called());
    let end = d.add_errback(move |f| {
        s.borrow_mut().push(f.check::<CancelledError>());
        Err(f)
    });
    assert_eq!(*seen.borrow(), [true]);
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn cancelling_runs_the_canceller_then_fails_with_cancelled_error() {
    let ran = flag();
    let r = ran.clone();
    let d = Deferred::<i32>::with_canceller(move |_trigger| r.set(true));
    d.cancel();
    assert!(ran.get(), "canceller did not run");
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn a_canceller_that_errbacks_gives_its_own_error_not_cancelled_error() {
    let d = Deferred::<i32>::with_canceller(|t| t.errback(ConnectionDone));
    d.cancel();
    let failure = d.result().unwrap().unwrap_err();
    assert!(failure.check::<ConnectionDone>(), "{failure:?}");
}

#[test]
fn a_canceller_that_callbacks_gives_its_value() {
    let d = Deferred::<i32>::with_canceller(|t| t.callback(99));
    d.cancel();
    assert_eq!(d.result().unwrap().unwrap(), 99);
}

#[test]
fn a_panicking_canceller_still_cancels() {
    let d = Deferred::<i32>::with_canceller(|_| panic!("canceller broke"));
    d.cancel();
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn cancel_after_firing_does_nothing() {
    let ran = flag();
    let r = ran.clone();
    let d = Deferred::<i32>::with_canceller(move |_| r.set(true));
    d.callback(5);
    d.cancel();
    assert!(!ran.get(), "canceller ran on a fired Deferred");
    assert_eq!(d.result().unwrap().unwrap(), 5);
}

#[test]
fn cancel_on_an_already_fired_chain_end_does_nothing() {
    let end = succeed(1).add_callback(|v| v + 1);
    end.cancel();
    assert_eq!(end.result().unwrap().unwrap(), 2);
}

#[test]
fn cancelling_twice_runs_the_canceller_once() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let d = Deferred::<i32>::with_canceller(move |_| r.set(r.get() + 1));
    d.cancel();
    d.cancel();
    assert_eq!(runs.get(), 1);
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn cancelling_the_end_of_a_chain_cancels_the_root() {
    let ran = flag();
    let r = ran.clone();
    let root = Deferred::<i32>::with_canceller(move |_| r.set(true));
    let fire = root.trigger();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let end = root
        .add_callback(|v| v + 1)
        .add_callback(move |v| {
            s.borrow_mut().push(v);
            v
        })
        .add_callback(|v| v.to_string());
    end.cancel();
    assert!(ran.get(), "the root's canceller did not run");
    assert!(seen.borrow().is_empty(), "a callback ran on cancellation");
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
    assert!(fire.is_called());
}

#[test]
fn cancelling_the_end_of_a_chain_runs_the_root_canceller_without_a_kept_trigger() {
    // Twisted: `d = Deferred(canceller); d.addCallback(f); d.cancel()` always runs `canceller`,
    // whoever else holds `d`.
    let ran = flag();
    let r = ran.clone();
    let end = Deferred::<i32>::with_canceller(move |_| r.set(true)).add_callback(|v| v + 1);
    end.cancel();
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
    assert!(
        ran.get(),
        "the root's canceller never ran: the root was dropped when the chain was built"
    );
}

#[test]
fn firing_the_root_after_its_chain_end_was_cancelled_is_ignored() {
    let root = Deferred::<i32>::new();
    let fire = root.trigger();
    let end = root.add_callback(|v| v * 2);
    end.cancel();
    assert!(fire.is_called());
    assert!(
        fire.try_callback(1).is_ok(),
        "firing a cancelled root must be ignored"
    );
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn cancelling_while_paused_on_an_inner_deferred_cancels_the_inner_one() {
    let inner_cancelled = flag();
    let ic = inner_cancelled.clone();
    let inner = Deferred::<String>::with_canceller(move |_| ic.set(true));
    let fire_inner = inner.trigger();
    let end = succeed(1)
        .add_callback_deferred(move |_| inner)
        .add_callback(|s| s.len());
    assert!(!end.called());
    end.cancel();
    assert!(
        inner_cancelled.get(),
        "the inner Deferred was not cancelled"
    );
    assert!(fire_inner.is_called());
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn inner_canceller_error_reaches_the_outer_chain() {
    let inner = Deferred::<i32>::with_canceller(|t| t.errback(ConnectionDone));
    let _keep = inner.trigger();
    let end = succeed(()).add_callback_deferred(move |_| inner);
    end.cancel();
    assert!(end.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn firing_a_cancelled_deferred_through_its_trigger_is_silently_ignored() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    d.cancel();
    assert!(fire.try_callback(1).is_ok());
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn trigger_callback_on_a_cancelled_deferred_does_not_panic() {
    let d = Deferred::<i32>::new();
    let (a, b) = (d.trigger(), d.trigger());
    d.cancel();
    a.callback(1);
    b.errback(TimeoutError);
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn firing_a_cancelled_inner_deferred_later_is_ignored() {
    let inner = Deferred::<i32>::new();
    let fire_inner = inner.trigger();
    let end = succeed(()).add_callback_deferred(move |_| inner);
    end.cancel();
    fire_inner.callback(5);
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn add_timeout_fails_with_timeout_error_after_the_clock_advances() {
    let clock = Clock::new();
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let d = d.add_timeout(5.0, &clock);
    assert_eq!(clock.pending_call_times(), [5.0]);
    clock.advance(4.999);
    assert!(!d.called(), "timed out early");
    clock.advance(0.001);
    assert!(d.result().unwrap().unwrap_err().check::<TimeoutError>());
    assert!(
        fire.try_callback(1).is_ok(),
        "a late firing must be ignored"
    );
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn add_timeout_runs_the_canceller_when_time_is_up() {
    let clock = Clock::new();
    let ran = flag();
    let r = ran.clone();
    let d = Deferred::<i32>::with_canceller(move |_| r.set(true)).add_timeout(1.0, &clock);
    clock.advance(1.0);
    assert!(ran.get());
    assert!(d.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn add_timeout_keeps_a_canceller_error_that_is_not_cancelled_error() {
    let clock = Clock::new();
    let d = Deferred::<i32>::with_canceller(|t| t.errback(ConnectionDone)).add_timeout(1.0, &clock);
    clock.advance(2.0);
    assert!(d.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn add_timeout_passes_the_value_and_cancels_the_timer_when_fired_in_time() {
    let clock = Clock::new();
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let d = d.add_timeout(5.0, &clock).add_callback(|v| v + 1);
    clock.advance(2.0);
    fire.callback(10);
    assert!(clock.pending_call_times().is_empty(), "timer not cancelled");
    clock.advance(10.0);
    assert_eq!(d.result().unwrap().unwrap(), 11);
}

#[test]
fn add_timeout_passes_a_failure_that_arrives_in_time() {
    let clock = Clock::new();
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let d = d.add_timeout(5.0, &clock);
    fire.errback(ConnectionDone);
    assert!(clock.pending_call_times().is_empty());
    assert!(d.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn add_timeout_on_an_already_fired_deferred_leaves_no_timer() {
    let clock = Clock::new();
    let d = succeed(3).add_timeout(5.0, &clock);
    assert!(clock.pending_call_times().is_empty());
    clock.advance(6.0);
    assert_eq!(d.result().unwrap().unwrap(), 3);
}

#[test]
fn cancelling_a_timed_deferred_by_hand_gives_cancelled_error_not_timeout() {
    let clock = Clock::new();
    let d = Deferred::<i32>::new();
    let _keep = d.trigger();
    let d = d.add_timeout(5.0, &clock);
    d.cancel();
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn add_timeout_times_out_a_chain_paused_on_an_inner_deferred() {
    let clock = Clock::new();
    let inner_cancelled = flag();
    let ic = inner_cancelled.clone();
    let inner = Deferred::<i32>::with_canceller(move |_| ic.set(true));
    let _keep = inner.trigger();
    let d = succeed(())
        .add_callback_deferred(move |_| inner)
        .add_timeout(3.0, &clock);
    clock.advance(3.0);
    assert!(inner_cancelled.get());
    assert!(d.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn cancelling_the_end_of_a_chain_that_pauses_on_a_returned_deferred_lets_it_go_on() {
    // Twisted: cancel() errbacks the Deferred; an errback recovers and a callback returns
    // a Deferred, so the chain pauses on it; when that one fires, the chain goes on. A
    // second cancel() cancels the Deferred the chain waits on.
    for second_cancel in [false, true] {
        let inner: Rc<RefCell<Option<Trigger<i32>>>> = Rc::default();
        let keep = inner.clone();
        let d: Deferred<i32> = Deferred::new();
        let trigger = d.trigger();
        let d = d
            .add_errback(|f| {
                assert!(f.check::<CancelledError>());
                Ok(1)
            })
            .add_callback_deferred(move |x| {
                let next = Deferred::new();
                *keep.borrow_mut() = Some(next.trigger());
                next.add_callback(move |y: i32| x + y)
            })
            .add_callback(|x| x * 10);
        d.cancel();
        assert!(!d.called(), "paused on the returned Deferred");
        // The original trigger is spent: firing it now is ignored.
        trigger.callback(5);
        if second_cancel {
            d.cancel();
            assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
        } else {
            inner.borrow_mut().take().unwrap().callback(2);
            assert_eq!(d.result().unwrap().unwrap(), 30);
        }
    }
}
