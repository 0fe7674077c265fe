//! `Deferred<T>` and its firing side, `Trigger<T>`.
//!
//! Each step of a chain is a node holding the step's result (or the continuation waiting for
//! it). Adding a callback consumes a `Deferred<T>` and returns the `Deferred<U>` of the next
//! node, so types flow and no handle can fire the chain with the wrong type. A node remembers
//! the node it waits on (weakly), so cancelling the end of a chain cancels where the chain is
//! stuck; the end's handle keeps the chain's root alive, so a root with a canceller can be
//! reached even when nobody kept its trigger. Continuations run synchronously when a node
//! fires, as in Twisted. Firing, dropping and cancelling recurse along the chain; the
//! recursion runs on a stack that grows on demand ([`stacker`]), so chains of any length are
//! safe and `callback()` still returns only after every callback ran.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::error::{AlreadyCalledError, CancelledError, TimeoutError};
use crate::time::{Delay, ReactorTime};
use crate::Failure;

type Outcome<T> = Result<T, Failure>;

/// Below this much free stack, recursion continues on a new stack segment.
const RED_ZONE: usize = 128 * 1024;
/// The size of each new stack segment.
const SEGMENT: usize = 2 * 1024 * 1024;

/// Runs `f`, on a fresh stack segment if this one is nearly used up.
fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}

/// A node of a chain: the slot holding its result or continuation, and `X`, whatever else
/// the node carries. A node for a step that may pause the chain carries that step
/// ([`StepCell`]), so it costs one allocation with its step; a chain's root carries a weak
/// link to itself ([`Me`]) and lives in a [`Hosted`] beside the run of the callbacks added to
/// it; a node made fired, or for a run's end, carries nothing (`()`).
pub(crate) struct Node<T, X> {
    slot: RefCell<Slot<T>>,
    extra: X,
}

/// A node seen from its value type: what a [`Deferred<T>`] and a [`Trigger<T>`] hold.
pub(crate) trait Link<T>: Upstream + Any {
    fn slot(&self) -> &RefCell<Slot<T>>;
    /// This node as the host of its run of callbacks, if it is a chain's root.
    fn as_host(&self) -> Option<&Hosted<dyn HostTail>> {
        None
    }
    /// This node as the host of its run, if it is a chain's root.
    fn into_host(self: Rc<Self>) -> Option<HostRef> {
        None
    }
}

/// A node waiting for the previous node's outcome, whatever its own value type.
trait Listener<T> {
    fn run(self: Rc<Self>, out: Outcome<T>);
}

type NodeRef<T> = Rc<dyn Link<T>>;

pub(crate) struct Slot<T> {
    /// Fired (or cancelled): no more firing accepted.
    fired: bool,
    /// Cancelled: later firings are silently ignored, as in Twisted.
    cancelled: bool,
    /// The result, once fired, until someone takes it.
    result: Option<Outcome<T>>,
    waiter: Waiter<T>,
    canceller: Option<Box<dyn FnOnce(Trigger<T>)>>,
    /// The node this one is waiting on, for cancellation.
    upstream: Option<Weak<dyn Upstream>>,
}

impl<T> Slot<T> {
    fn new() -> RefCell<Slot<T>> {
        RefCell::new(Slot {
            fired: false,
            cancelled: false,
            result: None,
            waiter: Waiter::Nobody,
            canceller: None,
            upstream: None,
        })
    }

    /// The result, if the node has fired and nobody took it yet; `None` if it has not fired
    /// (the caller then sets the waiter).
    fn take_ready(&mut self) -> Option<Outcome<T>> {
        let out = self.result.take();
        assert!(
            out.is_some() || !self.fired,
            "the result of this Deferred was already taken (by .await or result())"
        );
        out
    }
}

enum Waiter<T> {
    Nobody,
    /// A continuation (awaiting a chained Deferred, `on_result`, lists).
    Then(Box<dyn FnOnce(Outcome<T>)>),
    /// The next node of the chain, which runs its step with this outcome.
    Next(Rc<dyn Listener<T>>),
    /// The run of callbacks this node hosts ([`Link::as_host`]).
    Run,
    Task(Waker),
}

/// Something that can be cancelled from downstream, whatever its value type.
pub(crate) trait Upstream {
    fn cancel_node(self: Rc<Self>);
}

impl<T: 'static, X: 'static> Link<T> for Node<T, X> {
    fn slot(&self) -> &RefCell<Slot<T>> {
        &self.slot
    }
}

/// What a chain's root carries: a weak link to itself, for the end of its run to name as
/// the node it waits on ([`HostTail::upstream`]).
pub(crate) struct Me(Weak<dyn Upstream>);

/// A chain's root: its node beside its run.
type Root<T> = Hosted<Node<T, Me>>;

impl<T: 'static> Link<T> for Root<T> {
    fn slot(&self) -> &RefCell<Slot<T>> {
        &self.tail.slot
    }

    fn as_host(&self) -> Option<&Hosted<dyn HostTail>> {
        Some(self)
    }

    fn into_host(self: Rc<Self>) -> Option<HostRef> {
        Some(self)
    }
}

impl<T: 'static> Upstream for Root<T> {
    fn cancel_node(self: Rc<Self>) {
        let node: NodeRef<T> = self;
        cancel(&node);
    }
}

