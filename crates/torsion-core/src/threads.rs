//! Threads: run blocking work off the reactor (Twisted's `twisted.internet.threads` and
//! `twisted.python.threadpool`).
//!
//! The reactor is one thread, and code on it must return quickly. Work that blocks — a
//! long computation, a blocking library call — goes to a [`ThreadPool`]; its result comes back
//! to the reactor thread as a [`Deferred`]:
//!
//! - [`defer_to_thread`] runs a function in the current reactor's pool and returns a Deferred
//!   of its result (a panic becomes a [`Failure`]), fired on the reactor thread;
//! - [`call_in_thread`] and [`call_multiple_in_thread`] run functions in the pool and forget
//!   them;
//! - [`call_from_thread`] runs a function on the reactor thread, from any thread, and
//!   [`blocking_call_from_thread`] (or [`blocking_call_deferred_from_thread`]) does so and
//!   waits for its result;
//! - [`suggest_thread_pool_size`] and [`get_thread_pool`] reach the reactor's own pool.
//!
//! Each reactor has a default pool (0 to 10 threads, as Twisted's), made on first use and
//! stopped when the reactor shuts down, so programs and tests end without stray threads. The
//! pool's queue is bounded: when it is full, work is refused with
//! [`ThreadPoolError::QueueFull`] instead of piling up.
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! use torsion::{reactor, threads::defer_to_thread, Reactor};
//!
//! let r = Reactor::new();
//! let answer = Rc::new(Cell::new(0u64));
//! let a = answer.clone();
//! r.call_when_running(move || {
//!     // Runs in a worker thread; the reactor goes on meanwhile.
//!     defer_to_thread(|| (1..=100u64).sum::<u64>()).add_both(move |sum| {
//!         a.set(sum?);
//!         reactor().stop()
//!     })
//! });
//! r.run().unwrap();
//! assert_eq!(answer.get(), 5050);
//! ```

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::defer::{fail, Deferred, Trigger};
use crate::error::ReactorNotRunning;
use crate::reactor::{reactor, Event, Phase, ReactorHandle};
use crate::Failure;

/// The default limit of a pool's work queue: jobs waiting for a thread beyond this many are
/// refused with [`ThreadPoolError::QueueFull`].
pub const DEFAULT_QUEUE_LIMIT: usize = 10_000;

/// How long, by default, a thread above a pool's minimum waits idle for work before it exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default size of a reactor's pool: at least 0 threads, at most 10 (Twisted's).
pub const DEFAULT_POOL_SIZE: (usize, usize) = (0, 10);

/// Why a pool (or [`blocking_call_from_thread`]) refused or could not finish work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadPoolError {
    /// The pool's work queue already holds its limit of waiting jobs.
    QueueFull {
        /// The queue's limit.
        limit: usize,
    },
    /// The pool has been stopped: it takes no more work, and queued work was dropped.
    PoolStopped,
    /// [`blocking_call_from_thread`] was called on a reactor thread, where waiting for the
    /// reactor would wait forever.
    CalledFromReactorThread,
}

impl fmt::Display for ThreadPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadPoolError::QueueFull { limit } => {
                write!(f, "the thread pool's queue is full ({limit} jobs waiting)")
            }
            ThreadPoolError::PoolStopped => f.write_str("the thread pool has been stopped"),
            ThreadPoolError::CalledFromReactorThread => {
                f.write_str("blocking_call_from_thread called on the reactor thread")
            }
        }
    }
}

impl std::error::Error for ThreadPoolError {}

type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    queue: VecDeque<Job>,
    min: usize,
    max: usize,
    limit: usize,
    idle_timeout: Duration,
    /// Live worker threads.
    workers: usize,
    /// Workers waiting for work.
    idle: usize,
    /// Workers running a job.
    busy: usize,
    stopped: bool,
    spawned: u64,
    handles: Vec<JoinHandle<()>>,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    work: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock and panics in them are caught, so a poisoned lock only
        // means a bug in this module; the state is still consistent enough to go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

