//! `DeferredList` (and its Twisted flags), `gather_results` and `race`: waiting for several
//! Deferreds.

use std::cell::Cell;
use std::rc::Rc;

use torsion::defer::{
    fail, gather_results, race, succeed, AllFailedError, Deferred, DeferredList, FailureGroup,
    FirstError, Trigger,
};
use torsion::error::{CancelledError, ConnectionDone, TimeoutError};

use crate::support::captured_log;

const UNHANDLED: &str = "Unhandled error in Deferred";

/// `n` unfired Deferreds and their triggers.
fn pending(n: usize) -> (Vec<Deferred<i32>>, Vec<Trigger<i32>>) {
    let ds: Vec<Deferred<i32>> = (0..n).map(|_| Deferred::new()).collect();
    let ts = ds.iter().map(Deferred::trigger).collect();
    (ds, ts)
}

#[test]
fn deferred_list_keeps_the_order_of_the_list_not_of_firing() {
    let (ds, ts) = pending(3);
    let list = DeferredList::new(ds);
    let mut ts = ts.into_iter();
    let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
    t2.callback(2);
    assert!(!list.called());
    t0.callback(0);
    assert!(!list.called(), "fired before every member fired");
    t1.callback(1);
    let results = list.result().unwrap().unwrap();
    let values: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, [0, 1, 2]);
}

#[test]
fn deferred_list_reports_successes_and_failures_in_place() {
    // Failures consumed: their logging is tested below.
    let list = DeferredList::builder(vec![
        succeed(1),
        fail(TimeoutError),
        succeed(3),
        fail(ConnectionDone),
    ])
    .consume_errors(true)
    .build();
    let results = list.result().unwrap().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(*results[0].as_ref().unwrap(), 1);
    assert!(results[1].as_ref().unwrap_err().check::<TimeoutError>());
    assert_eq!(*results[2].as_ref().unwrap(), 3);
    assert!(results[3].as_ref().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn empty_deferred_list_fires_at_once() {
    let list = DeferredList::new(Vec::<Deferred<i32>>::new());
    assert!(list.called());
    assert!(list.result().unwrap().unwrap().is_empty());
}

#[test]
fn deferred_list_of_chained_deferreds_waits_for_their_ends() {
    let root = Deferred::<i32>::new();
    let fire = root.trigger();
    let list = DeferredList::new(vec![root.add_callback(|v| v * 10), succeed(5)]);
    assert!(!list.called());
    fire.callback(4);
    let values: Vec<i32> = list
        .result()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [40, 5]);
}

#[test]
fn gather_results_gives_the_values_in_order() {
    let (ds, ts) = pending(3);
    let all = gather_results(ds);
    for (i, t) in ts.into_iter().enumerate().rev() {
        assert!(!all.called());
        t.callback(i as i32 * 100);
    }
    assert_eq!(all.result().unwrap().unwrap(), [0, 100, 200]);
}

#[test]
fn gather_results_of_nothing_fires_at_once_with_no_values() {
    let all = gather_results(Vec::<Deferred<String>>::new());
    assert!(all.result().unwrap().unwrap().is_empty());
}

#[test]
fn gather_results_fails_with_first_error_naming_the_index_and_the_failure() {
    // Failures consumed: their logging is tested below.
    let all = DeferredList::builder(vec![succeed(1), fail(ConnectionDone), succeed(3)])
        .consume_errors(true)
        .gather();
    let failure = all.result().unwrap().unwrap_err();
    let first = failure
        .downcast_ref::<FirstError>()
        .unwrap_or_else(|| panic!("not a FirstError: {failure:?}"));
    assert_eq!(first.index, 1);
    assert!(first.failure.check::<ConnectionDone>());
}

#[test]
fn gather_results_fails_at_the_first_failure_without_waiting_for_the_rest() {
    // Failures consumed: their logging is tested below.
    let (ds, ts) = pending(3);
    let all = DeferredList::builder(ds).consume_errors(true).gather();
    let mut ts = ts.into_iter();
    let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
    t2.errback(TimeoutError);
    assert!(all.called(), "did not fail at once");
    t1.errback(ConnectionDone);
    t0.callback(0);
    let failure = all.result().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 2);
    assert!(first.failure.check::<TimeoutError>());
}

