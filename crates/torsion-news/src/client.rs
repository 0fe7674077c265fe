//! An NNTP client with Deferreds (the idea of Twisted's `twisted.news.nntp.NNTPClient`,
//! whose `fetchGroup`, `fetchArticle`, `fetchXOver` and `postArticle` call back
//! `gotGroup`, `gotArticle`, ...): each command returns a [`Deferred`] of its answer, or of
//! an [`NntpError`] carrying the server's status line.
//!
//! Commands are queued and sent one at a time, each once the answer to the one before has
//! arrived; a command given before the connection is made waits for the greeting.
//!
//! ```no_run
//! use torsion::endpoints::{client_from_string, connect_protocol};
//! use torsion_news::client::NntpClient;
//!
//! let endpoint = client_from_string(&torsion::reactor(), "tcp:news.example.org:119").unwrap();
//! let client = NntpClient::new();
//! drop(connect_protocol(&endpoint, client.clone()));
//! drop(client.group("comp.lang.rust").add_callback(move |g| {
//!     println!("{} articles, {}-{}", g.count, g.low, g.high);
//! }));
//! ```
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::error::ConnectionDone;
use torsion::{ConnectionEnd, Failure, Protocol, Transport};

use crate::wire::dot_stuff;

/// The server refused a command, or answered what the client did not expect: its status
/// line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NntpError {
    /// The status code (0 if the line had none).
    pub code: u16,
    /// The status line's text after the code.
    pub text: String,
}

impl fmt::Display for NntpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NNTP server answered {} {}", self.code, self.text)
    }
}

impl std::error::Error for NntpError {}

/// An answer: the status line and, for a multi-line answer, its lines (dot-unstuffed,
/// without their CRLF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub code: u16,
    /// The status line's text after the code.
    pub text: String,
    /// The block's lines, for a multi-line answer.
    pub lines: Vec<Vec<u8>>,
}

/// A group, as GROUP answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// Its name.
    pub name: String,
    /// Articles in it (an estimate, RFC 3977 says).
    pub count: u64,
    /// The lowest article number.
    pub low: u64,
    /// The highest article number.
    pub high: u64,
}

/// One line of OVER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverviewEntry {
    /// The article's number (0 when asked by message-id).
    pub number: u64,
    /// `Subject:`
    pub subject: String,
    /// `From:`
    pub from: String,
    /// `Date:`
    pub date: String,
    /// `Message-ID:`
    pub message_id: String,
    /// `References:`
    pub references: String,
    /// Its size in octets.
    pub bytes: u64,
    /// Lines in its body.
    pub lines: u64,
}

/// Which codes of a command's answer carry a block.
type Multi = Box<dyn Fn(u16) -> bool>;

struct Pending {
    line: Vec<u8>,
    multi: Multi,
    /// POST's article, sent once 340 invites it.
    article: Option<Vec<u8>>,
    trigger: Trigger<Response>,
}

enum Reading {
    /// The status line of the command at the head of the queue (or the greeting).
    Status,
    /// A block's lines.
    Block(Response),
}

struct Inner {
    transport: Option<Transport>,
    buffer: Vec<u8>,
    greeted: bool,
    greeting: Option<Trigger<Response>>,
    greeting_d: Option<Deferred<Response>>,
    /// Sent and waiting for its answer.
    sent: Option<Pending>,
    waiting: VecDeque<Pending>,
    reading: Reading,
    lost: bool,
}

/// An NNTP client connection; clones share it. Connect it (e.g. with
/// [`connect_protocol`](torsion::endpoints::connect_protocol)) and keep a clone to give it
/// commands.
#[derive(Clone)]
pub struct NntpClient {
    inner: Rc<RefCell<Inner>>,
}

impl Default for NntpClient {
    fn default() -> Self {
        NntpClient::new()
    }
}

fn parse_status(line: &[u8]) -> Response {
    let text = String::from_utf8_lossy(line).into_owned();
    let (code, rest) = text.split_once(' ').unwrap_or((&text, ""));
    Response {
        code: if code.len() == 3 {
            code.parse().unwrap_or(0)
        } else {
            0
        },
        text: rest.to_owned(),
        lines: Vec::new(),
    }
}

fn expect(r: Response, code: u16) -> Result<Response, NntpError> {
    if r.code == code {
        Ok(r)
    } else {
        Err(NntpError {
            code: r.code,
            text: r.text,
        })
    }
}

