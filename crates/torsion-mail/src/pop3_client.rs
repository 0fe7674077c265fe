//! A POP3 client (Twisted's `twisted.mail.pop3client.POP3Client`): each command returns a
//! [`Deferred`] of its answer.
//!
//! Commands are queued and sent one at a time, each once the previous one is answered, so
//! they may be called one after another without waiting. A `-ERR` fails that command's
//! Deferred with [`Pop3ClientError::Server`] and the session goes on. Memory is bounded:
//! a multi-line answer (a message, a listing) larger than
//! [`max_response`](Pop3Client::set_max_response) (16 MiB by default) fails with
//! [`Pop3ClientError::TooLarge`] and the connection is dropped. A server silent for
//! [`timeout`](Pop3Client::set_timeout) (60 seconds) while a command waits fails every
//! waiting command with [`Pop3ClientError::TimedOut`].
//!
//! ```no_run
//! use torsion::endpoints::client_from_string;
//! use torsion::reactor;
//! use torsion_mail::pop3_client::Pop3Client;
//!
//! # async fn demo() -> Result<(), torsion::Failure> {
//! let endpoint = client_from_string(&reactor(), "tcp:pop.example.org:110").unwrap();
//! let client = Pop3Client::connect(&endpoint).await?;
//! client.start_tls(torsion::tls::ClientContext::new()?.with_server_name("pop.example.org")?).await?;
//! client.login("alice", "wonderland").await?;
//! let (count, _size) = client.stat().await?;
//! for n in 1..=count {
//!     let message: Vec<u8> = client.retrieve(n).await?;
//!     println!("{} bytes", message.len());
//!     client.delete(n).await?;
//! }
//! client.quit().await?;
//! # Ok(()) }
//! ```
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use torsion::defer::Deferred;
use torsion::endpoints::{connect_protocol, ClientEndpoint};
use torsion::protocols::policies::IdleTimeout;
use torsion::tls::ClientContext;
use torsion::{ConnectionEnd, Failure, Protocol, Transport};

/// Why a POP3 command failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pop3ClientError {
    /// The server answered `-ERR` with this text.
    Server(String),
    /// A multi-line answer was larger than the limit.
    TooLarge,
    /// The server's answer was not POP3.
    Protocol(String),
    /// The server said nothing for the timeout.
    TimedOut,
    /// The connection ended before the answer.
    ConnectionLost,
}

impl fmt::Display for Pop3ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pop3ClientError::Server(text) => write!(f, "the POP3 server refused: -ERR {text}"),
            Pop3ClientError::TooLarge => f.write_str("the POP3 answer was larger than the limit"),
            Pop3ClientError::Protocol(what) => write!(f, "not a POP3 answer: {what}"),
            Pop3ClientError::TimedOut => f.write_str("the POP3 server did not answer in time"),
            Pop3ClientError::ConnectionLost => f.write_str("the POP3 connection ended"),
        }
    }
}

impl std::error::Error for Pop3ClientError {}

type Answer = Result<(String, Vec<u8>), Pop3ClientError>;

/// A command waiting for its answer.
struct Pending {
    /// The line to send (CRLF added); `None` for the greeting.
    line: Option<Vec<u8>>,
    /// Whether a `+OK` answer goes on over lines up to a `.` line.
    multi: bool,
    /// STLS: start TLS with this as soon as its `+OK` is read.
    tls: Option<ClientContext>,
    done: Box<dyn FnOnce(Answer)>,
}

struct State {
    transport: Option<Transport>,
    input: Vec<u8>,
    queue: VecDeque<Pending>,
    /// Whether the front of the queue was sent.
    sent: bool,
    /// The first line of a multi-line answer being read, and its body so far.
    multi: Option<(String, Vec<u8>)>,
    max_response: usize,
    lost: bool,
    idle: Rc<IdleTimeout>,
    timeout: f64,
}

/// A POP3 session; cheap to clone (clones are the same session).
#[derive(Clone)]
pub struct Pop3Client {
    state: Rc<RefCell<State>>,
}

