//! Connectors: an outgoing connection in the making (Twisted's `IConnector`), the handle a
//! [`ClientFactory`](crate::ClientFactory) gets to retry or stop it. The transports that
//! connect (TCP, TLS, Unix) fill in how an attempt starts.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::reactor::Reactor;
use crate::transport::Transport;
use crate::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectorState {
    Disconnected,
    Connecting,
    Connected,
}

pub(crate) struct ConnectorInner {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) timeout: f64,
    pub(crate) reactor: Reactor,
    pub(crate) state: Cell<ConnectorState>,
    pub(crate) attempt: RefCell<Option<tokio::task::AbortHandle>>,
    pub(crate) transport: RefCell<Option<Transport>>,
    pub(crate) start: Box<dyn Fn(&Connector)>,
}

/// An outgoing connection in the making (Twisted's `IConnector`): retry it, stop it, or
/// drop the connection it made. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    pub(crate) inner: Rc<ConnectorInner>,
}

impl Connector {
    /// Starts a (new) connection attempt, if not already connecting or connected. Client
    /// factories call this from `client_connection_failed`/`client_connection_lost` to retry.
    pub fn connect(&self) {
        if self.inner.state.get() == ConnectorState::Disconnected && !self.inner.reactor.finished()
        {
            self.inner.state.set(ConnectorState::Connecting);
            (self.inner.start)(self);
        }
    }

    /// Stops an attempt in progress; the factory hears `client_connection_failed` with a
    /// [`CancelledError`](crate::error::CancelledError).
    pub fn stop_connecting(&self) {
        if self.inner.state.get() != ConnectorState::Connecting {
            return;
        }
        if let Some(a) = self.inner.attempt.borrow_mut().take() {
            a.abort();
        }
    }

    /// Closes the connection if connected, or stops connecting.
    pub fn disconnect(&self) {
        match self.inner.state.get() {
            ConnectorState::Connected => {
                if let Some(t) = self.inner.transport.borrow().as_ref() {
                    t.lose_connection();
                }
            }
            ConnectorState::Connecting => self.stop_connecting(),
            ConnectorState::Disconnected => {}
        }
    }

    /// Where this connector connects to.
    pub fn get_destination(&self) -> (String, u16) {
        (self.inner.host.clone(), self.inner.port)
    }

    /// The connection's transport, while connected.
    pub fn transport(&self) -> Option<Transport> {
        self.inner.transport.borrow().clone()
    }

    pub(crate) fn destination(&self) -> String {
        if self.inner.host.contains(':') {
            format!("[{}]:{}", self.inner.host, self.inner.port)
        } else {
            format!("{}:{}", self.inner.host, self.inner.port)
        }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("destination", &self.destination())
            .field("state", &self.inner.state.get())
            .finish()
    }
}

/// Calls a client-factory hook with panics contained.
pub(crate) fn hook(what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        crate::log::err(&Failure::from_panic(p), &format!("{what} panicked:"));
    }
}

/// Calls a client-factory hook about `connector` with panics contained; the log line names
/// the destination.
pub(crate) fn connector_hook(connector: &Connector, what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        crate::log::err(
            &Failure::from_panic(p),
            &format!(
                "{what} panicked (connection to {}):",
                connector.destination()
            ),
        );
    }
}
