//! Streaming request bodies (Twisted's `IBodyProducer` and `FileBodyProducer`).
//!
//! A [`RequestBodyProducer`] writes a request body a piece at a time to the [`BodyConsumer`]
//! it is given, and is paused and resumed by the connection's transport as its write buffer
//! fills and drains, so an upload of any size holds about one window of it in memory. A known
//! [`length`](RequestBodyProducer::length) is sent as `Content-Length`; an unknown one as
//! `Transfer-Encoding: chunked`. [`Agent::request_streaming`](super::Agent::request_streaming)
//! sends one; [`FileBodyProducer`] reads a file (or any reader) in chunks.
//!
//! ```
//! use std::{cell::RefCell, io::Write, rc::Rc};
//! use torsion::{defer::ensure_deferred, Failure, Reactor};
//! use torsion_web::client::{read_body, Agent, FileBodyProducer, RequestBodyProducer};
//! use torsion_web::proto::Headers;
//!
//! let reactor = Reactor::new();
//! // A server that reads the body the client streams, and answers 405: `Data` takes GETs.
//! let site = torsion_web::Site::new(torsion_web::resources::Data::new("thanks", "text/plain"));
//! let port = reactor.listen_tcp_on(0, site, "127.0.0.1")?;
//! let url = format!("http://127.0.0.1:{}/", port.get_host().port().unwrap());
//!
//! let got = Rc::new(RefCell::new(None));
//! let keep = got.clone();
//! reactor.call_when_running(move || {
//!     ensure_deferred(async move {
//!         // Of unknown length: sent chunked, 16 bytes a write.
//!         let body = FileBodyProducer::from_reader(&b"an upload of unknown length"[..])
//!             .with_read_size(16);
//!         assert_eq!(body.length(), None);
//!         let agent = Agent::new();
//!         let response = agent
//!             .request_streaming("POST", &url, Headers::new(), Rc::new(body))
//!             .await?;
//!         let code = response.code;
//!         read_body(response).await?;
//!         agent.close_cached_connections().await?;
//!         port.stop_listening().await?;
//!         Ok::<_, Failure>(code)
//!     })
//!     .add_both(move |out| {
//!         *keep.borrow_mut() = Some(out);
//!         torsion::reactor().stop()
//!     });
//! });
//! reactor.run()?;
//! assert_eq!(got.borrow_mut().take().unwrap()?, 405);
//! # Ok::<(), Failure>(())
//! ```

use std::cell::{Cell, RefCell};
use std::fs;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::producer::Producer;
use torsion::reactor::DelayedCall;
use torsion::{Failure, Reactor, Transport};

use super::error::WrongBodyLength;

/// Makes a request body a piece at a time (Twisted's `IBodyProducer`).
///
/// The connection calls [`start_producing`](Self::start_producing) once the request head is
/// written; the producer writes to the consumer whenever it likes and fires the returned
/// Deferred once the body is complete (or fails it, which fails the request with
/// [`RequestGenerationFailed`](super::RequestGenerationFailed)). Meanwhile the transport calls
/// [`pause_producing`](Self::pause_producing) when its write buffer passes its high
/// watermark and [`resume_producing`](Self::resume_producing) when it drains; after
/// [`stop_producing`](Self::stop_producing) (the connection closed, or the response came
/// first) it must write no more. As for any streaming producer, write a chunk per reactor turn
/// rather than looping until paused: the pause arrives after the write that needs it.
pub trait RequestBodyProducer {
    /// The body's length in bytes, sent as `Content-Length`; `None` (Twisted's
    /// `UNKNOWN_LENGTH`) sends it chunked.
    fn length(&self) -> Option<u64>;

    /// Starts writing the body to `consumer`; the Deferred fires once it is all written.
    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()>;

    /// The transport's buffer is full: write nothing until resumed.
    fn pause_producing(&self);

    /// The transport's buffer drained: carry on writing.
    fn resume_producing(&self);

    /// Stop for good: the body will not be needed (its Deferred may fail or never fire).
    fn stop_producing(&self);
}

/// Where a [`RequestBodyProducer`] writes: the connection, framing the bytes as the request
/// announced (counted against `Content-Length`, or as chunks).
#[derive(Clone)]
pub struct BodyConsumer {
    inner: Rc<ConsumerInner>,
}

