//! [`ClientService`]: one connection kept up through an endpoint, with backoff (Twisted's
//! `twisted.application.internet.ClientService` and `backoffPolicy`).

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::rc::Rc;

use super::{Service, ServiceState};
use crate::defer::{fail, succeed, Deferred, Trigger};
use crate::endpoints::{ClientEndpoint, ConnectedProtocol, NoProtocol};
use crate::error::{CancelledError, ConnectError, ConnectionRefusedError, TimeoutError};
use crate::protocol::Factory;
use crate::reactor::{CallOutcome, DelayedCall, ReactorTime};
use crate::Failure;

/// How long to wait before the next attempt, given how many attempts in a row have failed.
type RetryPolicy = Rc<dyn Fn(u32) -> f64>;

/// An exponential backoff (Twisted's `backoffPolicy`): attempt `n` waits
/// `min(initial_delay * factor^n, max_delay) + jitter()` seconds.
///
/// ```
/// use torsion::application::backoff_policy;
///
/// let policy = backoff_policy(1.0, 60.0, 1.5, || 0.0);
/// assert_eq!(policy(1), 1.5);
/// assert_eq!(policy(2), 2.25);
/// assert_eq!(policy(100), 60.0);
/// ```
pub fn backoff_policy(
    initial_delay: f64,
    max_delay: f64,
    factor: f64,
    jitter: impl Fn() -> f64 + 'static,
) -> impl Fn(u32) -> f64 + 'static {
    move |attempt: u32| {
        let delay = initial_delay * factor.powi(attempt.min(100) as i32);
        let delay = if delay.is_finite() {
            delay.min(max_delay)
        } else {
            max_delay
        };
        delay + jitter()
    }
}

/// Twisted's default policy, `backoffPolicy()`: an initial delay of 1 s, a factor of 1.5, at
/// most 60 s, plus a random jitter between 0 and 1 s.
pub fn default_backoff_policy() -> impl Fn(u32) -> f64 + 'static {
    backoff_policy(1.0, 60.0, 1.5, uniform_random)
}

