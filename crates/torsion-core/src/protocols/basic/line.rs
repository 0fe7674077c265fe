//! `LineReceiver` and `LineOnlyReceiver`: protocols made of delimited lines.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

use crate::protocol::Protocol;
use crate::transport::Transport;
use crate::ConnectionEnd;

/// The default line delimiter, as in Twisted.
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";
/// The default maximum line length, as in Twisted.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16384;

/// Where the first `delimiter` in `data` starts: what `LineReceiver` splits lines with, for
/// protocols that frame lines of their own (SMTP's DATA, say).
///
/// One- and two-byte delimiters (`\n`, `\r\n`) are found by scanning for their last byte:
/// `memchr::memmem::find` builds a substring searcher on every call, which cost more than
/// the search for short lines.
///
/// ```
/// use torsion::protocols::basic::find_delimiter;
///
/// assert_eq!(find_delimiter(b"a\nb\r\n", b"\r\n"), Some(3));
/// assert_eq!(find_delimiter(b"a\rb\n", b"\r\n"), None);
/// assert_eq!(find_delimiter(b"ab\n", b"\n"), Some(2));
/// ```
pub fn find_delimiter(data: &[u8], delimiter: &[u8]) -> Option<usize> {
    match delimiter {
        [b] => memchr::memchr(*b, data),
        [a, b] => memchr::memchr_iter(*b, data)
            .find(|&i| i > 0 && data[i - 1] == *a)
            .map(|i| i - 1),
        d => memchr::memmem::find(data, d),
    }
}

/// Sends lines on one connection: what line handlers get with each event, and — made owned by
/// [`sender`](Self::sender) — a handle to keep and answer with later.
///
/// Derefs to the [`Transport`], so `write`, `lose_connection` and the rest are there too.
///
/// # Methods
///
/// - [`send_line`](Self::send_line): the line and the delimiter (Twisted's `sendLine`);
/// - [`sender`](Self::sender): an owned copy, `LineSender<'static>`, to move into a callback;
/// - [`delimiter`](Self::delimiter), [`transport`](Self::transport);
/// - through the [`Transport`]: [`write`](Transport::write),
///   [`write_sequence`](Transport::write_sequence),
///   [`lose_connection`](Transport::lose_connection),
///   [`abort_connection`](Transport::abort_connection), [`get_peer`](Transport::get_peer),
///   [`get_host`](Transport::get_host), and the rest of the [`Transport`] page.
///
/// # Answering later
///
/// The sender a handler gets borrows the connection for the length of the event, so it cannot
/// go into a `'static` callback (E0521, "borrowed data escapes"). Call
/// [`sender`](Self::sender) for a `LineSender<'static>`: it holds a clone of the transport
/// handle and of the delimiter (two reference counts, no copy), is `Clone`, and sends exactly
/// as the borrowed one does — Twisted's `d.addCallback(lambda r: self.sendLine(r))`:
///
/// ```
/// use torsion::defer::Deferred;
/// use torsion::protocols::basic::{LineSender, LineTransport};
///
/// fn answer_later(t: &LineTransport<'_>, answer: Deferred<String>) {
///     let lines: LineSender<'static> = t.sender();
///     answer.add_callback(move |text| lines.send_line(text.as_bytes()));
/// }
/// ```
///
/// The [`LineReceiver`] documentation has the whole protocol.
#[derive(Clone)]
pub struct LineSender<'a> {
    transport: Cow<'a, Transport>,
    delimiter: Cow<'a, Rc<[u8]>>,
}

impl<'a> LineSender<'a> {
    /// The sender for `transport`, with lines ending in `delimiter`.
    #[inline]
    fn borrowed(transport: &'a Transport, delimiter: &'a Rc<[u8]>) -> LineSender<'a> {
        LineSender {
            transport: Cow::Borrowed(transport),
            delimiter: Cow::Borrowed(delimiter),
        }
    }

    /// Writes `line` followed by the delimiter (Twisted's `sendLine`). As in Twisted, the
    /// line is not checked: neither its length nor a delimiter inside it.
    #[inline]
    pub fn send_line(&self, line: &[u8]) {
        self.transport.write_sequence(&[line, &self.delimiter[..]]);
    }

    /// An owned sender for the same connection and delimiter, to keep or to move into a
    /// callback that answers later (see [Answering later](Self#answering-later)).
    pub fn sender(&self) -> LineSender<'static> {
        LineSender {
            transport: Cow::Owned(Transport::clone(&self.transport)),
            delimiter: Cow::Owned(Rc::clone(&self.delimiter)),
        }
    }

    /// The delimiter lines end with.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter[..]
    }

    /// The underlying transport handle (clone it to keep it).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

