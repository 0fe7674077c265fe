//! The chain under every [`Deferred`](super::Deferred): Twisted's `Deferred` object, one list
//! of steps and where it stands, and the [`Trigger`] that fires it at its start.
//!
//! Everything here works on a [`ChainRef`] whatever its types; the typed handles
//! (`Deferred<T>`, in `deferred.rs`) are views of one chain. See the module documentation of
//! `deferred.rs` for how a chain runs and why it is cheap.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::task::Waker;

use crate::error::{AlreadyCalledError, CancelledError};
use crate::Failure;

pub(super) type Outcome<T> = Result<T, Failure>;

/// Below this much free stack, recursion continues on a new stack segment.
const RED_ZONE: usize = 128 * 1024;
/// The size of each new stack segment.
const SEGMENT: usize = 2 * 1024 * 1024;

/// Runs `f`, on a fresh stack segment if this one is nearly used up.
pub(super) fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}

/// Steps kept inside the chain before the rest spill into a vector.
const INLINE_STEPS: usize = 10;

/// One chain of callbacks (Twisted's `Deferred` object): its steps and where it stands, and
/// `X`, the part typed by the value the chain starts with ([`Start`]). Handles hold it as a
/// [`ChainRef`], whose `core` they reach without a virtual call.
pub(crate) struct Chain<X: ?Sized> {
    pub(super) core: Core,
    pub(super) start: X,
}

/// A chain, whatever type it starts with.
pub(crate) type ChainRef = Rc<Chain<dyn StartSlot>>;

/// A chain, held weakly (for cancellation that must not keep a chain alive).
pub(crate) type WeakChain = Weak<Chain<dyn StartSlot>>;

/// The part of a chain that does not depend on its types.
pub(super) struct Core {
    /// The chain was fired at its start (or cancelled): later firings are refused, or
    /// ignored if it was cancelled.
    pub(super) fired: Cell<bool>,
    /// Cancelled: later firings are silently ignored, as in Twisted.
    pub(super) cancelled: Cell<bool>,
    /// Every step added has run: the outcome rests (until taken), and a step added now runs
    /// at once.
    pub(super) complete: Cell<bool>,
    /// The steps, in order: the first ones in place, `None` once run. Dropped by
    /// `Core::drop`, not by the drop glue: only the steps not run yet hold anything, so a
    /// chain that ran them all does not look at its slots.
    pub(super) inline: ManuallyDrop<[Cell<Option<BoxedStep>>; INLINE_STEPS]>,
    /// Steps after the first `INLINE_STEPS` (taken out while used); dropped as `inline` is.
    pub(super) more: ManuallyDrop<Cell<Vec<Option<BoxedStep>>>>,
    /// Steps added so far.
    pub(super) len: Cell<u32>,
    /// The next step to run.
    pub(super) next: Cell<u32>,
    /// The outcome after the last step, once complete and until taken; dropped by
    /// `Core::drop`, which takes it anyway to log a failure left in it.
    pub(super) rest: ManuallyDrop<Cell<Option<Rest>>>,
    /// The task awaiting the outcome.
    pub(super) waker: Cell<Option<Waker>>,
    /// The Deferred a step returned, which the chain waits on (for cancellation).
    pub(super) paused_on: Cell<Option<WeakChain>>,
    /// Unmatched `pause()` calls (Twisted's `paused`): while above zero, no step runs.
    pub(super) paused: Cell<u32>,
    /// The outcome that reached a paused chain, with the rest of the run to resume.
    pub(super) queued: Cell<Option<Box<dyn Resume>>>,
    /// What runs if the chain is cancelled before it fired (Twisted's canceller), given the
    /// chain; dropped when it fires. Its types erased, so firing drops it without a virtual
    /// call.
    pub(super) canceller: Cell<Option<Canceller>>,
}

/// A canceller, given the chain it cancels (it makes the typed [`Trigger`] itself).
pub(super) type Canceller = Box<dyn FnOnce(&ChainRef)>;

/// A step, its types erased.
type BoxedStep = Box<dyn ErasedStep>;

/// An outcome held while the chain is paused: resumes the run of steps on it.
pub(super) trait Resume {
    /// Runs the chain's remaining steps on the held outcome.
    fn resume(self: Box<Self>, chain: &ChainRef);
}

/// An outcome of type `T` held by a paused chain.
struct Queued<T>(Option<Outcome<T>>);

impl<T: 'static> Resume for Queued<T> {
    fn resume(mut self: Box<Self>, chain: &ChainRef) {
        let mut out = self.0.take();
        deep(|| advance(chain, &mut out, 0));
    }
}

