//! `Deferred<T>` and its firing side, `Trigger<T>`: one representation, Twisted's.
//!
//! A Twisted `Deferred` is one object holding a list of callbacks and the current result;
//! `_runCallbacks` is one loop over the list. Here too: a [`Chain`] holds the callbacks
//! added to it, in order, and where the chain stands. Every handle is a typed view of one
//! chain: [`Deferred::new`] makes a chain, `add_callback` consumes a `Deferred<T>` and gives a
//! `Deferred<U>` of the same chain with one more step, so types flow and no handle can fire
//! the chain with the wrong type. The [`Trigger`] made from a new Deferred fires the chain at
//! its start.
//!
//! ```text
//!   Trigger<Meal>          Deferred<Meal> ──add_callback──> Deferred<bool> ──add_callback──> Deferred<&str>
//!        │                       └──────────────────┬──────────────────────────────┘
//!        │ fire                                     ▼ all views of
//!        └──────────────────────────────>  Chain { steps: [eat_meal, verdict], result, ... }
//!                                          the steps run in order, each on the previous outcome
//! ```
//!
//! Firing runs the steps in a row, each taking the previous step's outcome (a `Result<_,
//! Failure>`, so an errback is a step that handles the `Err` side). The outcome after the last
//! step rests in the chain until a handle takes it (`result()`, `.await`), or runs the steps
//! added later. A step that returns a Deferred (`add_callback_deferred`) pauses the chain:
//! the chain goes on when that Deferred fires, as in Twisted.
//!
//! How it is kept cheap: a chain is one allocation with room for its first ten steps inside
//! it; a step is a boxed closure with its types erased, and a closure that captures nothing
//! boxes without allocating. Steps hand their outcomes to each other through a slot on the
//! stack seen as `&mut dyn Any` (downcast to the type each step knows statically), so running
//! a step allocates nothing; a run of steps that keep the type is one loop, and a change of
//! type is one level of recursion (on a stack that grows on demand, [`stacker`], so chains of
//! any length are safe and `callback()` returns only after every step ran). The final outcome
//! rests in the chain's own typed slot when it has the type the chain started with, else in a
//! box. [`succeed`] makes no chain at all until one is needed: the handle holds the value.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use super::chain::{
    advance, cancel, deep, fired_chain, new_chain, pass_on, pause, take_input, take_rest, unpause,
    ChainRef, ErasedStep, Outcome, Plain, Rest, Trigger, WeakChain,
};
use crate::error::{AlreadyCalledError, CancelledError, TimeoutError};
use crate::time::{Delay, ReactorTime};
use crate::Failure;

/// What a step that may pause the chain produced: an outcome, or a Deferred to wait for.
enum Step<U> {
    Done(Outcome<U>),
    Wait(Deferred<U>),
}

/// A step that may return a Deferred, which the chain then waits on.
struct Pausing<T, U, F> {
    f: F,
    /// Where the returned Deferred is kept while the chain waits on it.
    hold: Weak<Awaited>,
    types: PhantomData<fn(T) -> U>,
}

/// Keeps the Deferred a callback returned alive while the chain waits on it and a handle of
/// the chain is held, so that cancelling the chain reaches it even when nothing else holds it
/// (a Deferred with only a canceller, whose trigger nobody kept), as Twisted's `cancel` does.
/// The handles own it (as their anchor), never the chains: the returned Deferred's chain holds
/// the waiting chain, so a chain holding it back would be a cycle.
struct Awaited {
    /// The anchor the handle had before.
    _prev: Option<Rc<dyn Any>>,
    /// The returned Deferred, while the chain waits on it: its chain and its anchor.
    inner: Cell<Option<Held>>,
}

/// A Deferred kept alive: its chain, and what its handle kept alive.
type Held = (ChainRef, Option<Rc<dyn Any>>);

