//! An SMTP client (Twisted's `twisted.mail.smtp.sendmail` and `ESMTPSender`): hand a
//! message to a server, or to a domain's mail exchangers, and get a [`Deferred`] of what
//! each recipient's server said.
//!
//! - [`send_mail`] talks to one server (Twisted's `sendmail(smtphost, ...)`);
//!   [`send_mail_to_domain`] finds the domain's MX hosts with a
//!   [`Resolver`] and tries them in preference order, the domain's
//!   own address when it has no MX (RFC 5321 section 5.1), the next host after a failure
//!   to connect, a time-out or a 4xx reply; a 5xx reply is final.
//! - EHLO (HELO when EHLO is refused); STARTTLS as [`TlsPolicy`] says (`Required`: no
//!   STARTTLS or a failed one ends the attempt before anything is sent); AUTH PLAIN or LOGIN
//!   when [`SendOptions::auth`] is set (after TLS unless the policy is `Off`).
//! - MAIL, RCPT and DATA sent together when the server offers PIPELINING (RFC 2920), one at a
//!   time otherwise; the message's lines are sent with CRLF endings and dot-stuffed.
//! - Each recipient is accepted or refused on its own ([`Sent::refused`]); the send fails only
//!   when none is accepted or the message itself is refused.
//! - The message is a [`MessageBody`]: bytes in memory, or a file or any reader (a producer
//!   of the message, as Twisted's `sendmail` takes a file) read while it is sent, a chunk
//!   each time the connection's write buffer has drained ([`FileSender`]), dot-stuffed as it
//!   goes, so that a message of any size costs a bounded amount of memory and a slow server
//!   slows the reading.
//! - Every reply is awaited at most [`SendOptions::timeout`] (five minutes by default, RFC
//!   5321 section 4.5.3.2's floor for most commands); replies are bounded in size.
//!
//! ```no_run
//! use torsion_mail::smtp_client::{send_mail, SendOptions, TlsPolicy};
//!
//! # async fn demo() -> Result<(), torsion::Failure> {
//! let options = SendOptions {
//!     tls: TlsPolicy::Required(torsion::tls::ClientContext::new()?),
//!     auth: Some(("alice".into(), "wonderland".into())),
//!     ..SendOptions::new("client.example.org")
//! };
//! let message = b"From: alice@example.org\r\nSubject: hi\r\n\r\nHello.\r\n".to_vec();
//! let sent = send_mail("smtp.example.org", 587, "alice@example.org", &["bob@example.net"], message, options).await?;
//! assert!(sent.refused.is_empty());
//! # Ok(()) }
//! ```
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::rc::Rc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use torsion::defer::Deferred;
use torsion::endpoints::{connect_protocol, ClientDescription, ClientEndpoint};
use torsion::protocols::basic::FileSender;
use torsion::protocols::policies::IdleTimeout;
use torsion::tls::ClientContext;
use torsion::{reactor, ConnectionEnd, Failure, Protocol, Transport};
use torsion_names::error::{AuthoritativeDomainError, DnsNameError, DomainError};
use torsion_names::Resolver;

use crate::pop3_core::DotStuffer;

/// Whether and how to use STARTTLS.
#[derive(Clone, Debug, Default)]
pub enum TlsPolicy {
    /// Never.
    #[default]
    Off,
    /// When the server offers it; in the clear otherwise (a failed handshake still ends the
    /// attempt).
    Opportunistic(ClientContext),
    /// Always: a server without STARTTLS is not sent the message.
    Required(ClientContext),
}

/// How to send.
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// This client's name, for EHLO.
    pub helo: String,
    /// STARTTLS.
    pub tls: TlsPolicy,
    /// A user name and password for AUTH (PLAIN, or LOGIN when PLAIN is not offered).
    pub auth: Option<(String, String)>,
    /// How long to wait for each reply, in seconds (300).
    pub timeout: f64,
}

impl SendOptions {
    /// Options saying `helo` in EHLO, no TLS, no AUTH, five-minute replies.
    pub fn new(helo: &str) -> SendOptions {
        SendOptions {
            helo: helo.to_owned(),
            tls: TlsPolicy::Off,
            auth: None,
            timeout: 300.0,
        }
    }
}

