//! The reactor: Twisted's event loop, one per thread, on tokio's `LocalRuntime`.
//!
//! The reactor calls your code when something happens — a connection arrives, bytes come in,
//! a timer is due — and your code returns quickly and lets it go on. It is started with
//! [`run`](Reactor::run), which blocks until [`stop`](Reactor::stop); it cannot be restarted.
//! [`crash`](Reactor::crash) stops it at once, without the shutdown triggers. Code runs at
//! startup, at shutdown, or at events of your own ([`fire_system_event`](Reactor::fire_system_event))
//! through [`add_system_event_trigger`](Reactor::add_system_event_trigger).
//! [`reactor()`] reaches the current thread's reactor from anywhere, so seed programs read as
//! in Twisted:
//!
//! ```
//! use torsion::reactor;
//!
//! let r = torsion::Reactor::new(); // or `reactor()` for this thread's default reactor
//! r.call_when_running(|| println!("World!"));
//! r.call_later(0.01, || reactor().stop().unwrap());
//! print!("Hello ");
//! r.run().unwrap();
//! ```
//!
//! Underneath is a current-thread tokio runtime (`LocalRuntime`), so any async Rust code —
//! tokio-based libraries included — runs on the reactor ([`Reactor::spawn`],
//! [`ensure_deferred`]) and protocol code can `await` it. Protocols are `!Send`: share state
//! with `Rc` and `RefCell`. Other threads talk to the reactor through a [`ReactorHandle`].

mod clock;
mod resolver;
mod triggers;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use tokio::sync::mpsc;

use crate::time::TimerCore;
pub use crate::time::{Delay, DelayedCall, ReactorTime};
pub use clock::SharedClock;
pub use resolver::{HostnameResolver, SystemResolver};
pub use triggers::{CallOutcome, Event, Phase, TriggerId};

pub use crate::defer::ensure_deferred;
use crate::defer::{succeed, Deferred, DeferredList};
use crate::error::{ReactorAlreadyRunning, ReactorNotRestartable, ReactorNotRunning};
use crate::runtime::Loop;
use crate::util::Slab;
use crate::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    NotStarted,
    Running,
    Stopping,
    Stopped,
}

type RemoteJob = Box<dyn FnOnce() + Send>;

/// What runs connections for the reactor (the epoll poller): the reactor asks it to close them
/// all when it shuts down, and how many are open. It lives on a floor above the reactor and
/// registers itself with [`Reactor::set_driver`].
pub(crate) trait Driver {
    /// Closes every connection, for shutdown.
    fn disconnect_all(&self);
    /// How many connections are open.
    fn connections(&self) -> usize;
    /// The driver itself, to reach its concrete type.
    fn as_any(self: Rc<Self>) -> Rc<dyn std::any::Any>;
}

/// Something the reactor closes when it shuts down: a listening port or a connection.
pub(crate) trait Disconnect {
    fn disconnect_for_shutdown(&self);
}

struct Inner {
    lp: Rc<Loop>,
    state: Cell<RunState>,
    timers: Rc<TimerCore>,
    triggers: RefCell<triggers::Triggers>,
    exit: Cell<bool>,
    exit_waker: RefCell<Option<Waker>>,
    remote_tx: mpsc::UnboundedSender<RemoteJob>,
    remote_rx: RefCell<Option<mpsc::UnboundedReceiver<RemoteJob>>>,
    live: RefCell<Slab<Weak<dyn Disconnect>>>,
    install_signal_handlers: Cell<bool>,
    /// The driver accepted connections run in (the epoll poller), once one has been
    /// accepted; its own task owns it.
    driver: RefCell<Option<Weak<dyn Driver>>>,
    /// What host names are resolved with (Twisted's `reactor.nameResolver`).
    resolver: RefCell<Rc<dyn HostnameResolver>>,
}

/// A reactor: an event loop on the current thread (Twisted's reactor).
///
/// Cheap to clone: every clone is the same reactor. Made with [`Reactor::new`], or reached with
/// [`reactor()`]. Not `Send`; use [`Reactor::handle`] to reach it from other threads.
#[derive(Clone)]
pub struct Reactor {
    inner: Rc<Inner>,
}

