//! Custom system events (`fire_system_event`, Twisted's `fireSystemEvent`) and `crash`
//! (Twisted's `reactor.crash()`: stop at once, no shutdown triggers).

use std::cell::RefCell;
use std::rc::Rc;

use crate::support::{captured_log, new_reactor, safety_timeout};
use torsion::defer::{fail, Deferred};
use torsion::error::{ReactorNotRestartable, TimeoutError};
use torsion::reactor::{Event, Phase};

/// A shared, ordered record of what happened.
type Journal = Rc<RefCell<Vec<&'static str>>>;

fn note(journal: &Journal, what: &'static str) {
    journal.borrow_mut().push(what);
}

/// Adds a trigger for `phase` of `event` that notes `what`.
fn noting(r: &torsion::Reactor, journal: &Journal, phase: Phase, event: Event, what: &'static str) {
    let j = journal.clone();
    r.add_system_event_trigger(phase, event, move || note(&j, what));
}

#[test]
fn a_custom_event_waits_for_before_deferreds_then_runs_during_and_after() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    let persist = Event::Custom("persist");
    noting(&r, &journal, Phase::After, persist, "after");
    noting(&r, &journal, Phase::During, persist, "during");
    let (j, timer) = (journal.clone(), r.clone());
    r.add_system_event_trigger(Phase::Before, persist, move || {
        note(&j, "before");
        let d = Deferred::<()>::new();
        let fire = d.trigger();
        let j = j.clone();
        timer.call_later(0.01, move || {
            note(&j, "before's Deferred fires");
            fire.callback(());
        });
        d
    });
    let (j, fire_r) = (journal.clone(), r.clone());
    r.call_when_running(move || {
        let done = fire_r.fire_system_event("persist");
        note(&j, "fire_system_event returned");
        let (j, stopper) = (j.clone(), fire_r.clone());
        done.add_callback(move |()| {
            note(&j, "done");
            stopper.stop().unwrap();
        });
    });
    r.run().unwrap();
    assert!(!timed_out.get(), "the event never finished");
    assert_eq!(
        *journal.borrow(),
        [
            "before",
            "fire_system_event returned",
            "before's Deferred fires",
            "during",
            "after",
            "done"
        ]
    );
}

#[test]
fn a_custom_event_runs_its_triggers_once_and_only_its_own() {
    let r = new_reactor();
    let journal: Journal = Rc::default();
    noting(
        &r,
        &journal,
        Phase::During,
        Event::Custom("persist"),
        "persist",
    );
    noting(&r, &journal, Phase::During, Event::Custom("other"), "other");
    noting(
        &r,
        &journal,
        Phase::Before,
        Event::Shutdown,
        "reactor shutdown",
    );
    noting(
        &r,
        &journal,
        Phase::Before,
        Event::Startup,
        "reactor startup",
    );
    assert!(r.fire_system_event("persist").called());
    assert!(r.fire_system_event("persist").called());
    // Custom("shutdown") is not the reactor's shutdown.
    assert!(r.fire_system_event("shutdown").called());
    assert_eq!(*journal.borrow(), ["persist"]);
    noting(
        &r,
        &journal,
        Phase::After,
        Event::Custom("persist"),
        "added later",
    );
    r.fire_system_event("persist");
    assert_eq!(*journal.borrow(), ["persist", "added later"]);
}

#[test]
fn a_failed_before_deferred_is_logged_and_the_event_goes_on() {
    let r = new_reactor();
    let journal: Journal = Rc::default();
    let event = Event::Custom("persist");
    r.add_system_event_trigger(Phase::Before, event, || fail::<()>(TimeoutError));
    noting(&r, &journal, Phase::After, event, "after");
    let log = captured_log(|| {
        let done = r.fire_system_event("persist");
        assert!(done.result().unwrap().is_ok());
    });
    assert_eq!(*journal.borrow(), ["after"]);
    assert!(
        log.contains("TimeoutError") || log.contains("timed out"),
        "{log}"
    );
    assert!(log.contains("persist"), "{log}");
}

#[test]
fn crash_returns_from_run_without_running_shutdown_triggers() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    noting(
        &r,
        &journal,
        Phase::Before,
        Event::Shutdown,
        "before shutdown",
    );
    noting(
        &r,
        &journal,
        Phase::During,
        Event::Shutdown,
        "during shutdown",
    );
    noting(
        &r,
        &journal,
        Phase::After,
        Event::Shutdown,
        "after shutdown",
    );
    let (j, crasher) = (journal.clone(), r.clone());
    r.call_when_running(move || {
        note(&j, "crash");
        crasher.crash();
    });
    r.run().unwrap();
    note(&journal, "run returned");
    assert!(!timed_out.get(), "crash did not stop the reactor");
    assert!(!r.running());
    assert_eq!(*journal.borrow(), ["crash", "run returned"]);
    assert!(r.run().unwrap_err().check::<ReactorNotRestartable>());
}

#[test]
fn crash_before_run_does_nothing() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    r.crash();
    let journal: Journal = Rc::default();
    noting(
        &r,
        &journal,
        Phase::After,
        Event::Shutdown,
        "after shutdown",
    );
    let stopper = r.clone();
    r.call_when_running(move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*journal.borrow(), ["after shutdown"]);
}

#[test]
fn a_trigger_may_add_a_trigger_to_its_own_phase_or_remove_a_later_one() {
    // Twisted pops the triggers one at a time: both changes take effect in the same firing.
    let r = new_reactor();
    let journal: Journal = Rc::default();
    let event = Event::Custom("persist");
    let later: Rc<RefCell<Option<torsion::reactor::TriggerId>>> = Rc::default();
    let (j, adder, l) = (journal.clone(), r.clone(), later.clone());
    r.add_system_event_trigger(Phase::During, event, move || {
        note(&j, "first");
        assert!(adder.remove_system_event_trigger(l.borrow().unwrap()));
        let j = j.clone();
        adder.add_system_event_trigger(Phase::During, event, move || note(&j, "added"));
    });
    let j = journal.clone();
    let id = r.add_system_event_trigger(Phase::During, event, move || note(&j, "removed"));
    *later.borrow_mut() = Some(id);
    r.fire_system_event("persist");
    assert_eq!(*journal.borrow(), ["first", "added"]);
}
