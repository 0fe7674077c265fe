//! [`Response`]: a response whose head has arrived, and three ways to take its body (Twisted's
//! `IResponse`, `readBody` and `deliverBody`).
//!
//! The agent's Deferred fires as soon as the status line and headers are in; the body keeps
//! arriving behind it, and goes to whichever reader the response is given:
//!
//! - [`read_body`] (or [`Response::body`]): a Deferred of the whole body, at most the agent's
//!   [`with_max_body`](super::Agent::with_max_body) bytes;
//! - [`Response::stream`]: a [`BodyStream`] whose [`next_chunk`](BodyStream::next_chunk) gives
//!   the body a piece at a time, reading from the server only while fewer than
//!   [`BODY_HIGH_WATER`] bytes wait for it (the connection is paused, not the memory grown);
//! - [`Response::deliver_body`]: a [`BodyProtocol`] gets the pieces as they come, and a
//!   [`BodyProducer`] to pause the connection while it catches up (Twisted's `deliverBody`).
//!
//! A streamed body has no size limit: its memory is bounded by the flow control instead. A
//! body nobody has asked for yet is held up to [`BODY_HIGH_WATER`] bytes, then the
//! connection waits. A response dropped without reading its body is not wasted: the rest of
//! the body is read and thrown away (up to the size limit), and the connection goes back to
//! the pool.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::{defer::ensure_deferred, Failure, Reactor};
//! use torsion_web::client::{Agent, BodyProducer, BodyProtocol, ResponseDone};
//! use torsion_web::{resources::Data, Site};
//!
//! /// Counts the bytes of a body (Twisted's deliverBody protocol).
//! struct Count(Rc<RefCell<(usize, bool)>>);
//! impl BodyProtocol for Count {
//!     fn connection_made(&mut self, _producer: BodyProducer) {}
//!     fn data_received(&mut self, data: &[u8]) { self.0.borrow_mut().0 += data.len() }
//!     fn connection_lost(&mut self, reason: Failure) {
//!         self.0.borrow_mut().1 = reason.check::<ResponseDone>();
//!     }
//! }
//!
//! let reactor = Reactor::new();
//! let port = reactor.listen_tcp_on(0, Site::new(Data::new("x".repeat(100_000), "text/plain")), "127.0.0.1")?;
//! let url = format!("http://127.0.0.1:{}/", port.get_host().port().unwrap());
//! let seen = Rc::new(RefCell::new((0, false)));
//! let (count, chunks) = (seen.clone(), Rc::new(RefCell::new(0)));
//! let n = chunks.clone();
//! reactor.call_when_running(move || {
//!     ensure_deferred(async move {
//!         let agent = Agent::new();
//!         // deliver_body: the protocol is told of each piece, then of the end.
//!         agent.get(&url).await?.deliver_body(Count(count));
//!         // stream: ask for the pieces one at a time.
//!         let body = agent.get(&url).await?.stream();
//!         while let Some(chunk) = body.next_chunk().await? {
//!             *n.borrow_mut() += chunk.len();
//!         }
//!         agent.close_cached_connections().await?;
//!         port.stop_listening().await
//!     })
//!     .add_both(|out| {
//!         out.unwrap();
//!         torsion::reactor().stop()
//!     });
//! });
//! reactor.run()?;
//! assert_eq!(*seen.borrow(), (100_000, true));
//! assert_eq!(*chunks.borrow(), 100_000);
//! # Ok::<(), Failure>(())
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::rc::{Rc, Weak};

use brotli_decompressor::DecompressorWriter;
use flate2::write::{GzDecoder, ZlibDecoder};
use torsion::defer::{succeed, Deferred, Trigger};
use torsion::transport::Producer;
use torsion::Failure;

use super::error::{BodyTooLarge, ContentDecodingError, PotentialDataLoss, ResponseDone};
use crate::proto::{Headers, Version};

/// Body bytes a [`BodyStream`] (or a response nobody reads yet) holds before the connection
/// stops reading from the server: 256 KiB.
pub const BODY_HIGH_WATER: usize = 256 * 1024;