impl<T: 'static, U: 'static, F> ErasedStep for Pausing<T, U, F>
where
    F: FnOnce(Outcome<T>) -> Step<U>,
{
    fn run(self: Box<Self>, input: &mut dyn Any, chain: &ChainRef, depth: usize) -> bool {
        let (slot, taken) = take_input::<T>(input);
        let Pausing { f, hold, .. } = *self;
        let step = catch_unwind(AssertUnwindSafe(move || f(taken)))
            .unwrap_or_else(|payload| Step::Done(Err(Failure::from_panic(payload))));
        match step {
            Step::Done(out) => pass_on(slot, out, chain, depth),
            Step::Wait(inner) => {
                chain.core.paused_on.set(inner.weak_chain());
                if let (Some(held), View::Chain(c, _)) = (hold.upgrade(), &*inner.view.borrow()) {
                    held.inner.set(Some((c.clone(), inner.anchor.clone())));
                }
                let me = chain.clone();
                inner.on_result(move |out| {
                    me.core.paused_on.set(None);
                    if let Some(held) = hold.upgrade() {
                        drop(held.inner.take());
                    }
                    deep(|| advance(&me, &mut Some(out), 0));
                });
                false
            }
        }
    }
}

/// A placeholder for a value of type `T` that you don't have yet (Twisted's `Deferred`).
///
/// See the [module documentation](crate::defer) for the callback rules. A `Deferred` is not
/// `Clone`: a chain has one end. Keep a [`Trigger`] to fire it, and chain on the `Deferred`.
///
/// A Deferred made by [`succeed`] holds its value in the handle itself (no allocation until
/// something needs a chain), so a handle is at least as large as a `T`: box a very large `T`.
pub struct Deferred<T> {
    view: RefCell<View<T>>,
    /// Keeps other chains alive while this handle is held (a list's members), so that
    /// cancelling it reaches members nobody else holds.
    anchor: Option<Rc<dyn Any>>,
}

/// What a handle is: a typed view of a chain, or a value that needs no chain yet.
enum View<T> {
    Chain(ChainRef, PhantomData<fn() -> T>),
    /// Fired with a value from the start ([`succeed`]): `None` once the value is taken.
    Ready(Option<T>),
}

impl<T: 'static> Default for Deferred<T> {
    fn default() -> Self {
        Deferred::new()
    }
}

