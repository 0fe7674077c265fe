//! Length-prefixed messages: netstrings and 8/16/32-bit big-endian prefixes (Twisted's
//! `NetstringReceiver` and `Int8StringReceiver`/`Int16StringReceiver`/`Int32StringReceiver`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use crate::protocol::Protocol;
use crate::transport::Transport;
use crate::ConnectionEnd;

/// The default maximum message length, as in Twisted.
pub const DEFAULT_MAX_STRING_LENGTH: usize = 99_999;

/// A message cannot be sent: it is longer than the framing's prefix can say (Twisted's
/// `StringTooLongError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringTooLongError {
    /// The message's length.
    pub length: usize,
    /// The largest length the framing can carry.
    pub limit: usize,
}

impl fmt::Display for StringTooLongError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message of {} bytes is longer than the prefix allows ({})",
            self.length, self.limit
        )
    }
}

impl std::error::Error for StringTooLongError {}

/// Why received bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes do not follow the framing (a netstring's length is not decimal, or its
    /// closing comma is missing).
    Malformed(&'static str),
    /// The announced length is over the receiver's maximum.
    TooLong(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Malformed(why) => write!(f, "malformed frame: {why}"),
            FrameError::TooLong(n) => write!(f, "frame of {n} bytes is over the maximum"),
        }
    }
}

impl std::error::Error for FrameError {}

/// How messages are framed on the wire. Implemented by [`NetstringFraming`] and
/// [`PrefixFraming`]; decoders never need more than the header to reject a frame.
pub trait Framing: 'static {
    /// Looks at the start of `buf`: `Ok(Some((start, end)))` when a whole frame is there, its
    /// payload being `buf[start..end]` and the frame `buf[..end + trailer]`;
    /// `Ok(None)` when more bytes are needed; `Err` when the bytes cannot be a frame.
    fn decode(buf: &[u8], max_length: usize) -> Result<Option<(usize, usize)>, FrameError>;

    /// Bytes after the payload (a netstring's comma).
    const TRAILER: usize;

    /// Writes one framed message.
    fn encode(transport: &Transport, data: &[u8]) -> Result<(), StringTooLongError>;
}

/// Netstrings: `<decimal length>:<bytes>,` (djb's format, Twisted's `NetstringReceiver`).
#[derive(Debug)]
pub struct NetstringFraming;

impl Framing for NetstringFraming {
    const TRAILER: usize = 1;

    fn decode(buf: &[u8], max_length: usize) -> Result<Option<(usize, usize)>, FrameError> {
        let max_digits = max_length.max(1).ilog10() as usize + 1;
        let mut length: usize = 0;
        for (i, &b) in buf.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    if i >= max_digits {
                        return Err(FrameError::TooLong(length));
                    }
                    length = length * 10 + (b - b'0') as usize;
                }
                b':' if i == 0 => return Err(FrameError::Malformed("empty netstring length")),
                b':' => {
                    if length > max_length {
                        return Err(FrameError::TooLong(length));
                    }
                    let start = i + 1;
                    let end = start + length;
                    return match buf.get(end) {
                        None => Ok(None),
                        Some(b',') => Ok(Some((start, end))),
                        Some(_) => Err(FrameError::Malformed("netstring does not end with ','")),
                    };
                }
                _ => {
                    return Err(FrameError::Malformed(
                        "netstring length is not a decimal number",
                    ))
                }
            }
        }
        Ok(None)
    }

    fn encode(transport: &Transport, data: &[u8]) -> Result<(), StringTooLongError> {
        let mut header = itoa_buf(data.len());
        header.push(b':');
        transport.write_sequence(&[&header, data, b","]);
        Ok(())
    }
}

fn itoa_buf(n: usize) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// A big-endian length prefix of `N` bytes (1, 2 or 4): Twisted's `Int8StringReceiver`,
/// `Int16StringReceiver`, `Int32StringReceiver`.
#[derive(Debug)]
pub struct PrefixFraming<const N: usize>;

impl<const N: usize> PrefixFraming<N> {
    const LIMIT: usize = if N >= std::mem::size_of::<usize>() {
        usize::MAX
    } else {
        (1usize << (8 * N)) - 1
    };
}