impl<T: 'static> HostTail for Node<T, Me> {
    fn upstream(&self) -> Weak<dyn Upstream> {
        self.extra.0.clone()
    }

    fn keep(&self, value: &mut dyn Any) -> bool {
        match value.downcast_mut::<Option<Outcome<T>>>() {
            Some(out) => {
                self.slot.borrow_mut().result = out.take();
                true
            }
            None => false,
        }
    }

    fn give(&self, into: &mut dyn Any) {
        if let Some(out) = into.downcast_mut::<Option<Outcome<T>>>() {
            *out = self.slot.borrow_mut().result.take();
        }
    }
}

impl<T: 'static, X: 'static> Upstream for Node<T, X> {
    fn cancel_node(self: Rc<Self>) {
        let node: NodeRef<T> = self;
        cancel(&node);
    }
}

/// The step a non-root node runs: taken out when the previous node fires.
struct StepCell<F>(Cell<Option<F>>);

impl<T: 'static, U: 'static, F> Listener<T> for Node<U, StepCell<F>>
where
    F: FnOnce(Outcome<T>) -> Step<U> + 'static,
{
    fn run(self: Rc<Self>, out: Outcome<T>) {
        let Some(step) = self.extra.0.take() else {
            return;
        };
        let step = catch_unwind(AssertUnwindSafe(move || step(out)))
            .unwrap_or_else(|payload| Step::Done(Err(Failure::from_panic(payload))));
        let target: NodeRef<U> = self;
        match step {
            Step::Done(out) => {
                let _ = fire(&target, out, "callback");
            }
            Step::Chain(inner) => {
                {
                    let mut t = target.slot().borrow_mut();
                    if !t.fired {
                        let up: Weak<dyn Link<U>> = Rc::downgrade(&inner.node());
                        t.upstream = Some(up);
                    }
                }
                attach(inner.node(), move |out| {
                    let _ = fire(&target, out, "callback");
                });
            }
        }
    }
}

thread_local! {
    static UNHANDLED: Cell<u64> = const { Cell::new(0) };
}

/// Logs a failure nobody handled, at the drop of the chain end that held it, and counts it.
fn log_unhandled(failure: &Failure) {
    UNHANDLED.set(UNHANDLED.get() + 1);
    crate::log::error_event(format_args!(
        "Unhandled error in Deferred:\n{}",
        failure.report()
    ));
}

/// How many unhandled Deferred failures this thread has logged (the test runner checks it).
pub(crate) fn unhandled_failures() -> u64 {
    UNHANDLED.get()
}

impl<T, X> Drop for Node<T, X> {
    fn drop(&mut self) {
        let slot = self.slot.get_mut();
        if let Some(Err(failure)) = slot.result.take() {
            log_unhandled(&failure);
        }
        // Dropping a continuation drops the rest of the chain: recursion as deep as the chain.
        let waiter = std::mem::replace(&mut slot.waiter, Waiter::Nobody);
        if matches!(waiter, Waiter::Then(_) | Waiter::Next(_)) {
            deep(move || drop(waiter));
        }
    }
}

fn new_node<T: 'static>() -> NodeRef<T> {
    Rc::new(Node {
        slot: Slot::new(),
        extra: (),
    })
}

/// A chain's root: a node that hosts the run of the callbacks added to it, so that making a
/// Deferred and adding callbacks to it costs one allocation, not one for the node and one for
/// the run. (Built in place: `Rc::new` would build it on the stack and copy it.)
fn new_root<T: 'static>() -> NodeRef<T> {
    Rc::<Root<T>>::new_cyclic(|me| Hosted {
        run: Fused::new(),
        tail: Node {
            slot: Slot::new(),
            extra: Me(me.clone()),
        },
    })
}

/// Fires `node`. Firing a cancelled node is silently ignored.
fn fire<T: 'static>(
    node: &NodeRef<T>,
    out: Outcome<T>,
    what: &'static str,
) -> Result<(), AlreadyCalledError> {
    let mut s = node.slot().borrow_mut();
    if s.fired {
        return if s.cancelled {
            Ok(())
        } else {
            Err(AlreadyCalledError { what })
        };
    }
    s.fired = true;
    let canceller = s.canceller.take();
    let upstream = s.upstream.take();
    match mem::replace(&mut s.waiter, Waiter::Nobody) {
        Waiter::Then(k) => {
            drop(s);
            // Runs the rest of the chain.
            deep(move || k(out));
        }
        Waiter::Next(next) => {
            drop(s);
            deep(move || next.run(out));
        }
        Waiter::Run => {
            drop(s);
            let host = node
                .as_host()
                .unwrap_or_else(|| unreachable!("only a root waits on its own run"));
            deep(move || Fused::start(host, out));
        }
        Waiter::Task(waker) => {
            s.result = Some(out);
            drop(s);
            waker.wake();
        }
        Waiter::Nobody => s.result = Some(out),
    }
    drop((canceller, upstream));
    Ok(())
}

/// Runs `k` with the node's result now if it has one, or when it fires.
fn attach<T: 'static>(node: NodeRef<T>, k: impl FnOnce(Outcome<T>) + 'static) {
    let mut s = node.slot().borrow_mut();
    match s.take_ready() {
        Some(out) => {
            drop(s);
            k(out);
        }
        None => s.waiter = Waiter::Then(Box::new(k)),
    }
}

