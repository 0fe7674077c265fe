//! The reactor's life cycle on a real event loop: `run` blocks until `stop`, stopping and
//! restarting errors, `call_when_running`, system event triggers (phases, Deferreds that delay
//! shutdown, removal), panics in delayed calls, other threads (`call_from_thread`, remote
//! `stop`) and `seconds()`.
//!
//! Every test makes its own reactor and arms a 10 s safety timer that records a time-out and
//! stops the reactor, so a bug fails the test instead of hanging it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{captured_log, new_reactor, safety_timeout};
use torsion::defer::{Deferred, Trigger};
use torsion::error::{ReactorAlreadyRunning, ReactorNotRestartable, ReactorNotRunning};
use torsion::reactor::{Event, Phase};

/// Where the reactor thread keeps the `JoinHandle` of a thread it started.
type Worker<T> = Rc<RefCell<Option<JoinHandle<T>>>>;

/// A shared, ordered record of what happened.
type Journal = Rc<RefCell<Vec<&'static str>>>;

fn note(journal: &Journal, what: &'static str) {
    journal.borrow_mut().push(what);
}

/// Panics with `message` (a function, so that closures calling it return `()`).
fn explode(message: &str) {
    panic!("{message}");
}

#[test]
fn run_blocks_until_stop_is_called_and_then_returns_ok() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    let (j1, j2) = (journal.clone(), journal.clone());
    r.call_later(0.01, move || note(&j1, "earlier call"));
    let stopper = r.clone();
    r.call_later(0.05, move || {
        assert!(stopper.running());
        note(&j2, "stop called");
        stopper.stop().unwrap();
    });
    note(&journal, "run called");
    let result = r.run();
    note(&journal, "run returned");
    assert!(result.is_ok(), "run failed: {result:?}");
    assert!(!timed_out.get(), "the reactor did not stop");
    assert!(!r.running());
    assert_eq!(
        *journal.borrow(),
        ["run called", "earlier call", "stop called", "run returned"]
    );
}

#[test]
fn stop_before_run_fails_with_reactor_not_running() {
    let r = new_reactor();
    let err = r.stop().unwrap_err();
    assert!(err.check::<ReactorNotRunning>(), "got {err:?}");
}

#[test]
fn stop_after_run_returned_fails_with_reactor_not_running() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let stopper = r.clone();
    r.call_when_running(move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    let err = r.stop().unwrap_err();
    assert!(err.check::<ReactorNotRunning>(), "got {err:?}");
}