/// Held bytes at or below which a paused connection reads again: 64 KiB.
pub const BODY_LOW_WATER: usize = 64 * 1024;

/// A response to a request made with an [`Agent`](super::Agent) (Twisted's `Response`).
///
/// The head is in the public fields; the body comes with [`read_body`],
/// [`body`](Response::body), [`stream`](Response::stream) or
/// [`deliver_body`](Response::deliver_body).
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
    /// [`BodyTooLarge`] past the agent's limit, or with
    /// [`ResponseFailed`](super::ResponseFailed),
    /// [`MalformedResponse`](super::MalformedResponse),
    /// [`ContentDecodingError`] or [`ResponseTimeout`](super::ResponseTimeout).
    /// Cancelling it closes the connection.
    pub fn body(mut self) -> Deferred<Vec<u8>> {
        let Some(state) = self.body.take() else {
            return succeed(Vec::new());
        };
        let d = Deferred::with_canceller({
            let state = Rc::downgrade(&state);
            move |_| abort(&state)
        });
        let (resume, ended, abort) = state.borrow_mut().collect(d.trigger());
        if let Some(flow) = abort {
            flow.abort();
        }
        act(&state, resume);
        if ended {
            flush(&state);
        }
        d
    }

    /// The body a piece at a time, as it arrives: see [`BodyStream`]. No size limit applies;
    /// the connection reads only while fewer than [`BODY_HIGH_WATER`] bytes wait to be taken.
    pub fn stream(mut self) -> BodyStream {
        let state = self
            .body
            .take()
            .unwrap_or_else(|| Rc::new(RefCell::new(BodyState::empty())));
        let resume = {
            let mut s = state.borrow_mut();
            s.set_mode(Mode::Stream(VecDeque::new()));
            s.unpause_if_low()
        };
        act(&state, resume);
        BodyStream { state }
    }

    /// Hands the body to `protocol` (Twisted's `deliverBody`): `connection_made` with a
    /// [`BodyProducer`] (to pause, resume or stop the connection), `data_received` for each
    /// piece, then `connection_lost` with [`ResponseDone`], [`PotentialDataLoss`] (a body
    /// that ends when the server closes the connection, which a cut could look like), or the
    /// failure that cut the body short. No size limit applies. The protocol may pause the
    /// producer; a piece the connection had already read still arrives.
    pub fn deliver_body(mut self, protocol: impl BodyProtocol) {
        let mut protocol: Box<dyn BodyProtocol> = Box::new(protocol);
        let Some(state) = self.body.take() else {
            protocol.connection_made(BodyProducer { state: Weak::new() });
            protocol.connection_lost(Failure::new(ResponseDone));
            return;
        };
        let resume = {
            let mut s = state.borrow_mut();
            s.set_mode(Mode::Deliver(None));
            let resume = s.paused;
            s.paused = false;
            resume.then(|| s.flow.clone()).flatten()
        };
        if let Some(flow) = resume {
            flow.resume();
        }
        protocol.connection_made(BodyProducer {
            state: Rc::downgrade(&state),
        });
        if let Mode::Deliver(slot @ None) = &mut state.borrow_mut().mode {
            *slot = Some(protocol);
        }
        flush(&state);
    }
}

/// The whole body of `response` (Twisted's `readBody`); see [`Response::body`].
pub fn read_body(response: Response) -> Deferred<Vec<u8>> {
    response.body()
}

