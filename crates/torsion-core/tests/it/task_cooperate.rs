//! Cooperator: round-robin steps, Deferred items pause a task, pause/resume/stop.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::error::CancelledError;
use torsion::task::Cooperator;
use torsion::testing::Clock;

type Log = Rc<RefCell<Vec<String>>>;

fn steps(log: &Log, name: &'static str, n: usize) -> impl Iterator<Item = ()> {
    let log = log.clone();
    (0..n).map(move |i| log.borrow_mut().push(format!("{name}{i}")))
}

#[test]
fn tasks_take_turns_and_finish() {
    let clock = Clock::new();
    let coop = Cooperator::with_clock(clock.clone());
    let log: Log = Rc::default();
    let a = coop.cooperate(steps(&log, "a", 2));
    let b = coop.cooperate(steps(&log, "b", 3));
    let (da, db) = (a.when_done(), b.when_done());
    assert!(
        log.borrow().is_empty(),
        "nothing runs before the reactor turns"
    );
    clock.advance(0.0);
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "b2"]);
    assert!(da.result().unwrap().is_ok() && db.result().unwrap().is_ok());
}

#[test]
fn a_deferred_item_pauses_only_its_task() {
    let clock = Clock::new();
    let coop = Cooperator::with_clock(clock.clone());
    let log: Log = Rc::default();
    let gate: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let (g, l) = (gate.clone(), log.clone());
    let waiter = (0..2).map(move |i| {
        l.borrow_mut().push(format!("w{i}"));
        let d = Deferred::new();
        *g.borrow_mut() = Some(d.trigger());
        d
    });
    coop.cooperate(waiter);
    coop.cooperate(steps(&log, "s", 3));
    clock.advance(0.0);
    assert_eq!(*log.borrow(), ["w0", "s0", "s1", "s2"]);
    gate.borrow_mut().take().unwrap().callback(());
    clock.advance(0.0);
    assert_eq!(log.borrow().last().unwrap(), "w1");
}

#[test]
fn pause_resume_and_stop() {
    let clock = Clock::new();
    let coop = Cooperator::with_clock(clock.clone());
    let log: Log = Rc::default();
    let t = coop.cooperate(steps(&log, "x", 100));
    t.pause();
    clock.advance(0.0);
    assert!(log.borrow().is_empty());
    t.resume();
    let done = t.when_done();
    t.stop();
    clock.advance(0.0);
    assert!(log.borrow().is_empty(), "stopped before it ran");
    assert!(done
        .result()
        .unwrap()
        .unwrap_err()
        .check::<CancelledError>());
}

#[test]
fn a_panicking_step_fails_the_task_not_the_others() {
    let clock = Clock::new();
    let coop = Cooperator::with_clock(clock.clone());
    let log: Log = Rc::default();
    let bad = coop.cooperate((0..3).map(|i| {
        if i == 1 {
            panic!("step broke")
        }
    }));
    let good = coop.cooperate(steps(&log, "g", 3));
    let (bd, gd) = (bad.when_done(), good.when_done());
    clock.advance(0.0);
    assert!(bd.result().unwrap().unwrap_err().is_panic());
    assert!(gd.result().unwrap().is_ok());
    assert_eq!(log.borrow().len(), 3);
}

#[test]
fn a_long_job_lets_the_reactor_run_other_calls_between_slices() {
    // Each step takes ~1 ms; a timer due "now" must run long before 500 steps are done.
    let r = torsion::Reactor::new();
    r.set_install_signal_handlers(false);
    let steps_done = Rc::new(std::cell::Cell::new(0));
    let seen_by_timer = Rc::new(std::cell::Cell::new(None));
    let (n, seen) = (steps_done.clone(), seen_by_timer.clone());
    let coop = Cooperator::new();
    let task = coop.cooperate((0..500).map(move |_| {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(1);
        while std::time::Instant::now() < until {}
        n.set(n.get() + 1);
    }));
    let n = steps_done.clone();
    r.call_later(0.0, move || seen.set(Some(n.get())));
    task.when_done().add_both(|_| torsion::reactor().stop());
    r.run().unwrap();
    assert_eq!(steps_done.get(), 500);
    let at = seen_by_timer.get().expect("the timer ran");
    assert!(at < 100, "the timer waited for {at} steps");
}
