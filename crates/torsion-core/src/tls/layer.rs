//! The TLS layer of one connection: rustls driven by bytes in and bytes out, with no I/O of
//! its own (the connection engine in `stream.rs` moves the bytes).
//!
//! Ciphertext read from the socket goes in with [`TlsLayer::feed`]; the plaintext it yields
//! comes out with [`TlsLayer::take_plaintext`]. Plaintext the protocol writes goes in with
//! [`TlsLayer::write`]; the records rustls makes (handshake messages, alerts, encrypted
//! data) are either written straight to the socket from rustls' buffers
//! ([`TlsLayer::send_to`], when the connection's write buffer is empty) or appended to the
//! connection's write buffer ([`TlsLayer::drain`]): once a call into the layer returns,
//! all pending ciphertext lives in the connection's own write buffer.
//!
//! Small writes made in one callback (an HTTP response's head, then its body) are gathered
//! with [`TlsLayer::gather`] and sealed into as few records as they fill when the callback
//! returns ([`TlsLayer::seal`]): written one by one, each would be a record of its own, with
//! its own encryption call, allocation and 22 bytes of header and tag.

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

/// The most plaintext one TLS record carries: gathered writes are sealed once they fill one.
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// One connection's TLS state.
pub(crate) struct TlsLayer {
    conn: Connection,
    /// Plaintext written in the running callback, not yet encrypted (see [`TlsLayer::gather`]).
    gathered: Vec<u8>,
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
            gathered: Vec::new(),
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

    /// Encrypts `data` (or keeps it until the handshake completes), after anything gathered;
    /// the records wait in rustls for [`drain`](Self::drain) or [`send_to`](Self::send_to).
    /// Writes after close_notify or a failure are dropped.
    pub(crate) fn write(&mut self, data: &[u8]) {
        if self.failed || self.closed {
            return;
        }
        self.seal();
        use io::Write;
        // With no buffer limit, rustls takes everything.
        let _ = self.conn.writer().write_all(data);
    }

    /// Keeps `data`, written in a callback, to be encrypted with the callback's other writes
    /// by [`seal`](Self::seal) when it returns. What fills a record is encrypted at once, and
    /// so is a write that fills one by itself: true when records are then waiting to be
    /// sent. Writes after close_notify or a failure are dropped.
    pub(crate) fn gather(&mut self, data: &[u8]) -> bool {
        if self.failed || self.closed {
            return false;
        }
        if self.gathered.len() + data.len() > MAX_RECORD_PLAINTEXT {
            self.seal();
        }
        if data.len() >= MAX_RECORD_PLAINTEXT {
            self.write(data);
        } else {
            self.gathered.extend_from_slice(data);
        }
        self.conn.wants_write()
    }

    /// Plaintext gathered and not yet encrypted, in bytes.
    pub(crate) fn gathered_len(&self) -> usize {
        self.gathered.len()
    }

    /// Encrypts what [`gather`](Self::gather) kept; its records wait in rustls for
    /// [`drain`](Self::drain) or [`send_to`](Self::send_to).
    pub(crate) fn seal(&mut self) {
        if self.gathered.is_empty() {
            return;
        }
        if !self.failed && !self.closed {
            use io::Write;
            let _ = self.conn.writer().write_all(&self.gathered);
        }
        self.discard_gathered();
    }

    /// Drops what was gathered (the callback that wrote it panicked); an idle connection
    /// keeps no gathering buffer.
    pub(crate) fn discard_gathered(&mut self) {
        self.gathered.clear();
        if self.gathered.capacity() > 1024 {
            self.gathered = Vec::new();
        }
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

    /// Writes the records rustls wants sent straight to `socket` (vectored, from rustls' own
    /// buffers), until it takes no more: what is left is for [`drain`](Self::drain). The
    /// socket's error, `WouldBlock` when it is full.
    pub(crate) fn send_to(&mut self, socket: &mut dyn io::Write) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(socket)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Sends close_notify (once), after everything written so far.
    pub(crate) fn close_notify(&mut self, out: &mut BytesMut) {
        if self.failed || self.closed {
            return;
        }
        self.seal();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{ClientContext, Identity, ServerContext};
    use std::io::Read;

    /// A server layer and a rustls client that trusts it, their handshake done in memory.
    fn handshaken() -> (TlsLayer, ClientConnection) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let identity = Identity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let mut server = ServerContext::new(identity).unwrap().layer().unwrap();
        let client = ClientContext::builder()
            .trust([made.cert.der().clone()])
            .build()
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(client.config().clone(), name).unwrap();
        for _ in 0..10 {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            let mut to_client = BytesMut::new();
            server.feed(&mut &to_server[..], &mut to_client).unwrap();
            client.read_tls(&mut &to_client[..]).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
                return (server, client);
            }
        }
        panic!("the handshake did not finish");
    }

    /// The records in `wire`, by their headers.
    fn records(wire: &[u8]) -> usize {
        let (mut at, mut n) = (0, 0);
        while at + 5 <= wire.len() {
            at += 5 + usize::from(u16::from_be_bytes([wire[at + 3], wire[at + 4]]));
            n += 1;
        }
        assert_eq!(at, wire.len(), "whole records");
        n
    }

    /// What the client decrypts from `wire`.
    fn decrypt(client: &mut ClientConnection, wire: &[u8]) -> Vec<u8> {
        let mut wire = wire;
        let mut plain = Vec::new();
        while !wire.is_empty() {
            client.read_tls(&mut wire).unwrap();
            client.process_new_packets().unwrap();
            let mut buf = [0; 4096];
            while let Ok(n) = client.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                plain.extend_from_slice(&buf[..n]);
            }
        }
        plain
    }

    #[test]
    fn writes_gathered_in_a_callback_make_one_record() {
        let (mut server, mut client) = handshaken();
        let mut out = BytesMut::new();
        assert!(!server.gather(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
        assert!(
            !server.gather(b"hello"),
            "nothing is encrypted before the seal"
        );
        assert_eq!(server.gathered_len(), 43);
        server.seal();
        server.drain(&mut out);
        assert_eq!(server.gathered_len(), 0);
        assert_eq!(records(&out), 1);
        assert_eq!(
            decrypt(&mut client, &out),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        );

        // Written one by one, each write is a record of its own.
        let mut out = BytesMut::new();
        server.write(b"head");
        server.write(b"body");
        server.drain(&mut out);
        assert_eq!(records(&out), 2);
        assert_eq!(decrypt(&mut client, &out), b"headbody");
    }

    #[test]
    fn gathering_keeps_the_order_and_seals_full_records() {
        let (mut server, mut client) = handshaken();
        let mut out = BytesMut::new();
        let big = vec![7u8; 40_000];
        assert!(!server.gather(b"first "));
        // Larger than a record: what was gathered goes first, then this, at once.
        assert!(server.gather(&big));
        assert_eq!(server.gathered_len(), 0);
        assert!(
            server.gather(b" last"),
            "the records made so far still wait"
        );
        // close_notify seals what is gathered before it.
        server.close_notify(&mut out);
        let mut want = b"first ".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b" last");
        assert_eq!(decrypt(&mut client, &out), want);
        // After close_notify, writes are dropped.
        let mut after = BytesMut::new();
        assert!(!server.gather(b"dropped"));
        server.seal();
        server.drain(&mut after);
        assert!(after.is_empty());
    }
}
