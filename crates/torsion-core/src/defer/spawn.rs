//! Async code as Deferreds: [`ensure_deferred`] (Twisted's `ensureDeferred`) and the task
//! behind [`Reactor::spawn`](crate::Reactor::spawn).
//!
//! The future runs as a task on the thread's event loop (the current reactor's); a panic in it
//! becomes the Deferred's [`Failure`], and cancelling the Deferred drops the future.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::Deferred;
use crate::error::ReactorNotRestartable;
use crate::runtime::Loop;
use crate::Failure;

/// Runs async code on the current reactor and returns a Deferred of its result (Twisted's
/// `ensureDeferred`, the Rust form of `inlineCallbacks`). Errors returned with `?` become the
/// Deferred's failure. As in Twisted, the code runs at once, up to its first wait for
/// something not yet there; code that never waits has fired its Deferred on return.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use torsion::{defer::{ensure_deferred, succeed}, reactor, Failure, Reactor};
///
/// let r = Reactor::new();
/// let answer = Rc::new(Cell::new(0));
/// let a = answer.clone();
/// r.call_when_running(move || {
///     ensure_deferred(async {
///         let x = succeed(20).await?;   // await any Deferred
///         let y: i32 = "22".parse()?;   // any error converts into a Failure
///         Ok::<_, Failure>(x + y)
///     })
///     .add_callback(move |v| {
///         a.set(v);
///         reactor().stop().unwrap();
///     });
/// });
/// r.run().unwrap();
/// assert_eq!(answer.get(), 42);
/// ```
#[doc(alias = "ensureDeferred", alias = "inlineCallbacks")]
pub fn ensure_deferred<T: 'static, E: Into<Failure> + 'static>(
    fut: impl Future<Output = Result<T, E>> + 'static,
) -> Deferred<T> {
    spawn(&Loop::current(), Box::pin(CatchUnwind(Box::pin(fut))), true)
        .add_callback_result(|out| out.map_err(Into::into))
}

/// A future that turns a panic into a Failure.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Failure::from_panic(payload))),
        }
    }
}

/// Runs `fut` as a task on `lp` (the reactor's `spawn`): it first runs on the loop's next
/// turn.
pub(crate) fn spawn_on<T: 'static>(
    lp: &Loop,
    fut: impl Future<Output = T> + 'static,
) -> Deferred<T> {
    spawn(lp, Box::pin(CatchUnwind(Box::pin(fut))), false)
}

/// Runs `fut` on `lp` and returns a Deferred of its output; `eager` runs it at once up to its
/// first wait, as Twisted's `ensureDeferred` does.
fn spawn<T: 'static>(
    lp: &Loop,
    mut fut: Pin<Box<CatchUnwind<impl Future<Output = T> + 'static>>>,
    eager: bool,
) -> Deferred<T> {
    if eager {
        // Run until the first wait. Anything the future registers with this no-op waker is
        // registered again with the task's real waker on the task's first poll.
        let mut cx = Context::from_waker(Waker::noop());
        let first = lp.with_context(|| fut.as_mut().poll(&mut cx));
        if let Some(Poll::Ready(out)) = first {
            let d = Deferred::new();
            let _ = d.trigger().fire(out);
            return d;
        }
    }
    let abort: Rc<RefCell<Option<tokio::task::AbortHandle>>> = Rc::default();
    let abort2 = abort.clone();
    let d = Deferred::with_canceller(move |_| {
        if let Some(a) = abort2.borrow_mut().take() {
            a.abort();
        }
    });
    let trigger = d.trigger();
    let handle = lp.spawn_task(async move {
        let out = fut.await;
        let _ = trigger.fire(out);
    });
    match handle {
        Some(h) => *abort.borrow_mut() = Some(h),
        None => {
            if !d.called() {
                d.errback(ReactorNotRestartable);
            }
        }
    }
    d
}
