//! What every engine shares — the stream connections' (`stream.rs`), the datagram ports'
//! (`datagram/port.rs`) and the child processes' (`process/transport.rs`): a transport's
//! lifecycle as enums, and the guard around calls into user code.
//!
//! The state is plain data, decided on without I/O: transport calls move it, the engine reads
//! it to know what to do next (flush and close, stop reading, shut the write side), and the
//! transitions are tested here without a socket.
//!
//! ```text
//!   closing:  Open ──lose_connection──> Losing ──flushed──> Closed
//!               │  └─abort_connection─> Aborting ─────────>   │
//!               └──────reactor stops──> ShuttingDown ──────>   │
//!   reading:  Open <──resume── Paused        Open ──end of stream──> Closed
//!   writing:  Open ──lose_write_connection──> ShutRequested ──flushed──> Shut
//!                                        (then protocol.write_connection_lost)
//!   drain:    None ──request_drain──> Requested ──protocol.drain()──> Done
//! ```

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::PanicError;

/// Where a transport is on its way to closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Closing {
    /// Open.
    #[default]
    Open,
    /// `lose_connection`: close once everything written has been sent; stop reading.
    Losing,
    /// `abort_connection`: close now, dropping what was not sent.
    Aborting,
    /// The reactor is shutting down: close now.
    ShuttingDown,
    /// Closed: nothing more is read or written.
    Closed,
}

/// The read side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Reading {
    /// Reading.
    #[default]
    Open,
    /// `pause_producing`: not reading until resumed.
    Paused,
    /// The peer closed its side (end of stream): nothing more to read.
    Closed,
}

/// The write side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Writing {
    /// Writing.
    #[default]
    Open,
    /// `lose_write_connection`: shut the write side once everything written has been sent.
    ShutRequested,
    /// The write side is shut.
    Shut,
}

/// A graceful drain (`request_drain`, `Protocol::drain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Drain {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; the protocol's `drain` has not been called yet.
    Requested,
    /// The protocol's `drain` has been called.
    Done,
}

/// A transport's lifecycle, in four bytes (every idle connection carries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Lifecycle {
    pub(crate) closing: Closing,
    pub(crate) reading: Reading,
    pub(crate) writing: Writing,
    pub(crate) drain: Drain,
}

impl Lifecycle {
    /// `lose_connection`: close once flushed (unless already closing harder or closed).
    pub(crate) fn lose(mut self) -> Lifecycle {
        if self.closing == Closing::Open {
            self.closing = Closing::Losing;
        }
        self
    }

    /// `abort_connection`: close now (unless closed already).
    pub(crate) fn abort(mut self) -> Lifecycle {
        if matches!(self.closing, Closing::Open | Closing::Losing) {
            self.closing = Closing::Aborting;
        }
        self
    }

    /// The reactor is shutting down: close now (an abort already asked for stays one).
    pub(crate) fn shut_down(mut self) -> Lifecycle {
        if matches!(self.closing, Closing::Open | Closing::Losing) {
            self.closing = Closing::ShuttingDown;
        }
        self
    }

    /// The transport closed.
    pub(crate) fn closed(mut self) -> Lifecycle {
        self.closing = Closing::Closed;
        self
    }

    /// `pause_producing`: stop reading (a closed read side stays closed).
    pub(crate) fn pause(mut self) -> Lifecycle {
        if self.reading == Reading::Open {
            self.reading = Reading::Paused;
        }
        self
    }

    /// `resume_producing`: read again, if paused.
    pub(crate) fn resume(mut self) -> Lifecycle {
        if self.reading == Reading::Paused {
            self.reading = Reading::Open;
        }
        self
    }

    /// `lose_write_connection`: shut the write side once flushed (if still open).
    pub(crate) fn shut_write(mut self) -> Lifecycle {
        if self.writing == Writing::Open {
            self.writing = Writing::ShutRequested;
        }
        self
    }

    /// The write side is shut.
    pub(crate) fn write_shut(mut self) -> Lifecycle {
        self.writing = Writing::Shut;
        self
    }

    /// The peer closed its side: nothing more to read.
    pub(crate) fn read_closed(mut self) -> Lifecycle {
        self.reading = Reading::Closed;
        self
    }

