//! `ReconnectingClientFactory`: reconnect with exponential back-off (Twisted's
//! `ReconnectingClientFactory`).

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::{ClientFactory, Factory};
use crate::reactor::{reactor, DelayedCall, ReactorTime};
use crate::tcp::Connector;
use crate::transport::Address;
use crate::{Failure, Reactor};

/// The first delay before growth (Twisted's `initialDelay`), in seconds.
pub const DEFAULT_INITIAL_DELAY: f64 = 1.0;
/// How much the delay grows per retry (Twisted's `factor`, e).
pub const DEFAULT_FACTOR: f64 = std::f64::consts::E;
/// The relative standard deviation of the delay (Twisted's `jitter`).
pub const DEFAULT_JITTER: f64 = 0.119_626_564_72;
/// The longest delay (Twisted's `maxDelay`), in seconds: an hour.
pub const DEFAULT_MAX_DELAY: f64 = 3600.0;

/// A tiny xorshift64* generator: enough for jitter, and no dependency.
struct XorShift(u64);

impl XorShift {
    fn seeded(seed: u64) -> XorShift {
        // splitmix64 spreads similar seeds apart; the state must not be 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn from_entropy() -> XorShift {
        // RandomState is seeded randomly per thread (and differs per instance).
        let mut h = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        h.write_u64(nanos);
        XorShift::seeded(h.finish())
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal deviate (Box–Muller), as Python's `random.normalvariate(0, 1)`.
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

type NormalSource = Box<dyn FnMut() -> f64>;

fn seeded_source(mut rng: XorShift) -> NormalSource {
    Box::new(move || rng.normal())
}

/// Reconnects a client after its connection fails or is lost, waiting longer each time
/// (Twisted's `ReconnectingClientFactory`), around any [`ClientFactory`].
///
/// Each retry multiplies the delay by [`factor`](Self::factor) (e), caps it at
/// [`max_delay`](Self::max_delay) (an hour), then draws it from a normal distribution with
/// that mean and a standard deviation of [`jitter`](Self::jitter) times it, so that many
/// clients do not all come back at once — exactly Twisted's `retry()`, so the first retry
/// comes after about `initial_delay × e` seconds. A successful connection
/// (`build_protocol`) resets the delay (as Twisted's documented example does), or, with
/// [`set_reset_after`](Self::set_reset_after), a connection that lasted long enough: a server
/// that accepts and hangs up at once then gets the growing delays, not a retry a second.
/// [`stop_trying`](Self::stop_trying) cancels a pending retry and an attempt in progress,
/// and stops. With [`max_retries`](Self::set_max_retries) the factory gives up after that
/// many retries in a row.
///
/// Differs from Twisted: Twisted's class never resets by itself, and leaves
/// `resetDelay()` to the program (its howto calls it in `buildProtocol`, IRC bots often in
/// `signedOn`). Here a protocol has no `self.factory` to call it on, so the default resets
/// in `build_protocol`; [`set_reset_on_connect(false)`](Self::set_reset_on_connect) gives
/// Twisted's behaviour, the protocol then calling [`reset_delay`](Self::reset_delay) through
/// a `Weak` handle (see there). See docs/design.md, "Differences from Twisted".
///
/// The wrapped factory still hears every hook; it must not call `connector.connect()`
/// itself. To call `stop_trying` later, hand `connect_tcp` an `Rc` of the factory and keep a
/// clone:
///
/// ```
/// use std::rc::Rc;
/// use torsion::protocols::policies::ReconnectingClientFactory;
/// use torsion::{factory, Protocol, Reactor, Transport};
///
/// struct Greeter;
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, t: &Transport) { t.write(b"hello\r\n") }
///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
/// }
///
/// let r = Reactor::new();
/// let f = Rc::new(ReconnectingClientFactory::new(factory(|| Greeter)));
/// f.set_max_delay(60.0);
/// let connector = r.connect_tcp("127.0.0.1", 1, f.clone()); // nothing listens on port 1
/// // ... later, when the client should stop:
/// f.stop_trying();
/// # let _ = connector;
/// ```
///
/// Retries are timed on the current reactor, or on [`set_clock`](Self::set_clock)'s clock;
/// the jitter comes from a small generator seeded from the system, or from
/// [`set_seed`](Self::set_seed) or [`set_normal_source`](Self::set_normal_source) in tests:
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use torsion::protocols::policies::ReconnectingClientFactory;
/// use torsion::{factory, testing::Clock, Protocol, Transport};
///
/// # struct Quiet;
/// # impl Protocol for Quiet { fn data_received(&mut self, _: &Transport, _: &[u8]) {} }
/// let clock = Clock::new();
/// let f = ReconnectingClientFactory::new(factory(|| Quiet));
/// f.set_clock(clock.clone());
/// f.set_jitter(0.0);
/// let connects = Rc::new(Cell::new(0));
/// let c = connects.clone();
/// assert!(f.retry_with(move || c.set(c.get() + 1)));
/// let due = clock.pending_call_times();
/// assert!((due[0] - std::f64::consts::E).abs() < 1e-6); // initial delay (1 s) × e
/// clock.advance(3.0);
/// assert_eq!(connects.get(), 1);
/// ```
pub struct ReconnectingClientFactory<F> {
    wrapped: F,
    max_delay: Cell<f64>,
    initial_delay: Cell<f64>,
    factor: Cell<f64>,
    jitter: Cell<f64>,
    max_retries: Cell<Option<u32>>,
    delay: Cell<f64>,
    retries: Cell<u32>,
    continue_trying: Cell<bool>,
    /// Reset the delay in `build_protocol` (when `reset_after` is not set).
    reset_on_connect: Cell<bool>,
    /// Reset the delay only when a connection lasted this long (seconds).
    reset_after: Cell<Option<f64>>,
    /// When the current connection was made, with `reset_after`.
    connected_at: Cell<Option<f64>>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
    /// The reactor, when it is the clock (retries are not scheduled once it has finished).
    reactor: RefCell<Option<Reactor>>,
    pending: RefCell<Option<DelayedCall>>,
    /// The connector while an attempt is in progress (for `stop_trying`). Kept only then:
    /// the connector holds this factory, so keeping it longer would be a cycle.
    connecting: RefCell<Option<Connector>>,
    normal: RefCell<NormalSource>,
}

impl<F: ClientFactory> ReconnectingClientFactory<F> {
    /// Wraps `wrapped` with Twisted's defaults: initial delay 1 s, factor e, jitter
    /// 0.1196, maximum delay 3600 s, no maximum number of retries.
    pub fn new(wrapped: F) -> ReconnectingClientFactory<F> {
        ReconnectingClientFactory {
            wrapped,
            max_delay: Cell::new(DEFAULT_MAX_DELAY),
            initial_delay: Cell::new(DEFAULT_INITIAL_DELAY),
            factor: Cell::new(DEFAULT_FACTOR),
            jitter: Cell::new(DEFAULT_JITTER),
            max_retries: Cell::new(None),
            delay: Cell::new(DEFAULT_INITIAL_DELAY),
            retries: Cell::new(0),
            continue_trying: Cell::new(true),
            reset_on_connect: Cell::new(true),
            reset_after: Cell::new(None),
            connected_at: Cell::new(None),
            clock: RefCell::new(None),
            reactor: RefCell::new(None),
            pending: RefCell::new(None),
            connecting: RefCell::new(None),
            normal: RefCell::new(seeded_source(XorShift::from_entropy())),
        }
    }
}

impl<F> ReconnectingClientFactory<F> {
    /// The wrapped factory.
    pub fn wrapped_factory(&self) -> &F {
        &self.wrapped
    }