/// The message [`send_mail`] sends, its lines ending LF or CRLF: whole in memory, or read
/// while it is sent.
///
/// ```
/// use torsion_mail::smtp_client::MessageBody;
///
/// let in_memory: MessageBody = b"Subject: hi\r\n\r\nHello\r\n".to_vec().into();
/// let from_a_file = MessageBody::File("/var/spool/outgoing/1.eml".into());
/// let from_a_reader = MessageBody::reader(std::io::Cursor::new(b"Subject: hi\n\nHello\n"));
/// # let _ = (in_memory, from_a_file, from_a_reader);
/// ```
#[derive(Clone)]
pub enum MessageBody {
    /// The whole message, in memory.
    Bytes(Vec<u8>),
    /// A file, opened when the server is ready for the message (again for each server
    /// [`send_mail_to_domain`] tries) and read a chunk at a time.
    File(PathBuf),
    /// A reader (any producer of the message's bytes), read a chunk at a time as the
    /// connection takes them. It is read once: a second server tried after the first took
    /// part of it is not sent the message (the send fails with
    /// [`SmtpClientError::Message`]). Made by [`MessageBody::reader`].
    Reader(Rc<RefCell<Option<Box<dyn Read>>>>),
}

impl MessageBody {
    /// A message read from `reader` while it is sent.
    pub fn reader(reader: impl Read + 'static) -> MessageBody {
        MessageBody::Reader(Rc::new(RefCell::new(Some(Box::new(reader)))))
    }

    /// What to read the message from, for a body not in memory.
    fn open(self) -> io::Result<Box<dyn Read>> {
        match self {
            MessageBody::Bytes(b) => Ok(Box::new(io::Cursor::new(b))),
            MessageBody::File(path) => Ok(Box::new(std::fs::File::open(path)?)),
            MessageBody::Reader(r) => r.borrow_mut().take().ok_or_else(|| {
                io::Error::other("the message's reader was already read by an earlier attempt")
            }),
        }
    }
}

impl fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageBody::Bytes(b) => write!(f, "MessageBody::Bytes({} bytes)", b.len()),
            MessageBody::File(p) => f.debug_tuple("MessageBody::File").field(p).finish(),
            MessageBody::Reader(_) => f.write_str("MessageBody::Reader(..)"),
        }
    }
}

impl From<Vec<u8>> for MessageBody {
    fn from(bytes: Vec<u8>) -> MessageBody {
        MessageBody::Bytes(bytes)
    }
}

impl From<&[u8]> for MessageBody {
    fn from(bytes: &[u8]) -> MessageBody {
        MessageBody::Bytes(bytes.to_vec())
    }
}

impl From<PathBuf> for MessageBody {
    fn from(path: PathBuf) -> MessageBody {
        MessageBody::File(path)
    }
}

/// A message handed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The server that took it (`host:port`).
    pub server: String,
    /// The recipients it accepted.
    pub accepted: Vec<String>,
    /// The recipients it refused, with its reply code and text.
    pub refused: Vec<(String, u16, String)>,
    /// Its reply to the end of the message.
    pub reply: (u16, String),
}

/// Why a message was not handed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtpClientError {
    /// A reply refused it: the command (`MAIL`, `DATA`, ...), the code and the text.
    Refused(String, u16, String),
    /// Every recipient was refused.
    AllRecipientsRefused(Vec<(String, u16, String)>),
    /// TLS was required but the server offers no STARTTLS, or it failed.
    TlsUnavailable(String),
    /// AUTH was asked for but the server offers neither PLAIN nor LOGIN.
    AuthUnavailable,
    /// The server's bytes were not SMTP replies.
    Protocol(String),
    /// A reply did not come in time.
    TimedOut,
    /// The connection ended (or could not be made).
    ConnectionLost(String),
    /// No mail exchanger for the domain (a null MX, RFC 7505), or none could be reached:
    /// each host tried and why.
    NoMailExchanger(Vec<(String, String)>),
    /// Arguments that cannot be sent (a line break in an address).
    BadArgument(String),
    /// The message could not be read (its file, its reader) while it was being sent; the
    /// connection was closed mid-message, so the server discards what it got.
    Message(String),
}

