//! What the framework logs: unhandled failures in Deferreds, panics in user callbacks, with
//! their context. Captured with a `tracing` subscriber scoped to the test's thread.

use crate::support::{captured_log, Capture};
use torsion::defer::{fail, succeed, Deferred};
use torsion::error::TimeoutError;
use torsion::{Failure, Reactor};

#[test]
fn dropping_a_failed_deferred_logs_the_unhandled_failure() {
    let out = captured_log(|| {
        let d: Deferred<i32> = fail(TimeoutError);
        drop(d);
    });
    assert!(out.contains("Unhandled error in Deferred"), "{out}");
    assert!(out.contains("TimeoutError"), "{out}");
}

#[test]
fn a_handled_failure_is_not_logged() {
    let out = captured_log(|| {
        let d: Deferred<i32> = fail(TimeoutError);
        let d = d.add_errback(|_| Ok(0));
        drop(d);
    });
    assert!(!out.contains("Unhandled"), "{out}");
}

#[test]
fn the_failure_is_logged_when_the_last_handle_drops_not_before() {
    let capture = Capture::default();
    let check = capture.clone();
    capture.during(move || {
        let d: Deferred<i32> = Deferred::new();
        d.trigger().errback(TimeoutError);
        assert!(!check.text().contains("Unhandled"), "logged too early");
        drop(d);
        assert!(check.text().contains("Unhandled"));
    });
}

#[test]
fn a_panicking_delayed_call_is_logged_with_its_message_and_location() {
    let out = captured_log(|| {
        let r = Reactor::new();
        r.set_install_signal_handlers(false);
        r.call_later(0.0, || -> () { panic!("the oven caught fire") });
        let stopper = r.clone();
        r.call_later(0.0, move || stopper.stop().unwrap());
        r.run().unwrap();
    });
    assert!(out.contains("Unhandled error in a delayed call"), "{out}");
    assert!(out.contains("the oven caught fire"), "{out}");
    assert!(
        out.contains("logging.rs"),
        "the panic's location is reported: {out}"
    );
}

#[test]
fn log_err_reports_the_failure() {
    let out = captured_log(|| {
        torsion::log::err(&Failure::new(std::io::Error::other("disk full")), "saving");
    });
    assert!(out.contains("saving"), "{out}");
    assert!(out.contains("disk full"), "{out}");
}

#[test]
fn a_failure_at_the_end_of_callbacks_added_before_firing_is_logged_once_when_dropped() {
    let capture = Capture::default();
    let check = capture.clone();
    capture.during(move || {
        let d: Deferred<i32> = Deferred::new();
        let t = d.trigger();
        let d = d
            .add_callback(|x| x + 1)
            .add_callback_result(|_| Err::<i32, _>(TimeoutError))
            .add_callback(|x| x * 2);
        t.callback(1);
        assert!(!check.text().contains("Unhandled"), "logged too early");
        drop(d);
        assert_eq!(
            check.text().matches("Unhandled error in Deferred").count(),
            1
        );
        assert!(check.text().contains("TimeoutError"));
    });
}

#[test]
fn a_failure_made_by_a_callback_on_a_succeeded_deferred_is_logged_when_dropped() {
    let out = captured_log(|| {
        let d = succeed(1).add_callback_result(|_| Err::<i32, _>(TimeoutError));
        drop(d);
    });
    assert_eq!(
        out.matches("Unhandled error in Deferred").count(),
        1,
        "{out}"
    );
}

#[test]
fn a_failure_at_the_end_of_callbacks_that_changed_the_type_is_logged_once_when_dropped() {
    let out = captured_log(|| {
        let d: Deferred<i32> = Deferred::new();
        let t = d.trigger();
        let d = d
            .add_callback(|x| x.to_string())
            .add_callback_result(|_| Err::<String, _>(TimeoutError));
        t.callback(1);
        drop(d);
    });
    assert_eq!(
        out.matches("Unhandled error in Deferred").count(),
        1,
        "{out}"
    );
}