thread_local! {
    /// The pool a worker thread belongs to (unset on other threads).
    static WORKER_OF: RefCell<Option<Weak<Shared>>> = const { RefCell::new(None) };
}

/// A bounded pool of threads for blocking work (Twisted's `ThreadPool`).
///
/// Threads start lazily: at least `min` once work arrives, and more as work queues, up to
/// `max`. Threads above `min` exit after waiting idle for a while
/// ([`set_idle_timeout`](Self::set_idle_timeout)). Jobs wait in a queue of bounded length
/// ([`set_queue_limit`](Self::set_queue_limit)); [`call_in_thread`](Self::call_in_thread)
/// refuses work when it is full. A panic in a job is logged and the thread goes on.
///
/// Cheap to clone: every clone is the same pool. [`stop`](Self::stop) it when done (a
/// reactor's default pool is stopped for you).
///
/// ```
/// use std::sync::mpsc;
/// use torsion::threads::ThreadPool;
///
/// let pool = ThreadPool::new(0, 2);
/// let (tx, rx) = mpsc::channel();
/// pool.call_in_thread(move || tx.send(6 * 7).unwrap()).unwrap();
/// assert_eq!(rx.recv().unwrap(), 42);
/// pool.stop();
/// assert_eq!(pool.workers(), 0);
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    shared: Arc<Shared>,
}

impl ThreadPool {
    /// A pool of at least `min` and at most `max` threads (`max` is raised to at least 1 and
    /// to `min`), with the default queue limit and idle timeout. No thread starts until work
    /// arrives.
    pub fn new(min: usize, max: usize) -> ThreadPool {
        ThreadPool::with_name(min, max, "torsion-worker")
    }