fn cancel<T: 'static>(node: &NodeRef<T>) {
    let mut handed_up = false;
    let (canceller, upstream) = {
        let mut s = node.slot().borrow_mut();
        if s.fired {
            return;
        }
        (s.canceller.take(), s.upstream.take())
    };
    if let Some(canceller) = canceller {
        let trigger = Trigger { node: node.clone() };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || canceller(trigger))) {
            crate::log::err(
                &Failure::from_panic(payload),
                "panic in a Deferred's canceller",
            );
        }
    } else if let Some(up) = upstream.and_then(|w| w.upgrade()) {
        handed_up = true;
        deep(move || up.cancel_node());
    }
    let mut s = node.slot().borrow_mut();
    // Cancelling upstream fails the chain's root, and the chain runs: this node fires, or the
    // chain pauses on a Deferred a callback returned, as Twisted's does after `cancel()`
    // errbacks its Deferred; it goes on when that one fires (a second cancel cancels it).
    // Only with nothing upstream to cancel does this node fail here.
    if !s.fired && !handed_up {
        drop(s);
        let _ = fire(node, Err(Failure::new(CancelledError)), "cancel");
        s = node.slot().borrow_mut();
    }
    // Whatever the chain does later, this node has been dealt with.
    s.cancelled = true;
}

/// Runs one step, turning a panic into a [`Failure`].
fn run_step<T, U>(f: impl FnOnce(Outcome<T>) -> Outcome<U>, out: Outcome<T>) -> Outcome<U> {
    catch_unwind(AssertUnwindSafe(move || f(out)))
        .unwrap_or_else(|payload| Err(Failure::from_panic(payload)))
}

/// The end of a chain, as a [`Deferred`] holds it.
enum End<T> {
    /// A node: the chain's root, a step that may pause the chain, or a materialized run.
    Node(NodeRef<T>),
    /// Callbacks fused into one run ending in a `T`, and what holds the run.
    Fused(HostRef, PhantomData<fn() -> T>),
    /// Fired with a value from the start ([`succeed`]), no node needed: `None` once the value
    /// is taken. (A failure always lives in a node, whose drop logs it if unhandled.)
    Ready(Option<T>),
}

/// A node already fired with `out`, or whose result was taken (`None`).
fn fired_node<T: 'static>(out: Option<Outcome<T>>) -> NodeRef<T> {
    let node = new_node::<T>();
    {
        let mut s = node.slot().borrow_mut();
        s.fired = true;
        s.result = out;
    }
    node
}

/// Steps kept in place before a run spills into a vector. Ten fit in the room eight took
/// before the run's counters were packed and its upstream link moved to its holder, so a root
/// is no larger for them.
const INLINE_STEPS: usize = 10;

/// A run of callbacks added one after the other to a Deferred that had not fired: Twisted's
/// list of callbacks, where the node-per-step chain costs an allocation per callback.
///
/// A chain's root holds the run of the callbacks added to it beside its own node (the root
/// waits on its own run, [`Waiter::Run`]), so a Deferred and its first callbacks cost one
/// allocation; a run after any other node is held on its own ([`Far`]) as that node's
/// listener. Either way the holder is a [`Hosted`], whose run a Deferred reaches without a
/// virtual call. A run holds its steps in order, each a boxed closure from `Outcome<In>` to
/// `Outcome<Out>` with the types erased; a closure that captures nothing boxes without
/// allocating. When the node fires, each step takes its input from the previous step's slot
/// (seen as `&mut dyn Any` and downcast, so a type mismatch is impossible to miss); a step
/// that keeps the type puts its output back in that slot, one that changes it passes it on
/// from a slot of its own (see [`ErasedStep::run`]). The last output rests in the run until
/// it is taken (in the root's own result slot when it has the root's type, which needs no
/// box). Anything the run cannot do itself (awaiting, cancelling, a step returning a
/// Deferred) first turns the run's end into a node again ([`Fused::materialize`]), and the
/// chain goes on as before.
pub(crate) struct Fused {
    /// The first steps, in place; `None` once run (or not added yet). Cells rather than one
    /// `RefCell` around the run: adding and running a step then costs no borrow flag.
    inline: [Cell<Option<Box<dyn ErasedStep>>>; INLINE_STEPS],
    /// Steps after the first `INLINE_STEPS` (taken out while used).
    more: Cell<Vec<Option<Box<dyn ErasedStep>>>>,
    /// Steps added so far.
    len: Cell<u32>,
    /// The next step to run.
    next: Cell<u32>,
    /// Every step added has run: a step added now runs at once.
    complete: Cell<bool>,
    /// The run's outcome, once complete and until taken.
    result: Cell<Option<Rest>>,
}

/// What holds a run: the run, at a place known without a virtual call (steps are added to it
/// and run one by one), and `X`, the holder's own part: a chain's root node ([`Root`]), or,
/// for a run of its own waiting on a node that is not a chain's root (one a callback's
/// Deferred fires, or the node a run's end became), the link to that node ([`Far`]).
pub(crate) struct Hosted<X: ?Sized> {
    run: Fused,
    tail: X,
}