impl SmtpClientError {
    /// Whether another server (the next MX) might do better: a 4xx, a time-out, a lost
    /// connection.
    pub fn is_transient(&self) -> bool {
        match self {
            SmtpClientError::Refused(_, code, _) => (400..500).contains(code),
            SmtpClientError::AllRecipientsRefused(r) => {
                r.iter().all(|(_, c, _)| (400..500).contains(c))
            }
            SmtpClientError::TimedOut | SmtpClientError::ConnectionLost(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for SmtpClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpClientError::Refused(cmd, code, text) => write!(f, "{cmd} refused: {code} {text}"),
            SmtpClientError::AllRecipientsRefused(r) => {
                write!(f, "every recipient was refused: {r:?}")
            }
            SmtpClientError::TlsUnavailable(why) => write!(f, "TLS required: {why}"),
            SmtpClientError::AuthUnavailable => {
                f.write_str("the server offers no AUTH PLAIN or LOGIN")
            }
            SmtpClientError::Protocol(what) => write!(f, "not an SMTP reply: {what}"),
            SmtpClientError::TimedOut => f.write_str("the SMTP server did not answer in time"),
            SmtpClientError::ConnectionLost(why) => write!(f, "the SMTP connection ended: {why}"),
            SmtpClientError::NoMailExchanger(tried) => {
                write!(f, "no mail exchanger took it: {tried:?}")
            }
            SmtpClientError::BadArgument(what) => write!(f, "cannot send: {what}"),
            SmtpClientError::Message(why) => write!(f, "cannot read the message: {why}"),
        }
    }
}

impl std::error::Error for SmtpClientError {}

/// The longest reply taken, all its lines together.
const MAX_REPLY: usize = 64 << 10;

/// Sends `message` (its lines ending LF or CRLF; bytes, or a [`MessageBody`] read while it
/// is sent) from `from` to `to` through the server at `host:port`.
pub fn send_mail(
    host: &str,
    port: u16,
    from: &str,
    to: &[&str],
    message: impl Into<MessageBody>,
    options: SendOptions,
) -> Deferred<Sent> {
    let endpoint = ClientEndpoint::new(
        &reactor(),
        ClientDescription::Tcp {
            host: host.to_owned(),
            port,
            timeout: options.timeout.min(30.0),
            bind_address: None,
        },
    );
    send_through(
        &endpoint,
        &format!("{host}:{port}"),
        from,
        to,
        message,
        options,
    )
}

/// Sends through a connection made by `endpoint` (any transport); `server` names it in
/// [`Sent::server`].
pub fn send_through(
    endpoint: &ClientEndpoint,
    server: &str,
    from: &str,
    to: &[&str],
    message: impl Into<MessageBody>,
    options: SendOptions,
) -> Deferred<Sent> {
    let message = message.into();
    let bad = std::iter::once(from)
        .chain(to.iter().copied())
        .find(|a| a.contains(['\r', '\n', '<', '>']));
    if let Some(a) = bad {
        return torsion::defer::fail(Failure::new(SmtpClientError::BadArgument(format!(
            "address {a:?}"
        ))));
    }
    if to.is_empty() {
        return torsion::defer::fail(Failure::new(SmtpClientError::BadArgument(
            "no recipients".into(),
        )));
    }
    let done = Deferred::new();
    let trigger = done.trigger();
    let state = Rc::new(RefCell::new(Session {
        options,
        from: from.to_owned(),
        to: to.iter().map(|s| s.to_string()).collect(),
        message: Some(message),
        server: server.to_owned(),
        stage: Stage::Greeting,
        reply: Vec::new(),
        reply_lines: Vec::new(),
        input: Vec::new(),
        expect: VecDeque::new(),
        extensions: Vec::new(),
        tls_on: false,
        pipelined: false,
        accepted: Vec::new(),
        refused: Vec::new(),
        failure: None,
        finish: Some(Box::new(move |r: Result<Sent, SmtpClientError>| match r {
            Ok(sent) => trigger.callback(sent),
            Err(e) => trigger.errback(Failure::new(e)),
        })),
        transport: None,
        idle: Rc::new(IdleTimeout::new()),
    }));
    let protocol = SmtpSender {
        state: state.clone(),
    };
    drop(
        connect_protocol(endpoint, protocol).add_both(move |outcome| {
            if let Err(f) = outcome {
                finish(&state, Err(SmtpClientError::ConnectionLost(f.to_string())));
            }
            Ok::<(), Failure>(())
        }),
    );
    done
}

/// Sends to `domain`'s mail exchangers, found with `resolver`, in preference order (the
/// domain's own address when it has none); each is reached on `port` (25 for mail between
/// servers). Fires with the first that takes the message.
pub fn send_mail_to_domain(
    resolver: Rc<dyn Resolver>,
    domain: &str,
    port: u16,
    from: &str,
    to: &[&str],
    message: impl Into<MessageBody>,
    options: SendOptions,
) -> Deferred<Sent> {
    let message = message.into();
    let domain = domain.trim_end_matches('.').to_owned();
    let d = domain.clone();
    let from = from.to_owned();
    let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    resolver
        .lookup_mail_exchange(&domain)
        .add_both(move |answer| {
            let mut hosts: Vec<(u16, String)> = match answer {
                Ok(answer) => answer
                    .answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        hickory_proto::rr::RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange.to_ascii().trim_end_matches('.').to_owned(),
                        )),
                        _ => None,
                    })
                    .collect(),
                // No such domain or no MX: the domain itself (RFC 5321 section 5.1).
                Err(f)
                    if f.check::<DomainError>()
                        || f.check::<DnsNameError>()
                        || f.check::<AuthoritativeDomainError>() =>
                {
                    Vec::new()
                }
                Err(f) => return Err(f),
            };
            if hosts.is_empty() {
                hosts.push((0, d));
            }
            hosts.sort_by_key(|h| h.0);
            // A null MX (RFC 7505): the domain takes no mail.
            if hosts.iter().any(|h| h.1.is_empty()) {
                return Err(Failure::new(SmtpClientError::NoMailExchanger(vec![(
                    ".".into(),
                    "the domain takes no mail (null MX)".into(),
                )])));
            }
            Ok(hosts.into_iter().map(|h| h.1).collect::<VecDeque<String>>())
        })
        .add_callback_deferred(move |hosts| {
            try_hosts(
                resolver,
                hosts,
                Vec::new(),
                port,
                Rc::new((from, to, message, options)),
            )
        })
}

