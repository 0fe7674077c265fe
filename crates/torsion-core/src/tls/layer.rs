//! The TLS layer of one connection: rustls driven by bytes in and bytes out, with no I/O of
//! its own (the connection engine in `stream.rs` moves the bytes).
//!
//! Ciphertext read from the socket goes in with [`TlsLayer::feed`]; the plaintext it yields
//! comes out with [`TlsLayer::take_plaintext`]. Plaintext the protocol writes goes in with
//! [`TlsLayer::write`], and every record rustls wants sent (handshake messages, alerts,
//! encrypted data) is appended to the caller's write buffer at once, so all pending
//! ciphertext always lives in the connection's own write buffer.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::error::TlsError;

/// How the protocol asked to close while the handshake was still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingClose {
    /// `lose_connection`: send everything, then close_notify, then close.
    Full,
    /// `lose_write_connection`: send everything, then close_notify, then half-close.
    Write,
}

/// What [`TlsLayer::take_plaintext`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plain {
    /// This many bytes were copied out.
    Data(usize),
    /// Nothing more for now.
    Empty,
    /// The peer sent close_notify: its side is cleanly closed.
    Closed,
    /// The socket reached its end without a close_notify (a possible truncation).
    Truncated,
}

/// One connection's TLS state.
pub(crate) struct TlsLayer {
    conn: Connection,
    /// A close asked for during the handshake, carried out when it completes.
    pub(crate) pending_close: Option<PendingClose>,
    /// A fatal error happened; nothing more is read or written through the layer.
    pub(crate) failed: bool,
    /// close_notify has been sent.
    closed: bool,
    /// The peer's close_notify has been received.
    pub(crate) peer_closed: bool,
    /// A listener's handshake timeout, cancelled when the handshake completes or the
    /// connection ends.
    pub(crate) handshake_timer: Option<crate::time::DelayedCall>,
}

/// Appends everything written to a `BytesMut` (rustls writes records with `write_vectored`).
struct Append<'a>(&'a mut BytesMut);

impl io::Write for Append<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total = bufs.iter().map(|b| b.len()).sum();
        self.0.reserve(total);
        for b in bufs {
            self.0.extend_from_slice(b);
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsLayer {
    fn new(mut conn: Connection) -> TlsLayer {
        // The engine's write buffer is the bound (flow control pauses producers), so rustls
        // keeps whatever is written before the handshake completes.
        conn.set_buffer_limit(None);
        TlsLayer {
            conn,
            pending_close: None,
            failed: false,
            closed: false,
            peer_closed: false,
            handshake_timer: None,
        }
    }

    /// The client side of a connection to `name`.
    pub(crate) fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<TlsLayer, TlsError> {
        let conn = ClientConnection::new(config, name).map_err(TlsError::Handshake)?;
        Ok(TlsLayer::new(Connection::Client(conn)))
    }

    /// The server side of a connection.
    pub(crate) fn server(config: Arc<ServerConfig>) -> Result<TlsLayer, TlsError> {
        let conn = ServerConnection::new(config).map_err(TlsError::Handshake)?;
        Ok(TlsLayer::new(Connection::Server(conn)))
    }

    /// True until the handshake has completed.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn error(&self, e: rustls::Error) -> TlsError {
        if self.conn.is_handshaking() {
            TlsError::Handshake(e)
        } else {
            TlsError::Protocol(e)
        }
    }

    /// Feeds ciphertext from the front of `input` (an empty `input` means the socket reached
    /// its end) and processes the records it completes. Records to send in answer (handshake
    /// messages, alerts) are appended to `out`. On error the layer is failed and the alert
    /// describing it, if any, is in `out`.
    pub(crate) fn feed(&mut self, input: &mut &[u8], out: &mut BytesMut) -> Result<(), TlsError> {
        if self.failed {
            *input = &[];
            return Ok(());
        }
        let read = self.conn.read_tls(input);
        if let Ok(0) = read {
            // End of input, or close_notify already received: anything after it is ignored.
            *input = &[];
        }
        if let Err(e) = read {
            // Only buffer limits fail here (the plaintext is always drained first, so
            // this means a record larger than TLS allows): treat it as malformed input.
            self.failed = true;
            *input = &[];
            return Err(self.error(rustls::Error::General(format!("cannot take input: {e}"))));
        }
        let r = self.conn.process_new_packets();
        self.drain(out);
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = self.error(e);
                self.failed = true;
                *input = &[];
                Err(err)
            }
        }
    }

    /// Copies received plaintext into `buf`.
    pub(crate) fn take_plaintext(&mut self, buf: &mut [u8]) -> Plain {
        use io::Read;
        match self.conn.reader().read(buf) {
            Ok(0) if buf.is_empty() => Plain::Empty,
            Ok(0) => Plain::Closed,
            Ok(n) => Plain::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Plain::Empty,
            Err(_) => Plain::Truncated,
        }
    }

    /// Encrypts `data` (or keeps it until the handshake completes) and appends the records
    /// to `out`. Writes after close_notify or a failure are dropped.
    pub(crate) fn write(&mut self, data: &[u8], out: &mut BytesMut) {
        if self.failed || self.closed {
            return;
        }
        use io::Write;
        // With no buffer limit, rustls takes everything.
        let _ = self.conn.writer().write_all(data);
        self.drain(out);
    }

    /// Appends every record rustls wants sent to `out`.
    pub(crate) fn drain(&mut self, out: &mut BytesMut) {
        let mut w = Append(out);
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut w) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Sends close_notify (once), after everything written so far.
    pub(crate) fn close_notify(&mut self, out: &mut BytesMut) {
        if self.failed || self.closed {
            return;
        }
        self.closed = true;
        self.conn.send_close_notify();
        self.drain(out);
    }

    /// The peer's end-entity certificate (DER), once the handshake has delivered it.
    pub(crate) fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
    }

    /// Cancels the handshake timer, if one is pending.
    pub(crate) fn cancel_handshake_timer(&mut self) {
        if let Some(timer) = self.handshake_timer.take() {
            let _ = timer.cancel();
        }
    }

    /// The ALPN protocol agreed in the handshake.
    pub(crate) fn negotiated_protocol(&self) -> Option<Vec<u8>> {
        self.conn.alpn_protocol().map(<[u8]>::to_vec)
    }
}
