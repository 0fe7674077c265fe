//! `DeferredList` and `gather_results`: wait for several Deferreds at once.
//!
//! ```
//! use torsion::defer::{succeed, fail, DeferredList, gather_results};
//! use torsion::error::TimeoutError;
//!
//! // Wait for all, successes and failures alike.
//! let all = DeferredList::new(vec![succeed(1), fail(TimeoutError), succeed(3)]);
//! let results = all.result().unwrap().unwrap();
//! assert_eq!(results.len(), 3);
//! assert!(results[1].as_ref().unwrap_err().check::<TimeoutError>());
//!
//! // Values only, failing on the first failure.
//! let values = gather_results(vec![succeed(1), succeed(2)]);
//! assert_eq!(values.result().unwrap().unwrap(), vec![1, 2]);
//! ```

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::chain::{cancel_weak, Trigger, WeakChain};
use super::deferred::Deferred;
use crate::error::FirstError;
use crate::Failure;

/// Every Deferred of a [`DeferredList::fire_on_one_callback`] failed: their failures, in order.
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

/// Bundles several Deferreds into one (Twisted's `DeferredList`).
///
/// The list owns the Deferreds it is given, so their failures are never "unhandled": they
/// arrive in the list's result. Cancelling the list's Deferred cancels every member still
/// waiting.
pub struct DeferredList;

struct Shared<T, R> {
    slots: Vec<Option<Result<T, Failure>>>,
    remaining: usize,
    trigger: Option<Trigger<R>>,
}

/// Makes the list's Deferred, whose cancellation cancels the members.
fn list_deferred<T: 'static, R: 'static>(
    ds: &[Deferred<T>],
) -> (Deferred<R>, Rc<RefCell<Shared<T, R>>>) {
    let members: Vec<WeakChain> = ds.iter().filter_map(|d| d.weak_chain()).collect();
    // The list's handle keeps the members' chains alive, so cancelling the list reaches
    // members nobody else holds.
    let anchors: Vec<Rc<dyn std::any::Any>> = ds.iter().map(|d| d.anchor()).collect();
    let d = Deferred::with_canceller(move |_trigger| {
        for m in &members {
            cancel_weak(m);
        }
    });
    let shared = Rc::new(RefCell::new(Shared {
        slots: (0..ds.len()).map(|_| None).collect(),
        remaining: ds.len(),
        trigger: Some(d.trigger()),
    }));
    (d.anchored(Rc::new(anchors)), shared)
}

fn fire_shared<T, R: 'static>(shared: &Rc<RefCell<Shared<T, R>>>, out: Result<R, Failure>) {
    let trigger = shared.borrow_mut().trigger.take();
    if let Some(t) = trigger {
        let _ = t.fire(out);
    }
}

impl DeferredList {
    /// Fires when every Deferred has fired, with each outcome in order (Twisted's
    /// `DeferredList(ds, consumeErrors=True)`).
    #[allow(clippy::new_ret_no_self)]
    #[doc(alias = "consumeErrors")]
    pub fn new<T: 'static>(ds: Vec<Deferred<T>>) -> Deferred<Vec<Result<T, Failure>>> {
        let (d, shared) = list_deferred::<T, Vec<Result<T, Failure>>>(&ds);
        if ds.is_empty() {
            fire_shared(&shared, Ok(Vec::new()));
        }
        for (i, member) in ds.into_iter().enumerate() {
            let shared = shared.clone();
            member.on_result(move |out| {
                let done = {
                    let mut s = shared.borrow_mut();
                    s.slots[i] = Some(out);
                    s.remaining -= 1;
                    s.remaining == 0
                };
                if done {
                    let results = shared
                        .borrow_mut()
                        .slots
                        .iter_mut()
                        .map(|slot| slot.take().expect("every slot filled"))
                        .collect();
                    fire_shared(&shared, Ok(results));
                }
            });
        }
        d
    }

    /// Fires with the first success and its index; fails with [`AllFailedError`] if every
    /// Deferred fails (Twisted's `fireOnOneCallback=True`).
    #[doc(alias = "fireOnOneCallback")]
    pub fn fire_on_one_callback<T: 'static>(ds: Vec<Deferred<T>>) -> Deferred<(usize, T)> {
        let (d, shared) = list_deferred::<T, (usize, T)>(&ds);
        if ds.is_empty() {
            fire_shared(
                &shared,
                Err(Failure::new(AllFailedError { failures: vec![] })),
            );
        }
        for (i, member) in ds.into_iter().enumerate() {
            let shared = shared.clone();
            member.on_result(move |out| match out {
                Ok(v) => fire_shared(&shared, Ok((i, v))),
                Err(f) => {
                    let done = {
                        let mut s = shared.borrow_mut();
                        s.slots[i] = Some(Err(f));
                        s.remaining -= 1;
                        s.remaining == 0
                    };
                    if done {
                        let failures = shared
                            .borrow_mut()
                            .slots
                            .iter_mut()
                            .filter_map(|slot| slot.take().and_then(Result::err))
                            .collect();
                        fire_shared(&shared, Err(Failure::new(AllFailedError { failures })));
                    }
                }
            });
        }
        d
    }

    /// Fires with every value in order, or fails with [`FirstError`] as soon as one fails
    /// (Twisted's `fireOnOneErrback=True`). The same as [`gather_results`].
    #[doc(alias = "fireOnOneErrback")]
    pub fn fire_on_one_errback<T: 'static>(ds: Vec<Deferred<T>>) -> Deferred<Vec<T>> {
        gather_results(ds)
    }
}

/// Fires with the values of all the Deferreds, in order, or fails with [`FirstError`] naming
/// the first to fail (Twisted's `gatherResults`).
#[doc(alias = "gatherResults")]
pub fn gather_results<T: 'static>(ds: Vec<Deferred<T>>) -> Deferred<Vec<T>> {
    let (d, shared) = list_deferred::<T, Vec<T>>(&ds);
    if ds.is_empty() {
        fire_shared(&shared, Ok(Vec::new()));
    }
    for (i, member) in ds.into_iter().enumerate() {
        let shared = shared.clone();
        member.on_result(move |out| match out {
            Ok(v) => {
                let done = {
                    let mut s = shared.borrow_mut();
                    s.slots[i] = Some(Ok(v));
                    s.remaining -= 1;
                    s.remaining == 0 && s.trigger.is_some()
                };
                if done {
                    let values = shared
                        .borrow_mut()
                        .slots
                        .iter_mut()
                        .map(|slot| match slot.take() {
                            Some(Ok(v)) => v,
                            _ => unreachable!("all succeeded"),
                        })
                        .collect();
                    fire_shared(&shared, Ok(values));
                }
            }
            Err(failure) => {
                fire_shared(&shared, Err(Failure::new(FirstError { index: i, failure })));
            }
        });
    }
    d
}