#[test]
fn fire_on_one_errback_fails_at_the_first_failure_and_otherwise_gives_the_list() {
    let ok = DeferredList::builder(vec![succeed(1), succeed(2)])
        .fire_on_one_errback(true)
        .build();
    let values: Vec<i32> = ok
        .result()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [1, 2]);
    let (ds, ts) = pending(3);
    let bad = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_errback(true)
        .build();
    let mut ts = ts.into_iter();
    ts.next().unwrap().callback(0);
    ts.next().unwrap().errback(TimeoutError);
    assert!(bad.called(), "waited for the rest after a failure");
    let failure = bad.result().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 1);
    assert!(first.failure.check::<TimeoutError>());
}

#[test]
fn fire_on_one_callback_gives_the_index_and_value_of_the_first_success() {
    // Failures consumed: their logging is tested below.
    let (ds, ts) = pending(3);
    let first = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_callback();
    let mut ts = ts.into_iter();
    let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
    t0.errback(TimeoutError);
    assert!(!first.called(), "a failure fired fire_on_one_callback");
    t2.callback(22);
    assert!(first.called());
    t1.callback(11);
    assert_eq!(first.result().unwrap().unwrap().unwrap(), (2, 22));
}

#[test]
fn fire_on_one_callback_calls_back_with_all_failed_error_when_all_fail() {
    // Failures consumed: their logging is tested below.
    let (ds, ts) = pending(2);
    let first = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_callback();
    let mut ts = ts.into_iter();
    let (t0, t1) = (ts.next().unwrap(), ts.next().unwrap());
    t1.errback(ConnectionDone);
    assert!(!first.called());
    t0.errback(TimeoutError);
    // As in Twisted, which calls back with the result list: a value, not a failure.
    let all: AllFailedError = first.result().unwrap().unwrap().unwrap_err();
    assert_eq!(all.failures.len(), 2);
    assert!(all.failures[0].check::<TimeoutError>(), "not in list order");
    assert!(
        all.failures[1].check::<ConnectionDone>(),
        "not in list order"
    );
}

#[test]
fn fire_on_one_callback_of_nothing_calls_back_at_once_with_all_failed_error() {
    // Twisted's never fires; see docs/design.md, "fireOnOneCallback of an empty list".
    let first = DeferredList::builder(Vec::<Deferred<i32>>::new()).fire_on_one_callback();
    let all = first.result().unwrap().unwrap().unwrap_err();
    assert!(all.failures.is_empty());
}

/// `n` unfired Deferreds whose cancellers count into `cancelled`, with their triggers.
fn cancellable(n: usize, cancelled: &Rc<Cell<usize>>) -> (Vec<Deferred<i32>>, Vec<Trigger<i32>>) {
    let ds: Vec<Deferred<i32>> = (0..n)
        .map(|_| {
            let c = cancelled.clone();
            Deferred::with_canceller(move |_| c.set(c.get() + 1))
        })
        .collect();
    let ts = ds.iter().map(Deferred::trigger).collect();
    (ds, ts)
}

#[test]
fn cancelling_a_deferred_list_cancels_its_pending_members() {
    // Failures consumed: their logging is tested below.
    let cancelled = Rc::new(Cell::new(0));
    let (mut ds, ts) = cancellable(2, &cancelled);
    ds.push(succeed(7));
    let list = DeferredList::builder(ds).consume_errors(true).build();
    list.cancel();
    assert_eq!(cancelled.get(), 2, "pending members not cancelled");
    assert!(ts.iter().all(Trigger::is_called));
    // As in Twisted, the list fires with each member's outcome.
    let results = list.result().unwrap().unwrap();
    assert!(results[0].as_ref().unwrap_err().check::<CancelledError>());
    assert!(results[1].as_ref().unwrap_err().check::<CancelledError>());
    assert_eq!(*results[2].as_ref().unwrap(), 7);
}

