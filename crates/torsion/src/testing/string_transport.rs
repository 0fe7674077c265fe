//! `StringTransport`: a transport that records writes (Twisted's `proto_helpers`).

use std::rc::Rc;

/// A transport that records what is written to it (Twisted's `proto_helpers.StringTransport`),
/// for testing protocols without sockets.
///
/// ```
/// use torsion::{testing::StringTransport, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let st = StringTransport::new();
/// let t = st.transport();
/// let mut p = Echo;
/// p.connection_made(&t);
/// p.data_received(&t, b"hello");
/// assert_eq!(st.value(), b"hello");
/// assert!(!st.disconnecting());
/// ```
#[derive(Clone, Default)]
pub struct StringTransport {
    inner: Rc<StringTransportInner>,
}

#[derive(Default)]
struct StringTransportInner {
    written: std::cell::RefCell<Vec<u8>>,
    disconnecting: std::cell::Cell<bool>,
    aborted: std::cell::Cell<bool>,
    write_closed: std::cell::Cell<bool>,
    paused: std::cell::Cell<bool>,
    peer: std::cell::RefCell<Option<crate::transport::Address>>,
    host: std::cell::RefCell<Option<crate::transport::Address>>,
}

impl StringTransport {
    /// A fresh transport with nothing written.
    pub fn new() -> StringTransport {
        StringTransport::default()
    }

    /// A recorder reporting `peer` and `host` as the connection's addresses (Twisted's
    /// `StringTransport(peerAddress=..., hostAddress=...)`).
    pub fn with_addresses(
        peer: crate::transport::Address,
        host: crate::transport::Address,
    ) -> StringTransport {
        let t = StringTransport::new();
        *t.inner.peer.borrow_mut() = Some(peer);
        *t.inner.host.borrow_mut() = Some(host);
        t
    }

    /// A [`Transport`](crate::Transport) handle writing into this recorder.
    pub fn transport(&self) -> crate::Transport {
        crate::Transport::new(self.inner.clone())
    }

    /// Everything written so far.
    pub fn value(&self) -> Vec<u8> {
        self.inner.written.borrow().clone()
    }

    /// Takes everything written so far, leaving the record empty (Twisted's `clear()` after
    /// `value()`).
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.inner.written.borrow_mut())
    }

    /// True once `lose_connection` or `abort_connection` was called.
    pub fn disconnecting(&self) -> bool {
        self.inner.disconnecting.get()
    }

    /// True once `abort_connection` was called.
    pub fn aborted(&self) -> bool {
        self.inner.aborted.get()
    }

    /// True once `lose_write_connection` was called.
    pub fn write_closed(&self) -> bool {
        self.inner.write_closed.get()
    }

    /// True while the transport is paused by `pause_producing`.
    pub fn paused(&self) -> bool {
        self.inner.paused.get()
    }
}

impl crate::transport::TransportImpl for StringTransportInner {
    fn write(&self, data: &[u8]) {
        self.written.borrow_mut().extend_from_slice(data);
    }
    fn lose_connection(&self) {
        self.disconnecting.set(true);
    }
    fn abort_connection(&self) {
        self.disconnecting.set(true);
        self.aborted.set(true);
    }
    fn lose_write_connection(&self) {
        self.write_closed.set(true);
    }
    fn get_peer(&self) -> crate::transport::Address {
        self.peer
            .borrow()
            .clone()
            .unwrap_or_else(|| crate::transport::Address::Named("string-transport-peer".into()))
    }
    fn get_host(&self) -> crate::transport::Address {
        self.host
            .borrow()
            .clone()
            .unwrap_or_else(|| crate::transport::Address::Named("string-transport-host".into()))
    }
    fn buffered_size(&self) -> usize {
        0
    }
    fn is_connected(&self) -> bool {
        !self.disconnecting.get()
    }
    fn disconnecting(&self) -> bool {
        self.disconnecting.get()
    }
    fn pause_producing(&self) {
        self.paused.set(true);
    }
    fn resume_producing(&self) {
        self.paused.set(false);
    }
}

impl std::fmt::Debug for StringTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringTransport")
            .field("written", &self.inner.written.borrow().len())
            .field("disconnecting", &self.disconnecting())
            .finish()
    }
}
