//! `cooperate`: run long jobs as iterators, a slice at a time, without blocking the reactor
//! (Twisted's `task.cooperate` and `Cooperator`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::defer::{Deferred, Trigger};
use crate::reactor::{reactor, CallOutcome, DelayedCall, ReactorTime};
use crate::Failure;

/// How long one tick of the cooperator runs tasks before letting the reactor go on.
const TIME_SLICE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    Running,
    Paused,
    Waiting,
    Done,
}

/// One step of a task: `None` when the iterator is exhausted, else what to wait for.
type Step = Box<dyn FnMut() -> Option<Option<Deferred<()>>>>;

struct TaskInner {
    step: RefCell<Option<Step>>,
    state: Cell<TaskState>,
    pauses: Cell<u32>,
    done: RefCell<Vec<Trigger<()>>>,
    outcome: RefCell<Option<Result<(), String>>>,
}

/// A job running under a [`Cooperator`] (Twisted's `CooperativeTask`).
#[derive(Clone)]
pub struct CooperativeTask {
    inner: Rc<TaskInner>,
    cooperator: Cooperator,
}

impl CooperativeTask {
    /// A Deferred that fires when the iterator is exhausted, or fails if a step failed or the
    /// task was stopped ([`CancelledError`](crate::error::CancelledError)).
    pub fn when_done(&self) -> Deferred<()> {
        let d = Deferred::new();
        match &*self.inner.outcome.borrow() {
            None => self.inner.done.borrow_mut().push(d.trigger()),
            Some(Ok(())) => d.callback(()),
            Some(Err(why)) => d.errback(std::io::Error::other(why.clone())),
        }
        d
    }

    /// Pauses the task; it runs again after as many `resume`s.
    pub fn pause(&self) {
        self.inner.pauses.set(self.inner.pauses.get() + 1);
        if self.inner.state.get() == TaskState::Running {
            self.inner.state.set(TaskState::Paused);
        }
    }

    /// Undoes one `pause`.
    ///
    /// # Panics
    /// If the task is not paused.
    pub fn resume(&self) {
        let p = self.inner.pauses.get();
        assert!(p > 0, "resume() of a task that is not paused");
        self.inner.pauses.set(p - 1);
        if p == 1 && self.inner.state.get() == TaskState::Paused {
            self.inner.state.set(TaskState::Running);
            self.cooperator.wake();
        }
    }

    /// Stops the task: its iterator is dropped and `when_done` fails with
    /// [`CancelledError`](crate::error::CancelledError).
    pub fn stop(&self) {
        if self.inner.state.get() == TaskState::Done {
            return;
        }
        self.finish(Err(Failure::new(crate::error::CancelledError)));
    }

    /// True once the task has finished, failed or been stopped.
    pub fn is_done(&self) -> bool {
        self.inner.state.get() == TaskState::Done
    }

    fn finish(&self, outcome: Result<(), Failure>) {
        self.inner.state.set(TaskState::Done);
        self.inner.step.borrow_mut().take();
        *self.inner.outcome.borrow_mut() =
            Some(outcome.as_ref().map(|_| ()).map_err(|f| f.to_string()));
        let waiters = std::mem::take(&mut *self.inner.done.borrow_mut());
        let mut outcome = Some(outcome);
        for t in waiters {
            let o = match outcome.take() {
                Some(o) => o,
                None => match &*self.inner.outcome.borrow() {
                    Some(Err(why)) => Err(Failure::new(std::io::Error::other(why.clone()))),
                    _ => Ok(()),
                },
            };
            let _ = t.fire(o);
        }
    }

    /// Runs one step. Returns false when the task cannot run now.
    fn step(&self) -> bool {
        if self.inner.state.get() != TaskState::Running {
            return false;
        }
        let mut step = self
            .inner
            .step
            .borrow_mut()
            .take()
            .expect("running task has a step");
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut step));
        if self.inner.state.get() != TaskState::Done {
            *self.inner.step.borrow_mut() = Some(step);
        }
        match out {
            Err(payload) => {
                self.finish(Err(Failure::from_panic(payload)));
                false
            }
            Ok(None) => {
                if self.inner.state.get() != TaskState::Done {
                    self.finish(Ok(()));
                }
                false
            }
            Ok(Some(None)) => true,
            Ok(Some(Some(d))) => {
                self.inner.state.set(TaskState::Waiting);
                let me = self.clone();
                d.on_result(move |out| match out {
                    Err(f) => me.finish(Err(f)),
                    Ok(()) if me.inner.state.get() == TaskState::Waiting => {
                        let paused = me.inner.pauses.get() > 0;
                        me.inner.state.set(if paused {
                            TaskState::Paused
                        } else {
                            TaskState::Running
                        });
                        me.cooperator.wake();
                    }
                    Ok(()) => {}
                });
                false
            }
        }
    }
}

