//! SIGINT and SIGTERM stop the reactor through the shutdown triggers; a second signal stops it
//! at once, even while a "before shutdown" Deferred is still pending. One test function in its
//! own binary, because signals go to the whole process.

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;

use torsion::defer::Deferred;
use torsion::reactor::{Event, Phase};
use torsion::Reactor;

fn signal_self(name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn signals_stop_the_reactor_through_the_shutdown_triggers() {
    // 1. SIGINT: before, during and after shutdown triggers all run, then run() returns.
    let r = Reactor::new();
    let journal = Rc::new(RefCell::new(Vec::new()));
    for (phase, name) in [
        (Phase::Before, "before"),
        (Phase::During, "during"),
        (Phase::After, "after"),
    ] {
        let j = journal.clone();
        r.add_system_event_trigger(phase, Event::Shutdown, move || j.borrow_mut().push(name));
    }
    r.call_when_running(|| signal_self("INT"));
    let guard = r.clone();
    r.call_later(20.0, move || guard.stop()); // only if the signal never arrived
    r.run().unwrap();
    assert_eq!(*journal.borrow(), ["before", "during", "after"]);

    // 2. SIGTERM while a "before shutdown" Deferred never fires: the first signal waits for
    //    it, the second stops at once.
    let r = Reactor::new();
    let stuck: Deferred<()> = Deferred::new();
    let keep = stuck.trigger();
    let mut stuck = Some(stuck);
    r.add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
        stuck.take().unwrap()
    });
    r.call_when_running(|| signal_self("TERM"));
    r.call_later(0.2, || signal_self("TERM"));
    let started = r.seconds();
    r.run().unwrap();
    assert!(r.seconds() - started < 10.0);
    assert!(!keep.is_called(), "stopped without the stuck Deferred");
}
