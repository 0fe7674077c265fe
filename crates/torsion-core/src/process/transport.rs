//! The process transport and the engine that drives one child: it flushes what the protocol
//! wrote to the child's input pipes, reads the child's output pipes into the thread's shared
//! buffer, and reports the exit.
//!
//! As in the stream engine, transport calls made inside a protocol callback only move the
//! transport's lifecycle on or fill buffers; the engine acts on them after the callback
//! returns, so the protocol is never re-entered.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitStatus;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};

use super::errors::{ExitInfo, ProcessExitedAlready};
use super::signal::Signal;
use super::ProcessProtocol;
use crate::engine::{Callbacks, Closing, Lifecycle, Reading};
use crate::error::{ConnectionLost, PanicError};
use crate::reactor::Disconnect;
use crate::transport::{Address, Transport, TransportImpl};
use crate::Failure;

/// Size of the thread's shared read buffer for child output.
const READ_BUF_SIZE: usize = 64 * 1024;
/// Reads per wake-up before yielding to other tasks.
const READS_PER_POLL: usize = 16;
/// A write buffer larger than this is released once it drains.
const KEEP_WRITE_CAPACITY: usize = 64 * 1024;

thread_local! {
    /// One read buffer for every child process on this thread: reads never allocate.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The parent's end of a pipe the parent writes (the child reads).
pub(super) enum WritePipe {
    Stdin(ChildStdin),
    Extra(pipe::Sender),
}

impl WritePipe {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            WritePipe::Stdin(p) => Pin::new(p).poll_write(cx, buf),
            WritePipe::Extra(p) => Pin::new(p).poll_write(cx, buf),
        }
    }
}

/// The parent's end of a pipe the parent reads (the child writes).
pub(super) enum ReadPipe {
    Stdout(ChildStdout),
    Stderr(ChildStderr),
    Extra(pipe::Receiver),
}

impl ReadPipe {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            ReadPipe::Stdout(p) => Pin::new(p).poll_read(cx, buf),
            ReadPipe::Stderr(p) => Pin::new(p).poll_read(cx, buf),
            ReadPipe::Extra(p) => Pin::new(p).poll_read(cx, buf),
        }
    }
}

pub(super) struct Writer {
    fd: i32,
    pipe: Option<WritePipe>,
    buf: BytesMut,
    close: bool,
}

impl Writer {
    pub(super) fn new(fd: i32, pipe: WritePipe) -> Writer {
        Writer {
            fd,
            pipe: Some(pipe),
            buf: BytesMut::new(),
            close: false,
        }
    }
}

pub(super) struct Reader {
    fd: i32,
    pipe: Option<ReadPipe>,
    close: bool,
}

impl Reader {
    pub(super) fn new(fd: i32, pipe: ReadPipe) -> Reader {
        Reader {
            fd,
            pipe: Some(pipe),
            close: false,
        }
    }
}

/// One child's shared state: its pipes, write buffers, exit status and flags. The engine's
/// task and every [`ProcessTransport`] handle point here.
pub(super) struct ProcInner {
    program: String,
    pid: Cell<Option<u32>>,
    exit: Cell<Option<ExitInfo>>,
    /// Where the child's transport is in its life: closing is `Losing` after
    /// `lose_connection`, `ShuttingDown` when the reactor stops, `Closed` once
    /// `process_ended` was delivered; reading is `Paused` by `pause_producing`.
    state: Cell<Lifecycle>,
    callbacks: Callbacks,
    waker: RefCell<Option<Waker>>,
    writers: RefCell<Vec<Writer>>,
    readers: RefCell<Vec<Reader>>,
}

/// What the engine found to do next.
enum Event {
    Data(i32, usize),
    Lost(i32),
    Yield,
}

impl ProcInner {
    pub(super) fn new(
        program: String,
        pid: Option<u32>,
        writers: Vec<Writer>,
        readers: Vec<Reader>,
    ) -> Rc<ProcInner> {
        Rc::new(ProcInner {
            program,
            pid: Cell::new(pid),
            exit: Cell::new(None),
            state: Cell::new(Lifecycle::default()),
            callbacks: Callbacks::default(),
            waker: RefCell::new(None),
            writers: RefCell::new(writers),
            readers: RefCell::new(readers),
        })
    }

    fn state(&self) -> Lifecycle {
        self.state.get()
    }

    fn update(&self, f: impl FnOnce(Lifecycle) -> Lifecycle) {
        self.state.set(f(self.state.get()));
    }

