//! Where accepted mail goes: Twisted's `IMessageDelivery` and `IMessage`.
//!
//! The SMTP server asks a [`MessageDelivery`] about each sender
//! ([`validate_from`](MessageDelivery::validate_from)) and each recipient
//! ([`validate_to`](MessageDelivery::validate_to)); a recipient it takes comes with a
//! [`MessageFactory`] that opens a [`Message`] when the body starts. The body goes to every
//! recipient's message, and at its end the server calls each one's
//! [`eom_received`](Message::eom_received) (by default [`finish`](Message::finish)) and
//! answers once they are stored; a message
//! dropped unfinished (the client left, the body was too large) is discarded, which is
//! Twisted's `connectionLost`.
//!
//! ```
//! use std::{cell::RefCell, io, rc::Rc};
//! use torsion_mail::command::{Address, ReversePath};
//! use torsion_mail::delivery::{Message, MessageDelivery, MessageFactory, Session};
//! use torsion_mail::reply::Reply;
//!
//! /// Keeps every message in memory.
//! #[derive(Default)]
//! struct Memory(Rc<RefCell<Vec<Vec<u8>>>>);
//!
//! struct Kept(Vec<u8>, Rc<RefCell<Vec<Vec<u8>>>>);
//!
//! impl Message for Kept {
//!     fn write(&mut self, data: &[u8]) -> io::Result<()> {
//!         self.0.extend_from_slice(data);
//!         Ok(())
//!     }
//!     fn finish(self: Box<Self>) -> io::Result<()> {
//!         self.1.borrow_mut().push(self.0);
//!         Ok(())
//!     }
//! }
//!
//! impl MessageDelivery for Memory {
//!     fn validate_from(&self, _: &Session, _: &ReversePath) -> Result<(), Reply> {
//!         Ok(())
//!     }
//!     fn validate_to(&self, _: &Session, to: &Address) -> Result<MessageFactory, Reply> {
//!         if to.domain() != "example.org" {
//!             return Err(Reply::new(550, "5.7.1 Relaying denied"));
//!         }
//!         let store = self.0.clone();
//!         Ok(Box::new(move || Ok(Box::new(Kept(Vec::new(), store)) as Box<dyn Message>)))
//!     }
//! }
//!
//! let d = Memory::default();
//! let s = Session::default();
//! assert!(d.validate_to(&s, &Address::parse("x@example.net").unwrap()).is_err());
//! let open = d.validate_to(&s, &Address::parse("x@example.org").unwrap()).unwrap();
//! let mut m = open().unwrap();
//! m.write(b"Subject: hi\r\n\r\nHello\r\n").unwrap();
//! m.finish().unwrap();
//! assert_eq!(d.0.borrow().len(), 1);
//! ```
use std::io;
use std::time::SystemTime;

use torsion::defer::{fail, succeed, Deferred};

use crate::command::{Address, ReversePath};
use crate::reply::Reply;

/// What the server knows of the client when it asks (Twisted passes `helo` and `origin`).
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// This server's name.
    pub hostname: String,
    /// The name the client gave in HELO or EHLO.
    pub helo: String,
    /// The client's address, as text (`203.0.113.5:40122`).
    pub peer: String,
    /// Whether the client said EHLO.
    pub extended: bool,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The user AUTH logged in, if any.
    pub authenticated: Option<String>,
}

/// One recipient's copy of a message being received (Twisted's `IMessage`).
///
/// Dropping it before [`finish`](Self::finish) discards it.
pub trait Message {
    /// Part of the message, line endings as sent (CRLF), dot-unstuffed (Twisted's
    /// `lineReceived`, without splitting into lines).
    fn write(&mut self, data: &[u8]) -> io::Result<()>;

    /// The message is complete: store it for good, now. An error is answered 451 and the
    /// client tries again later.
    fn finish(self: Box<Self>) -> io::Result<()>;