type Job = (String, Vec<String>, MessageBody, SendOptions);

fn try_hosts(
    resolver: Rc<dyn Resolver>,
    mut hosts: VecDeque<String>,
    mut tried: Vec<(String, String)>,
    port: u16,
    job: Rc<Job>,
) -> Deferred<Sent> {
    let Some(host) = hosts.pop_front() else {
        return torsion::defer::fail(Failure::new(SmtpClientError::NoMailExchanger(tried)));
    };
    let j = job.clone();
    let h = host.clone();
    let r = resolver.clone();
    resolver
        .get_host_by_name(&host)
        .add_callback_deferred(move |ip| {
            let endpoint = ClientEndpoint::new(
                &reactor(),
                ClientDescription::Tcp {
                    host: ip.to_string(),
                    port,
                    timeout: j.3.timeout.min(30.0),
                    bind_address: None,
                },
            );
            let to: Vec<&str> = j.1.iter().map(String::as_str).collect();
            send_through(
                &endpoint,
                &format!("{h}:{port}"),
                &j.0,
                &to,
                j.2.clone(),
                j.3.clone(),
            )
        })
        .add_errback_deferred(move |f| {
            let transient = f
                .downcast_ref::<SmtpClientError>()
                .is_none_or(SmtpClientError::is_transient);
            tracing::info!("SMTP client: {host}: {f}");
            if !transient {
                return torsion::defer::fail(f);
            }
            tried.push((host, f.to_string()));
            try_hosts(r, hosts, tried, port, job)
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Transaction,
    Quit,
    Done,
}

/// A reply awaited in the transaction, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    Body,
    AuthLoginUser,
    AuthLoginPassword,
    AuthDone,
}

/// Fires the send's Deferred.
type Finish = Box<dyn FnOnce(Result<Sent, SmtpClientError>)>;

struct Session {
    options: SendOptions,
    from: String,
    to: Vec<String>,
    message: Option<MessageBody>,
    server: String,
    stage: Stage,
    /// The reply being read: its lines' text, and each line's code.
    reply: Vec<String>,
    reply_lines: Vec<u16>,
    input: Vec<u8>,
    expect: VecDeque<Expect>,
    extensions: Vec<String>,
    tls_on: bool,
    /// Whether MAIL, RCPT and DATA went out together (PIPELINING).
    pipelined: bool,
    accepted: Vec<String>,
    refused: Vec<(String, u16, String)>,
    /// Set when the transaction failed and the client is quitting.
    failure: Option<SmtpClientError>,
    finish: Option<Finish>,
    transport: Option<Transport>,
    idle: Rc<IdleTimeout>,
}

impl Session {
    fn offers(&self, ext: &str) -> bool {
        self.extensions.iter().any(|e| {
            e.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(ext))
        })
    }

    fn offers_auth(&self, mechanism: &str) -> bool {
        self.extensions.iter().any(|e| {
            let mut w = e.split_whitespace();
            w.next().is_some_and(|k| k.eq_ignore_ascii_case("AUTH"))
                && w.any(|m| m.eq_ignore_ascii_case(mechanism))
        })
    }

    fn send(&self, line: &str) {
        if let Some(t) = &self.transport {
            t.write(format!("{line}\r\n").as_bytes());
        }
    }
}