#[test]
fn stopping_twice_fails_the_second_time_with_reactor_not_running() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let second: Rc<RefCell<Option<Result<(), torsion::Failure>>>> = Rc::default();
    let slot = second.clone();
    let stopper = r.clone();
    r.call_later(0.0, move || {
        stopper.stop().unwrap();
        *slot.borrow_mut() = Some(stopper.stop());
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    let second = second.borrow_mut().take().expect("the call ran");
    let err = second.expect_err("a second stop must fail");
    assert!(err.check::<ReactorNotRunning>(), "got {err:?}");
}

#[test]
fn run_after_the_reactor_stopped_fails_with_reactor_not_restartable() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let stopper = r.clone();
    r.call_when_running(move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    let err = r.run().unwrap_err();
    assert!(err.check::<ReactorNotRestartable>(), "got {err:?}");
}

#[test]
fn run_while_running_fails_with_reactor_already_running() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let nested: Rc<RefCell<Option<Result<(), torsion::Failure>>>> = Rc::default();
    let slot = nested.clone();
    let inner = r.clone();
    r.call_later(0.0, move || {
        *slot.borrow_mut() = Some(inner.run());
        inner.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    let nested = nested.borrow_mut().take().expect("the call ran");
    let err = nested.expect_err("a nested run must fail");
    assert!(err.check::<ReactorAlreadyRunning>(), "got {err:?}");
}

#[test]
fn call_when_running_before_run_runs_when_the_reactor_starts() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let seen_running = Rc::new(Cell::new(None));
    let seen = seen_running.clone();
    let inner = r.clone();
    r.call_when_running(move || {
        seen.set(Some(inner.running()));
        inner.stop().unwrap();
    });
    assert_eq!(seen_running.get(), None, "it ran before run()");
    r.run().unwrap();
    assert!(!timed_out.get(), "call_when_running never ran");
    assert_eq!(seen_running.get(), Some(true));
}

#[test]
fn call_when_running_while_running_runs_at_once() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let ran_synchronously = Rc::new(Cell::new(None));
    let result = ran_synchronously.clone();
    let inner = r.clone();
    r.call_later(0.0, move || {
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        inner.call_when_running(move || flag.set(true));
        result.set(Some(ran.get()));
        inner.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(ran_synchronously.get(), Some(true));
}

#[test]
fn call_when_running_while_shutting_down_runs_at_once() {
    // Between stop() and the end of shutdown the reactor still runs (`running()` is true, and
    // in Twisted `callWhenRunning` calls at once until the "during shutdown" phase).
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let observed = Rc::new(Cell::new(None));
    let (slot, inner) = (observed.clone(), r.clone());
    r.add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        inner.call_when_running(move || flag.set(true));
        slot.set(Some((inner.running(), ran.get())));
    });
    let stopper = r.clone();
    r.call_later(0.0, move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    let (running, ran) = observed.get().expect("the trigger ran");
    assert!(running, "running() is true during 'before shutdown'");
    assert!(
        ran,
        "call_when_running while running() is true should call at once, not drop the call"
    );
}

#[test]
fn startup_triggers_run_before_then_during_then_after() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    // Added in the reverse order, so that only the phase can explain the order they run in.
    for (phase, name) in [
        (Phase::After, "after"),
        (Phase::During, "during"),
        (Phase::Before, "before"),
    ] {
        let j = journal.clone();
        r.add_system_event_trigger(phase, Event::Startup, move || note(&j, name));
    }
    let j = journal.clone();
    let stopper = r.clone();
    r.call_later(0.0, move || {
        note(&j, "first delayed call");
        stopper.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        *journal.borrow(),
        ["before", "during", "after", "first delayed call"]
    );
}

#[test]
fn shutdown_triggers_run_before_then_during_then_after() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    for (phase, name) in [
        (Phase::After, "after"),
        (Phase::During, "during"),
        (Phase::Before, "before"),
    ] {
        let j = journal.clone();
        r.add_system_event_trigger(phase, Event::Shutdown, move || note(&j, name));
    }
    let j = journal.clone();
    let stopper = r.clone();
    r.call_later(0.0, move || {
        note(&j, "stop");
        stopper.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*journal.borrow(), ["stop", "before", "during", "after"]);
}

#[test]
fn triggers_of_one_phase_run_in_the_order_they_were_added() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    for name in ["first", "second", "third"] {
        let j = journal.clone();
        r.add_system_event_trigger(Phase::During, Event::Shutdown, move || note(&j, name));
    }
    let stopper = r.clone();
    r.call_when_running(move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*journal.borrow(), ["first", "second", "third"]);
}

#[test]
fn a_before_shutdown_trigger_returning_a_deferred_delays_shutdown_until_it_fires() {
    let r = new_reactor();
    let journal: Journal = Rc::default();
    // The trigger is kept here so that the safety timer can fire it too: a shutdown that
    // never waited would otherwise be indistinguishable from one that waits forever.
    let pending: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let timed_out = Rc::new(Cell::new(false));
    {
        let (flag, pending, stopper) = (timed_out.clone(), pending.clone(), r.clone());
        r.call_later(10.0, move || {
            flag.set(true);
            if let Some(t) = pending.borrow_mut().take() {
                t.callback(());
            }
            let _ = stopper.stop();
        });
    }
    let fired_at = Rc::new(Cell::new(0.0));
    let after_at = Rc::new(Cell::new(0.0));
    {
        let (j, pending, inner, fired_at) = (
            journal.clone(),
            pending.clone(),
            r.clone(),
            fired_at.clone(),
        );
        r.add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
            note(&j, "before: waiting");
            let d: Deferred<()> = Deferred::new();
            *pending.borrow_mut() = Some(d.trigger());
            let (j, pending, clock) = (j.clone(), pending.clone(), inner.clone());
            inner.call_later(0.05, move || {
                note(&j, "deferred fired");
                fired_at.set(clock.seconds());
                if let Some(t) = pending.borrow_mut().take() {
                    t.callback(());
                }
            });
            d
        });
    }
    {
        let j = journal.clone();
        r.add_system_event_trigger(Phase::During, Event::Shutdown, move || note(&j, "during"));
        let (j, inner, after_at) = (journal.clone(), r.clone(), after_at.clone());
        r.add_system_event_trigger(Phase::After, Event::Shutdown, move || {
            note(&j, "after");
            after_at.set(inner.seconds());
        });
    }
    let stopper = r.clone();
    r.call_when_running(move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get(), "shutdown did not complete");
    assert_eq!(
        *journal.borrow(),
        ["before: waiting", "deferred fired", "during", "after"]
    );
    assert!(after_at.get() >= fired_at.get());
}

