//! The AMP protocol on a Torsion connection: [`Amp`] (Twisted's `AMP`), the [`Locator`] of
//! responders, and [`AmpSender`], the handle that calls the peer.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::{Rc, Weak};

use torsion::defer::{fail, Deferred, Trigger};
use torsion::producer::Producer;
use torsion::tls::TlsContext;
use torsion::{ConnectionEnd, Failure, Protocol, Transport};

use crate::command::Command;
use crate::error::{
    AmpError, RemoteError, TooLong, UnhandledCommand, UNHANDLED_ERROR_CODE, UNKNOWN_ERROR_CODE,
};
use crate::types::Record;
use crate::wire::{AmpBox, BoxParser, ANSWER, ASK, COMMAND, ERROR, ERROR_CODE, ERROR_DESCRIPTION};

const LOG: &str = "torsion_amp";

crate::command! {
    /// Twisted's `StartTLS` command: on the wire an ordinary command box `StartTLS` with no
    /// arguments, answered with an empty box; after the answer both ends start TLS on the
    /// same connection. Call it with [`AmpSender::call_start_tls`]; answer it with
    /// [`Locator::start_tls`]. (Twisted's `tls_localCertificate` and
    /// `tls_verifyAuthorities` never travel: here they are the [`TlsContext`] each side
    /// gives.)
    #[derive(Debug, Default)]
    pub struct StartTls as "StartTLS" {}
    response #[derive(Debug)] StartTlsResult {}
    errors ["TLS_ERROR"]
}

/// Limits of one AMP connection. Twisted has none of these; they keep a hostile or runaway
/// peer from holding memory without bound.
#[derive(Debug, Clone)]
pub struct AmpConfig {
    /// The largest box, encoded, that the peer may send (default 4 MiB, 64 values of the
    /// largest size): a box that grows past it closes the connection.
    pub max_box_size: usize,
    /// How many of the peer's commands may be in progress (asked, not yet answered) at once
    /// (default 1,000): at the limit, reading from the connection pauses until one is
    /// answered, so a peer asking 100,000 questions waits in its own TCP buffers.
    pub max_pending_answers: usize,
    /// How many of this side's questions may wait for answers (default 100,000): beyond it,
    /// `call_remote` fails at once with [`AmpError::TooManyOutstanding`].
    pub max_outstanding_calls: usize,
}

impl Default for AmpConfig {
    fn default() -> Self {
        AmpConfig {
            max_box_size: 4 << 20,
            max_pending_answers: 1000,
            max_outstanding_calls: 100_000,
        }
    }
}

/// What a responder may return: a result now, or a Deferred of one.
pub trait Respond<T> {
    /// The answer as a Deferred.
    fn into_deferred(self) -> Deferred<T>;
}

impl<T: 'static, E: Into<Failure>> Respond<T> for Result<T, E> {
    fn into_deferred(self) -> Deferred<T> {
        match self {
            Ok(v) => torsion::defer::succeed(v),
            Err(e) => fail(e),
        }
    }
}

impl<T: 'static> Respond<T> for Deferred<T> {
    fn into_deferred(self) -> Deferred<T> {
        self
    }
}

/// What a responder answers with.
enum Reply {
    /// The response, as a box.
    Box(AmpBox),
    /// An empty box, after which the connection goes to this protocol (a protocol switch).
    Switch(Rc<RefCell<dyn Protocol>>),
}

type Handler = Box<dyn Fn(&AmpBox, &AmpSender) -> Deferred<Reply>>;

/// A responder's failure as it is answered: a [`RemoteError`] whose code `C` declares fatal
/// is marked fatal.
fn mark_fatal<C: Command>(failure: Failure) -> Failure {
    match failure.trap::<RemoteError>() {
        Ok(mut e) => {
            e.fatal |= C::FATAL_ERRORS.contains(&e.code.as_str());
            Failure::new(e)
        }
        Err(other) => other,
    }
}

/// A caller's failure as `C`'s caller gets it: a [`RemoteError`] whose code `C` does not
/// declare becomes [`UNKNOWN_ERROR_CODE`] (Twisted's `UnknownRemoteError`).
fn declared<C: Command>(failure: Failure) -> Failure {
    match failure.trap::<RemoteError>() {
        Ok(e) if C::declares(&e.code) => Failure::new(e),
        Ok(e) => Failure::new(RemoteError::new(UNKNOWN_ERROR_CODE, e.description)),
        Err(other) => other,
    }
}

/// The responders of a connection, by command name (Twisted's `CommandLocator` with its
/// `@Command.responder` methods).
#[derive(Default)]
pub struct Locator {
    /// By command name, in a list: a locator has a few commands, and comparing a name with
    /// each (lengths first) costs less than hashing it.
    handlers: Vec<(&'static str, Handler)>,
    tls: Option<TlsContext>,
}

impl Locator {
    /// No responders: every command is answered `UNHANDLED`.
    pub fn new() -> Locator {
        Locator::default()
    }

