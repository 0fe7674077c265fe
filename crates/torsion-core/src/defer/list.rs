//! `DeferredList`, `gather_results` and `race`: wait for several Deferreds at once.
//!
//! ```
//! use torsion::defer::{succeed, fail, race, DeferredList, gather_results};
//! use torsion::error::TimeoutError;
//!
//! // Wait for all, successes and failures alike. The failures are in the list; with
//! // `consume_errors(true)` they are not also logged as unhandled (Twisted's default logs them).
//! let all = DeferredList::builder(vec![succeed(1), fail(TimeoutError), succeed(3)])
//!     .consume_errors(true)
//!     .build();
//! let results = all.result().unwrap().unwrap();
//! assert_eq!(results.len(), 3);
//! assert!(results[1].as_ref().unwrap_err().check::<TimeoutError>());
//!
//! // Values only, failing on the first failure.
//! let values = gather_results(vec![succeed(1), succeed(2)]);
//! assert_eq!(values.result().unwrap().unwrap(), vec![1, 2]);
//!
//! // The first success, as `(index, value)`; the others are cancelled.
//! let first = race(vec![fail(TimeoutError), succeed("b")]);
//! assert_eq!(first.result().unwrap().unwrap(), (1, "b"));
//! ```

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::chain::{cancel_weak, Trigger, WeakChain};
use super::deferred::{fail, succeed, Deferred};
use crate::error::{CancelledError, FirstError};
use crate::Failure;

/// Every Deferred of a [`DeferredList::fire_on_one_callback`] failed: their failures, in order.
///
/// It is the *value* the list calls back with (inside an `Err`), as Twisted calls back with the
/// result list when no Deferred succeeded.
#[derive(Debug)]
pub struct AllFailedError {
    /// The failures, in the order of the list.
    pub failures: Vec<Failure>,
}

impl fmt::Display for AllFailedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all {} Deferreds failed", self.failures.len())?;
        if let Some(first) = self.failures.first() {
            write!(f, "; the first with: {first}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AllFailedError {}

/// Every Deferred given to [`race`] failed (Twisted's `defer.FailureGroup`): their failures,
/// in the order of the list.
#[derive(Debug)]
pub struct FailureGroup {
    /// The failures, in the order of the list.
    pub failures: Vec<Failure>,
}

impl fmt::Display for FailureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FailureGroup: all {} Deferreds failed",
            self.failures.len()
        )?;
        if let Some(first) = self.failures.first() {
            write!(f, "; the first with: {first}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FailureGroup {}

/// What a member's chain keeps of a failure when the list does not consume errors (Twisted's
/// `consumeErrors=False`): the original goes to the list, this stays behind and is logged as
/// "Unhandled error in Deferred" when the member's chain is dropped.
#[derive(Debug)]
struct UnconsumedFailure {
    index: usize,
    report: String,
}

impl fmt::Display for UnconsumedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Deferred #{} of a DeferredList failed, and the list does not consume errors \
             (consume_errors(true) would): {}",
            self.index, self.report
        )
    }
}

impl std::error::Error for UnconsumedFailure {}

/// Bundles several Deferreds into one (Twisted's `DeferredList`), built with Twisted's flags.
///
/// [`DeferredList::new`] is `DeferredList(ds)`; [`DeferredList::builder`] takes the flags:
///
/// | Twisted | Torsion |
/// |---|---|
/// | `DeferredList(ds)` | `DeferredList::new(ds)` |
/// | `DeferredList(ds, consumeErrors=True)` | `DeferredList::builder(ds).consume_errors(true).build()` |
/// | `DeferredList(ds, fireOnOneErrback=True)` | `DeferredList::builder(ds).fire_on_one_errback(true).build()` |
/// | `DeferredList(ds, fireOnOneCallback=True)` | `DeferredList::builder(ds).fire_on_one_callback()` |
/// | `gatherResults(ds, consumeErrors=True)` | `DeferredList::builder(ds).consume_errors(true).gather()` |
///
/// The list takes the Deferreds, so nobody can add callbacks to them afterwards; what
/// `consume_errors` changes is whether a member's failure, besides arriving in the list's
/// result, is also logged as "Unhandled error in Deferred" (Twisted's default, `false`) when
/// the list is dropped. With `consume_errors(true)`, a failure that arrives after the list has
/// fired (so it is in no result) is logged as a warning rather than dropped silently.
///
/// Cancelling the list's Deferred before it fired cancels every member still waiting.
#[must_use = "a DeferredList does nothing until build(), gather() or fire_on_one_callback()"]
pub struct DeferredList<T> {
    members: Vec<Deferred<T>>,
    consume_errors: bool,
    fire_on_one_errback: bool,
}