    fn notify(&self) {
        if !self.callbacks.running() {
            if let Some(w) = self.waker.borrow().as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// Calls into the protocol with panics contained.
    pub(super) fn call(&self, f: impl FnOnce()) -> Result<(), PanicError> {
        self.callbacks.call(f)
    }

    /// Calls into the protocol; a panic is logged and closes every pipe (the exit is still
    /// reported).
    pub(super) fn call_logged<P>(&self, what: &str, f: impl FnOnce()) {
        if let Err(p) = self.call(f) {
            crate::log::error_event(format_args!(
                "process protocol {} for {} panicked in {what} ({}); closing its pipes",
                std::any::type_name::<P>(),
                self.program,
                p.message()
            ));
            self.update(Lifecycle::lose);
        }
    }

    fn pipes_open(&self) -> bool {
        self.writers.borrow().iter().any(|w| w.pipe.is_some())
            || self.readers.borrow().iter().any(|r| r.pipe.is_some())
    }

    /// Flushes the input pipes; returns a pipe that just closed.
    fn drive_writers(&self, cx: &mut Context<'_>) -> Option<i32> {
        let exited = self.exit.get().is_some();
        let lose = self.state().closing == Closing::Losing;
        let mut writers = self.writers.borrow_mut();
        for w in writers.iter_mut() {
            let Some(pipe) = w.pipe.as_mut() else {
                continue;
            };
            let mut failed = false;
            while !w.buf.is_empty() && !exited {
                match pipe.poll_write(cx, &w.buf) {
                    Poll::Ready(Ok(0)) => {
                        failed = true;
                        break;
                    }
                    Poll::Ready(Ok(n)) => w.buf.advance(n),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Poll::Ready(Err(e)) => {
                        // EPIPE: the child closed its end (or exited). Not worth a log line.
                        if e.kind() != io::ErrorKind::BrokenPipe {
                            crate::log::error_event(format_args!(
                                "writing to fd {} of {}: {e}",
                                w.fd, self.program
                            ));
                        }
                        failed = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            // Once the child has exited nobody reads the pipe: unsent data is dropped.
            if failed || exited || (w.buf.is_empty() && (w.close || lose)) {
                w.pipe = None;
                w.buf = BytesMut::new();
                return Some(w.fd);
            }
            if w.buf.is_empty() && w.buf.capacity() > KEEP_WRITE_CAPACITY {
                w.buf = BytesMut::new();
            }
        }
        None
    }

    /// Reads one chunk from the first output pipe that has one.
    fn drive_readers(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        reads: &mut usize,
    ) -> Option<Event> {
        let state = self.state();
        let lose = state.closing == Closing::Losing;
        let paused = state.reading == Reading::Paused;
        let mut readers = self.readers.borrow_mut();
        for r in readers.iter_mut() {
            let Some(pipe) = r.pipe.as_mut() else {
                continue;
            };
            if r.close || lose {
                r.pipe = None;
                return Some(Event::Lost(r.fd));
            }
            if paused {
                continue;
            }
            if *reads >= READS_PER_POLL {
                return Some(Event::Yield);
            }
            let mut rb = ReadBuf::new(buf);
            match pipe.poll_read(cx, &mut rb) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => {
                    *reads += 1;
                    let n = rb.filled().len();
                    if n == 0 {
                        r.pipe = None;
                        return Some(Event::Lost(r.fd));
                    }
                    return Some(Event::Data(r.fd, n));
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(Err(e)) => {
                    crate::log::error_event(format_args!(
                        "reading fd {} of {}: {e}; closing it",
                        r.fd, self.program
                    ));
                    r.pipe = None;
                    return Some(Event::Lost(r.fd));
                }
            }
        }
        None
    }

    fn close_all(&self) {
        for w in self.writers.borrow_mut().iter_mut() {
            w.pipe = None;
            w.buf = BytesMut::new();
        }
        for r in self.readers.borrow_mut().iter_mut() {
            r.pipe = None;
        }
    }

    /// Drives the child until it has exited and every pipe is closed.
    pub(super) fn poll_drive<P: ProcessProtocol>(
        &self,
        cx: &mut Context<'_>,
        proto: &mut P,
        t: &ProcessTransport,
        mut wait: Pin<&mut impl Future<Output = io::Result<ExitStatus>>>,
    ) -> Poll<()> {
        let mut reads = 0;
        loop {
            if self.state().closing == Closing::ShuttingDown {
                self.close_all();
                self.update(Lifecycle::closed);
                self.call_logged::<P>("process_ended", || {
                    proto.process_ended(Failure::new(ConnectionLost::new(Some(io::Error::other(
                        "the reactor shut down before the process ended",
                    )))))
                });
                return Poll::Ready(());
            }
            if let Some(fd) = self.drive_writers(cx) {
                self.call_logged::<P>("child_connection_lost", || {
                    proto.child_connection_lost(t, fd)
                });
                continue;
            }
            let event = READ_BUF.with_borrow_mut(|buf| {
                if buf.len() < READ_BUF_SIZE {
                    buf.resize(READ_BUF_SIZE, 0);
                }
                match self.drive_readers(cx, buf, &mut reads) {
                    Some(Event::Data(fd, n)) => {
                        self.call_logged::<P>("child_data_received", || {
                            proto.child_data_received(t, fd, &buf[..n])
                        });
                        Some(false)
                    }
                    Some(Event::Lost(fd)) => {
                        self.call_logged::<P>("child_connection_lost", || {
                            proto.child_connection_lost(t, fd)
                        });
                        Some(false)
                    }
                    Some(Event::Yield) => Some(true),
                    None => None,
                }
            });
            match event {
                Some(false) => continue,
                Some(true) => {
                    // Fair share used: let other tasks run, then come back.
                    cx.waker().wake_by_ref();
                    break;
                }
                None => {}
            }
            if self.exit.get().is_none() {
                if let Poll::Ready(status) = wait.as_mut().poll(cx) {
                    let info = match status {
                        Ok(status) => ExitInfo::from_status(status),
                        Err(e) => {
                            crate::log::error_event(format_args!(
                                "cannot read the exit status of {}: {e}",
                                self.program
                            ));
                            ExitInfo {
                                exit_code: None,
                                signal: None,
                            }
                        }
                    };
                    self.exit.set(Some(info));
                    self.pid.set(None);
                    self.call_logged::<P>("process_exited", || proto.process_exited(info.reason()));
                    continue;
                }
            }
            if let Some(info) = self.exit.get() {
                if !self.pipes_open() {
                    self.update(Lifecycle::closed);
                    self.call_logged::<P>("process_ended", || proto.process_ended(info.reason()));
                    return Poll::Ready(());
                }
            }
            break;
        }
        let mut w = self.waker.borrow_mut();
        match w.as_ref() {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Disconnect for ProcInner {
    fn disconnect_for_shutdown(&self) {
        self.update(Lifecycle::shut_down);
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// A handle to a running child process (Twisted's `IProcessTransport`): write to its input,
/// close its pipes, signal it. Cheap to clone; every clone is the same process.
#[derive(Clone)]
pub struct ProcessTransport {
    pub(super) inner: Rc<ProcInner>,
}

impl ProcessTransport {
    /// Queues bytes for the child's standard input (Twisted's `write`). Never blocks; bytes
    /// written after stdin was closed are dropped.
    pub fn write(&self, data: &[u8]) {
        self.write_to_child(0, data);
    }

    /// Queues several buffers for the child's standard input, in order.
    pub fn write_sequence(&self, data: &[&[u8]]) {
        for chunk in data {
            self.write(chunk);
        }
    }

    /// Queues bytes for the child's descriptor `child_fd`, which must be one the parent writes
    /// (0, or an extra descriptor given as [`ChildFd::Write`](super::ChildFd::Write)); writes
    /// to any other descriptor, or after it closed, are dropped (Twisted's `writeToChild`).
    pub fn write_to_child(&self, child_fd: i32, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut writers = self.inner.writers.borrow_mut();
        let Some(w) = writers.iter_mut().find(|w| w.fd == child_fd) else {
            return;
        };
        if w.pipe.is_none() || w.close || self.inner.state().closing == Closing::Losing {
            return;
        }
        w.buf.extend_from_slice(data);
        drop(writers);
        self.inner.notify();
    }

    /// Closes the parent's end of the child's descriptor `child_fd` (Twisted's
    /// `closeChildFD`): an input pipe once what was written to it has been sent, an output
    /// pipe at once. `child_connection_lost(child_fd)` follows.
    pub fn close_child_fd(&self, child_fd: i32) {
        for w in self.inner.writers.borrow_mut().iter_mut() {
            if w.fd == child_fd {
                w.close = true;
            }
        }
        for r in self.inner.readers.borrow_mut().iter_mut() {
            if r.fd == child_fd {
                r.close = true;
            }
        }
        self.inner.notify();
    }

    /// Closes the child's standard input once everything written has been sent (Twisted's
    /// `closeStdin`): the child reads end of file.
    pub fn close_stdin(&self) {
        self.close_child_fd(0);
    }

    /// Stops reading the child's standard output (Twisted's `closeStdout`); a child that goes
    /// on writing to it gets `EPIPE`/`SIGPIPE`.
    pub fn close_stdout(&self) {
        self.close_child_fd(1);
    }

    /// Stops reading the child's standard error (Twisted's `closeStderr`).
    pub fn close_stderr(&self) {
        self.close_child_fd(2);
    }

    /// Closes every pipe to the child (input pipes after their buffered data is sent); the
    /// child is not signalled (Twisted's `loseConnection`).
    pub fn lose_connection(&self) {
        self.inner.update(Lifecycle::lose);
        self.inner.notify();
    }

    /// Sends a signal to the child (Twisted's `signalProcess`): a [`Signal`]
    /// (`Signal::Term`), or as Twisted takes it, a name such as `"TERM"`, `"KILL"`, `"INT"`,
    /// `"HUP"` (with or without the `SIG` prefix) or a number such as `"9"`. Fails with
    /// [`ProcessExitedAlready`] once the child has exited, and with an `InvalidInput` I/O
    /// error for an unknown signal name.
    pub fn signal_process<S>(&self, signal: S) -> Result<(), Failure>
    where
        S: TryInto<Signal>,
        S::Error: Into<Failure>,
    {
        let sig = signal.try_into().map_err(Into::into)?.raw();
        let pid = match self.inner.pid.get() {
            Some(pid) if self.inner.exit.get().is_none() => pid,
            _ => return Err(Failure::new(ProcessExitedAlready)),
        };
        let pid = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| Failure::new(io::Error::other("invalid process id")))?;
        // The child is reaped only by this thread's engine, after which `pid` is None: the
        // id cannot have been reused by another process yet.
        rustix::process::kill_process(pid, sig).map_err(|e| Failure::new(io::Error::from(e)))
    }

    /// The child's process id, until it has exited (then `None`, as Twisted's `pid`).
    pub fn pid(&self) -> Option<u32> {
        self.inner.pid.get()
    }

    /// How the child ended, once it has.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        self.inner.exit.get()
    }

    /// True once `process_ended` has been delivered.
    pub fn ended(&self) -> bool {
        self.inner.state().closing == Closing::Closed
    }

    /// How many written bytes wait to be sent to the child's standard input.
    pub fn buffered_size(&self) -> usize {
        self.inner
            .writers
            .borrow()
            .iter()
            .find(|w| w.fd == 0)
            .map_or(0, |w| w.buf.len())
    }

    /// Stops reading the child's output until [`resume_producing`](Self::resume_producing);
    /// a child that writes a lot then blocks on its full pipe.
    pub fn pause_producing(&self) {
        self.inner.update(Lifecycle::pause);
    }

    /// Resumes reading the child's output.
    pub fn resume_producing(&self) {
        if self.inner.state().reading == Reading::Paused {
            self.inner.update(Lifecycle::resume);
            self.inner.notify();
        }
    }

    /// This process as a plain [`Transport`] (writes go to the child's stdin,
    /// `lose_connection` closes every pipe), for code written against [`Transport`].
    pub fn as_transport(&self) -> Transport {
        Transport::new(Rc::new(self.clone()))
    }

    /// The program this transport runs.
    pub fn program(&self) -> &str {
        &self.inner.program
    }
}

impl TransportImpl for ProcessTransport {
    fn write(&self, data: &[u8]) {
        ProcessTransport::write(self, data)
    }

    fn lose_connection(&self) {
        ProcessTransport::lose_connection(self)
    }

    fn abort_connection(&self) {
        for w in self.inner.writers.borrow_mut().iter_mut() {
            w.buf.clear();
        }
        self.inner.update(Lifecycle::lose);
        self.inner.notify();
    }

    fn lose_write_connection(&self) {
        self.close_stdin();
    }

    fn get_peer(&self) -> Address {
        match self.inner.pid.get() {
            Some(pid) => Address::Named(format!("process:{pid}")),
            None => Address::Named("process".into()),
        }
    }

    fn get_host(&self) -> Address {
        Address::Named("process".into())
    }

    fn buffered_size(&self) -> usize {
        ProcessTransport::buffered_size(self)
    }

    fn is_connected(&self) -> bool {
        self.inner.pipes_open() && self.inner.state().closing != Closing::Closed
    }

    fn disconnecting(&self) -> bool {
        self.inner.state().disconnecting()
    }

    fn pause_producing(&self) {
        ProcessTransport::pause_producing(self)
    }

    fn resume_producing(&self) {
        ProcessTransport::resume_producing(self)
    }
}

impl std::fmt::Debug for ProcessTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTransport")
            .field("program", &self.inner.program)
            .field("pid", &self.inner.pid.get())
            .field("exit", &self.inner.exit.get())
            .finish()
    }
}