    /// A pool like [`new`](Self::new) whose threads are named `NAME-N`.
    pub fn with_name(min: usize, max: usize, name: &str) -> ThreadPool {
        ThreadPool {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    min,
                    max: max.max(min).max(1),
                    limit: DEFAULT_QUEUE_LIMIT,
                    idle_timeout: DEFAULT_IDLE_TIMEOUT,
                    workers: 0,
                    idle: 0,
                    busy: 0,
                    stopped: false,
                    spawned: 0,
                    handles: Vec::new(),
                }),
                work: Condvar::new(),
            }),
        }
    }

    /// Runs `f` in a thread of the pool, soon (Twisted's `callInThread`). Fails with
    /// [`ThreadPoolError::QueueFull`] when the queue is full, or
    /// [`ThreadPoolError::PoolStopped`] after [`stop`](Self::stop).
    pub fn call_in_thread(&self, f: impl FnOnce() + Send + 'static) -> Result<(), ThreadPoolError> {
        self.submit(Box::new(f))
    }

    fn submit(&self, job: Job) -> Result<(), ThreadPoolError> {
        let mut st = self.shared.lock();
        if st.stopped {
            return Err(ThreadPoolError::PoolStopped);
        }
        if st.queue.len() >= st.limit {
            return Err(ThreadPoolError::QueueFull { limit: st.limit });
        }
        st.queue.push_back(job);
        let wanted = st.min.max(1);
        while st.workers < st.max && (st.workers < wanted || st.idle < st.queue.len()) {
            if !self.spawn_worker(&mut st) {
                break;
            }
        }
        drop(st);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Starts one worker; false if the system refused a thread (the job stays queued for the
    /// threads there are, or the next attempt).
    fn spawn_worker(&self, st: &mut State) -> bool {
        st.spawned += 1;
        st.handles.retain(|h| !h.is_finished());
        let shared = Arc::downgrade(&self.shared);
        let spawned = thread::Builder::new()
            .name(format!("{}-{}", self.shared.name, st.spawned))
            .spawn(move || worker(shared));
        match spawned {
            Ok(h) => {
                st.workers += 1;
                st.idle += 1;
                st.handles.push(h);
                true
            }
            Err(e) => {
                crate::log::err(&Failure::new(e), "cannot start a thread pool worker:");
                false
            }
        }
    }

    /// Changes the pool's size (Twisted's `adjustPoolSize`): threads above the new `max`
    /// exit when their job is done; threads start as needed for queued work.
    pub fn adjust_pool_size(&self, min: usize, max: usize) {
        let mut st = self.shared.lock();
        st.min = min;
        st.max = max.max(min).max(1);
        while !st.stopped && st.workers < st.max && st.idle < st.queue.len() {
            if !self.spawn_worker(&mut st) {
                break;
            }
        }
        drop(st);
        self.shared.work.notify_all();
    }

    /// Sets how many jobs may wait for a thread before work is refused.
    pub fn set_queue_limit(&self, limit: usize) {
        self.shared.lock().limit = limit;
    }

    /// Sets how long a thread above the minimum waits idle for work before it exits.
    pub fn set_idle_timeout(&self, timeout: Duration) {
        self.shared.lock().idle_timeout = timeout;
        self.shared.work.notify_all();
    }

    /// The least number of threads kept once work has arrived.
    pub fn min_threads(&self) -> usize {
        self.shared.lock().min
    }

    /// The most threads the pool runs at once.
    pub fn max_threads(&self) -> usize {
        self.shared.lock().max
    }

    /// The queue's limit.
    pub fn queue_limit(&self) -> usize {
        self.shared.lock().limit
    }

    /// How many worker threads are alive.
    pub fn workers(&self) -> usize {
        self.shared.lock().workers
    }

    /// How many workers are running a job.
    pub fn busy(&self) -> usize {
        self.shared.lock().busy
    }

    /// How many jobs wait for a thread.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// True once [`stop`](Self::stop) has been called.
    pub fn is_stopped(&self) -> bool {
        self.shared.lock().stopped
    }

    /// Stops the pool: it refuses new work, drops the jobs still queued (they never run),
    /// lets running jobs finish and joins every worker thread. Returns once they have exited
    /// (a worker that stops its own pool is not waited for). Calling it again does nothing.
    ///
    /// A worker blocked in [`blocking_call_from_thread`] when its pool stops gets
    /// [`ThreadPoolError::PoolStopped`], since the reactor stopping the pool may never answer.
    pub fn stop(&self) {
        let (dropped, handles) = {
            let mut st = self.shared.lock();
            st.stopped = true;
            (
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.handles),
            )
        };
        self.shared.work.notify_all();
        // Jobs may hold things whose drop does work: drop them outside the lock.
        drop(dropped);
        let me = thread::current().id();
        for h in handles {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("ThreadPool")
            .field("name", &self.shared.name)
            .field("min", &st.min)
            .field("max", &st.max)
            .field("workers", &st.workers)
            .field("busy", &st.busy)
            .field("queued", &st.queue.len())
            .field("stopped", &st.stopped)
            .finish()
    }
}

/// A worker thread's loop: takes jobs until the pool stops, shrinks, or it idles too long.
fn worker(shared: Weak<Shared>) {
    let Some(pool) = shared.upgrade() else {
        return;
    };
    WORKER_OF.with_borrow_mut(|w| *w = Some(shared));
    let mut st = pool.lock();
    loop {
        if let Some(job) = st.queue.pop_front() {
            st.idle -= 1;
            st.busy += 1;
            drop(st);
            if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
                crate::log::err(
                    &Failure::from_panic(payload),
                    "a job in a thread pool panicked:",
                );
            }
            st = pool.lock();
            st.busy -= 1;
            st.idle += 1;
            continue;
        }
        if st.stopped || st.workers > st.max {
            break;
        }
        if st.workers > st.min {
            let timeout = st.idle_timeout;
            let (guard, waited) = pool
                .work
                .wait_timeout(st, timeout)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if waited.timed_out() && st.queue.is_empty() && st.workers > st.min {
                break;
            }
        } else {
            st = pool.work.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
    st.idle -= 1;
    st.workers -= 1;
}

/// The pool the current thread works for, if it is a worker.
fn current_worker_pool() -> Option<Arc<Shared>> {
    WORKER_OF.with_borrow(|w| w.as_ref().and_then(Weak::upgrade))
}

/// Type-erased `Trigger<T>`s of Deferreds waiting for a thread's result, by id.
type Waiting = HashMap<u64, Box<dyn Any>>;

thread_local! {
    /// The current reactor's default pool (a reactor is one thread).
    static DEFAULT_POOL: RefCell<Option<ThreadPool>> = const { RefCell::new(None) };
    /// Triggers of Deferreds waiting for a thread's result, by id.
    static WAITING: RefCell<(u64, Waiting)> = RefCell::new((0, HashMap::new()));
}

/// The current reactor's thread pool (Twisted's `reactor.getThreadPool()`), made on first use
/// with [`DEFAULT_POOL_SIZE`] and stopped when the reactor shuts down (an "after shutdown"
/// trigger). After that, the next use makes a new pool.
pub fn get_thread_pool() -> ThreadPool {
    if let Some(pool) = DEFAULT_POOL.with_borrow(|p| p.clone()) {
        return pool;
    }
    let (min, max) = DEFAULT_POOL_SIZE;
    let pool = ThreadPool::with_name(min, max, "torsion-thread");
    DEFAULT_POOL.with_borrow_mut(|p| *p = Some(pool.clone()));
    let stopping = pool.clone();
    reactor().add_system_event_trigger(Phase::After, Event::Shutdown, move || {
        DEFAULT_POOL.with_borrow_mut(|p| {
            if p.as_ref()
                .is_some_and(|p| Arc::ptr_eq(&p.shared, &stopping.shared))
            {
                *p = None;
            }
        });
        stopping.stop();
    });
    pool
}

/// Sets the most threads the current reactor's pool runs at once (Twisted's
/// `reactor.suggestThreadPoolSize`).
pub fn suggest_thread_pool_size(max: usize) {
    let pool = get_thread_pool();
    let min = pool.min_threads().min(max);
    pool.adjust_pool_size(min, max);
}

/// Runs `f` in a thread of the current reactor's pool (Twisted's `reactor.callInThread`).
/// Fails when the pool's queue is full.
pub fn call_in_thread(f: impl FnOnce() + Send + 'static) -> Result<(), ThreadPoolError> {
    get_thread_pool().call_in_thread(f)
}

/// Runs the functions one after another, in order, in one thread of the current reactor's
/// pool (Twisted's `callMultipleInThread`). A panic in one is logged and the rest still run.
pub fn call_multiple_in_thread(fs: Vec<Box<dyn FnOnce() + Send>>) -> Result<(), ThreadPoolError> {
    get_thread_pool().call_in_thread(move || {
        for f in fs {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                crate::log::err(
                    &Failure::from_panic(payload),
                    "a job in call_multiple_in_thread panicked:",
                );
            }
        }
    })
}

/// Runs `f` on the current thread's reactor, from any thread (Twisted's
/// `reactor.callFromThread`); the same as [`ReactorHandle::call_from_thread`]. Returns false if
/// that reactor has finished. Off the reactor thread, use a [`ReactorHandle`] taken on it.
pub fn call_from_thread(f: impl FnOnce() + Send + 'static) -> bool {
    reactor().handle().call_from_thread(f)
}

/// Runs `f` in a thread of the current reactor's pool and returns a Deferred of its result,
/// fired on the reactor thread (Twisted's `deferToThread`). A panic in `f` becomes the
/// Deferred's [`Failure`] ([`Failure::is_panic`]); a full queue fails it with
/// [`ThreadPoolError::QueueFull`].
pub fn defer_to_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Deferred<T> {
    defer_to_thread_pool(&get_thread_pool(), f)
}

/// Runs `f` in a thread of `pool` and returns a Deferred of its result, fired on the current
/// reactor's thread (Twisted's `deferToThreadPool`).
pub fn defer_to_thread_pool<T: Send + 'static>(
    pool: &ThreadPool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Deferred<T> {
    let d = Deferred::new();
    let id = WAITING.with_borrow_mut(|(next, waiting)| {
        *next += 1;
        waiting.insert(*next, Box::new(d.trigger()) as Box<dyn Any>);
        *next
    });
    let handle = reactor().handle();
    let job = move || {
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(Failure::from_panic);
        handle.call_from_thread(move || fire_waiting(id, result));
    };
    if let Err(e) = pool.call_in_thread(job) {
        WAITING.with_borrow_mut(|(_, waiting)| waiting.remove(&id));
        return fail(e);
    }
    d
}

/// On the reactor thread: fires the Deferred waiting under `id`.
fn fire_waiting<T: 'static>(id: u64, result: Result<T, Failure>) {
    let trigger = WAITING.with_borrow_mut(|(_, waiting)| waiting.remove(&id));
    if let Some(Ok(trigger)) = trigger.map(|t| t.downcast::<Trigger<T>>()) {
        // A cancelled Deferred has already fired; the late result is dropped.
        let _ = (*trigger).fire(result);
    }
}