/// The connection's protocol.
struct SmtpSender {
    state: Rc<RefCell<Session>>,
}

fn finish(state: &Rc<RefCell<Session>>, result: Result<Sent, SmtpClientError>) {
    let f = {
        let mut s = state.borrow_mut();
        s.stage = Stage::Done;
        s.idle.set_timeout(None);
        s.finish.take()
    };
    if let Some(f) = f {
        f(result);
    }
}

/// Ends with `error`: QUIT politely if the connection is usable, then close.
fn fail(state: &Rc<RefCell<Session>>, error: SmtpClientError, quit: bool) {
    let t = state.borrow_mut().transport.take();
    if let Some(t) = t {
        if quit {
            t.write(b"QUIT\r\n");
            t.lose_connection();
        } else {
            t.abort_connection();
        }
    }
    finish(state, Err(error));
}

/// One whole reply came: its code and its lines' text.
fn on_reply(state: &Rc<RefCell<Session>>, code: u16, lines: Vec<String>) {
    let text = lines.join(" ");
    let stage = state.borrow().stage;
    match stage {
        Stage::Greeting => {
            if code != 220 {
                return fail(
                    state,
                    SmtpClientError::Refused("greeting".into(), code, text),
                    true,
                );
            }
            let s = state.borrow();
            s.send(&format!("EHLO {}", s.options.helo));
            drop(s);
            state.borrow_mut().stage = Stage::Ehlo;
        }
        Stage::Ehlo | Stage::Helo => {
            if !(200..300).contains(&code) {
                if stage == Stage::Ehlo && (500..600).contains(&code) {
                    let mut s = state.borrow_mut();
                    s.stage = Stage::Helo;
                    s.send(&format!("HELO {}", s.options.helo));
                    return;
                }
                return fail(
                    state,
                    SmtpClientError::Refused(format!("{stage:?}").to_uppercase(), code, text),
                    true,
                );
            }
            {
                let mut s = state.borrow_mut();
                s.extensions = if stage == Stage::Ehlo {
                    lines.into_iter().skip(1).collect()
                } else {
                    Vec::new()
                };
            }
            after_hello(state);
        }
        Stage::StartTls => {
            if code != 220 {
                let required = matches!(state.borrow().options.tls, TlsPolicy::Required(_));
                if required {
                    return fail(
                        state,
                        SmtpClientError::TlsUnavailable(format!("STARTTLS refused: {code} {text}")),
                        true,
                    );
                }
                state.borrow_mut().tls_on = true; // do not try again; go on in the clear
                state
                    .borrow_mut()
                    .extensions
                    .retain(|e| !e.eq_ignore_ascii_case("STARTTLS"));
                return after_hello(state);
            }
            let (t, ctx) = {
                let s = state.borrow();
                let ctx = match &s.options.tls {
                    TlsPolicy::Required(c) | TlsPolicy::Opportunistic(c) => Some(c.clone()),
                    TlsPolicy::Off => None,
                };
                (s.transport.clone(), ctx)
            };
            let started = match (t, ctx) {
                (Some(t), Some(ctx)) => t.start_tls(ctx.into()).map_err(|e| e.to_string()),
                _ => Err("no connection".into()),
            };
            if let Err(e) = started {
                return fail(state, SmtpClientError::TlsUnavailable(e), false);
            }
            let mut s = state.borrow_mut();
            s.tls_on = true;
            s.extensions.clear();
            s.stage = Stage::Ehlo;
            s.send(&format!("EHLO {}", s.options.helo));
        }
        Stage::Auth | Stage::Transaction => {
            let expect = state.borrow_mut().expect.pop_front();
            match expect {
                Some(e) => on_expected(state, e, code, text),
                None => fail(
                    state,
                    SmtpClientError::Protocol(format!("unexpected reply {code} {text}")),
                    false,
                ),
            }
        }
        Stage::Quit | Stage::Done => {}
    }
}