impl Deref for LineSender<'_> {
    type Target = Transport;

    fn deref(&self) -> &Transport {
        &self.transport
    }
}

impl fmt::Debug for LineSender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineSender")
            .field("transport", &*self.transport)
            .field("delimiter", &self.delimiter())
            .finish()
    }
}

#[derive(Default)]
struct Control {
    raw: bool,
    /// `set_line_mode(extra)` was called in raw mode: go back to lines with these bytes.
    line_mode_extra: Option<Vec<u8>>,
    /// `clear_line_buffer` was called: drop what is still unprocessed.
    clear: bool,
}

/// What a [`LineReceiver`] gets with each event: a [`LineSender`] (it derefs to one) plus the
/// switches between line and raw mode.
///
/// # Methods
///
/// Its own: [`set_raw_mode`](Self::set_raw_mode), [`set_line_mode`](Self::set_line_mode),
/// [`clear_line_buffer`](Self::clear_line_buffer), [`is_raw`](Self::is_raw).
///
/// From the [`LineSender`]: [`send_line`](LineSender::send_line),
/// [`sender`](LineSender::sender) (an owned `LineSender<'static>` to answer from a callback
/// later), [`delimiter`](LineSender::delimiter), [`transport`](LineSender::transport).
///
/// From the [`Transport`] (two derefs down): [`write`](Transport::write),
/// [`write_sequence`](Transport::write_sequence),
/// [`lose_connection`](Transport::lose_connection),
/// [`abort_connection`](Transport::abort_connection), [`get_peer`](Transport::get_peer),
/// [`get_host`](Transport::get_host), and through it everything a
/// [`TransportImpl`](crate::transport::TransportImpl) has: `pause_producing`,
/// `resume_producing`, `lose_write_connection`, `register_producer`, ... (see the
/// [`Transport`] page).
pub struct LineTransport<'a> {
    sender: LineSender<'a>,
    control: &'a mut Control,
    rest: &'a [u8],
}

impl LineTransport<'_> {
    /// From now on, received bytes go to `raw_data_received` — including the rest of the
    /// data that held the current line (Twisted's `setRawMode`).
    pub fn set_raw_mode(&mut self) {
        self.control.raw = true;
        self.control.line_mode_extra = None;
    }

    /// Back to lines; `extra` is parsed as line data first (Twisted's `setLineMode(extra)`).
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        self.control.raw = false;
        self.control.line_mode_extra = Some(extra.to_vec());
    }

    /// Drops the bytes received but not yet parsed, and returns them (Twisted's
    /// `clearLineBuffer`).
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        self.control.clear = true;
        self.rest.to_vec()
    }

    /// True in raw mode.
    pub fn is_raw(&self) -> bool {
        self.control.raw
    }
}

impl<'a> Deref for LineTransport<'a> {
    type Target = LineSender<'a>;

    fn deref(&self) -> &LineSender<'a> {
        &self.sender
    }
}

