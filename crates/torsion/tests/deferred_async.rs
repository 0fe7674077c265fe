//! A `Deferred` is a `Future`: `ensure_deferred` and `Reactor::spawn` on a running reactor.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use torsion::defer::{ensure_deferred, fail, succeed, Deferred};
use torsion::error::{CancelledError, ConnectionDone, TimeoutError};
use torsion::{reactor, Failure, Reactor};

/// What a test saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

/// Runs a fresh reactor, calls `setup` once it runs, and returns what was logged. `setup` (or
/// what it schedules) stops the reactor with [`stop`]; after 10 s a safety timer logs
/// "SAFETY TIMEOUT" and stops it, so a bug cannot hang the test.
fn run_reactor(setup: impl FnOnce(Log) + 'static) -> Vec<String> {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    let seen: Log = Rc::default();
    let s = seen.clone();
    r.call_later(10.0, move || {
        push(&s, "SAFETY TIMEOUT");
        let _ = reactor().stop();
    });
    let s = seen.clone();
    r.call_when_running(move || setup(s));
    r.run().unwrap();
    let out = seen.borrow().clone();
    out
}

/// The message of a panic failure, without the "(at file:line)" suffix.
fn panic_text(f: &Failure) -> String {
    let m = f.error_message();
    m.split(" (at ").next().unwrap_or_default().to_string()
}

/// Stops the running reactor.
fn stop() {
    reactor().stop().expect("the reactor was not running");
}

/// Logs the outcome of `d` as "ok VALUE" or "err MESSAGE", then stops the reactor.
fn log_outcome_and_stop<T: std::fmt::Debug + 'static>(d: Deferred<T>, log: &Log) {
    let s = log.clone();
    d.add_both(move |out| {
        match &out {
            Ok(v) => push(&s, format!("ok {v:?}")),
            Err(f) => push(&s, format!("err {}", f.error_message())),
        }
        stop();
        out.map(|_| ())
    })
    .add_errback(|_| Ok(()));
}

#[test]
fn ensure_deferred_awaits_a_deferred_fired_later_by_the_reactor() {
    let seen = run_reactor(|log| {
        let s = log.clone();
        let result = ensure_deferred(async move {
            let d = Deferred::<i32>::new();
            let fire = d.trigger();
            let s2 = s.clone();
            reactor().call_later(0.0, move || {
                push(&s2, "firing");
                fire.callback(20);
            });
            push(&s, "waiting");
            let v = d.await?;
            push(&s, format!("got {v}"));
            Ok::<_, Failure>(v + 22)
        });
        log_outcome_and_stop(result, &log);
    });
    assert_eq!(seen, ["waiting", "firing", "got 20", "ok 42"]);
}

#[test]
fn ensure_deferred_awaits_several_deferreds_in_sequence() {
    let seen = run_reactor(|log| {
        let result = ensure_deferred(async move {
            let mut total = 0;
            for i in 1..=3 {
                let d = Deferred::<i32>::new();
                let fire = d.trigger();
                reactor().call_later(0.0, move || fire.callback(i * 10));
                total += d.await?;
            }
            Ok::<_, Failure>(total)
        });
        log_outcome_and_stop(result, &log);
    });
    assert_eq!(seen, ["ok 60"]);
}

#[test]
fn question_mark_turns_an_error_into_the_failure_of_the_deferred() {
    let seen = run_reactor(|log| {
        let s = log.clone();
        let result = ensure_deferred(async move {
            let n: i32 = "not a number".parse()?;
            push(&s, "after the error");
            Ok::<_, Failure>(n)
        });
        let s = log.clone();
        result
            .add_errback(move |f| {
                push(
                    &s,
                    format!("parse error {}", f.check::<std::num::ParseIntError>()),
                );
                stop();
                Ok(0)
            })
            .add_callback(|_| ());
    });
    assert_eq!(seen, ["parse error true"]);
}

#[test]
fn question_mark_passes_on_the_failure_of_an_awaited_deferred() {
    let seen = run_reactor(|log| {
        let d = Deferred::<i32>::new();
        let fire = d.trigger();
        reactor().call_later(0.0, move || fire.errback(ConnectionDone));
        let result = ensure_deferred(async move {
            let v = d.await?;
            Ok::<_, Failure>(v)
        });
        log_outcome_and_stop(result, &log);
    });
    assert_eq!(seen, [format!("err {ConnectionDone}")]);
}

#[test]
fn an_awaited_failure_can_be_handled_like_try_except() {
    let seen = run_reactor(|log| {
        let result = ensure_deferred(async move {
            let v = match fail::<i32>(TimeoutError).await {
                Ok(v) => v,
                Err(f) => {
                    f.trap::<TimeoutError>()?;
                    -1
                }
            };
            Ok::<_, Failure>(v)
        });
        log_outcome_and_stop(result, &log);
    });
    assert_eq!(seen, ["ok -1"]);
}

