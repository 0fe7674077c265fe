//! Firing a `Deferred`: once only, through the Deferred itself or its `Trigger`s.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred, Trigger};
use torsion::error::{ConnectionDone, TimeoutError};

#[test]
#[should_panic(expected = "AlreadyCalledError")]
fn deferred_callback_twice_panics_with_already_called_error() {
    let d = Deferred::<i32>::new();
    d.callback(1);
    d.callback(2);
}

#[test]
#[should_panic(expected = "AlreadyCalledError")]
fn deferred_errback_after_callback_panics_with_already_called_error() {
    let d = Deferred::<i32>::new();
    d.callback(1);
    d.errback(TimeoutError);
}

#[test]
#[should_panic(expected = "AlreadyCalledError")]
fn deferred_callback_after_errback_panics_with_already_called_error() {
    let d = Deferred::<i32>::new();
    d.errback(TimeoutError);
    // The failure is taken so that only the double firing is under test.
    let _ = d.result();
    d.callback(1);
}

#[test]
fn try_callback_returns_already_called_error_the_second_time() {
    let d = Deferred::<i32>::new();
    assert!(d.try_callback(1).is_ok());
    let err = d.try_callback(2).unwrap_err();
    assert!(err.to_string().contains("AlreadyCalledError"), "{err}");
    assert_eq!(
        d.result().unwrap().unwrap(),
        1,
        "the first value was replaced"
    );
}

#[test]
fn try_errback_returns_already_called_error_the_second_time() {
    let d = Deferred::<i32>::new();
    assert!(d.try_errback(ConnectionDone).is_ok());
    assert!(d.try_errback(TimeoutError).is_err());
    assert!(d.try_callback(3).is_err());
    let failure = d.result().unwrap().unwrap_err();
    assert!(
        failure.check::<ConnectionDone>(),
        "the first failure was replaced"
    );
}

#[test]
fn second_of_two_triggers_fails_to_fire() {
    let d = Deferred::<&str>::new();
    let (first, second) = (d.trigger(), d.trigger());
    assert!(first.try_callback("first").is_ok());
    assert!(second.try_callback("second").is_err());
    assert_eq!(d.result().unwrap().unwrap(), "first");
}

#[test]
#[should_panic(expected = "AlreadyCalledError")]
fn second_of_two_triggers_panics_on_callback() {
    let d = Deferred::<i32>::new();
    let (first, second) = (d.trigger(), d.trigger());
    first.callback(1);
    second.callback(2);
}

#[test]
fn second_trigger_errback_fails_after_the_first_fired() {
    let d = Deferred::<i32>::new();
    let (first, second) = (d.trigger(), d.trigger());
    first.callback(1);
    let err = second.try_errback(TimeoutError).unwrap_err();
    assert!(err.to_string().contains("AlreadyCalledError"), "{err}");
    assert_eq!(d.result().unwrap().unwrap(), 1);
}

