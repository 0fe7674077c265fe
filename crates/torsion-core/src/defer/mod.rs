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

mod chain;
mod deferred;
mod list;
mod spawn;
mod sync;

pub(crate) use chain::unhandled_failures;
pub use chain::Trigger;
pub use deferred::{fail, succeed, Deferred};
pub use list::{gather_results, AllFailedError, DeferredList};
pub use spawn::ensure_deferred;
pub(crate) use spawn::spawn_on;
pub use sync::{DeferredLock, DeferredQueue, DeferredSemaphore, QueueOverflow, QueueUnderflow};

pub use crate::error::{AlreadyCalledError, CancelledError, FirstError, TimeoutError};