/// A pseudo-random number in [0, 1) (Python's `random.random`, which Twisted's jitter is):
/// enough for spreading reconnections, with no dependency.
fn uniform_random() -> f64 {
    // Each RandomState has fresh random keys; hashing the time with them gives a new value.
    let mut h = RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.write_u64(nanos);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A copy of an attempt's failure for a second `when_connected` waiter (a [`Failure`] is not
/// `Clone`): the same error for the connection errors, else a [`ConnectError`] with its
/// message.
fn copy_failure(f: &Failure, endpoint: &ClientEndpoint) -> Failure {
    if let Some(e) = f.downcast_ref::<ConnectionRefusedError>() {
        return Failure::new(e.clone());
    }
    if f.check::<TimeoutError>() {
        return Failure::new(TimeoutError);
    }
    if f.check::<CancelledError>() {
        return Failure::new(CancelledError);
    }
    if f.check::<NoProtocol>() {
        return Failure::new(NoProtocol);
    }
    let kind = f
        .error()
        .source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .map_or(io::ErrorKind::Other, io::Error::kind);
    Failure::new(ConnectError::new(
        endpoint.to_string(),
        io::Error::new(kind, f.error_message()),
    ))
}

/// What a [`ClientService`] is doing (the states of Twisted's machine).
enum State<P> {
    /// Never started.
    Init,
    /// Stopped.
    Stopped,
    /// An attempt is in progress; cancelling the Deferred stops it.
    Connecting(Option<Deferred<()>>),
    /// Waiting to retry.
    Waiting(DelayedCall),
    /// Connected.
    Connected(ConnectedProtocol<P>),
    /// Stopping: waiting for the connection to close or the attempt to end.
    Disconnecting,
    /// Started again while stopping: connects once the old connection has closed.
    Restarting,
}

type Waiters<P> = Vec<(Trigger<ConnectedProtocol<P>>, Option<u32>)>;

/// Twisted's `prepareConnection`: readies (or rejects) each new connection.
type Prepare<P> = Rc<dyn Fn(&ConnectedProtocol<P>) -> Deferred<()>>;

struct Inner<F: Factory> {
    endpoint: ClientEndpoint,
    factory: Rc<F>,
    policy: RefCell<RetryPolicy>,
    prepare: RefCell<Option<Prepare<F::Protocol>>>,
    clock: RefCell<Rc<dyn ReactorTime>>,
    state: RefCell<State<F::Protocol>>,
    awaiting: RefCell<Waiters<F::Protocol>>,
    stop_waiters: RefCell<Vec<Trigger<()>>>,
    failed_attempts: Cell<u32>,
}

impl<F: Factory> Inner<F> {
    fn set(&self, state: State<F::Protocol>) -> State<F::Protocol> {
        std::mem::replace(&mut *self.state.borrow_mut(), state)
    }

    /// Starts an attempt (Twisted's `attemptConnection`).
    fn attempt(self: &Rc<Self>) {
        self.set(State::Connecting(None));
        let lost = Rc::downgrade(self);
        let on_lost: Rc<dyn Fn()> = Rc::new(move || {
            if let Some(inner) = lost.upgrade() {
                inner.disconnected();
            }
        });
        let weak = Rc::downgrade(self);
        let connecting = self
            .endpoint
            .connect_notifying(self.factory.clone(), Some(on_lost));
        let prepare = self.prepare.borrow().clone();
        let ready = match prepare {
            None => connecting,
            Some(prepare) => connecting.add_callback_deferred(move |conn| {
                let kept = conn.clone();
                prepare(&conn).add_both(move |prepared| match prepared {
                    Ok(()) => Ok(kept),
                    Err(f) => {
                        // Rejected: it counts as a failed attempt, and is closed.
                        kept.transport().abort_connection();
                        Err(f)
                    }
                })
            }),
        };
        let d = ready.add_both(move |outcome| {
            if let Some(inner) = weak.upgrade() {
                match outcome {
                    Ok(conn) => inner.connection_made(conn),
                    Err(f) => inner.connection_failed(f),
                }
            }
            Ok::<(), Failure>(())
        });
        let mut state = self.state.borrow_mut();
        if let State::Connecting(slot @ None) = &mut *state {
            *slot = Some(d);
        }
    }

    /// Schedules the next attempt (Twisted's `waitForRetry`).
    fn wait_for_retry(self: &Rc<Self>) {
        let attempts = self.failed_attempts.get().saturating_add(1);
        self.failed_attempts.set(attempts);
        let delay = (self.policy.borrow())(attempts);
        let delay = if delay.is_finite() {
            delay.max(0.0)
        } else {
            0.0
        };
        tracing::info!(
            target: "torsion",
            "Scheduling retry {attempts} to connect {} in {delay} seconds.",
            self.endpoint
        );
        let weak = Rc::downgrade(self);
        let call = self.clock.borrow().call_later_boxed(
            delay,
            Box::new(move || {
                if let Some(inner) = weak.upgrade() {
                    if matches!(*inner.state.borrow(), State::Waiting(_)) {
                        inner.attempt();
                    }
                }
            }),
        );
        self.set(State::Waiting(call));
    }

    fn connection_made(self: &Rc<Self>, conn: ConnectedProtocol<F::Protocol>) {
        let previous = self.set(State::Connected(conn.clone()));
        match previous {
            State::Connecting(_) => {
                self.failed_attempts.set(0);
                let waiting = std::mem::take(&mut *self.awaiting.borrow_mut());
                for (w, _) in waiting {
                    let _ = w.try_callback(conn.clone());
                }
            }
            other => {
                // Not wanted any more (stopping): close it; its end finishes the stop.
                self.set(other);
                conn.transport().lose_connection();
            }
        }
    }

    fn connection_failed(self: &Rc<Self>, failure: Failure) {
        let previous = self.set(State::Stopped);
        match previous {
            State::Connecting(_) | State::Connected(_) => {
                let ready: Vec<_> = {
                    let mut awaiting = self.awaiting.borrow_mut();
                    let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut *awaiting)
                        .into_iter()
                        .partition(|(_, n)| matches!(n, Some(n) if *n <= 1));
                    *awaiting = rest
                        .into_iter()
                        .map(|(w, n)| (w, n.map(|n| n - 1)))
                        .collect();
                    ready
                };
                self.wait_for_retry();
                let mut failure = Some(failure);
                let n = ready.len();
                for (i, (w, _)) in ready.into_iter().enumerate() {
                    let f = match &failure {
                        Some(f) if i + 1 < n => copy_failure(f, &self.endpoint),
                        _ => failure.take().expect("the last waiter takes the failure"),
                    };
                    let _ = w.try_errback(f);
                }
            }
            State::Disconnecting => self.finish_stopping(true),
            State::Restarting => {
                self.finish_stopping(false);
                self.attempt();
            }
            other => {
                self.set(other);
            }
        }
    }

    /// The connection ended (Twisted's `_clientDisconnected`).
    fn disconnected(self: &Rc<Self>) {
        let previous = self.set(State::Stopped);
        match previous {
            State::Connected(_) => self.wait_for_retry(),
            State::Disconnecting => self.finish_stopping(true),
            State::Restarting => {
                self.finish_stopping(false);
                self.attempt();
            }
            other => {
                self.set(other);
            }
        }
    }

    /// Fires the stop Deferreds, and (when the service stays stopped) fails the
    /// `when_connected` ones with [`CancelledError`].
    fn finish_stopping(&self, cancel_waiters: bool) {
        if cancel_waiters {
            self.cancel_connect_waiters();
        }
        for w in std::mem::take(&mut *self.stop_waiters.borrow_mut()) {
            let _ = w.try_callback(());
        }
    }

    fn cancel_connect_waiters(&self) {
        for (w, _) in std::mem::take(&mut *self.awaiting.borrow_mut()) {
            let _ = w.try_errback(CancelledError);
        }
    }

    fn wait_for_stop(&self) -> Deferred<()> {
        let d = Deferred::new();
        self.stop_waiters.borrow_mut().push(d.trigger());
        d
    }

    fn start(self: &Rc<Self>) {
        let previous = self.set(State::Stopped);
        match previous {
            State::Init | State::Stopped => self.attempt(),
            State::Disconnecting | State::Restarting => {
                self.set(State::Restarting);
            }
            other => {
                self.set(other);
            }
        }
    }

    fn stop(self: &Rc<Self>) -> Deferred<()> {
        let previous = self.set(State::Stopped);
        match previous {
            State::Init | State::Stopped => succeed(()),
            State::Connecting(attempt) => {
                self.set(State::Disconnecting);
                let waited = self.wait_for_stop();
                match attempt {
                    Some(d) => d.cancel(),
                    // Only while `attempt` itself runs; it cannot be stopped from there.
                    None => self.finish_stopping(true),
                }
                waited
            }
            State::Waiting(call) => {
                let waited = self.wait_for_stop();
                self.cancel_connect_waiters();
                let _ = call.cancel();
                self.finish_stopping(true);
                waited
            }
            State::Connected(conn) => {
                self.set(State::Disconnecting);
                let waited = self.wait_for_stop();
                conn.transport().lose_connection();
                waited
            }
            State::Disconnecting | State::Restarting => {
                self.set(State::Disconnecting);
                self.wait_for_stop()
            }
        }
    }

    fn when_connected(
        &self,
        fail_after_failures: Option<u32>,
    ) -> Deferred<ConnectedProtocol<F::Protocol>> {
        match &*self.state.borrow() {
            State::Connected(conn) => return succeed(conn.clone()),
            State::Stopped => return fail(CancelledError),
            _ => {}
        }
        let d = Deferred::new();
        self.awaiting
            .borrow_mut()
            .push((d.trigger(), fail_after_failures));
        d
    }
}