#[test]
fn cancelling_a_deferred_list_leaves_fired_members_alone() {
    let cancelled = Rc::new(Cell::new(0));
    let (ds, ts) = cancellable(3, &cancelled);
    let list = DeferredList::builder(ds).consume_errors(true).build();
    let mut ts = ts.into_iter();
    ts.next().unwrap().callback(1);
    list.cancel();
    assert_eq!(cancelled.get(), 2);
    let results = list.result().unwrap().unwrap();
    assert_eq!(*results[0].as_ref().unwrap(), 1);
}

#[test]
fn cancelling_gather_results_cancels_its_members() {
    // Failures consumed: their logging is tested below.
    let cancelled = Rc::new(Cell::new(0));
    let (ds, _ts) = cancellable(3, &cancelled);
    let all = DeferredList::builder(ds).consume_errors(true).gather();
    all.cancel();
    assert_eq!(cancelled.get(), 3);
    let failure = all.result().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 0);
    assert!(first.failure.check::<CancelledError>());
}

#[test]
fn cancelling_fire_on_one_callback_cancels_its_members() {
    let cancelled = Rc::new(Cell::new(0));
    let (ds, _ts) = cancellable(2, &cancelled);
    let first = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_callback();
    first.cancel();
    assert_eq!(cancelled.get(), 2);
    let all = first.result().unwrap().unwrap().unwrap_err();
    assert!(all.failures.iter().all(|f| f.check::<CancelledError>()));
}

#[test]
fn cancelling_a_deferred_list_runs_the_canceller_of_a_member_without_a_kept_trigger() {
    // Failures consumed: their logging is tested below.
    // Twisted's DeferredList keeps its Deferreds and cancels each one, so each canceller runs.
    let cancelled = Rc::new(Cell::new(0));
    let c = cancelled.clone();
    let member = Deferred::<i32>::with_canceller(move |_| c.set(c.get() + 1));
    let list = DeferredList::builder(vec![member])
        .consume_errors(true)
        .build();
    list.cancel();
    assert_eq!(cancelled.get(), 1, "the member's canceller never ran");
    let results = list.result().unwrap().unwrap();
    assert!(results[0].as_ref().unwrap_err().check::<CancelledError>());
}

#[test]
fn cancelling_a_fired_fire_on_one_callback_leaves_the_other_members_alone() {
    // Twisted: once the list has fired, cancel does nothing, even to members still pending.
    let cancelled = Rc::new(Cell::new(0));
    let (ds, ts) = cancellable(2, &cancelled);
    let first = DeferredList::builder(ds).fire_on_one_callback();
    let mut ts = ts.into_iter();
    ts.next().unwrap().callback(1);
    first.cancel();
    assert_eq!(
        cancelled.get(),
        0,
        "a member was cancelled after the list fired"
    );
    assert_eq!(first.result().unwrap().unwrap().unwrap(), (0, 1));
    assert!(!ts.next().unwrap().is_called());
}

// consumeErrors: Twisted's default (False) leaves each member's failure in the member, where it
// is logged as unhandled when the member is garbage-collected, although the list has it too.

#[test]
fn a_deferred_list_logs_member_failures_as_unhandled_when_dropped_by_default() {
    let log = captured_log(|| {
        let list = DeferredList::new(vec![succeed(1), fail(TimeoutError), fail(ConnectionDone)]);
        let results = list.result().unwrap().unwrap();
        assert!(results[1].as_ref().unwrap_err().check::<TimeoutError>());
        assert!(results[2].as_ref().unwrap_err().check::<ConnectionDone>());
        drop(list);
    });
    assert_eq!(log.matches(UNHANDLED).count(), 2, "{log}");
    assert!(log.contains("Deferred #1 of a DeferredList"), "{log}");
    assert!(log.contains("TimeoutError"), "{log}");
    assert!(log.contains("Deferred #2 of a DeferredList"), "{log}");
}