/// The connection's protocol of a [`Pop3Client`].
pub struct Pop3ClientProtocol {
    state: Rc<RefCell<State>>,
}

impl Pop3Client {
    /// Connects through `endpoint`; fires once the server's greeting is read.
    pub fn connect(endpoint: &ClientEndpoint) -> Deferred<Pop3Client> {
        let (client, protocol, greeting) = Pop3Client::new();
        connect_protocol(endpoint, protocol)
            .add_callback_deferred(move |_conn| greeting)
            .add_callback(move |_| client)
    }

    /// A session not yet connected: the client, the protocol to connect (any transport),
    /// and a Deferred of the greeting.
    pub fn new() -> (Pop3Client, Pop3ClientProtocol, Deferred<String>) {
        let greeting = Deferred::new();
        let g = greeting.trigger();
        let state = Rc::new(RefCell::new(State {
            transport: None,
            input: Vec::new(),
            queue: VecDeque::new(),
            sent: true,
            multi: None,
            max_response: 16 << 20,
            lost: false,
            idle: Rc::new(IdleTimeout::new()),
            timeout: 60.0,
        }));
        state.borrow_mut().queue.push_back(Pending {
            line: None,
            multi: false,
            tls: None,
            done: Box::new(move |a: Answer| match a {
                Ok((text, _)) => g.callback(text),
                Err(e) => g.errback(Failure::new(e)),
            }),
        });
        (
            Pop3Client {
                state: state.clone(),
            },
            Pop3ClientProtocol { state },
            greeting,
        )
    }

    /// The largest multi-line answer taken (16 MiB by default).
    pub fn set_max_response(&self, bytes: usize) {
        self.state.borrow_mut().max_response = bytes;
    }

    /// How long a command waits for the server to say something (60 seconds by default).
    pub fn set_timeout(&self, seconds: f64) {
        self.state.borrow_mut().timeout = seconds;
    }

    /// Times the timeout on `clock` (a test [`Clock`](torsion::testing::Clock)).
    pub fn set_clock(&self, clock: impl torsion::reactor::ReactorTime + 'static) {
        self.state.borrow().idle.set_clock(clock);
    }

    fn command(
        &self,
        line: String,
        multi: bool,
        tls: Option<ClientContext>,
    ) -> Deferred<(String, Vec<u8>)> {
        let d = Deferred::new();
        let t = d.trigger();
        let pending = Pending {
            line: Some(line.into_bytes()),
            multi,
            tls,
            done: Box::new(move |a: Answer| match a {
                Ok(v) => t.callback(v),
                Err(e) => t.errback(Failure::new(e)),
            }),
        };
        let lost = self.state.borrow().lost;
        if lost {
            (pending.done)(Err(Pop3ClientError::ConnectionLost));
            return d;
        }
        self.state.borrow_mut().queue.push_back(pending);
        send_next(&self.state);
        d
    }

    /// CAPA: the server's capabilities, one line each (`TOP`, `STLS`, `SASL PLAIN`, ...).
    pub fn capabilities(&self) -> Deferred<Vec<String>> {
        self.command("CAPA".into(), true, None)
            .add_callback(|(_, body)| lines(&body).map(str::to_owned).collect())
    }

    /// STLS, then TLS with `context` (its server name set to the server's).
    pub fn start_tls(&self, context: ClientContext) -> Deferred<()> {
        self.command("STLS".into(), false, Some(context))
            .add_callback(|_| ())
    }

    /// USER and PASS.
    pub fn login(&self, user: &str, password: &str) -> Deferred<()> {
        if [user, password].iter().any(|s| s.contains(['\r', '\n'])) || user.contains(' ') {
            return torsion::defer::fail(Failure::new(Pop3ClientError::Protocol(
                "a user name or password with a line break".into(),
            )));
        }
        let this = self.clone();
        let pass = format!("PASS {password}");
        self.command(format!("USER {user}"), false, None)
            .add_callback_deferred(move |_| this.command(pass, false, None))
            .add_callback(|_| ())
    }

