//! [`Response`]: a response whose head has arrived, and [`read_body`] for the rest (Twisted's
//! `IResponse` and `readBody`).
//!
//! The agent's Deferred fires as soon as the status line and headers are in; the body keeps
//! arriving behind it. [`read_body`] (or [`Response::body`]) gives a Deferred of the whole
//! body. A response dropped without reading its body is not wasted: the rest of the body is
//! read and thrown away, and the connection goes back to the pool.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::rc::Rc;

use flate2::write::GzDecoder;
use torsion::defer::{fail, succeed, Deferred, Trigger};
use torsion::{Failure, Transport};

use super::error::{BodyTooLarge, ContentDecodingError};
use crate::proto::{Headers, Version};

/// A response to a request made with an [`Agent`](super::Agent) (Twisted's `Response`).
///
/// The head is in the public fields; the body comes with [`read_body`] or
/// [`body`](Response::body).
pub struct Response {
    /// The HTTP version of the status line.
    pub version: Version,
    /// The status code, such as 200.
    pub code: u16,
    /// The reason phrase, such as `OK`.
    pub phrase: String,
    /// The header fields. When the agent decoded a gzip body, `Content-Encoding` no longer
    /// names the gzip layers it decoded; any coding it left (such as `br` in `br, gzip`)
    /// is still named, and still applies to the body.
    pub headers: Headers,
    url: String,
    length: Option<u64>,
    body: Option<Rc<RefCell<BodyState>>>,
}

impl Response {
    pub(crate) fn new(
        head: (Version, u16, String, Headers),
        url: String,
        length: Option<u64>,
        body: Rc<RefCell<BodyState>>,
    ) -> Response {
        let (version, code, phrase, headers) = head;
        Response {
            version,
            code,
            phrase,
            headers,
            url,
            length,
            body: Some(body),
        }
    }

    /// The URL of the request this answers; after redirects, the last one.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body's length when the server announced it (Twisted's `length`); `None` for
    /// chunked and close-delimited bodies and for bodies the agent decodes.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The whole body, once it has arrived (Twisted's `readBody(response)`). It fails with
    /// [`BodyTooLarge`], [`ResponseFailed`](super::ResponseFailed),
    /// [`MalformedResponse`](super::MalformedResponse),
    /// [`ContentDecodingError`] or [`TimeoutError`](torsion::error::TimeoutError).
    /// Cancelling it closes the connection.
    pub fn body(mut self) -> Deferred<Vec<u8>> {
        let Some(state) = self.body.take() else {
            return succeed(Vec::new());
        };
        let mut s = state.borrow_mut();
        if let Some(out) = s.outcome.take() {
            return match out {
                Ok(data) => succeed(data),
                Err(f) => fail(f),
            };
        }
        let transport = s.transport.clone();
        let d = Deferred::with_canceller(move |_| {
            if let Some(t) = transport {
                t.abort_connection();
            }
        });
        s.waiter = Some(d.trigger());
        d
    }
}

/// The whole body of `response` (Twisted's `readBody`); see [`Response::body`].
pub fn read_body(response: Response) -> Deferred<Vec<u8>> {
    response.body()
}