    /// The message is complete (Twisted's `eomReceived`, which returns a Deferred too): what
    /// the SMTP server calls, answering 250 once the Deferred fires and 451 if it fails;
    /// the connection waits meanwhile, other connections do not. By default it is
    /// [`finish`](Self::finish), in place; a message whose storing blocks (a disk flush)
    /// does it elsewhere, as [`MaildirMessage`](crate::maildir::MaildirMessage) does in the
    /// reactor's thread pool.
    fn eom_received(self: Box<Self>) -> Deferred<()> {
        match self.finish() {
            Ok(()) => succeed(()),
            Err(e) => fail(e),
        }
    }
}

/// Opens a recipient's [`Message`] when the body starts (the callable Twisted's
/// `validateTo` returns).
pub type MessageFactory = Box<dyn FnOnce() -> io::Result<Box<dyn Message>>>;

/// Decides who may send and who receives, and where messages go (Twisted's
/// `IMessageDelivery`).
pub trait MessageDelivery {
    /// Accepts or refuses a sender (Twisted's `validateFrom`): `Err` is the reply to give
    /// (550 to refuse for good, 451 for later).
    fn validate_from(&self, session: &Session, from: &ReversePath) -> Result<(), Reply>;

    /// Accepts a recipient with the factory of its message, or refuses it (Twisted's
    /// `validateTo`): 550 5.1.1 for an unknown user, 550 5.7.1 for a domain this server
    /// does not receive for.
    fn validate_to(&self, session: &Session, to: &Address) -> Result<MessageFactory, Reply>;

    /// The trace header put before each message (Twisted's `receivedHeader`), CRLF
    /// included; `None` for none. By default a `Received:` header (RFC 5321 section 4.4).
    fn received_header(
        &self,
        session: &Session,
        from: &ReversePath,
        to: &[Address],
    ) -> Option<Vec<u8>> {
        let _ = from;
        Some(received_header(session, to, SystemTime::now()))
    }
}

/// The `Received:` header [`MessageDelivery::received_header`] writes by default: who
/// handed the message over, to whom, how (`ESMTP`, `ESMTPS` with TLS, `ESMTPA`/`ESMTPSA`
/// when logged in, RFC 3848) and when.
pub fn received_header(session: &Session, to: &[Address], now: SystemTime) -> Vec<u8> {
    let with = match (
        session.extended,
        session.tls,
        session.authenticated.is_some(),
    ) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    };
    let mut header = Vec::with_capacity(160);
    header.extend_from_slice(b"Received: from ");
    push_clean(&mut header, &session.helo);
    header.extend_from_slice(b" (");
    push_clean(&mut header, &session.peer);
    header.extend_from_slice(b")\r\n\tby ");
    push_clean(&mut header, &session.hostname);
    header.extend_from_slice(b" with ");
    header.extend_from_slice(with.as_bytes());
    if let [one] = to {
        header.extend_from_slice(b"\r\n\tfor <");
        push_clean(&mut header, &one.to_string());
        header.push(b'>');
    }
    header.extend_from_slice(b"; ");
    push_date(&mut header, now);
    header.extend_from_slice(b" +0000\r\n");
    header
}

/// Appends `s` without its control characters and parentheses (which would end the
/// header's comment or the header itself).
fn push_clean(out: &mut Vec<u8>, s: &str) {
    if crate::reply::may_hold_controls(s, b"()") {
        let clean: String = s
            .chars()
            .filter(|c| !c.is_control() && !"()".contains(*c))
            .collect();
        out.extend_from_slice(clean.as_bytes());
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// Appends `now` as "Sun, 06 Nov 1994 08:49:37" (httpdate's form, without its zone). The
/// text of the last second is kept per thread: a busy server writes many headers a second.
fn push_date(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    // httpdate writes "Sun, 06 Nov 1994 08:49:37 GMT"; RFC 5322 prefers a numeric zone,
    // which the caller adds.
    let format = || {
        let date = httpdate::fmt_http_date(now);
        date.strip_suffix(" GMT").unwrap_or(&date).to_owned()
    };
    let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
        return out.extend_from_slice(format().as_bytes());
    };
    LAST.with_borrow_mut(|(at, text)| {
        if *at != since.as_secs() {
            *text = format();
            *at = since.as_secs();
        }
        out.extend_from_slice(text.as_bytes());
    });
}
