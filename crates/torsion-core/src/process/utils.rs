//! Deferreds of a child's output and exit code (Twisted's `twisted.internet.utils`).

use crate::defer::{Deferred, Trigger};
use crate::reactor;
use crate::Failure;

use super::errors::{ExitInfo, ProcessSignalled, ProcessTerminated, UnexpectedErrorOutput};
use super::{ProcessProtocol, ProcessSpec, ProcessTransport};

/// What [`get_process_output_and_value`] gives: the child's output and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutput {
    /// What the child wrote to stdout.
    pub stdout: Vec<u8>,
    /// What the child wrote to stderr.
    pub stderr: Vec<u8>,
    /// Its exit code.
    pub exit_code: i32,
}

/// What a collecting protocol does with the result.
enum Want {
    /// stdout; stderr is an error unless `errortoo` (then it joins stdout).
    Output {
        errortoo: bool,
        trigger: Option<Trigger<Vec<u8>>>,
    },
    Value(Option<Trigger<i32>>),
    Both(Option<Trigger<ProcessOutput>>),
}

struct Collect {
    want: Want,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<ExitInfo>,
}

impl ProcessProtocol for Collect {
    fn out_received(&mut self, _: &ProcessTransport, data: &[u8]) {
        if !matches!(self.want, Want::Value(_)) {
            self.stdout.extend_from_slice(data);
        }
    }

    fn err_received(&mut self, t: &ProcessTransport, data: &[u8]) {
        match &mut self.want {
            Want::Output { errortoo: true, .. } => self.stdout.extend_from_slice(data),
            Want::Output {
                errortoo: false,
                trigger,
            } => {
                // As Twisted: fail at once with what came, and close the pipes.
                if let Some(trigger) = trigger.take() {
                    trigger.errback(UnexpectedErrorOutput {
                        stderr: data.to_vec(),
                    });
                    t.lose_connection();
                }
            }
            Want::Value(_) => {}
            Want::Both(_) => self.stderr.extend_from_slice(data),
        }
    }

    fn process_exited(&mut self, _reason: Failure) {}

    fn process_ended(&mut self, reason: Failure) {
        let info = if let Some(t) = reason.downcast_ref::<ProcessTerminated>() {
            Some(ExitInfo {
                exit_code: t.exit_code,
                signal: t.signal,
            })
        } else if reason.check::<super::ProcessDone>() {
            Some(ExitInfo {
                exit_code: Some(0),
                signal: None,
            })
        } else {
            None
        };
        self.exit = info;
        let stdout = std::mem::take(&mut self.stdout);
        let stderr = std::mem::take(&mut self.stderr);
        match &mut self.want {
            Want::Output { trigger, .. } => {
                if let Some(trigger) = trigger.take() {
                    // Twisted's getProcessOutput does not look at the exit code.
                    if info.is_some() {
                        trigger.callback(stdout);
                    } else {
                        trigger.errback(reason);
                    }
                }
            }
            Want::Value(trigger) => {
                if let Some(trigger) = trigger.take() {
                    match info {
                        Some(ExitInfo {
                            exit_code: Some(code),
                            ..
                        }) => trigger.callback(code),
                        _ => trigger.errback(reason),
                    }
                }
            }
            Want::Both(trigger) => {
                if let Some(trigger) = trigger.take() {
                    match info {
                        Some(ExitInfo {
                            exit_code: Some(code),
                            ..
                        }) => trigger.callback(ProcessOutput {
                            stdout,
                            stderr,
                            exit_code: code,
                        }),
                        Some(ExitInfo {
                            signal: Some(signal),
                            ..
                        }) => trigger.errback(ProcessSignalled {
                            stdout,
                            stderr,
                            signal,
                        }),
                        _ => trigger.errback(reason),
                    }
                }
            }
        }
    }
}

fn run<T: 'static>(spec: ProcessSpec, want: Want, d: Deferred<T>) -> Deferred<T> {
    let proto = Collect {
        want,
        stdout: Vec::new(),
        stderr: Vec::new(),
        exit: None,
    };
    if let Err(f) = reactor().spawn_process_spec(proto, spec) {
        d.errback(f);
    }
    d
}

/// Runs a program on the current reactor and gives what it wrote to stdout (Twisted's
/// `getProcessOutput`), whatever its exit code. Its stdin is closed at once.
///
/// If it writes to stderr, the Deferred fails at once with [`UnexpectedErrorOutput`] and the
/// pipes are closed, unless `errortoo` is true: then stderr is collected with stdout. A program
/// that cannot be started fails with [`SpawnError`](super::SpawnError).
///
/// ```
/// use torsion::process::{get_process_output, ProcessSpec};
/// use torsion::{reactor, Reactor};
///
/// let r = Reactor::new();
/// r.call_when_running(|| {
///     get_process_output(ProcessSpec::new("echo").arg("hi"), false).add_both(|out| {
///         assert_eq!(out.unwrap(), b"hi\n");
///         reactor().stop()
///     });
/// });
/// r.run().unwrap();
/// ```
pub fn get_process_output(spec: ProcessSpec, errortoo: bool) -> Deferred<Vec<u8>> {
    let d = Deferred::new();
    let want = Want::Output {
        errortoo,
        trigger: Some(d.trigger()),
    };
    run(spec.stdin_closed(), want, d)
}

/// Runs a program on the current reactor and gives its exit code (Twisted's
/// `getProcessValue`); a child killed by a signal fails with
/// [`ProcessTerminated`]. Its output is read and dropped; its stdin is closed at once.
pub fn get_process_value(spec: ProcessSpec) -> Deferred<i32> {
    let d = Deferred::new();
    let want = Want::Value(Some(d.trigger()));
    run(spec.stdin_closed(), want, d)
}

/// Runs a program on the current reactor and gives its stdout, stderr and exit code (Twisted's
/// `getProcessOutputAndValue`); a child killed by a signal fails with [`ProcessSignalled`],
/// which holds the output and the signal. Its stdin is closed at once.
pub fn get_process_output_and_value(spec: ProcessSpec) -> Deferred<ProcessOutput> {
    let d = Deferred::new();
    let want = Want::Both(Some(d.trigger()));
    run(spec.stdin_closed(), want, d)
}

impl ProcessSpec {
    /// Gives the child `/dev/null` as stdin unless the caller chose something else (the
    /// `get_process_*` helpers never write to it; Twisted closes it at once).
    fn stdin_closed(self) -> ProcessSpec {
        if self.child_fds.contains_key(&0) {
            self
        } else {
            self.child_fd(0, super::ChildFd::Null)
        }
    }
}