impl<T> Drop for Queued<T> {
    fn drop(&mut self) {
        // A paused chain dropped with a failure: nobody handled it.
        if let Some(Err(failure)) = self.0.take() {
            log_unhandled(failure);
        }
    }
}

/// An outcome at rest, its type erased.
pub(super) enum Rest {
    Value(Box<dyn Any>),
    Failure(Failure),
    /// In the chain's own typed slot: the outcome has the type the chain starts with.
    InStart,
}

/// The typed part of a chain, a [`Start`]: the slot for an outcome of the type it starts
/// with (found by downcasting it as `Any`).
pub(crate) trait StartSlot: Any {
    /// The start type.
    fn start_type(&self) -> TypeId;
    /// True when the typed slot holds a failure.
    fn holds_failure(&self) -> bool;
    /// Fails the start with [`CancelledError`], unless it fired (its canceller ran first).
    fn cancel_start(&self, me: &ChainRef);
}

/// The typed part of a chain that starts with a `T`: an outcome of that type rests in its
/// slot, with no box.
struct Start<T> {
    /// Dropped by `Start::drop`, which takes it anyway to log a failure left in it.
    slot: ManuallyDrop<Cell<Option<Outcome<T>>>>,
}

impl<T: 'static> StartSlot for Start<T> {
    fn start_type(&self) -> TypeId {
        TypeId::of::<T>()
    }

    fn holds_failure(&self) -> bool {
        let out = self.slot.take();
        let failed = matches!(out, Some(Err(_)));
        self.slot.set(out);
        failed
    }

    fn cancel_start(&self, me: &ChainRef) {
        if !me.core.fired.get() {
            let _ = fire::<T>(me, Err(Failure::new(CancelledError)), "cancel");
        }
    }
}

/// The slot of a chain that starts with a `T`, if it does.
#[inline]
fn start_slot<T: 'static>(chain: &ChainRef) -> Option<&Cell<Option<Outcome<T>>>> {
    let start: &dyn Any = &chain.start;
    start.downcast_ref::<Start<T>>().map(|start| &*start.slot)
}

/// A canceller of a chain that starts with a `T`, from one that takes the chain's trigger.
pub(super) fn canceller<T: 'static>(f: impl FnOnce(Trigger<T>) + 'static) -> Canceller {
    Box::new(move |me: &ChainRef| {
        f(Trigger {
            chain: me.clone(),
            from_start: true,
            types: PhantomData,
        })
    })
}

/// Logs a failure nobody handled, when the chain that held it is dropped, and keeps it for
/// the test that is running, if any.
fn log_unhandled(failure: Failure) {
    crate::log::error_event(format_args!(
        "Unhandled error in Deferred:\n{}",
        failure.report()
    ));
    crate::log::kept::keep(crate::log::kept::How::Unhandled, failure);
}

impl<T> Drop for Start<T> {
    fn drop(&mut self) {
        match self.slot.get_mut().take() {
            Some(Err(failure)) => log_unhandled(failure),
            out => drop(out),
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        match self.rest.get_mut().take() {
            Some(Rest::Failure(failure)) => log_unhandled(failure),
            rest => drop(rest),
        }
        // Steps are taken out of their slots as they run, so only those in `next..len` hold
        // anything. Dropping them drops what they hold, which may be other chains: as deep as
        // the chains go. The spill vector's memory goes in any case.
        if self.len.get() > self.next.get() || self.more.get_mut().capacity() != 0 {
            let inline = ManuallyDrop::into_inner(mem::replace(
                &mut self.inline,
                ManuallyDrop::new([const { Cell::new(None) }; INLINE_STEPS]),
            ));
            let more = self.more.take();
            deep(move || drop((inline, more)));
        }
    }
}

/// A new chain that starts with a `T`.
pub(super) fn new_chain<T: 'static>(canceller: Option<Canceller>) -> ChainRef {
    // Built in place: `Rc::new` assembles the chain on the stack and copies it to the heap.
    Rc::<Chain<Start<T>>>::new_cyclic(|_| Chain {
        core: Core {
            fired: Cell::new(false),
            cancelled: Cell::new(false),
            complete: Cell::new(false),
            inline: ManuallyDrop::new([const { Cell::new(None) }; INLINE_STEPS]),
            more: ManuallyDrop::new(Cell::new(Vec::new())),
            len: Cell::new(0),
            next: Cell::new(0),
            rest: ManuallyDrop::new(Cell::new(None)),
            waker: Cell::new(None),
            paused_on: Cell::new(None),
            paused: Cell::new(0),
            queued: Cell::new(None),
            canceller: Cell::new(canceller),
        },
        start: Start::<T> {
            slot: ManuallyDrop::new(Cell::new(None)),
        },
    })
}