/// A protocol of lines (Twisted's `LineReceiver`): implement [`line_received`] on a plain
/// struct and wrap it in [`Lines`] to get a [`Protocol`].
///
/// Lines end with [`delimiter`](Self::delimiter) (default `\r\n`); a line longer than
/// [`max_length`](Self::max_length) (default 16384) goes to
/// [`line_length_exceeded`](Self::line_length_exceeded), which closes the connection with a
/// log line by default — a peer never makes the receiver buffer without bound. Protocols that
/// switch to raw bytes (HTTP bodies, file transfers) call
/// [`set_raw_mode`](LineTransport::set_raw_mode).
///
/// Seed 002's ReverseLineProtocol:
///
/// ```
/// use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
/// use torsion::{testing::StringTransport, Protocol};
///
/// #[derive(Default)]
/// struct ReverseLine { lines_received: usize }
///
/// impl LineReceiver for ReverseLine {
///     fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
///         let reversed: Vec<u8> = line.iter().rev().copied().collect();
///         t.send_line(&reversed);
///         self.lines_received += 1;
///         if self.lines_received >= 10 {
///             t.lose_connection();
///         }
///     }
/// }
///
/// let st = StringTransport::new();
/// let mut p = Lines::new(ReverseLine::default());
/// p.data_received(&st.transport(), b"hello\r\nwor");
/// p.data_received(&st.transport(), b"ld\r\n");
/// assert_eq!(st.value(), b"olleh\r\ndlrow\r\n");
/// ```
///
/// # Answering from a callback
///
/// Twisted's habit — look something up, get a Deferred, answer when it fires:
/// `d.addCallback(lambda r: self.sendLine(r))`. The `LineTransport` a handler gets borrows the
/// connection only for the event, so a `'static` callback cannot capture it; take an owned
/// [`LineSender`] with [`sender()`](LineSender::sender) and move that in. Here the lookup
/// answers a second later on a test [`Clock`](crate::testing::Clock):
///
/// ```
/// use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
/// use torsion::task::defer_later;
/// use torsion::testing::{Clock, StringTransport};
/// use torsion::Protocol;
///
/// /// Finger: one user name per line, answered when the (slow) directory answers.
/// struct Finger { clock: Clock }
///
/// impl LineReceiver for Finger {
///     fn line_received(&mut self, t: &mut LineTransport<'_>, user: &[u8]) {
///         let user = String::from_utf8_lossy(user).into_owned();
///         let lookup = defer_later(&self.clock, 1.0, move || format!("{user} is idle"));
///         let lines = t.sender(); // owned: clones the transport handle, not the connection
///         lookup.add_callback(move |status| lines.send_line(status.as_bytes()));
///     }
/// }
///
/// let clock = Clock::new();
/// let st = StringTransport::new();
/// let mut p = Lines::new(Finger { clock: clock.clone() });
/// p.data_received(&st.transport(), b"alice\r\n");
/// assert_eq!(st.value(), b""); // the directory has not answered yet
/// clock.advance(1.0);
/// assert_eq!(st.value(), b"alice is idle\r\n");
/// ```
///
/// [`line_received`]: Self::line_received
pub trait LineReceiver: 'static {
    /// The delimiter (read once, when the [`Lines`] wrapper is made).
    fn delimiter(&self) -> &[u8] {
        DEFAULT_DELIMITER
    }

    /// The longest line accepted (read once, when the [`Lines`] wrapper is made).
    fn max_length(&self) -> usize {
        DEFAULT_MAX_LINE_LENGTH
    }

    /// The connection is up.
    fn connection_made(&mut self, transport: &mut LineTransport<'_>) {
        let _ = transport;
    }

    /// A complete line arrived, without its delimiter.
    fn line_received(&mut self, transport: &mut LineTransport<'_>, line: &[u8]);

    /// Bytes arrived in raw mode.
    fn raw_data_received(&mut self, transport: &mut LineTransport<'_>, data: &[u8]) {
        let _ = (transport, data);
    }

    /// A line longer than `max_length` arrived, or unterminated data reached `max_length` plus
    /// the delimiter's length (as in Twisted); `line` holds it and whatever followed in the
    /// buffer, which is dropped. By default: log and close.
    fn line_length_exceeded(&mut self, transport: &mut LineTransport<'_>, line: &[u8]) {
        crate::log::error_event(format_args!(
            "line of {} bytes or more from {} exceeds the maximum; closing the connection",
            line.len(),
            transport.get_peer()
        ));
        transport.lose_connection();
    }

    /// The peer closed its sending half; by default the connection is closed.
    fn read_connection_lost(&mut self, transport: &mut LineTransport<'_>) {
        transport.lose_connection();
    }

    /// This end's sending half is shut, after `lose_write_connection` flushed
    /// ([`Protocol::write_connection_lost`], Twisted's `writeConnectionLost`); by default
    /// nothing.
    fn write_connection_lost(&mut self, transport: &mut LineTransport<'_>) {
        let _ = transport;
    }

    /// The connection is gone.
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let _ = reason;
    }

    /// A graceful stop asks the connection to finish and close ([`Protocol::drain`]); by
    /// default nothing (the connection is cut at the deadline). A handler that answers each
    /// message as it arrives can simply `lose_connection` here.
    fn drain(&mut self, transport: &mut LineTransport<'_>) {
        let _ = transport;
    }
}

/// The [`Protocol`] for a [`LineReceiver`]: splits bytes into lines and calls the handler.
///
/// Lines are cut straight out of the received bytes; only an incomplete line is copied, into
/// a buffer that exists while one is pending.
pub struct Lines<R> {
    handler: R,
    buf: Vec<u8>,
    delimiter: Rc<[u8]>,
    max_length: usize,
    control: Control,
}

