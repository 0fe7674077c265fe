//! Delayed calls (`call_later` and `DelayedCall`): ordering, cancelling, moving, scale, and
//! fairness to I/O. Exact timing is tested on the manual `testing::Clock`; ordering, moving an
//! armed timer earlier and fairness on the real reactor.
//!
//! Every real-reactor test arms a 10 s safety timer that records a time-out and stops the
//! reactor, so a bug fails the test instead of hanging it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::support::{new_reactor, safety_timeout};
use torsion::error::DelayedCallError;
use torsion::reactor::DelayedCall;
use torsion::testing::Clock;
use torsion::{factory, Protocol, Reactor, Transport};

/// A counter of how many times a scheduled call ran.
fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn bump(c: &Rc<Cell<usize>>) -> impl FnOnce() + 'static {
    let c = c.clone();
    move || c.set(c.get() + 1)
}

#[test]
fn calls_with_different_delays_run_in_deadline_order() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let order: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    for (delay, name) in [(0.03, "third"), (0.01, "first"), (0.02, "second")] {
        let o = order.clone();
        r.call_later(delay, move || o.borrow_mut().push(name));
    }
    let stopper = r.clone();
    r.call_later(0.05, move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*order.borrow(), ["first", "second", "third"]);
}

#[test]
fn calls_with_equal_delays_run_in_scheduling_order() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let order: Rc<RefCell<Vec<usize>>> = Rc::default();
    for i in 0..100 {
        let o = order.clone();
        r.call_later(0.01, move || o.borrow_mut().push(i));
    }
    let stopper = r.clone();
    r.call_later(0.05, move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
}

#[test]
fn calls_due_at_the_same_instant_run_in_scheduling_order() {
    // On the manual clock the deadlines are exactly equal, so only the tie-break orders them.
    let clock = Clock::new();
    let order: Rc<RefCell<Vec<usize>>> = Rc::default();
    for i in 0..100 {
        let o = order.clone();
        clock.call_later(1.0, move || o.borrow_mut().push(i));
    }
    clock.advance(1.0);
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
}

#[test]
fn a_call_runs_exactly_when_its_time_comes() {
    let clock = Clock::new();
    let ran = counter();
    let call = clock.call_later(5.0, bump(&ran));
    assert_eq!(call.get_time(), Ok(5.0));
    clock.advance(4.999);
    assert_eq!(ran.get(), 0);
    assert!(call.active());
    clock.advance(0.001);
    assert_eq!(ran.get(), 1);
    assert!(!call.active());
    clock.advance(100.0);
    assert_eq!(ran.get(), 1, "a call runs once");
}

#[test]
fn a_cancelled_call_does_not_run_and_is_inactive() {
    let clock = Clock::new();
    let ran = counter();
    let call = clock.call_later(1.0, bump(&ran));
    assert!(call.active());
    assert_eq!(call.cancel(), Ok(()));
    assert!(!call.active());
    clock.advance(2.0);
    assert_eq!(ran.get(), 0);
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn cancelling_twice_fails_with_already_cancelled() {
    let clock = Clock::new();
    let call = clock.call_later(1.0, || ());
    call.cancel().unwrap();
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCancelled));
}

#[test]
fn cancelling_after_the_call_ran_fails_with_already_called() {
    let clock = Clock::new();
    let ran = counter();
    let call = clock.call_later(1.0, bump(&ran));
    clock.advance(1.0);
    assert_eq!(ran.get(), 1);
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCalled));
}

#[test]
fn cancelling_after_the_call_ran_on_the_reactor_fails_with_already_called() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let ran = counter();
    let call = r.call_later(0.0, bump(&ran));
    let stopper = r.clone();
    r.call_later(0.01, move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(ran.get(), 1);
    assert!(!call.active());
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCalled));
}

#[test]
fn reset_delay_and_get_time_fail_once_cancelled_or_called() {
    let clock = Clock::new();
    let cancelled = clock.call_later(1.0, || ());
    cancelled.cancel().unwrap();
    let called = clock.call_later(1.0, || ());
    clock.advance(1.0);
    for (call, expected) in [
        (&cancelled, DelayedCallError::AlreadyCancelled),
        (&called, DelayedCallError::AlreadyCalled),
    ] {
        assert_eq!(call.reset(1.0), Err(expected));
        assert_eq!(call.delay(1.0), Err(expected));
        assert_eq!(call.get_time(), Err(expected));
    }
}

#[test]
fn reset_moves_the_call_to_seconds_from_now() {
    let clock = Clock::new();
    let ran = counter();
    let call = clock.call_later(5.0, bump(&ran));
    clock.advance(2.0);
    call.reset(10.0).unwrap();
    assert_eq!(call.get_time(), Ok(12.0));
    assert_eq!(clock.pending_call_times(), [12.0]);
    clock.advance(9.0); // t = 11, past the old time 5
    assert_eq!(ran.get(), 0);
    clock.advance(1.0); // t = 12
    assert_eq!(ran.get(), 1);
    assert!(!call.active());
}

