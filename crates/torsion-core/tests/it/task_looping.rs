//! LoopingCall on a test Clock: alignment to intervals, skipping late intervals as Twisted
//! does, waiting on returned Deferreds, stopping, failing, and `defer_later`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torsion::defer::Deferred;
use torsion::error::CancelledError;
use torsion::task::{defer_later, LoopingCall};
use torsion::testing::Clock;
use torsion::Failure;

fn counting(clock: &Clock) -> (LoopingCall, Rc<RefCell<Vec<f64>>>) {
    let times = Rc::new(RefCell::new(Vec::new()));
    let (t, c) = (times.clone(), clock.clone());
    let lc = LoopingCall::new(move || t.borrow_mut().push(c.seconds()));
    lc.set_clock(clock.clone());
    (lc, times)
}

#[test]
fn calls_at_each_interval_starting_now() {
    let clock = Clock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(2.0, true);
    clock.pump(&[1.0, 1.0, 1.0, 1.0]);
    assert_eq!(*times.borrow(), vec![0.0, 2.0, 4.0]);
    assert_eq!(lc.calls(), 3);
}

#[test]
fn start_without_now_waits_one_interval() {
    let clock = Clock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(1.5, false);
    clock.advance(1.0);
    assert!(times.borrow().is_empty());
    clock.advance(0.5);
    assert_eq!(*times.borrow(), vec![1.5]);
}

#[test]
fn late_calls_skip_missed_intervals_instead_of_bursting() {
    let clock = Clock::new();
    let counts = Rc::new(RefCell::new(Vec::new()));
    let c = counts.clone();
    let lc = LoopingCall::with_count(move |n| c.borrow_mut().push(n));
    lc.set_clock(clock.clone());
    let _done = lc.start(1.0, true);
    clock.advance(1.0);
    clock.advance(3.2); // due at 2; runs at 4.2: intervals 2, 3 and 4 fold into one call
    assert_eq!(*counts.borrow(), vec![1, 1, 3]);
    assert_eq!(lc.skipped(), 2);
    clock.advance(0.8); // next call is aligned to 5, not 5.2
    assert_eq!(*counts.borrow(), vec![1, 1, 3, 1]);
}

#[test]
fn a_returned_deferred_delays_the_next_call() {
    let clock = Clock::new();
    let pending: Rc<RefCell<Option<torsion::defer::Trigger<()>>>> = Rc::default();
    let calls = Rc::new(Cell::new(0));
    let (p, n) = (pending.clone(), calls.clone());
    let lc = LoopingCall::new(move || {
        n.set(n.get() + 1);
        let d = Deferred::new();
        *p.borrow_mut() = Some(d.trigger());
        d
    });
    lc.set_clock(clock.clone());
    let _done = lc.start(1.0, true);
    clock.pump(&[1.0, 1.0, 1.0]);
    assert_eq!(calls.get(), 1, "waits for the first call's Deferred");
    pending.borrow_mut().take().unwrap().callback(());
    clock.advance(1.0);
    assert_eq!(calls.get(), 2);
}

#[test]
fn stop_fires_the_start_deferred_and_cancels_the_next_call() {
    let clock = Clock::new();
    let (lc, times) = counting(&clock);
    let done = lc.start(1.0, true);
    lc.stop();
    assert!(done.result().unwrap().is_ok());
    assert!(!lc.running());
    clock.advance(5.0);
    assert_eq!(times.borrow().len(), 1);
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn a_failing_call_stops_the_loop_with_its_failure() {
    let clock = Clock::new();
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    let lc = LoopingCall::new(move || {
        m.set(m.get() + 1);
        if m.get() == 2 {
            Err(Failure::new(std::io::Error::other("disk full")))
        } else {
            Ok(())
        }
    });
    lc.set_clock(clock.clone());
    let done = lc.start(1.0, true);
    clock.pump(&[1.0, 1.0, 1.0]);
    assert_eq!(n.get(), 2);
    let f = done.result().unwrap().unwrap_err();
    assert!(f.check::<std::io::Error>());
    assert!(!lc.running());
}

#[test]
fn a_panicking_call_stops_the_loop_with_a_panic_failure() {
    let clock = Clock::new();
    let lc = LoopingCall::new(|| -> () { panic!("tick") });
    lc.set_clock(clock.clone());
    let done = lc.start(1.0, true);
    assert!(done.result().unwrap().unwrap_err().is_panic());
}

#[test]
fn defer_later_fires_after_the_delay_and_can_be_cancelled() {
    let clock = Clock::new();
    let d = defer_later(&clock, 3.0, || 42);
    clock.advance(2.9);
    assert!(!d.called());
    clock.advance(0.1);
    assert_eq!(d.result().unwrap().unwrap(), 42);

    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let d = defer_later(&clock, 1.0, move || r.set(true));
    d.cancel();
    clock.advance(2.0);
    assert!(!ran.get());
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
    assert!(clock.pending_call_times().is_empty());
}
