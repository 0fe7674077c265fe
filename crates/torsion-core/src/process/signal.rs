//! Signals for [`ProcessTransport::signal_process`](super::ProcessTransport::signal_process):
//! typed, or by name as Twisted's `signalProcess` takes them.
//!
//! ```
//! use torsion::process::Signal;
//!
//! assert_eq!("TERM".parse::<Signal>().unwrap(), Signal::Term);
//! assert_eq!("SIGKILL".parse::<Signal>().unwrap(), Signal::Kill);
//! assert_eq!("9".parse::<Signal>().unwrap(), Signal::Kill);
//! assert_eq!(Signal::Hup.name(), "HUP");
//! assert!("NOPE".parse::<Signal>().is_err());
//! ```

use std::fmt;
use std::io;
use std::str::FromStr;

use rustix::process::Signal as RawSignal;

/// A signal to send to a child process (the POSIX signals Twisted's `signalProcess` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// `SIGHUP`: the terminal hung up; daemons reload their configuration.
    Hup,
    /// `SIGINT`: interrupt (Ctrl-C).
    Int,
    /// `SIGQUIT`: quit with a core dump.
    Quit,
    /// `SIGABRT`: abort.
    Abrt,
    /// `SIGKILL`: end at once; cannot be caught.
    Kill,
    /// `SIGUSR1`: for the program's own use.
    Usr1,
    /// `SIGUSR2`: for the program's own use.
    Usr2,
    /// `SIGPIPE`: a write to a pipe nobody reads.
    Pipe,
    /// `SIGALRM`: a timer ran out.
    Alrm,
    /// `SIGTERM`: please end (what `kill` sends by default).
    Term,
    /// `SIGCONT`: continue after a stop.
    Cont,
    /// `SIGSTOP`: stop; cannot be caught.
    Stop,
    /// `SIGTSTP`: stop from the terminal (Ctrl-Z).
    Tstp,
    /// `SIGWINCH`: the terminal's size changed.
    Winch,
}

/// Every signal with its name, as Twisted names them (without `SIG`).
const NAMED: &[(&str, Signal, RawSignal)] = &[
    ("HUP", Signal::Hup, RawSignal::HUP),
    ("INT", Signal::Int, RawSignal::INT),
    ("QUIT", Signal::Quit, RawSignal::QUIT),
    ("ABRT", Signal::Abrt, RawSignal::ABORT),
    ("KILL", Signal::Kill, RawSignal::KILL),
    ("USR1", Signal::Usr1, RawSignal::USR1),
    ("USR2", Signal::Usr2, RawSignal::USR2),
    ("PIPE", Signal::Pipe, RawSignal::PIPE),
    ("ALRM", Signal::Alrm, RawSignal::ALARM),
    ("TERM", Signal::Term, RawSignal::TERM),
    ("CONT", Signal::Cont, RawSignal::CONT),
    ("STOP", Signal::Stop, RawSignal::STOP),
    ("TSTP", Signal::Tstp, RawSignal::TSTP),
    ("WINCH", Signal::Winch, RawSignal::WINCH),
];

impl Signal {
    /// The signal's name without `SIG` (`"TERM"`), as Twisted's `signalProcess` takes it.
    pub fn name(self) -> &'static str {
        NAMED
            .iter()
            .find(|(_, s, _)| *s == self)
            .map_or("?", |e| e.0)
    }

    /// The signal's number on this system.
    pub fn number(self) -> i32 {
        self.raw().as_raw()
    }

    pub(super) fn raw(self) -> RawSignal {
        NAMED
            .iter()
            .find(|(_, s, _)| *s == self)
            .map(|e| e.2)
            .expect("every signal has an entry")
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

/// Reads `"TERM"`, `"SIGTERM"`, `"term"` or `"15"`; anything else is an `InvalidInput` error
/// naming what was given.
impl FromStr for Signal {
    type Err = io::Error;

    fn from_str(name: &str) -> io::Result<Signal> {
        let bare = name.strip_prefix("SIG").unwrap_or(name);
        let by_name = NAMED.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(bare));
        let by_number = || {
            let n = bare.parse::<i32>().ok()?;
            NAMED.iter().find(|(_, _, raw)| raw.as_raw() == n)
        };
        by_name.or_else(by_number).map(|e| e.1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown signal {name:?}"),
            )
        })
    }
}

impl TryFrom<&str> for Signal {
    type Error = io::Error;

    fn try_from(name: &str) -> io::Result<Signal> {
        name.parse()
    }
}

impl TryFrom<&String> for Signal {
    type Error = io::Error;

    fn try_from(name: &String) -> io::Result<Signal> {
        name.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!("TERM".parse::<Signal>().unwrap(), Signal::Term);
        assert_eq!("SIGKILL".parse::<Signal>().unwrap(), Signal::Kill);
        assert_eq!("int".parse::<Signal>().unwrap(), Signal::Int);
        assert_eq!("9".parse::<Signal>().unwrap(), Signal::Kill);
        assert!("NOPE".parse::<Signal>().is_err());
        assert!("0".parse::<Signal>().is_err());
        for (name, sig, raw) in NAMED {
            assert_eq!(sig.name(), *name);
            assert_eq!(sig.raw(), *raw);
            assert_eq!(sig.number().to_string().parse::<Signal>().unwrap(), *sig);
        }
        assert_eq!(Signal::Term.to_string(), "SIGTERM");
    }
}
