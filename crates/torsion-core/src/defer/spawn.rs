//! Async code as Deferreds: [`ensure_deferred`] (Twisted's `ensureDeferred`) and the task
//! behind [`Reactor::spawn`](crate::Reactor::spawn).
//!
//! The future runs as a task on the thread's event loop (the current reactor's); a panic in it
//! becomes the Deferred's [`Failure`].
//!
//! Cancelling the Deferred does what Twisted does to a coroutine (`_cancellableInlineCallbacks`):
//! the Deferreds the future is waiting on are cancelled (their cancellers run, a `defer_later`
//! timer is cancelled), their `.await` gives the future the [`CancelledError`] failure (or the
//! canceller's own outcome), and the future goes on from there: the Deferred fires with what
//! it returns, a value if it recovered, the failure if it passed it on with `?`. Cancelling
//! again while it waits on something else cancels that, in turn. A future waiting on nothing
//! but futures that are not Deferreds (a tokio timer, a channel) cannot be told: it is dropped,
//! and the Deferred fails with [`CancelledError`].
//!
//! How the task knows what its future waits on: while the task polls its future, a
//! thread-local names the task, and a Deferred that answers `Pending` records its chain (held
//! weakly) in the task's list; the list is cleared before each poll, so it names what the
//! latest poll waited on. No lock, and no allocation for a future that waits on one Deferred
//! at a time. (So a Deferred polled and then dropped in the same poll, the losing branch of a
//! `select!`, counts as waited on until the next poll.)
//!
//! [`CancelledError`]: crate::error::CancelledError

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use super::chain::{cancel_weak, ChainRef, Trigger, WeakChain};
use super::Deferred;
use crate::error::ReactorNotRestartable;
use crate::runtime::Loop;
use crate::Failure;

/// Runs async code on the current reactor and returns a Deferred of its result (Twisted's
/// `ensureDeferred`, the Rust form of `inlineCallbacks`). Errors returned with `?` become the
/// Deferred's failure. As in Twisted, the code runs at once, up to its first wait for
/// something not yet there; code that never waits has fired its Deferred on return.
///
/// Cancelling the Deferred cancels the Deferreds the code awaits, as Twisted does: their
/// cancellers run, their `.await` gives the code the
/// [`CancelledError`](crate::error::CancelledError) failure, the code may clean up or recover,
/// and the Deferred fires with what it then returns (the failure, if `?` passes it on). Code
/// awaiting only futures that are not Deferreds (a tokio timer, a channel) cannot be told: it
/// is dropped, and the Deferred fails with `CancelledError`.
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
    lp: &Rc<Loop>,
    fut: impl Future<Output = T> + 'static,
) -> Deferred<T> {
    spawn(lp, Box::pin(CatchUnwind(Box::pin(fut))), false)
}

/// The Deferreds a task's future waits on, as of its latest poll.
#[derive(Default)]
struct Awaiting {
    /// The first one (the usual case: no allocation).
    first: Cell<Option<WeakChain>>,
    /// Any others (`join!`, `select!` on several Deferreds).
    more: Cell<Vec<WeakChain>>,
}

impl Awaiting {
    fn push(&self, chain: WeakChain) {
        match self.first.take() {
            None => self.first.set(Some(chain)),
            Some(first) => {
                self.first.set(Some(first));
                let mut more = self.more.take();
                more.push(chain);
                self.more.set(more);
            }
        }
    }

    /// Forgets them all (keeping the list's capacity).
    fn clear(&self) {
        self.first.set(None);
        let mut more = self.more.take();
        more.clear();
        self.more.set(more);
    }

    /// Takes them all out.
    fn take(&self) -> Vec<WeakChain> {
        let mut all = self.more.take();
        if let Some(first) = self.first.take() {
            all.insert(0, first);
        }
        all
    }
}

/// The task polling its future now, if any, seen through what Deferreds need of it.
trait Polling {
    fn awaiting(&self) -> &Awaiting;
}

thread_local! {
    /// The task whose future is being polled on this thread.
    static POLLING: Cell<Option<Rc<dyn Polling>>> = const { Cell::new(None) };
}

/// Called by a Deferred that answers `Pending` to a poll: if a task is polling its future,
/// that future waits on `chain`, and cancelling the task cancels it.
pub(super) fn awaited(chain: &ChainRef) {
    POLLING.with(|p| {
        let task = p.take();
        if let Some(task) = &task {
            task.awaiting().push(Rc::downgrade(chain));
        }
        p.set(task);
    });
}

/// A task's future, its panics caught.
type TaskFuture<T> = Pin<Box<dyn Future<Output = Result<T, Failure>>>>;

/// What a task's future, its Deferred and a cancellation share.
struct Task<T> {
    /// The future, until it finishes or is dropped.
    fut: RefCell<Option<TaskFuture<T>>>,
    /// Fires the Deferred with the future's outcome.
    trigger: Cell<Option<Trigger<T>>>,
    /// What the future waits on.
    awaiting: Awaiting,
    /// The waker of the latest poll, to poll again at once after a cancellation.
    waker: Cell<Option<Waker>>,
    /// The loop it runs on, for tokio calls made while polled outside the task.
    lp: Weak<Loop>,
}

