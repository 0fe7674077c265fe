//! A `Deferred` is a `Future`: `ensure_deferred` and `Reactor::spawn` on a running reactor.
//!
//! Each test is an async `#[torsion::test]`: it runs on a fresh reactor, awaits what it
//! checks, and fails if it takes more than 10 s or leaves delayed calls or unhandled failures.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use torsion::defer::{ensure_deferred, fail, succeed, Deferred};
use torsion::error::{CancelledError, ConnectionDone, TimeoutError};
use torsion::task::defer_later;
use torsion::{reactor, Failure};

/// What a test saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

/// The message of a panic failure, without the "(at file:line)" suffix.
fn panic_text(f: &Failure) -> String {
    let m = f.error_message();
    m.split(" (at ").next().unwrap_or_default().to_string()
}

#[torsion::test(timeout = 10)]
async fn ensure_deferred_awaits_a_deferred_fired_later_by_the_reactor() -> Result<(), Failure> {
    let log: Log = Rc::default();
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
    assert_eq!(result.await?, 42);
    assert_eq!(*log.borrow(), ["waiting", "firing", "got 20"]);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn ensure_deferred_awaits_several_deferreds_in_sequence() -> Result<(), Failure> {
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
    assert_eq!(result.await?, 60);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn question_mark_turns_an_error_into_the_failure_of_the_deferred() {
    let log: Log = Rc::default();
    let s = log.clone();
    let result = ensure_deferred(async move {
        let n: i32 = "not a number".parse()?;
        push(&s, "after the error");
        Ok::<_, Failure>(n)
    });
    let f = result.await.expect_err("the parse error");
    assert!(f.check::<std::num::ParseIntError>(), "{f:?}");
    assert!(log.borrow().is_empty(), "{:?}", log.borrow());
}

#[torsion::test(timeout = 10)]
async fn question_mark_passes_on_the_failure_of_an_awaited_deferred() {
    let d = Deferred::<i32>::new();
    let fire = d.trigger();
    reactor().call_later(0.0, move || fire.errback(ConnectionDone));
    let result = ensure_deferred(async move {
        let v = d.await?;
        Ok::<_, Failure>(v)
    });
    let f = result.await.expect_err("the awaited failure");
    assert_eq!(f.error_message(), ConnectionDone.to_string());
}

#[torsion::test(timeout = 10)]
async fn an_awaited_failure_can_be_handled_like_try_except() -> Result<(), Failure> {
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
    assert_eq!(result.await?, -1);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_panic_inside_the_async_block_becomes_a_failure() {
    let result = ensure_deferred(async move {
        let v: i32 = succeed(1).await?;
        if v == 1 {
            panic!("async kaboom");
        }
        Ok::<_, Failure>(v)
    });
    let f = result.await.expect_err("the panic");
    assert!(f.is_panic(), "{f:?}");
    assert_eq!(panic_text(&f), "panic: async kaboom");
}

#[torsion::test(timeout = 10)]
async fn awaiting_an_already_fired_deferred_gives_its_value() -> Result<(), Failure> {
    let ready = succeed("ready".to_string());
    let result = ensure_deferred(async move {
        let v = ready.await?;
        let n = succeed(v.len()).add_callback(|n| n * 2).await?;
        Ok::<_, Failure>(format!("{v} {n}"))
    });
    assert_eq!(result.await?, "ready 10");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn ensure_deferred_starts_the_future_at_once_as_twisted_does() -> Result<(), Failure> {
    // Twisted's ensureDeferred runs the coroutine until its first wait on an unfired Deferred
    // before returning, so a coroutine that awaits only fired Deferreds has already fired.
    let log: Log = Rc::default();
    let s = log.clone();
    let d = ensure_deferred(async move {
        push(&s, "body");
        let v = succeed(1).await?;
        Ok::<_, Failure>(v)
    });
    push(&log, format!("returned, called={}", d.called()));
    assert_eq!(*log.borrow(), ["body", "returned, called=true"]);
    assert_eq!(d.await?, 1);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn reactor_spawn_runs_a_tokio_future() -> Result<(), Failure> {
    let log: Log = Rc::default();
    let s = log.clone();
    let d = reactor().spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        push(&s, "slept");
        7
    });
    assert_eq!(d.await?, 7);
    assert_eq!(*log.borrow(), ["slept"]);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_a_spawned_future_becomes_a_failure() {
    let d = reactor().spawn(async {
        tokio::task::yield_now().await;
        panic!("spawned kaboom");
    });
    let f = d.await.expect_err("the panic");
    assert!(f.is_panic(), "{f:?}");
    assert_eq!(panic_text(&f), "panic: spawned kaboom");
}

/// Logs "future dropped" when the future holding it is dropped.
struct DropGuard(Log);

impl Drop for DropGuard {
    fn drop(&mut self) {
        push(&self.0, "future dropped");
    }
}

#[torsion::test(timeout = 10)]
async fn cancelling_an_ensure_deferred_cancels_the_deferred_it_awaits() -> Result<(), Failure> {
    let log: Log = Rc::default();
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
    // Cancel from a later reactor turn, once the future waits in its task.
    defer_later(&reactor(), 0.0, || ()).await?;
    d.cancel();
    // As in Twisted, at once: the awaited Deferred fails with CancelledError, `?` passes it on,
    // the future ends (dropping what it holds) and its Deferred fails.
    assert!(keep.is_called(), "the awaited Deferred was not cancelled");
    assert_eq!(*log.borrow(), ["future dropped", "cancelled true"]);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn cancelling_an_ensure_deferred_that_awaits_no_deferred_drops_the_future(
) -> Result<(), Failure> {
    let log: Log = Rc::default();
    let guard = DropGuard(log.clone());
    let d = ensure_deferred(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok::<_, Failure>(1)
    });
    let s = log.clone();
    let d = d.add_errback(move |f| {
        push(&s, format!("cancelled {}", f.check::<CancelledError>()));
        Ok(0)
    });
    defer_later(&reactor(), 0.0, || ()).await?;
    d.cancel();
    assert_eq!(*log.borrow(), ["future dropped", "cancelled true"]);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn awaiting_a_deferred_that_times_out_on_the_reactor_gives_timeout_error(
) -> Result<(), Failure> {
    let never = Deferred::<i32>::new();
    let keep = never.trigger();
    let result = ensure_deferred(async move {
        let v = never.add_timeout(0.0, &reactor()).await;
        drop(keep);
        Ok::<_, Failure>(v.map_err(|f| f.check::<TimeoutError>()))
    });
    assert_eq!(result.await?, Err(true));
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_callback_can_wait_for_async_code() -> Result<(), Failure> {
    let d = succeed(5).add_callback_deferred(|v| {
        ensure_deferred(async move {
            let d = Deferred::<i32>::new();
            let fire = d.trigger();
            reactor().call_later(0.0, move || fire.callback(v * 2));
            Ok::<_, Failure>(d.await? + 1)
        })
    });
    assert_eq!(d.await?, 11);
    Ok(())
}

/// Async code started on a thread before any reactor exists waits on the thread's event loop,
/// and the first reactor made there adopts that loop and finishes the work.
#[test]
fn ensure_deferred_before_any_reactor_runs_on_the_first_one() {
    std::thread::spawn(|| {
        let gate = Deferred::<i32>::new();
        let open = gate.trigger();
        let out = ensure_deferred(async move { Ok::<_, Failure>(gate.await? + 1) });
        assert!(!out.called(), "it waits for the gate");
        let r = torsion::Reactor::new();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        out.add_callback(move |v| {
            *g.borrow_mut() = Some(v);
            reactor().stop().unwrap();
        });
        r.call_when_running(move || open.callback(41));
        // Without the adoption the work would never finish: stop regardless, then fail.
        r.call_later(10.0, || reactor().stop().unwrap());
        r.run().unwrap();
        assert_eq!(*got.borrow(), Some(42));
    })
    .join()
    .unwrap();
}
