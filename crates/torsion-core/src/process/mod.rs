//! Child processes (Twisted's `reactor.spawnProcess`, `IProcessProtocol` and
//! `twisted.internet.utils`).
//!
//! [`Reactor::spawn_process`] starts a program with pipes to its standard input, output and
//! error, and hands a [`ProcessTransport`] to a [`ProcessProtocol`]. The protocol hears what the
//! child writes ([`out_received`](ProcessProtocol::out_received),
//! [`err_received`](ProcessProtocol::err_received)), when each pipe closes, when the child
//! exits ([`process_exited`](ProcessProtocol::process_exited)) and when it has exited and every
//! pipe is closed ([`process_ended`](ProcessProtocol::process_ended)). The reason is a
//! [`Failure`] holding [`ProcessDone`] (exit code 0) or [`ProcessTerminated`] (another code, or
//! a signal).
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::process::{Env, ProcessDone, ProcessProtocol, ProcessTransport};
//! use torsion::{reactor, Failure, Reactor};
//!
//! /// Sends text to `cat`, closes its input, and keeps what comes back.
//! struct Cat { got: Rc<RefCell<Vec<u8>>> }
//!
//! impl ProcessProtocol for Cat {
//!     fn connection_made(&mut self, t: &ProcessTransport) {
//!         t.write(b"hello, cat\n");
//!         t.close_stdin();
//!     }
//!     fn out_received(&mut self, _: &ProcessTransport, data: &[u8]) {
//!         self.got.borrow_mut().extend_from_slice(data);
//!     }
//!     fn process_ended(&mut self, reason: Failure) {
//!         assert!(reason.check::<ProcessDone>());
//!         reactor().stop().unwrap();
//!     }
//! }
//!
//! let r = Reactor::new();
//! let got = Rc::new(RefCell::new(Vec::new()));
//! let cat = Cat { got: got.clone() };
//! r.spawn_process(cat, "cat", &[] as &[&str], Env::Inherit, None).unwrap();
//! r.run().unwrap();
//! assert_eq!(&*got.borrow(), b"hello, cat\n");
//! ```
//!
//! For the common cases [`get_process_output`], [`get_process_value`] and
//! [`get_process_output_and_value`] return a Deferred of what the child wrote, of its exit
//! code, or of both.
//!
//! ## Differences from Twisted, and limits
//! - `args` are the arguments after the program (Rust's `Command` convention); Twisted's
//!   `args` start with `argv[0]`.
//! - The environment is inherited by default ([`Env::Inherit`], Rust's convention); Twisted
//!   passes an empty one unless told otherwise. [`Env::Exactly`] gives Twisted's behaviour.
//! - Extra descriptors ([`ProcessSpec::child_fd`]) are mapped into the child by the
//!   `command-fds` crate (`dup2` between `fork` and `exec`); descriptors 0, 1 and 2 can be a
//!   pipe, this process's own, `/dev/null`, or a descriptor you own. No pseudo-terminal
//!   (`usePTY`), no `uid`/`gid` switch.
//! - When the reactor shuts down, the pipes of a running child are closed and its
//!   `process_ended` gets a [`ConnectionLost`](crate::error::ConnectionLost); the child itself is
//!   not killed (as in Twisted).
//! - Once the child has exited, data still buffered for its input is dropped; its output pipes
//!   are read until every writer (grandchildren too) has closed them, as in Twisted.

mod errors;
mod signal;
pub use signal::Signal;
mod transport;
mod utils;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::future::poll_fn;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;

use command_fds::{CommandFdExt, FdMapping};
use tokio::net::unix::pipe;

pub use errors::{
    ExitInfo, ProcessDone, ProcessExitedAlready, ProcessSignalled, ProcessTerminated, SpawnError,
    UnexpectedErrorOutput,
};
pub use transport::ProcessTransport;
pub use utils::{
    get_process_output, get_process_output_and_value, get_process_value, ProcessOutput,
};

use crate::error::ReactorNotRestartable;
use crate::reactor::{Disconnect, Reactor};
use crate::Failure;
use transport::{ProcInner, ReadPipe, Reader, WritePipe, Writer};