#[test]
fn a_deferred_list_logs_nothing_until_it_is_dropped() {
    // Twisted logs when the member is garbage-collected: the list keeps it until then.
    let (ds, ts) = pending(1);
    let kept = std::cell::RefCell::new(None);
    let log = captured_log(|| {
        let list = DeferredList::new(ds);
        ts.into_iter().next().unwrap().errback(TimeoutError);
        assert!(list.called());
        *kept.borrow_mut() = Some(list);
    });
    assert!(
        !log.contains(UNHANDLED),
        "logged while the list is alive: {log}"
    );
    let log = captured_log(|| drop(kept.take()));
    assert_eq!(log.matches(UNHANDLED).count(), 1, "{log}");
}

#[test]
fn consume_errors_keeps_member_failures_out_of_the_log() {
    let log = captured_log(|| {
        let list = DeferredList::builder(vec![succeed(1), fail(TimeoutError)])
            .consume_errors(true)
            .build();
        let results = list.result().unwrap().unwrap();
        assert!(results[1].as_ref().unwrap_err().check::<TimeoutError>());
    });
    assert!(log.is_empty(), "{log}");
}

#[test]
fn gather_results_logs_every_member_failure_by_default_the_first_included() {
    // Twisted's gatherResults(consumeErrors=False): the first failure is in the FirstError
    // and, like the later ones, left unhandled in its member.
    let (ds, ts) = pending(3);
    let log = captured_log(|| {
        let all = gather_results(ds);
        let mut ts = ts.into_iter();
        let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
        t1.errback(TimeoutError);
        t2.errback(ConnectionDone);
        t0.callback(0);
        let failure = all.result().unwrap().unwrap_err();
        assert_eq!(failure.downcast_ref::<FirstError>().unwrap().index, 1);
    });
    assert_eq!(log.matches(UNHANDLED).count(), 2, "{log}");
    assert!(
        log.contains("ConnectionDone"),
        "the later failure was dropped: {log}"
    );
}

#[test]
fn gather_with_consume_errors_logs_later_failures_as_warnings_not_silently() {
    // Twisted's gatherResults(consumeErrors=True) drops the failures after the first; Torsion
    // logs them (docs/design.md, "Failures after the first").
    let (ds, ts) = pending(3);
    let log = captured_log(|| {
        let all = DeferredList::builder(ds).consume_errors(true).gather();
        let mut ts = ts.into_iter();
        let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
        t0.errback(TimeoutError);
        t1.errback(ConnectionDone);
        t2.callback(2);
        let failure = all.result().unwrap().unwrap_err();
        let first = failure.downcast_ref::<FirstError>().unwrap();
        assert_eq!(first.index, 0);
        assert!(first.failure.check::<TimeoutError>());
    });
    assert!(!log.contains(UNHANDLED), "{log}");
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(
        log.contains("Deferred #1 of a DeferredList failed after the list fired"),
        "{log}"
    );
    assert!(log.contains("ConnectionDone"), "{log}");
}

#[test]
fn fire_on_one_callback_with_fire_on_one_errback_fails_at_the_first_failure() {
    let (ds, ts) = pending(2);
    let first = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_errback(true)
        .fire_on_one_callback();
    let mut ts = ts.into_iter();
    ts.next().unwrap().errback(TimeoutError);
    let failure = first.result().unwrap().unwrap_err();
    assert_eq!(failure.downcast_ref::<FirstError>().unwrap().index, 0);
    ts.next().unwrap().callback(1);
}

