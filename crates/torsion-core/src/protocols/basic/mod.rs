//! Framing protocols (Twisted's `twisted.protocols.basic`), wire-compatible with Twisted.
//!
//! Most protocols are lines or length-prefixed messages, not raw bytes. Implement a handler
//! trait on a plain struct and wrap it to get a [`Protocol`](crate::Protocol):
//!
//! | Twisted | handler trait | wrapper |
//! |---|---|---|
//! | `LineReceiver` | [`LineReceiver`] | [`Lines`] |
//! | `LineOnlyReceiver` | [`LineOnlyReceiver`] | [`LineOnly`] |
//! | `NetstringReceiver` | [`StringReceiver`] with `Framing = Netstring` | [`Strings`] |
//! | `Int32StringReceiver` (16, 8) | [`StringReceiver`] with `Framing = Int32` | [`Strings`] |
//!
//! Handlers send through what they get with each event ([`LineTransport`] / [`LineSender`]
//! with `send_line`, [`StringSender`] with `send_string`). To answer later, from a Deferred's
//! callback, take an owned copy with `sender()` and move it in: see
//! [Answering from a callback](LineReceiver#answering-from-a-callback).
//!
//! [`FileSender`] streams a file to a transport as a pull producer (flow-controlled).
//!
//! Every decoder has a maximum frame length and rejects an oversized or malformed frame from
//! its header, without buffering it; the default reaction closes the connection with a log
//! line.
//!
//! ```
//! use torsion::protocols::basic::{Lines, LineReceiver, LineTransport};
//! use torsion::{factory, Reactor};
//!
//! struct Shout;
//! impl LineReceiver for Shout {
//!     fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
//!         t.send_line(&line.to_ascii_uppercase());
//!     }
//! }
//!
//! let r = Reactor::new();
//! let port = r.listen_tcp(0, factory(|| Lines::new(Shout))).unwrap();
//! # let _ = port;
//! ```

mod file_sender;
mod line;
mod string;

use crate::Transport;

/// A decoder that parses frames straight out of received bytes and keeps only an incomplete
/// frame in its own buffer.
pub(crate) trait Framer {
    /// The incomplete frame kept between reads.
    fn pending(&mut self) -> &mut Vec<u8>;
    /// Parses `data`; leaves whatever is incomplete in `pending()`.
    fn parse(&mut self, t: &Transport, data: &[u8]);
}

/// Feeds received bytes to a framer: parsed in place when nothing is pending (no copy), else
/// appended to the pending bytes; the buffer's allocation is kept for the next partial frame.
pub(crate) fn feed<F: Framer>(framer: &mut F, t: &Transport, data: &[u8]) {
    if framer.pending().is_empty() {
        framer.parse(t, data);
        return;
    }
    let mut pending = std::mem::take(framer.pending());
    pending.extend_from_slice(data);
    framer.parse(t, &pending);
    if framer.pending().is_empty() {
        pending.clear();
        *framer.pending() = pending;
    }
}

pub use file_sender::FileSender;
pub use line::{
    find_delimiter, LineOnly, LineOnlyReceiver, LineReceiver, LineSender, LineTransport, Lines,
    DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH,
};
pub use string::{
    FrameError, Framing, Int16, Int32, Int8, Netstring, NetstringFraming, PrefixFraming,
    StringReceiver, StringSender, StringTooLongError, Strings, DEFAULT_MAX_STRING_LENGTH,
};
