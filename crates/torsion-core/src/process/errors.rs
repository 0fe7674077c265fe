//! The errors of child processes (Twisted's `error.ProcessDone`, `error.ProcessTerminated`,
//! `error.ProcessExitedAlready`, and the `OSError` of a failed spawn).

use std::fmt;
use std::io;

/// How a child process ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitInfo {
    /// The exit code, when the process exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, when one did.
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub(crate) fn from_status(status: std::process::ExitStatus) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            exit_code: status.code(),
            signal: status.signal(),
        }
    }

    /// True for a clean exit (code 0, no signal).
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none()
    }

    /// The reason handed to `process_exited` and `process_ended`: [`ProcessDone`] for a clean
    /// exit, [`ProcessTerminated`] otherwise.
    #[track_caller]
    pub fn reason(&self) -> crate::Failure {
        if self.success() {
            crate::Failure::new(ProcessDone)
        } else {
            crate::Failure::new(ProcessTerminated {
                exit_code: self.exit_code,
                signal: self.signal,
            })
        }
    }
}

/// The process exited with code 0 (Twisted's `error.ProcessDone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessDone;

impl fmt::Display for ProcessDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "A process has ended without apparent errors: process finished with exit code 0.",
        )
    }
}

impl std::error::Error for ProcessDone {}

/// The process exited with a non-zero code or was killed by a signal (Twisted's
/// `error.ProcessTerminated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessTerminated {
    /// The exit code, when the process exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
}

impl fmt::Display for ProcessTerminated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("A process has ended with a probable error condition: ")?;
        match (self.exit_code, self.signal) {
            (_, Some(sig)) => write!(f, "process ended by signal {sig}."),
            (Some(code), None) => write!(f, "process ended with exit code {code}."),
            (None, None) => f.write_str("process ended (its exit status could not be read)."),
        }
    }
}

impl std::error::Error for ProcessTerminated {}

/// A signal was sent to a process that has already exited (Twisted's
/// `error.ProcessExitedAlready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessExitedAlready;

impl fmt::Display for ProcessExitedAlready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("The process has already exited.")
    }
}

impl std::error::Error for ProcessExitedAlready {}

/// A child process could not be started: the program and the operating system's error.
#[derive(Debug)]
pub struct SpawnError {
    program: String,
    source: io::Error,
}

impl SpawnError {
    pub(crate) fn new(program: impl Into<String>, source: io::Error) -> SpawnError {
        SpawnError {
            program: program.into(),
            source,
        }
    }

    /// The program that could not be started.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The operating system's error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot start {:?}: {}", self.program, self.source)
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// [`get_process_output`](super::get_process_output) saw the child write to stderr and was not
/// told to accept it (Twisted's `_UnexpectedErrorOutput`, "got stderr").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnexpectedErrorOutput {
    /// The first bytes the child wrote to stderr.
    pub stderr: Vec<u8>,
}

impl fmt::Display for UnexpectedErrorOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "got stderr: {:?}", String::from_utf8_lossy(&self.stderr))
    }
}

impl std::error::Error for UnexpectedErrorOutput {}

/// [`get_process_output_and_value`](super::get_process_output_and_value)'s child was killed by
/// a signal: what it wrote, and the signal (Twisted errbacks with `(out, err, signalNum)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSignalled {
    /// What the child wrote to stdout.
    pub stdout: Vec<u8>,
    /// What the child wrote to stderr.
    pub stderr: Vec<u8>,
    /// The signal that killed it.
    pub signal: i32,
}

impl fmt::Display for ProcessSignalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process ended by signal {} after writing {} bytes to stdout and {} to stderr",
            self.signal,
            self.stdout.len(),
            self.stderr.len()
        )
    }
}

impl std::error::Error for ProcessSignalled {}