    /// `request_drain`: asked for once, unless closed.
    pub(crate) fn request_drain(mut self) -> Lifecycle {
        if self.drain == Drain::None && self.closing != Closing::Closed {
            self.drain = Drain::Requested;
        }
        self
    }

    /// The protocol's `drain` is being called.
    pub(crate) fn drained(mut self) -> Lifecycle {
        self.drain = Drain::Done;
        self
    }

    /// True once closing or closed (`disconnecting`).
    pub(crate) fn disconnecting(self) -> bool {
        self.closing != Closing::Open
    }

    /// True when nothing written now would be sent: closed, aborting, or the write side shut.
    pub(crate) fn write_refused(self) -> bool {
        matches!(self.closing, Closing::Closed | Closing::Aborting) || self.writing == Writing::Shut
    }

    /// True when the engine should read: the read side open and not closing.
    pub(crate) fn reads(self) -> bool {
        self.reading == Reading::Open && self.closing == Closing::Open
    }
}

/// The guard around calls into user code (protocols, producers): it records that a callback
/// runs, so transport calls made inside it only record what to do (the engine acts when it
/// returns, and a protocol is never re-entered), and it turns a panic into a [`PanicError`].
#[derive(Debug, Default)]
pub(crate) struct Callbacks {
    running: Cell<bool>,
}

impl Callbacks {
    /// True while a callback runs.
    #[inline]
    pub(crate) fn running(&self) -> bool {
        self.running.get()
    }

    /// Runs `f` as a callback, its panic contained. A call nested in another keeps the outer
    /// one's mark.
    #[inline]
    pub(crate) fn call(&self, f: impl FnOnce()) -> Result<(), PanicError> {
        let outer = self.running.replace(true);
        let r = catch_unwind(AssertUnwindSafe(f));
        self.running.set(outer);
        r.map_err(|payload| crate::failure::panic_error(payload.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_harder_wins_and_closed_is_final() {
        let s = Lifecycle::default().lose();
        assert_eq!(s.closing, Closing::Losing);
        assert!(s.disconnecting() && !s.reads() && !s.write_refused());
        let s = s.abort();
        assert_eq!(s.closing, Closing::Aborting);
        assert!(s.write_refused());
        assert_eq!(
            s.lose().closing,
            Closing::Aborting,
            "lose does not soften an abort"
        );
        assert_eq!(
            s.shut_down().closing,
            Closing::Aborting,
            "an abort stays one"
        );
        let s = Lifecycle::default().shut_down();
        assert_eq!(s.closing, Closing::ShuttingDown);
        let s = s.closed();
        assert_eq!(s.abort().closing, Closing::Closed);
        assert_eq!(s.lose().closing, Closing::Closed);
        assert!(s.write_refused());
    }

    #[test]
    fn pausing_and_the_end_of_stream() {
        let s = Lifecycle::default().pause();
        assert_eq!(s.reading, Reading::Paused);
        assert!(!s.reads());
        assert!(s.resume().reads());
        let ended = Lifecycle {
            reading: Reading::Closed,
            ..Lifecycle::default()
        };
        assert_eq!(ended.pause().reading, Reading::Closed);
        assert_eq!(ended.resume().reading, Reading::Closed);
        let shut = Lifecycle::default().shut_write();
        assert_eq!(shut.writing, Writing::ShutRequested);
        assert_eq!(shut.write_shut().shut_write().writing, Writing::Shut);
        let shut = shut.write_shut();
        let drain = Lifecycle::default().request_drain();
        assert_eq!(drain.drain, Drain::Requested);
        assert_eq!(
            drain.drained().request_drain().drain,
            Drain::Done,
            "asked for once"
        );
        assert_eq!(
            Lifecycle::default().closed().request_drain().drain,
            Drain::None
        );
        assert!(shut.write_refused() && !shut.disconnecting());
    }

    #[test]
    fn callbacks_mark_nesting_and_contain_panics() {
        let c = Callbacks::default();
        assert!(!c.running());
        c.call(|| {
            assert!(c.running());
            c.call(|| assert!(c.running())).unwrap();
            assert!(c.running(), "the outer call is still running");
        })
        .unwrap();
        assert!(!c.running());
        let p = c.call(|| panic!("boom")).unwrap_err();
        assert_eq!(p.message(), "boom");
        assert!(!c.running());
    }
}