    /// Times retries with `clock` (a test [`Clock`](crate::testing::Clock)) instead of the
    /// current reactor (Twisted's `clock` attribute).
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.clock.borrow_mut() = Some(Rc::new(clock));
        self.reactor.borrow_mut().take();
    }

    fn clock(&self) -> Rc<dyn ReactorTime> {
        let mut clock = self.clock.borrow_mut();
        match &*clock {
            Some(c) => c.clone(),
            None => {
                let r = reactor();
                let c: Rc<dyn ReactorTime> = Rc::new(r.clone());
                *self.reactor.borrow_mut() = Some(r);
                *clock = Some(c.clone());
                c
            }
        }
    }

    /// Draws the jitter from the built-in generator seeded with `seed` (repeatable delays).
    pub fn set_seed(&self, seed: u64) {
        *self.normal.borrow_mut() = seeded_source(XorShift::seeded(seed));
    }

    /// Draws the jitter from `source`, which returns standard normal deviates (mean 0,
    /// standard deviation 1): the delay becomes `delay × (1 + jitter × source())`.
    pub fn set_normal_source(&self, source: impl FnMut() -> f64 + 'static) {
        *self.normal.borrow_mut() = Box::new(source);
    }

    /// The delay before the first retry is this times the factor (Twisted's
    /// `initialDelay`). When no retry has happened since the last reset, the current delay
    /// becomes it too.
    pub fn set_initial_delay(&self, seconds: f64) {
        self.initial_delay.set(seconds);
        if self.retries.get() == 0 {
            self.delay.set(seconds);
        }
    }

    /// The initial delay, in seconds.
    pub fn initial_delay(&self) -> f64 {
        self.initial_delay.get()
    }

    /// Sets how much the delay grows per retry (Twisted's `factor`).
    pub fn set_factor(&self, factor: f64) {
        self.factor.set(factor);
    }

