//! Coordination with Deferreds: [`DeferredLock`], [`DeferredSemaphore`], [`DeferredQueue`]
//! (Twisted's `defer.DeferredLock`, `DeferredSemaphore`, `DeferredQueue`).
//!
//! ```
//! use torsion::defer::{DeferredQueue, DeferredSemaphore, succeed};
//!
//! // At most two jobs at once.
//! let sem = DeferredSemaphore::new(2);
//! let job = sem.run(|| succeed("done"));
//! assert_eq!(job.result().unwrap().unwrap(), "done");
//!
//! // A queue: get() waits for put().
//! let q = DeferredQueue::new();
//! let got = q.get().unwrap();
//! q.put(7).unwrap();
//! assert_eq!(got.result().unwrap().unwrap(), 7);
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use super::{Deferred, Trigger};

struct SemInner {
    tokens: Cell<usize>,
    limit: usize,
    waiting: RefCell<VecDeque<Trigger<()>>>,
}

/// Limits how many things run at once: `acquire` waits for a free token (Twisted's
/// `DeferredSemaphore`). Waiters are served in order; a cancelled waiter gives up its place.
#[derive(Clone)]
pub struct DeferredSemaphore {
    inner: Rc<SemInner>,
}

impl DeferredSemaphore {
    /// A semaphore with `tokens` tokens.
    ///
    /// # Panics
    /// If `tokens` is 0.
    pub fn new(tokens: usize) -> DeferredSemaphore {
        assert!(tokens > 0, "a semaphore needs at least one token");
        DeferredSemaphore {
            inner: Rc::new(SemInner {
                tokens: Cell::new(tokens),
                limit: tokens,
                waiting: RefCell::default(),
            }),
        }
    }

    /// A Deferred that fires when a token is taken; call [`release`](Self::release) after.
    pub fn acquire(&self) -> Deferred<()> {
        let d = Deferred::new();
        if self.inner.tokens.get() > 0 {
            self.inner.tokens.set(self.inner.tokens.get() - 1);
            d.callback(());
        } else {
            self.inner.waiting.borrow_mut().push_back(d.trigger());
        }
        d
    }

    /// Gives a token back, handing it to the first waiter still waiting.
    ///
    /// # Panics
    /// If more tokens are released than were acquired.
    pub fn release(&self) {
        loop {
            let next = self.inner.waiting.borrow_mut().pop_front();
            match next {
                Some(t) if t.is_called() => continue, // cancelled while waiting
                Some(t) => {
                    t.callback(());
                    return;
                }
                None => {
                    let n = self.inner.tokens.get();
                    assert!(
                        n < self.inner.limit,
                        "release() without a matching acquire()"
                    );
                    self.inner.tokens.set(n + 1);
                    return;
                }
            }
        }
    }

    /// Acquires, runs `f`, and releases when its Deferred fires (Twisted's `run`).
    pub fn run<T: 'static>(&self, f: impl FnOnce() -> Deferred<T> + 'static) -> Deferred<T> {
        let me = self.clone();
        self.acquire().add_callback_deferred(move |()| {
            let releaser = me.clone();
            let d = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(d) => d,
                Err(p) => super::fail(crate::Failure::from_panic(p)),
            };
            d.add_both(move |out| {
                releaser.release();
                out
            })
        })
    }

    /// Free tokens now.
    pub fn tokens(&self) -> usize {
        self.inner.tokens.get()
    }

    /// The number of tokens the semaphore was made with.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }
}

impl fmt::Debug for DeferredSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredSemaphore")
            .field("tokens", &self.tokens())
            .field("limit", &self.limit())
            .finish()
    }
}

/// A lock for Deferred-returning code (Twisted's `DeferredLock`): a semaphore of one.
#[derive(Clone, Debug)]
pub struct DeferredLock {
    sem: DeferredSemaphore,
}

impl Default for DeferredLock {
    fn default() -> Self {
        DeferredLock::new()
    }
}

impl DeferredLock {
    /// An unlocked lock.
    pub fn new() -> DeferredLock {
        DeferredLock {
            sem: DeferredSemaphore::new(1),
        }
    }