/// After EHLO or HELO: STARTTLS, AUTH, or the transaction.
fn after_hello(state: &Rc<RefCell<Session>>) {
    let mut s = state.borrow_mut();
    let want_tls = !s.tls_on && !matches!(s.options.tls, TlsPolicy::Off);
    if want_tls {
        if s.offers("STARTTLS") {
            s.stage = Stage::StartTls;
            s.send("STARTTLS");
            return;
        }
        if matches!(s.options.tls, TlsPolicy::Required(_)) {
            drop(s);
            return fail(
                state,
                SmtpClientError::TlsUnavailable("the server offers no STARTTLS".into()),
                true,
            );
        }
    }
    if let Some((user, password)) = s.options.auth.clone() {
        if s.stage != Stage::Auth {
            s.stage = Stage::Auth;
            if s.offers_auth("PLAIN") {
                let token = B64.encode(format!("\0{user}\0{password}"));
                s.expect.push_back(Expect::AuthDone);
                s.send(&format!("AUTH PLAIN {token}"));
                return;
            }
            if s.offers_auth("LOGIN") {
                s.expect.push_back(Expect::AuthLoginUser);
                s.send("AUTH LOGIN");
                return;
            }
            drop(s);
            return fail(state, SmtpClientError::AuthUnavailable, true);
        }
    }
    drop(s);
    start_transaction(state);
}

fn start_transaction(state: &Rc<RefCell<Session>>) {
    let mut s = state.borrow_mut();
    s.stage = Stage::Transaction;
    let pipelining = s.offers("PIPELINING");
    let mail = format!("MAIL FROM:<{}>", s.from);
    s.expect.push_back(Expect::Mail);
    if !pipelining {
        s.send(&mail);
        return;
    }
    let mut batch = format!("{mail}\r\n");
    for to in &s.to {
        batch.push_str(&format!("RCPT TO:<{to}>\r\n"));
    }
    batch.push_str("DATA\r\n");
    for i in 0..s.to.len() {
        s.expect.push_back(Expect::Rcpt(i));
    }
    s.expect.push_back(Expect::Data);
    s.pipelined = true;
    if let Some(t) = &s.transport {
        t.write(batch.as_bytes());
    }
}