    /// STAT: how many messages, and their total size.
    pub fn stat(&self) -> Deferred<(usize, u64)> {
        self.command("STAT".into(), false, None)
            .add_callback_result(|(text, _)| {
                let mut words = text.split_whitespace();
                match (
                    words.next().and_then(|n| n.parse().ok()),
                    words.next().and_then(|n| n.parse().ok()),
                ) {
                    (Some(n), Some(size)) => Ok((n, size)),
                    _ => Err(Failure::new(Pop3ClientError::Protocol(format!(
                        "STAT: {text}"
                    )))),
                }
            })
    }

    /// LIST: each message's number and size.
    pub fn list(&self) -> Deferred<Vec<(usize, u64)>> {
        self.command("LIST".into(), true, None)
            .add_callback_result(|(_, body)| pairs(&body, |s| s.parse().ok()))
    }

    /// UIDL: each message's number and unique id.
    pub fn uidl(&self) -> Deferred<Vec<(usize, String)>> {
        self.command("UIDL".into(), true, None)
            .add_callback_result(|(_, body)| pairs(&body, |s| Some(s.to_owned())))
    }

    /// RETR: message `n` (from 1), byte-unstuffed, with CRLF line endings.
    pub fn retrieve(&self, n: usize) -> Deferred<Vec<u8>> {
        self.command(format!("RETR {n}"), true, None)
            .add_callback(|(_, body)| body)
    }

    /// TOP: message `n`'s headers and first `lines` body lines.
    pub fn top(&self, n: usize, lines: u64) -> Deferred<Vec<u8>> {
        self.command(format!("TOP {n} {lines}"), true, None)
            .add_callback(|(_, body)| body)
    }

    /// DELE: marks message `n` deleted (removed when [`quit`](Self::quit) is answered).
    pub fn delete(&self, n: usize) -> Deferred<()> {
        self.command(format!("DELE {n}"), false, None)
            .add_callback(|_| ())
    }

    /// RSET: unmarks every deleted message.
    pub fn reset(&self) -> Deferred<()> {
        self.command("RSET".into(), false, None)
            .add_callback(|_| ())
    }

    /// NOOP.
    pub fn noop(&self) -> Deferred<()> {
        self.command("NOOP".into(), false, None)
            .add_callback(|_| ())
    }

    /// QUIT: the server applies the deletions and closes; fires with its last words.
    pub fn quit(&self) -> Deferred<String> {
        let state = self.state.clone();
        self.command("QUIT".into(), false, None)
            .add_callback(move |(text, _)| {
                if let Some(t) = state.borrow().transport.clone() {
                    t.lose_connection();
                }
                text
            })
    }
}

/// The lines of a multi-line body (CRLF endings).
fn lines(body: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(body)
        .unwrap_or("")
        .split("\r\n")
        .filter(|l| !l.is_empty())
}

fn pairs<T>(body: &[u8], second: impl Fn(&str) -> Option<T>) -> Result<Vec<(usize, T)>, Failure> {
    lines(body)
        .map(|l| {
            let mut w = l.split_whitespace();
            match (
                w.next().and_then(|n| n.parse().ok()),
                w.next().and_then(&second),
            ) {
                (Some(n), Some(v)) => Ok((n, v)),
                _ => Err(Failure::new(Pop3ClientError::Protocol(format!(
                    "listing line {l:?}"
                )))),
            }
        })
        .collect()
}

/// Sends the command at the front of the queue if nothing is in flight.
fn send_next(state: &Rc<RefCell<State>>) {
    let mut s = state.borrow_mut();
    if s.sent || s.lost {
        return;
    }
    let Some(t) = s.transport.clone() else { return };
    let Some(front) = s.queue.front() else { return };
    let mut line = front.line.clone().unwrap_or_default();
    line.extend_from_slice(b"\r\n");
    s.sent = true;
    let timeout = s.timeout;
    s.idle.set_timeout(Some(timeout));
    drop(s);
    t.write(&line);
}

