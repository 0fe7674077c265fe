//! Policies: wrappers that add behaviour to any protocol or factory (Twisted's
//! `twisted.protocols.policies`).
//!
//! | Twisted | Torsion | what it does |
//! |---|---|---|
//! | `TimeoutMixin` | [`IdleTimeout`] | a timer a protocol owns; fires after a period of inactivity |
//! | `TimeoutFactory` | [`TimeoutFactory`] | closes idle connections of any factory's protocols |
//! | `ProtocolWrapper`, `WrappingFactory` | [`ProtocolWrapper`], [`WrappingFactory`] + a [`Wrapper`] | the base of the factories below: a policy between protocols and transports |
//! | `LimitTotalConnectionsFactory` | [`LimitTotalConnectionsFactory`] | refuses connections past a number open at once |
//! | `LimitConnectionsByPeer` | [`LimitConnectionsByPeer`] | the same, per peer IP address |
//! | `ThrottlingFactory` | [`ThrottlingFactory`] | limits bytes read and written per second |
//! | `TrafficLoggingFactory`, `SpewingFactory` | [`TrafficLoggingFactory`] | logs every connection's events and bytes (to `tracing`, debug level) |
//! | `ReconnectingClientFactory` | [`ReconnectingClientFactory`] | reconnects with exponential back-off |
//! | (a push producer by hand) | [`WriteGate`] | stops a protocol answering while its client does not read |
//!
//! Policies stack: each factory wraps any factory, wrappers included.
//!
//! ```
//! use torsion::protocols::policies::{LimitTotalConnectionsFactory, TimeoutFactory};
//! use torsion::{factory, testing::{Clock, StringTransport}};
//! use torsion::{transport::Address, Factory, Protocol, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! // At most 100 connections, each closed after 5 idle minutes.
//! let clock = Clock::new();
//! let timeouts = TimeoutFactory::new(factory(|| Echo), 300.0);
//! timeouts.set_clock(clock.clone());
//! let f = LimitTotalConnectionsFactory::new(timeouts, 100);
//!
//! let mut p = f.build_protocol(&Address::Named("peer".into())).unwrap();
//! let st = StringTransport::new();
//! p.connection_made(&st.transport());
//! p.data_received(&st.transport(), b"ping");
//! assert_eq!(st.value(), b"ping");
//! assert_eq!(f.connection_count(), 1);
//! clock.advance(300.0);
//! assert!(st.disconnecting()); // idle for 5 minutes: closed
//! ```
//!
//! On a real reactor, the same factory is handed to `listen_tcp`:
//!
//! ```no_run
//! # use torsion::protocols::policies::{LimitTotalConnectionsFactory, TimeoutFactory};
//! # use torsion::{factory, reactor, Protocol, Transport};
//! # struct Echo;
//! # impl Protocol for Echo {
//! #     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! # }
//! let f = LimitTotalConnectionsFactory::new(TimeoutFactory::new(factory(|| Echo), 300.0), 100);
//! reactor().listen_tcp(1033, f).unwrap();
//! reactor().run().unwrap();
//! ```

/// Implements `Deref` (to the `WrappingFactory` in field `inner`), `Factory` and
/// `ClientFactory` for a policy factory that is a newtype around a `WrappingFactory`.
macro_rules! wrapping_newtype {
    ($name:ident, $policy:ty) => {
        impl<F> ::std::ops::Deref for $name<F> {
            type Target = $crate::protocols::policies::WrappingFactory<F, $policy>;

            fn deref(&self) -> &Self::Target {
                &self.inner
            }
        }

        impl<F: $crate::protocol::Factory> $crate::protocol::Factory for $name<F> {
            type Protocol = $crate::protocols::policies::ProtocolWrapper<F::Protocol, $policy>;

            fn build_protocol(&self, addr: &$crate::transport::Address) -> Option<Self::Protocol> {
                self.inner.build_protocol(addr)
            }

            fn start_factory(&self) {
                self.inner.start_factory();
            }

            fn stop_factory(&self) {
                self.inner.stop_factory();
            }
        }

        impl<F: $crate::protocol::ClientFactory> $crate::protocol::ClientFactory for $name<F> {
            fn started_connecting(&self, connector: &$crate::tcp::Connector) {
                self.inner.started_connecting(connector);
            }

            fn client_connection_failed(
                &self,
                connector: &$crate::tcp::Connector,
                reason: $crate::Failure,
            ) {
                self.inner.client_connection_failed(connector, reason);
            }

            fn client_connection_lost(
                &self,
                connector: &$crate::tcp::Connector,
                reason: $crate::Failure,
            ) {
                self.inner.client_connection_lost(connector, reason);
            }
        }
    };
}

mod gate;
mod idle;
mod limit;
mod reconnect;
mod throttle;
mod timeout;
mod traffic;
mod wrapper;

pub use gate::{ReadingPause, WriteGate};
pub use idle::IdleTimeout;
pub use limit::{
    LimitConnectionsByPeer, LimitTotalConnectionsFactory, PeerLimitPolicy, TotalLimitPolicy,
    DEFAULT_MAX_CONNECTIONS_PER_PEER,
};
pub use reconnect::{
    ReconnectingClientFactory, DEFAULT_FACTOR, DEFAULT_INITIAL_DELAY, DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
};
pub use throttle::{ThrottledConnection, ThrottlingFactory, ThrottlingPolicy, ThrottlingProtocol};
pub use timeout::{TimeoutFactory, TimeoutPolicy, TimeoutProtocol, DEFAULT_TIMEOUT_PERIOD};
pub use traffic::{TrafficLogger, TrafficLoggingFactory, TRAFFIC_TARGET};
pub use wrapper::{Next, ProtocolWrapper, Wrapped, Wrapper, Wrapping, WrappingFactory};