#[test]
fn reset_to_an_earlier_time_runs_the_call_sooner() {
    let clock = Clock::new();
    let ran = counter();
    let call = clock.call_later(10.0, bump(&ran));
    call.reset(1.0).unwrap();
    assert_eq!(call.get_time(), Ok(1.0));
    clock.advance(1.0);
    assert_eq!(ran.get(), 1);
    clock.advance(10.0);
    assert_eq!(ran.get(), 1, "the old time must not run it again");
}

#[test]
fn delay_moves_the_call_later_than_it_was_due() {
    let clock = Clock::new();
    let ran = counter();
    let call = clock.call_later(5.0, bump(&ran));
    clock.advance(1.0);
    call.delay(3.0).unwrap();
    assert_eq!(call.get_time(), Ok(8.0));
    clock.advance(6.0); // t = 7, past the old time 5
    assert_eq!(ran.get(), 0);
    assert!(call.active());
    clock.advance(1.0); // t = 8
    assert_eq!(ran.get(), 1);
}

#[test]
fn moving_a_call_many_times_leaves_one_pending_call_that_runs_once() {
    let clock = Clock::new();
    let ran = counter();
    let call = clock.call_later(1.0, bump(&ran));
    for _ in 0..10 {
        call.delay(1.0).unwrap();
        call.reset(2.0).unwrap();
    }
    assert_eq!(clock.pending_call_times(), [2.0]);
    clock.advance(100.0);
    assert_eq!(ran.get(), 1);
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn moved_calls_keep_deadline_order_with_other_calls() {
    let clock = Clock::new();
    let order: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let o = order.clone();
    let a = clock.call_later(1.0, move || o.borrow_mut().push("a"));
    let o = order.clone();
    clock.call_later(2.0, move || o.borrow_mut().push("b"));
    let o = order.clone();
    let c = clock.call_later(3.0, move || o.borrow_mut().push("c"));
    a.reset(4.0).unwrap(); // a: 1 -> 4
    c.reset(0.5).unwrap(); // c: 3 -> 0.5
    clock.advance(5.0);
    assert_eq!(*order.borrow(), ["c", "b", "a"]);
}

#[test]
fn reset_on_the_reactor_to_an_earlier_time_wakes_the_sleeping_timer() {
    // The reactor sleeps until its earliest deadline (5 s); moving that call to 0.01 s from
    // outside the timer's own callbacks must wake the sleep and run the call early.
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let start = r.seconds();
    let ran_at = Rc::new(Cell::new(None));
    let (at, clock) = (ran_at.clone(), r.clone());
    let call = Rc::new(r.call_later(5.0, move || {
        at.set(Some(clock.seconds()));
        clock.stop().unwrap();
    }));
    let handle = r.handle();
    let worker = thread::spawn(move || {
        handle.call_from_thread(|| {
            RESET_TARGET.with_borrow(|c| {
                c.as_ref()
                    .expect("the test left the call here")
                    .reset(0.01)
                    .unwrap()
            })
        })
    });
    RESET_TARGET.with_borrow_mut(|c| *c = Some(call.clone()));
    r.run().unwrap();
    assert!(worker.join().unwrap());
    assert!(!timed_out.get());
    let ran_at = ran_at.get().expect("the call ran");
    assert!(
        ran_at - start < 2.5,
        "the call moved to +0.01 s ran at +{:.3} s",
        ran_at - start
    );
}

thread_local! {
    /// The call `reset_on_the_reactor_to_an_earlier_time_wakes_the_sleeping_timer` moves from
    /// a `call_from_thread` job (which must be `Send`, so it cannot capture the call).
    static RESET_TARGET: RefCell<Option<Rc<DelayedCall>>> = const { RefCell::new(None) };
}

#[test]
fn get_time_on_the_reactor_is_seconds_at_scheduling_plus_the_delay() {
    let r = new_reactor();
    let before = r.seconds();
    let call = r.call_later(3.0, || ());
    let after = r.seconds();
    let due = call.get_time().unwrap();
    assert!(
        due >= before + 3.0 - 1e-6 && due <= after + 3.0 + 1e-6,
        "{before} .. {after} + 3 vs {due}"
    );
    assert_eq!(r.pending_call_times(), [due]);
}

/// Runs `f` on its own thread and waits at most `limit` for its answer, so that a
/// pathologically slow implementation fails the test instead of hanging it.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            worker.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}"),
    }
}

const MANY: usize = 1_000_000;

/// A permutation of `0..MANY` that jumps around the heap.
fn scrambled(i: usize) -> usize {
    (i * 7919) % MANY
}