impl<T> fmt::Debug for DeferredList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredList")
            .field("members", &self.members.len())
            .field("consume_errors", &self.consume_errors)
            .field("fire_on_one_errback", &self.fire_on_one_errback)
            .finish()
    }
}

struct Shared<T, R> {
    slots: Vec<Option<Result<T, Failure>>>,
    remaining: usize,
    trigger: Option<Trigger<R>>,
}

impl<T, R: 'static> Shared<T, R> {
    /// Records a member's outcome; true when it was the last one.
    fn record(&mut self, index: usize, out: Result<T, Failure>) -> bool {
        self.slots[index] = Some(out);
        self.remaining -= 1;
        self.remaining == 0
    }

    /// Every recorded outcome, in order.
    fn take_all(&mut self) -> Vec<Result<T, Failure>> {
        self.slots
            .iter_mut()
            .map(|slot| slot.take().expect("every slot filled"))
            .collect()
    }
}

/// The members' chains, held weakly, index for index (`None` for a value held in a handle).
type Members = Rc<Vec<Option<WeakChain>>>;

/// The state the members' callbacks share.
type SharedRef<T, R> = Rc<RefCell<Shared<T, R>>>;

/// Makes the list's Deferred, whose cancellation cancels the members, and the members' chains.
fn list_deferred<T: 'static, R: 'static>(
    ds: &[Deferred<T>],
) -> (Deferred<R>, SharedRef<T, R>, Members) {
    // The list's handle keeps the members' chains alive, so cancelling the list reaches
    // members nobody else holds (and an unconsumed failure is logged when the list goes).
    let anchors: Vec<Rc<dyn std::any::Any>> = ds.iter().map(|d| d.anchor()).collect();
    let members: Members = Rc::new(ds.iter().map(|d| d.weak_chain()).collect());
    let to_cancel = members.clone();
    let d = Deferred::with_canceller(move |_trigger| {
        for m in to_cancel.iter().flatten() {
            cancel_weak(m);
        }
    });
    let shared = Rc::new(RefCell::new(Shared {
        slots: (0..ds.len()).map(|_| None).collect(),
        remaining: ds.len(),
        trigger: Some(d.trigger()),
    }));
    (d.anchored(Rc::new(anchors)), shared, members)
}

fn fire_shared<T, R: 'static>(shared: &SharedRef<T, R>, out: Result<R, Failure>) {
    let trigger = shared.borrow_mut().trigger.take();
    if let Some(t) = trigger {
        let _ = t.fire(out);
    }
}