impl Drop for Response {
    fn drop(&mut self) {
        if let Some(state) = self.body.take() {
            let resume = state.borrow_mut().abandon();
            act(&state, resume);
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

/// What receives a body from [`Response::deliver_body`] (the protocol Twisted's
/// `deliverBody` takes). Its methods are called from the reactor, never while another of
/// them runs.
pub trait BodyProtocol: 'static {
    /// The body is about to be delivered; `producer` pauses, resumes or stops the connection
    /// it comes from (Twisted's `makeConnection` with a `TransportProxyProducer`). Keep it
    /// to use later.
    fn connection_made(&mut self, producer: BodyProducer) {
        let _ = producer;
    }

    /// A piece of the body (gzip already decoded when the agent decodes it).
    fn data_received(&mut self, data: &[u8]);

    /// The body ended: [`ResponseDone`] when complete, [`PotentialDataLoss`] when it ended
    /// with the connection (no length was announced), or what cut it short
    /// ([`ResponseFailed`](super::ResponseFailed), a time-out...).
    fn connection_lost(&mut self, reason: Failure);
}

/// Pauses, resumes or stops the connection a body comes from (Twisted's
/// `TransportProxyProducer`); given to [`BodyProtocol::connection_made`]. While paused, the
/// connection does not read from the server, and its idle time-out does not run. Does
/// nothing once the body has ended.
#[derive(Clone)]
pub struct BodyProducer {
    state: Weak<RefCell<BodyState>>,
}

impl BodyProducer {
    /// Stops reading the body from the server until [`resume_producing`](Self::resume_producing).
    pub fn pause_producing(&self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let flow = {
            let mut s = state.borrow_mut();
            if s.paused || s.end.is_some() {
                return;
            }
            s.paused = true;
            s.flow.clone()
        };
        if let Some(flow) = flow {
            flow.pause();
        }
    }

    /// Reads the body again.
    pub fn resume_producing(&self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let flow = {
            let mut s = state.borrow_mut();
            if !s.paused {
                return;
            }
            s.paused = false;
            s.flow.clone()
        };
        if let Some(flow) = flow {
            flow.resume();
        }
    }

    /// Gives up on the body: the connection is closed, and the protocol's
    /// `connection_lost` hears [`ResponseFailed`](super::ResponseFailed).
    pub fn stop_producing(&self) {
        abort(&self.state);
    }
}

impl Producer for BodyProducer {
    fn pause_producing(&self) {
        BodyProducer::pause_producing(self);
    }

    fn resume_producing(&self) {
        BodyProducer::resume_producing(self);
    }

    fn stop_producing(&self) {
        BodyProducer::stop_producing(self);
    }
}

impl fmt::Debug for BodyProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyProducer").finish_non_exhaustive()
    }
}

/// A body taken a piece at a time ([`Response::stream`]), the async counterpart of
/// [`Response::deliver_body`]: `while let Some(chunk) = stream.next_chunk().await? { ... }`.
///
/// The connection reads from the server while fewer than [`BODY_HIGH_WATER`] bytes wait
/// here, and is paused above that until the reader has taken all but [`BODY_LOW_WATER`]: a
/// body of any size is read with bounded memory, at the reader's pace. While paused, the
/// agent's idle time-out does not run. Dropping the stream before the end throws the rest
/// of the body away (reading it, up to the agent's size limit, so the connection can be
/// reused).
pub struct BodyStream {
    state: Rc<RefCell<BodyState>>,
}

impl BodyStream {
    /// The next piece of the body; `None` once it has all been given (then again for every
    /// later call). Fails as [`Response::body`] does when the body is cut short (once; `None`
    /// after). Calls made before earlier ones have fired get the pieces in the order they
    /// were made. Cancelling it closes the connection.
    pub fn next_chunk(&self) -> Deferred<Option<Vec<u8>>> {
        let d = Deferred::with_canceller({
            let state = Rc::downgrade(&self.state);
            move |_| abort(&state)
        });
        if let Mode::Stream(waiters) = &mut self.state.borrow_mut().mode {
            waiters.push_back(d.trigger());
        }
        flush(&self.state);
        d
    }

    /// The bytes received and not yet taken.
    pub fn buffered(&self) -> usize {
        self.state.borrow().queued
    }

    /// The most bytes ever held at once, waiting to be taken: bounded by
    /// [`BODY_HIGH_WATER`] and one read of the connection (64 KiB, more for a gzip body).
    pub fn peak_buffered(&self) -> usize {
        self.state.borrow().peak
    }

    /// True once the whole body has been given and it ended with the connection rather than
    /// at an announced length (Twisted's `PotentialDataLoss`): a cut there could not be told
    /// from the end.
    pub fn potential_data_loss(&self) -> bool {
        matches!(self.state.borrow().end, Some(Ok(true))) && self.state.borrow().told
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        let resume = self.state.borrow_mut().abandon();
        act(&self.state, resume);
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("BodyStream")
            .field("buffered", &s.queued)
            .field("peak_buffered", &s.peak)
            .field("ended", &s.end.is_some())
            .finish()
    }
}