#[test]
fn trigger_fire_delivers_an_outcome() {
    let ok = Deferred::<i32>::new();
    ok.trigger().fire(Ok(5)).unwrap();
    assert_eq!(ok.result().unwrap().unwrap(), 5);
    let bad = Deferred::<i32>::new();
    bad.trigger().fire(Err(TimeoutError.into())).unwrap();
    assert!(bad.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn trigger_fires_a_deferred_with_callbacks_already_chained() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let end = d.add_callback(|v| v + 1);
    assert!(!fire.is_called());
    fire.callback(1);
    assert_eq!(end.result().unwrap().unwrap(), 2);
}

#[test]
fn trigger_is_called_reports_firing_by_another_trigger() {
    let d = Deferred::<()>::new();
    let (a, b) = (d.trigger(), d.trigger());
    assert!(!b.is_called());
    a.callback(());
    assert!(b.is_called());
}

/// Seed 002's `ReverseClientProtocol`: the answer may arrive more than once, only the first
/// one fires the Deferred.
struct ReverseClientProtocol {
    answered: Option<Trigger<String>>,
}

impl ReverseClientProtocol {
    fn data_received(&mut self, data: &str) {
        if let Some(t) = self.answered.take() {
            t.callback(data.chars().rev().collect());
        }
    }

    fn connection_lost(&mut self) {
        if let Some(t) = self.answered.take() {
            t.errback(ConnectionDone);
        }
    }
}

#[test]
fn trigger_kept_in_option_fires_once_then_is_gone() {
    let answer = Deferred::<String>::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let mut p = ReverseClientProtocol {
        answered: Some(answer.trigger()),
    };
    let end = answer.add_callback(move |a| {
        s.borrow_mut().push(a.clone());
        a
    });
    p.data_received("olleh");
    p.data_received("again");
    p.connection_lost();
    assert!(p.answered.is_none());
    assert_eq!(*seen.borrow(), ["hello"]);
    assert_eq!(end.result().unwrap().unwrap(), "hello");
}

#[test]
fn trigger_kept_in_option_errbacks_when_the_connection_is_lost_first() {
    let answer = Deferred::<String>::new();
    let mut p = ReverseClientProtocol {
        answered: Some(answer.trigger()),
    };
    p.connection_lost();
    p.data_received("late");
    assert!(answer
        .result()
        .unwrap()
        .unwrap_err()
        .check::<ConnectionDone>());
}

#[test]
fn called_is_false_before_firing_and_true_after() {
    let d = Deferred::<i32>::new();
    assert!(!d.called());
    d.callback(1);
    assert!(d.called());
}

#[test]
fn called_is_true_after_an_errback() {
    let d = Deferred::<i32>::new();
    d.errback(TimeoutError);
    assert!(d.called());
    assert!(d.result().unwrap().is_err());
}

#[test]
fn succeed_and_fail_are_already_called() {
    assert!(succeed(1).called());
    let f = fail::<i32>(TimeoutError);
    assert!(f.called());
    assert!(f.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn result_is_none_before_firing() {
    let d = Deferred::<i32>::new();
    assert!(d.result().is_none());
    d.callback(9);
    assert_eq!(d.result().unwrap().unwrap(), 9);
}

#[test]
fn result_is_none_at_the_end_of_a_chain_that_has_not_fired() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let end = d.add_callback(|v| v * 3);
    assert!(end.result().is_none());
    assert!(!end.called());
    fire.callback(3);
    assert_eq!(end.result().unwrap().unwrap(), 9);
}

#[test]
fn result_can_be_taken_only_once() {
    let d = succeed(4);
    assert_eq!(d.result().unwrap().unwrap(), 4);
    assert!(d.result().is_none());
    assert!(
        d.called(),
        "a Deferred whose result was taken is still called"
    );
}

#[test]
fn a_chain_end_is_called_only_once_its_callbacks_have_run() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let end = d.add_callback(|v| v);
    assert!(!end.called());
    fire.callback(0);
    assert!(end.called());
}

#[test]
fn a_succeeded_deferred_behaves_as_a_fired_one_without_a_node() {
    // Fired: cannot be fired again, through itself or a trigger; cancelling does nothing.
    let d = succeed(1);
    assert!(d.try_callback(2).is_err());
    let d = succeed(1);
    assert!(d.trigger().try_errback(TimeoutError).is_err());
    d.cancel();
    assert!(d.called());
    assert_eq!(d.result().unwrap().unwrap(), 1);
    // Taken: spent.
    assert!(d.result().is_none());
    assert!(d.called());

    // Callbacks run at once; a failure they make goes on down the chain.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let d = succeed(2)
        .add_callback(|x| x * 10)
        .add_callback_result(|x| if x > 5 { Err(TimeoutError) } else { Ok(x) })
        .add_callback(|x: i32| x + 1)
        .add_errback(move |f| {
            s.borrow_mut().push(f.check::<TimeoutError>());
            Ok(-1)
        })
        .add_callback_deferred(|x| succeed(x - 1));
    assert_eq!(*seen.borrow(), [true]);
    assert_eq!(d.result().unwrap().unwrap(), -2);
}

#[test]
#[should_panic(expected = "already taken")]
fn adding_a_callback_after_taking_a_succeeded_result_panics() {
    let d = succeed(1);
    let _ = d.result();
    drop(d.add_callback(|x| x + 1));
}

/// Firing the end of a chain (a Deferred that callbacks were added to) would skip the
/// callbacks on the way: it is refused, loudly, and the chain still runs when its first
/// Deferred fires.
#[test]
fn firing_the_end_of_a_chain_is_refused_and_the_chain_still_runs() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    let end = d.add_callback(|x| x + 1);
    let refused = end.try_callback(5).unwrap_err();
    assert!(refused.to_string().contains("end of a chain"), "{refused}");
    assert!(end.trigger().try_errback(TimeoutError).is_err());
    assert!(!end.called());
    fire.callback(1);
    assert_eq!(end.result().unwrap().unwrap(), 2);
}
