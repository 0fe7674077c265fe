//! `StringTransport`: a transport that records writes (Twisted's `proto_helpers`).

use std::rc::Rc;

use crate::producer::{Producer, ProducerError, ProducerSlot};

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
///
/// It is a consumer too, as Twisted's: a registered producer is kept
/// ([`producer`](Self::producer), [`streaming`](Self::streaming)), and a test simulates a
/// full or draining write buffer with [`set_buffered_size`](Self::set_buffered_size), which
/// pauses and resumes a streaming producer at the watermarks:
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use torsion::{producer::Producer, testing::StringTransport};
///
/// #[derive(Default)]
/// struct Flag(Cell<bool>);
/// impl Producer for Flag {
///     fn pause_producing(&self) { self.0.set(true) }
///     fn resume_producing(&self) { self.0.set(false) }
///     fn stop_producing(&self) {}
/// }
///
/// let st = StringTransport::new();
/// let p = Rc::new(Flag::default());
/// st.transport().set_write_buffer_limits(100, 10);
/// st.transport().register_producer(p.clone(), true).unwrap();
/// st.set_buffered_size(101);
/// assert!(p.0.get() && st.producer_paused());
/// st.set_buffered_size(50);
/// assert!(p.0.get()); // still above the low watermark
/// st.set_buffered_size(10);
/// assert!(!p.0.get());
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
    producer: ProducerSlot,
    /// The simulated number of unsent bytes.
    buffered: std::cell::Cell<usize>,
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

    /// The registered producer (Twisted's `StringTransport.producer`).
    pub fn producer(&self) -> Option<Rc<dyn Producer>> {
        self.inner.producer.producer()
    }

    /// True if the registered producer is a streaming one (Twisted's `streaming`).
    pub fn streaming(&self) -> bool {
        self.inner.producer.is_registered() && self.inner.producer.streaming()
    }

    /// True while the simulated buffer keeps the streaming producer paused.
    pub fn producer_paused(&self) -> bool {
        self.inner.producer.paused()
    }

    /// Pretends `n` written bytes wait to be sent (`buffered_size` reports it), and makes the
    /// calls a real transport would: a streaming producer is paused above the high watermark
    /// and resumed at the low one; a pull producer that wrote since its last call is resumed
    /// when `n` is 0. Call it from the test, not from inside the producer.
    pub fn set_buffered_size(&self, n: usize) {
        self.inner.buffered.set(n);
        // One call at most, as one change of the buffer's size makes (a pull producer is
        // asked for one chunk, not drained in a loop).
        if let Some((producer, due)) = self.inner.producer.due(n) {
            match due {
                crate::producer::Due::Pause => producer.pause_producing(),
                crate::producer::Due::Resume => producer.resume_producing(),
            }
        }
    }

    /// Ends production as a closing connection does: the registered producer is
    /// unregistered and told `stop_producing`.
    pub fn stop_producer(&self) {
        if let Some(p) = self.inner.producer.unregister() {
            p.stop_producing();
        }
    }
}

impl crate::transport::TransportImpl for StringTransportInner {
    fn write(&self, data: &[u8]) {
        self.producer.wrote();
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
        self.buffered.get()
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
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.disconnecting.get() {
            return Err(ProducerError::Disconnected);
        }
        self.producer.register(producer, streaming)
    }
    fn unregister_producer(&self) {
        drop(self.producer.unregister());
    }
    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.producer.set_limits(high, low);
    }
    fn write_buffer_limits(&self) -> (usize, usize) {
        self.producer.limits()
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