impl<T: 'static> DeferredList<T> {
    /// Fires when every Deferred has fired, with each outcome in order (Twisted's
    /// `DeferredList(ds)`, `consumeErrors=False`: a member's failure is in the list, and is
    /// also logged as unhandled when the list is dropped; use
    /// [`builder`](Self::builder)`(ds).`[`consume_errors(true)`](Self::consume_errors) when
    /// the code reading the list deals with the failures).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(ds: Vec<Deferred<T>>) -> Deferred<Vec<Result<T, Failure>>> {
        DeferredList::builder(ds).build()
    }

    /// A list of `ds` with Twisted's default flags (none set), to set them on and then
    /// [`build`](Self::build), [`gather`](Self::gather) or
    /// [`fire_on_one_callback`](Self::fire_on_one_callback).
    pub fn builder(ds: Vec<Deferred<T>>) -> DeferredList<T> {
        DeferredList {
            members: ds,
            consume_errors: false,
            fire_on_one_errback: false,
        }
    }

    /// Whether the list consumes its members' failures (Twisted's `consumeErrors`, default
    /// `false`). Not consumed, a member's failure is logged as "Unhandled error in Deferred"
    /// when the list (which keeps the member) is dropped, even though the list's result has
    /// it, as in Twisted. Consumed, it is only in the result; a consumed failure that arrives
    /// after the list fired is logged as a warning (Twisted drops it silently).
    #[doc(alias = "consumeErrors")]
    pub fn consume_errors(mut self, consume: bool) -> DeferredList<T> {
        self.consume_errors = consume;
        self
    }

    /// Whether the list fails with [`FirstError`] as soon as one member fails, without
    /// waiting for the rest (Twisted's `fireOnOneErrback`, default `false`).
    #[doc(alias = "fireOnOneErrback")]
    pub fn fire_on_one_errback(mut self, fire: bool) -> DeferredList<T> {
        self.fire_on_one_errback = fire;
        self
    }

    /// Fires when every Deferred has fired, with each outcome in the order of the list; or,
    /// with [`fire_on_one_errback(true)`](Self::fire_on_one_errback), fails with
    /// [`FirstError`] at the first failure.
    pub fn build(self) -> Deferred<Vec<Result<T, Failure>>> {
        let first_errback = self.fire_on_one_errback;
        if self.members.is_empty() {
            return succeed(Vec::new());
        }
        self.run(move |s, index, out| match out {
            Err(failure) if first_errback => Some(Err(Failure::new(FirstError { index, failure }))),
            out => s.record(index, out).then(|| Ok(s.take_all())),
        })
    }

    /// Fires with the values in order, or fails with [`FirstError`] at the first failure
    /// (Twisted's `gatherResults(ds, consumeErrors)`; [`gather_results`] is the default,
    /// `consumeErrors=False`). The `fire_on_one_errback` flag is implied.
    #[doc(alias = "gatherResults")]
    pub fn gather(self) -> Deferred<Vec<T>> {
        if self.members.is_empty() {
            return succeed(Vec::new());
        }
        self.run(move |s, index, out| match out {
            Err(failure) => Some(Err(Failure::new(FirstError { index, failure }))),
            out => s.record(index, out).then(|| {
                Ok(s.take_all()
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|_| unreachable!("a failure fires at once")))
                    .collect())
            }),
        })
    }

    /// Fires at the first success with its `(index, value)`, without waiting for the rest
    /// (Twisted's `fireOnOneCallback=True`). When every Deferred fails, it calls back (as
    /// Twisted does, with its result list) with `Err(`[`AllFailedError`]`)`, the failures in
    /// order; an empty list does so at once. With
    /// [`fire_on_one_errback(true)`](Self::fire_on_one_errback) the first failure fails it
    /// with [`FirstError`] instead.
    ///
    /// Twisted's pair is `(result, index)`; this one is `(index, value)`, the order of
    /// `enumerate()` and of Twisted's own newer [`race`].
    #[doc(alias = "fireOnOneCallback")]
    pub fn fire_on_one_callback(self) -> Deferred<Result<(usize, T), AllFailedError>> {
        let first_errback = self.fire_on_one_errback;
        if self.members.is_empty() {
            return succeed(Err(AllFailedError { failures: vec![] }));
        }
        self.run(move |s, index, out| match out {
            Ok(v) => Some(Ok(Ok((index, v)))),
            Err(failure) if first_errback => Some(Err(Failure::new(FirstError { index, failure }))),
            out => s.record(index, out).then(|| {
                let failures = s.take_all().into_iter().filter_map(Result::err).collect();
                Ok(Err(AllFailedError { failures }))
            }),
        })
    }

    /// Watches every member: `step` gets each outcome while the list has not fired, and
    /// returns the list's outcome once it knows it.
    fn run<R: 'static>(
        self,
        step: impl Fn(&mut Shared<T, R>, usize, Result<T, Failure>) -> Option<Result<R, Failure>>
            + 'static,
    ) -> Deferred<R> {
        let (d, shared, _) = list_deferred::<T, R>(&self.members);
        let step = Rc::new(step);
        let consume = self.consume_errors;
        for (index, member) in self.members.into_iter().enumerate() {
            let (shared, step) = (shared.clone(), step.clone());
            // The handle this returns is dropped: the list's anchor and the member's trigger
            // keep the chain, and with it an unconsumed failure until the list is dropped.
            drop(member.add_both(move |out| {
                let left_behind = match (&out, consume) {
                    (Err(failure), false) => Err(Failure::new(UnconsumedFailure {
                        index,
                        report: failure.report(),
                    })),
                    _ => Ok(()),
                };
                let fired = shared.borrow().trigger.is_none();
                if fired {
                    if let (Err(failure), true) = (&out, consume) {
                        tracing::warn!(
                            target: "torsion",
                            "Deferred #{index} of a DeferredList failed after the list fired; \
                             nothing else will see this failure:\n{}",
                            failure.report()
                        );
                    }
                    return left_behind;
                }
                let outcome = step(&mut shared.borrow_mut(), index, out);
                if let Some(outcome) = outcome {
                    fire_shared(&shared, outcome);
                }
                left_behind
            }));
        }
        d
    }
}