/// A run's holder, whichever it is.
type HostRef = Rc<Hosted<dyn HostTail>>;

/// The part of a run's holder besides the run.
pub(crate) trait HostTail {
    /// The node the run waits on, for cancellation.
    fn upstream(&self) -> Weak<dyn Upstream>;
    /// Keeps the run's outcome (`value`, an `Option<Outcome<X>>`) in the holder's own result
    /// slot if `X` is the type the holder holds, so it needs no box; says whether it did.
    fn keep(&self, value: &mut dyn Any) -> bool;
    /// Moves the outcome [`keep`](HostTail::keep) kept into `into` (an `Option<Outcome<X>>`).
    fn give(&self, into: &mut dyn Any);
}

/// The holder's part of a run of its own: the node the run waits on.
struct Far {
    upstream: Weak<dyn Upstream>,
}

impl HostTail for Far {
    fn upstream(&self) -> Weak<dyn Upstream> {
        self.upstream.clone()
    }

    fn keep(&self, _value: &mut dyn Any) -> bool {
        false
    }

    fn give(&self, _into: &mut dyn Any) {
        unreachable!("a run of its own keeps its outcome in itself")
    }
}

/// A run's outcome at rest, its value type erased.
enum Rest {
    Value(Box<dyn Any>),
    Failure(Failure),
    /// In the host's result slot: a root's run that ends in the root's own type.
    InHost,
}

impl Rest {
    /// Puts the run's outcome to rest: in `host` if it can keep it, else here.
    fn keep<T: 'static>(host: &Hosted<dyn HostTail>, value: &mut Option<Outcome<T>>) -> Rest {
        if host.tail.keep(value) {
            return Rest::InHost;
        }
        match value.take() {
            Some(Ok(v)) => Rest::Value(Box::new(v)),
            Some(Err(f)) => Rest::Failure(f),
            None => unreachable!("the last step's outcome"),
        }
    }

    fn into_outcome<T: 'static>(self, host: &Hosted<dyn HostTail>) -> Outcome<T> {
        match self {
            Rest::Value(v) => Ok(*v
                .downcast::<T>()
                .unwrap_or_else(|_| unreachable!("a fused run ends in the type its end names"))),
            Rest::Failure(f) => Err(f),
            Rest::InHost => {
                let mut out = None;
                host.tail.give(&mut out);
                out.unwrap_or_else(|| unreachable!("the host kept the run's outcome"))
            }
        }
    }
}

/// One step of a run; `input` is the previous step's `Option<Outcome<In>>`.
trait ErasedStep {
    /// Runs the step on `input`. A step whose output has its input's type writes it back
    /// into `input` and returns `true`: the caller's loop runs the next step on it, so a run
    /// of one type takes one stack frame, not one per step. A step that changes the type
    /// runs the rest of the run itself, on its own output (one level deeper), and returns
    /// `false`, as does a step that ends the run.
    fn run(self: Box<Self>, input: &mut dyn Any, host: &Hosted<dyn HostTail>, depth: usize)
        -> bool;
}

/// A callback, errback or both, from `Outcome<T>` to `Outcome<U>`.
struct FusedStep<T, U, F> {
    f: F,
    types: PhantomData<fn(T) -> U>,
}

impl<T: 'static, U: 'static, F: FnOnce(Outcome<T>) -> Outcome<U> + 'static> FusedStep<T, U, F> {
    fn boxed(f: F) -> Box<dyn ErasedStep> {
        Box::new(FusedStep {
            f,
            types: PhantomData,
        })
    }
}

/// A step's input: the previous step's slot, and the outcome taken out of it.
fn take_input<T: 'static>(input: &mut dyn Any) -> (&mut Option<Outcome<T>>, Outcome<T>) {
    let slot = input
        .downcast_mut::<Option<Outcome<T>>>()
        .unwrap_or_else(|| unreachable!("each step gets the outcome of the step before"));
    let out = slot
        .take()
        .unwrap_or_else(|| unreachable!("each step gets the outcome of the step before"));
    (slot, out)
}

impl<T: 'static, U: 'static, F> ErasedStep for FusedStep<T, U, F>
where
    F: FnOnce(Outcome<T>) -> Outcome<U>,
{
    fn run(
        self: Box<Self>,
        input: &mut dyn Any,
        host: &Hosted<dyn HostTail>,
        depth: usize,
    ) -> bool {
        let (slot, taken) = take_input::<T>(input);
        let mut out = Some(run_step(self.f, taken));
        // Same type in and out (decided at compile time: `out`'s type is known here): the
        // output goes back into the input's slot for the caller's loop.
        if let Some(same) = (&mut out as &mut dyn Any).downcast_mut::<Option<Outcome<T>>>() {
            *slot = same.take();
            return true;
        }
        Fused::advance(host, &mut out, depth + 1);
        false
    }
}

/// The last step of a run whose end became a node: fires that node.
struct Deliver<T> {
    node: NodeRef<T>,
}

impl<T: 'static> ErasedStep for Deliver<T> {
    fn run(
        self: Box<Self>,
        input: &mut dyn Any,
        host: &Hosted<dyn HostTail>,
        _depth: usize,
    ) -> bool {
        let (_, out) = take_input::<T>(input);
        host.run.complete.set(true);
        let _ = fire(&self.node, out, "callback");
        false
    }
}

