//! Cancellation reaches what a Deferred waits on, as in Twisted: the Deferred a callback
//! returned (even one only its canceller can fire), and the Deferred that async code run by
//! `ensure_deferred` awaits.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use torsion::defer::{ensure_deferred, succeed, Deferred};
use torsion::error::{CancelledError, ConnectionDone};
use torsion::task::defer_later;
use torsion::testing::Clock;
use torsion::{reactor, Failure};

/// A flag a canceller sets when it runs.
fn flag() -> Rc<Cell<bool>> {
    Rc::new(Cell::new(false))
}

#[test]
fn cancelling_a_chain_runs_the_canceller_of_a_returned_deferred_nobody_else_holds() {
    // Twisted: `d.addCallback(lambda _: Deferred(canceller)); d.cancel()` runs `canceller`.
    let ran = flag();
    let r = ran.clone();
    let end = succeed(1)
        .add_callback_deferred(move |_| Deferred::<i32>::with_canceller(move |_| r.set(true)))
        .add_callback(|v| v + 1);
    assert!(!end.called());
    end.cancel();
    assert!(ran.get(), "the returned Deferred's canceller never ran");
    assert!(end.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn the_canceller_of_a_returned_deferred_can_fire_it_with_its_own_outcome() {
    let end = succeed(())
        .add_callback_deferred(|()| Deferred::<i32>::with_canceller(|t| t.errback(ConnectionDone)))
        .add_callback(|v| v * 2);
    end.cancel();
    assert!(end.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn cancel_reaches_a_returned_deferred_through_two_levels_of_chains() {
    // The inner chain itself waits on a canceller-only Deferred.
    let ran = flag();
    let r = ran.clone();
    let end = succeed(()).add_callback_deferred(move |()| {
        succeed(()).add_callback_deferred(move |()| {
            Deferred::<&str>::with_canceller(move |t| {
                r.set(true);
                t.callback("cancelled, but answered");
            })
        })
    });
    end.cancel();
    assert!(ran.get(), "the innermost canceller never ran");
    assert_eq!(end.result().unwrap().unwrap(), "cancelled, but answered");
}

#[test]
fn a_chain_whose_returned_deferred_fired_is_not_cancelled_again() {
    let inner = Deferred::<i32>::new();
    let fire = inner.trigger();
    let end = succeed(()).add_callback_deferred(move |()| inner);
    fire.callback(4);
    end.cancel();
    assert_eq!(end.result().unwrap().unwrap(), 4);
}

/// What the async code saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

#[test]
fn cancelling_ensure_deferred_cancels_the_timer_it_awaits_and_the_code_sees_cancelled_error() {
    // Twisted: cancelling `Deferred.fromCoroutine(coro)` cancels the Deferred `coro` awaits
    // (a `deferLater` cancels its call), and `coro` gets CancelledError where it awaits.
    let clock = Rc::new(Clock::new());
    let log: Log = Rc::default();
    let (c, s) = (clock.clone(), log.clone());
    let d = ensure_deferred(async move {
        match defer_later(&*c, 5.0, || 1).await {
            Ok(v) => Ok(v),
            Err(f) => {
                push(
                    &s,
                    format!("saw CancelledError: {}", f.check::<CancelledError>()),
                );
                Err(f)
            }
        }
    });
    assert_eq!(clock.pending_call_times(), [5.0]);
    d.cancel();
    assert!(
        clock.pending_call_times().is_empty(),
        "the awaited defer_later timer is still pending"
    );
    assert_eq!(*log.borrow(), ["saw CancelledError: true"]);
    // The code passed the failure on: the Deferred fails with it, at once, as in Twisted.
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn async_code_that_recovers_from_cancellation_gives_its_value() {
    // Twisted: a coroutine that catches CancelledError and returns a value fires the
    // cancelled Deferred with that value.
    let clock = Rc::new(Clock::new());
    let c = clock.clone();
    let d = ensure_deferred(async move {
        match defer_later(&*c, 5.0, || "on time").await {
            Err(f) if f.check::<CancelledError>() => Ok::<_, Failure>("cleaned up"),
            other => other,
        }
    });
    d.cancel();
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(d.result().unwrap().unwrap(), "cleaned up");
}

#[test]
fn the_awaited_deferreds_canceller_can_answer_the_async_code() {
    let d = ensure_deferred(async {
        let v = Deferred::<i32>::with_canceller(|t| t.callback(7)).await?;
        Ok::<_, Failure>(v * 6)
    });
    d.cancel();
    assert_eq!(d.result().unwrap().unwrap(), 42);
}

#[torsion::test(timeout = 10)]
async fn cancelling_again_cancels_what_the_code_awaits_after_recovering() -> Result<(), Failure> {
    let clock = Rc::new(Clock::new());
    let log: Log = Rc::default();
    let (c, s) = (clock.clone(), log.clone());
    let d = ensure_deferred(async move {
        if let Err(f) = defer_later(&*c, 5.0, || ()).await {
            push(&s, format!("first wait: {}", f.check::<CancelledError>()));
        }
        // Clean up, which takes time too.
        let cleanup = defer_later(&*c, 1.0, || ()).await;
        push(&s, format!("cleanup cancelled: {}", cleanup.is_err()));
        if let Err(f) = defer_later(&*c, 5.0, || ()).await {
            push(&s, format!("third wait: {}", f.check::<CancelledError>()));
            return Err(f);
        }
        Ok::<_, Failure>(())
    });
    d.cancel();
    assert!(!d.called(), "the code is still cleaning up");
    assert_eq!(clock.pending_call_times(), [1.0]);
    clock.advance(1.0);
    // The cleanup's timer woke the task; it runs on a later turn and waits again.
    for _ in 0..100 {
        if clock.pending_call_times() == [6.0] {
            break;
        }
        defer_later(&reactor(), 0.0, || ()).await?;
    }
    assert_eq!(clock.pending_call_times(), [6.0]);
    d.cancel();
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(
        *log.borrow(),
        [
            "first wait: true",
            "cleanup cancelled: false",
            "third wait: true"
        ]
    );
    assert!(d.await.unwrap_err().check::<CancelledError>());
    Ok(())
}

#[test]
fn cancelling_nested_ensure_deferreds_reaches_the_innermost_timer() {
    let clock = Rc::new(Clock::new());
    let log: Log = Rc::default();
    let (c, s) = (clock.clone(), log.clone());
    let d = ensure_deferred(async move {
        let s2 = s.clone();
        let inner = ensure_deferred(async move {
            let r = defer_later(&*c, 5.0, || 1).await;
            push(&s2, format!("inner saw CancelledError: {}", r.is_err()));
            r
        });
        let r = inner.await;
        push(&s, format!("outer saw CancelledError: {}", r.is_err()));
        r
    });
    d.cancel();
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(
        *log.borrow(),
        [
            "inner saw CancelledError: true",
            "outer saw CancelledError: true"
        ]
    );
    assert!(d.result().unwrap().unwrap_err().check::<CancelledError>());
}

#[test]
fn cancelling_cancels_every_deferred_the_code_awaits_at_once() {
    let clock = Rc::new(Clock::new());
    let c = clock.clone();
    let d = ensure_deferred(async move {
        let both = futures_join(defer_later(&*c, 1.0, || 1), defer_later(&*c, 2.0, || 2)).await;
        Ok::<_, Failure>((both.0.is_err(), both.1.is_err()))
    });
    assert_eq!(clock.pending_call_times(), [1.0, 2.0]);
    d.cancel();
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(d.result().unwrap().unwrap(), (true, true));
}

/// Awaits two futures at once (a minimal `join!`).
async fn futures_join<A: Future + Unpin, B: Future + Unpin>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Some(a), Some(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if let Some(f) = a.as_mut() {
            if let Poll::Ready(v) = Pin::new(f).poll(cx) {
                ra = Some(v);
                a = None;
            }
        }
        if let Some(f) = b.as_mut() {
            if let Poll::Ready(v) = Pin::new(f).poll(cx) {
                rb = Some(v);
                b = None;
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[torsion::test(timeout = 10)]
async fn cancelling_a_reactor_spawn_cancels_the_deferred_it_awaits() -> Result<(), Failure> {
    let clock = Rc::new(Clock::new());
    let c = clock.clone();
    let d = reactor().spawn(async move {
        let r = defer_later(&*c, 5.0, || 1).await;
        r.map_err(|f| f.check::<CancelledError>())
    });
    // The spawned future first runs on the next turn.
    defer_later(&reactor(), 0.0, || ()).await?;
    assert_eq!(clock.pending_call_times(), [5.0]);
    d.cancel();
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(d.await?, Err(true));
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn async_code_that_cancels_its_own_deferred_while_running_goes_on() -> Result<(), Failure> {
    // Twisted: a coroutine that cancels its own Deferred while it runs (not waiting) only
    // cancels the Deferred it last awaited, which has fired; it goes on, and its Deferred
    // fires with what it returns.
    let clock = Rc::new(Clock::new());
    let me: Rc<RefCell<Option<Deferred<&str>>>> = Rc::default();
    let (c, m) = (clock.clone(), me.clone());
    let d = ensure_deferred(async move {
        defer_later(&*c, 1.0, || ()).await?;
        if let Some(d) = &*m.borrow() {
            d.cancel();
        }
        defer_later(&*c, 1.0, || ()).await?;
        Ok::<_, Failure>("finished")
    });
    *me.borrow_mut() = Some(d);
    clock.advance(1.0);
    for _ in 0..100 {
        if clock.pending_call_times() == [2.0] {
            break;
        }
        defer_later(&reactor(), 0.0, || ()).await?;
    }
    assert_eq!(clock.pending_call_times(), [2.0], "the code did not go on");
    clock.advance(1.0);
    let d = me.borrow_mut().take().unwrap();
    assert_eq!(d.await?, "finished");
    Ok(())
}