/// What the connection a body comes from does for its reader.
pub(crate) trait BodyFlow {
    /// Stop reading from the server (and stop the idle time-out).
    fn pause(&self);
    /// Read again.
    fn resume(&self);
    /// Close the connection now.
    fn abort(&self);
}

/// Closes the connection `state` reads from, if the body is still coming.
fn abort(state: &Weak<RefCell<BodyState>>) {
    let Some(state) = state.upgrade() else {
        return;
    };
    let flow = {
        let s = state.borrow();
        if s.end.is_some() {
            return;
        }
        s.flow.clone()
    };
    if let Some(flow) = flow {
        flow.abort();
    }
}

/// Resumes the connection when `resume` says so (with no borrow held).
fn act(state: &Rc<RefCell<BodyState>>, resume: bool) {
    if !resume {
        return;
    }
    let flow = state.borrow().flow.clone();
    if let Some(flow) = flow {
        flow.resume();
    }
}

/// Hands what waits to the body's reader: the pieces and the end to a [`BodyProtocol`], the
/// next piece to a [`BodyStream`] waiting for one, the whole body to [`Response::body`].
/// Runs user code, so it is called with no borrow of the connection or of `state` held.
pub(crate) fn flush(state: &Rc<RefCell<BodyState>>) {
    loop {
        let mut guard = state.borrow_mut();
        let s = &mut *guard;
        match &mut s.mode {
            Mode::Collect(waiter) => {
                if s.end.is_none() {
                    return;
                }
                let Some(w) = waiter.take() else { return };
                s.told = true;
                let out = match s.end.replace(Ok(false)) {
                    Some(Err(f)) => Err(f),
                    _ => Ok(std::mem::take(&mut s.collected)),
                };
                drop(guard);
                let _ = w.fire(out);
                return;
            }
            Mode::Deliver(slot) => {
                let Some(mut protocol) = slot.take() else {
                    // Being called (this is a nested flush): the outer one goes on.
                    return;
                };
                if let Some(chunk) = s.queue.pop_front() {
                    s.queued -= chunk.len();
                    drop(guard);
                    protocol.data_received(&chunk);
                    if let Mode::Deliver(slot @ None) = &mut state.borrow_mut().mode {
                        *slot = Some(protocol);
                    }
                    continue;
                }
                let reason = match s.end.take() {
                    None => {
                        if let Mode::Deliver(slot) = &mut s.mode {
                            *slot = Some(protocol);
                        }
                        return;
                    }
                    Some(Ok(false)) => Failure::new(ResponseDone),
                    Some(Ok(true)) => Failure::new(PotentialDataLoss),
                    Some(Err(f)) => f,
                };
                s.told = true;
                s.end = Some(Ok(false));
                drop(guard);
                protocol.connection_lost(reason);
                return;
            }
            Mode::Stream(waiters) => {
                if waiters.is_empty() {
                    return;
                }
                let out = if let Some(chunk) = s.queue.pop_front() {
                    s.queued -= chunk.len();
                    Ok(Some(chunk))
                } else {
                    match &mut s.end {
                        None => return,
                        Some(Ok(_)) => Ok(None),
                        Some(end @ Err(_)) => match std::mem::replace(end, Ok(false)) {
                            // Told once; later calls get the end.
                            Err(f) => Err(f),
                            Ok(_) => Ok(None),
                        },
                    }
                };
                if !matches!(out, Ok(Some(_))) {
                    s.told = true;
                }
                let w = match &mut s.mode {
                    Mode::Stream(w) => w.pop_front(),
                    _ => None,
                };
                let resume = s.unpause_if_low();
                drop(guard);
                act(state, resume);
                if let Some(w) = w {
                    let _ = w.fire(out);
                }
                // The next waiter, if any.
                continue;
            }
            Mode::Pending | Mode::Discard => return,
        }
    }
}