impl<T: 'static> Deferred<T> {
    /// A new, unfired Deferred.
    pub fn new() -> Deferred<T> {
        Deferred::on(new_chain::<T>(None))
    }

    fn on(chain: ChainRef) -> Deferred<T> {
        Deferred {
            view: RefCell::new(View::Chain(chain, PhantomData)),
            anchor: None,
        }
    }

    /// The same Deferred, also keeping `anchor` alive while held.
    pub(crate) fn anchored(mut self, anchor: Rc<dyn Any>) -> Deferred<T> {
        self.anchor = Some(anchor);
        self
    }

    /// A new Deferred whose cancellation calls `canceller` (Twisted's `Deferred(canceller)`).
    ///
    /// The canceller gets the Deferred's trigger, so it can fire the Deferred with an error of
    /// its own; if it does not, the Deferred fails with [`CancelledError`].
    #[doc(alias = "canceller")]
    pub fn with_canceller(canceller: impl FnOnce(Trigger<T>) + 'static) -> Deferred<T> {
        Deferred::on(new_chain::<T>(Some(super::chain::canceller(canceller))))
    }

    /// The chain this handle views, made now (fired) for a value held in the handle.
    pub(crate) fn chain(&self) -> ChainRef {
        let mut view = self.view.borrow_mut();
        if let View::Ready(value) = &mut *view {
            let chain = fired_chain(value.take().map(Ok));
            *view = View::Chain(chain, PhantomData);
        }
        match &*view {
            View::Chain(chain, _) => chain.clone(),
            View::Ready(_) => unreachable!("made a chain above"),
        }
    }

    /// A new trigger that fires this Deferred.
    ///
    /// A Deferred that callbacks were added to is the end of its chain, fired by the chain:
    /// a trigger made from it refuses to fire ([`AlreadyCalledError`]). Make the trigger from
    /// the first Deferred of the chain, before adding callbacks.
    #[doc(alias = "callback", alias = "errback", alias = "fire")]
    pub fn trigger(&self) -> Trigger<T> {
        let chain = self.chain();
        // A handle on a chain with no steps views the chain's start: every chain is made
        // with its handle's type, and a step added gives a handle of the next type.
        let from_start = chain.core.len.get() == 0;
        debug_assert!(!from_start || chain.start.start_type() == TypeId::of::<T>());
        Trigger {
            chain,
            from_start,
            types: PhantomData,
        }
    }

    /// Fires this Deferred with a value (Twisted's `d.callback(v)`).
    ///
    /// Only before callbacks are added: [`add_callback`](Self::add_callback) and the other
    /// `add_*` methods move the Deferred into its chain, so to fire it afterwards take a
    /// [`trigger`](Self::trigger) first and fire that (see
    /// [Coming from Twisted](crate::defer#coming-from-twisted)).
    ///
    /// # Panics
    /// With [`AlreadyCalledError`] if it has already fired, or if it is the end of a chain of
    /// callbacks (fire the chain's start instead); see [`try_callback`](Self::try_callback).
    #[track_caller]
    pub fn callback(&self, value: T) {
        if let Err(e) = self.try_callback(value) {
            panic!("{e}");
        }
    }

    /// Fires this Deferred with a failure (Twisted's `d.errback(f)`); as with
    /// [`callback`](Self::callback), after adding callbacks fire a [`trigger`](Self::trigger)
    /// taken before.
    ///
    /// # Panics
    /// With [`AlreadyCalledError`] if it has already fired, or if it is the end of a chain.
    #[track_caller]
    pub fn errback(&self, failure: impl Into<Failure>) {
        if let Err(e) = self.try_errback(failure) {
            panic!("{e}");
        }
    }

    /// Fires this Deferred with a value, or says it had already fired.
    pub fn try_callback(&self, value: T) -> Result<(), AlreadyCalledError> {
        self.trigger().fire_as(Ok(value), "callback")
    }

    /// Fires this Deferred with a failure, or says it had already fired.
    pub fn try_errback(&self, failure: impl Into<Failure>) -> Result<(), AlreadyCalledError> {
        self.trigger().fire_as(Err(failure.into()), "errback")
    }

    /// True once the Deferred has its result: it fired and every callback on the way ran
    /// (Twisted's `d.called`, for the end of a chain).
    pub fn called(&self) -> bool {
        match &*self.view.borrow() {
            View::Chain(chain, _) => chain.core.complete.get(),
            View::Ready(_) => true,
        }
    }

    /// Takes the result out if the Deferred has fired (for tests and synchronous code, like
    /// trial's `successResultOf`). Returns `None` if it has not fired yet. Afterwards the
    /// Deferred is spent: its failure, if any, is now yours to handle.
    #[doc(alias = "successResultOf")]
    pub fn result(&self) -> Option<Result<T, Failure>> {
        match &mut *self.view.borrow_mut() {
            View::Ready(value) => value.take().map(Ok),
            View::Chain(chain, _) => {
                if chain.core.complete.get() {
                    take_rest(chain)
                } else {
                    None
                }
            }
        }
    }

    /// Cancels the Deferred (Twisted's `d.cancel()`): if it has not fired, its canceller runs
    /// and, unless that fired it, it fails with [`CancelledError`]. For a chain, its start is
    /// cancelled if it has not fired, and the failure runs down the chain's errbacks; if the
    /// chain waits on a Deferred a callback returned, that one is cancelled instead (even if
    /// nothing else holds it). Cancelling the Deferred of [`ensure_deferred`](super::ensure_deferred)
    /// cancels the Deferreds the async code awaits, and it fires with what the code then
    /// returns. Cancelling a fired Deferred does nothing.
    pub fn cancel(&self) {
        let chain = match &*self.view.borrow() {
            View::Chain(chain, _) => chain.clone(),
            View::Ready(_) => return,
        };
        cancel(&chain);
    }

    /// Pauses the chain this Deferred is a view of (Twisted's `d.pause()`) until the
    /// [`Paused`] token it returns is unpaused or dropped: meanwhile no callback runs. An
    /// outcome that arrives meanwhile (the Deferred fires, or a Deferred a callback returned
    /// does) waits, and so do callbacks added meanwhile; the Deferred is not
    /// [`called`](Self::called), and `.await` waits. Pausing twice takes both tokens, as
    /// Twisted's counter takes two `unpause` calls.
    ///
    /// ```
    /// use torsion::defer::Deferred;
    ///
    /// let d = Deferred::<i32>::new();
    /// let fire = d.trigger();
    /// let paused = d.pause();
    /// let d = d.add_callback(|x| x + 1);
    /// fire.callback(1);
    /// assert!(d.result().is_none()); // fired, but the callback waits
    /// paused.unpause();
    /// assert_eq!(d.result().unwrap().unwrap(), 2);
    /// ```
    pub fn pause(&self) -> Paused {
        let chain = self.chain();
        pause(&chain);
        Paused {
            chain: Some(Rc::downgrade(&chain)),
        }
    }

    /// Adds `step` at the end of the chain; it runs now if every step before it ran. Inlined
    /// into each `add_*` call (a chain of ten callbacks is ten of them in a row); what is rare
    /// (a value held in the handle, a chain already complete) goes out of line.
    #[inline(always)]
    fn then<U: 'static>(self, step: Box<dyn ErasedStep>) -> Deferred<U> {
        let Deferred { view, anchor } = self;
        let chain = match view.into_inner() {
            View::Chain(chain, _) => chain,
            View::Ready(value) => fired_chain::<T>(value.map(Ok)),
        };
        Deferred::<T>::push_onto(chain, anchor, step)
    }

    /// Pushes `step` onto `chain`, running it now if the chain is complete.
    #[inline(always)]
    fn push_onto<U: 'static>(
        chain: ChainRef,
        anchor: Option<Rc<dyn Any>>,
        step: Box<dyn ErasedStep>,
    ) -> Deferred<U> {
        if chain.core.push(step) {
            if let Some(payload) = Deferred::<T>::run_added(&chain) {
                // Dropped together: nothing here unwinds while the handle's parts are held.
                drop((chain, anchor));
                resume_unwind(payload);
            }
        }
        Deferred {
            view: RefCell::new(View::Chain(chain, PhantomData)),
            anchor,
        }
    }

    /// Runs a step added to a complete chain, on the outcome it rested with; a panic comes
    /// back as its payload. It cannot unwind (`extern "C"`), which lets each `add_*` call
    /// keep its handle in registers, with no unwinding path that would need it in memory.
    #[cold]
    #[inline(never)]
    #[allow(improper_ctypes_definitions)] // called from Rust only; `extern "C"` for `nounwind`
    extern "C" fn run_added(chain: &ChainRef) -> Option<Box<dyn Any + Send>> {
        catch_unwind(AssertUnwindSafe(|| {
            let out = take_rest::<T>(chain)
                .expect("the result of this Deferred was already taken (by .await or result())");
            chain.core.complete.set(false);
            advance(chain, &mut Some(out), 0);
        }))
        .err()
    }

    /// Adds a step that cannot pause the chain. A value held in the handle ([`succeed`])
    /// goes through it at once and stays in the handle.
    #[inline(always)]
    fn then_plain<U: 'static>(
        self,
        f: impl FnOnce(Outcome<T>) -> Outcome<U> + 'static,
    ) -> Deferred<U> {
        let Deferred { view, anchor } = self;
        match view.into_inner() {
            View::Chain(chain, _) => Deferred::<T>::push_onto(
                chain,
                anchor,
                Box::new(Plain {
                    f,
                    types: PhantomData,
                }),
            ),
            View::Ready(value) => Deferred::<T>::then_ready(value, anchor, f),
        }
    }

    /// [`then_plain`](Self::then_plain) on a value held in the handle.
    #[inline(never)]
    fn then_ready<U: 'static>(
        value: Option<T>,
        anchor: Option<Rc<dyn Any>>,
        f: impl FnOnce(Outcome<T>) -> Outcome<U> + 'static,
    ) -> Deferred<U> {
        let value =
            value.expect("the result of this Deferred was already taken (by .await or result())");
        let view = match catch_unwind(AssertUnwindSafe(move || f(Ok(value)))) {
            Ok(Ok(v)) => View::Ready(Some(v)),
            Ok(Err(failure)) => View::Chain(fired_chain::<U>(Some(Err(failure))), PhantomData),
            Err(payload) => View::Chain(
                fired_chain::<U>(Some(Err(Failure::from_panic(payload)))),
                PhantomData,
            ),
        };
        Deferred {
            view: RefCell::new(view),
            anchor,
        }
    }

    /// Adds a callback: on success, `f` gets the value and its return value is the next
    /// result. Failures pass by untouched. A panic in `f` becomes a [`Failure`].
    #[inline]
    #[doc(alias = "addCallback")]
    pub fn add_callback<U: 'static>(self, f: impl FnOnce(T) -> U + 'static) -> Deferred<U> {
        self.then_plain(move |out| out.map(f))
    }

    /// Adds a callback that may fail: an `Err` it returns starts the errback chain.
    #[doc(alias = "addCallback")]
    pub fn add_callback_result<U: 'static, E: Into<Failure>>(
        self,
        f: impl FnOnce(T) -> Result<U, E> + 'static,
    ) -> Deferred<U> {
        self.then_plain(move |out| out.and_then(|v| f(v).map_err(Into::into)))
    }

    /// Adds a callback that returns a Deferred: the chain pauses until that Deferred fires,
    /// and continues with its result (Twisted's callback returning a Deferred).
    #[doc(alias = "addCallback")]
    pub fn add_callback_deferred<U: 'static>(
        self,
        f: impl FnOnce(T) -> Deferred<U> + 'static,
    ) -> Deferred<U> {
        self.then_pausing(move |out: Outcome<T>| match out {
            Ok(v) => Step::Wait(f(v)),
            Err(e) => Step::Done(Err(e)),
        })
    }

    /// Adds a step that may return a Deferred to wait for; cancelling the chain while it
    /// waits cancels that Deferred, even if nothing else holds it.
    fn then_pausing<U: 'static>(
        self,
        step: impl FnOnce(Outcome<T>) -> Step<U> + 'static,
    ) -> Deferred<U> {
        let Deferred { view, anchor } = self;
        let held = Rc::new(Awaited {
            _prev: anchor,
            inner: Cell::new(None),
        });
        let hold = Rc::downgrade(&held);
        let me = Deferred {
            view,
            anchor: Some(held),
        };
        me.then(Box::new(Pausing {
            f: step,
            hold,
            types: PhantomData,
        }))
    }

    /// Adds an errback that returns a Deferred (Twisted's errback returning a Deferred): on
    /// failure, the chain pauses until that Deferred fires and continues with its outcome, so
    /// its value recovers and its failure passes on. Values pass by untouched. Cancelling the
    /// chain while it waits cancels the returned Deferred, as with
    /// [`add_callback_deferred`](Self::add_callback_deferred).
    ///
    /// ```
    /// use torsion::defer::Deferred;
    /// use torsion::error::TimeoutError;
    ///
    /// let d = Deferred::<i32>::new();
    /// let fire = d.trigger();
    /// let retry = Deferred::<i32>::new();
    /// let fire_retry = retry.trigger();
    /// let end = d.add_errback_deferred(move |_failure| retry); // try again, later
    /// fire.errback(TimeoutError);
    /// assert!(!end.called()); // waits on the retry
    /// fire_retry.callback(7);
    /// assert_eq!(end.result().unwrap().unwrap(), 7);
    /// ```
    #[doc(alias = "addErrback")]
    pub fn add_errback_deferred(
        self,
        f: impl FnOnce(Failure) -> Deferred<T> + 'static,
    ) -> Deferred<T> {
        self.then_pausing(move |out: Outcome<T>| match out {
            Ok(v) => Step::Done(Ok(v)),
            Err(e) => Step::Wait(f(e)),
        })
    }

    /// Adds a function that runs on success or failure and returns a Deferred (Twisted's
    /// `addBoth` with a function returning a Deferred): the chain pauses until that Deferred
    /// fires and continues with its outcome. Cancelling the chain while it waits cancels the
    /// returned Deferred, as with [`add_callback_deferred`](Self::add_callback_deferred).
    ///
    /// ```
    /// use torsion::defer::{fail, succeed};
    /// use torsion::error::TimeoutError;
    ///
    /// // Clean up either way, asynchronously, then pass the outcome on.
    /// let end = fail::<i32>(TimeoutError)
    ///     .add_both_deferred(|out| succeed(()).add_callback_result(move |()| out));
    /// assert!(end.result().unwrap().unwrap_err().check::<TimeoutError>());
    /// ```
    #[doc(alias = "addBoth")]
    pub fn add_both_deferred<U: 'static>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> Deferred<U> + 'static,
    ) -> Deferred<U> {
        self.then_pausing(move |out: Outcome<T>| Step::Wait(f(out)))
    }

    /// Adds an errback: on failure, `f` gets the [`Failure`]. Return `Ok(v)` to recover (the
    /// callbacks after it run with `v`) or `Err(f)` to pass a failure on. Values pass by
    /// untouched.
    #[doc(alias = "addErrback")]
    pub fn add_errback(
        self,
        f: impl FnOnce(Failure) -> Result<T, Failure> + 'static,
    ) -> Deferred<T> {
        self.then_plain(move |out| out.or_else(f))
    }

    /// Adds a callback and an errback at the same level: exactly one of them runs, and the
    /// errback does not see failures from the callback (Twisted's `addCallbacks`).
    #[doc(alias = "addCallbacks")]
    pub fn add_callbacks<U: 'static>(
        self,
        callback: impl FnOnce(T) -> U + 'static,
        errback: impl FnOnce(Failure) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.then_plain(move |out| match out {
            Ok(v) => Ok(callback(v)),
            Err(e) => errback(e),
        })
    }

    /// Adds a function that runs on success or failure (Twisted's `addBoth`), like `finally`:
    /// return the outcome unchanged to pass it on.
    #[doc(alias = "addBoth")]
    pub fn add_both<U: 'static>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.then_plain(f)
    }

    /// Cancels this Deferred if it has not fired `seconds` from now on `clock`, turning the
    /// cancellation into a [`TimeoutError`] (Twisted's `addTimeout`).
    #[doc(alias = "addTimeout")]
    pub fn add_timeout(self, seconds: impl Into<Delay>, clock: &dyn ReactorTime) -> Deferred<T> {
        if self.called() {
            return self;
        }
        let seconds = seconds.into().as_secs_f64();
        let timed_out = Rc::new(Cell::new(false));
        let flag = timed_out.clone();
        // The timer holds the chain: a Deferred nobody else can fire still times out.
        let chain = self.chain();
        let timer = clock.call_later_boxed(
            seconds,
            Box::new(move || {
                if !chain.core.complete.get() {
                    flag.set(true);
                    cancel(&chain);
                }
            }),
        );
        self.add_both(move |out| {
            if timer.active() {
                let _ = timer.cancel();
            }
            match out {
                Err(f) if timed_out.get() && f.check::<CancelledError>() => {
                    Err(Failure::new(TimeoutError))
                }
                other => other,
            }
        })
    }

    /// Runs `k` with the result, now or when it arrives, without making a new Deferred.
    pub(crate) fn on_result(self, k: impl FnOnce(Outcome<T>) + 'static) {
        if let View::Ready(value) = &mut *self.view.borrow_mut() {
            let value = value
                .take()
                .expect("the result of this Deferred was already taken (by .await or result())");
            return k(Ok(value));
        }
        drop(self.then_plain(move |out| {
            k(out);
            Ok::<(), Failure>(())
        }));
    }

    /// The chain, held weakly, for cancellation; `None` for a value held in the handle.
    pub(crate) fn weak_chain(&self) -> Option<WeakChain> {
        match &*self.view.borrow() {
            View::Chain(chain, _) => Some(Rc::downgrade(chain)),
            View::Ready(_) => None,
        }
    }

    /// What keeps this Deferred's chain alive.
    pub(crate) fn anchor(&self) -> Rc<dyn Any> {
        match &self.anchor {
            Some(a) => a.clone(),
            None => Rc::new(self.chain()),
        }
    }
}

