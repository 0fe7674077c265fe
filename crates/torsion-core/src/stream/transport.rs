//! A connection seen as its transport: what protocols call ([`TransportImpl`]) and the
//! capabilities it has ([`TcpOptions`], [`TlsTransport`]). Every call only records what to do
//! and wakes the engine (or, outside the connection's callbacks, writes at once); the engine
//! in `stream.rs` does the rest.

use std::io;
use std::rc::Rc;

use super::{Conn, StreamSocket};
use crate::engine::{Closing, Lifecycle, Reading, Writing};
use crate::producer::{LimitHit, Producer, ProducerError};
use crate::reactor::Disconnect;
#[cfg(feature = "tls")]
use crate::transport::TlsTransport;
use crate::transport::{
    Address, FileSegment, PeerCredentials, TcpOptions, TransportImpl, WriteLimit, WritePolicy,
};

impl<S: StreamSocket> Conn<S> {
    /// True when a write of `len` bytes must not be buffered: it would take the unsent bytes
    /// past the write limit. Without a limit this is one compare.
    #[inline]
    fn refused_by_limit(&self, len: usize) -> bool {
        let limit = self.producer.write_limit();
        limit != usize::MAX
            && self.held_size().saturating_add(len) > limit
            && self.write_limit_hit(len, limit)
    }

    /// Unsent bytes held in memory: what the write limit counts. A file segment's unsent
    /// bytes are in its file, and are not counted (they are in `buffered_size`).
    fn held_size(&self) -> usize {
        self.wbuf.held() + self.staged_len() + self.tls_gathered()
    }

    /// TLS plaintext gathered in the running callback, not yet in the write buffer.
    fn tls_gathered(&self) -> usize {
        #[cfg(feature = "tls")]
        return self.tls_gathered_len();
        #[cfg(not(feature = "tls"))]
        0
    }

    /// A write passed the write limit: does what the policy says, and logs it.
    #[cold]
    #[inline(never)]
    fn write_limit_hit(&self, len: usize, limit: usize) -> bool {
        let buffered = self.held_size();
        match self.producer.over_limit(buffered, len) {
            None => false,
            Some(LimitHit::Disconnect { first }) => {
                if first {
                    tracing::warn!(
                        target: "torsion",
                        "write limit reached: {buffered} bytes unsent to {} and a write of \
                         {len} would pass the limit of {limit}; aborting that connection",
                        self.addrs
                    );
                }
                self.update(Lifecycle::abort);
                self.notify();
                true
            }
            Some(LimitHit::Dropped { first }) => {
                if first {
                    tracing::warn!(
                        target: "torsion",
                        "write limit reached: {buffered} bytes unsent to {} and a write of \
                         {len} would pass the limit of {limit}; dropping writes to that \
                         connection until it reads (counted, not logged again)",
                        self.addrs
                    );
                }
                true
            }
        }
    }

    /// A write that passed the write limit's check: one slice for `write`, the parts of a
    /// `write_sequence` (generic, so that a plain write pays nothing for sequences), `len`
    /// bytes in all (counted once, by the caller, for the write limit).
    fn write_admitted(&self, parts: impl WriteParts, len: usize) {
        if len == 0 || self.state().write_refused() {
            return;
        }
        if self.producer.wrote() {
            // A pull producer is owed a call once this is sent, even if it goes out at once.
            self.notify();
        }
        #[cfg(feature = "tls")]
        if self.with_tls(|_| ()).is_some() {
            parts.each(|data| {
                self.tls_write(data);
            });
            // The ciphertext is in the write buffer: the watermarks apply to it.
            self.producer.note_buffered(self.wbuf.len());
            return;
        }
        let large = len >= crate::transport::LARGE_WRITE;
        // A small write in a callback, with nothing of the connection's own waiting, is
        // gathered in the thread's buffer and sent when the callback returns.
        if !large && self.callbacks.running() && self.wbuf.is_empty() && self.stage(parts) {
            self.producer.note_buffered(self.staged_len());
            return;
        }
        // Anything else goes after what was gathered.
        self.unstage(false);
        if large && !self.wbuf.is_empty() {
            // Send what is buffered first, so that this write can follow it straight out.
            if let Err(e) = self.flush() {
                self.write_error.set(Some(e));
                self.notify();
                return;
            }
        }
        if self.wbuf.is_empty() && (!self.callbacks.running() || large) {
            // Written from outside this connection's callbacks, or too large to gain from
            // being gathered with what the callback writes next: send at once, each part
            // while the socket takes them whole, the rest kept in order.
            let mut sent = true;
            parts.each(|data| {
                if sent {
                    sent = self.send_or_keep(data);
                } else {
                    self.wbuf.borrow_mut().extend_from_slice(data);
                }
            });
            if sent {
                return;
            }
        } else {
            let mut wbuf = self.wbuf.borrow_mut();
            parts.each(|data| wbuf.extend_from_slice(data));
        }
        self.producer.note_buffered(self.wbuf.len());
        self.notify();
    }
}

/// What one write hands over: a slice (`write`), or the parts of a `write_sequence`, sent
/// in order as one write.
pub(super) trait WriteParts: Copy {
    /// How many bytes in all.
    fn total_len(self) -> usize;
    /// Calls `f` with each part, in order.
    fn each(self, f: impl FnMut(&[u8]));
}

impl WriteParts for &[u8] {
    #[inline]
    fn total_len(self) -> usize {
        self.len()
    }

    #[inline]
    fn each(self, mut f: impl FnMut(&[u8])) {
        f(self);
    }
}

impl WriteParts for &[&[u8]] {
    #[inline]
    fn total_len(self) -> usize {
        self.iter().map(|part| part.len()).sum()
    }