/// A content coding the client decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `deflate`: the zlib format (RFC 9110 section 8.4.1.2).
    Deflate,
    /// `br`: Brotli (RFC 7932).
    Br,
}

/// How many times its encoded size a compressed body may grow while decoding (plus 1 MiB):
/// a bound above deflate's own limit (about 1032:1), past which a body is taken for a
/// decompression bomb.
pub const MAX_EXPANSION: u64 = 1100;

/// Decoded bytes always allowed before [`MAX_EXPANSION`] applies.
const EXPANSION_ALLOWANCE: u64 = 1 << 20;

/// Encoded bytes fed to the decoders at a time, so the expansion bound is checked as it
/// grows.
const DECODE_SLICE: usize = 1024;

/// A counter that refuses to pass a limit, under the decoders; what they decoded waits
/// in `data` to be taken.
struct Capped {
    data: Vec<u8>,
    total: u64,
    /// The limit of a body read whole (lifted for streams): past it, `BodyTooLarge`.
    limit: u64,
    over: bool,
    /// The decoded-size limit, streams included.
    hard: u64,
    /// Encoded bytes fed so far.
    encoded: u64,
    /// Why decoding was refused as a bomb, if it was.
    bomb: Option<String>,
}

/// The innermost writer of a gzip chain: the capped output, shared so that it can be taken
/// back from under any number of decoders.
#[derive(Clone)]
struct SharedCapped(Rc<RefCell<Capped>>);

