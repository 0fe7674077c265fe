//! `DeferredList`, `gather_results` and `fire_on_one_callback`: waiting for several Deferreds.

use std::cell::Cell;
use std::rc::Rc;

use torsion::defer::{
    fail, gather_results, succeed, AllFailedError, Deferred, DeferredList, FirstError, Trigger,
};
use torsion::error::{CancelledError, ConnectionDone, TimeoutError};

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
    let list = DeferredList::new(vec![
        succeed(1),
        fail(TimeoutError),
        succeed(3),
        fail(ConnectionDone),
    ]);
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
    let all = gather_results(vec![succeed(1), fail(ConnectionDone), succeed(3)]);
    let failure = all.result().unwrap().unwrap_err();
    let first = failure
        .downcast_ref::<FirstError>()
        .unwrap_or_else(|| panic!("not a FirstError: {failure:?}"));
    assert_eq!(first.index, 1);
    assert!(first.failure.check::<ConnectionDone>());
}

#[test]
fn gather_results_fails_at_the_first_failure_without_waiting_for_the_rest() {
    let (ds, ts) = pending(3);
    let all = gather_results(ds);
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
fn fire_on_one_errback_is_gather_results() {
    let ok = DeferredList::fire_on_one_errback(vec![succeed(1), succeed(2)]);
    assert_eq!(ok.result().unwrap().unwrap(), [1, 2]);
    let bad = DeferredList::fire_on_one_errback(vec![succeed(1), fail(TimeoutError)]);
    let failure = bad.result().unwrap().unwrap_err();
    assert_eq!(failure.downcast_ref::<FirstError>().unwrap().index, 1);
}

#[test]
fn fire_on_one_callback_gives_the_index_and_value_of_the_first_success() {
    let (ds, ts) = pending(3);
    let first = DeferredList::fire_on_one_callback(ds);
    let mut ts = ts.into_iter();
    let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
    t0.errback(TimeoutError);
    assert!(!first.called(), "a failure fired fire_on_one_callback");
    t2.callback(22);
    assert!(first.called());
    t1.callback(11);
    assert_eq!(first.result().unwrap().unwrap(), (2, 22));
}

#[test]
fn fire_on_one_callback_fails_with_all_failed_error_when_all_fail() {
    let (ds, ts) = pending(2);
    let first = DeferredList::fire_on_one_callback(ds);
    let mut ts = ts.into_iter();
    let (t0, t1) = (ts.next().unwrap(), ts.next().unwrap());
    t1.errback(ConnectionDone);
    assert!(!first.called());
    t0.errback(TimeoutError);
    let failure = first.result().unwrap().unwrap_err();
    let all = failure
        .downcast_ref::<AllFailedError>()
        .unwrap_or_else(|| panic!("not an AllFailedError: {failure:?}"));
    assert_eq!(all.failures.len(), 2);
    assert!(all.failures[0].check::<TimeoutError>(), "not in list order");
    assert!(
        all.failures[1].check::<ConnectionDone>(),
        "not in list order"
    );
}

#[test]
fn fire_on_one_callback_of_nothing_fails_with_all_failed_error() {
    let first = DeferredList::fire_on_one_callback(Vec::<Deferred<i32>>::new());
    let failure = first.result().unwrap().unwrap_err();
    assert!(failure
        .downcast_ref::<AllFailedError>()
        .unwrap()
        .failures
        .is_empty());
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
    let cancelled = Rc::new(Cell::new(0));
    let (mut ds, ts) = cancellable(2, &cancelled);
    ds.push(succeed(7));
    let list = DeferredList::new(ds);
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
    let list = DeferredList::new(ds);
    let mut ts = ts.into_iter();
    ts.next().unwrap().callback(1);
    list.cancel();
    assert_eq!(cancelled.get(), 2);
    let results = list.result().unwrap().unwrap();
    assert_eq!(*results[0].as_ref().unwrap(), 1);
}

#[test]
fn cancelling_gather_results_cancels_its_members() {
    let cancelled = Rc::new(Cell::new(0));
    let (ds, _ts) = cancellable(3, &cancelled);
    let all = gather_results(ds);
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
    let first = DeferredList::fire_on_one_callback(ds);
    first.cancel();
    assert_eq!(cancelled.get(), 2);
    let failure = first.result().unwrap().unwrap_err();
    assert!(failure.check::<AllFailedError>(), "{failure:?}");
}

#[test]
fn cancelling_a_deferred_list_runs_the_canceller_of_a_member_without_a_kept_trigger() {
    // Twisted's DeferredList keeps its Deferreds and cancels each one, so each canceller runs.
    let cancelled = Rc::new(Cell::new(0));
    let c = cancelled.clone();
    let member = Deferred::<i32>::with_canceller(move |_| c.set(c.get() + 1));
    let list = DeferredList::new(vec![member]);
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
    let first = DeferredList::fire_on_one_callback(ds);
    let mut ts = ts.into_iter();
    ts.next().unwrap().callback(1);
    first.cancel();
    assert_eq!(
        cancelled.get(),
        0,
        "a member was cancelled after the list fired"
    );
    assert_eq!(first.result().unwrap().unwrap(), (0, 1));
    assert!(!ts.next().unwrap().is_called());
}