#[test]
fn a_million_calls_scheduled_then_cancelled_leave_nothing_pending() {
    let (pending_before, pending_after, any_active, ran) = within(Duration::from_secs(120), || {
        let clock = Clock::new();
        let ran = counter();
        let calls: Vec<DelayedCall> = (0..MANY)
            .map(|i| clock.call_later(1.0 + (i % 1000) as f64 * 0.001, bump(&ran)))
            .collect();
        let pending_before = clock.pending_call_times().len();
        for i in 0..MANY {
            calls[scrambled(i)].cancel().unwrap();
        }
        let pending_after = clock.pending_call_times();
        let any_active = calls.iter().any(DelayedCall::active);
        clock.advance(10.0);
        (pending_before, pending_after, any_active, ran.get())
    });
    assert_eq!(pending_before, MANY);
    assert!(pending_after.is_empty(), "{} pending", pending_after.len());
    assert!(!any_active);
    assert_eq!(ran, 0);
}

#[test]
fn after_cancelling_most_of_a_million_calls_exactly_the_rest_run_in_order() {
    let (ran, pending) = within(Duration::from_secs(120), || {
        let clock = Clock::new();
        let ran: Rc<RefCell<Vec<usize>>> = Rc::default();
        let calls: Vec<DelayedCall> = (0..MANY)
            .map(|i| {
                let ran = ran.clone();
                // Later indices are due earlier, so the heap order is not insertion order.
                let due = 1.0 + (MANY - i) as f64 * 1e-6;
                clock.call_later(due, move || ran.borrow_mut().push(i))
            })
            .collect();
        for i in 0..MANY {
            let k = scrambled(i);
            if k % 1000 != 0 {
                calls[k].cancel().unwrap();
            }
        }
        let pending = clock.pending_call_times().len();
        clock.advance(10.0);
        let ran = ran.borrow().clone();
        (ran, pending)
    });
    let expected: Vec<usize> = (0..MANY).filter(|k| k % 1000 == 0).rev().collect();
    assert_eq!(pending, expected.len());
    assert_eq!(ran, expected);
}

/// State of a call that reschedules itself with `call_later(0, ..)` for as long as it may.
struct Spinner {
    reactor: Reactor,
    spins: Cell<u64>,
    timer_ran_at_spin: Cell<Option<u64>>,
    echo_at_spin: Cell<Option<u64>>,
    stopped_by_limit: Cell<bool>,
}

/// The most spins the fairness test allows before giving up on the other events.
const SPIN_LIMIT: u64 = 1_000_000;

fn spin(s: Rc<Spinner>) {
    let n = s.spins.get() + 1;
    s.spins.set(n);
    if s.timer_ran_at_spin.get().is_some() && s.echo_at_spin.get().is_some() {
        s.reactor.stop().unwrap();
        return;
    }
    if n >= SPIN_LIMIT {
        s.stopped_by_limit.set(true);
        s.reactor.stop().unwrap();
        return;
    }
    let next = s.clone();
    s.reactor.call_later(0.0, move || spin(next));
}

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

struct PingClient {
    spinner: Rc<Spinner>,
    received: Vec<u8>,
}

impl Protocol for PingClient {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"ping");
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.received.extend_from_slice(data);
        if self.received == b"ping" {
            self.spinner
                .echo_at_spin
                .set(Some(self.spinner.spins.get()));
            t.lose_connection();
        }
    }
}