/// What happens in a child process's life (Twisted's `IProcessProtocol`/`ProcessProtocol`).
///
/// Every method has a default, so implement only what you need. Each gets the process's
/// [`ProcessTransport`]; keep a clone to write to the child from elsewhere. A panic in any
/// method is caught and logged, and closes the child's pipes; the exit is still reported.
pub trait ProcessProtocol: 'static {
    /// The child has started (Twisted's `makeConnection`/`connectionMade`). Called before
    /// `spawn_process` returns, so writes made here are the first the child reads.
    fn connection_made(&mut self, transport: &ProcessTransport) {
        let _ = transport;
    }

    /// The child wrote `data` to descriptor `child_fd` (Twisted's `childDataReceived`). By
    /// default calls [`out_received`](Self::out_received) for 1 and
    /// [`err_received`](Self::err_received) for 2.
    fn child_data_received(&mut self, transport: &ProcessTransport, child_fd: i32, data: &[u8]) {
        match child_fd {
            1 => self.out_received(transport, data),
            2 => self.err_received(transport, data),
            _ => {}
        }
    }

    /// The child wrote to its standard output (Twisted's `outReceived`).
    fn out_received(&mut self, transport: &ProcessTransport, data: &[u8]) {
        let _ = (transport, data);
    }

    /// The child wrote to its standard error (Twisted's `errReceived`).
    fn err_received(&mut self, transport: &ProcessTransport, data: &[u8]) {
        let _ = (transport, data);
    }

    /// The pipe for the child's descriptor `child_fd` closed (Twisted's
    /// `childConnectionLost`). By default calls `in_connection_lost`, `out_connection_lost` or
    /// `err_connection_lost` for 0, 1 and 2.
    fn child_connection_lost(&mut self, transport: &ProcessTransport, child_fd: i32) {
        match child_fd {
            0 => self.in_connection_lost(transport),
            1 => self.out_connection_lost(transport),
            2 => self.err_connection_lost(transport),
            _ => {}
        }
    }

    /// The child's standard input closed (Twisted's `inConnectionLost`).
    fn in_connection_lost(&mut self, transport: &ProcessTransport) {
        let _ = transport;
    }

    /// The child's standard output closed (Twisted's `outConnectionLost`).
    fn out_connection_lost(&mut self, transport: &ProcessTransport) {
        let _ = transport;
    }

    /// The child's standard error closed (Twisted's `errConnectionLost`).
    fn err_connection_lost(&mut self, transport: &ProcessTransport) {
        let _ = transport;
    }

    /// The child exited (Twisted's `processExited`); some pipes may still be open. `reason`
    /// holds [`ProcessDone`] or [`ProcessTerminated`].
    fn process_exited(&mut self, reason: Failure) {
        let _ = reason;
    }

    /// The child exited and every pipe to it is closed (Twisted's `processEnded`): the last
    /// call this protocol gets. `reason` holds [`ProcessDone`] or [`ProcessTerminated`].
    fn process_ended(&mut self, reason: Failure) {
        let _ = reason;
    }
}

impl ProcessProtocol for Box<dyn ProcessProtocol> {
    fn connection_made(&mut self, t: &ProcessTransport) {
        (**self).connection_made(t)
    }
    fn child_data_received(&mut self, t: &ProcessTransport, child_fd: i32, data: &[u8]) {
        (**self).child_data_received(t, child_fd, data)
    }
    fn out_received(&mut self, t: &ProcessTransport, data: &[u8]) {
        (**self).out_received(t, data)
    }
    fn err_received(&mut self, t: &ProcessTransport, data: &[u8]) {
        (**self).err_received(t, data)
    }
    fn child_connection_lost(&mut self, t: &ProcessTransport, child_fd: i32) {
        (**self).child_connection_lost(t, child_fd)
    }
    fn in_connection_lost(&mut self, t: &ProcessTransport) {
        (**self).in_connection_lost(t)
    }
    fn out_connection_lost(&mut self, t: &ProcessTransport) {
        (**self).out_connection_lost(t)
    }
    fn err_connection_lost(&mut self, t: &ProcessTransport) {
        (**self).err_connection_lost(t)
    }
    fn process_exited(&mut self, reason: Failure) {
        (**self).process_exited(reason)
    }
    fn process_ended(&mut self, reason: Failure) {
        (**self).process_ended(reason)
    }
}