impl Write for SharedCapped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut c = self.0.borrow_mut();
        let total = c.total + buf.len() as u64;
        if total > c.limit {
            c.over = true;
            return Err(io::Error::other("body too large"));
        }
        let expansion = EXPANSION_ALLOWANCE.saturating_add(c.encoded.saturating_mul(MAX_EXPANSION));
        if total > c.hard || total > expansion {
            let why = if total > c.hard {
                format!("the decoded body passed {} bytes", c.hard)
            } else {
                format!(
                    "{} encoded bytes decoded to more than {} (a decompression bomb?)",
                    c.encoded, expansion
                )
            };
            c.bomb = Some(why.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        c.total += buf.len() as u64;
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

impl Layer for ZlibDecoder<Box<dyn Layer>> {
    fn finish_all(&mut self) -> io::Result<()> {
        self.try_finish()?;
        self.get_mut().finish_all()
    }
}

impl Layer for DecompressorWriter<Box<dyn Layer>> {
    fn finish_all(&mut self) -> io::Result<()> {
        self.close()?;
        self.get_mut().finish_all()
    }
}

/// Who the body is for.
pub(crate) enum Mode {
    /// Nobody asked yet: pieces wait in the queue (the connection pauses past the high
    /// watermark).
    Pending,
    /// [`Response::body`]: gathered whole, up to the limit; the Deferred to fire.
    Collect(Option<Trigger<Vec<u8>>>),
    /// [`Response::deliver_body`]: the protocol (out while it is being called).
    Deliver(Option<Box<dyn BodyProtocol>>),
    /// [`Response::stream`]: the calls of `next_chunk` waiting, oldest first.
    Stream(VecDeque<Trigger<Option<Vec<u8>>>>),
    /// The response was dropped: count, and forget.
    Discard,
}

/// A body on its way: what the connection has delivered, and who it is for. Shared by the
/// connection (which writes) and the reader.
pub(crate) struct BodyState {
    gzip: Option<(Box<dyn Layer>, SharedCapped)>,
    mode: Mode,
    limit: u64,
    /// The length the server announced, checked against the limit when the body is read
    /// whole.
    announced: Option<u64>,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    peak: usize,
    collected: Vec<u8>,
    /// Bytes thrown away since the response was dropped.
    discarded: u64,
    /// How the body ended: `Ok(true)` at the connection's close with no length announced
    /// (potential data loss), `Ok(false)` complete.
    end: Option<Result<bool, Failure>>,
    /// The reader has been told of the end.
    told: bool,
    /// The connection is paused for this body.
    pub(crate) paused: bool,
    flow: Option<Rc<dyn BodyFlow>>,
}

impl BodyState {
    /// A body of at most `limit` (decoded) bytes when read whole, through decoders for
    /// `codings` (in the order they were applied; none for a plain body), which give at most
    /// `max_decoded` bytes however the body is read; `announced` is the length the server
    /// gave, if any. `flow` reaches the connection.
    pub(crate) fn new(
        limit: u64,
        codings: &[Coding],
        max_decoded: u64,
        announced: Option<u64>,
        flow: Option<Rc<dyn BodyFlow>>,
    ) -> BodyState {
        let gzip = (!codings.is_empty()).then(|| {
            let out = SharedCapped(Rc::new(RefCell::new(Capped {
                data: Vec::new(),
                total: 0,
                limit,
                over: false,
                hard: max_decoded,
                encoded: 0,
                bomb: None,
            })));
            // The last coding applied is undone first: it is the outermost decoder.
            let mut chain: Box<dyn Layer> = Box::new(out.clone());
            for coding in codings {
                chain = match coding {
                    Coding::Gzip => Box::new(GzDecoder::new(chain)),
                    Coding::Deflate => Box::new(ZlibDecoder::new(chain)),
                    Coding::Br => Box::new(DecompressorWriter::new(chain, 4096)),
                };
            }
            (chain, out)
        });
        BodyState {
            gzip,
            mode: Mode::Pending,
            limit,
            announced,
            queue: VecDeque::new(),
            queued: 0,
            peak: 0,
            collected: Vec::new(),
            discarded: 0,
            end: None,
            told: false,
            paused: false,
            flow,
        }
    }

    /// An empty body, already complete.
    fn empty() -> BodyState {
        let mut s = BodyState::new(0, &[], 0, Some(0), None);
        s.end = Some(Ok(false));
        s
    }

    fn too_large(&self) -> Failure {
        Failure::new(BodyTooLarge { limit: self.limit })
    }

    /// Why decoding failed: the size limit, a bomb, or bad data.
    fn decode_failure(&self, e: io::Error) -> Failure {
        match &self.gzip {
            Some((_, out)) => self.decode_failure_of(out, e),
            None => Failure::new(ContentDecodingError::new(e)),
        }
    }

    fn decode_failure_of(&self, out: &SharedCapped, e: io::Error) -> Failure {
        let c = out.0.borrow();
        if c.over {
            return self.too_large();
        }
        let e = match &c.bomb {
            Some(why) => io::Error::new(io::ErrorKind::InvalidData, why.clone()),
            None => e,
        };
        Failure::new(ContentDecodingError::new(e))
    }

    /// Takes body bytes; an error means the body failed (too large, bad encoding, a bomb).
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), Failure> {
        let Some((chain, out)) = &mut self.gzip else {
            return self.take(data, None);
        };
        for mut slice in data.chunks(DECODE_SLICE) {
            out.0.borrow_mut().encoded += slice.len() as u64;
            while !slice.is_empty() {
                match chain.write(slice) {
                    Ok(0) => {
                        return Err(Failure::new(ContentDecodingError::new(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "data after the end of the compressed stream",
                        ))))
                    }
                    Ok(n) => slice = &slice[n..],
                    Err(e) => return Err(self.decode_failure(e)),
                }
            }
        }
        let decoded = std::mem::take(&mut out.0.borrow_mut().data);
        self.take(&[], Some(decoded))
    }

    /// Hands decoded bytes (`data`, or `owned`) to the mode.
    fn take(&mut self, data: &[u8], owned: Option<Vec<u8>>) -> Result<(), Failure> {
        let len = owned.as_ref().map_or(data.len(), Vec::len);
        if len == 0 {
            return Ok(());
        }
        match &self.mode {
            Mode::Collect(_) => {
                if (self.collected.len() + len) as u64 > self.limit {
                    return Err(self.too_large());
                }
                match owned {
                    Some(v) if self.collected.is_empty() => self.collected = v,
                    Some(v) => self.collected.extend_from_slice(&v),
                    None => self.collected.extend_from_slice(data),
                }
            }
            Mode::Discard => {
                self.discarded += len as u64;
                if self.discarded > self.limit {
                    return Err(self.too_large());
                }
            }
            Mode::Pending | Mode::Deliver(_) | Mode::Stream(_) => {
                self.queue.push_back(owned.unwrap_or_else(|| data.to_vec()));
                self.queued += len;
                self.peak = self.peak.max(self.queued);
            }
        }
        Ok(())
    }

    /// True when the connection should now be paused: more than the high watermark waits
    /// for a reader that takes pieces itself (or for none yet). Marks it paused.
    pub(crate) fn wants_pause(&mut self) -> bool {
        let holds = matches!(self.mode, Mode::Pending | Mode::Stream(_));
        if holds && !self.paused && self.queued > BODY_HIGH_WATER && self.end.is_none() {
            self.paused = true;
            return true;
        }
        false
    }

    /// Un-pauses when what waits is down to the low watermark; true if the connection must
    /// be resumed.
    fn unpause_if_low(&mut self) -> bool {
        if self.paused && self.queued <= BODY_LOW_WATER {
            self.paused = false;
            return true;
        }
        false
    }

    /// Switches to `mode`, lifting the size limit of a streamed body.
    fn set_mode(&mut self, mode: Mode) {
        if matches!(mode, Mode::Stream(_) | Mode::Deliver(_)) {
            if let Some((_, out)) = &self.gzip {
                out.0.borrow_mut().limit = u64::MAX;
            }
        }
        self.mode = mode;
    }

    /// [`Response::body`]: gather the rest whole. Returns whether the connection must be
    /// resumed, whether the body has ended (to flush), and the connection to abort when the
    /// body is too large.
    fn collect(&mut self, waiter: Trigger<Vec<u8>>) -> (bool, bool, Option<Rc<dyn BodyFlow>>) {
        self.set_mode(Mode::Collect(Some(waiter)));
        let over =
            self.announced.is_some_and(|n| n > self.limit) || self.queued as u64 > self.limit;
        if over {
            // Fail now rather than read what cannot be kept; the connection is closed if
            // the rest is still coming.
            let abort = match self.end {
                None => self.flow.take(),
                Some(_) => None,
            };
            self.end = Some(Err(self.too_large()));
            self.queue.clear();
            self.queued = 0;
            return (false, true, abort);
        }
        let mut collected = Vec::with_capacity(
            self.announced
                .unwrap_or(0)
                .min(self.limit)
                .min(4 << 20)
                .max(self.queued as u64) as usize,
        );
        for chunk in self.queue.drain(..) {
            collected.extend_from_slice(&chunk);
        }
        self.queued = 0;
        self.collected = collected;
        let resume = std::mem::take(&mut self.paused) && self.end.is_none();
        (resume, self.end.is_some(), None)
    }

    /// Ends the body with `outcome` (`Ok(true)`: it ended with the connection, no length
    /// announced). Returns whether the connection was paused for it (and must be resumed to
    /// be used again); the caller then [`flush`]es.
    pub(crate) fn finish(&mut self, outcome: Result<bool, Failure>) -> bool {
        if self.end.is_some() {
            return false;
        }
        let outcome = outcome.and_then(|loss| {
            let Some((mut chain, out)) = self.gzip.take() else {
                return Ok(loss);
            };
            match chain.finish_all() {
                Ok(()) => {
                    let rest = std::mem::take(&mut out.0.borrow_mut().data);
                    self.take(&[], Some(rest)).map(|()| loss)
                }
                Err(e) => Err(self.decode_failure_of(&out, e)),
            }
        });
        self.end = Some(outcome);
        self.flow = None;
        if let Mode::Discard = self.mode {
            self.end = Some(Ok(false));
        }
        std::mem::take(&mut self.paused)
    }

    /// The reader was dropped: throw away what came and what will come. Returns whether
    /// the connection must be resumed.
    fn abandon(&mut self) -> bool {
        let discard = std::mem::take(&mut self.queued) as u64;
        self.queue.clear();
        self.collected = Vec::new();
        self.set_mode(Mode::Discard);
        self.discarded = discard;
        if self.end.is_some() {
            return false;
        }
        std::mem::take(&mut self.paused)
    }
}