impl Fused {
    fn new() -> Fused {
        Fused {
            inline: [const { Cell::new(None) }; INLINE_STEPS],
            more: Cell::new(Vec::new()),
            len: Cell::new(0),
            next: Cell::new(0),
            complete: Cell::new(false),
            result: Cell::new(None),
        }
    }

    /// Adds a step at the end; hands it back if the run is complete (it must run now).
    #[inline]
    fn push(&self, step: Box<dyn ErasedStep>) -> Result<(), Box<dyn ErasedStep>> {
        if self.complete.get() {
            return Err(step);
        }
        let len = self.len.get();
        match self.inline.get(len as usize) {
            Some(slot) => {
                // Slots past `len` are empty: nothing to drop.
                let empty = slot.replace(Some(step));
                debug_assert!(empty.is_none());
                mem::forget(empty);
            }
            None => self.spill(step),
        }
        self.len.set(
            len.checked_add(1)
                .expect("over 4 billion callbacks on one Deferred"),
        );
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn spill(&self, step: Box<dyn ErasedStep>) {
        let mut more = self.more.take();
        more.push(Some(step));
        self.more.set(more);
    }

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

    /// Runs `host`'s run from its next step on `value`, then lets the outcome rest. `depth`
    /// counts the times the run changed type (each change is one level of recursion, see
    /// [`ErasedStep::run`]); every 64 levels the recursion moves to a fresh stack segment
    /// when the stack runs low, as the node chain's does.
    #[inline]
    fn advance<T: 'static>(
        host: &Hosted<dyn HostTail>,
        value: &mut Option<Outcome<T>>,
        depth: usize,
    ) {
        if depth % 64 == 63 {
            Fused::advance_deep(host, value, depth)
        } else {
            Fused::run_steps(host, value, depth)
        }
    }

    /// The loop of [`advance`](Fused::advance): each step in turn, for as long as they keep
    /// the type.
    fn run_steps<T: 'static>(
        host: &Hosted<dyn HostTail>,
        value: &mut Option<Outcome<T>>,
        depth: usize,
    ) {
        while let Some(step) = host.run.pop() {
            if !step.run(value, host, depth) {
                return;
            }
        }
        Fused::finish(host, value);
    }

    /// Runs `host`'s run from its next step on `out`.
    fn start<T: 'static>(host: &Hosted<dyn HostTail>, out: Outcome<T>) {
        Fused::advance(host, &mut Some(out), 0);
    }

    /// Ends the run: its outcome rests (kept out of the step loop, whose every turn would
    /// otherwise pay for this path's registers).
    #[inline(never)]
    fn finish<T: 'static>(host: &Hosted<dyn HostTail>, value: &mut Option<Outcome<T>>) {
        let rest = Rest::keep(host, value);
        host.run.complete.set(true);
        host.run.result.set(Some(rest));
    }

    /// [`run_steps`](Fused::run_steps) on a fresh stack segment if this one is nearly used up
    /// (kept out of [`advance`](Fused::advance), which would otherwise pay for the check's
    /// frame every time).
    #[cold]
    #[inline(never)]
    fn advance_deep<T: 'static>(
        host: &Hosted<dyn HostTail>,
        value: &mut Option<Outcome<T>>,
        depth: usize,
    ) {
        deep(|| Fused::run_steps(host, value, depth));
    }

    /// The run's outcome, if it is complete and nobody took it yet.
    fn take_result<T: 'static>(host: &Hosted<dyn HostTail>) -> Option<Outcome<T>> {
        let rest = host.run.result.take();
        rest.map(|r| r.into_outcome(host))
    }

    /// Runs `step`, added to a complete run, on the run's outcome (of type `T`) at once.
    fn run_now<T: 'static>(host: &Hosted<dyn HostTail>, step: Box<dyn ErasedStep>) {
        let out = Fused::take_result::<T>(host)
            .expect("the result of this Deferred was already taken (by .await or result())");
        let mut value = Some(out);
        if step.run(&mut value, host, 0) {
            // The step kept the type: the run ends here, on its output.
            Fused::finish(host, &mut value);
        }
    }

    /// A node of type `T` standing for the run's end: fired with the result if the run is
    /// complete, else fired by a last step when the run gets there (and, meanwhile, waiting
    /// on the run's node for cancellation).
    fn materialize<T: 'static>(host: &Hosted<dyn HostTail>) -> NodeRef<T> {
        if host.run.complete.get() {
            return fired_node(Fused::take_result(host));
        }
        let upstream = host.tail.upstream();
        let node = new_node::<T>();
        node.slot().borrow_mut().upstream = Some(upstream);
        let pushed = host.run.push(Box::new(Deliver { node: node.clone() }));
        debug_assert!(pushed.is_ok(), "the run is not complete");
        node
    }
}

impl<T: 'static> Listener<T> for Hosted<Far> {
    fn run(self: Rc<Self>, out: Outcome<T>) {
        Fused::start(&*self, out);
    }
}

impl Drop for Fused {
    fn drop(&mut self) {
        if let Some(Rest::Failure(failure)) = self.result.get_mut().take() {
            log_unhandled(&failure);
        }
    }
}