/// A service that keeps one connection up through an endpoint (Twisted's `ClientService`):
/// it connects when started, and whenever the connection fails or ends it waits as its
/// [retry policy](Self::set_retry_policy) says and connects again. Stopping it closes the
/// connection (or stops the attempt) and stops retrying.
///
/// [`when_connected`](Self::when_connected) gives the current connection, or the next one,
/// as a [`ConnectedProtocol`]: its transport and its protocol.
///
/// ```no_run
/// use std::rc::Rc;
/// use torsion::application::{ClientService, Service};
/// use torsion::endpoints::client_from_string;
/// use torsion::{factory, Protocol, Transport};
///
/// struct Chat;
/// impl Protocol for Chat {
///     fn data_received(&mut self, _t: &Transport, data: &[u8]) { println!("{data:?}") }
/// }
///
/// let endpoint = client_from_string(&torsion::reactor(), "tcp:example.com:6667").unwrap();
/// let service = Rc::new(ClientService::new(endpoint, factory(|| Chat)));
/// service.start_service();
/// service.when_connected(None).add_callback(|conn| conn.transport().write(b"hello\r\n"));
/// ```
pub struct ClientService<F: Factory> {
    service: ServiceState,
    inner: Rc<Inner<F>>,
}

impl<F: Factory> ClientService<F> {
    /// A stopped service that will connect to `endpoint` with protocols from `factory`,
    /// with [Twisted's default backoff](default_backoff_policy) and the endpoint's reactor
    /// as its clock.
    pub fn new(endpoint: ClientEndpoint, factory: F) -> ClientService<F> {
        let clock: Rc<dyn ReactorTime> = Rc::new(endpoint.reactor().clone());
        ClientService {
            service: ServiceState::new(),
            inner: Rc::new(Inner {
                endpoint,
                factory: Rc::new(factory),
                policy: RefCell::new(Rc::new(default_backoff_policy())),
                prepare: RefCell::new(None),
                clock: RefCell::new(clock),
                state: RefCell::new(State::Init),
                awaiting: RefCell::default(),
                stop_waiters: RefCell::default(),
                failed_attempts: Cell::new(0),
            }),
        }
    }