    /// Responds to `C` with `f`, which gets the command's arguments and the connection's
    /// [`AmpSender`] and returns the response, or a Deferred of it. A failure that is a
    /// [`RemoteError`] is answered with its code (and closes the connection if fatal, or if
    /// the command declares the code in `fatal_errors`); any other failure is answered
    /// `UNKNOWN` and closes the connection, as Twisted does.
    pub fn responder<C, R>(mut self, f: impl Fn(C, &AmpSender) -> R + 'static) -> Locator
    where
        C: Command,
        R: Respond<C::Response>,
    {
        self.add_responder(f);
        self
    }

    /// [`responder`](Self::responder) on a locator being built in place.
    pub fn add_responder<C, R>(&mut self, f: impl Fn(C, &AmpSender) -> R + 'static)
    where
        C: Command,
        R: Respond<C::Response>,
    {
        let handler = move |b: &AmpBox, sender: &AmpSender| -> Deferred<Reply> {
            let args = match C::from_box(b) {
                Ok(args) => args,
                Err(e) => return fail(e),
            };
            let shared = Rc::downgrade(&sender.shared);
            // One step for both outcomes, not two: each step runs for every call.
            f(args, sender)
                .into_deferred()
                .add_both(move |out| match out {
                    Ok(response) => {
                        let mut b = match shared.upgrade() {
                            Some(shared) => shared.answer_box(),
                            None => AmpBox::new(),
                        };
                        response.to_box(&mut b)?;
                        Ok(Reply::Box(b))
                    }
                    Err(failure) => Err(mark_fatal::<C>(failure)),
                })
        };
        self.register(C::NAME, Box::new(handler));
    }

    /// Responds to `C` as a protocol switch (Twisted's `ProtocolSwitchCommand` responder):
    /// `f` gets the command's arguments and returns the protocol the connection goes to, or
    /// a Deferred of it. The answer is an empty box (`C`'s response is not used: Twisted
    /// answers a switch with an empty box); once it is written, the protocol gets
    /// `connection_made` with the connection's transport, then every byte that follows the
    /// command, and every event of the connection from then on. AMP is over on this
    /// connection: sending a box fails with [`AmpError::ProtocolSwitched`], and answers to
    /// commands still in progress are dropped.
    ///
    /// A failure is answered as [`responder`](Self::responder) answers one, and the
    /// connection stays AMP. A switch command sent without asking for an answer is not
    /// answered and switches nothing, as in Twisted.
    pub fn switch_responder<C, R, P>(mut self, f: impl Fn(C, &AmpSender) -> R + 'static) -> Locator
    where
        C: Command,
        R: Respond<P>,
        P: Protocol,
    {
        self.add_switch_responder(f);
        self
    }

    /// [`switch_responder`](Self::switch_responder) on a locator being built in place.
    pub fn add_switch_responder<C, R, P>(&mut self, f: impl Fn(C, &AmpSender) -> R + 'static)
    where
        C: Command,
        R: Respond<P>,
        P: Protocol,
    {
        let handler = move |b: &AmpBox, sender: &AmpSender| -> Deferred<Reply> {
            let args = match C::from_box(b) {
                Ok(args) => args,
                Err(e) => return fail(e),
            };
            f(args, sender).into_deferred().add_both(|out| match out {
                Ok(protocol) => Ok(Reply::Switch(Rc::new(RefCell::new(protocol)))),
                Err(failure) => Err(mark_fatal::<C>(failure)),
            })
        };
        self.register(C::NAME, Box::new(handler));
    }

    fn register(&mut self, name: &'static str, handler: Handler) {
        match self.handlers.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = handler,
            None => self.handlers.push((name, handler)),
        }
    }

    /// Answers the peer's [`StartTls`] with an empty box, sent in the clear, then starts TLS
    /// on the connection with `context` (Twisted's `StartTLS.responder` returning
    /// `tls_localCertificate`): on a server, a [`ServerContext`](torsion::tls::ServerContext).
    /// A second `StartTLS` on the same connection is answered `TLS_ERROR`, as is one on a
    /// transport that cannot carry TLS. Without this, `StartTLS` is `UNHANDLED`.
    pub fn start_tls(mut self, context: impl Into<TlsContext>) -> Locator {
        self.tls = Some(context.into());
        self
    }

    /// True when a responder for the command named `name` is registered.
    pub fn handles(&self, name: &str) -> bool {
        self.handler(name.as_bytes()).is_some()
    }

    fn handler(&self, name: &[u8]) -> Option<&Handler> {
        self.handlers
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, h)| h)
    }
}

/// A question's tag (`_ask`, echoed back as `_answer` or `_error`). Twisted and Torsion
/// number their questions in hex (`1`, `2`, ... `a`), and such a tag is kept as its number, so
/// that a call allocates nothing for it; any other tag is kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    Number(u64),
    Other(Vec<u8>),
}

impl Tag {
    fn read(bytes: &[u8]) -> Tag {
        match parse_hex(bytes) {
            Some(n) => Tag::Number(n),
            None => Tag::Other(bytes.to_vec()),
        }
    }