impl<const N: usize> Framing for PrefixFraming<N> {
    const TRAILER: usize = 0;

    fn decode(buf: &[u8], max_length: usize) -> Result<Option<(usize, usize)>, FrameError> {
        let Some(prefix) = buf.get(..N) else {
            return Ok(None);
        };
        let length = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        if length > max_length {
            return Err(FrameError::TooLong(length));
        }
        let end = N + length;
        Ok((buf.len() >= end).then_some((N, end)))
    }

    fn encode(transport: &Transport, data: &[u8]) -> Result<(), StringTooLongError> {
        if data.len() > Self::LIMIT {
            return Err(StringTooLongError {
                length: data.len(),
                limit: Self::LIMIT,
            });
        }
        let bytes = (data.len() as u64).to_be_bytes();
        transport.write_sequence(&[&bytes[8 - N..], data]);
        Ok(())
    }
}

/// What a [`StringReceiver`] gets with each event: sends framed messages, and derefs to the
/// [`Transport`].
///
/// # Methods
///
/// - [`send_string`](Self::send_string): one message, framed (Twisted's `sendString`);
/// - [`sender`](Self::sender): an owned copy, `StringSender<'static, F>`, to move into a
///   callback that answers later;
/// - [`transport`](Self::transport);
/// - through the [`Transport`]: [`write`](Transport::write),
///   [`write_sequence`](Transport::write_sequence),
///   [`lose_connection`](Transport::lose_connection),
///   [`abort_connection`](Transport::abort_connection), [`get_peer`](Transport::get_peer),
///   [`get_host`](Transport::get_host), and the rest of the [`Transport`] page.
///
/// The sender a handler gets borrows the connection for the length of the event; to answer
/// from a Deferred's callback, move [`sender`](Self::sender)'s owned copy into it (a clone
/// of the transport handle, no copy of anything else):
///
/// ```
/// use torsion::defer::Deferred;
/// use torsion::protocols::basic::{Netstring, StringSender};
///
/// fn answer_later(t: &StringSender<'_, Netstring>, answer: Deferred<Vec<u8>>) {
///     let out: StringSender<'static, Netstring> = t.sender();
///     answer.add_callback_result(move |reply| out.send_string(&reply));
/// }
/// ```
pub struct StringSender<'a, F> {
    transport: Cow<'a, Transport>,
    framing: PhantomData<F>,
}

impl<'a, F> StringSender<'a, F> {
    /// The sender for `transport`.
    #[inline]
    fn borrowed(transport: &'a Transport) -> StringSender<'a, F> {
        StringSender {
            transport: Cow::Borrowed(transport),
            framing: PhantomData,
        }
    }
}

impl<F: Framing> StringSender<'_, F> {
    /// Sends one message, framed (Twisted's `sendString`); fails, sending nothing, if the
    /// framing's prefix cannot say its length.
    #[inline]
    pub fn send_string(&self, data: &[u8]) -> Result<(), StringTooLongError> {
        F::encode(&self.transport, data)
    }

    /// An owned sender for the same connection, to keep or to move into a callback that
    /// answers later.
    pub fn sender(&self) -> StringSender<'static, F> {
        StringSender {
            transport: Cow::Owned(Transport::clone(&self.transport)),
            framing: PhantomData,
        }
    }

    /// The underlying transport handle (clone it to keep it).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

impl<F> Clone for StringSender<'_, F> {
    fn clone(&self) -> Self {
        StringSender {
            transport: self.transport.clone(),
            framing: PhantomData,
        }
    }
}

impl<F> Deref for StringSender<'_, F> {
    type Target = Transport;

    fn deref(&self) -> &Transport {
        &self.transport
    }
}

impl<F> fmt::Debug for StringSender<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringSender")
            .field("transport", &*self.transport)
            .finish()
    }
}

