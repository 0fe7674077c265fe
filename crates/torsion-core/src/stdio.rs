//! Any [`Protocol`] over this process's own standard input and output (Twisted's
//! `twisted.internet.stdio.StandardIO`).
//!
//! [`StandardIO::new`] connects a protocol to stdin and stdout: what arrives on stdin is
//! delivered to `data_received`, and what the protocol writes goes to stdout, buffered and
//! without blocking the reactor. It runs on the same engine as TCP connections, so write
//! coalescing, flow control and panic containment behave the same. End of file on stdin calls
//! `read_connection_lost` (by default: close once everything is written), then
//! `connection_lost`; `lose_connection` closes stdout for real, so a parent reading this
//! process's output sees end of file.
//!
//! ```no_run
//! use torsion::stdio::StandardIO;
//! use torsion::{reactor, ConnectionEnd, Failure, Protocol, Transport};
//!
//! /// Echoes stdin to stdout, and stops at end of input.
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         t.write(data);
//!     }
//!     fn connection_lost(&mut self, _: ConnectionEnd) {
//!         let _ = reactor().stop();
//!     }
//! }
//!
//! fn main() -> Result<(), Failure> {
//!     StandardIO::new(Echo)?;
//!     reactor().run()
//! }
//! ```
//!
//! [`StandardIO::with_fds`] runs a protocol over any pair of descriptors (the two ends of
//! pipes, for example):
//!
//! ```
//! use std::io::{Read, Write};
//! use torsion::stdio::StandardIO;
//! use torsion::{reactor, ConnectionEnd, Failure, Protocol, Reactor, Transport};
//!
//! struct Upper;
//! impl Protocol for Upper {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         t.write(&data.to_ascii_uppercase());
//!     }
//!     fn connection_lost(&mut self, _: ConnectionEnd) {
//!         let _ = reactor().stop();
//!     }
//! }
//!
//! let (in_read, in_write) = rustix::pipe::pipe().unwrap();
//! let (out_read, out_write) = rustix::pipe::pipe().unwrap();
//! std::fs::File::from(in_write).write_all(b"hello").unwrap(); // and end of input
//! let r = Reactor::new();
//! StandardIO::with_fds(&r, Upper, in_read, out_write).unwrap();
//! r.run().unwrap();
//! let mut out = String::new();
//! std::fs::File::from(out_read).read_to_string(&mut out).unwrap();
//! assert_eq!(out, "HELLO");
//! ```
//!
//! ## What stdin and stdout can be
//! - Pipes, sockets and terminals are watched by the event loop. They are put in non-blocking
//!   mode while the protocol runs and given back their mode when it ends. A terminal is
//!   usually one open file shared by stdin, stdout and stderr, so meanwhile stderr is
//!   non-blocking too (as in Twisted); write to stdout only through the transport.
//! - Regular files and `/dev/null` cannot be watched (`epoll` refuses them). They are always
//!   ready, so they are read and written directly, a bounded chunk per turn of the loop (as
//!   Twisted does); such reads and writes go to the disk and do not wait for a peer.
//! - When stdout is closed ([`lose_connection`](crate::transport::TransportImpl::lose_connection),
//!   or the end of the connection), descriptor 1 is pointed at `/dev/null`, so the reader of
//!   this process's output sees end of file and later `println!`s are dropped harmlessly.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::task::{Context, Poll};

use rustix::fs::OFlags;
use tokio::net::unix::pipe;

use crate::error::ReactorNotRestartable;
use crate::protocol::Protocol;
use crate::reactor::{reactor, Reactor};
use crate::stream::{run_connection, Conn, SocketIo, Tasked};
use crate::transport::{Address, Transport};
use crate::Failure;

/// A protocol running over this process's stdin and stdout (Twisted's `StandardIO`).
#[derive(Debug, Clone)]
pub struct StandardIO {
    transport: Transport,
}

impl StandardIO {
    /// Runs `protocol` over this process's stdin and stdout, on the current reactor.
    pub fn new<P: Protocol>(protocol: P) -> Result<StandardIO, Failure> {
        let stdin = io::stdin().as_fd().try_clone_to_owned()?;
        let stdout = io::stdout().as_fd().try_clone_to_owned()?;
        StandardIO::start(&reactor(), protocol, stdin, stdout, true)
    }

    /// Runs `protocol` on `reactor`, reading `input` and writing `output` (Twisted's
    /// `StandardIO(proto, stdin=, stdout=)`). Closing the output closes `output` only.
    pub fn with_fds<P: Protocol>(
        reactor: &Reactor,
        protocol: P,
        input: OwnedFd,
        output: OwnedFd,
    ) -> Result<StandardIO, Failure> {
        StandardIO::start(reactor, protocol, input, output, false)
    }