impl<R: LineReceiver> Lines<R> {
    /// Wraps a line handler.
    ///
    /// # Panics
    /// If the handler's delimiter is empty.
    pub fn new(handler: R) -> Lines<R> {
        let delimiter: Rc<[u8]> = handler.delimiter().into();
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        let max_length = handler.max_length();
        Lines {
            handler,
            buf: Vec::new(),
            delimiter,
            max_length,
            control: Control::default(),
        }
    }

    /// The handler.
    pub fn handler(&self) -> &R {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut R {
        &mut self.handler
    }

    /// The bytes received but not yet parsed into a line.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Parses `data`; whatever is left incomplete is kept in `self.buf`.
    fn process(&mut self, t: &Transport, data: &[u8]) {
        let mut again = self.process_once(t, data);
        while let Some(more) = again {
            again = self.process_once(t, &more);
        }
    }

    /// Parses until the data runs out or a mode switch hands back bytes to parse again.
    fn process_once(&mut self, t: &Transport, mut data: &[u8]) -> Option<Vec<u8>> {
        let Lines {
            handler,
            buf,
            delimiter,
            max_length,
            control,
        } = self;
        loop {
            if t.disconnecting() {
                return None;
            }
            if control.raw {
                if !data.is_empty() {
                    let mut lt = LineTransport {
                        sender: LineSender::borrowed(t, delimiter),
                        control,
                        rest: &[],
                    };
                    handler.raw_data_received(&mut lt, data);
                }
                // Back to line mode: parse what the handler handed back.
                return control.line_mode_extra.take().filter(|_| !control.raw);
            }
            match find_delimiter(data, delimiter) {
                Some(i) => {
                    let line = &data[..i];
                    let rest = &data[i + delimiter.len()..];
                    if line.len() > *max_length {
                        let mut all = Vec::with_capacity(data.len());
                        all.extend_from_slice(data);
                        let mut lt = LineTransport {
                            sender: LineSender::borrowed(t, delimiter),
                            control,
                            rest: &[],
                        };
                        handler.line_length_exceeded(&mut lt, &all);
                        return None;
                    }
                    let mut lt = LineTransport {
                        sender: LineSender::borrowed(t, delimiter),
                        control,
                        rest,
                    };
                    handler.line_received(&mut lt, line);
                    if control.clear {
                        control.clear = false;
                        return None;
                    }
                    data = rest;
                    if let Some(extra) = control.line_mode_extra.take() {
                        // set_line_mode while already in line mode: parse the extra first.
                        let mut joined = extra;
                        joined.extend_from_slice(data);
                        return Some(joined);
                    }
                }
                None => {
                    // As Twisted's LineReceiver: a partial line may grow to the limit plus
                    // the delimiter, so a line of exactly `max_length` whose delimiter
                    // arrives split across reads is still a line.
                    if data.len() >= max_length.saturating_add(delimiter.len()) {
                        let mut lt = LineTransport {
                            sender: LineSender::borrowed(t, delimiter),
                            control,
                            rest: &[],
                        };
                        handler.line_length_exceeded(&mut lt, data);
                        return None;
                    }
                    buf.extend_from_slice(data);
                    return None;
                }
            }
        }
    }

    fn with_transport<T>(
        &mut self,
        t: &Transport,
        f: impl FnOnce(&mut R, &mut LineTransport<'_>) -> T,
    ) -> T {
        let mut lt = LineTransport {
            sender: LineSender::borrowed(t, &self.delimiter),
            control: &mut self.control,
            rest: &self.buf,
        };
        f(&mut self.handler, &mut lt)
    }
}

impl<R: LineReceiver> super::Framer for Lines<R> {
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
    fn parse(&mut self, t: &Transport, data: &[u8]) {
        self.process(t, data);
    }
}

impl<R: LineReceiver> Protocol for Lines<R> {
    fn connection_made(&mut self, transport: &Transport) {
        self.with_transport(transport, |h, t| h.connection_made(t));
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        super::feed(self, transport, data);
    }

    fn read_connection_lost(&mut self, transport: &Transport) {
        self.with_transport(transport, |h, t| h.read_connection_lost(t));
    }

    fn write_connection_lost(&mut self, transport: &Transport) {
        self.with_transport(transport, |h, t| h.write_connection_lost(t));
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.handler.connection_lost(reason);
    }

    fn drain(&mut self, transport: &Transport) {
        self.with_transport(transport, |h, t| h.drain(t));
    }
}

/// A protocol of lines only, without raw mode (Twisted's `LineOnlyReceiver`): wrap it in
/// [`LineOnly`].
pub trait LineOnlyReceiver: 'static {
    /// The delimiter (read once, when the [`LineOnly`] wrapper is made).
    fn delimiter(&self) -> &[u8] {
        DEFAULT_DELIMITER
    }

    /// The longest line accepted.
    fn max_length(&self) -> usize {
        DEFAULT_MAX_LINE_LENGTH
    }

    /// The connection is up.
    fn connection_made(&mut self, transport: &LineSender<'_>) {
        let _ = transport;
    }

    /// A complete line arrived, without its delimiter.
    fn line_received(&mut self, transport: &LineSender<'_>, line: &[u8]);

    /// A line longer than `max_length` arrived. By default: log and close.
    fn line_length_exceeded(&mut self, transport: &LineSender<'_>, line: &[u8]) {
        crate::log::error_event(format_args!(
            "line of {} bytes or more from {} exceeds the maximum; closing the connection",
            line.len(),
            transport.get_peer()
        ));
        transport.lose_connection();
    }

    /// The connection is gone.
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let _ = reason;
    }

    /// A graceful stop asks the connection to finish and close ([`Protocol::drain`]); by
    /// default nothing (the connection is cut at the deadline). A handler that answers each
    /// message as it arrives can simply `lose_connection` here.
    fn drain(&mut self, transport: &LineSender<'_>) {
        let _ = transport;
    }
}

/// The [`Protocol`] for a [`LineOnlyReceiver`].
pub struct LineOnly<R> {
    handler: R,
    buf: Vec<u8>,
    delimiter: Rc<[u8]>,
    max_length: usize,
}

impl<R: LineOnlyReceiver> LineOnly<R> {
    /// Wraps a line handler.
    ///
    /// # Panics
    /// If the handler's delimiter is empty.
    pub fn new(handler: R) -> LineOnly<R> {
        let delimiter: Rc<[u8]> = handler.delimiter().into();
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        let max_length = handler.max_length();
        LineOnly {
            handler,
            buf: Vec::new(),
            delimiter,
            max_length,
        }
    }