/// A protocol of whole messages (Twisted's `NetstringReceiver`, `Int32StringReceiver`, ...):
/// choose the framing ([`Netstring`], [`Int32`], [`Int16`] or [`Int8`]), implement
/// [`string_received`](Self::string_received), and wrap the struct in [`Strings`].
///
/// ```
/// use torsion::protocols::basic::{Int32, StringReceiver, StringSender, Strings};
/// use torsion::{testing::StringTransport, Protocol};
///
/// struct Upper;
/// impl StringReceiver for Upper {
///     type Framing = Int32;
///     fn string_received(&mut self, t: &StringSender<'_, Self::Framing>, data: &[u8]) {
///         t.send_string(&data.to_ascii_uppercase()).unwrap();
///     }
/// }
///
/// let st = StringTransport::new();
/// let mut p = Strings::new(Upper);
/// p.data_received(&st.transport(), b"\0\0\0\x02hi");
/// assert_eq!(st.value(), b"\0\0\0\x02HI");
/// ```
pub trait StringReceiver: 'static {
    /// The framing used for sending (and receiving, by the wrapper with the same framing).
    type Framing: Framing;

    /// The longest message accepted (read once, when the wrapper is made).
    fn max_length(&self) -> usize {
        DEFAULT_MAX_STRING_LENGTH
    }

    /// The connection is up.
    fn connection_made(&mut self, transport: &StringSender<'_, Self::Framing>) {
        let _ = transport;
    }

    /// A whole message arrived.
    fn string_received(&mut self, transport: &StringSender<'_, Self::Framing>, data: &[u8]);

    /// A peer announced a message longer than `max_length`, or sent bytes that are not a
    /// frame. By default: log and close the connection. Nothing of it is buffered.
    fn frame_error(&mut self, transport: &StringSender<'_, Self::Framing>, error: FrameError) {
        crate::log::error_event(format_args!(
            "{error} from {}; closing the connection",
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
    fn drain(&mut self, transport: &StringSender<'_, Self::Framing>) {
        let _ = transport;
    }
}

/// The [`Protocol`] for a [`StringReceiver`]: cuts frames and calls the handler.
pub struct Strings<R> {
    handler: R,
    buf: Vec<u8>,
    max_length: usize,
    failed: bool,
}

/// Netstring framing (Twisted's `NetstringReceiver`).
pub type Netstring = NetstringFraming;
/// 32-bit big-endian length prefixes (Twisted's `Int32StringReceiver`).
pub type Int32 = PrefixFraming<4>;
/// 16-bit big-endian length prefixes (Twisted's `Int16StringReceiver`).
pub type Int16 = PrefixFraming<2>;
/// 8-bit length prefixes (Twisted's `Int8StringReceiver`).
pub type Int8 = PrefixFraming<1>;

impl<R: StringReceiver> Strings<R> {
    /// Wraps a message handler; the framing is the handler's `Framing`.
    pub fn new(handler: R) -> Strings<R> {
        let max_length = handler.max_length();
        Strings {
            handler,
            buf: Vec::new(),
            max_length,
            failed: false,
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
        let sender = StringSender::borrowed(t);
        while !data.is_empty() && !t.disconnecting() {
            match R::Framing::decode(data, self.max_length) {
                Ok(Some((start, end))) => {
                    self.handler.string_received(&sender, &data[start..end]);
                    data = &data[end + R::Framing::TRAILER..];
                }
                Ok(None) => {
                    self.buf.extend_from_slice(data);
                    return;
                }
                Err(e) => {
                    self.failed = true;
                    self.handler.frame_error(&sender, e);
                    return;
                }
            }
        }
    }
}

impl<R: StringReceiver> super::Framer for Strings<R> {
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
    fn parse(&mut self, t: &Transport, data: &[u8]) {
        self.process(t, data);
    }
}

impl<R: StringReceiver> Protocol for Strings<R> {
    fn connection_made(&mut self, transport: &Transport) {
        let sender = StringSender::borrowed(transport);
        self.handler.connection_made(&sender);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        if self.failed {
            return; // after a framing error nothing more is parsed
        }
        super::feed(self, transport, data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.handler.connection_lost(reason);
    }

    fn drain(&mut self, transport: &Transport) {
        let sender = StringSender::borrowed(transport);
        self.handler.drain(&sender);
    }
}