    /// How much the delay grows per retry.
    pub fn factor(&self) -> f64 {
        self.factor.get()
    }

    /// Sets the relative standard deviation of the delay (Twisted's `jitter`); 0 for
    /// exact delays.
    pub fn set_jitter(&self, jitter: f64) {
        self.jitter.set(jitter);
    }

    /// The relative standard deviation of the delay.
    pub fn jitter(&self) -> f64 {
        self.jitter.get()
    }

    /// Sets the longest delay before jitter (Twisted's `maxDelay`), in seconds.
    pub fn set_max_delay(&self, seconds: f64) {
        self.max_delay.set(seconds);
    }

    /// The longest delay before jitter, in seconds.
    pub fn max_delay(&self) -> f64 {
        self.max_delay.get()
    }

    /// Gives up after this many retries in a row (Twisted's `maxRetries`); `None` never
    /// gives up.
    pub fn set_max_retries(&self, max: Option<u32>) {
        self.max_retries.set(max);
    }

    /// The maximum number of retries in a row.
    pub fn max_retries(&self) -> Option<u32> {
        self.max_retries.get()
    }

    /// The current delay: that of the last retry, or the initial delay after a reset.
    pub fn delay(&self) -> f64 {
        self.delay.get()
    }

    /// Retries since the last reset.
    pub fn retries(&self) -> u32 {
        self.retries.get()
    }

    /// False once [`stop_trying`](Self::stop_trying) was called (Twisted's `continueTrying`).
    pub fn continue_trying(&self) -> bool {
        self.continue_trying.get()
    }

    /// True while a retry is scheduled and has not run.
    pub fn retry_pending(&self) -> bool {
        self.pending.borrow().as_ref().is_some_and(|c| c.active())
    }

    /// Schedules `connector.connect()` after the next delay (Twisted's `retry`); the hooks
    /// call it. Returns false, scheduling nothing, when the factory has stopped trying or
    /// has used up its retries.
    pub fn retry(&self, connector: &Connector) -> bool {
        let c = connector.clone();
        self.retry_with(move || c.connect())
    }

    /// [`retry`](Self::retry) with any reconnecting action: `reconnect` runs after the next
    /// delay.
    pub fn retry_with(&self, reconnect: impl FnOnce() + 'static) -> bool {
        if !self.continue_trying.get() {
            return false;
        }
        let retries = self.retries.get().saturating_add(1);
        self.retries.set(retries);
        if self.max_retries.get().is_some_and(|max| retries > max) {
            crate::log::msg(&format!(
                "Abandoning reconnection after {} retries.",
                retries - 1
            ));
            return false;
        }
        let mut delay = (self.delay.get() * self.factor.get()).min(self.max_delay.get());
        let jitter = self.jitter.get();
        if jitter != 0.0 {
            let z = (self.normal.borrow_mut())();
            // random.normalvariate(delay, delay * jitter); a delay is never negative.
            delay = (delay + delay * jitter * z).max(0.0);
        }
        self.delay.set(delay);
        let clock = self.clock();
        if self.reactor.borrow().as_ref().is_some_and(|r| r.finished()) {
            return false; // the reactor is gone: nothing will ever run
        }
        tracing::info!(target: "torsion", "will retry in {delay:.3} seconds");
        if let Some(old) = self.pending.borrow_mut().take() {
            let _ = old.cancel();
        }
        let call = clock.call_later_boxed(delay, Box::new(reconnect));
        *self.pending.borrow_mut() = Some(call);
        true
    }

    /// Stops reconnecting: cancels a pending retry and stops an attempt in progress
    /// (Twisted's `stopTrying`). An established connection stays up, and is not
    /// reconnected when it ends.
    pub fn stop_trying(&self) {
        if let Some(call) = self.pending.borrow_mut().take() {
            let _ = call.cancel();
        }
        self.continue_trying.set(false);
        let connecting = self.connecting.borrow_mut().take();
        if let Some(c) = connecting {
            c.stop_connecting();
        }
    }

    /// Resets the delay not when a connection is made but when one that lasted at least
    /// `seconds` ends (`None`, the default: when a connection is made). For protocols that
    /// can fail after connecting (a login refused, an IRC nickname taken): their quick
    /// disconnections then back off instead of retrying at the initial delay forever.
    pub fn set_reset_after(&self, seconds: Option<f64>) {
        self.reset_after.set(seconds);
    }

    /// See [`set_reset_after`](Self::set_reset_after).
    pub fn reset_after(&self) -> Option<f64> {
        self.reset_after.get()
    }