thread_local! {
    static CURRENT: RefCell<Option<Reactor>> = const { RefCell::new(None) };
}

/// Logs the failures of the Deferreds that `Before` triggers of `event` returned.
fn log_before_failures(event: Event, results: Vec<Result<(), Failure>>) {
    for failure in results.into_iter().filter_map(Result::err) {
        crate::log::err(&failure, &format!("a 'before {event:?}' trigger failed:"));
    }
}

/// The current thread's reactor: the one running on this thread, or else the one most
/// recently made on it with [`Reactor::new`], or else a new one. Seed programs use only this
/// one; a test that makes its own reactor can still call code that uses `reactor()`.
pub fn reactor() -> Reactor {
    if let Some(r) = CURRENT.with_borrow(|c| c.clone()) {
        return r;
    }
    Reactor::new()
}

/// Makes `r` the thread's current reactor, and its event loop the current loop.
fn set_current(r: Option<Reactor>) {
    Loop::set_current(r.as_ref().map(|r| r.inner.lp.clone()));
    CURRENT.with_borrow_mut(|c| *c = r);
}

impl Default for Reactor {
    fn default() -> Self {
        Reactor::new()
    }
}

impl Reactor {
    /// A new reactor for this thread, not yet running. It becomes the thread's current
    /// reactor (what [`reactor()`] returns).
    ///
    /// # Panics
    /// If the operating system refuses the resources of an event loop (an epoll descriptor).
    pub fn new() -> Reactor {
        let r = Reactor::detached();
        set_current(Some(r.clone()));
        r
    }

    fn detached() -> Reactor {
        crate::failure::remember_panic_locations();
        let (tx, rx) = mpsc::unbounded_channel();
        Reactor {
            inner: Rc::new(Inner {
                lp: Loop::claim(),
                state: Cell::new(RunState::NotStarted),
                timers: TimerCore::new_real(),
                triggers: RefCell::new(triggers::Triggers::default()),
                exit: Cell::new(false),
                exit_waker: RefCell::new(None),
                remote_tx: tx,
                remote_rx: RefCell::new(Some(rx)),
                live: RefCell::new(Slab::default()),
                install_signal_handlers: Cell::new(true),
                driver: RefCell::new(None),
                resolver: RefCell::new(Rc::new(SystemResolver)),
            }),
        }
    }

    /// Whether `run` makes SIGINT and SIGTERM stop the reactor (default: yes, as Twisted's
    /// `installSignalHandlers`). A second signal during shutdown stops at once.
    pub fn set_install_signal_handlers(&self, install: bool) {
        self.inner.install_signal_handlers.set(install);
    }

    /// True while the reactor is running (including while it shuts down).
    pub fn running(&self) -> bool {
        matches!(
            self.inner.state.get(),
            RunState::Running | RunState::Stopping
        )
    }

    /// Runs the event loop until [`stop`](Self::stop) is called and shutdown completes.
    ///
    /// Fires the startup event first (`call_when_running` calls run then). Errors: the reactor
    /// is already running ([`ReactorAlreadyRunning`]) or has already stopped
    /// ([`ReactorNotRestartable`]).
    pub fn run(&self) -> Result<(), Failure> {
        match self.inner.state.get() {
            RunState::NotStarted => {}
            RunState::Running | RunState::Stopping => {
                return Err(Failure::new(ReactorAlreadyRunning))
            }
            RunState::Stopped => return Err(Failure::new(ReactorNotRestartable)),
        }
        self.inner.state.set(RunState::Running);
        let previous = CURRENT.with_borrow(|c| c.clone());
        set_current(Some(self.clone()));
        self.inner
            .lp
            .block_on(self.main_loop())
            .expect("a reactor that never ran has its event loop");
        // A finished reactor is nobody's current reactor any more.
        set_current(previous.filter(|p| !Rc::ptr_eq(&p.inner, &self.inner)));
        self.inner.state.set(RunState::Stopped);
        self.finish();
        Ok(())
    }