#[test]
fn fire_on_one_callback_gives_index_then_value_like_enumerate() {
    // Twisted's pair is (result, index); see docs/design.md, "(index, value) pairs".
    let first = DeferredList::builder(vec![fail(TimeoutError), succeed("b")])
        .consume_errors(true)
        .fire_on_one_callback();
    let (index, value) = first.result().unwrap().unwrap().unwrap();
    assert_eq!((index, value), (1, "b"));
}

// race (Twisted 22.x `defer.race`).

#[test]
fn race_gives_the_first_success_and_cancels_the_others() {
    let cancelled = Rc::new(Cell::new(0));
    let (ds, ts) = cancellable(3, &cancelled);
    let winner = race(ds);
    let mut ts = ts.into_iter();
    let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
    t1.callback(11);
    assert_eq!(cancelled.get(), 2, "the losers were not cancelled");
    assert!(t0.is_called() && t2.is_called());
    assert_eq!(winner.result().unwrap().unwrap(), (1, 11));
}

#[test]
fn race_ignores_failures_before_a_success() {
    let (ds, ts) = pending(3);
    let winner = race(ds);
    let mut ts = ts.into_iter();
    let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
    t0.errback(TimeoutError);
    assert!(!winner.called());
    t2.callback(22);
    assert_eq!(winner.result().unwrap().unwrap(), (2, 22));
    assert!(t1.is_called(), "the loser was not cancelled");
}

#[test]
fn race_fails_with_a_failure_group_in_list_order_when_all_fail() {
    let (ds, ts) = pending(2);
    let winner = race(ds);
    let mut ts = ts.into_iter();
    let (t0, t1) = (ts.next().unwrap(), ts.next().unwrap());
    t1.errback(ConnectionDone);
    assert!(!winner.called());
    t0.errback(TimeoutError);
    let failure = winner.result().unwrap().unwrap_err();
    let group = failure
        .downcast_ref::<FailureGroup>()
        .unwrap_or_else(|| panic!("not a FailureGroup: {failure:?}"));
    assert_eq!(group.failures.len(), 2);
    assert!(
        group.failures[0].check::<TimeoutError>(),
        "not in list order"
    );
    assert!(
        group.failures[1].check::<ConnectionDone>(),
        "not in list order"
    );
}

#[test]
fn race_of_nothing_fails_at_once_with_an_empty_group() {
    let winner = race(Vec::<Deferred<i32>>::new());
    let failure = winner.result().unwrap().unwrap_err();
    assert!(failure
        .downcast_ref::<FailureGroup>()
        .unwrap()
        .failures
        .is_empty());
}

#[test]
fn cancelling_a_race_cancels_every_member() {
    let cancelled = Rc::new(Cell::new(0));
    let (ds, _ts) = cancellable(2, &cancelled);
    let winner = race(ds);
    winner.cancel();
    assert_eq!(cancelled.get(), 2);
    let failure = winner.result().unwrap().unwrap_err();
    let group = failure.downcast_ref::<FailureGroup>().unwrap();
    assert!(group.failures.iter().all(|f| f.check::<CancelledError>()));
}

#[test]
fn race_consumes_the_losers_cancellations_but_logs_another_late_failure() {
    let log = captured_log(|| {
        // A loser whose canceller fails it with its own error.
        let stubborn = Deferred::<i32>::with_canceller(|t| t.errback(TimeoutError));
        let quiet = Deferred::<i32>::new();
        let (winner_d, fire) = {
            let d = Deferred::<i32>::new();
            let t = d.trigger();
            (d, t)
        };
        let winner = race(vec![stubborn, quiet, winner_d]);
        fire.callback(3);
        assert_eq!(winner.result().unwrap().unwrap(), (2, 3));
    });
    assert!(!log.contains(UNHANDLED), "{log}");
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(log.contains("Deferred #0 of a race failed"), "{log}");
    assert!(log.contains("TimeoutError"), "{log}");
}