impl<T: 'static> Trigger<T> {
    /// Fires the Deferred with `inner`'s outcome, when it comes (Twisted's `d.callback(d2)`):
    /// the chain counts as fired now, and cancelling it cancels `inner`, which whoever fires
    /// `inner` must keep alive. Does nothing if the Deferred has fired.
    pub(super) fn wait_on(self, inner: Deferred<T>) {
        let chain = self.chain;
        if chain.core.fired.get() {
            return;
        }
        chain.core.fired.set(true);
        drop(chain.core.canceller.take());
        chain.core.paused_on.set(inner.weak_chain());
        let me = chain.clone();
        inner.on_result(move |out| {
            me.core.paused_on.set(None);
            deep(|| advance(&me, &mut Some(out), 0));
        });
    }
}

/// A pause of a Deferred's chain, made by [`Deferred::pause`]: while it lives, no callback of
/// the chain runs. [`unpause`](Paused::unpause) it (Twisted's `d.unpause()`), or drop it,
/// and the callbacks run on the outcome that waited, if any, before that returns.
///
/// A token, not a method on the Deferred as in Twisted, because the Deferred moves on as
/// callbacks are added (or is awaited) while whoever paused it still has to unpause it; and an
/// unmatched unpause, which leaves a Twisted Deferred stuck for good, cannot be written.
#[must_use = "dropping the token unpauses the Deferred at once"]
pub struct Paused {
    /// Held weakly: a pause does not keep the chain alive (a failure waiting in a paused
    /// chain nobody holds is logged as unhandled).
    chain: Option<WeakChain>,
}