/// A chain already fired with `out`, or whose outcome was taken (`None`).
pub(super) fn fired_chain<T: 'static>(out: Option<Outcome<T>>) -> ChainRef {
    let chain = new_chain::<T>(None);
    chain.core.fired.set(true);
    chain.core.complete.set(true);
    if let Some(out) = out {
        start_slot::<T>(&chain)
            .unwrap_or_else(|| unreachable!("made with the start type"))
            .set(Some(out));
        chain.core.rest.set(Some(Rest::InStart));
    }
    chain
}

impl Core {
    /// Adds a step at the end; says whether every step before it ran (the chain is
    /// complete), so that it must run now.
    #[inline]
    pub(super) fn push(&self, step: Box<dyn ErasedStep>) -> bool {
        let len = self.len.get();
        match self.inline.get(len as usize) {
            Some(slot) => {
                // Slots past `len` are empty: nothing to drop.
                let empty = slot.replace(Some(step));
                debug_assert!(empty.is_none());
                mem::forget(empty);
                // `len` is below `INLINE_STEPS`: no overflow.
                self.len.set(len + 1);
            }
            None => spill(self, step),
        }
        self.complete.get()
    }
}

/// [`Core::push`] past the steps kept in place. It cannot unwind (`extern "C"`: a panic here,
/// over 4 billion steps or a vector past `isize::MAX` bytes, aborts): a call that may unwind
/// makes every `add_*` call keep its handle in memory for the unwinding path, and reload it
/// after each step it adds.
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)] // called from Rust only; `extern "C"` for `nounwind`
extern "C" fn spill(core: &Core, step: Box<dyn ErasedStep>) {
    let len = core.len.get();
    let mut more = core.more.take();
    more.push(Some(step));
    core.more.set(more);
    core.len.set(
        len.checked_add(1)
            .expect("over 4 billion callbacks on one Deferred"),
    );
}

impl Core {
    #[cold]
    #[inline(never)]
    fn unspill(&self, i: usize) -> Option<Box<dyn ErasedStep>> {
        let mut more = self.more.take();
        let step = more[i - INLINE_STEPS].take();
        self.more.set(more);
        step
    }

    /// Takes the next step to run, if any.
    #[inline]
    fn pop(&self) -> Option<Box<dyn ErasedStep>> {
        let i = self.next.get();
        if i >= self.len.get() {
            return None;
        }
        self.next.set(i + 1);
        match self.inline.get(i as usize) {
            Some(slot) => slot.take(),
            None => self.unspill(i as usize),
        }
    }
}

/// One step; `input` is the previous step's `Option<Outcome<In>>`.
pub(super) trait ErasedStep {
    /// Runs the step on `input`. A step whose output has its input's type writes it back
    /// into `input` and returns `true`: the caller's loop runs the next step on it, so a run
    /// of one type takes one stack frame, not one per step. A step that changes the type runs
    /// the rest of the chain itself, on its own output (one level deeper), and returns
    /// `false`, as does a step that pauses the chain.
    fn run(self: Box<Self>, input: &mut dyn Any, chain: &ChainRef, depth: usize) -> bool;
}

/// A step's input: the previous step's slot, and the outcome taken out of it.
pub(super) fn take_input<T: 'static>(input: &mut dyn Any) -> (&mut Option<Outcome<T>>, Outcome<T>) {
    let slot = input
        .downcast_mut::<Option<Outcome<T>>>()
        .unwrap_or_else(|| unreachable!("each step gets the outcome of the step before"));
    let out = slot
        .take()
        .unwrap_or_else(|| unreachable!("each step gets the outcome of the step before"));
    (slot, out)
}

/// Hands a step's output on: back into the input's slot when the type is the same (decided
/// at compile time), else to the rest of the chain, one level deeper.
#[inline]
pub(super) fn pass_on<T: 'static, U: 'static>(
    slot: &mut Option<Outcome<T>>,
    out: Outcome<U>,
    chain: &ChainRef,
    depth: usize,
) -> bool {
    let mut out = Some(out);
    if let Some(same) = (&mut out as &mut dyn Any).downcast_mut::<Option<Outcome<T>>>() {
        *slot = same.take();
        return true;
    }
    advance(chain, &mut out, depth + 1);
    false
}