/// The child's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Env {
    /// This process's environment (the default, as Rust's `Command`).
    #[default]
    Inherit,
    /// This process's environment with these variables set or replaced.
    Extend(Vec<(OsString, OsString)>),
    /// Only these variables (Twisted's `env=` argument; `Exactly(vec![])` is Twisted's
    /// default empty environment). A program named without a `/` is still found on this
    /// process's `PATH` unless the variables set `PATH`.
    Exactly(Vec<(OsString, OsString)>),
}

impl Env {
    /// [`Env::Extend`] from any pairs of strings.
    pub fn extend<K: AsRef<OsStr>, V: AsRef<OsStr>>(vars: impl IntoIterator<Item = (K, V)>) -> Env {
        Env::Extend(pairs(vars))
    }

    /// [`Env::Exactly`] from any pairs of strings.
    pub fn exactly<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env::Exactly(pairs(vars))
    }
}

fn pairs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    vars: impl IntoIterator<Item = (K, V)>,
) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect()
}

/// What one of the child's descriptors is (an entry of Twisted's `childFDs`).
#[derive(Debug)]
pub enum ChildFd {
    /// A pipe the parent reads: what the child writes there arrives in
    /// [`child_data_received`](ProcessProtocol::child_data_received) (Twisted's `"r"`). The
    /// default for 1 and 2; not allowed for 0.
    Read,
    /// A pipe the parent writes with [`ProcessTransport::write_to_child`] (Twisted's `"w"`).
    /// The default for 0; not allowed for 1 and 2.
    Write,
    /// This descriptor, given to the child (Twisted's integer entry). It is closed in the
    /// parent once the child has started.
    Fd(OwnedFd),
    /// The same descriptor as this process's (0, 1 and 2 only).
    Inherit,
    /// `/dev/null`.
    Null,
}

/// A program to start, with its arguments, environment, directory and descriptors.
///
/// ```
/// use torsion::process::{ChildFd, Env, ProcessSpec};
///
/// let spec = ProcessSpec::new("sh")
///     .args(["-c", "echo $GREETING >&3"])
///     .env(Env::extend([("GREETING", "hello")]))
///     .path("/")
///     .child_fd(3, ChildFd::Read);
/// assert_eq!(spec.program(), "sh");
/// ```
#[derive(Debug)]
pub struct ProcessSpec {
    program: OsString,
    args: Vec<OsString>,
    env: Env,
    path: Option<PathBuf>,
    child_fds: BTreeMap<i32, ChildFd>,
}