impl fmt::Debug for CooperativeTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CooperativeTask")
            .field("state", &self.inner.state.get())
            .finish()
    }
}

struct CoopInner {
    tasks: RefCell<Vec<CooperativeTask>>,
    tick: RefCell<Option<DelayedCall>>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
}

/// Runs many iterator-driven jobs round-robin, a time slice per reactor turn (Twisted's
/// `Cooperator`). Each item an iterator yields is `()` (keep going) or a `Deferred` (wait for
/// it before the next step).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use torsion::{task::Cooperator, testing::Clock};
///
/// let clock = Clock::new();
/// let coop = Cooperator::with_clock(clock.clone());
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let (a, b) = (log.clone(), log.clone());
/// let t1 = coop.cooperate((0..3).map(move |i| a.borrow_mut().push(format!("a{i}"))));
/// coop.cooperate((0..2).map(move |i| b.borrow_mut().push(format!("b{i}"))));
/// let done = t1.when_done();
/// clock.advance(0.0);
/// assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2"]);
/// assert!(done.result().unwrap().is_ok());
/// ```
#[derive(Clone)]
pub struct Cooperator {
    inner: Rc<CoopInner>,
}

impl Default for Cooperator {
    fn default() -> Self {
        Cooperator::new()
    }
}

impl Cooperator {
    /// A cooperator on the current reactor.
    pub fn new() -> Cooperator {
        Cooperator {
            inner: Rc::new(CoopInner {
                tasks: RefCell::default(),
                tick: RefCell::default(),
                clock: RefCell::default(),
            }),
        }
    }

    /// A cooperator on a given clock (for tests).
    pub fn with_clock(clock: impl ReactorTime + 'static) -> Cooperator {
        let c = Cooperator::new();
        *c.inner.clock.borrow_mut() = Some(Rc::new(clock));
        c
    }

    /// Starts running `iterator` (Twisted's `Cooperator.cooperate`).
    pub fn cooperate<I>(&self, iterator: I) -> CooperativeTask
    where
        I: IntoIterator + 'static,
        I::Item: CallOutcome,
    {
        let mut it = iterator.into_iter();
        let task = CooperativeTask {
            inner: Rc::new(TaskInner {
                step: RefCell::new(Some(Box::new(move || {
                    it.next().map(CallOutcome::into_wait)
                }))),
                state: Cell::new(TaskState::Running),
                pauses: Cell::new(0),
                done: RefCell::default(),
                outcome: RefCell::default(),
            }),
            cooperator: self.clone(),
        };
        self.inner.tasks.borrow_mut().push(task.clone());
        self.wake();
        task
    }

    /// Schedules a tick if none is pending.
    fn wake(&self) {
        if self.inner.tick.borrow().is_some() {
            return;
        }
        let clock = self
            .inner
            .clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(reactor()))
            .clone();
        let me = self.clone();
        let call = clock.call_later_boxed(0.0, Box::new(move || me.tick()));
        *self.inner.tick.borrow_mut() = Some(call);
    }

    /// Runs the tasks round-robin for one time slice.
    fn tick(&self) {
        self.inner.tick.borrow_mut().take();
        let started = Instant::now();
        loop {
            let tasks: Vec<CooperativeTask> = self.inner.tasks.borrow().clone();
            let mut progressed = false;
            for t in &tasks {
                progressed |= t.step();
            }
            self.inner.tasks.borrow_mut().retain(|t| !t.is_done());
            if !progressed {
                return; // everything is paused, waiting or done; wake() restarts us
            }
            if started.elapsed() >= TIME_SLICE {
                self.wake();
                return;
            }
        }
    }
}

thread_local! {
    static GLOBAL: Cooperator = Cooperator::new();
}

/// Runs `iterator` on this thread's global cooperator (Twisted's `task.cooperate`).
pub fn cooperate<I>(iterator: I) -> CooperativeTask
where
    I: IntoIterator + 'static,
    I::Item: CallOutcome,
{
    GLOBAL.with(|c| c.cooperate(iterator))
}