#[test]
fn a_call_rescheduling_itself_with_zero_delay_does_not_starve_tcp_or_other_timers() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let port = r.listen_tcp_on(0, factory(|| Echo), "127.0.0.1").unwrap();
    let port = port.get_host().port().unwrap();
    let s = Rc::new(Spinner {
        reactor: r.clone(),
        spins: Cell::new(0),
        timer_ran_at_spin: Cell::new(None),
        echo_at_spin: Cell::new(None),
        stopped_by_limit: Cell::new(false),
    });
    let (spinner, inner) = (s.clone(), r.clone());
    r.call_when_running(move || {
        spin(spinner.clone());
        // Everything below starts while the spinner is already spinning.
        let t = spinner.clone();
        inner.call_later(0.01, move || t.timer_ran_at_spin.set(Some(t.spins.get())));
        let c = spinner.clone();
        inner.connect_tcp(
            "127.0.0.1",
            port,
            factory(move || PingClient {
                spinner: c.clone(),
                received: Vec::new(),
            }),
        );
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    assert!(
        !s.stopped_by_limit.get(),
        "after {} spins: timer ran at spin {:?}, echo at spin {:?}",
        s.spins.get(),
        s.timer_ran_at_spin.get(),
        s.echo_at_spin.get()
    );
    // The other events happened while the spinner was spinning, not before it started.
    assert!(s.timer_ran_at_spin.get().unwrap() >= 1);
    assert!(s.echo_at_spin.get().unwrap() >= 1);
    assert!(s.spins.get() > 1);
}

#[test]
fn resetting_a_call_very_often_keeps_the_timer_heap_small() {
    // A move sooner leaves a stale heap item; one per reset would grow without bound, and
    // compaction keeps the heap within a constant factor of the live calls. (Moves later
    // leave none: see the next test.)
    let clock = torsion::testing::Clock::new();
    let call = clock.call_later(1800.0, || ());
    for i in 0..200_000 {
        call.reset(if i % 2 == 0 { 900.0 } else { 1800.0 }).unwrap();
    }
    assert!(call.active());
    assert_eq!(clock.pending_call_times().len(), 1);
    assert!(
        clock.heap_len_for_tests() < 4096,
        "heap holds {} entries for one call",
        clock.heap_len_for_tests()
    );
}

#[test]
fn a_call_moved_later_runs_at_its_new_time_and_leaves_no_stale_item() {
    let clock = torsion::testing::Clock::new();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let call = clock.call_later(10.0, move || r.set(r.get() + 1));
    let other = clock.call_later(15.0, || ());
    // Moved later once per "request", as a keep-alive time-out is: no heap push.
    for step in 1..=100 {
        clock.advance(1.0);
        call.reset(10.0).unwrap();
        assert_eq!(call.get_time().unwrap(), f64::from(step) + 10.0);
    }
    // One item, the moved call's (the other call ran at 15 s): no stale items.
    assert_eq!(clock.heap_len_for_tests(), 1);
    // Its first deadline (10 s) passed long ago; the call is due at 110.
    assert_eq!(ran.get(), 0);
    assert!(!other.active());
    clock.advance(9.5);
    assert_eq!(ran.get(), 0);
    // delay() moves it later too; reset() sooner still works after lazy moves.
    call.delay(5.0).unwrap();
    assert_eq!(call.get_time().unwrap(), 115.0);
    call.reset(1.0).unwrap();
    assert_eq!(call.get_time().unwrap(), 110.5);
    clock.advance(0.9);
    assert_eq!(ran.get(), 0);
    clock.advance(0.1);
    assert_eq!(ran.get(), 1);
    assert_eq!(clock.heap_len_for_tests(), 0);
}

#[test]
fn cancelling_every_call_empties_the_timer_heap() {
    let clock = torsion::testing::Clock::new();
    let calls: Vec<_> = (0..10_000)
        .map(|i| clock.call_later(f64::from(i), || ()))
        .collect();
    assert_eq!(clock.heap_len_for_tests(), 10_000);
    for c in &calls[..9_999] {
        c.cancel().unwrap();
    }
    // Stale items are dropped lazily while a call is pending...
    assert_eq!(clock.heap_len_for_tests(), 10_000);
    calls[9_999].cancel().unwrap();
    // ...and all at once when none is.
    assert_eq!(clock.heap_len_for_tests(), 0);
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn stale_timer_items_are_dropped_when_they_surface_or_before_the_heap_grows() {
    let clock = torsion::testing::Clock::new();
    let ran = Rc::new(Cell::new(0));
    let schedule = |n: u32, at: f64| -> Vec<DelayedCall> {
        (0..n)
            .map(|i| {
                let r = ran.clone();
                clock.call_later(at + f64::from(i), move || r.set(r.get() + 1))
            })
            .collect()
    };
    // 100,000 calls; all but the last (due last) cancelled, in the order they are due.
    let calls = schedule(100_000, 0.0);
    for c in &calls[..99_999] {
        c.cancel().unwrap();
    }
    assert_eq!(clock.heap_len_for_tests(), 100_000);
    // The next look at the earliest deadline finds them at the top and drops them in one go.
    clock.advance(0.5);
    assert_eq!(clock.heap_len_for_tests(), 1);

    // Stale items below a live one stay until the heap would grow: then they go instead.
    let later = schedule(100_000, 1e6);
    for c in &later[..99_999] {
        c.cancel().unwrap();
    }
    let more = schedule(100_000, 2e6);
    assert_eq!(clock.pending_call_times().len(), 100_002);
    assert!(
        clock.heap_len_for_tests() < 200_000,
        "the heap holds {} items for 100,002 pending calls",
        clock.heap_len_for_tests()
    );

    // The live calls still run when due, not before.
    clock.advance(99_998.0);
    assert_eq!(ran.get(), 0);
    clock.advance(1.0);
    assert_eq!(ran.get(), 1);
    for c in &more {
        c.cancel().unwrap();
    }
    clock.advance(1e6);
    assert_eq!(ran.get(), 2);
    assert_eq!(clock.heap_len_for_tests(), 0);
}