struct ConsumerInner {
    transport: Transport,
    /// The announced length; `None`: chunked.
    length: Option<u64>,
    written: Cell<u64>,
    /// Writing is over (finished, failed or stopped): later writes are dropped.
    closed: Cell<bool>,
}

impl BodyConsumer {
    pub(crate) fn new(transport: Transport, length: Option<u64>) -> BodyConsumer {
        BodyConsumer {
            inner: Rc::new(ConsumerInner {
                transport,
                length,
                written: Cell::new(0),
                closed: Cell::new(false),
            }),
        }
    }

    /// Sends `data` as the next bytes of the body. Bytes past the announced length are not
    /// sent: the request then fails with [`WrongBodyLength`].
    pub fn write(&self, data: &[u8]) {
        let c = &self.inner;
        if c.closed.get() || data.is_empty() {
            return;
        }
        let before = c.written.get();
        c.written.set(before.saturating_add(data.len() as u64));
        match c.length {
            Some(n) => {
                let room = usize::try_from(n.saturating_sub(before)).unwrap_or(usize::MAX);
                let take = room.min(data.len());
                if take > 0 {
                    c.transport.write(&data[..take]);
                }
            }
            None => {
                let size = format!("{:x}\r\n", data.len());
                c.transport
                    .write_sequence(&[size.as_bytes(), data, b"\r\n"]);
            }
        }
    }

    /// Bytes the transport holds, written but not yet sent: what the upload costs in memory
    /// beyond the producer's own buffer.
    pub fn buffered(&self) -> usize {
        self.inner.transport.buffered_size()
    }

    /// Body bytes written so far (before framing).
    pub fn written(&self) -> u64 {
        self.inner.written.get()
    }

    /// The body is complete: ends a chunked body, or checks the length.
    pub(crate) fn finish(&self) -> Result<(), Failure> {
        let c = &self.inner;
        if c.closed.replace(true) {
            return Ok(());
        }
        match c.length {
            Some(n) if c.written.get() != n => Err(Failure::new(WrongBodyLength {
                expected: n,
                written: c.written.get(),
            })),
            Some(_) => Ok(()),
            None => {
                c.transport.write(b"0\r\n\r\n");
                Ok(())
            }
        }
    }

    /// Writes nothing more.
    pub(crate) fn close(&self) {
        self.inner.closed.set(true);
    }
}

/// Registers a [`RequestBodyProducer`] with a transport: the transport's flow control reaches
/// the body's producer.
pub(crate) struct Registered(pub(crate) Rc<dyn RequestBodyProducer>);

impl Producer for Registered {
    fn pause_producing(&self) {
        self.0.pause_producing();
    }

    fn resume_producing(&self) {
        self.0.resume_producing();
    }

    fn stop_producing(&self) {
        self.0.stop_producing();
    }
}

/// How many bytes [`FileBodyProducer`] reads at a time by default (Twisted's `readSize`, 64 KiB).
pub const DEFAULT_READ_SIZE: usize = 64 * 1024;

/// A request body read from a file or any reader, a chunk per reactor turn (Twisted's
/// `FileBodyProducer`), paused while the connection's write buffer is full.
///
/// A file's length is what remains from its current position (sent as `Content-Length`); a
/// plain reader's is unknown (sent chunked). Memory held is one read buffer plus what the
/// transport holds, which the transport's watermarks bound; [`peak_held`](Self::peak_held)
/// reports the most it held.
pub struct FileBodyProducer {
    inner: Rc<FileInner>,
}

struct FileInner {
    reader: RefCell<Box<dyn Read>>,
    length: Option<u64>,
    read_size: Cell<usize>,
    reactor: Reactor,
    state: RefCell<FileState>,
}

#[derive(Default)]
struct FileState {
    consumer: Option<BodyConsumer>,
    done: Option<Trigger<()>>,
    paused: bool,
    stopped: bool,
    next: Option<DelayedCall>,
    buf: Vec<u8>,
    peak: usize,
}

impl FileBodyProducer {
    /// A body of the rest of `file`, from its current position; its length is known.
    pub fn new(mut file: fs::File) -> io::Result<FileBodyProducer> {
        let len = file.metadata()?.len();
        let pos = file.stream_position()?;
        Ok(Self::build(Box::new(file), Some(len.saturating_sub(pos))))
    }