impl Paused {
    /// Ends this pause (Twisted's `d.unpause()`); after the last pause of the chain ends, its
    /// callbacks run on the outcome that waited, if any, before `unpause` returns.
    pub fn unpause(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(chain) = self.chain.take().and_then(|c| c.upgrade()) {
            unpause(&chain);
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.end();
    }
}

impl fmt::Debug for Paused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paused").finish_non_exhaustive()
    }
}

// A value held in `View::Ready` is moved out, never pinned, so a Deferred is always `Unpin`.
impl<T> Unpin for Deferred<T> {}

impl<T: 'static> Future for Deferred<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut().view.get_mut() {
            View::Ready(value) => match value.take() {
                Some(v) => Poll::Ready(Ok(v)),
                None => panic!("Deferred polled after its result was taken"),
            },
            View::Chain(chain, _) => {
                let core = &chain.core;
                if core.complete.get() {
                    return match take_rest(chain) {
                        Some(out) => Poll::Ready(out),
                        None => panic!("Deferred polled after its result was taken"),
                    };
                }
                match core.waker.take() {
                    Some(w) if w.will_wake(cx.waker()) => core.waker.set(Some(w)),
                    _ => core.waker.set(Some(cx.waker().clone())),
                }
                // The task polling this (`ensure_deferred`) waits on it: cancelling the task
                // cancels it.
                super::spawn::awaited(chain);
                Poll::Pending
            }
        }
    }
}