/// A callback, errback or both, from `Outcome<T>` to `Outcome<U>`.
pub(super) struct Plain<T, U, F> {
    pub(super) f: F,
    pub(super) types: PhantomData<fn(T) -> U>,
}

impl<T: 'static, U: 'static, F> ErasedStep for Plain<T, U, F>
where
    F: FnOnce(Outcome<T>) -> Outcome<U>,
{
    fn run(self: Box<Self>, input: &mut dyn Any, chain: &ChainRef, depth: usize) -> bool {
        let (slot, taken) = take_input::<T>(input);
        let out = catch_unwind(AssertUnwindSafe(move || (self.f)(taken)))
            .unwrap_or_else(|payload| Err(Failure::from_panic(payload)));
        pass_on(slot, out, chain, depth)
    }
}

/// Runs the chain from its next step on `value`, then lets the outcome rest. `depth` counts
/// the changes of type so far (one level of recursion each); every 64 levels the recursion
/// moves to a fresh stack segment when the stack runs low.
#[inline]
pub(super) fn advance<T: 'static>(chain: &ChainRef, value: &mut Option<Outcome<T>>, depth: usize) {
    if depth % 64 == 63 {
        advance_deep(chain, value, depth)
    } else {
        run_steps(chain, value, depth)
    }
}

/// The loop of [`advance`]: each step in turn, for as long as they keep the type.
fn run_steps<T: 'static>(chain: &ChainRef, value: &mut Option<Outcome<T>>, depth: usize) {
    loop {
        if chain.core.paused.get() != 0 {
            return queue(chain, value);
        }
        let Some(step) = chain.core.pop() else { break };
        if !step.run(value, chain, depth) {
            return;
        }
    }
    finish(chain, value);
}

/// The chain is paused: the outcome waits, with the rest of the run, for `unpause`.
#[cold]
#[inline(never)]
fn queue<T: 'static>(chain: &ChainRef, value: &mut Option<Outcome<T>>) {
    debug_assert!(value.is_some(), "the outcome of the last step that ran");
    chain.core.queued.set(Some(Box::new(Queued(value.take()))));
}

/// Pauses `chain` (Twisted's `pause`): no step runs until as many `unpause` calls.
pub(super) fn pause(chain: &ChainRef) {
    let core = &chain.core;
    core.paused.set(
        core.paused
            .get()
            .checked_add(1)
            .expect("over 4 billion pause() calls on one Deferred"),
    );
}

/// Undoes one [`pause`]; the last one resumes the steps on the outcome that waits, if any.
pub(super) fn unpause(chain: &ChainRef) {
    let core = &chain.core;
    let left = core.paused.get() - 1;
    core.paused.set(left);
    if left == 0 {
        if let Some(queued) = core.queued.take() {
            queued.resume(chain);
        }
    }
}

/// [`run_steps`] on a fresh stack segment if this one is nearly used up (kept out of
/// [`advance`], which would otherwise pay for the check's frame every time).
#[cold]
#[inline(never)]
fn advance_deep<T: 'static>(chain: &ChainRef, value: &mut Option<Outcome<T>>, depth: usize) {
    deep(|| run_steps(chain, value, depth));
}

/// Every step ran: the outcome rests, and whoever awaits it is woken (kept out of the step
/// loop, whose every turn would otherwise pay for this path's registers).
#[inline(never)]
fn finish<T: 'static>(chain: &ChainRef, value: &mut Option<Outcome<T>>) {
    let rest = match start_slot::<T>(chain) {
        Some(slot) => {
            slot.set(value.take());
            Rest::InStart
        }
        None => match value.take() {
            Some(Ok(v)) => Rest::Value(Box::new(v)),
            Some(Err(f)) => Rest::Failure(f),
            None => unreachable!("the last step's outcome"),
        },
    };
    chain.core.rest.set(Some(rest));
    chain.core.complete.set(true);
    if let Some(waker) = chain.core.waker.take() {
        waker.wake();
    }
}

/// The resting outcome, if the chain is complete and nobody took it yet.
pub(super) fn take_rest<T: 'static>(chain: &ChainRef) -> Option<Outcome<T>> {
    match chain.core.rest.take()? {
        Rest::Value(v) => Some(Ok(*v
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("a chain ends in the type its handle names")))),
        Rest::Failure(f) => Some(Err(f)),
        Rest::InStart => start_slot::<T>(chain).and_then(Cell::take),
    }
}