    /// Puts the tag in `b` under `key`.
    fn put(&self, b: &mut AmpBox, key: &[u8]) {
        match self {
            Tag::Number(n) => b.insert(key, hex(*n, &mut [0; 16])),
            Tag::Other(bytes) => b.insert(key, bytes),
        };
    }
}

/// `n` in lowercase hex, as Python's `b"%x" % n` writes it, at the end of `buf`.
fn hex(mut n: u64, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The number a tag written by [`hex`] stands for; `None` for anything [`hex`] does not
/// write (upper case, leading zeros, too long, empty).
fn parse_hex(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 16 || bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u64::from(digit))
    })
}

/// Hashes this side's question numbers for the table of waiting calls. The numbers are this
/// side's own counter (the peer chooses none of the keys inserted), so a multiplication that
/// spreads them over the hash's bits is enough, and much cheaper than SipHash.
#[derive(Default)]
struct NumberHasher(u64);

impl Hasher for NumberHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The keys that say what a box is (Twisted's `ampBoxReceived` looks for each in turn), found
/// in one pass over the box.
#[derive(Default)]
struct Header<'a> {
    answer: Option<&'a [u8]>,
    error: Option<&'a [u8]>,
    command: Option<&'a [u8]>,
    ask: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    fn of(b: &'a AmpBox) -> Header<'a> {
        let mut header = Header::default();
        for (key, value) in b.iter() {
            match key {
                ANSWER => header.answer = Some(value),
                ERROR => header.error = Some(value),
                COMMAND => header.command = Some(value),
                ASK => header.ask = Some(value),
                _ => {}
            }
        }
        header
    }
}

/// This side's questions waiting for answers, by number.
type Questions = HashMap<u64, Trigger<AmpBox>, BuildHasherDefault<NumberHasher>>;

/// The connection's state, shared by the protocol and its senders.
struct Shared {
    config: AmpConfig,
    locator: Locator,
    transport: RefCell<Option<Transport>>,
    parser: RefCell<BoxParser>,
    questions: RefCell<Questions>,
    counter: Cell<u64>,
    /// Why the connection is gone, once it is.
    lost: RefCell<Option<String>>,
    /// Why this side is closing it (a protocol error), reported to waiting callers.
    closing: RefCell<Option<String>>,
    /// The peer's commands in progress.
    answering: Cell<usize>,
    write_blocked: Cell<bool>,
    reading_paused: Cell<bool>,
    /// True while [`process`](Self::process) handles what was read.
    parsing: Cell<bool>,
    /// Boxes written while what was read is handled (answers, calls made by responders),
    /// given to the transport in one write at the end: one write per read, not per box.
    out: RefCell<Vec<u8>>,
    /// A box kept for the next question, so that asking one allocates none (taken while in
    /// use).
    scratch: RefCell<AmpBox>,
    /// An answer's box, kept once written for the next answer.
    spare_answer: RefCell<Option<AmpBox>>,
    /// No box may be sent: this side asked to switch protocols, or switched (Twisted's
    /// `_locked`).
    locked: Cell<bool>,
    /// The protocol the connection was handed to (Twisted's `innerProtocol`): every event
    /// goes to it.
    switched: RefCell<Option<Rc<RefCell<dyn Protocol>>>>,
    /// TLS started or starting on this connection (it starts once).
    tls_started: Cell<bool>,
    /// While this side's `StartTLS` waits for its answer: the boxes written meanwhile, sent
    /// once TLS has started (Twisted's `_startingTLSBuffer`).
    tls_buffer: RefCell<Option<Vec<u8>>>,
}

/// A handle on an AMP connection that calls the peer: cheap to clone, usable from
/// responders, callbacks and anywhere else on the reactor's thread.
#[derive(Clone)]
pub struct AmpSender {
    shared: Rc<Shared>,
}

/// An AMP connection (Twisted's `AMP`): answers the peer's commands with its [`Locator`]'s
/// responders, and calls the peer through its [`sender`](Self::sender).
pub struct Amp {
    shared: Rc<Shared>,
}

impl Amp {
    /// A connection answering with `locator`'s responders, with the default limits.
    pub fn new(locator: Locator) -> Amp {
        Amp::with_config(locator, AmpConfig::default())
    }

    /// A connection with the given limits.
    pub fn with_config(locator: Locator, config: AmpConfig) -> Amp {
        Amp {
            shared: Rc::new(Shared {
                parser: RefCell::new(BoxParser::new(config.max_box_size)),
                config,
                locator,
                transport: RefCell::new(None),
                questions: RefCell::new(Questions::default()),
                counter: Cell::new(0),
                lost: RefCell::new(None),
                closing: RefCell::new(None),
                answering: Cell::new(0),
                write_blocked: Cell::new(false),
                reading_paused: Cell::new(false),
                parsing: Cell::new(false),
                out: RefCell::default(),
                scratch: RefCell::default(),
                spare_answer: RefCell::default(),
                locked: Cell::new(false),
                switched: RefCell::new(None),
                tls_started: Cell::new(false),
                tls_buffer: RefCell::new(None),
            }),
        }
    }

    /// The handle that calls the peer (before the connection is made, calls fail).
    pub fn sender(&self) -> AmpSender {
        AmpSender {
            shared: self.shared.clone(),
        }
    }
}

/// Pauses reading while the connection's write buffer is over its high watermark: a peer
/// that asks and never reads the answers stops being read.
struct WriteGate(Weak<Shared>);

impl Producer for WriteGate {
    fn pause_producing(&self) {
        if let Some(s) = self.0.upgrade() {
            s.write_blocked.set(true);
            Shared::update_reading(&s);
        }
    }
    fn resume_producing(&self) {
        if let Some(s) = self.0.upgrade() {
            s.write_blocked.set(false);
            Shared::update_reading(&s);
        }
    }
    fn stop_producing(&self) {}
}

impl Protocol for Amp {
    fn connection_made(&mut self, transport: &Transport) {
        *self.shared.transport.borrow_mut() = Some(transport.clone());
        let gate = Rc::new(WriteGate(Rc::downgrade(&self.shared)));
        if let Err(e) = transport.register_producer(gate, true) {
            tracing::debug!(target: LOG, "AMP without write-buffer flow control: {e}");
        }
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        if let Some(inner) = self.shared.switched_to() {
            return inner.borrow_mut().data_received(transport, data);
        }
        self.shared.parser.borrow_mut().push(data);
        Shared::process(&self.shared);
    }

    fn read_connection_lost(&mut self, transport: &Transport) {
        match self.shared.switched_to() {
            Some(inner) => inner.borrow_mut().read_connection_lost(transport),
            None => transport.lose_connection(),
        }
    }

    fn write_connection_lost(&mut self, transport: &Transport) {
        if let Some(inner) = self.shared.switched_to() {
            inner.borrow_mut().write_connection_lost(transport);
        }
    }

    fn drain(&mut self, transport: &Transport) {
        if let Some(inner) = self.shared.switched_to() {
            inner.borrow_mut().drain(transport);
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let why = match self.shared.closing.borrow_mut().take() {
            Some(why) => why,
            None => reason.to_string(),
        };
        if let Some(inner) = self.shared.switched_to() {
            inner.borrow_mut().connection_lost(reason);
        }
        *self.shared.lost.borrow_mut() = Some(why.clone());
        *self.shared.transport.borrow_mut() = None;
        *self.shared.out.borrow_mut() = Vec::new();
        let questions = std::mem::take(&mut *self.shared.questions.borrow_mut());
        for (_, trigger) in questions {
            let _ = trigger.try_errback(AmpError::ConnectionLost {
                reason: why.clone(),
            });
        }
    }
}

/// Python's `repr` of a bytes value, as Twisted puts command names in descriptions.
fn py_bytes_repr(b: &[u8]) -> String {
    let mut s = String::from("b'");
    for &c in b {
        match c {
            b'\'' => s.push_str("\\'"),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('\'');
    s
}

impl Shared {
    fn transport(&self) -> Option<Transport> {
        self.transport.borrow().clone()
    }

    fn should_pause(&self) -> bool {
        self.write_blocked.get()
            || self.answering.get() >= self.config.max_pending_answers
            || self
                .tls_buffer
                .borrow()
                .as_ref()
                .is_some_and(|b| b.len() > self.config.max_box_size)
    }

    /// Writes a box: held while this side's `StartTLS` waits, else encoded in the output
    /// buffer, which goes to the transport at once or, while what was read is handled, at
    /// the end of it.
    fn write_box(&self, t: &Transport, b: &AmpBox) -> Result<(), TooLong> {
        if let Some(held) = self.tls_buffer.borrow_mut().as_mut() {
            return b.write_to(held);
        }
        b.write_to(&mut self.out.borrow_mut())?;
        if !self.parsing.get() {
            self.flush(t);
        }
        Ok(())
    }

    /// Gives the output buffer to the transport: before anything that must follow what
    /// was written (closing, starting TLS), and at the end of handling a read.
    fn flush(&self, t: &Transport) {
        let mut out = self.out.borrow_mut();
        if !out.is_empty() {
            t.write(&out);
            out.clear();
            if out.capacity() > 1 << 20 {
                *out = Vec::new(); // a burst of large answers: do not keep its memory
            }
        }
    }

    /// Closes the connection once what was written is sent.
    fn close(&self, t: &Transport) {
        self.flush(t);
        t.lose_connection();
    }

    /// The protocol the connection was handed to, if it was.
    fn switched_to(&self) -> Option<Rc<RefCell<dyn Protocol>>> {
        self.switched.borrow().clone()
    }

    /// Hands the connection to `protocol` (Twisted's `_switchTo`): what was written goes
    /// first, AMP stops, flow control is the new protocol's, and it gets `connection_made`
    /// and the bytes received after the last box.
    fn switch_to(me: &Rc<Shared>, t: &Transport, protocol: Rc<RefCell<dyn Protocol>>) {
        me.flush(t);
        me.locked.set(true);
        *me.switched.borrow_mut() = Some(protocol.clone());
        t.unregister_producer();
        if me.reading_paused.replace(false) {
            t.resume_producing();
        }
        let rest = me.parser.borrow_mut().take_rest();
        protocol.borrow_mut().connection_made(t);
        if !rest.is_empty() {
            protocol.borrow_mut().data_received(t, &rest);
        }
    }

    /// Pauses or resumes reading as the limits say, and reads what waits once resumed.
    fn update_reading(me: &Rc<Shared>) {
        if me.switched.borrow().is_some() {
            return;
        }
        let Some(t) = me.transport() else { return };
        if me.should_pause() {
            if !me.reading_paused.replace(true) {
                t.pause_producing();
            }
        } else if me.reading_paused.replace(false) {
            t.resume_producing();
            Shared::process(me);
        }
    }

    /// Ends the connection after a protocol error, as Twisted does (it logs and drops it).
    fn protocol_error(&self, e: &AmpError) {
        tracing::warn!(target: LOG, "AMP protocol error, closing the connection: {e}");
        self.closing
            .borrow_mut()
            .get_or_insert_with(|| e.to_string());
        if let Some(t) = self.transport() {
            self.close(&t);
        }
    }

    /// Handles every whole box received, unless the limits say to wait.
    fn process(me: &Rc<Shared>) {
        if me.parsing.replace(true) {
            return; // a responder answered while an outer call is reading: it goes on
        }
        loop {
            if me.should_pause() {
                Shared::update_reading(me);
                break;
            }
            if me.lost.borrow().is_some()
                || me.closing.borrow().is_some()
                || me.switched.borrow().is_some()
            {
                break;
            }
            let next = me.parser.borrow_mut().next_box();
            match next {
                Ok(Some(b)) => Shared::box_received(me, b),
                Ok(None) => break,
                Err(e) => {
                    me.protocol_error(&e);
                    break;
                }
            }
        }
        me.parsing.set(false);
        if let Some(t) = me.transport() {
            me.flush(&t);
        }
    }

    /// A box to put an answer in: the last one written, or a new one.
    fn answer_box(&self) -> AmpBox {
        match self.spare_answer.borrow_mut().take() {
            Some(mut b) => {
                b.clear();
                b
            }
            None => AmpBox::with_capacity(4, 64),
        }
    }

    /// Gives a box read and handled back to the parser, to read the next box into.
    fn recycle(&self, b: AmpBox) {
        if let Ok(mut parser) = self.parser.try_borrow_mut() {
            parser.recycle(b);
        }
    }

    /// The waiting question `tag` answers, taken out of the table.
    fn take_question(&self, tag: &[u8]) -> Option<Trigger<AmpBox>> {
        self.questions.borrow_mut().remove(&parse_hex(tag)?)
    }

    /// Twisted's `ampBoxReceived`. (An answer keeps its `_answer` key: a response's reader
    /// ignores keys it does not know.)
    fn box_received(me: &Rc<Shared>, b: AmpBox) {
        let header = Header::of(&b);
        if let Some(tag) = header.answer {
            let Some(trigger) = me.take_question(tag) else {
                let tag = tag.to_vec();
                return me.protocol_error(&AmpError::UnknownAnswer { tag });
            };
            let _ = trigger.try_callback(b);
        } else if let Some(tag) = header.error {
            let (Some(code), Some(description)) = (b.get(ERROR_CODE), b.get(ERROR_DESCRIPTION))
            else {
                return me.protocol_error(&AmpError::MalformedError);
            };
            let code = String::from_utf8_lossy(code).into_owned();
            let description = String::from_utf8_lossy(description).into_owned();
            let Some(trigger) = me.take_question(tag) else {
                let tag = tag.to_vec();
                return me.protocol_error(&AmpError::UnknownAnswer { tag });
            };
            let failure = if code == UNHANDLED_ERROR_CODE {
                Failure::new(UnhandledCommand { description })
            } else {
                Failure::new(RemoteError::new(code, description))
            };
            let _ = trigger.try_errback(failure);
        } else if let Some(name) = header.command {
            Shared::command_received(me, name, header.ask, &b);
            me.recycle(b);
        } else {
            me.protocol_error(&AmpError::EmptyBox);
        }
    }

    /// Twisted's `_commandReceived`: runs the responder and answers.
    fn command_received(me: &Rc<Shared>, name: &[u8], ask: Option<&[u8]>, b: &AmpBox) {
        let ask = ask.map(Tag::read);
        if name == StartTls::NAME.as_bytes() {
            if let Some(context) = me.locator.tls.clone() {
                return Shared::answer_start_tls(me, ask, context);
            }
        }
        let sender = AmpSender { shared: me.clone() };
        let outcome: Deferred<Reply> = match me.locator.handler(name) {
            Some(handler) => handler(b, &sender),
            None => fail(RemoteError::new(
                UNHANDLED_ERROR_CODE,
                format!("Unhandled Command: {}", py_bytes_repr(name)),
            )),
        };
        me.answering.set(me.answering.get() + 1);
        let weak = Rc::downgrade(me);
        // The chain runs when the responder's answer comes; the handle is not needed.
        drop(outcome.add_both(move |out| {
            if let Some(me) = weak.upgrade() {
                me.answering.set(me.answering.get() - 1);
                match out {
                    Ok(Reply::Box(b)) => me.answer(ask, Ok(b)),
                    Ok(Reply::Switch(protocol)) => Shared::answer_switch(&me, ask, protocol),
                    Err(failure) => me.answer(ask, Err(failure)),
                }
                Shared::update_reading(&me);
            }
            Ok::<(), Failure>(())
        }));
    }

    /// Answers a protocol switch with an empty box, then hands the connection over
    /// (Twisted's `_SwitchBox._sendTo`). Without `_ask` nothing is answered and nothing
    /// switches, as in Twisted; nor once this side has asked to switch itself.
    fn answer_switch(me: &Rc<Shared>, ask: Option<Tag>, protocol: Rc<RefCell<dyn Protocol>>) {
        let Some(t) = me.transport() else { return };
        if ask.is_none() || me.locked.get() {
            return;
        }
        me.answer(ask, Ok(AmpBox::new()));
        Shared::switch_to(me, &t, protocol);
    }

    /// Answers `StartTLS` in the clear, then starts TLS (Twisted's `_TLSBox._sendTo`).
    fn answer_start_tls(me: &Rc<Shared>, ask: Option<Tag>, context: TlsContext) {
        let Some(t) = me.transport() else { return };
        if ask.is_none() {
            return; // as Twisted: without `_ask` nothing is answered and TLS does not start
        }
        if me.tls_started.get() {
            let refused = RemoteError::new("TLS_ERROR", AmpError::OnlyOneTls.to_string());
            return me.answer(ask, Err(Failure::new(refused)));
        }
        me.tls_started.set(true);
        me.answer(ask, Ok(AmpBox::new()));
        me.flush(&t); // the answer goes in the clear
        if let Err(e) = t.start_tls(context) {
            // The peer has been told yes and is starting TLS: nothing sensible can follow.
            me.protocol_error(&AmpError::Tls {
                reason: e.to_string(),
            });
        }
    }

    /// Sends the answer to a question (nothing for a command sent without `_ask`).
    fn answer(&self, ask: Option<Tag>, out: Result<AmpBox, Failure>) {
        if self.locked.get() {
            return; // switching protocols: as Twisted's `_safeEmit`, the answer is dropped
        }
        let Some(t) = self.transport() else { return };
        let Some(tag) = ask else {
            if let Err(failure) = out {
                // Twisted's unhandledError: nobody can be told, so the connection goes.
                tracing::error!(target: LOG, "AMP command without answer failed: {failure}");
                self.close(&t);
            }
            return;
        };
        let (reply, close) = match out {
            Ok(mut reply) => {
                tag.put(&mut reply, ANSWER);
                (reply, false)
            }
            Err(failure) => {
                let mut reply = AmpBox::new();
                let close = match failure.trap::<RemoteError>() {
                    Ok(e) => {
                        reply.insert(ERROR_CODE, e.code);
                        reply.insert(ERROR_DESCRIPTION, e.description);
                        e.fatal
                    }
                    Err(failure) => {
                        tracing::error!(
                            target: LOG,
                            "AMP responder failed, closing the connection: {failure}"
                        );
                        reply.insert(ERROR_CODE, UNKNOWN_ERROR_CODE);
                        reply.insert(ERROR_DESCRIPTION, "Unknown Error");
                        true
                    }
                };
                tag.put(&mut reply, ERROR);
                (reply, close)
            }
        };
        if let Err(too_long) = self.write_box(&t, &reply) {
            // As Twisted: an answer that cannot be written is an unhandled error.
            tracing::error!(target: LOG, "AMP answer cannot be sent: {too_long}");
            self.close(&t);
            return;
        }
        if reply.worth_keeping() {
            *self.spare_answer.borrow_mut() = Some(reply);
        }
        if close {
            self.close(&t);
        }
    }
}

impl AmpSender {
    /// Calls `command` on the peer (Twisted's `callRemote`): the Deferred fires with its
    /// response, or fails with a [`RemoteError`] (its code one the command declares, or
    /// [`UNKNOWN_ERROR_CODE`]), [`UnhandledCommand`], or an [`AmpError`]: a value over the
    /// limits ([`AmpError::TooLong`], nothing is sent and the connection stays), the
    /// connection gone ([`AmpError::ConnectionLost`]), too many calls waiting.
    ///
    /// It always asks for an answer; [`send`](Self::send) sends without asking, for commands
    /// declared `requires_answer false`.
    pub fn call_remote<C: Command>(&self, command: C) -> Deferred<C::Response> {
        let d = Deferred::<AmpBox>::new();
        let trigger = d.trigger();
        if let Err(e) = self.send_box(&command, C::NAME, Some(trigger)) {
            return fail(e);
        }
        let shared = Rc::downgrade(&self.shared);
        // One step for both outcomes, not two: each step runs for every call.
        d.add_both(move |out| match out {
            Ok(b) => {
                let response = C::Response::from_box(&b);
                if let Some(shared) = shared.upgrade() {
                    shared.recycle(b);
                }
                Ok(response?)
            }
            Err(failure) => Err(declared::<C>(failure)),
        })
    }

    /// Calls `command` as a protocol switch (Twisted's `callRemote` of a
    /// `ProtocolSwitchCommand` with `_protoToSwitchToFactory`): once the peer's answer comes,
    /// `protocol` makes the protocol the connection goes to, which gets `connection_made` with
    /// the connection's transport, then the bytes that followed the answer and every event of
    /// the connection from then on; the Deferred fires with it. (`C`'s response is not read:
    /// Twisted answers a switch with an empty box.)
    ///
    /// From the call on, no AMP box may be sent ([`AmpError::ProtocolSwitched`]) and answers
    /// to the peer's commands are dropped, as in Twisted. If the peer refuses (a
    /// [`RemoteError`], [`UnhandledCommand`]) or the connection ends first, the Deferred
    /// fails, `protocol` is not called, and the connection stays AMP.
    ///
    /// ```
    /// use torsion::{Protocol, Transport};
    /// use torsion_amp::{command, Amp, Locator, RemoteError};
    ///
    /// command! {
    ///     /// Hands the connection to `Shout`.
    ///     pub struct ToShout {}
    ///     response ToShoutResult {}
    /// }
    ///
    /// /// Answers bytes in upper case.
    /// struct Shout;
    /// impl Protocol for Shout {
    ///     fn data_received(&mut self, t: &Transport, data: &[u8]) {
    ///         t.write(&data.to_ascii_uppercase());
    ///     }
    /// }
    ///
    /// /// Says hello, keeps what comes back.
    /// #[derive(Default)]
    /// struct Hello(Vec<u8>);
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &Transport) {
    ///         t.write(b"hello");
    ///     }
    ///     fn data_received(&mut self, _: &Transport, data: &[u8]) {
    ///         self.0.extend_from_slice(data);
    ///     }
    /// }
    ///
    /// let server = Amp::new(Locator::new().switch_responder(|_: ToShout, _| {
    ///     Ok::<_, RemoteError>(Shout)
    /// }));
    /// let client = Amp::new(Locator::new());
    /// let caller = client.sender();
    /// let mut pump = torsion::testing::connected_pair(client, server);
    /// let hello = caller.call_switch(ToShout {}, Hello::default);
    /// pump.flush();
    /// let hello = hello.result().unwrap().unwrap();
    /// assert_eq!(hello.borrow().0, b"HELLO");
    /// ```
    pub fn call_switch<C: Command, P: Protocol>(
        &self,
        command: C,
        protocol: impl FnOnce() -> P + 'static,
    ) -> Deferred<Rc<RefCell<P>>> {
        let d = Deferred::<AmpBox>::new();
        let trigger = d.trigger();
        if let Err(e) = self.send_box(&command, C::NAME, Some(trigger)) {
            return fail(e);
        }
        self.shared.locked.set(true);
        let shared = Rc::downgrade(&self.shared);
        d.add_both(move |out| {
            let me = shared.upgrade();
            match (out, me.as_ref().and_then(|me| Some((me, me.transport()?)))) {
                (Ok(_), Some((me, t))) => {
                    let p = Rc::new(RefCell::new(protocol()));
                    Shared::switch_to(me, &t, p.clone());
                    Ok(p)
                }
                (Ok(_), None) => Err(Failure::new(AmpError::ConnectionLost {
                    reason: "closed before the protocol switch".into(),
                })),
                (Err(failure), _) => {
                    if let Some(me) = me {
                        me.locked.set(false);
                    }
                    Err(declared::<C>(failure))
                }
            }
        })
    }

    /// Sends `command` without asking for an answer (Twisted's `callRemote` of a command
    /// whose `requiresAnswer` is false).
    pub fn send<C: Command>(&self, command: C) -> Result<(), Failure> {
        self.send_box(&command, C::NAME, None)
    }

    fn send_box<C: Record>(
        &self,
        command: &C,
        name: &str,
        trigger: Option<Trigger<AmpBox>>,
    ) -> Result<(), Failure> {
        let s = &self.shared;
        if let Some(why) = s.lost.borrow().as_ref() {
            return Err(AmpError::ConnectionLost {
                reason: why.clone(),
            }
            .into());
        }
        let Some(t) = s.transport() else {
            return Err(AmpError::ConnectionLost {
                reason: "not connected".into(),
            }
            .into());
        };
        if s.locked.get() {
            return Err(AmpError::ProtocolSwitched.into());
        }
        if trigger.is_some() && s.questions.borrow().len() >= s.config.max_outstanding_calls {
            return Err(AmpError::TooManyOutstanding {
                limit: s.config.max_outstanding_calls,
            }
            .into());
        }
        let mut b = std::mem::take(&mut *s.scratch.borrow_mut());
        b.clear();
        let sent = self.send_in(&t, &mut b, command, name, trigger);
        *s.scratch.borrow_mut() = b;
        sent
    }

    /// [`send_box`](Self::send_box) with `b`, empty, to put the command in.
    fn send_in<C: Record>(
        &self,
        t: &Transport,
        b: &mut AmpBox,
        command: &C,
        name: &str,
        trigger: Option<Trigger<AmpBox>>,
    ) -> Result<(), Failure> {
        let s = &self.shared;
        command.to_box(b)?;
        b.insert(COMMAND, name);
        let number = s.counter.get() + 1;
        s.counter.set(number);
        if trigger.is_some() {
            Tag::Number(number).put(b, ASK);
        }
        s.write_box(t, b).map_err(AmpError::from)?;
        if let Some(trigger) = trigger {
            s.questions.borrow_mut().insert(number, trigger);
        }
        Ok(())
    }

    /// Starts TLS on the connection (Twisted's `callRemote(StartTLS, ...)`): sends
    /// [`StartTls`], and when the peer answers, starts TLS with `context` (on a client, a
    /// [`ClientContext`](torsion::tls::ClientContext)) before the Deferred fires. Boxes
    /// written while the answer is awaited (calls, answers to the peer) are held and sent
    /// over TLS, as Twisted does; a peer that sends more than
    /// [`AmpConfig::max_box_size`] of questions meanwhile stops being read until then.
    ///
    /// Fails with [`AmpError::OnlyOneTls`] if TLS was started before; with the peer's
    /// refusal ([`UnhandledCommand`], or [`RemoteError`] `TLS_ERROR`); with
    /// [`AmpError::Tls`] if the transport cannot start TLS (the connection then closes).
    /// If the peer refuses while boxes are held, the connection closes rather than send them
    /// in the clear (Twisted holds them forever).
    pub fn call_start_tls(&self, context: impl Into<TlsContext>) -> Deferred<()> {
        let s = &self.shared;
        if s.tls_started.get() {
            return fail(AmpError::OnlyOneTls);
        }
        let answered = self.call_remote(StartTls {});
        if answered.called() {
            return answered.add_callback(|_| ()); // failed before anything was sent
        }
        s.tls_started.set(true);
        *s.tls_buffer.borrow_mut() = Some(Vec::new());
        let context = context.into();
        let weak = Rc::downgrade(s);
        answered.add_both(move |out| {
            let Some(me) = weak.upgrade() else {
                return out.map(|_| ());
            };
            let held = me.tls_buffer.borrow_mut().take().unwrap_or_default();
            let result = match out {
                Ok(_) => match me.transport() {
                    Some(t) => {
                        me.flush(&t); // what was written before goes in the clear
                        match t.start_tls(context) {
                            Ok(()) => {
                                if !held.is_empty() {
                                    t.write(&held);
                                }
                                Ok(())
                            }
                            Err(e) => {
                                let e = AmpError::Tls {
                                    reason: e.to_string(),
                                };
                                me.protocol_error(&e);
                                Err(Failure::new(e))
                            }
                        }
                    }
                    None => Err(Failure::new(AmpError::ConnectionLost {
                        reason: "closed before TLS started".into(),
                    })),
                },
                Err(refused) => {
                    me.tls_started.set(false);
                    if !held.is_empty() {
                        me.protocol_error(&AmpError::Tls {
                            reason: format!("the peer refused StartTLS: {refused}"),
                        });
                    }
                    Err(refused)
                }
            };
            Shared::update_reading(&me);
            result
        })
    }

    /// The connection's transport, while it is up.
    pub fn transport(&self) -> Option<Transport> {
        self.shared.transport()
    }

    /// True while the connection is up.
    pub fn is_connected(&self) -> bool {
        self.shared.transport().is_some()
    }

    /// This side's questions waiting for answers.
    pub fn outstanding_calls(&self) -> usize {
        self.shared.questions.borrow().len()
    }

    /// The peer's commands being answered now.
    pub fn pending_answers(&self) -> usize {
        self.shared.answering.get()
    }

    /// True while reading from the peer is paused by the limits.
    pub fn reading_paused(&self) -> bool {
        self.shared.reading_paused.get()
    }
}