#[test]
fn a_before_startup_trigger_returning_a_deferred_delays_the_rest_of_startup() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    {
        let (j, inner) = (journal.clone(), r.clone());
        r.add_system_event_trigger(Phase::Before, Event::Startup, move || {
            note(&j, "before: waiting");
            let d: Deferred<()> = Deferred::new();
            let fire = d.trigger();
            let j = j.clone();
            inner.call_later(0.02, move || {
                note(&j, "deferred fired");
                fire.callback(());
            });
            d
        });
    }
    let j = journal.clone();
    r.add_system_event_trigger(Phase::During, Event::Startup, move || note(&j, "during"));
    let (j, stopper) = (journal.clone(), r.clone());
    r.call_when_running(move || {
        note(&j, "running");
        stopper.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        *journal.borrow(),
        ["before: waiting", "deferred fired", "during", "running"]
    );
}

#[test]
fn stop_while_a_before_startup_trigger_is_pending_still_makes_run_return() {
    // Twisted fires "shutdown" and returns from run() even if startup is still waiting on a
    // "before startup" Deferred (e.g. Ctrl-C while a start-up resource never comes).
    let r = new_reactor();
    let journal: Journal = Rc::default();
    let pending: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let timed_out = Rc::new(Cell::new(false));
    {
        // Safety: after 3 s, fire the startup Deferred so that a buggy run() can return.
        let (flag, pending, stopper) = (timed_out.clone(), pending.clone(), r.clone());
        r.call_later(3.0, move || {
            flag.set(true);
            if let Some(t) = pending.borrow_mut().take() {
                t.callback(());
            }
            let _ = stopper.stop();
        });
    }
    {
        let (j, pending) = (journal.clone(), pending.clone());
        r.add_system_event_trigger(Phase::Before, Event::Startup, move || {
            note(&j, "startup waits");
            let d: Deferred<()> = Deferred::new();
            *pending.borrow_mut() = Some(d.trigger());
            d
        });
    }
    let j = journal.clone();
    r.add_system_event_trigger(Phase::After, Event::Shutdown, move || note(&j, "shut down"));
    let (j, stopper) = (journal.clone(), r.clone());
    r.call_later(0.02, move || {
        note(&j, "stop");
        stopper.stop().unwrap();
    });
    r.run().unwrap();
    assert!(
        !timed_out.get(),
        "run() did not return after stop() while startup was pending: {:?}",
        journal.borrow()
    );
    assert_eq!(*journal.borrow(), ["startup waits", "stop", "shut down"]);
}

#[test]
fn a_removed_system_event_trigger_does_not_run() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    let j = journal.clone();
    let removed = r.add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
        note(&j, "removed trigger")
    });
    let j = journal.clone();
    r.add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
        note(&j, "kept trigger")
    });
    assert!(r.remove_system_event_trigger(removed));
    assert!(
        !r.remove_system_event_trigger(removed),
        "removing twice must say it was not there"
    );
    let stopper = r.clone();
    r.call_when_running(move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*journal.borrow(), ["kept trigger"]);
}

