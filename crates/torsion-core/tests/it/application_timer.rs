//! `TimerService` (Twisted's `TimerService`): calls its function at once and every step
//! seconds while running, on a testing `Clock`; stopping ends the calls and waits for a
//! call's pending Deferred; a failing call ends the calls without stopping the service.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torsion::application::{Service, TimerService};
use torsion::defer::{fail, Deferred, Trigger};
use torsion::error::TimeoutError;
use torsion::testing::Clock;

fn counting(step: f64) -> (TimerService, Clock, Rc<Cell<u32>>) {
    let clock = Clock::new();
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let service = TimerService::new(step, move || t.set(t.get() + 1));
    service.set_clock(clock.clone());
    (service, clock, ticks)
}

#[test]
fn timer_service_calls_at_start_and_every_step_until_stopped() {
    let (service, clock, ticks) = counting(2.0);
    assert_eq!(ticks.get(), 0, "nothing before start");
    service.start_service();
    assert!(service.running() && service.looping());
    assert_eq!(ticks.get(), 1, "the first call is at start");
    clock.advance(1.9);
    assert_eq!(ticks.get(), 1);
    clock.advance(0.1);
    assert_eq!(ticks.get(), 2);
    clock.pump(&[2.0, 2.0]);
    assert_eq!(ticks.get(), 4);

    let stopped = service.stop_service();
    assert!(matches!(stopped.result(), Some(Ok(()))));
    assert!(!service.running() && !service.looping());
    clock.advance(20.0);
    assert_eq!(ticks.get(), 4, "no call after stopping");
    assert!(clock.pending_call_times().is_empty());

    // A restart starts a new loop, calling at once again.
    service.start_service();
    assert_eq!(ticks.get(), 5);
    clock.advance(2.0);
    assert_eq!(ticks.get(), 6);
    assert!(service.stop_service().result().is_some());
}

#[test]
fn stopping_waits_for_the_running_calls_deferred() {
    let clock = Clock::new();
    let pending: Rc<RefCell<Option<Trigger<()>>>> = Rc::default();
    let calls = Rc::new(Cell::new(0));
    let (p, c) = (pending.clone(), calls.clone());
    let service = TimerService::new(1.0, move || {
        c.set(c.get() + 1);
        let d = Deferred::new();
        *p.borrow_mut() = Some(d.trigger());
        d
    });
    service.set_clock(clock.clone());
    service.start_service();
    assert_eq!(calls.get(), 1);

    let stopped = service.stop_service();
    assert!(!stopped.called(), "the call's Deferred is still pending");
    pending.borrow_mut().take().unwrap().callback(());
    assert!(matches!(stopped.result(), Some(Ok(()))));
    clock.advance(5.0);
    assert_eq!(calls.get(), 1, "no call after stopping");
}

#[test]
fn a_failing_call_ends_the_calls_but_not_the_service() {
    let clock = Clock::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let service = TimerService::new(1.0, move || {
        c.set(c.get() + 1);
        if c.get() == 2 {
            fail(TimeoutError)
        } else {
            torsion::defer::succeed(())
        }
    });
    service.set_clock(clock.clone());
    service.start_service();
    clock.advance(1.0);
    assert_eq!(calls.get(), 2);
    assert!(!service.looping(), "the failure ended the loop");
    assert!(service.running(), "the service runs until stopped");
    clock.advance(5.0);
    assert_eq!(calls.get(), 2);
    assert!(matches!(service.stop_service().result(), Some(Ok(()))));
}