impl Drop for Response {
    fn drop(&mut self) {
        if let Some(state) = self.body.take() {
            state.borrow_mut().abandon();
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("version", &self.version)
            .field("code", &self.code)
            .field("phrase", &self.phrase)
            .field("headers", &self.headers)
            .field("url", &self.url)
            .field("length", &self.length)
            .finish()
    }
}

/// A `Vec` that refuses to grow past a limit, under the gzip decoders.
struct Capped {
    data: Vec<u8>,
    limit: u64,
    over: bool,
}

/// The innermost writer of a gzip chain: the capped output, shared so that it can be taken
/// back from under any number of decoders.
#[derive(Clone)]
struct SharedCapped(Rc<RefCell<Capped>>);

impl Write for SharedCapped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut c = self.0.borrow_mut();
        if (c.data.len() + buf.len()) as u64 > c.limit {
            c.over = true;
            return Err(io::Error::other("body too large"));
        }
        c.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One layer of a chain of decoders (`Content-Encoding: gzip, gzip` is two), outermost
/// first: finishing a layer flushes it into the next, which is then finished in turn.
trait Layer: Write {
    /// Checks the end of this layer's stream and of every layer under it.
    fn finish_all(&mut self) -> io::Result<()>;
}

impl Layer for SharedCapped {
    fn finish_all(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Layer for GzDecoder<Box<dyn Layer>> {
    fn finish_all(&mut self) -> io::Result<()> {
        self.try_finish()?;
        self.get_mut().finish_all()
    }
}

/// Where body bytes go.
enum Sink {
    Plain(Vec<u8>),
    /// One gzip decoder per stacked `gzip` coding, over `out`.
    Gzip {
        chain: Box<dyn Layer>,
        out: SharedCapped,
    },
    /// The response was dropped: count, and forget.
    Discard(u64),
}

/// A body on its way: what the connection has delivered, and who waits for it. Shared by the
/// connection (which writes) and the [`Response`] (which reads).
pub(crate) struct BodyState {
    sink: Sink,
    limit: u64,
    /// Set once the body is complete or failed, until the reader takes it.
    outcome: Option<Result<Vec<u8>, Failure>>,
    finished: bool,
    /// The response was dropped without its body being asked for.
    dropped: bool,
    waiter: Option<Trigger<Vec<u8>>>,
    /// The connection, to close it when the reader gives up.
    transport: Option<Transport>,
}

/// A reader to fire, and what with; fired by the connection once it holds no borrow.
pub(crate) type BodyDone = (Trigger<Vec<u8>>, Result<Vec<u8>, Failure>);

impl BodyState {
    /// A body of at most `limit` (decoded) bytes, through `gzip` stacked gzip decoders (0 for
    /// none); `expected` is the announced length, if any, to allocate once (up to a few MiB)
    /// rather than grow.
    pub(crate) fn new(
        limit: u64,
        gzip: usize,
        expected: Option<u64>,
        transport: Option<Transport>,
    ) -> BodyState {
        let sink = if gzip > 0 {
            let out = SharedCapped(Rc::new(RefCell::new(Capped {
                data: Vec::new(),
                limit,
                over: false,
            })));
            let mut chain: Box<dyn Layer> = Box::new(out.clone());
            for _ in 0..gzip {
                chain = Box::new(GzDecoder::new(chain));
            }
            Sink::Gzip { chain, out }
        } else {
            let reserve = expected.unwrap_or(0).min(limit).min(4 << 20);
            Sink::Plain(Vec::with_capacity(reserve as usize))
        };
        BodyState {
            sink,
            limit,
            outcome: None,
            finished: false,
            dropped: false,
            waiter: None,
            transport,
        }
    }

    /// Takes body bytes; an error means the body failed (too large, bad gzip).
    pub(crate) fn push(&mut self, mut data: &[u8]) -> Result<(), Failure> {
        let too_large = BodyTooLarge { limit: self.limit };
        match &mut self.sink {
            Sink::Plain(buf) => {
                if (buf.len() + data.len()) as u64 > self.limit {
                    return Err(Failure::new(too_large));
                }
                buf.extend_from_slice(data);
            }
            Sink::Discard(n) => {
                *n += data.len() as u64;
                if *n > self.limit {
                    return Err(Failure::new(too_large));
                }
            }
            Sink::Gzip { chain, out } => {
                while !data.is_empty() {
                    match chain.write(data) {
                        Ok(0) => {
                            return Err(Failure::new(ContentDecodingError::new(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "data after the end of the gzip stream",
                            ))))
                        }
                        Ok(n) => data = &data[n..],
                        Err(_) if out.0.borrow().over => return Err(Failure::new(too_large)),
                        Err(e) => return Err(Failure::new(ContentDecodingError::new(e))),
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the body with `outcome`: the reader waiting for it, if any, is returned to be
    /// fired; otherwise the result waits for one.
    pub(crate) fn finish(&mut self, outcome: Result<(), Failure>) -> Option<BodyDone> {
        if self.finished {
            return None;
        }
        self.finished = true;
        self.transport = None;
        let sink = std::mem::replace(&mut self.sink, Sink::Discard(0));
        let out = outcome.and_then(|()| match sink {
            Sink::Plain(data) => Ok(data),
            Sink::Discard(_) => Ok(Vec::new()),
            Sink::Gzip { mut chain, out } => match chain.finish_all() {
                Ok(()) => Ok(std::mem::take(&mut out.0.borrow_mut().data)),
                Err(_) if out.0.borrow().over => {
                    Err(Failure::new(BodyTooLarge { limit: self.limit }))
                }
                Err(e) => Err(Failure::new(ContentDecodingError::new(e))),
            },
        });
        match self.waiter.take() {
            Some(w) => Some((w, out)),
            None if self.dropped => None,
            None => {
                self.outcome = Some(out);
                None
            }
        }
    }

    /// The response was dropped unread: throw away what came and what will come.
    fn abandon(&mut self) {
        self.dropped = true;
        self.outcome = None;
        if !self.finished {
            self.sink = Sink::Discard(0);
        }
    }
}