/// What a step of the chain produced: a result, or a Deferred to wait for.
enum Step<U> {
    Done(Outcome<U>),
    Chain(Deferred<U>),
}

/// A placeholder for a value of type `T` that you don't have yet (Twisted's `Deferred`).
///
/// See the [module documentation](crate::defer) for the callback rules. A `Deferred` is not
/// `Clone`: a chain has one end. Keep a [`Trigger`] to fire it, and chain on the `Deferred`.
///
/// A Deferred made by [`succeed`] holds its value in the handle itself (no allocation until
/// something needs a chain), so a handle is at least as large as a `T`: box a very large `T`.
pub struct Deferred<T> {
    /// The end of the chain: a node, or a run of fused callbacks (see [`Fused`]).
    end: RefCell<End<T>>,
    /// Keeps the chain's root (and so the whole chain up to this node) alive while this end
    /// is held, so cancellation can reach a root nobody else holds.
    anchor: Option<Rc<dyn Any>>,
}

/// The firing side of a [`Deferred`]: fires it once, with a value or a failure.
///
/// Made by [`Deferred::trigger`]; consumed by [`callback`](Trigger::callback) and
/// [`errback`](Trigger::errback), so one trigger cannot fire twice. Keep it in an `Option` and
/// `take()` it when the answer may come more than once (seed 002's `ReverseClientProtocol`).
pub struct Trigger<T> {
    node: NodeRef<T>,
}

impl<T: 'static> Default for Deferred<T> {
    fn default() -> Self {
        Deferred::new()
    }
}