    /// The handler.
    pub fn handler(&self) -> &R {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut R {
        &mut self.handler
    }

    fn process(&mut self, t: &Transport, mut data: &[u8]) {
        let sender = LineSender::borrowed(t, &self.delimiter);
        while !t.disconnecting() {
            match find_delimiter(data, &self.delimiter) {
                Some(i) if i > self.max_length => {
                    return self.handler.line_length_exceeded(&sender, data);
                }
                Some(i) => {
                    self.handler.line_received(&sender, &data[..i]);
                    data = &data[i + self.delimiter.len()..];
                }
                None if data.len() > self.max_length => {
                    return self.handler.line_length_exceeded(&sender, data);
                }
                None => {
                    self.buf.extend_from_slice(data);
                    return;
                }
            }
        }
    }
}

impl<R: LineOnlyReceiver> super::Framer for LineOnly<R> {
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
    fn parse(&mut self, t: &Transport, data: &[u8]) {
        self.process(t, data);
    }
}

impl<R: LineOnlyReceiver> Protocol for LineOnly<R> {
    fn connection_made(&mut self, transport: &Transport) {
        let sender = LineSender::borrowed(transport, &self.delimiter);
        self.handler.connection_made(&sender);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        super::feed(self, transport, data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.handler.connection_lost(reason);
    }

    fn drain(&mut self, transport: &Transport) {
        let sender = LineSender::borrowed(transport, &self.delimiter);
        self.handler.drain(&sender);
    }
}

#[cfg(test)]
mod tests {
    use super::find_delimiter;

    #[test]
    fn two_byte_delimiters_skip_a_lone_last_byte() {
        assert_eq!(find_delimiter(b"\r\n", b"\r\n"), Some(0));
        assert_eq!(find_delimiter(b"ab\r\ncd\r\n", b"\r\n"), Some(2));
        assert_eq!(find_delimiter(b"a\nb\r\n", b"\r\n"), Some(3));
        assert_eq!(find_delimiter(b"\n\r\r\n", b"\r\n"), Some(2));
        assert_eq!(find_delimiter(b"a\rb\n", b"\r\n"), None);
        assert_eq!(find_delimiter(b"\r", b"\r\n"), None);
        assert_eq!(find_delimiter(b"", b"\r\n"), None);
        assert_eq!(find_delimiter(b"x\n\n", b"\n\n"), Some(1));
        assert_eq!(find_delimiter(b"a--b", b"--"), Some(1));
        assert_eq!(find_delimiter(b"a\r\n\r\nb", b"\r\n\r\n"), Some(1));
    }
}