    #[inline]
    fn each(self, mut f: impl FnMut(&[u8])) {
        for part in self {
            f(part);
        }
    }
}

impl<S: StreamSocket> TransportImpl for Conn<S> {
    #[inline]
    fn write(&self, data: &[u8]) {
        if !self.refused_by_limit(data.len()) {
            self.write_admitted(data, data.len());
        }
    }

    /// The write limit is checked against the whole sequence, so that
    /// `WritePolicy::DropWrites` drops a message written in parts whole, never a part of it.
    fn write_sequence(&self, data: &[&[u8]]) {
        let len = data.total_len();
        if !self.refused_by_limit(len) {
            self.write_admitted(data, len);
        }
    }

    /// Queued after what is written (the bytes gathered in this callback join the
    /// connection's buffer first) and sent by the engine's flush with `sendfile(2)`.
    /// Refused on a TLS connection and on sockets that cannot send files.
    fn write_file(&self, segment: FileSegment) -> io::Result<()> {
        if !S::SENDS_FILES {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this transport cannot send files (no sendfile on this socket or platform)",
            ));
        }
        #[cfg(feature = "tls")]
        if self.with_tls(|_| ()).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a TLS transport cannot send files: their bytes must be encrypted",
            ));
        }
        if segment.len == 0 || self.state().write_refused() {
            return Ok(());
        }
        // A pull producer is owed a call once this is sent.
        self.producer.wrote();
        self.unstage(false);
        self.wbuf.push_file(segment);
        self.producer.note_buffered(self.wbuf.len());
        self.notify();
        Ok(())
    }

    fn set_write_limit(&self, bytes: usize, policy: WritePolicy) {
        self.producer
            .set_write_limit(Some(WriteLimit::new(bytes, policy)));
    }

    fn clear_write_limit(&self) {
        self.producer.set_write_limit(None);
    }

    fn write_limit(&self) -> Option<WriteLimit> {
        self.producer.write_limit_setting()
    }

    fn dropped_write_bytes(&self) -> u64 {
        self.producer.dropped()
    }

    fn lose_connection(&self) {
        #[cfg(feature = "tls")]
        if self.tls_close(crate::tls::layer::PendingClose::Full) {
            return;
        }
        self.update(Lifecycle::lose);
        self.notify();
    }

    fn abort_connection(&self) {
        self.update(Lifecycle::abort);
        self.notify();
    }

    fn lose_write_connection(&self) {
        #[cfg(feature = "tls")]
        if self.tls_close(crate::tls::layer::PendingClose::Write) {
            return;
        }
        self.update(Lifecycle::shut_write);
        self.notify();
    }

    fn get_peer(&self) -> Address {
        self.addrs.peer()
    }

    fn get_host(&self) -> Address {
        self.addrs.host()
    }

    fn buffered_size(&self) -> usize {
        self.wbuf.len() + self.staged_len() + self.tls_gathered()
    }

    fn is_connected(&self) -> bool {
        self.state().closing != Closing::Closed
    }

    fn disconnecting(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls_closing() {
            return true;
        }
        self.state().disconnecting()
    }

    fn request_drain(&self) {
        let before = self.state();
        self.update(Lifecycle::request_drain);
        if self.state() != before {
            self.notify();
        }
    }

    fn pause_producing(&self) {
        self.update(Lifecycle::pause);
    }

    fn resume_producing(&self) {
        if self.state().reading == Reading::Paused {
            self.update(Lifecycle::resume);
            self.notify();
        }
    }

    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        let state = self.state();
        if state.disconnecting() || state.writing == Writing::Shut {
            return Err(ProducerError::Disconnected);
        }
        self.producer.register(producer, streaming)?;
        // The task makes the first calls (a pull producer's first resume) after the current
        // callback returns, never from here.
        self.notify();
        Ok(())
    }

    fn unregister_producer(&self) {
        drop(self.producer.unregister());
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.producer.set_limits(high, low);
        self.notify();
    }

    fn write_buffer_limits(&self) -> (usize, usize) {
        self.producer.limits()
    }

    fn tcp(&self) -> Option<&dyn TcpOptions> {
        if S::TCP {
            Some(self)
        } else {
            None
        }
    }

    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<&dyn TlsTransport> {
        Some(self)
    }

    fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.sock.borrow().as_ref()?.peer_credentials()
    }
}

impl<S: StreamSocket> TcpOptions for Conn<S> {
    fn set_no_delay(&self, enabled: bool) -> io::Result<()> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.set_no_delay(enabled),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn no_delay(&self) -> io::Result<bool> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.no_delay(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn set_keep_alive(&self, enabled: bool) -> io::Result<()> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.set_keep_alive(enabled),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn keep_alive(&self) -> io::Result<bool> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.keep_alive(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

#[cfg(feature = "tls")]
impl<S: StreamSocket> TlsTransport for Conn<S> {
    fn start_tls(&self, context: crate::tls::TlsContext) -> io::Result<()> {
        let layer = context
            .layer_for(&self.addrs.peer())
            .map_err(io::Error::other)?;
        self.install_tls(layer)
    }

    fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.with_tls(|l| l.peer_certificate()).flatten()
    }

    fn negotiated_protocol(&self) -> Option<Vec<u8>> {
        self.with_tls(|l| l.negotiated_protocol()).flatten()
    }
}

impl<S: StreamSocket> Disconnect for Conn<S> {
    fn disconnect_for_shutdown(&self) {
        self.update(Lifecycle::shut_down);
        if let Some(s) = self.sock.borrow().as_ref() {
            s.wake();
        }
    }
}