impl<T: 'static> Polling for Task<T> {
    fn awaiting(&self) -> &Awaiting {
        &self.awaiting
    }
}

impl<T: 'static> Task<T> {
    /// Polls the future, recording what it waits on; fires the Deferred when it finishes.
    /// `Ready` once there is no future left to poll.
    fn poll(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.poll_future(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(()),
            Poll::Ready(Some(out)) => {
                if let Some(trigger) = self.trigger.take() {
                    let _ = trigger.fire(out);
                }
                Poll::Ready(())
            }
        }
    }

    /// Polls the future, recording what it waits on: its outcome once it finishes, `None` if
    /// there is no future left.
    fn poll_future(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T, Failure>>> {
        // Already being polled: a cancellation from inside the future's own poll.
        let Ok(mut slot) = self.fut.try_borrow_mut() else {
            return Poll::Pending;
        };
        let Some(fut) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        self.awaiting.clear();
        let me: Rc<dyn Polling> = self.clone();
        let outer = POLLING.replace(Some(me));
        let polled = fut.as_mut().poll(cx);
        POLLING.set(outer);
        match polled {
            Poll::Pending => {
                match self.waker.take() {
                    Some(w) if w.will_wake(cx.waker()) => self.waker.set(Some(w)),
                    _ => self.waker.set(Some(cx.waker().clone())),
                }
                Poll::Pending
            }
            Poll::Ready(out) => {
                *slot = None;
                self.awaiting.clear();
                Poll::Ready(Some(out))
            }
        }
    }

    /// Polls the future now, with the task's waker, in the loop's context.
    fn poll_now(self: &Rc<Self>) {
        let waker = self.waker.take().unwrap_or_else(|| Waker::noop().clone());
        self.waker.set(Some(waker.clone()));
        let mut cx = Context::from_waker(&waker);
        match self.lp.upgrade() {
            Some(lp) => drop(lp.with_context(|| self.poll(&mut cx))),
            None => drop(self.poll(&mut cx)),
        }
    }

    /// A Deferred the task fires with the future's outcome, whose cancellation cancels what the
    /// future waits on (Twisted's `status.deferred`, with `_addCancelCallbackToDeferred`).
    fn outcome(task: &Rc<Self>) -> Deferred<T> {
        let weak = Rc::downgrade(task);
        let d = Deferred::with_canceller(move |trigger| Task::cancel(&weak, trigger));
        task.trigger.set(Some(d.trigger()));
        d
    }

    /// The Deferred of the task is being cancelled; `trigger` fires it.
    fn cancel(task: &Weak<Self>, trigger: Trigger<T>) {
        let Some(task) = task.upgrade() else {
            return; // the loop dropped the task: plain cancellation
        };
        // Cancelled from inside the future's own poll: it is running, not waiting.
        let running = task.fut.try_borrow_mut().is_err();
        let waited = task.awaiting.take();
        if waited.is_empty() && !running {
            // Waiting on no Deferred (or not started): nothing can tell the future. Drop it
            // (out of its cell first, in case its drop cancels again); the Deferred fails with
            // CancelledError.
            drop(task.trigger.take());
            let fut = task.fut.borrow_mut().take();
            drop(fut);
            return;
        }
        // As Twisted does: the Deferred now waits on a new one, which the task fires with the
        // future's outcome, and which can be cancelled in turn; then what the future waits on
        // is cancelled, and the future goes on at once with the outcome of its `.await`. A
        // future cancelled while it runs just goes on (Twisted cancels the Deferred it last
        // waited on, which has fired).
        let next = Task::outcome(&task);
        trigger.wait_on(next);
        for chain in &waited {
            cancel_weak(chain);
        }
        if !running {
            task.poll_now();
        }
    }
}

/// Runs `fut` on `lp` and returns a Deferred of its output; `eager` runs it at once up to its
/// first wait, as Twisted's `ensureDeferred` does.
fn spawn<T: 'static>(
    lp: &Rc<Loop>,
    fut: Pin<Box<CatchUnwind<impl Future<Output = T> + 'static>>>,
    eager: bool,
) -> Deferred<T> {
    let task = Rc::new(Task {
        fut: RefCell::new(Some(fut)),
        trigger: Cell::new(None),
        awaiting: Awaiting::default(),
        waker: Cell::new(None),
        lp: Rc::downgrade(lp),
    });
    if eager {
        // Run until the first wait. Anything the future registers with this no-op waker is
        // registered again with the task's real waker on the task's first poll. Code that
        // never waits needs no task.
        let mut cx = Context::from_waker(Waker::noop());
        if let Some(Poll::Ready(Some(out))) = lp.with_context(|| task.poll_future(&mut cx)) {
            let d = Deferred::new();
            let _ = d.trigger().fire(out);
            return d;
        }
    }
    let d = Task::outcome(&task);
    let polled = task.clone();
    let spawned = lp.spawn_task(std::future::poll_fn(move |cx| polled.poll(cx)));
    if spawned.is_none() && !d.called() {
        let fut = task.fut.borrow_mut().take();
        drop(fut);
        drop(task.trigger.take());
        d.errback(ReactorNotRestartable);
    }
    d
}