    async fn main_loop(&self) {
        // Signal handlers go in before anything runs, so a signal during startup already
        // stops the reactor instead of killing the process.
        if self.inner.install_signal_handlers.get() {
            self.spawn_task(watch_signals(install_signal_handlers()));
        }
        // Startup runs as its own task, before the first timers and I/O (tasks run in the
        // order spawned); stop() while a "before startup" Deferred is pending still ends
        // run(), as Twisted's does.
        let r = self.clone();
        self.spawn_task(async move { r.fire_event(Event::Startup).await });
        self.spawn_task(timer_driver(self.inner.timers.clone()));
        if let Some(rx) = self.inner.remote_rx.borrow_mut().take() {
            self.spawn_task(remote_calls(rx));
        }
        poll_fn(|cx| {
            if self.inner.exit.get() {
                Poll::Ready(())
            } else {
                *self.inner.exit_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    /// After `run`: drops the event loop, its tasks and pending calls. A reactor cannot be
    /// restarted, so nothing is lost, and this breaks the reference cycles between the reactor
    /// and the tasks that hold it.
    fn finish(&self) {
        self.inner.timers.clear();
        self.inner.triggers.borrow_mut().clear();
        self.inner.lp.close();
        let live = self.inner.live.borrow_mut().drain();
        drop(live);
    }

    /// Stops the reactor: fires the shutdown event (before, during, after; "before" triggers
    /// that return Deferreds are waited for), closes ports and connections, and makes `run`
    /// return. Fails with [`ReactorNotRunning`] if the reactor is not running or already
    /// stopping.
    pub fn stop(&self) -> Result<(), Failure> {
        if self.inner.state.get() != RunState::Running {
            return Err(Failure::new(ReactorNotRunning));
        }
        self.inner.state.set(RunState::Stopping);
        let r = self.clone();
        self.spawn_task(async move { r.shutdown().await });
        Ok(())
    }

    /// Stops at once, without waiting for "before shutdown" triggers (a second signal).
    pub(crate) fn stop_now(&self) {
        self.inner.state.set(RunState::Stopping);
        self.disconnect_all();
        self.set_exit();
    }

    async fn shutdown(&self) {
        self.fire_event(Event::Shutdown).await;
        self.set_exit();
    }

    fn set_exit(&self) {
        self.inner.exit.set(true);
        if let Some(w) = self.inner.exit_waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn fire_event(&self, event: Event) {
        let waits = self.run_triggers(Phase::Before, event);
        if !waits.is_empty() {
            // Failures are reported by the triggers' own Deferreds; the event goes on.
            if let Ok(results) = DeferredList::builder(waits)
                .consume_errors(true)
                .build()
                .await
            {
                log_before_failures(event, results);
            }
        }
        self.run_triggers(Phase::During, event);
        if event == Event::Shutdown {
            self.disconnect_all();
            // Let the connection tasks woken by disconnect_all deliver connection_lost.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        }
        self.run_triggers(Phase::After, event);
    }

    /// Fires a custom system event (Twisted's `reactor.fireSystemEvent(name)`): runs the
    /// triggers added for [`Event::Custom(name)`](Event::Custom) in the `Before` phase, waits
    /// for the Deferreds they returned, then runs the `During` and `After` triggers. It all
    /// happens now when no `Before` trigger returned an unfired Deferred; the Deferred returned
    /// fires once the `After` triggers ran (Twisted returns nothing). Triggers run once: firing
    /// the event again runs only triggers added since. The reactor need not be running.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use torsion::{Reactor, reactor::{Event, Phase}};
    ///
    /// let r = Reactor::new();
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// for phase in [Phase::After, Phase::During, Phase::Before] {
    ///     let s = seen.clone();
    ///     r.add_system_event_trigger(phase, Event::Custom("persist"), move || {
    ///         s.borrow_mut().push(phase)
    ///     });
    /// }
    /// let done = r.fire_system_event("persist");
    /// assert!(done.called());
    /// assert_eq!(*seen.borrow(), [Phase::Before, Phase::During, Phase::After]);
    /// ```
    #[doc(alias = "fireSystemEvent")]
    pub fn fire_system_event(&self, name: &'static str) -> Deferred<()> {
        let event = Event::Custom(name);
        let waits = self.run_triggers(Phase::Before, event);
        let r = self.clone();
        let rest = move || {
            r.run_triggers(Phase::During, event);
            r.run_triggers(Phase::After, event);
        };
        if waits.is_empty() {
            rest();
            return succeed(());
        }
        DeferredList::builder(waits)
            .consume_errors(true)
            .build()
            .add_callback(move |results| {
                log_before_failures(event, results);
                rest();
            })
    }

    /// Stops the reactor at once (Twisted's `reactor.crash()`): `run` returns without firing
    /// the shutdown event, so no shutdown trigger runs and connections are not told they are
    /// lost (they are dropped with the event loop). Unlike Twisted's, a crashed reactor
    /// cannot run again. Does nothing if the reactor is not running.
    pub fn crash(&self) {
        if self.running() {
            self.inner.state.set(RunState::Stopping);
            self.set_exit();
        }
    }

    fn run_triggers(&self, phase: Phase, event: Event) -> Vec<Deferred<()>> {
        let mut waits = Vec::new();
        loop {
            // Not a `while let`: the borrow must end before the trigger runs.
            let next = self.inner.triggers.borrow_mut().next(phase, event);
            let Some(f) = next else { break };
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Some(d)) => waits.push(d),
                Ok(None) => {}
                Err(payload) => crate::log::err(
                    &Failure::from_panic(payload),
                    &format!("a '{phase:?} {event:?}' trigger panicked:"),
                ),
            }
        }
        waits
    }

    fn disconnect_all(&self) {
        let live: Vec<_> = self
            .inner
            .live
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for thing in live {
            thing.disconnect_for_shutdown();
        }
        if let Some(driver) = self.driver() {
            driver.disconnect_all();
        }
    }

    pub(crate) fn register_live(&self, thing: Weak<dyn Disconnect>) -> usize {
        self.inner.live.borrow_mut().insert(thing)
    }

    pub(crate) fn unregister_live(&self, id: usize) {
        self.inner.live.borrow_mut().remove(id);
    }

    /// How many ports and connections are open on this reactor.
    pub fn open_handles(&self) -> usize {
        let polled = self.driver().map_or(0, |d| d.connections());
        self.inner.live.borrow().len() + polled
    }

    /// Adds a function to run at a phase of a system event (Twisted's
    /// `addSystemEventTrigger`). It may return `()` or a `Deferred`; in the `Before` phase, the
    /// event waits for returned Deferreds (graceful draining stands on this).
    ///
    /// ```
    /// use torsion::{Reactor, reactor::{Phase, Event}, defer::Deferred};
    /// let r = Reactor::new();
    /// r.add_system_event_trigger(Phase::Before, Event::Shutdown, || {
    ///     let done = Deferred::new();
    ///     let fire = done.trigger();
    ///     torsion::reactor().call_later(0.01, move || fire.callback(()));
    ///     done // shutdown waits for this
    /// });
    /// r.call_when_running(|| torsion::reactor().stop().unwrap());
    /// r.run().unwrap();
    /// ```
    pub fn add_system_event_trigger<R: CallOutcome>(
        &self,
        phase: Phase,
        event: Event,
        f: impl FnOnce() -> R + 'static,
    ) -> TriggerId {
        self.inner
            .triggers
            .borrow_mut()
            .add(phase, event, Box::new(move || f().into_wait()))
    }

    /// Removes a trigger that has not run yet. Returns false if it had already run or been
    /// removed.
    pub fn remove_system_event_trigger(&self, id: TriggerId) -> bool {
        self.inner.triggers.borrow_mut().remove(id)
    }

    /// Calls `f` once the reactor is running: at once if it already is, else when `run` starts
    /// (Twisted's `callWhenRunning`).
    pub fn call_when_running<R: CallOutcome>(&self, f: impl FnOnce() -> R + 'static) {
        let started = self.inner.triggers.borrow().started();
        let state = self.inner.state.get();
        if state == RunState::Stopping || (state == RunState::Running && started) {
            drop(f().into_wait());
        } else {
            self.add_system_event_trigger(Phase::After, Event::Startup, f);
        }
    }

    /// Calls `f` in `seconds` seconds (Twisted's `callLater`; a [`Delay`]: seconds as `f64`
    /// or a `Duration`). Returns the [`DelayedCall`] to cancel or move it. `f` may return
    /// `()`, or a `Result` or `Deferred` whose failure is logged, so
    /// `r.call_later(5.0, || reactor().stop())` reads as in Twisted.
    ///
    /// # Panics
    /// If `seconds` is negative or NaN, as Twisted's `callLater` raises `AssertionError`
    /// (and `Duration::from_secs_f64` panics): a delay computed as `deadline - now` should
    /// be clamped with `.max(0.0)`. See docs/design.md, "Differences from Twisted".
    pub fn call_later<R: CallOutcome>(
        &self,
        seconds: impl Into<Delay>,
        f: impl FnOnce() -> R + 'static,
    ) -> DelayedCall {
        self.inner.timers.schedule(
            seconds.into().for_call_later(),
            Box::new(move || drop(f().into_wait())),
        )
    }

    /// The current time in seconds since the Unix epoch, advancing monotonically while the
    /// reactor lives (Twisted's `reactor.seconds()`).
    pub fn seconds(&self) -> f64 {
        self.inner.timers.seconds()
    }

    /// The calls still pending (Twisted's `getDelayedCalls`), as their due times.
    pub fn pending_call_times(&self) -> Vec<f64> {
        self.inner.timers.pending_times()
    }

    /// The resolver connections to host names use (Twisted's `reactor.nameResolver`):
    /// [`SystemResolver`] unless another was [installed](Self::install_name_resolver).
    pub fn name_resolver(&self) -> Rc<dyn HostnameResolver> {
        self.inner.resolver.borrow().clone()
    }

    /// Makes `resolver` the one every later connection to a host name on this reactor uses
    /// — [`connect_tcp`](Self::connect_tcp), TLS clients,
    /// [`HostnameEndpoint`](crate::endpoints::HostnameEndpoint), the web client — and
    /// returns the one it replaces (Twisted's `installNameResolver`). See
    /// [`HostnameResolver`] for an example.
    pub fn install_name_resolver(
        &self,
        resolver: impl HostnameResolver + 'static,
    ) -> Rc<dyn HostnameResolver> {
        self.inner.resolver.replace(Rc::new(resolver))
    }

    /// The first address of `name`, from the [installed resolver](Self::name_resolver)
    /// (Twisted's `reactor.resolve`; an IP address is answered as it is). Fails with a
    /// [`DnsLookupError`](crate::error::DnsLookupError) when the name has no address.
    pub fn resolve(&self, name: &str) -> Deferred<IpAddr> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return succeed(ip);
        }
        let owned = name.to_owned();
        self.name_resolver()
            .resolve_host_name(name, 0)
            .add_callback_result(move |found| resolver::first_address(&owned, found))
    }

    /// A `Send + Sync` handle for other threads.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle {
            tx: self.inner.remote_tx.clone(),
        }
    }