fn on_expected(state: &Rc<RefCell<Session>>, expect: Expect, code: u16, text: String) {
    let pipelined = state.borrow().pipelined;
    let ok = (200..300).contains(&code);
    match expect {
        Expect::AuthDone => {
            if ok {
                state.borrow_mut().stage = Stage::Transaction;
                start_transaction(state);
            } else {
                fail(
                    state,
                    SmtpClientError::Refused("AUTH".into(), code, text),
                    true,
                );
            }
        }
        Expect::AuthLoginUser | Expect::AuthLoginPassword => {
            if code != 334 {
                return fail(
                    state,
                    SmtpClientError::Refused("AUTH".into(), code, text),
                    true,
                );
            }
            let mut s = state.borrow_mut();
            let (user, password) = s.options.auth.clone().unwrap_or_default();
            if expect == Expect::AuthLoginUser {
                s.expect.push_back(Expect::AuthLoginPassword);
                s.send(&B64.encode(user));
            } else {
                s.expect.push_back(Expect::AuthDone);
                s.send(&B64.encode(password));
            }
        }
        Expect::Mail => {
            if !ok {
                state.borrow_mut().failure =
                    Some(SmtpClientError::Refused("MAIL".into(), code, text));
                if !pipelined {
                    return quit_with_failure(state);
                }
                return;
            }
            if !pipelined {
                let mut s = state.borrow_mut();
                s.expect.push_back(Expect::Rcpt(0));
                let line = format!("RCPT TO:<{}>", s.to[0]);
                s.send(&line);
            }
        }
        Expect::Rcpt(i) => {
            {
                let mut s = state.borrow_mut();
                let to = s.to[i].clone();
                if ok {
                    s.accepted.push(to);
                } else {
                    s.refused.push((to, code, text));
                }
            }
            if !pipelined {
                let mut s = state.borrow_mut();
                if i + 1 < s.to.len() {
                    s.expect.push_back(Expect::Rcpt(i + 1));
                    let line = format!("RCPT TO:<{}>", s.to[i + 1]);
                    s.send(&line);
                } else if s.accepted.is_empty() {
                    let refused = s.refused.clone();
                    s.failure = Some(SmtpClientError::AllRecipientsRefused(refused));
                    drop(s);
                    quit_with_failure(state);
                } else {
                    s.expect.push_back(Expect::Data);
                    s.send("DATA");
                }
            }
        }
        Expect::Data => {
            let mut s = state.borrow_mut();
            if code != 354 {
                if s.failure.is_none() {
                    s.failure = Some(if s.accepted.is_empty() {
                        SmtpClientError::AllRecipientsRefused(s.refused.clone())
                    } else {
                        SmtpClientError::Refused("DATA".into(), code, text)
                    });
                }
                drop(s);
                return quit_with_failure(state);
            }
            if s.failure.is_some() || s.accepted.is_empty() {
                // Pipelined, and the DATA was taken though nothing should be sent: an
                // empty message ends it (RFC 2920 section 3.1), then QUIT.
                if s.failure.is_none() {
                    s.failure = Some(SmtpClientError::AllRecipientsRefused(s.refused.clone()));
                }
                s.send(".");
                s.expect.push_back(Expect::Body);
                return;
            }
            s.expect.push_back(Expect::Body);
            let message = match s.message.take() {
                Some(MessageBody::Bytes(message)) => message,
                Some(body) => {
                    let (transport, idle) = (s.transport.clone(), s.idle.clone());
                    drop(s);
                    return stream_body(state, body, transport, idle);
                }
                None => Vec::new(),
            };
            let mut out = Vec::with_capacity(message.len() + message.len() / 16 + 8);
            let mut stuffer = DotStuffer::new(None);
            stuffer.feed(&message, &mut out);
            stuffer.finish(&mut out);
            if let Some(t) = &s.transport {
                t.write(&out);
            }
        }
        Expect::Body => {
            let failure = state.borrow_mut().failure.take();
            if let Some(f) = failure {
                state.borrow_mut().failure = Some(f);
                return quit_with_failure(state);
            }
            if !ok {
                state.borrow_mut().failure =
                    Some(SmtpClientError::Refused("DATA".into(), code, text));
                return quit_with_failure(state);
            }
            let sent = {
                let mut s = state.borrow_mut();
                s.stage = Stage::Quit;
                s.send("QUIT");
                if let Some(t) = &s.transport {
                    t.lose_connection();
                }
                Sent {
                    server: s.server.clone(),
                    accepted: std::mem::take(&mut s.accepted),
                    refused: std::mem::take(&mut s.refused),
                    reply: (code, text),
                }
            };
            finish(state, Ok(sent));
        }
    }
}

/// Sends a message that is not in memory: read, dot-stuffed and written a chunk at a time as
/// the transport's buffer drains. A read error closes the connection mid-message (the
/// server then discards it) and fails the send.
fn stream_body(
    state: &Rc<RefCell<Session>>,
    body: MessageBody,
    transport: Option<Transport>,
    idle: Rc<IdleTimeout>,
) {
    let Some(t) = transport else {
        return;
    };
    let reader = match body.open() {
        Ok(r) => r,
        Err(e) => return fail(state, SmtpClientError::Message(e.to_string()), false),
    };
    let stuffing = Stuffing {
        reader,
        raw: vec![0; FileSender::CHUNK_SIZE],
        out: Vec::new(),
        at: 0,
        stuffer: DotStuffer::new(None),
        ended: false,
        idle,
    };
    let state = state.clone();
    drop(
        FileSender::begin_file_transfer(stuffing, &t).add_both(move |sent| {
            if let Err(f) = sent {
                // A lost connection is told by connection_lost; a read error is ours.
                if let Some(e) = f.downcast_ref::<io::Error>() {
                    fail(&state, SmtpClientError::Message(e.to_string()), false);
                }
            }
            Ok::<(), Failure>(())
        }),
    );
}

