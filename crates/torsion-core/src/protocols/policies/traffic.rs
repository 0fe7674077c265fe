//! `TrafficLoggingFactory`: log every connection's events and bytes (Twisted's
//! `TrafficLoggingFactory` and `SpewingFactory`).

use std::cell::Cell;
use std::fmt;

use super::{Next, Wrapped, Wrapper, WrappingFactory};
use crate::protocol::Factory;
use crate::transport::Address;
use crate::ConnectionEnd;

/// The `tracing` target of the traffic log: enable it with
/// `RUST_LOG=torsion::traffic=debug` (or a subscriber's filter).
pub const TRAFFIC_TARGET: &str = "torsion::traffic";

/// Wraps any factory so that each connection's events and bytes, both ways, are logged
/// (Twisted's `TrafficLoggingFactory`, and `SpewingFactory` which prints the same to
/// standard output): one `tracing` event at debug level, target [`TRAFFIC_TARGET`], per
/// event, as `PREFIX-N PEER: WHAT`, where `N` numbers the factory's connections from 1 and
/// bytes are escaped as in a Rust byte string:
///
/// | line | what |
/// |---|---|
/// | `connection made` | the connection is up |
/// | `received "..."` | bytes arrived (Twisted's `c`) |
/// | `wrote "..."` | the protocol wrote (Twisted's `w`; a `write_sequence` logs each buffer) |
/// | `read side closed` | the peer closed its sending half |
/// | `closing` / `aborting` / `closing write side` | the protocol closed (Twisted's `C`) |
/// | `connection lost: REASON` | the connection is gone (Twisted's `L`) |
///
/// Twisted writes each connection to its own file `PREFIX-N`; Torsion logs through
/// `tracing`, so the traffic goes where the program's logs go and a filter turns it on and
/// off; the prefix and the number keep the connections apart.
///
/// ```
/// use torsion::protocols::policies::TrafficLoggingFactory;
/// use torsion::{factory, testing::StringTransport, transport::Address, Factory, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let f = TrafficLoggingFactory::new(factory(|| Echo), "echo");
/// let mut p = f.build_protocol(&Address::Named("client".into())).unwrap();
/// let st = StringTransport::new();
/// p.connection_made(&st.transport());
/// // Logged at debug level: `echo-1 client: received "hi\n"`, then `... wrote "hi\n"`.
/// p.data_received(&st.transport(), b"hi\n");
/// assert_eq!(st.value(), b"hi\n");
/// assert_eq!(f.connection_count(), 1);
/// ```
#[doc(alias = "SpewingFactory")]
pub struct TrafficLoggingFactory<F> {
    inner: WrappingFactory<F, TrafficLogger>,
}

impl<F: Factory> TrafficLoggingFactory<F> {
    /// Wraps `wrapped`, logging its connections as `prefix-1`, `prefix-2`, ...
    pub fn new(wrapped: F, prefix: impl Into<String>) -> TrafficLoggingFactory<F> {
        TrafficLoggingFactory {
            inner: WrappingFactory::new(
                wrapped,
                TrafficLogger {
                    prefix: prefix.into(),
                    counter: Cell::new(0),
                },
            ),
        }
    }
}

impl<F> TrafficLoggingFactory<F> {
    /// How many connections have been logged so far (Twisted's `_counter`): the number the
    /// last one got.
    pub fn connection_count(&self) -> u64 {
        self.inner.wrapper().counter.get()
    }

    /// The prefix of the connections' names.
    pub fn prefix(&self) -> &str {
        &self.inner.wrapper().prefix
    }
}

wrapping_newtype!(TrafficLoggingFactory, TrafficLogger);

impl<F> fmt::Debug for TrafficLoggingFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrafficLoggingFactory")
            .field("prefix", &self.prefix())
            .field("connection_count", &self.connection_count())
            .finish()
    }
}

/// The [`Wrapper`] of a [`TrafficLoggingFactory`]: logs every event and call.
#[derive(Debug)]
pub struct TrafficLogger {
    prefix: String,
    counter: Cell<u64>,
}

impl TrafficLogger {
    fn log(&self, conn: &Wrapped<Self>, what: fmt::Arguments<'_>) {
        tracing::debug!(
            target: TRAFFIC_TARGET,
            "{}-{} {}: {what}",
            self.prefix,
            conn.state(),
            conn.peer()
        );
    }
}

impl Wrapper for TrafficLogger {
    /// The connection's number.
    type State = u64;

    fn admit(&self, _addr: &Address) -> Option<u64> {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        Some(n)
    }

    fn connection_made(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        self.log(conn, format_args!("connection made"));
        next.connection_made();
    }

    fn data_received(&self, conn: &Wrapped<Self>, mut next: Next<'_>, data: &[u8]) {
        self.log(conn, format_args!("received \"{}\"", data.escape_ascii()));
        next.data_received(data);
    }

    fn read_connection_lost(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        self.log(conn, format_args!("read side closed"));
        next.read_connection_lost();
    }

    fn write_connection_lost(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        self.log(conn, format_args!("write side closed"));
        next.write_connection_lost();
    }

    fn connection_lost(&self, conn: &Wrapped<Self>, mut next: Next<'_>, reason: ConnectionEnd) {
        self.log(conn, format_args!("connection lost: {reason}"));
        next.connection_lost(reason);
    }

    fn write(&self, conn: &Wrapped<Self>, data: &[u8]) {
        self.log(conn, format_args!("wrote \"{}\"", data.escape_ascii()));
        conn.transport().write(data);
    }

    fn lose_connection(&self, conn: &Wrapped<Self>) {
        self.log(conn, format_args!("closing"));
        conn.transport().lose_connection();
    }

    fn abort_connection(&self, conn: &Wrapped<Self>) {
        self.log(conn, format_args!("aborting"));
        conn.transport().abort_connection();
    }

    fn lose_write_connection(&self, conn: &Wrapped<Self>) {
        self.log(conn, format_args!("closing write side"));
        conn.transport().lose_write_connection();
    }
}