#[test]
fn a_panic_inside_the_async_block_becomes_a_failure() {
    let seen = run_reactor(|log| {
        let result = ensure_deferred(async move {
            let v: i32 = succeed(1).await?;
            if v == 1 {
                panic!("async kaboom");
            }
            Ok::<_, Failure>(v)
        });
        let s = log.clone();
        result
            .add_errback(move |f| {
                push(&s, format!("{} {}", f.is_panic(), panic_text(&f)));
                stop();
                Ok(0)
            })
            .add_callback(|_| ());
    });
    assert_eq!(seen, ["true panic: async kaboom"]);
}

#[test]
fn awaiting_an_already_fired_deferred_gives_its_value() {
    let seen = run_reactor(|log| {
        let ready = succeed("ready".to_string());
        let result = ensure_deferred(async move {
            let v = ready.await?;
            let n = succeed(v.len()).add_callback(|n| n * 2).await?;
            Ok::<_, Failure>(format!("{v} {n}"))
        });
        log_outcome_and_stop(result, &log);
    });
    assert_eq!(seen, ["ok \"ready 10\""]);
}

#[test]
fn ensure_deferred_starts_the_future_at_once_as_twisted_does() {
    // Twisted's ensureDeferred runs the coroutine until its first wait on an unfired Deferred
    // before returning, so a coroutine that awaits only fired Deferreds has already fired.
    let seen = run_reactor(|log| {
        let s = log.clone();
        let d = ensure_deferred(async move {
            push(&s, "body");
            let v = succeed(1).await?;
            Ok::<_, Failure>(v)
        });
        push(&log, format!("returned, called={}", d.called()));
        log_outcome_and_stop(d, &log);
    });
    assert_eq!(seen, ["body", "returned, called=true", "ok 1"]);
}

#[test]
fn reactor_spawn_runs_a_tokio_future() {
    let seen = run_reactor(|log| {
        let s = log.clone();
        let d = reactor().spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            push(&s, "slept");
            7
        });
        log_outcome_and_stop(d, &log);
    });
    assert_eq!(seen, ["slept", "ok 7"]);
}

#[test]
fn a_panic_in_a_spawned_future_becomes_a_failure() {
    let seen = run_reactor(|log| {
        let d = reactor().spawn(async {
            tokio::task::yield_now().await;
            panic!("spawned kaboom");
        });
        let s = log.clone();
        d.add_errback(move |f| {
            push(&s, format!("{} {}", f.is_panic(), panic_text(&f)));
            stop();
            Ok(())
        })
        .add_callback(|()| ());
    });
    assert_eq!(seen, ["true panic: spawned kaboom"]);
}

/// Logs "dropped" when the future holding it is dropped.
struct DropGuard(Log);

impl Drop for DropGuard {
    fn drop(&mut self) {
        push(&self.0, "future dropped");
    }
}

/// Checks on each reactor turn (up to 100) whether the log holds `entry`, then stops.
fn stop_once_logged(log: Log, entry: &'static str, turns: u32) {
    if log.borrow().iter().any(|e| e == entry) || turns == 0 {
        stop();
    } else {
        reactor().call_later(0.0, move || stop_once_logged(log, entry, turns - 1));
    }
}

#[test]
fn cancelling_an_ensure_deferred_drops_the_future() {
    let seen = run_reactor(|log| {
        let never = Deferred::<i32>::new();
        let keep = never.trigger();
        let guard = DropGuard(log.clone());
        let d = ensure_deferred(async move {
            let _guard = guard;
            let v = never.await?;
            Ok::<_, Failure>(v)
        });
        let s = log.clone();
        let d = d.add_errback(move |f| {
            push(&s, format!("cancelled {}", f.check::<CancelledError>()));
            Ok(0)
        });
        let s = log.clone();
        reactor().call_later(0.0, move || {
            d.cancel();
            stop_once_logged(s, "future dropped", 100);
            drop(keep);
        });
    });
    assert_eq!(seen, ["cancelled true", "future dropped"]);
}

#[test]
fn awaiting_a_deferred_that_times_out_on_the_reactor_gives_timeout_error() {
    let seen = run_reactor(|log| {
        let never = Deferred::<i32>::new();
        let keep = never.trigger();
        let result = ensure_deferred(async move {
            let v = never.add_timeout(0.0, &reactor()).await;
            drop(keep);
            Ok::<_, Failure>(v.map_err(|f| f.check::<TimeoutError>()))
        });
        log_outcome_and_stop(result, &log);
    });
    assert_eq!(seen, ["ok Err(true)"]);
}

#[test]
fn a_callback_can_wait_for_async_code() {
    let seen = run_reactor(|log| {
        let d = succeed(5).add_callback_deferred(|v| {
            ensure_deferred(async move {
                let d = Deferred::<i32>::new();
                let fire = d.trigger();
                reactor().call_later(0.0, move || fire.callback(v * 2));
                Ok::<_, Failure>(d.await? + 1)
            })
        });
        log_outcome_and_stop(d, &log);
    });
    assert_eq!(seen, ["ok 11"]);
}