    /// A Deferred that fires when the lock is held; call [`release`](Self::release) after.
    pub fn acquire(&self) -> Deferred<()> {
        self.sem.acquire()
    }

    /// Releases the lock.
    pub fn release(&self) {
        self.sem.release()
    }

    /// Locks, runs `f`, and unlocks when its Deferred fires.
    pub fn run<T: 'static>(&self, f: impl FnOnce() -> Deferred<T> + 'static) -> Deferred<T> {
        self.sem.run(f)
    }

    /// True while held.
    pub fn locked(&self) -> bool {
        self.sem.tokens() == 0
    }
}

/// A [`DeferredQueue`] is full (Twisted's `QueueOverflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOverflow;

impl fmt::Display for QueueOverflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is full")
    }
}

impl std::error::Error for QueueOverflow {}

/// Too many `get`s already wait on a [`DeferredQueue`] (Twisted's `QueueUnderflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueUnderflow;

impl fmt::Display for QueueUnderflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many readers already wait on the queue")
    }
}

impl std::error::Error for QueueUnderflow {}

struct QueueInner<T> {
    items: RefCell<VecDeque<T>>,
    waiting: RefCell<VecDeque<Trigger<T>>>,
    size: Option<usize>,
    backlog: Option<usize>,
}

/// A queue whose `get` returns a Deferred that fires when an item is there (Twisted's
/// `DeferredQueue`), with an optional size limit for items and backlog limit for waiting
/// readers, so neither side can grow without bound.
pub struct DeferredQueue<T> {
    inner: Rc<QueueInner<T>>,
}

impl<T> Clone for DeferredQueue<T> {
    fn clone(&self) -> Self {
        DeferredQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> Default for DeferredQueue<T> {
    fn default() -> Self {
        DeferredQueue::new()
    }
}

impl<T: 'static> DeferredQueue<T> {
    /// A queue without limits.
    pub fn new() -> DeferredQueue<T> {
        DeferredQueue::with_limits(None, None)
    }

    /// A queue holding at most `size` items, with at most `backlog` readers waiting.
    pub fn with_limits(size: Option<usize>, backlog: Option<usize>) -> DeferredQueue<T> {
        DeferredQueue {
            inner: Rc::new(QueueInner {
                items: RefCell::default(),
                waiting: RefCell::default(),
                size,
                backlog,
            }),
        }
    }

    /// Adds an item, handing it straight to the first waiting reader if there is one.
    pub fn put(&self, item: T) -> Result<(), QueueOverflow> {
        let mut item = Some(item);
        while let Some(t) = self.inner.waiting.borrow_mut().pop_front() {
            if t.is_called() {
                continue; // that reader gave up (cancelled)
            }
            t.callback(item.take().expect("one item"));
            return Ok(());
        }
        let mut items = self.inner.items.borrow_mut();
        if self.inner.size.is_some_and(|s| items.len() >= s) {
            return Err(QueueOverflow);
        }
        items.push_back(item.take().expect("one item"));
        Ok(())
    }

    /// A Deferred for the next item.
    pub fn get(&self) -> Result<Deferred<T>, QueueUnderflow> {
        let d = Deferred::new();
        if let Some(item) = self.inner.items.borrow_mut().pop_front() {
            d.callback(item);
            return Ok(d);
        }
        let mut waiting = self.inner.waiting.borrow_mut();
        waiting.retain(|t| !t.is_called());
        if self.inner.backlog.is_some_and(|b| waiting.len() >= b) {
            return Err(QueueUnderflow);
        }
        waiting.push_back(d.trigger());
        Ok(d)
    }

    /// Items waiting to be read.
    pub fn len(&self) -> usize {
        self.inner.items.borrow().len()
    }

    /// True when no item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Readers waiting for an item.
    pub fn waiting(&self) -> usize {
        self.inner
            .waiting
            .borrow()
            .iter()
            .filter(|t| !t.is_called())
            .count()
    }
}

impl<T> fmt::Debug for DeferredQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredQueue")
            .field("items", &self.inner.items.borrow().len())
            .field("size", &self.inner.size)
            .field("backlog", &self.inner.backlog)
            .finish()
    }
}