/// Fires `chain` at its start with `out`. Firing a cancelled chain is silently ignored.
pub(super) fn fire<T: 'static>(
    chain: &ChainRef,
    out: Outcome<T>,
    what: &'static str,
) -> Result<(), AlreadyCalledError> {
    let core = &chain.core;
    if core.fired.get() {
        return if core.cancelled.get() {
            Ok(())
        } else {
            Err(AlreadyCalledError { what })
        };
    }
    core.fired.set(true);
    drop(core.canceller.take());
    deep(|| advance(chain, &mut Some(out), 0));
    Ok(())
}

/// Cancels `chain` (Twisted's `cancel`): at its start if it has not fired, else the
/// Deferred it waits on, if it waits on one.
pub(super) fn cancel(chain: &ChainRef) {
    let core = &chain.core;
    if !core.fired.get() {
        if let Some(canceller) = core.canceller.take() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || canceller(chain))) {
                crate::log::err(
                    &Failure::from_panic(payload),
                    "panic in a Deferred's canceller",
                );
            }
        }
        chain.start.cancel_start(chain);
        core.cancelled.set(true);
    } else if !core.complete.get() {
        let waited = core.paused_on.take();
        core.paused_on.set(waited.clone());
        if let Some(inner) = waited.and_then(|w| w.upgrade()) {
            deep(|| cancel(&inner));
        }
    }
}

/// The firing side of a [`Deferred`](super::Deferred): fires it once, with a value or a failure.
///
/// Made by [`Deferred::trigger`](super::Deferred::trigger); consumed by [`callback`](Trigger::callback) and
/// [`errback`](Trigger::errback), so one trigger cannot fire twice. Keep it in an `Option` and
/// `take()` it when the answer may come more than once (seed 002's `ReverseClientProtocol`).
#[doc(alias = "callback", alias = "errback", alias = "resolve")]
pub struct Trigger<T> {
    pub(super) chain: ChainRef,
    /// Made before any callback was added: it fires the chain at its start. A trigger made
    /// from the end of a chain refuses to fire.
    pub(super) from_start: bool,
    pub(super) types: PhantomData<fn(T)>,
}

/// Cancels a chain held weakly, if it is still there (a list's members).
pub(crate) fn cancel_weak(chain: &WeakChain) {
    if let Some(chain) = chain.upgrade() {
        cancel(&chain);
    }
}

impl<T: 'static> Trigger<T> {
    /// Fires the Deferred with a value.
    ///
    /// # Panics
    /// With [`AlreadyCalledError`] if the Deferred was already fired by another trigger. A
    /// cancelled Deferred ignores the firing, as in Twisted.
    #[track_caller]
    pub fn callback(self, value: T) {
        if let Err(e) = self.try_callback(value) {
            panic!("{e}");
        }
    }

    /// Fires the Deferred with a failure.
    ///
    /// # Panics
    /// With [`AlreadyCalledError`] if the Deferred was already fired by another trigger.
    #[track_caller]
    pub fn errback(self, failure: impl Into<Failure>) {
        if let Err(e) = self.try_errback(failure) {
            panic!("{e}");
        }
    }

    /// Fires the Deferred with a value, or says it had already fired.
    pub fn try_callback(self, value: T) -> Result<(), AlreadyCalledError> {
        self.fire_as(Ok(value), "callback")
    }

    /// Fires the Deferred with a failure, or says it had already fired.
    pub fn try_errback(self, failure: impl Into<Failure>) -> Result<(), AlreadyCalledError> {
        self.fire_as(Err(failure.into()), "errback")
    }

    /// Fires the Deferred with an outcome.
    pub fn fire(self, outcome: Result<T, Failure>) -> Result<(), AlreadyCalledError> {
        self.fire_as(outcome, "callback")
    }

    #[inline]
    pub(super) fn fire_as(
        self,
        outcome: Outcome<T>,
        what: &'static str,
    ) -> Result<(), AlreadyCalledError> {
        let chain = &self.chain;
        if !self.from_start {
            // Made from the end of a chain: only the chain fires it.
            if chain.core.fired.get() && chain.core.cancelled.get() {
                return Ok(());
            }
            return Err(AlreadyCalledError {
                what: "this Deferred is the end of a chain of callbacks and fires when the \
                       chain does: fire the chain's first Deferred, or a Trigger made from it",
            });
        }
        fire(chain, outcome, what)
    }

    /// True once the Deferred has fired or been cancelled.
    pub fn is_called(&self) -> bool {
        self.chain.core.fired.get()
    }
}

impl<T: 'static> fmt::Debug for Trigger<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trigger")
            .field("called", &self.chain.core.fired.get())
            .finish()
    }
}