/// A message being read: its bytes dot-stuffed with CRLF line endings, then the final
/// `.` line, as [`Read`] for the [`FileSender`] that writes it.
struct Stuffing {
    reader: Box<dyn Read>,
    /// What was last read, before stuffing.
    raw: Vec<u8>,
    /// What is to be given next, from `at`.
    out: Vec<u8>,
    at: usize,
    stuffer: DotStuffer,
    ended: bool,
    /// Sending counts as activity: the reply time-out starts again with each chunk.
    idle: Rc<IdleTimeout>,
}

impl Read for Stuffing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.idle.reset_timeout();
        while self.at == self.out.len() {
            if self.ended {
                return Ok(0);
            }
            self.out.clear();
            self.at = 0;
            let n = match self.reader.read(&mut self.raw) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => read?,
            };
            if n == 0 {
                self.stuffer.finish(&mut self.out);
                self.ended = true;
            } else {
                self.stuffer.feed(&self.raw[..n], &mut self.out);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn quit_with_failure(state: &Rc<RefCell<Session>>) {
    if !state.borrow().expect.is_empty() {
        return; // the rest of a pipelined batch's replies come first
    }
    let error = state
        .borrow_mut()
        .failure
        .take()
        .unwrap_or(SmtpClientError::Protocol("no reason".into()));
    fail(state, error, true);
}

/// Reads whole replies from the input.
fn read_replies(state: &Rc<RefCell<Session>>) {
    loop {
        let line = {
            let mut s = state.borrow_mut();
            if s.stage == Stage::Done {
                s.input.clear();
                return;
            }
            let Some(i) = memchr::memchr(b'\n', &s.input) else {
                if s.input.len() > MAX_REPLY {
                    drop(s);
                    return fail(
                        state,
                        SmtpClientError::Protocol("a reply line too long".into()),
                        false,
                    );
                }
                return;
            };
            let mut line: Vec<u8> = s.input.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            line
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let code = text
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c));
        let sep = text.as_bytes().get(3).copied();
        let (Some(code), Some(b' ' | b'-') | None) = (code, sep) else {
            return fail(state, SmtpClientError::Protocol(text), false);
        };
        let rest = text.get(4..).unwrap_or("").to_owned();
        let whole = {
            let mut s = state.borrow_mut();
            s.reply.push(rest);
            s.reply_lines.push(code);
            let size: usize = s.reply.iter().map(String::len).sum();
            if size > MAX_REPLY || s.reply.len() > 1000 {
                drop(s);
                return fail(
                    state,
                    SmtpClientError::Protocol("a reply too long".into()),
                    false,
                );
            }
            if sep == Some(b'-') {
                None
            } else {
                s.reply_lines.clear();
                Some(std::mem::take(&mut s.reply))
            }
        };
        if let Some(lines) = whole {
            on_reply(state, code, lines);
        }
    }
}

impl Protocol for SmtpSender {
    fn connection_made(&mut self, t: &Transport) {
        let mut s = self.state.borrow_mut();
        s.transport = Some(t.clone());
        let weak = Rc::downgrade(&self.state);
        s.idle.set_timeout_connection(move || {
            if let Some(state) = weak.upgrade() {
                fail(&state, SmtpClientError::TimedOut, false);
            }
        });
        s.idle.set_timeout(Some(s.options.timeout));
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        {
            let mut s = self.state.borrow_mut();
            s.idle.reset_timeout();
            s.input.extend_from_slice(data);
        }
        read_replies(&self.state);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let done = {
            let mut s = self.state.borrow_mut();
            s.transport = None;
            s.stage == Stage::Done
        };
        if !done {
            finish(
                &self.state,
                Err(SmtpClientError::ConnectionLost(format!("{reason:?}"))),
            );
        }
    }
}