/// Answers the front command.
fn complete(state: &Rc<RefCell<State>>, answer: Answer) {
    let pending = {
        let mut s = state.borrow_mut();
        let p = s.queue.pop_front();
        s.sent = false;
        if s.queue.is_empty() {
            s.idle.set_timeout(None);
        }
        p
    };
    if let Some(p) = pending {
        if let (Ok(_), Some(ctx)) = (&answer, p.tls) {
            let t = state.borrow().transport.clone();
            if let Some(Err(e)) = t.map(|t| t.start_tls(ctx.into())) {
                (p.done)(Err(Pop3ClientError::Protocol(format!("TLS: {e}"))));
                fail_all(state, Pop3ClientError::ConnectionLost);
                return;
            }
        }
        (p.done)(answer);
    }
    send_next(state);
}

fn fail_all(state: &Rc<RefCell<State>>, error: Pop3ClientError) {
    let pending: Vec<Pending> = {
        let mut s = state.borrow_mut();
        s.lost = true;
        s.idle.set_timeout(None);
        if let Some(t) = s.transport.take() {
            t.abort_connection();
        }
        s.queue.drain(..).collect()
    };
    for p in pending {
        (p.done)(Err(error.clone()));
    }
}

/// Reads what can be read of the answer to the front command; `false` when it needs more.
fn read_answer(state: &Rc<RefCell<State>>) -> bool {
    let mut s = state.borrow_mut();
    if !s.sent || s.queue.is_empty() {
        if !s.input.is_empty() && !s.lost {
            drop(s);
            fail_all(
                state,
                Pop3ClientError::Protocol("an answer nobody asked for".into()),
            );
        }
        return false;
    }
    let limit = s.max_response;
    let Some(i) = memchr::memchr(b'\n', &s.input) else {
        if s.input.len() > limit.max(1024) + 2 {
            drop(s);
            fail_all(state, Pop3ClientError::TooLarge);
        }
        return false;
    };
    let mut line: Vec<u8> = s.input.drain(..=i).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if let Some((first, body)) = s.multi.as_mut() {
        if line == b"." {
            let answer = (std::mem::take(first), std::mem::take(body));
            s.multi = None;
            drop(s);
            complete(state, Ok(answer));
            return true;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if body.len() + line.len() + 2 > limit {
            drop(s);
            let front = state.borrow_mut().queue.pop_front();
            if let Some(p) = front {
                (p.done)(Err(Pop3ClientError::TooLarge));
            }
            fail_all(state, Pop3ClientError::ConnectionLost);
            return false;
        }
        body.extend_from_slice(line);
        body.extend_from_slice(b"\r\n");
        return true;
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    let multi = s.queue.front().is_some_and(|p| p.multi);
    drop(s);
    if let Some(rest) = text.strip_prefix("+OK") {
        let rest = rest.trim_start().to_owned();
        if multi {
            state.borrow_mut().multi = Some((rest, Vec::new()));
        } else {
            complete(state, Ok((rest, Vec::new())));
        }
    } else if let Some(rest) = text.strip_prefix("-ERR") {
        complete(
            state,
            Err(Pop3ClientError::Server(rest.trim_start().to_owned())),
        );
    } else {
        fail_all(state, Pop3ClientError::Protocol(text));
        return false;
    }
    true
}

impl Protocol for Pop3ClientProtocol {
    fn connection_made(&mut self, t: &Transport) {
        let s = self.state.borrow();
        let weak = Rc::downgrade(&self.state);
        s.idle.set_timeout_connection(move || {
            if let Some(state) = weak.upgrade() {
                fail_all(&state, Pop3ClientError::TimedOut);
            }
        });
        let timeout = s.timeout;
        s.idle.set_timeout(Some(timeout));
        drop(s);
        self.state.borrow_mut().transport = Some(t.clone());
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        {
            let s = self.state.borrow();
            s.idle.reset_timeout();
        }
        if self.state.borrow().lost {
            return;
        }
        self.state.borrow_mut().input.extend_from_slice(data);
        while read_answer(&self.state) {}
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.state.borrow_mut().transport = None;
        fail_all(&self.state, Pop3ClientError::ConnectionLost);
    }
}