    /// Runs a future on the reactor and returns a Deferred of its output. A panic in the
    /// future becomes a [`Failure`]; cancelling the Deferred cancels the Deferreds the future
    /// awaits, as for [`ensure_deferred`] (a future awaiting no Deferred is dropped). Like tokio's
    /// `spawn`, the future first runs on the next turn of the loop; [`ensure_deferred`] runs
    /// it at once, up to its first wait.
    pub fn spawn<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> Deferred<T> {
        crate::defer::spawn_on(&self.inner.lp, fut)
    }

    /// True once `run` has returned and the event loop is gone.
    pub(crate) fn finished(&self) -> bool {
        self.inner.lp.finished()
    }

    /// Spawns a task; `None` when the reactor has finished and its event loop is gone.
    pub(crate) fn spawn_task(
        &self,
        fut: impl Future<Output = ()> + 'static,
    ) -> Option<tokio::task::AbortHandle> {
        self.inner.lp.spawn_task(fut)
    }

    /// The driver this reactor's accepted connections run in, if one has started.
    pub(crate) fn driver(&self) -> Option<Rc<dyn Driver>> {
        self.inner.driver.borrow().as_ref().and_then(Weak::upgrade)
    }

    /// Records the driver that accepted connections run in from now on.
    pub(crate) fn set_driver(&self, driver: Weak<dyn Driver>) {
        *self.inner.driver.borrow_mut() = Some(driver);
    }