#[test]
fn removing_a_trigger_that_already_ran_returns_false() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    let id = r.add_system_event_trigger(Phase::During, Event::Startup, move || flag.set(true));
    let answer = Rc::new(Cell::new(None));
    let (slot, inner) = (answer.clone(), r.clone());
    r.call_when_running(move || {
        slot.set(Some(inner.remove_system_event_trigger(id)));
        inner.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    assert!(ran.get());
    assert_eq!(answer.get(), Some(false));
}

#[test]
fn a_panicking_delayed_call_is_logged_and_the_reactor_keeps_running() {
    let later_ran = Rc::new(Cell::new(false));
    let timed_out = Rc::new(Cell::new(true));
    let (flag, t) = (later_ran.clone(), timed_out.clone());
    let log = captured_log(move || {
        let r = new_reactor();
        let safety = safety_timeout(&r);
        r.call_later(0.0, || explode("delayed call went up in smoke"));
        let stopper = r.clone();
        r.call_later(0.02, move || {
            flag.set(true);
            stopper.stop().unwrap();
        });
        r.run().unwrap();
        t.set(safety.get());
    });
    assert!(!timed_out.get());
    assert!(later_ran.get(), "the later call did not run");
    assert!(log.contains("Unhandled error in a delayed call"), "{log}");
    assert!(log.contains("delayed call went up in smoke"), "{log}");
}

#[test]
fn a_panicking_delayed_call_does_not_stop_calls_due_at_the_same_time() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    let j = journal.clone();
    r.call_later(0.0, move || {
        note(&j, "panicking");
        explode("first call fails");
    });
    let (j, stopper) = (journal.clone(), r.clone());
    r.call_later(0.0, move || {
        note(&j, "second");
        stopper.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*journal.borrow(), ["panicking", "second"]);
}

#[test]
fn a_panicking_trigger_is_logged_and_the_other_triggers_still_run() {
    let journal: Journal = Rc::default();
    let timed_out = Rc::new(Cell::new(true));
    let (j, t) = (journal.clone(), timed_out.clone());
    let log = captured_log(move || {
        let r = new_reactor();
        let safety = safety_timeout(&r);
        r.add_system_event_trigger(Phase::Before, Event::Shutdown, || {
            explode("trigger went up in smoke")
        });
        let j2 = j.clone();
        r.add_system_event_trigger(Phase::Before, Event::Shutdown, move || note(&j2, "before"));
        r.add_system_event_trigger(Phase::After, Event::Shutdown, move || note(&j, "after"));
        let stopper = r.clone();
        r.call_when_running(move || stopper.stop().unwrap());
        r.run().unwrap();
        t.set(safety.get());
    });
    assert!(!timed_out.get());
    assert_eq!(*journal.borrow(), ["before", "after"]);
    assert!(log.contains("trigger went up in smoke"), "{log}");
}

#[test]
fn call_from_thread_runs_the_function_on_the_reactor_thread() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let reactor_thread = thread::current().id();
    let ran_on: Arc<Mutex<Option<ThreadId>>> = Arc::default();
    let worker: Worker<(ThreadId, bool)> = Rc::default();
    let handle = r.handle();
    let (ran, slot) = (ran_on.clone(), worker.clone());
    r.call_when_running(move || {
        let t = thread::spawn(move || {
            let accepted = handle.call_from_thread(move || {
                *ran.lock().unwrap() = Some(thread::current().id());
                torsion::reactor().stop().unwrap();
            });
            (thread::current().id(), accepted)
        });
        *slot.borrow_mut() = Some(t);
    });
    r.run().unwrap();
    let (worker_thread, accepted) = worker.borrow_mut().take().unwrap().join().unwrap();
    assert!(!timed_out.get(), "the call from the thread never ran");
    assert!(accepted, "call_from_thread refused a running reactor");
    let ran_on = ran_on.lock().unwrap().expect("the call ran");
    assert_eq!(ran_on, reactor_thread);
    assert_ne!(ran_on, worker_thread);
}

#[test]
fn calls_from_one_thread_run_in_the_order_they_were_made() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let order = Arc::new(Mutex::new(Vec::new()));
    let handle = r.handle();
    let worker: Worker<()> = Rc::default();
    let (o, slot) = (order.clone(), worker.clone());
    r.call_when_running(move || {
        *slot.borrow_mut() = Some(thread::spawn(move || {
            for i in 0..1000 {
                let o = o.clone();
                handle.call_from_thread(move || o.lock().unwrap().push(i));
            }
            handle.stop();
        }));
    });
    r.run().unwrap();
    worker.borrow_mut().take().unwrap().join().unwrap();
    assert!(!timed_out.get());
    assert_eq!(*order.lock().unwrap(), (0..1000).collect::<Vec<_>>());
}

