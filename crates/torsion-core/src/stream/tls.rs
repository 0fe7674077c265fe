//! The connection engine's TLS hooks: a connection may carry a [`TlsLayer`], installed when
//! it starts (`listen_tls`, `connect_tls`) or later (`start_tls`). These few methods route the
//! engine's reads and writes through it; everything else about the connection (the write
//! buffer, flushing, closing, flow control) is the engine's as for plain connections.
//!
//! Reads: ciphertext from the socket is fed to the layer, the plaintext it yields is copied
//! into a buffer owned by the thread and delivered to `data_received` (one call per socket
//! read, as for plain connections, unless it decrypts to more than that buffer holds).
//! Handshake answers go into the write buffer at once.
//!
//! Writes: plaintext goes into the layer (which keeps it until the handshake completes) and
//! the records come out straight to the socket when the write buffer is empty (one copy
//! fewer), into the write buffer otherwise. Small writes made in a callback are gathered
//! and encrypted together when it returns ([`Conn::tls_seal`], from the engine's `call`), so
//! that a response written in parts still goes out as one record.
//!
//! Closing: `lose_connection` sends close_notify after everything written; asked during the
//! handshake, it waits for the handshake to finish so the data written before it is sent.
//! A received close_notify is the peer's clean end of stream (`read_connection_lost`); a
//! socket end without one is a non-clean [`ConnectionLost`](crate::error::ConnectionLost).
//! A TLS error ends the connection with a [`TlsError`] after a best-effort send of the alert.

use std::cell::RefCell;
use std::io;

use super::{Conn, End, StreamSocket};
use crate::engine::{Closing, Lifecycle, Writing};
use crate::error::TlsError;
use crate::protocol::Protocol;
use crate::tls::layer::{PendingClose, Plain, TlsLayer};
use crate::transport::Transport;

/// Size of the thread's shared plaintext buffer.
const PLAIN_BUF_SIZE: usize = 64 * 1024;

thread_local! {
    static PLAIN_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A socket as an [`io::Write`], for rustls to write its records to (vectored).
struct SocketWrite<'a, S>(&'a S);

impl<S: StreamSocket> io::Write for SocketWrite<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection's TLS layer, when it has one (once installed, it stays). Boxed with its
/// borrow flag, so a plain connection pays one pointer.
#[derive(Default)]
pub(crate) struct TlsSlot(std::cell::OnceCell<Box<RefCell<TlsLayer>>>);

impl TlsSlot {
    /// The layer, if the connection uses TLS.
    fn layer(&self) -> Option<std::cell::RefMut<'_, TlsLayer>> {
        self.0.get().map(|l| l.borrow_mut())
    }

    fn is_none(&self) -> bool {
        self.0.get().is_none()
    }
}