    /// Enters the event loop's context, for tokio calls made outside `run`.
    pub(crate) fn with_context<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        self.inner.lp.with_context(f)
    }
}

impl ReactorTime for Reactor {
    fn seconds(&self) -> f64 {
        Reactor::seconds(self)
    }

    fn call_later_boxed(&self, seconds: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.inner.timers.schedule(seconds, f)
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("state", &self.inner.state.get())
            .field("pending_calls", &self.inner.timers.pending())
            .field("open_handles", &self.open_handles())
            .finish()
    }
}

/// A handle to a reactor that other threads can hold (`Send + Sync`, cheap to clone).
#[derive(Clone, Debug)]
pub struct ReactorHandle {
    tx: mpsc::UnboundedSender<RemoteJob>,
}

impl ReactorHandle {
    /// Runs `f` on the reactor's thread, soon (Twisted's `callFromThread`). Calls made before
    /// the reactor runs wait for it; calls made after it finished are dropped (and `false` is
    /// returned).
    pub fn call_from_thread(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.tx.send(Box::new(f)).is_ok()
    }

    /// Asks the reactor to stop, from any thread.
    pub fn stop(&self) -> bool {
        self.call_from_thread(|| {
            let _ = reactor().stop();
        })
    }
}

/// Drives the reactor's timers: one tokio sleep, armed for the earliest deadline.
async fn timer_driver(core: Rc<TimerCore>) {
    let mut sleep = Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600)));
    poll_fn(move |cx| loop {
        let now = core.now_ns();
        core.run_due(now, true);
        match core.next_deadline() {
            None => {
                core.set_driver(cx.waker(), u64::MAX);
                return Poll::Pending;
            }
            Some(deadline) if deadline <= core.now_ns() => {
                // More is due already (calls scheduled by the calls that just ran): let I/O
                // run first, then come back.
                core.set_driver(cx.waker(), 0);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Some(deadline) => {
                let at = core.instant_of(deadline).expect("real time source");
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                core.set_driver(cx.waker(), deadline);
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
    })
    .await
}

/// Runs the calls other threads sent with `call_from_thread`.
async fn remote_calls(mut rx: mpsc::UnboundedReceiver<RemoteJob>) {
    while let Some(job) = rx.recv().await {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
            crate::log::err(
                &Failure::from_panic(payload),
                "Unhandled error in call_from_thread:",
            );
        }
    }
}

type SignalStreams = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

/// Installs the SIGINT and SIGTERM handlers (must run inside the event loop's context).
fn install_signal_handlers() -> Option<SignalStreams> {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(int), Ok(term)) => Some((int, term)),
        _ => {
            crate::log::error_event(format_args!("cannot install the SIGINT/SIGTERM handlers"));
            None
        }
    }
}

/// SIGINT and SIGTERM stop the reactor; a second one stops it at once.
async fn watch_signals(streams: Option<SignalStreams>) {
    let Some((mut int, mut term)) = streams else {
        return;
    };
    loop {
        let name = poll_fn(|cx| {
            if int.poll_recv(cx).is_ready() {
                Poll::Ready("SIGINT")
            } else if term.poll_recv(cx).is_ready() {
                Poll::Ready("SIGTERM")
            } else {
                Poll::Pending
            }
        })
        .await;
        let r = reactor();
        if r.stop().is_ok() {
            tracing::info!(target: "torsion", "Received {name}, shutting down.");
        } else {
            tracing::warn!(target: "torsion", "Received {name} again, stopping now.");
            r.stop_now();
        }
    }
}