    fn start<P: Protocol>(
        reactor: &Reactor,
        protocol: P,
        input: OwnedFd,
        output: OwnedFd,
        real_stdout: bool,
    ) -> Result<StandardIO, Failure> {
        if reactor.finished() {
            return Err(Failure::new(ReactorNotRestartable));
        }
        let sock = reactor
            .with_context(|| StdioSocket::new(input, output, real_stdout))
            .ok_or_else(|| Failure::new(ReactorNotRestartable))??;
        let conn = Conn::new(
            Tasked::new(sock),
            Address::Named("stdio".into()),
            Address::Named("stdio".into()),
        );
        let transport = Transport::new(conn.clone());
        let r = reactor.clone();
        let task = reactor.spawn_task(async move {
            run_connection(&r, conn, protocol, |_| {}).await;
        });
        if task.is_none() {
            return Err(Failure::new(ReactorNotRestartable));
        }
        Ok(StandardIO { transport })
    }

    /// The transport: write to stdout, close it, pause reading stdin.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

/// A descriptor the event loop watches, or a file that is always ready.
enum Side<T> {
    Polled(T),
    Always(File),
}

struct Input {
    side: Side<pipe::Receiver>,
    flags: OFlags,
    id: (u64, u64),
}

struct Output {
    side: Side<pipe::Sender>,
    flags: OFlags,
    id: (u64, u64),
}

/// Stdin and stdout as one stream socket for the connection engine.
struct StdioSocket {
    input: Input,
    output: RefCell<Option<Output>>,
    real_stdout: bool,
}

/// The file behind `fd` (device and inode), to tell when two descriptors are one terminal.
fn file_id(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    let file = File::from(fd.try_clone()?);
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Registers `fd` with the event loop in non-blocking mode, or falls back to plain (always
/// ready) I/O when the loop refuses it (regular files, `/dev/null`).
fn watch<T>(
    fd: OwnedFd,
    register: impl FnOnce(OwnedFd) -> io::Result<T>,
) -> io::Result<(Side<T>, OFlags)> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    match register(fd.try_clone()?) {
        Ok(polled) => {
            rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
            Ok((Side::Polled(polled), flags))
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            Ok((Side::Always(File::from(fd)), flags))
        }
        Err(e) => Err(e),
    }
}

impl StdioSocket {
    fn new(input: OwnedFd, output: OwnedFd, real_stdout: bool) -> io::Result<StdioSocket> {
        let in_id = file_id(&input)?;
        let out_id = file_id(&output)?;
        let (in_side, in_flags) = watch(input, pipe::Receiver::from_owned_fd_unchecked)?;
        let input = Input {
            side: in_side,
            flags: in_flags,
            id: in_id,
        };
        let (out_side, out_flags) = match watch(output, pipe::Sender::from_owned_fd_unchecked) {
            Ok(x) => x,
            Err(e) => {
                restore(&input.side, input.flags);
                return Err(e);
            }
        };
        Ok(StdioSocket {
            input,
            output: RefCell::new(Some(Output {
                side: out_side,
                flags: out_flags,
                id: out_id,
            })),
            real_stdout,
        })
    }

    /// Closes stdout: gives back its mode (unless stdin shares the file and still needs
    /// non-blocking mode), drops it, and points descriptor 1 at /dev/null for the real one.
    fn close_output(&self) -> io::Result<()> {
        let Some(out) = self.output.borrow_mut().take() else {
            return Ok(());
        };
        if out.id != self.input.id {
            restore(&out.side, out.flags);
        }
        drop(out);
        if self.real_stdout {
            let null = File::options().write(true).open("/dev/null")?;
            rustix::stdio::dup2_stdout(&null)?;
        }
        Ok(())
    }
}

/// Gives a watched descriptor back its original flags (its blocking mode).
fn restore<T: AsFd>(side: &Side<T>, flags: OFlags) {
    let result = match side {
        Side::Polled(p) => rustix::fs::fcntl_setfl(p.as_fd(), flags),
        Side::Always(_) => Ok(()),
    };
    if let Err(e) = result {
        crate::log::error_event(format_args!("stdio: cannot restore descriptor flags: {e}"));
    }
}

impl Drop for StdioSocket {
    fn drop(&mut self) {
        if let Err(e) = self.close_output() {
            crate::log::error_event(format_args!("stdio: closing stdout: {e}"));
        }
        restore(&self.input.side, self.input.flags);
    }
}

impl SocketIo for StdioSocket {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.input.side {
            Side::Polled(p) => p.poll_read_ready(cx),
            Side::Always(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.output.borrow().as_ref().map(|o| &o.side) {
            Some(Side::Polled(p)) => p.poll_write_ready(cx),
            Some(Side::Always(_)) => Poll::Ready(Ok(())),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.input.side {
            Side::Polled(p) => p.try_read(buf),
            Side::Always(f) => (&*f).read(buf),
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self.output.borrow().as_ref().map(|o| &o.side) {
            Some(Side::Polled(p)) => p.try_write(buf),
            Some(Side::Always(f)) => (&*f).write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.close_output()
    }
}