impl<T: 'static> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.view.borrow() {
            View::Ready(Some(_)) => "fired with a value",
            View::Ready(None) => "fired, result taken",
            View::Chain(chain, _) => {
                let rest = chain.core.rest.take();
                let state = match (&rest, chain.core.complete.get()) {
                    (_, false) if chain.core.paused.get() != 0 => "paused",
                    (_, false) => "waiting",
                    (Some(Rest::Failure(_)), true) => "fired with a failure",
                    (Some(Rest::Value(_)), true) => "fired with a value",
                    (Some(Rest::InStart), true) if chain.start.holds_failure() => {
                        "fired with a failure"
                    }
                    (Some(Rest::InStart), true) => "fired with a value",
                    (None, true) => "fired, result taken",
                };
                chain.core.rest.set(rest);
                state
            }
        };
        f.debug_struct("Deferred").field("state", &state).finish()
    }
}

/// A Deferred that has already fired with `value` (Twisted's `defer.succeed`). It holds the
/// value itself, with no allocation, until something needs a chain.
pub fn succeed<T: 'static>(value: T) -> Deferred<T> {
    Deferred {
        view: RefCell::new(View::Ready(Some(value))),
        anchor: None,
    }
}

/// A Deferred that has already failed with `failure` (Twisted's `defer.fail`).
pub fn fail<T: 'static>(failure: impl Into<Failure>) -> Deferred<T> {
    Deferred::on(fired_chain::<T>(Some(Err(failure.into()))))
}

