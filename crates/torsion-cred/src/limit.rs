//! Running slow verifications off the reactor, a few at a time ([`VerifyLimiter`]).
//!
//! Verifying a password hash takes tens of milliseconds of CPU on purpose. On the reactor
//! thread, one login would stall every other connection for that long; in unbounded worker
//! threads, a brute-force flood would take every thread of the pool (and the databases'
//! queries queued behind them) and gigabytes of Argon2 memory. So a limiter runs at most
//! `max_running` verifications at once in the reactor's thread pool, queues up to
//! `max_waiting` more in order, and refuses the rest at once with
//! [`TooManyLogins`].
//!
//! A verification counts against the limit until its thread has finished, even if the
//! login waiting for it was cancelled (the client left): a flood of logins that hang up
//! cannot start more threads than the limit.
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! use torsion::{reactor, Reactor};
//! use torsion_cred::VerifyLimiter;
//!
//! let r = Reactor::new();
//! let sum = Rc::new(Cell::new(0));
//! let s = sum.clone();
//! r.call_when_running(move || {
//!     let limiter = VerifyLimiter::new(1, 10);
//!     let first = limiter.run(|| 20); // in a worker thread
//!     let second = limiter.run(|| 22); // waits for the first
//!     assert_eq!(limiter.waiting(), 1);
//!     first.add_callback_deferred(move |a| second.add_callback(move |b| a + b))
//!         .add_both(move |total| {
//!             s.set(total?);
//!             reactor().stop()
//!         })
//! });
//! r.run().unwrap();
//! assert_eq!(sum.get(), 42);
//! ```
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use torsion::defer::{fail, Deferred, Trigger};
use torsion::threads::{defer_to_thread_pool, get_thread_pool, ThreadPool};

use crate::error::TooManyLogins;

/// How many verifications a [`VerifyLimiter::default`] runs at once: two of the reactor
/// pool's ten threads, leaving the rest to other work.
pub const DEFAULT_MAX_RUNNING: usize = 2;

/// How many verifications a [`VerifyLimiter::default`] lets wait before refusing more.
pub const DEFAULT_MAX_WAITING: usize = 1024;

/// Runs blocking jobs (password verifications) in a thread pool, at most `max_running` at
/// once, with a bounded queue. Cheap to clone: clones share the limit, so several checkers
/// may share one budget. Lives on one reactor thread.
#[derive(Clone)]
pub struct VerifyLimiter {
    inner: Rc<Inner>,
}

struct Inner {
    max_running: usize,
    max_waiting: usize,
    running: Cell<usize>,
    draining: Cell<bool>,
    waiting: RefCell<VecDeque<Box<dyn Waiting>>>,
    pool: Option<ThreadPool>,
}

/// A job waiting for its turn.
trait Waiting {
    /// True once the login waiting for it has gone (its Deferred was cancelled).
    fn gone(&self) -> bool;
    /// Starts it.
    fn start(self: Box<Self>, limiter: &VerifyLimiter);
}

struct Job<T, F> {
    trigger: Trigger<T>,
    f: F,
}

impl<T: Send + 'static, F: FnOnce() -> T + Send + 'static> Waiting for Job<T, F> {
    fn gone(&self) -> bool {
        self.trigger.is_called()
    }

    fn start(self: Box<Self>, limiter: &VerifyLimiter) {
        let Job { trigger, f } = *self;
        let inner = &limiter.inner;
        inner.running.set(inner.running.get() + 1);
        let pool = inner.pool.clone().unwrap_or_else(get_thread_pool);
        let me = limiter.clone();
        defer_to_thread_pool(&pool, f).add_both(move |out| {
            // A cancelled login has fired already; its late result is dropped.
            let _ = trigger.fire(out);
            me.inner.running.set(me.inner.running.get() - 1);
            me.start_next();
            Ok::<(), torsion::Failure>(())
        });
    }
}

impl VerifyLimiter {
    /// A limiter running at most `max_running` jobs at once (at least 1) and queueing at
    /// most `max_waiting`, in the current reactor's thread pool.
    pub fn new(max_running: usize, max_waiting: usize) -> VerifyLimiter {
        VerifyLimiter {
            inner: Rc::new(Inner {
                max_running: max_running.max(1),
                max_waiting,
                running: Cell::new(0),
                draining: Cell::new(false),
                waiting: RefCell::new(VecDeque::new()),
                pool: None,
            }),
        }
    }

    /// The same limits, with jobs run in `pool` instead of the reactor's own pool.
    pub fn with_pool(self, pool: ThreadPool) -> VerifyLimiter {
        VerifyLimiter {
            inner: Rc::new(Inner {
                max_running: self.inner.max_running,
                max_waiting: self.inner.max_waiting,
                running: Cell::new(0),
                draining: Cell::new(false),
                waiting: RefCell::new(VecDeque::new()),
                pool: Some(pool),
            }),
        }
    }

    /// Runs `f` in a worker thread when a slot is free, and returns a Deferred of its result,
    /// fired on the reactor thread. Fails at once with [`TooManyLogins`] when `max_running`
    /// jobs run and `max_waiting` wait already. Cancelling the Deferred gives up a place in
    /// the queue; a job already running finishes, and its slot is freed then.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Deferred<T> {
        let inner = &self.inner;
        {
            let mut waiting = inner.waiting.borrow_mut();
            let full = |w: &VecDeque<Box<dyn Waiting>>| {
                inner.running.get() >= inner.max_running && w.len() >= inner.max_waiting
            };
            if full(&waiting) {
                waiting.retain(|w| !w.gone());
            }
            if full(&waiting) {
                return fail(TooManyLogins {
                    running: inner.max_running,
                    waiting: inner.max_waiting,
                });
            }
        }
        let d = Deferred::new();
        inner.waiting.borrow_mut().push_back(Box::new(Job {
            trigger: d.trigger(),
            f,
        }));
        self.start_next();
        d
    }

    /// Starts waiting jobs while there are free slots; iterative, so that jobs failing at
    /// once (a full pool) do not recurse.
    fn start_next(&self) {
        let inner = &self.inner;
        if inner.draining.replace(true) {
            return;
        }
        while inner.running.get() < inner.max_running {
            let next = inner.waiting.borrow_mut().pop_front();
            match next {
                Some(job) if job.gone() => continue,
                Some(job) => job.start(self),
                None => break,
            }
        }
        inner.draining.set(false);
    }

    /// Jobs running now (their threads not yet finished).
    pub fn running(&self) -> usize {
        self.inner.running.get()
    }

    /// Jobs waiting for a slot (including cancelled ones not yet skipped).
    pub fn waiting(&self) -> usize {
        self.inner.waiting.borrow().len()
    }

    /// The most jobs run at once.
    pub fn max_running(&self) -> usize {
        self.inner.max_running
    }

    /// The most jobs that may wait.
    pub fn max_waiting(&self) -> usize {
        self.inner.max_waiting
    }
}

impl Default for VerifyLimiter {
    /// [`DEFAULT_MAX_RUNNING`] at once, [`DEFAULT_MAX_WAITING`] waiting, in the reactor's pool.
    fn default() -> VerifyLimiter {
        VerifyLimiter::new(DEFAULT_MAX_RUNNING, DEFAULT_MAX_WAITING)
    }
}

impl fmt::Debug for VerifyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyLimiter")
            .field("running", &self.running())
            .field("max_running", &self.max_running())
            .field("waiting", &self.waiting())
            .field("max_waiting", &self.max_waiting())
            .finish()
    }
}