    /// Sets how long to wait between attempts (Twisted's `retryPolicy`): given the number of
    /// attempts that failed in a row, counting a lost connection as one, the seconds to wait.
    pub fn set_retry_policy(&self, policy: impl Fn(u32) -> f64 + 'static) {
        *self.inner.policy.borrow_mut() = Rc::new(policy);
    }

    /// Sets a function that readies each new connection before it is handed out (Twisted's
    /// `prepareConnection`), such as logging in: it may return `()` or a Deferred, and
    /// [`when_connected`](Self::when_connected) fires only once that has fired. If the
    /// Deferred fails, the connection is closed and counts as a failed attempt.
    pub fn set_prepare_connection<R: CallOutcome>(
        &self,
        prepare: impl Fn(&ConnectedProtocol<F::Protocol>) -> R + 'static,
    ) {
        *self.inner.prepare.borrow_mut() = Some(Rc::new(move |conn| {
            prepare(conn).into_wait().unwrap_or_else(|| succeed(()))
        }));
    }

    /// Sets the clock that times the retries (Twisted's `clock`), such as a
    /// [`testing::Clock`](crate::testing::Clock); set it before starting.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.inner.clock.borrow_mut() = Rc::new(clock);
    }

    /// Sets the name (Twisted's `setName`).
    pub fn set_name(&self, name: impl Into<String>) {
        self.service.set_name(name);
    }

    /// The endpoint this service connects to.
    pub fn endpoint(&self) -> &ClientEndpoint {
        &self.inner.endpoint
    }

    /// The factory.
    pub fn factory(&self) -> &Rc<F> {
        &self.inner.factory
    }

    /// The current connection, or the next one (Twisted's `whenConnected`). It fails with
    /// [`CancelledError`] when the service stops first (at once if it is stopped), and
    /// with the attempt's failure once `fail_after_failures` attempts in a row have failed
    /// (`Some(1)`: the first failure; `None`: never). When several fail on the same attempt,
    /// the last one asked gets its failure and the others a copy (the same error for
    /// refusals, time-outs and [`NoProtocol`]; else a [`ConnectError`] with its message).
    pub fn when_connected(
        &self,
        fail_after_failures: Option<u32>,
    ) -> Deferred<ConnectedProtocol<F::Protocol>> {
        self.inner.when_connected(fail_after_failures)
    }
}

impl<F: Factory> Service for ClientService<F> {
    fn name(&self) -> Option<String> {
        self.service.name()
    }

    fn running(&self) -> bool {
        self.service.running()
    }

    /// Starts connecting; a second start while running only logs a warning, as Twisted.
    fn start_service(&self) {
        if self.service.running() {
            tracing::warn!(target: "torsion", "Duplicate ClientService.start_service for {}", self.inner.endpoint);
            return;
        }
        self.service.set_running(true);
        self.inner.start();
    }

    /// Stops retrying and closes the connection; fires once the connection has closed or
    /// the attempt has stopped. Pending [`when_connected`](ClientService::when_connected)
    /// Deferreds fail with [`CancelledError`].
    fn stop_service(&self) -> Deferred<()> {
        self.service.set_running(false);
        self.inner.stop()
    }
}

impl<F: Factory> fmt::Debug for ClientService<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.inner.state.borrow() {
            State::Init => "init",
            State::Stopped => "stopped",
            State::Connecting(_) => "connecting",
            State::Waiting(_) => "waiting",
            State::Connected(_) => "connected",
            State::Disconnecting => "disconnecting",
            State::Restarting => "restarting",
        };
        f.debug_struct("ClientService")
            .field("name", &self.name())
            .field("endpoint", &self.inner.endpoint.to_string())
            .field("state", &state)
            .field("failed_attempts", &self.inner.failed_attempts.get())
            .finish()
    }
}