/// What [`maybe_deferred`] turns a function's return value into a Deferred from: a `Result`
/// (its `Err` becomes the failure), a `Deferred` (returned as is), or `()` (a Deferred that
/// fired with `()`, for a function run for its effect).
pub trait IntoDeferred {
    /// The type of the Deferred's value.
    type Item: 'static;

    /// The Deferred.
    fn into_deferred(self) -> Deferred<Self::Item>;
}

impl<T: 'static, E: Into<Failure>> IntoDeferred for Result<T, E> {
    type Item = T;

    fn into_deferred(self) -> Deferred<T> {
        match self {
            Ok(v) => succeed(v),
            Err(e) => fail(e),
        }
    }
}

impl<T: 'static> IntoDeferred for Deferred<T> {
    type Item = T;

    fn into_deferred(self) -> Deferred<T> {
        self
    }
}

impl IntoDeferred for () {
    type Item = ();

    fn into_deferred(self) -> Deferred<()> {
        succeed(())
    }
}

/// Calls `f` now and gives its outcome as a Deferred, whatever it returns (Twisted's
/// `maybeDeferred`): an `Ok` value, an `Err` (the failure), a Deferred (returned as is), or
/// `()`. A panic in `f` becomes the failure, as a raised exception does in Twisted.
///
/// A function returning a plain value `v` can return `Ok::<_, Failure>(v)`; one that may
/// raise in Twisted returns a `Result` here.
///
/// ```
/// use torsion::defer::{maybe_deferred, succeed};
///
/// fn parse(s: &str) -> Result<i32, std::num::ParseIntError> { s.parse() }
///
/// assert_eq!(maybe_deferred(|| parse("42")).result().unwrap().unwrap(), 42);
/// let bad = maybe_deferred(|| parse("forty-two")).result().unwrap().unwrap_err();
/// assert!(bad.check::<std::num::ParseIntError>());
/// assert_eq!(maybe_deferred(|| succeed(7)).result().unwrap().unwrap(), 7);
/// let boom = maybe_deferred(|| -> Result<i32, std::io::Error> { panic!("boom") });
/// assert!(boom.result().unwrap().is_err());
/// ```
#[doc(alias = "maybeDeferred")]
pub fn maybe_deferred<R: IntoDeferred>(f: impl FnOnce() -> R) -> Deferred<R::Item> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.into_deferred(),
        Err(payload) => fail(Failure::from_panic(payload)),
    }
}