impl ProcessSpec {
    /// A program, found on `PATH` unless it contains a `/`, with no arguments, this process's
    /// environment and directory, and pipes for descriptors 0, 1 and 2.
    pub fn new(program: impl AsRef<OsStr>) -> ProcessSpec {
        ProcessSpec {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Env::Inherit,
            path: None,
            child_fds: BTreeMap::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ProcessSpec {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<A: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = A>) -> ProcessSpec {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets the environment.
    pub fn env(mut self, env: Env) -> ProcessSpec {
        self.env = env;
        self
    }

    /// Sets the working directory (Twisted's `path`).
    pub fn path(mut self, dir: impl AsRef<Path>) -> ProcessSpec {
        self.path = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets what the child's descriptor `child_fd` is (Twisted's `childFDs`).
    pub fn child_fd(mut self, child_fd: i32, what: ChildFd) -> ProcessSpec {
        self.child_fds.insert(child_fd, what);
        self
    }

    /// The program, for messages.
    pub fn program(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

fn invalid(program: &str, why: String) -> Failure {
    Failure::new(SpawnError::new(
        program,
        io::Error::new(io::ErrorKind::InvalidInput, why),
    ))
}

/// The standard descriptor `fd` (0, 1 or 2) as `Stdio`; pipes must go the right way.
fn std_fd(program: &str, fd: i32, what: Option<ChildFd>) -> Result<Stdio, Failure> {
    let pipe_dir_ok = |read: bool| {
        if (fd == 0) != read {
            Ok(Stdio::piped())
        } else {
            Err(invalid(
                program,
                format!(
                    "descriptor {fd} cannot be a pipe the parent {}",
                    if read { "reads" } else { "writes" }
                ),
            ))
        }
    };
    match what {
        None => Ok(Stdio::piped()),
        Some(ChildFd::Read) => pipe_dir_ok(true),
        Some(ChildFd::Write) => pipe_dir_ok(false),
        Some(ChildFd::Fd(owned)) => Ok(Stdio::from(owned)),
        Some(ChildFd::Inherit) => Ok(Stdio::inherit()),
        Some(ChildFd::Null) => Ok(Stdio::null()),
    }
}

impl Reactor {
    /// Starts `program` with `args`, environment `env` and working directory `path` (this
    /// process's when `None`), with pipes to its standard input, output and error, and runs
    /// `protocol` on it (Twisted's `spawnProcess`).
    ///
    /// A program that cannot be started (not found, not executable, a bad directory) gives a
    /// [`SpawnError`] naming the program and the operating system's error.
    pub fn spawn_process<P: ProcessProtocol, A: AsRef<OsStr>>(
        &self,
        protocol: P,
        program: impl AsRef<OsStr>,
        args: &[A],
        env: Env,
        path: Option<&Path>,
    ) -> Result<ProcessTransport, Failure> {
        let mut spec = ProcessSpec::new(program).args(args).env(env);
        if let Some(dir) = path {
            spec = spec.path(dir);
        }
        self.spawn_process_spec(protocol, spec)
    }

    /// Starts the process `spec` describes and runs `protocol` on it; see
    /// [`spawn_process`](Self::spawn_process).
    pub fn spawn_process_spec<P: ProcessProtocol>(
        &self,
        mut protocol: P,
        mut spec: ProcessSpec,
    ) -> Result<ProcessTransport, Failure> {
        if self.finished() {
            return Err(Failure::new(ReactorNotRestartable));
        }
        let program = spec.program();
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args);
        match &spec.env {
            Env::Inherit => {}
            Env::Extend(vars) => {
                cmd.envs(vars.iter().map(|(k, v)| (k, v)));
            }
            Env::Exactly(vars) => {
                cmd.env_clear();
                cmd.envs(vars.iter().map(|(k, v)| (k, v)));
            }
        }
        if let Some(dir) = &spec.path {
            cmd.current_dir(dir);
        }
        let stdin_piped = !matches!(
            spec.child_fds.get(&0),
            Some(ChildFd::Fd(_) | ChildFd::Inherit | ChildFd::Null)
        );
        let stdout_piped = !matches!(
            spec.child_fds.get(&1),
            Some(ChildFd::Fd(_) | ChildFd::Inherit | ChildFd::Null)
        );
        let stderr_piped = !matches!(
            spec.child_fds.get(&2),
            Some(ChildFd::Fd(_) | ChildFd::Inherit | ChildFd::Null)
        );
        cmd.stdin(std_fd(&program, 0, spec.child_fds.remove(&0))?);
        cmd.stdout(std_fd(&program, 1, spec.child_fds.remove(&1))?);
        cmd.stderr(std_fd(&program, 2, spec.child_fds.remove(&2))?);

        // Extra descriptors: pipes made here, the child's end mapped in by command-fds.
        let mut mappings = Vec::new();
        let mut extra_read: Vec<(i32, OwnedFd)> = Vec::new();
        let mut extra_write: Vec<(i32, OwnedFd)> = Vec::new();
        for (fd, what) in std::mem::take(&mut spec.child_fds) {
            if fd < 0 {
                return Err(invalid(&program, format!("bad descriptor number {fd}")));
            }
            let child_end = match what {
                ChildFd::Read => {
                    let (r, w) = new_pipe(&program)?;
                    extra_read.push((fd, r));
                    w
                }
                ChildFd::Write => {
                    let (r, w) = new_pipe(&program)?;
                    extra_write.push((fd, w));
                    r
                }
                ChildFd::Fd(owned) => owned,
                ChildFd::Null => std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map_err(|e| Failure::new(SpawnError::new(&program, e)))?
                    .into(),
                ChildFd::Inherit => {
                    return Err(invalid(
                        &program,
                        format!(
                            "descriptor {fd}: only 0, 1 and 2 can be inherited; pass ChildFd::Fd"
                        ),
                    ))
                }
            };
            mappings.push(FdMapping {
                parent_fd: child_end,
                child_fd: fd,
            });
        }
        if !mappings.is_empty() {
            cmd.fd_mappings(mappings)
                .map_err(|e| invalid(&program, e.to_string()))?;
        }

        let spawned = self.with_context(|| -> Result<_, Failure> {
            let mut child = cmd
                .spawn()
                .map_err(|e| Failure::new(SpawnError::new(&program, e)))?;
            let mut writers = Vec::new();
            let mut readers = Vec::new();
            if stdin_piped {
                if let Some(p) = child.stdin.take() {
                    writers.push(Writer::new(0, WritePipe::Stdin(p)));
                }
            }
            if stdout_piped {
                if let Some(p) = child.stdout.take() {
                    readers.push(Reader::new(1, ReadPipe::Stdout(p)));
                }
            }
            if stderr_piped {
                if let Some(p) = child.stderr.take() {
                    readers.push(Reader::new(2, ReadPipe::Stderr(p)));
                }
            }
            for (fd, w) in extra_write {
                let p = pipe::Sender::from_owned_fd(w)
                    .map_err(|e| Failure::new(SpawnError::new(&program, e)))?;
                writers.push(Writer::new(fd, WritePipe::Extra(p)));
            }
            for (fd, r) in extra_read {
                let p = pipe::Receiver::from_owned_fd(r)
                    .map_err(|e| Failure::new(SpawnError::new(&program, e)))?;
                readers.push(Reader::new(fd, ReadPipe::Extra(p)));
            }
            Ok((child, writers, readers))
        });
        // The child's ends of the extra pipes are closed in this process now, so the parent
        // sees end of file when the child closes them.
        drop(cmd);
        let (child, writers, readers) =
            spawned.ok_or_else(|| Failure::new(ReactorNotRestartable))??;

        let inner = ProcInner::new(program, child.id(), writers, readers);
        let transport = ProcessTransport {
            inner: inner.clone(),
        };
        inner.call_logged::<P>("connection_made", || protocol.connection_made(&transport));
        let reactor = self.clone();
        let t = transport.clone();
        let task = self.spawn_task(run_process(reactor, inner, child, protocol, t));
        if task.is_none() {
            return Err(Failure::new(ReactorNotRestartable));
        }
        Ok(transport)
    }
}

/// A close-on-exec pipe: (read end, write end).
fn new_pipe(program: &str) -> Result<(OwnedFd, OwnedFd), Failure> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Failure::new(SpawnError::new(program, io::Error::from(e))))
}

/// Drives one child from its start to `process_ended`.
async fn run_process<P: ProcessProtocol>(
    reactor: Reactor,
    inner: Rc<ProcInner>,
    mut child: tokio::process::Child,
    mut protocol: P,
    transport: ProcessTransport,
) {
    let live = {
        let weak: std::rc::Weak<dyn Disconnect> = {
            let w: std::rc::Weak<ProcInner> = Rc::downgrade(&inner);
            w
        };
        reactor.register_live(weak)
    };
    {
        let mut wait = std::pin::pin!(child.wait());
        poll_fn(|cx| inner.poll_drive(cx, &mut protocol, &transport, wait.as_mut())).await;
    }
    reactor.unregister_live(live);
}