    /// Whether `build_protocol` resets the delay (true, the default); false leaves it to
    /// [`reset_delay`](Self::reset_delay), as Twisted's `ReconnectingClientFactory` does.
    /// [`set_reset_after`](Self::set_reset_after), when set, replaces the reset on connect
    /// either way.
    ///
    /// To reset when the protocol decides (signed on, logged in), build the factory with
    /// [`Rc::new_cyclic`] and give the protocols a `Weak` to it:
    ///
    /// ```
    /// use std::rc::{Rc, Weak};
    /// use torsion::protocols::policies::ReconnectingClientFactory;
    /// use torsion::protocol::FnFactory;
    /// use torsion::{factory, Protocol, Transport};
    ///
    /// type Reconnecting = ReconnectingClientFactory<FnFactory<Box<dyn Fn() -> Bot>>>;
    ///
    /// struct Bot {
    ///     reconnecting: Weak<Reconnecting>,
    /// }
    ///
    /// impl Protocol for Bot {
    ///     fn data_received(&mut self, _: &Transport, data: &[u8]) {
    ///         if data.starts_with(b"welcome") {
    ///             // Signed on: the next loss starts again from the initial delay.
    ///             if let Some(f) = self.reconnecting.upgrade() {
    ///                 f.reset_delay();
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let f: Rc<Reconnecting> = Rc::new_cyclic(|me: &Weak<Reconnecting>| {
    ///     let me = me.clone();
    ///     let make: Box<dyn Fn() -> Bot> = Box::new(move || Bot { reconnecting: me.clone() });
    ///     ReconnectingClientFactory::new(factory(make))
    /// });
    /// f.set_reset_on_connect(false);
    /// assert!(!f.reset_on_connect());
    /// ```
    pub fn set_reset_on_connect(&self, reset: bool) {
        self.reset_on_connect.set(reset);
    }

    /// See [`set_reset_on_connect`](Self::set_reset_on_connect).
    pub fn reset_on_connect(&self) -> bool {
        self.reset_on_connect.get()
    }

    /// Back to the initial delay and no retries, and trying again (Twisted's
    /// `resetDelay`); called when a connection succeeds (by `build_protocol` unless
    /// [`set_reset_on_connect(false)`](Self::set_reset_on_connect)), or by the program.
    pub fn reset_delay(&self) {
        self.delay.set(self.initial_delay.get());
        self.retries.set(0);
        self.continue_trying.set(true);
    }
}

impl<F: ClientFactory> Factory for ReconnectingClientFactory<F> {
    type Protocol = F::Protocol;

    fn build_protocol(&self, addr: &Address) -> Option<F::Protocol> {
        let p = self.wrapped.build_protocol(addr);
        if p.is_some() {
            self.connecting.borrow_mut().take();
            if self.reset_after.get().is_some() {
                self.connected_at.set(Some(self.clock().seconds()));
            } else if self.reset_on_connect.get() && self.continue_trying.get() {
                self.reset_delay();
            }
        }
        p
    }

    fn start_factory(&self) {
        self.wrapped.start_factory();
    }

    fn stop_factory(&self) {
        self.wrapped.stop_factory();
    }
}

impl<F: ClientFactory> ClientFactory for ReconnectingClientFactory<F> {
    fn started_connecting(&self, connector: &Connector) {
        *self.connecting.borrow_mut() = Some(connector.clone());
        self.wrapped.started_connecting(connector);
    }

    fn client_connection_failed(&self, connector: &Connector, reason: Failure) {
        self.connecting.borrow_mut().take();
        if self.continue_trying.get() {
            // The retry's log line says when; this one says why, or a client pointed at a
            // server that is down retries with no hint of the cause.
            tracing::info!(target: "torsion", "connecting failed: {}", reason.error_message());
        }
        self.wrapped.client_connection_failed(connector, reason);
        if self.continue_trying.get() {
            self.retry(connector);
        }
    }

    fn client_connection_lost(&self, connector: &Connector, reason: Failure) {
        self.wrapped.client_connection_lost(connector, reason);
        if let (Some(after), Some(at)) = (self.reset_after.get(), self.connected_at.take()) {
            if self.continue_trying.get() && self.clock().seconds() - at >= after {
                self.reset_delay();
            }
        }
        if self.continue_trying.get() {
            self.retry(connector);
        }
    }
}

impl<F> fmt::Debug for ReconnectingClientFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClientFactory")
            .field("delay", &self.delay.get())
            .field("retries", &self.retries.get())
            .field("max_retries", &self.max_retries.get())
            .field("continue_trying", &self.continue_trying.get())
            .field("retry_pending", &self.retry_pending())
            .finish()
    }
}

impl<F> Drop for ReconnectingClientFactory<F> {
    fn drop(&mut self) {
        if let Some(call) = self.pending.get_mut().take() {
            let _ = call.cancel();
        }
    }
}
