//! The event loop under the reactor: one tokio current-thread `LocalRuntime` per reactor,
//! and which loop is this thread's current one.
//!
//! It sits below [`defer`](crate::defer), so that `ensure_deferred` can run async code on the
//! thread's loop without importing the reactor (which itself stands on Deferreds). The reactor
//! owns a loop and makes it current whenever it becomes the thread's current reactor; async
//! code started before any reactor exists gets a loop of its own that the next
//! [`Reactor::new`](crate::Reactor::new) on the thread adopts, so nothing it spawned is lost.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use tokio::runtime::{LocalOptions, LocalRuntime};
use tokio::task::AbortHandle;

/// One event loop: a tokio current-thread runtime that runs `!Send` tasks.
pub(crate) struct Loop {
    rt: RefCell<Option<LocalRuntime>>,
    /// True once a reactor owns it.
    claimed: Cell<bool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Loop>>> = const { RefCell::new(None) };
}

impl Loop {
    /// A new loop, owned by nobody yet.
    ///
    /// # Panics
    /// If the operating system refuses the resources of an event loop (an epoll descriptor).
    fn new() -> Rc<Loop> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build_local(LocalOptions::default())
            .expect("cannot create the reactor's event loop");
        Rc::new(Loop {
            rt: RefCell::new(Some(rt)),
            claimed: Cell::new(false),
        })
    }

    /// A loop for a new reactor: the thread's current loop if no reactor owns it yet (async
    /// code ran before the first reactor was made), else a new one.
    pub(crate) fn claim() -> Rc<Loop> {
        let unclaimed = CURRENT.with_borrow(|c| {
            c.as_ref()
                .filter(|l| !l.claimed.get() && !l.finished())
                .cloned()
        });
        let lp = unclaimed.unwrap_or_else(Loop::new);
        lp.claimed.set(true);
        lp
    }

    /// The thread's current loop (made, unowned, if there is none).
    pub(crate) fn current() -> Rc<Loop> {
        if let Some(lp) = CURRENT.with_borrow(|c| c.clone()) {
            return lp;
        }
        let lp = Loop::new();
        CURRENT.with_borrow_mut(|c| *c = Some(lp.clone()));
        lp
    }

    /// Makes `lp` the thread's current loop (`None`: no loop is current).
    pub(crate) fn set_current(lp: Option<Rc<Loop>>) {
        CURRENT.with_borrow_mut(|c| *c = lp);
    }

    /// Runs `fut` to completion on this loop; `None` when the loop is gone.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> Option<F::Output> {
        let rt = self.rt.borrow();
        rt.as_ref().map(|rt| rt.block_on(fut))
    }

    /// Spawns a task; `None` when the loop is gone.
    pub(crate) fn spawn_task(
        &self,
        fut: impl Future<Output = ()> + 'static,
    ) -> Option<AbortHandle> {
        let rt = self.rt.borrow();
        rt.as_ref().map(|rt| rt.spawn_local(fut).abort_handle())
    }

    /// Enters the loop's context, for tokio calls made outside a task; `None` when the loop
    /// is gone.
    pub(crate) fn with_context<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let rt = self.rt.borrow();
        let rt = rt.as_ref()?;
        let _guard = rt.enter();
        Some(f())
    }

    /// True once the loop is gone.
    pub(crate) fn finished(&self) -> bool {
        self.rt.borrow().is_none()
    }

    /// Drops the loop and every task on it; it cannot run again.
    pub(crate) fn close(&self) {
        let rt = self.rt.borrow_mut().take();
        drop(rt);
    }
}