/// True on a thread that runs a reactor (inside its current-thread event loop) and is not a
/// pool worker.
fn on_reactor_thread() -> bool {
    if current_worker_pool().is_some() {
        return false;
    }
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// From a thread other than the reactor's, runs `f` on the reactor of `handle` and blocks
/// until it returns (Twisted's `blockingCallFromThread`). A panic in `f` becomes a
/// [`Failure`]; for a function returning a Deferred, see
/// [`blocking_call_deferred_from_thread`].
///
/// Fails with [`ThreadPoolError::CalledFromReactorThread`] on a reactor thread (inside a
/// current-thread tokio event loop, where waiting would deadlock), with
/// [`ReactorNotRunning`] if the reactor finished before running `f`, and with
/// [`ThreadPoolError::PoolStopped`] if the caller is a pool worker whose pool is stopped
/// while it waits.
///
/// ```
/// use torsion::{reactor, threads::{blocking_call_from_thread, defer_to_thread}, Reactor};
///
/// let r = Reactor::new();
/// let handle = r.handle();
/// r.call_when_running(move || {
///     defer_to_thread(move || blocking_call_from_thread(&handle, || reactor().running()))
///         .add_both(|ran| {
///             assert!(ran.unwrap().unwrap());
///             reactor().stop()
///         })
/// });
/// r.run().unwrap();
/// ```
pub fn blocking_call_from_thread<T: Send + 'static>(
    handle: &ReactorHandle,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    blocking_call_deferred_from_thread(handle, move || {
        let d = Deferred::new();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => d.callback(v),
            Err(payload) => d.errback(Failure::from_panic(payload)),
        }
        d
    })
}

/// Like [`blocking_call_from_thread`] for a function that returns a [`Deferred`]: blocks until
/// that Deferred fires, and returns its result.
pub fn blocking_call_deferred_from_thread<T: Send + 'static>(
    handle: &ReactorHandle,
    f: impl FnOnce() -> Deferred<T> + Send + 'static,
) -> Result<T, Failure> {
    if on_reactor_thread() {
        return Err(Failure::new(ThreadPoolError::CalledFromReactorThread));
    }
    let (tx, rx) = mpsc::sync_channel::<Result<T, Failure>>(1);
    let sent = handle.call_from_thread(move || {
        let d = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(d) => d,
            Err(payload) => crate::defer::fail(Failure::from_panic(payload)),
        };
        d.add_both(move |result| {
            let _ = tx.send(result);
            Ok(())
        });
    });
    if !sent {
        return Err(Failure::new(ReactorNotRunning));
    }
    let pool = current_worker_pool();
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(result) => return result,
            // The reactor finished and dropped the call without running it.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Failure::new(ReactorNotRunning))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if pool.as_ref().is_some_and(|p| p.lock().stopped) {
                    return Err(Failure::new(ThreadPoolError::PoolStopped));
                }
            }
        }
    }
}