    /// A body of the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<FileBodyProducer> {
        Self::new(fs::File::open(path)?)
    }

    /// A body of whatever `reader` gives until its end, of unknown length (sent chunked).
    pub fn from_reader(reader: impl Read + 'static) -> FileBodyProducer {
        Self::build(Box::new(reader), None)
    }

    fn build(reader: Box<dyn Read>, length: Option<u64>) -> FileBodyProducer {
        FileBodyProducer {
            inner: Rc::new(FileInner {
                reader: RefCell::new(reader),
                length,
                read_size: Cell::new(DEFAULT_READ_SIZE),
                reactor: torsion::reactor(),
                state: RefCell::new(FileState::default()),
            }),
        }
    }

    /// Reads `bytes` at a time (at least 1; default [`DEFAULT_READ_SIZE`]).
    pub fn with_read_size(self, bytes: usize) -> FileBodyProducer {
        self.inner.read_size.set(bytes.max(1));
        self
    }

    /// The most bytes held at once while producing: the read buffer plus what the transport
    /// held unsent after a write.
    pub fn peak_held(&self) -> usize {
        self.inner.state.borrow().peak
    }
}

impl FileInner {
    /// Schedules the next chunk for the next reactor turn, unless paused, stopped or pending.
    fn schedule(self: &Rc<Self>) {
        let mut s = self.state.borrow_mut();
        if s.paused || s.stopped || s.done.is_none() || s.next.as_ref().is_some_and(|c| c.active())
        {
            return;
        }
        let me = self.clone();
        s.next = Some(self.reactor.call_later(0.0, move || me.tick()));
    }

    /// Reads and writes one chunk, or ends the body.
    fn tick(self: &Rc<Self>) {
        let mut s = self.state.borrow_mut();
        s.next = None;
        if s.paused || s.stopped {
            return;
        }
        let Some(consumer) = s.consumer.clone() else {
            return;
        };
        let size = self.read_size.get();
        let mut buf = std::mem::take(&mut s.buf);
        buf.resize(size, 0);
        let read = loop {
            match self.reader.borrow_mut().read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let end = match read {
            Ok(0) => Some(Ok(())),
            Ok(n) => {
                consumer.write(&buf[..n]);
                s.peak = s.peak.max(consumer.buffered() + buf.capacity());
                None
            }
            Err(e) => Some(Err(Failure::new(e))),
        };
        s.buf = buf;
        match end {
            None => {
                drop(s);
                self.schedule();
            }
            Some(out) => {
                let done = s.done.take();
                s.consumer = None;
                s.buf = Vec::new();
                drop(s);
                if let Some(t) = done {
                    let _ = t.fire(out);
                }
            }
        }
    }
}

impl RequestBodyProducer for FileBodyProducer {
    fn length(&self) -> Option<u64> {
        self.inner.length
    }

    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        let d = Deferred::new();
        {
            let mut s = self.inner.state.borrow_mut();
            if s.done.is_some() || s.stopped {
                drop(s);
                d.errback(io::Error::other("the FileBodyProducer was already used"));
                return d;
            }
            s.consumer = Some(consumer);
            s.done = Some(d.trigger());
        }
        self.inner.schedule();
        d
    }

    fn pause_producing(&self) {
        let mut s = self.inner.state.borrow_mut();
        s.paused = true;
        if let Some(c) = s.next.take() {
            if c.active() {
                let _ = c.cancel();
            }
        }
    }

    fn resume_producing(&self) {
        self.inner.state.borrow_mut().paused = false;
        self.inner.schedule();
    }

    fn stop_producing(&self) {
        let done = {
            let mut s = self.inner.state.borrow_mut();
            s.stopped = true;
            s.consumer = None;
            s.buf = Vec::new();
            if let Some(c) = s.next.take() {
                if c.active() {
                    let _ = c.cancel();
                }
            }
            s.done.take()
        };
        if let Some(t) = done {
            let _ = t.fire(Err(Failure::new(io::Error::new(
                io::ErrorKind::Interrupted,
                "the upload was stopped",
            ))));
        }
    }
}
