//! `TimeoutFactory`: close the idle connections of any protocol (Twisted's `TimeoutFactory`
//! and `TimeoutProtocol`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use super::idle::IdleTimeout;
use super::wrapper::{Next, ProtocolWrapper, Wrapped, Wrapper, WrappingFactory};
use crate::protocol::Factory;
use crate::reactor::{reactor, ReactorTime};
use crate::transport::Address;
use crate::ConnectionEnd;

/// Twisted's default idle period for a `TimeoutFactory`: 30 minutes.
pub const DEFAULT_TIMEOUT_PERIOD: f64 = 30.0 * 60.0;

/// The [`Wrapper`] of a [`TimeoutFactory`]: one [`IdleTimeout`] per connection, reset by
/// every read and every write, closing the connection when it fires.
pub struct TimeoutPolicy {
    period: Cell<f64>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
}

impl TimeoutPolicy {
    fn clock(&self) -> Rc<dyn ReactorTime> {
        self.clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(reactor()))
            .clone()
    }
}

impl fmt::Debug for TimeoutPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutPolicy")
            .field("period", &self.period.get())
            .finish()
    }
}

impl Wrapper for TimeoutPolicy {
    type State = IdleTimeout;

    fn admit(&self, _addr: &Address) -> Option<IdleTimeout> {
        let idle = IdleTimeout::new();
        idle.set_shared_clock(self.clock());
        Some(idle)
    }

    fn release(&self, conn: &Wrapped<Self>) {
        conn.state().set_timeout(None);
    }

    fn connection_made(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        let idle = conn.state();
        idle.set_transport(conn.transport());
        idle.set_timeout(Some(self.period.get()));
        next.connection_made();
    }

    fn data_received(&self, conn: &Wrapped<Self>, mut next: Next<'_>, data: &[u8]) {
        conn.state().reset_timeout();
        next.data_received(data);
    }

    fn connection_lost(&self, conn: &Wrapped<Self>, mut next: Next<'_>, reason: ConnectionEnd) {
        conn.state().set_timeout(None);
        next.connection_lost(reason);
    }

    fn write(&self, conn: &Wrapped<Self>, data: &[u8]) {
        conn.state().reset_timeout();
        conn.transport().write(data);
    }

    fn write_sequence(&self, conn: &Wrapped<Self>, data: &[&[u8]]) {
        conn.state().reset_timeout();
        conn.transport().write_sequence(data);
    }
}

/// The protocol a [`TimeoutFactory`] makes (Twisted's `TimeoutProtocol`). Its connection's
/// [`IdleTimeout`] is `protocol.connection().state()`: `set_timeout` there changes the period
/// of one connection.
pub type TimeoutProtocol<P> = ProtocolWrapper<P, TimeoutPolicy>;

/// Closes connections of any factory's protocols that neither receive nor write anything
/// for a period (Twisted's `TimeoutFactory`). The period starts when the connection is made
/// and restarts on every read and write; a time-out closes the connection with
/// `lose_connection`.
///
/// ```
/// use torsion::protocols::policies::TimeoutFactory;
/// use torsion::{factory, testing::{Clock, StringTransport}};
/// use torsion::{transport::Address, Factory, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let clock = Clock::new();
/// let f = TimeoutFactory::new(factory(|| Echo), 10.0);
/// f.set_clock(clock.clone());
/// let mut p = f.build_protocol(&Address::Named("peer".into())).unwrap();
/// let st = StringTransport::new();
/// p.connection_made(&st.transport());
/// clock.advance(9.0);
/// p.data_received(&st.transport(), b"ping");
/// clock.advance(9.0);
/// assert!(!st.disconnecting());
/// clock.advance(1.0);
/// assert!(st.disconnecting());
/// ```
pub struct TimeoutFactory<F> {
    inner: WrappingFactory<F, TimeoutPolicy>,
}

impl<F: Factory> TimeoutFactory<F> {
    /// Wraps `wrapped`, closing its connections after `timeout_period` seconds of
    /// inactivity (Twisted's default is [`DEFAULT_TIMEOUT_PERIOD`]).
    pub fn new(wrapped: F, timeout_period: f64) -> TimeoutFactory<F> {
        let policy = TimeoutPolicy {
            period: Cell::new(timeout_period),
            clock: RefCell::new(None),
        };
        TimeoutFactory {
            inner: WrappingFactory::new(wrapped, policy),
        }
    }
}

impl<F> TimeoutFactory<F> {
    /// Times connections made from now on with `clock` (a test
    /// [`Clock`](crate::testing::Clock)) instead of the current reactor (Twisted's
    /// `TimeoutFactory.callLater`).
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.inner.wrapper().clock.borrow_mut() = Some(Rc::new(clock));
    }

    /// The idle period of new connections, in seconds.
    pub fn timeout_period(&self) -> f64 {
        self.inner.wrapper().period.get()
    }

    /// Changes the idle period of connections made from now on.
    pub fn set_timeout_period(&self, seconds: f64) {
        self.inner.wrapper().period.set(seconds);
    }
}

wrapping_newtype!(TimeoutFactory, TimeoutPolicy);

impl<F> fmt::Debug for TimeoutFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFactory")
            .field("timeout_period", &self.timeout_period())
            .field("protocols", &self.inner.protocol_count())
            .finish()
    }
}