fn joined(lines: Vec<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl NntpClient {
    /// A client not yet connected.
    pub fn new() -> NntpClient {
        let d = Deferred::new();
        NntpClient {
            inner: Rc::new(RefCell::new(Inner {
                transport: None,
                buffer: Vec::new(),
                greeted: false,
                greeting: Some(d.trigger()),
                greeting_d: Some(d),
                sent: None,
                waiting: VecDeque::new(),
                reading: Reading::Status,
                lost: false,
            })),
        }
    }

    /// The server's greeting (200: posting allowed, 201: not); taken once.
    pub fn greeting(&self) -> Deferred<Response> {
        self.inner
            .borrow_mut()
            .greeting_d
            .take()
            .unwrap_or_else(|| {
                torsion::defer::fail(NntpError {
                    code: 0,
                    text: "the greeting was already taken".into(),
                })
            })
    }

    /// Sends `line` (without CRLF) and answers its [`Response`], whatever its code;
    /// `multi` says which codes carry a block.
    pub fn command(&self, line: &str, multi: impl Fn(u16) -> bool + 'static) -> Deferred<Response> {
        self.queue(line.as_bytes().to_vec(), Box::new(multi), None)
    }

    fn queue(&self, line: Vec<u8>, multi: Multi, article: Option<Vec<u8>>) -> Deferred<Response> {
        let d = Deferred::new();
        let pending = Pending {
            line,
            multi,
            article,
            trigger: d.trigger(),
        };
        let mut inner = self.inner.borrow_mut();
        if inner.lost {
            drop(pending.trigger.try_errback(ConnectionDone));
            return d;
        }
        inner.waiting.push_back(pending);
        drop(inner);
        self.send_next();
        d
    }

    fn send_next(&self) {
        let mut inner = self.inner.borrow_mut();
        if !inner.greeted || inner.sent.is_some() {
            return;
        }
        let Some(t) = inner.transport.clone() else {
            return;
        };
        if let Some(p) = inner.waiting.pop_front() {
            let mut line = p.line.clone();
            line.extend_from_slice(b"\r\n");
            t.write(&line);
            inner.sent = Some(p);
        }
    }

    /// GROUP: selects a group (Twisted's `fetchGroup` and `gotGroup`).
    pub fn group(&self, name: &str) -> Deferred<GroupStatus> {
        self.command(&format!("GROUP {name}"), |_| false)
            .add_callback_result(|r| {
                let r = expect(r, 211)?;
                let f: Vec<&str> = r.text.split_whitespace().collect();
                let n = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
                Ok::<_, NntpError>(GroupStatus {
                    count: n(0),
                    low: n(1),
                    high: n(2),
                    name: f.get(3).map(|s| (*s).to_owned()).unwrap_or_default(),
                })
            })
    }

    /// LIST ACTIVE: every group as (name, high, low, status).
    pub fn list(&self) -> Deferred<Vec<(String, u64, u64, String)>> {
        self.command("LIST", |c| c == 215).add_callback_result(|r| {
            let r = expect(r, 215)?;
            Ok::<_, NntpError>(
                r.lines
                    .iter()
                    .filter_map(|l| {
                        let s = String::from_utf8_lossy(l);
                        let f: Vec<&str> = s.split_whitespace().collect();
                        (f.len() == 4).then(|| {
                            (
                                f[0].to_owned(),
                                f[1].parse().unwrap_or(0),
                                f[2].parse().unwrap_or(0),
                                f[3].to_owned(),
                            )
                        })
                    })
                    .collect(),
            )
        })
    }

    fn fetch(&self, verb: &str, which: &str, code: u16) -> Deferred<Vec<u8>> {
        let line = if which.is_empty() {
            verb.to_owned()
        } else {
            format!("{verb} {which}")
        };
        self.command(&line, move |c| c == code)
            .add_callback_result(move |r| Ok::<_, NntpError>(joined(expect(r, code)?.lines)))
    }

    /// ARTICLE: the whole article, CRLF lines (`which`: a number, a message-id, or empty
    /// for the current article; Twisted's `fetchArticle`).
    pub fn article(&self, which: &str) -> Deferred<Vec<u8>> {
        self.fetch("ARTICLE", which, 220)
    }

    /// HEAD: the article's headers (Twisted's `fetchHead`).
    pub fn head(&self, which: &str) -> Deferred<Vec<u8>> {
        self.fetch("HEAD", which, 221)
    }

    /// BODY: the article's body (Twisted's `fetchBody`).
    pub fn body(&self, which: &str) -> Deferred<Vec<u8>> {
        self.fetch("BODY", which, 222)
    }

    /// OVER: the overview of a range (`"1-10"`, `"5-"`) or message-id of the current group
    /// (Twisted's `fetchXOver`).
    pub fn over(&self, range: &str) -> Deferred<Vec<OverviewEntry>> {
        self.command(&format!("OVER {range}"), |c| c == 224)
            .add_callback_result(|r| {
                let r = expect(r, 224)?;
                Ok::<_, NntpError>(
                    r.lines
                        .iter()
                        .filter_map(|l| {
                            let s = String::from_utf8_lossy(l);
                            let f: Vec<&str> = s.split('\t').collect();
                            (f.len() >= 8).then(|| OverviewEntry {
                                number: f[0].parse().unwrap_or(0),
                                subject: f[1].to_owned(),
                                from: f[2].to_owned(),
                                date: f[3].to_owned(),
                                message_id: f[4].to_owned(),
                                references: f[5].to_owned(),
                                bytes: f[6].parse().unwrap_or(0),
                                lines: f[7].parse().unwrap_or(0),
                            })
                        })
                        .collect(),
                )
            })
    }

    /// POST: sends `article` (LF or CRLF lines; dot-stuffed here) and fires once the
    /// server took it (240; Twisted's `postArticle`).
    pub fn post(&self, article: &[u8]) -> Deferred<()> {
        let mut crlf = Vec::with_capacity(article.len() + 64);
        for line in article.split_inclusive(|&b| b == b'\n') {
            let l = line.strip_suffix(b"\n").unwrap_or(line);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            crlf.extend_from_slice(l);
            crlf.extend_from_slice(b"\r\n");
        }
        self.queue(
            b"POST".to_vec(),
            Box::new(|_| false),
            Some(dot_stuff(&crlf)),
        )
        .add_callback_result(|r| expect(r, 240).map(|_| ()))
    }

    /// AUTHINFO USER and PASS.
    pub fn login(&self, user: &str, password: &str) -> Deferred<()> {
        let me = self.clone();
        let password = password.to_owned();
        self.command(&format!("AUTHINFO USER {user}"), |_| false)
            .add_callback_deferred(move |r| match r.code {
                281 => torsion::defer::succeed(()),
                381 => me
                    .command(&format!("AUTHINFO PASS {password}"), |_| false)
                    .add_callback_result(|r| expect(r, 281).map(|_| ())),
                _ => torsion::defer::fail(NntpError {
                    code: r.code,
                    text: r.text,
                }),
            })
    }

    /// QUIT, then the connection closes.
    pub fn quit(&self) -> Deferred<()> {
        self.command("QUIT", |_| false)
            .add_callback_result(|r| expect(r, 205).map(|_| ()))
    }

    /// Handles the bytes received: answers complete responses, sends the next command.
    fn received(&self, data: &[u8]) {
        self.inner.borrow_mut().buffer.extend_from_slice(data);
        loop {
            let mut inner = self.inner.borrow_mut();
            let Some(i) = memchr::memchr(b'\n', &inner.buffer) else {
                return;
            };
            let raw: Vec<u8> = inner.buffer.drain(..=i).collect();
            let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
            let reading = std::mem::replace(&mut inner.reading, Reading::Status);
            let done = match reading {
                Reading::Block(mut r) => {
                    if line == b"." {
                        Some(r)
                    } else {
                        let l = line.strip_prefix(b".").unwrap_or(&line);
                        r.lines.push(l.to_vec());
                        inner.reading = Reading::Block(r);
                        None
                    }
                }
                Reading::Status => {
                    let r = parse_status(&line);
                    if !inner.greeted {
                        inner.greeted = true;
                        let trigger = inner.greeting.take();
                        drop(inner);
                        if let Some(t) = trigger {
                            drop(t.try_callback(r));
                        }
                        self.send_next();
                        continue;
                    }
                    let transport = inner.transport.clone();
                    let Some(sent) = inner.sent.as_mut() else {
                        // An answer nobody asked for: ignored.
                        continue;
                    };
                    if r.code == 340 {
                        if let (Some(article), Some(t)) = (sent.article.take(), transport) {
                            t.write(&article);
                            continue;
                        }
                    }
                    if (sent.multi)(r.code) {
                        inner.reading = Reading::Block(r);
                        None
                    } else {
                        Some(r)
                    }
                }
            };
            if let Some(r) = done {
                let sent = inner.sent.take();
                drop(inner);
                if let Some(p) = sent {
                    drop(p.trigger.try_callback(r));
                }
                self.send_next();
            }
        }
    }
}

impl Protocol for NntpClient {
    fn connection_made(&mut self, t: &Transport) {
        self.inner.borrow_mut().transport = Some(t.clone());
        self.send_next();
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.received(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let (greeting, sent, waiting) = {
            let mut inner = self.inner.borrow_mut();
            inner.lost = true;
            inner.transport = None;
            (
                inner.greeting.take(),
                inner.sent.take(),
                std::mem::take(&mut inner.waiting),
            )
        };
        let failure = || -> Failure {
            match &reason {
                ConnectionEnd::Done => Failure::new(ConnectionDone),
                other => Failure::new(NntpError {
                    code: 0,
                    text: format!("connection lost: {other:?}"),
                }),
            }
        };
        if let Some(t) = greeting {
            drop(t.try_errback(failure()));
        }
        for p in sent.into_iter().chain(waiting) {
            drop(p.trigger.try_errback(failure()));
        }
    }
}