impl<T: 'static> Deferred<T> {
    /// A new, unfired Deferred.
    pub fn new() -> Deferred<T> {
        Deferred {
            end: RefCell::new(End::Node(new_root())),
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
    pub fn with_canceller(canceller: impl FnOnce(Trigger<T>) + 'static) -> Deferred<T> {
        let d = Deferred::new();
        d.node().slot().borrow_mut().canceller = Some(Box::new(canceller));
        d
    }

    /// A new trigger that fires this Deferred.
    pub fn trigger(&self) -> Trigger<T> {
        Trigger { node: self.node() }
    }

    /// Fires this Deferred with a value (Twisted's `d.callback(v)`).
    ///
    /// # Panics
    /// With [`AlreadyCalledError`] if it has already fired; see
    /// [`try_callback`](Self::try_callback).
    #[track_caller]
    pub fn callback(&self, value: T) {
        if let Err(e) = self.try_callback(value) {
            panic!("{e}");
        }
    }

    /// Fires this Deferred with a failure (Twisted's `d.errback(f)`).
    ///
    /// # Panics
    /// With [`AlreadyCalledError`] if it has already fired.
    #[track_caller]
    pub fn errback(&self, failure: impl Into<Failure>) {
        if let Err(e) = self.try_errback(failure) {
            panic!("{e}");
        }
    }

    /// Fires this Deferred with a value, or says it had already fired.
    pub fn try_callback(&self, value: T) -> Result<(), AlreadyCalledError> {
        fire(&self.node(), Ok(value), "callback")
    }

    /// Fires this Deferred with a failure, or says it had already fired.
    pub fn try_errback(&self, failure: impl Into<Failure>) -> Result<(), AlreadyCalledError> {
        fire(&self.node(), Err(failure.into()), "errback")
    }

    /// True once the Deferred has fired (Twisted's `d.called`).
    pub fn called(&self) -> bool {
        match &*self.end.borrow() {
            End::Node(node) => node.slot().borrow().fired,
            End::Fused(host, _) => host.run.complete.get(),
            End::Ready(_) => true,
        }
    }

    /// Takes the result out if the Deferred has fired (for tests and synchronous code, like
    /// trial's `successResultOf`). Returns `None` if it has not fired yet. Afterwards the
    /// Deferred is spent: its failure, if any, is now yours to handle.
    pub fn result(&self) -> Option<Result<T, Failure>> {
        match &mut *self.end.borrow_mut() {
            End::Ready(value) => value.take().map(Ok),
            End::Node(node) => node.slot().borrow_mut().result.take(),
            End::Fused(host, _) => Fused::take_result(host),
        }
    }

    /// Cancels the Deferred (Twisted's `d.cancel()`): if it has not fired, its canceller runs
    /// and, unless that fired it, it fails with [`CancelledError`]. For a chain, the Deferred
    /// it waits on is cancelled instead: the failure runs down the chain's errbacks, and if a
    /// callback on the way returns a Deferred, the chain waits for that one as usual (cancel
    /// again to cancel it). Cancelling a fired Deferred does nothing.
    pub fn cancel(&self) {
        cancel(&self.node());
    }

    /// The node at the end of the chain, made now if the chain ends in fused callbacks.
    pub(crate) fn node(&self) -> NodeRef<T> {
        let mut end = self.end.borrow_mut();
        match &mut *end {
            End::Node(node) => return node.clone(),
            End::Fused(host, _) => {
                let node = Fused::materialize::<T>(host);
                *end = End::Node(node);
            }
            End::Ready(value) => {
                let node = fired_node(value.take().map(Ok));
                *end = End::Node(node);
            }
        }
        match &*end {
            End::Node(node) => node.clone(),
            _ => unreachable!("made a node above"),
        }
    }

    fn then_step<U: 'static>(
        self,
        step: impl FnOnce(Outcome<T>) -> Step<U> + 'static,
    ) -> Deferred<U> {
        let child = Rc::new(Node {
            slot: Slot::new(),
            extra: StepCell(Cell::new(Some(step))),
        });
        let node = self.node();
        let mut anchor = None;
        if !node.slot().borrow().fired {
            let up: Weak<dyn Link<T>> = Rc::downgrade(&node);
            child.slot.borrow_mut().upstream = Some(up);
            anchor = Some(match self.anchor {
                Some(a) => a,
                None => node.clone() as Rc<dyn Any>,
            });
        }
        let listener: Rc<dyn Listener<T>> = child.clone();
        let mut s = node.slot().borrow_mut();
        match s.take_ready() {
            Some(out) => {
                drop(s);
                listener.run(out);
            }
            None => s.waiter = Waiter::Next(listener),
        }
        Deferred {
            end: RefCell::new(End::Node(child)),
            anchor,
        }
    }

    /// Adds a step that cannot pause the chain. While the chain has not fired, consecutive
    /// such steps are fused: kept in one [`Fused`] run instead of a node each, so adding one
    /// allocates nothing (for a closure that captures nothing) and firing runs them in a row.
    /// Adding to a run is inlined into the caller; the first step of a run (and any step on a
    /// chain that is not a run) goes the way of [`then_fused_first`](Self::then_fused_first).
    #[inline]
    fn then_fused<U: 'static>(
        self,
        f: impl FnOnce(Outcome<T>) -> Outcome<U> + 'static,
    ) -> Deferred<U> {
        let Deferred { end, anchor } = self;
        match end.into_inner() {
            End::Fused(host, _) => {
                let pushed = host.run.push(FusedStep::boxed(f));
                if let Err(step) = pushed {
                    // Everything before ran already: this step runs now, on the result.
                    Fused::run_now::<T>(&host, step);
                }
                Deferred {
                    end: RefCell::new(End::Fused(host, PhantomData)),
                    anchor,
                }
            }
            End::Ready(value) => {
                // Fired from the start: the step runs now; a value stays without a node.
                let value = value.expect(
                    "the result of this Deferred was already taken (by .await or result())",
                );
                let end = match run_step(f, Ok(value)) {
                    Ok(v) => End::Ready(Some(v)),
                    Err(failure) => End::Node(fired_node(Some(Err(failure)))),
                };
                Deferred {
                    end: RefCell::new(end),
                    anchor,
                }
            }
            End::Node(node) => Deferred::then_fused_first(node, anchor, f),
        }
    }

    /// [`then_fused`](Self::then_fused) on a chain that ends in a node (the node, not the
    /// whole end, is passed: an end passed by reference would keep every inlined
    /// `then_fused` of a chain in memory, copied with loads wider than its stores).
    #[inline(never)]
    fn then_fused_first<U: 'static>(
        node: NodeRef<T>,
        anchor: Option<Rc<dyn Any>>,
        f: impl FnOnce(Outcome<T>) -> Outcome<U> + 'static,
    ) -> Deferred<U> {
        let fresh = {
            let s = node.slot().borrow();
            !s.fired && matches!(s.waiter, Waiter::Nobody)
        };
        if !fresh {
            let d = Deferred {
                end: RefCell::new(End::Node(node)),
                anchor,
            };
            return d.then_step(move |out| Step::Done(f(out)));
        }
        let anchor = Some(anchor.unwrap_or_else(|| node.clone() as Rc<dyn Any>));
        let host = match node.clone().into_host() {
            // A root: the run lives in it.
            Some(host) => {
                node.slot().borrow_mut().waiter = Waiter::Run;
                host
            }
            None => {
                let up: Weak<dyn Link<T>> = Rc::downgrade(&node);
                let apart = Rc::new(Hosted {
                    run: Fused::new(),
                    tail: Far { upstream: up },
                });
                let listener: Rc<dyn Listener<T>> = apart.clone();
                node.slot().borrow_mut().waiter = Waiter::Next(listener);
                apart
            }
        };
        let pushed = host.run.push(FusedStep::boxed(f));
        debug_assert!(pushed.is_ok(), "a new run is not complete");
        Deferred {
            end: RefCell::new(End::Fused(host, PhantomData)),
            anchor,
        }
    }

    /// Adds a callback: on success, `f` gets the value and its return value is the next
    /// result. Failures pass by untouched. A panic in `f` becomes a [`Failure`].
    pub fn add_callback<U: 'static>(self, f: impl FnOnce(T) -> U + 'static) -> Deferred<U> {
        self.then_fused(move |out| out.map(f))
    }

    /// Adds a callback that may fail: an `Err` it returns starts the errback chain.
    pub fn add_callback_result<U: 'static, E: Into<Failure>>(
        self,
        f: impl FnOnce(T) -> Result<U, E> + 'static,
    ) -> Deferred<U> {
        self.then_fused(move |out| out.and_then(|v| f(v).map_err(Into::into)))
    }

    /// Adds a callback that returns a Deferred: the chain pauses until that Deferred fires,
    /// and continues with its result (Twisted's callback returning a Deferred).
    pub fn add_callback_deferred<U: 'static>(
        self,
        f: impl FnOnce(T) -> Deferred<U> + 'static,
    ) -> Deferred<U> {
        self.then_step(move |out| match out {
            Ok(v) => Step::Chain(f(v)),
            Err(e) => Step::Done(Err(e)),
        })
    }

    /// Adds an errback: on failure, `f` gets the [`Failure`]. Return `Ok(v)` to recover (the
    /// callbacks after it run with `v`) or `Err(f)` to pass a failure on. Values pass by
    /// untouched.
    pub fn add_errback(
        self,
        f: impl FnOnce(Failure) -> Result<T, Failure> + 'static,
    ) -> Deferred<T> {
        self.then_fused(move |out| out.or_else(f))
    }

    /// Adds a callback and an errback at the same level: exactly one of them runs, and the
    /// errback does not see failures from the callback (Twisted's `addCallbacks`).
    pub fn add_callbacks<U: 'static>(
        self,
        callback: impl FnOnce(T) -> U + 'static,
        errback: impl FnOnce(Failure) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.then_fused(move |out| match out {
            Ok(v) => Ok(callback(v)),
            Err(e) => errback(e),
        })
    }

    /// Adds a function that runs on success or failure (Twisted's `addBoth`), like `finally`:
    /// return the outcome unchanged to pass it on.
    pub fn add_both<U: 'static>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.then_fused(f)
    }

    /// Cancels this Deferred if it has not fired `seconds` from now on `clock`, turning the
    /// cancellation into a [`TimeoutError`] (Twisted's `addTimeout`).
    pub fn add_timeout(self, seconds: impl Into<Delay>, clock: &dyn ReactorTime) -> Deferred<T> {
        let seconds = seconds.into().as_secs_f64();
        let timed_out = Rc::new(Cell::new(false));
        let flag = timed_out.clone();
        // The timer holds the node: a Deferred nobody else can fire still times out.
        let node = self.node();
        let timer = clock.call_later_boxed(
            seconds,
            Box::new(move || {
                if !node.slot().borrow().fired {
                    flag.set(true);
                    cancel(&node);
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
        attach(self.node(), k);
    }

    pub(crate) fn weak_upstream(&self) -> Weak<dyn Upstream> {
        let w: Weak<dyn Link<T>> = Rc::downgrade(&self.node());
        w
    }

    /// What keeps this Deferred's chain alive: its root.
    pub(crate) fn anchor(&self) -> Rc<dyn Any> {
        match &self.anchor {
            Some(a) => a.clone(),
            None => self.node() as Rc<dyn Any>,
        }
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
        fire(&self.node, Ok(value), "callback")
    }

    /// Fires the Deferred with a failure, or says it had already fired.
    pub fn try_errback(self, failure: impl Into<Failure>) -> Result<(), AlreadyCalledError> {
        fire(&self.node, Err(failure.into()), "errback")
    }

    /// Fires the Deferred with an outcome.
    pub fn fire(self, outcome: Result<T, Failure>) -> Result<(), AlreadyCalledError> {
        fire(&self.node, outcome, "callback")
    }

    /// True once the Deferred has fired or been cancelled.
    pub fn is_called(&self) -> bool {
        self.node.slot().borrow().fired
    }
}

// A value held in `End::Ready` is moved out, never pinned, so a Deferred is always `Unpin`.
impl<T> Unpin for Deferred<T> {}

impl<T: 'static> Future for Deferred<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let end = self.get_mut().end.get_mut();
        match end {
            End::Ready(value) => match value.take() {
                Some(v) => return Poll::Ready(Ok(v)),
                None => panic!("Deferred polled after its result was taken"),
            },
            End::Fused(host, _) => {
                let node = Fused::materialize::<T>(host);
                *end = End::Node(node);
            }
            End::Node(_) => {}
        }
        let End::Node(node) = end else {
            unreachable!("materialized above")
        };
        let mut s = node.slot().borrow_mut();
        if let Some(out) = s.result.take() {
            return Poll::Ready(out);
        }
        assert!(!s.fired, "Deferred polled after its result was taken");
        match &mut s.waiter {
            Waiter::Task(w) if w.will_wake(cx.waker()) => {}
            w => *w = Waiter::Task(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T: 'static> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.node();
        let s = node.slot().borrow();
        let state = match (&s.result, s.fired) {
            (Some(Ok(_)), _) => "fired with a value",
            (Some(Err(_)), _) => "fired with a failure",
            (None, true) => "fired, result taken",
            (None, false) => "waiting",
        };
        f.debug_struct("Deferred").field("state", &state).finish()
    }
}

impl<T: 'static> fmt::Debug for Trigger<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trigger")
            .field("called", &self.node.slot().borrow().fired)
            .finish()
    }
}

/// A Deferred that has already fired with `value` (Twisted's `defer.succeed`). It holds the
/// value itself, with no allocation, until something needs a chain node.
pub fn succeed<T: 'static>(value: T) -> Deferred<T> {
    Deferred {
        end: RefCell::new(End::Ready(Some(value))),
        anchor: None,
    }
}

/// A Deferred that has already failed with `failure` (Twisted's `defer.fail`).
pub fn fail<T: 'static>(failure: impl Into<Failure>) -> Deferred<T> {
    let d = Deferred::new();
    d.errback(failure);
    d
}
