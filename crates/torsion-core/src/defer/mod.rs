//! Deferreds: a result you don't have yet (Twisted's `twisted.internet.defer`).
//!
//! A [`Deferred<T>`] stands for a value of type `T` that will arrive later, or a [`Failure`](crate::Failure).
//! You add callbacks (run on success) and errbacks (run on failure) to it; each one's return
//! value is passed to the next, exactly as in Twisted:
//!
//! - [`add_callback`](Deferred::add_callback): "do this on the next success";
//! - [`add_errback`](Deferred::add_errback): "do this on the next failure" — return `Ok(v)` to
//!   recover and resume the callbacks, `Err(f)` to pass the failure on;
//! - [`add_callbacks`](Deferred::add_callbacks): one of the two, like `try/except/else`;
//! - [`add_both`](Deferred::add_both): either way, like `finally`.
//!
//! Types flow through the chain: `add_callback(|meal: Meal| -> bool)` turns a `Deferred<Meal>`
//! into a `Deferred<bool>`. Because a chain's type changes as it grows, the side that fires a
//! Deferred is a separate value, a [`Trigger<T>`], which is consumed when it fires: firing twice
//! is impossible with one trigger, and a clear [`AlreadyCalledError`] panic otherwise.
//!
//! ```
//! use torsion::defer::Deferred;
//!
//! #[derive(Debug)]
//! enum Meal { EggsBenedict }
//!
//! let placeholder: Deferred<Meal> = Deferred::new();
//! let fire = placeholder.trigger();
//!
//! let verdict = placeholder
//!     .add_callback(|meal| matches!(meal, Meal::EggsBenedict)) // eat_meal
//!     .add_callback(|good| if good { "Wuu chef!" } else { "I sneeze in your face!" });
//!
//! fire.callback(Meal::EggsBenedict); // the kitchen answers; the callbacks run now
//! assert_eq!(verdict.result().unwrap().unwrap(), "Wuu chef!");
//! ```
//!
//! A callback that returns a Deferred pauses the chain until that Deferred fires
//! ([`add_callback_deferred`](Deferred::add_callback_deferred)); a `Deferred` is also a
//! [`Future`](std::future::Future), and [`ensure_deferred`] turns `async` code into a Deferred, which is how Twisted's
//! `inlineCallbacks` reads in Rust.
//!
//! # Coming from Twisted
//!
//! | Twisted | Torsion |
//! |---|---|
//! | `d = Deferred()` | `let d = Deferred::<T>::new();` |
//! | `d.addCallback(f)` | `let d = d.add_callback(f);` — [`add_callback`](Deferred::add_callback) takes `d` and returns the chain's new end |
//! | `d.addCallback(f)`, `f` raises | [`add_callback_result`](Deferred::add_callback_result): `f` returns a `Result` |
//! | `d.addCallback(f)`, `f` returns a Deferred | [`add_callback_deferred`](Deferred::add_callback_deferred) |
//! | `d.addErrback(f)` | [`add_errback`](Deferred::add_errback): `Ok(v)` recovers, `Err(f)` passes it on |
//! | `d.addErrback(f)`, `f` returns a Deferred | [`add_errback_deferred`](Deferred::add_errback_deferred) |
//! | `d.addCallbacks(cb, eb)` | [`add_callbacks`](Deferred::add_callbacks) |
//! | `d.addBoth(f)` | [`add_both`](Deferred::add_both) |
//! | `d.addBoth(f)`, `f` returns a Deferred | [`add_both_deferred`](Deferred::add_both_deferred) |
//! | `d.callback(v)` / `d.errback(e)` after adding callbacks | `let fire = d.trigger();` **before** adding them, then [`fire.callback(v)`](Trigger::callback) / [`fire.errback(e)`](Trigger::errback) |
//! | `d.callback(v)` on a Deferred with no callbacks yet | [`d.callback(v)`](Deferred::callback) works as is |
//! | `d.pause()`, `d.unpause()` | `let paused = d.pause();` ([`pause`](Deferred::pause)), then [`paused.unpause()`](Paused::unpause) or drop `paused` |
//! | `d.cancel()`, `d.addTimeout(s, reactor)` | [`cancel`](Deferred::cancel), [`add_timeout`](Deferred::add_timeout) |
//! | `@inlineCallbacks` with `x = yield d` | `ensure_deferred(async { let x = d.await?; ... })`: [`ensure_deferred`] |
//! | `ensureDeferred(coro)` | [`ensure_deferred`], or `.await` a Deferred inside any async code |
//! | `DeferredList([d1, d2])` | [`DeferredList::new(vec![d1, d2])`](DeferredList::new): a `Vec<Result<T, Failure>>`; as in Twisted, member failures are also logged as unhandled when it is dropped |
//! | `DeferredList(ds, consumeErrors=True, fireOnOneErrback=True)` | [`DeferredList::builder(ds)`](DeferredList::builder)[`.consume_errors(true)`](DeferredList::consume_errors)[`.fire_on_one_errback(true)`](DeferredList::fire_on_one_errback)[`.build()`](DeferredList::build) |
//! | `DeferredList(ds, fireOnOneCallback=True)` | [`DeferredList::builder(ds).fire_on_one_callback()`](DeferredList::fire_on_one_callback): `Ok((index, value))`, the reverse of Twisted's `(result, index)`, or `Err(`[`AllFailedError`]`)` |
//! | `gatherResults([d1, d2])`, `gatherResults(ds, consumeErrors=True)` | [`gather_results`], [`DeferredList::builder(ds).consume_errors(true).gather()`](DeferredList::gather) (later failures logged, not dropped) |
//! | `race([d1, d2])` | [`race`]: `(index, value)`, or a [`FailureGroup`] |
//! | `succeed(v)`, `fail(e)` | [`succeed`], [`fail`] |
//! | `maybeDeferred(f)` | [`maybe_deferred(f)`](maybe_deferred): `f` returns a `Result`, a Deferred or `()` ([`IntoDeferred`]); it runs now, an `Err` or a panic becomes the failure |
//! | `deferLater(reactor, s, f)` | [`task::defer_later`](crate::task::defer_later) |
//! | trial's `successResultOf(d)` | [`testing::success_result_of`](crate::testing::success_result_of) |
//!
//! **Firing after adding callbacks.** In Twisted, `d` is one object: you add callbacks to
//! it and fire it, in any order. In Torsion `add_callback` *moves* `d` into the chain and
//! hands back a `Deferred` of the callback's type (a `Deferred<i32>` with an `i32 -> String`
//! callback becomes a `Deferred<String>`), so the old `d` is gone:
//!
//! ```compile_fail,E0382
//! use torsion::defer::Deferred;
//!
//! let d: Deferred<i32> = Deferred::new();
//! d.add_callback(|x| println!("got {x}"));
//! d.callback(5); // error[E0382]: borrow of moved value: `d`
//! ```
//!
//! The firing side is a separate value: take a [`Trigger`] with
//! [`trigger()`](Deferred::trigger) *before* adding callbacks, keep it where the answer will
//! come from, and fire it there (it is consumed, so it fires at most once). The end of the
//! chain is not the place to fire: a trigger made from it refuses with
//! [`AlreadyCalledError`].
//!
//! ```
//! use torsion::defer::Deferred;
//!
//! let d: Deferred<i32> = Deferred::new();
//! let fire = d.trigger(); // the firing side, kept before `d` moves
//! let d = d.add_callback(|x| x * 2).add_callback(|x| format!("got {x}"));
//! assert!(d.result().is_none()); // not fired yet
//! fire.callback(5); // Twisted's d.callback(5): the callbacks run now
//! assert_eq!(d.result().unwrap().unwrap(), "got 10");
//! ```
//!
//! And `maybeDeferred`: a function that may fail, or panic, called now, its outcome a
//! Deferred either way:
//!
//! ```
//! use torsion::defer::maybe_deferred;
//!
//! fn parse(s: &str) -> Result<i32, std::num::ParseIntError> { s.parse() }
//!
//! let ok = maybe_deferred(|| parse("42"));
//! assert_eq!(ok.result().unwrap().unwrap(), 42);
//! let bad = maybe_deferred(|| parse("forty-two"));
//! assert!(bad.result().unwrap().unwrap_err().check::<std::num::ParseIntError>());
//! let boom = maybe_deferred(|| -> Result<i32, std::num::ParseIntError> { panic!("boom") });
//! assert!(boom.result().unwrap().is_err());
//! ```

mod chain;
mod deferred;
mod list;
mod spawn;
mod sync;

pub use chain::Trigger;
pub use deferred::{fail, maybe_deferred, succeed, Deferred, IntoDeferred, Paused};
pub use list::{gather_results, race, AllFailedError, DeferredList, FailureGroup};
pub use spawn::ensure_deferred;
pub(crate) use spawn::spawn_on;
pub use sync::{DeferredLock, DeferredQueue, DeferredSemaphore, QueueOverflow, QueueUnderflow};

pub use crate::error::{AlreadyCalledError, CancelledError, FirstError, TimeoutError};