impl<S: StreamSocket> Conn<S> {
    /// Makes this connection a TLS connection from now on: what was written before stays
    /// plaintext (it is already in the write buffer), everything after goes through `layer`.
    /// A client's ClientHello is queued at once.
    pub(crate) fn install_tls(&self, layer: TlsLayer) -> io::Result<()> {
        let state = self.state();
        if state.disconnecting() || state.writing != Writing::Open {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "cannot start TLS: the connection is closing",
            ));
        }
        if !self.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "cannot start TLS: the connection already uses TLS",
            ));
        }
        // Plaintext written earlier in this callback goes out before the handshake.
        self.unstage(false);
        let mut layer = layer;
        layer.drain(&mut self.wbuf.borrow_mut());
        if self.tls.0.set(Box::new(RefCell::new(layer))).is_err() {
            unreachable!("checked that there was no layer above");
        }
        self.notify();
        Ok(())
    }

    /// Keeps a listener's handshake timer with the layer, to be cancelled when the handshake
    /// completes or the connection ends.
    pub(crate) fn set_handshake_timer(&self, timer: crate::time::DelayedCall) {
        if let Some(mut layer) = self.tls.layer() {
            layer.handshake_timer = Some(timer);
        }
    }

    /// Runs `f` on the layer, if there is one.
    pub(crate) fn with_tls<T>(&self, f: impl FnOnce(&TlsLayer) -> T) -> Option<T> {
        self.tls.0.get().map(|l| f(&l.borrow()))
    }

    /// The write hook: true when the connection uses TLS and the layer took `data`.
    pub(super) fn tls_write(&self, data: &[u8]) -> bool {
        let Some(mut layer) = self.tls.layer() else {
            return false;
        };
        if self.callbacks.running() {
            // Encrypted with the callback's other writes when it returns (`tls_seal`), unless
            // it fills records of its own: those go at once, as a plain connection's large
            // writes do.
            if layer.gather(data) {
                self.tls_send(&mut layer);
                drop(layer);
                self.notify();
            }
            return true;
        }
        layer.write(data);
        self.tls_send(&mut layer);
        drop(layer);
        // Written from outside this connection's callbacks: send at once.
        if let Err(e) = self.flush() {
            self.write_error.set(Some(e));
        }
        self.notify();
        true
    }

    /// Encrypts what the callback that just returned wrote and sends it (`ok`), or drops it
    /// (it panicked: the connection closes).
    pub(super) fn tls_seal(&self, ok: bool) {
        let Some(mut layer) = self.tls.layer() else {
            return;
        };
        if layer.gathered_len() == 0 {
            return;
        }
        if !ok {
            layer.discard_gathered();
            return;
        }
        layer.seal();
        self.tls_send(&mut layer);
        drop(layer);
        self.notify();
    }

    /// Sends the records the layer has made: straight from rustls' buffers to the socket
    /// when nothing of the connection's waits before them (a copy fewer than through the
    /// write buffer), and what the socket does not take into the write buffer. An error is
    /// kept for the engine, as for plain writes sent at once.
    fn tls_send(&self, layer: &mut TlsLayer) {
        if self.wbuf.is_empty() {
            if let Some(sock) = self.sock.borrow().as_ref() {
                match layer.send_to(&mut SocketWrite(sock)) {
                    Ok(()) => return,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => self.write_error.set(Some(e)),
                }
            }
        }
        layer.drain(&mut self.wbuf.borrow_mut());
    }

    /// Plaintext written in the running callback and not yet encrypted.
    pub(super) fn tls_gathered_len(&self) -> usize {
        self.with_tls(TlsLayer::gathered_len).unwrap_or(0)
    }

    /// The close hook (`lose_connection`, `lose_write_connection`): queues close_notify
    /// after what was written. True when the close must wait for the handshake to finish
    /// (the engine is then not told yet).
    pub(super) fn tls_close(&self, how: PendingClose) -> bool {
        let Some(mut layer) = self.tls.layer() else {
            return false;
        };
        if layer.failed {
            return false;
        }
        if layer.is_handshaking() {
            layer.pending_close = match (layer.pending_close, how) {
                (Some(PendingClose::Full), _) | (_, PendingClose::Full) => Some(PendingClose::Full),
                _ => Some(PendingClose::Write),
            };
            return true;
        }
        layer.close_notify(&mut self.wbuf.borrow_mut());
        false
    }

    /// True while `lose_connection` waits for the handshake to finish.
    pub(super) fn tls_closing(&self) -> bool {
        self.with_tls(|l| l.pending_close == Some(PendingClose::Full)) == Some(true)
    }

    /// The read hook: handles `data` (ciphertext; empty at the socket's end) when the
    /// connection uses TLS, delivering the plaintext to the protocol. `None` otherwise.
    pub(super) fn tls_received<P: Protocol>(
        &self,
        data: &[u8],
        proto: &mut P,
        transport: &Transport,
    ) -> Option<Result<(), End>> {
        if self.tls.is_none() {
            return None;
        }
        Some(PLAIN_BUF.with_borrow_mut(|plain| {
            if plain.len() < PLAIN_BUF_SIZE {
                plain.resize(PLAIN_BUF_SIZE, 0);
            }
            self.tls_receive(data, plain, proto, transport)
        }))
    }

    fn tls_receive<P: Protocol>(
        &self,
        mut input: &[u8],
        plain: &mut [u8],
        proto: &mut P,
        transport: &Transport,
    ) -> Result<(), End> {
        let deliver = |data: &[u8], proto: &mut P| {
            if data.is_empty() {
                return Ok(());
            }
            self.call(|| proto.data_received(transport, data))
                .map_err(End::Panicked)
        };
        let mut filled = 0;
        let mut first = true;
        while first || !input.is_empty() {
            first = false;
            // Feed a slice of ciphertext; the handshake's answers go to the write buffer.
            let (fed, close) = {
                let Some(mut layer) = self.tls.layer() else {
                    return Ok(());
                };
                let fed = layer.feed(&mut input, &mut self.wbuf.borrow_mut());
                let close = match layer.is_handshaking() {
                    true => None,
                    false => {
                        layer.cancel_handshake_timer();
                        layer.pending_close.take()
                    }
                };
                (fed, close)
            };
            if let Some(how) = close {
                // A close asked for during the handshake: now everything written can go.
                self.tls_close(how);
                self.update(match how {
                    PendingClose::Full => Lifecycle::lose,
                    PendingClose::Write => Lifecycle::shut_write,
                });
            }
            // Collect the plaintext, delivering whenever the buffer is full.
            let end = loop {
                let got = match self.tls.layer() {
                    Some(mut layer) => layer.take_plaintext(&mut plain[filled..]),
                    None => Plain::Empty,
                };
                match got {
                    Plain::Data(n) => {
                        filled += n;
                        if filled == plain.len() {
                            deliver(plain, proto)?;
                            filled = 0;
                        }
                    }
                    Plain::Empty => break None,
                    other => break Some(other),
                }
            };
            if let Err(e) = fed {
                deliver(&plain[..filled], proto)?;
                return Err(self.tls_failed(e));
            }
            match end {
                Some(Plain::Closed) => {
                    if let Some(mut layer) = self.tls.layer() {
                        layer.peer_closed = true;
                    }
                    deliver(&plain[..filled], proto)?;
                    self.update(Lifecycle::read_closed);
                    return self
                        .call(|| proto.read_connection_lost(transport))
                        .map_err(End::Panicked);
                }
                Some(_) => {
                    deliver(&plain[..filled], proto)?;
                    let handshaking = self.with_tls(TlsLayer::is_handshaking) == Some(true);
                    return Err(End::from_io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        if handshaking {
                            "the peer closed the connection during the TLS handshake"
                        } else {
                            "the peer closed the connection without a TLS close_notify"
                        },
                    )));
                }
                None => {}
            }
            if matches!(self.state().closing, Closing::Aborting | Closing::Closed) {
                return Ok(());
            }
        }
        deliver(&plain[..filled], proto)
    }

    /// How a TLS connection ended: once the peer has closed its side with close_notify, a
    /// failure to send ours because it also closed the socket (a broken pipe, a reset) is
    /// still a clean end.
    pub(super) fn tls_end(&self, end: End) -> End {
        if let Some(mut layer) = self.tls.layer() {
            layer.cancel_handshake_timer();
        }
        match end {
            End::Reset(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) && self.with_tls(|l| l.peer_closed) == Some(true) =>
            {
                End::Done
            }
            end => end,
        }
    }

    /// A fatal TLS error: logs it, sends the alert if the socket takes it now, and gives the
    /// reason the connection ends.
    fn tls_failed(&self, e: TlsError) -> End {
        tracing::info!(target: "torsion", peer = %self.addrs, "{e}; closing that connection");
        let _ = self.flush();
        End::Tls(e)
    }
}