#[test]
fn call_from_thread_before_run_waits_for_the_reactor_to_run() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let ran = Arc::new(Mutex::new(false));
    let flag = ran.clone();
    let handle = r.handle();
    let accepted = thread::spawn(move || {
        handle.call_from_thread(move || {
            *flag.lock().unwrap() = true;
            torsion::reactor().stop().unwrap();
        })
    })
    .join()
    .unwrap();
    assert!(accepted);
    assert!(!*ran.lock().unwrap(), "ran before the reactor ran");
    r.run().unwrap();
    assert!(!timed_out.get(), "the queued call never ran");
    assert!(*ran.lock().unwrap());
}

#[test]
fn call_from_thread_after_the_reactor_finished_is_refused() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let stopper = r.clone();
    r.call_when_running(move || stopper.stop().unwrap());
    r.run().unwrap();
    assert!(!timed_out.get());
    let handle = r.handle();
    let ran = Arc::new(Mutex::new(false));
    let flag = ran.clone();
    let accepted =
        thread::spawn(move || handle.call_from_thread(move || *flag.lock().unwrap() = true))
            .join()
            .unwrap();
    assert!(!accepted);
    assert!(!*ran.lock().unwrap());
}

#[test]
fn a_panicking_call_from_thread_is_logged_and_the_reactor_keeps_running() {
    let timed_out = Rc::new(Cell::new(true));
    let later_ran = Arc::new(Mutex::new(false));
    let (t, flag) = (timed_out.clone(), later_ran.clone());
    let log = captured_log(move || {
        let r = new_reactor();
        let safety = safety_timeout(&r);
        let handle = r.handle();
        let worker: Worker<()> = Rc::default();
        let slot = worker.clone();
        r.call_when_running(move || {
            *slot.borrow_mut() = Some(thread::spawn(move || {
                handle.call_from_thread(|| explode("remote call went up in smoke"));
                handle.call_from_thread(move || {
                    *flag.lock().unwrap() = true;
                    torsion::reactor().stop().unwrap();
                });
            }));
        });
        r.run().unwrap();
        worker.borrow_mut().take().unwrap().join().unwrap();
        t.set(safety.get());
    });
    assert!(!timed_out.get());
    assert!(*later_ran.lock().unwrap());
    assert!(log.contains("remote call went up in smoke"), "{log}");
}

#[test]
fn reactor_handle_stop_from_another_thread_stops_the_reactor() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let journal: Journal = Rc::default();
    let j = journal.clone();
    r.add_system_event_trigger(Phase::After, Event::Shutdown, move || note(&j, "shut down"));
    let handle = r.handle();
    let worker: Worker<bool> = Rc::default();
    let slot = worker.clone();
    r.call_when_running(move || {
        *slot.borrow_mut() = Some(thread::spawn(move || handle.stop()));
    });
    r.run().unwrap();
    let accepted = worker.borrow_mut().take().unwrap().join().unwrap();
    assert!(!timed_out.get(), "the remote stop did not stop the reactor");
    assert!(accepted);
    assert_eq!(*journal.borrow(), ["shut down"]);
}

#[test]
fn seconds_is_wall_clock_time_and_advances() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = r.seconds();
    assert!(
        (start - wall).abs() < 5.0,
        "seconds() = {start}, wall clock = {wall}"
    );
    let samples: Rc<RefCell<Vec<f64>>> = Rc::default();
    let (s, clock) = (samples.clone(), r.clone());
    r.call_later(0.0, move || s.borrow_mut().push(clock.seconds()));
    let (s, clock) = (samples.clone(), r.clone());
    r.call_later(0.05, move || {
        s.borrow_mut().push(clock.seconds());
        clock.stop().unwrap();
    });
    r.run().unwrap();
    assert!(!timed_out.get());
    let samples = samples.borrow();
    assert_eq!(samples.len(), 2);
    assert!(samples[0] >= start, "{samples:?} vs {start}");
    assert!(samples[1] >= samples[0], "{samples:?}");
    assert!(
        samples[1] - start >= 0.05 - 1e-6,
        "a call 0.05 s later ran at +{}",
        samples[1] - start
    );
}