/// Fires with the values of all the Deferreds, in order, or fails with [`FirstError`] naming
/// the first to fail (Twisted's `gatherResults(ds)`, `consumeErrors=False`: every member
/// failure, the first included, is also logged as unhandled when the result is dropped; use
/// [`DeferredList::builder`]`(ds).consume_errors(true).gather()` to only get the first).
#[doc(alias = "gatherResults")]
pub fn gather_results<T: 'static>(ds: Vec<Deferred<T>>) -> Deferred<Vec<T>> {
    DeferredList::builder(ds).gather()
}

/// Fires with the `(index, value)` of the first Deferred to succeed, and cancels the others
/// (Twisted's `defer.race`); fails with [`FailureGroup`], every failure in the order of the
/// list, if all of them fail. An empty list fails at once with an empty group.
///
/// Cancelling the race before it fired cancels every Deferred in it. The members' failures
/// are consumed: a loser's outcome after the winner (usually its [`CancelledError`]) is
/// dropped, as in Twisted, except a failure other than a cancellation, which is logged as a
/// warning.
pub fn race<T: 'static>(ds: Vec<Deferred<T>>) -> Deferred<(usize, T)> {
    if ds.is_empty() {
        return fail(FailureGroup { failures: vec![] });
    }
    let (d, shared, members) = list_deferred::<T, (usize, T)>(&ds);
    for (index, member) in ds.into_iter().enumerate() {
        let (shared, members) = (shared.clone(), members.clone());
        member.on_result(move |out| {
            let fired = shared.borrow().trigger.is_none();
            match out {
                Err(failure) if fired => {
                    if !failure.check::<CancelledError>() {
                        tracing::warn!(
                            target: "torsion",
                            "Deferred #{index} of a race failed after the race was decided:\n{}",
                            failure.report()
                        );
                    }
                }
                Err(failure) => {
                    let done = shared.borrow_mut().record(index, Err(failure));
                    if done {
                        let failures = shared
                            .borrow_mut()
                            .take_all()
                            .into_iter()
                            .filter_map(Result::err)
                            .collect();
                        fire_shared(&shared, Err(Failure::new(FailureGroup { failures })));
                    }
                }
                // A second success (a canceller that fired its Deferred with a value) is
                // ignored, as in Twisted.
                Ok(_) if fired => {}
                Ok(value) => {
                    // Take the trigger first: the losers' cancellations come back here, and
                    // must find the race decided.
                    let trigger = shared.borrow_mut().trigger.take();
                    for (i, m) in members.iter().enumerate() {
                        if let (true, Some(m)) = (i != index, m) {
                            cancel_weak(m);
                        }
                    }
                    if let Some(t) = trigger {
                        let _ = t.fire(Ok((index, value)));
                    }
                }
            }
        });
    }
    d
}
