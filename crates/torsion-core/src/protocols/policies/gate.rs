//! [`WriteGate`]: write-buffer flow control for a protocol that answers what it reads, and
//! [`ReadingPause`]: its reading paused and resumed only when that changes.

use std::cell::Cell;
use std::rc::Rc;

use crate::producer::Producer;
use crate::transport::{ProducerError, Transport};

/// Write-buffer flow control for a protocol that answers what it reads (SMTP, POP3, IMAP,
/// NNTP, ...): a client that pipelines commands and never reads the answers must not make
/// the server buffer them without bound.
///
/// The gate registers with the transport as a streaming producer. While the transport's
/// write buffer is over its high watermark, [`blocked`](Self::blocked) is true and the
/// protocol stops answering (and reading); once the buffer drains to the low watermark the
/// transport resumes the gate, which calls the protocol back to go on.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use torsion::protocols::policies::WriteGate;
/// use torsion::testing::StringTransport;
///
/// let st = StringTransport::new();
/// let t = st.transport();
/// let resumed = Rc::new(Cell::new(0));
/// let gate = WriteGate::new();
/// let r = resumed.clone();
/// gate.register(&t, move || r.set(r.get() + 1)).unwrap();
/// assert!(!gate.blocked(&t));
/// st.set_buffered_size(1 << 20); // the client stopped reading: past the high watermark
/// assert!(gate.blocked(&t));
/// st.set_buffered_size(0); // it read everything
/// assert!(!gate.blocked(&t));
/// assert_eq!(resumed.get(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct WriteGate {
    paused: Rc<Cell<bool>>,
}

impl WriteGate {
    /// A gate not yet registered with a transport.
    pub fn new() -> WriteGate {
        WriteGate::default()
    }

    /// Registers with `transport` as its streaming producer; `resumed` runs (from the
    /// reactor, never inside a write) each time the transport has drained its buffer after
    /// a pause, for the protocol to go on answering.
    ///
    /// # Errors
    /// The transport's refusal (it has a producer already, or it is closed).
    pub fn register(
        &self,
        transport: &Transport,
        resumed: impl Fn() + 'static,
    ) -> Result<(), ProducerError> {
        let producer = Rc::new(Gate {
            paused: self.paused.clone(),
            resumed: Box::new(resumed),
        });
        transport.register_producer(producer, true)
    }

    /// Whether answers should wait: the transport paused the gate, or its buffer is past the
    /// high watermark already (written since the transport last looked).
    pub fn blocked(&self, transport: &Transport) -> bool {
        self.paused.get() || transport.buffered_size() > transport.write_buffer_limits().0
    }
}

/// The producer a [`WriteGate`] registers.
struct Gate {
    paused: Rc<Cell<bool>>,
    resumed: Box<dyn Fn()>,
}

impl Producer for Gate {
    fn pause_producing(&self) {
        self.paused.set(true);
    }

    fn resume_producing(&self) {
        self.paused.set(false);
        (self.resumed)();
    }

    fn stop_producing(&self) {}
}

/// Whether a protocol has paused its transport's reading, so that the transport hears only of
/// changes. A protocol that answers what it reads decides after each batch whether reading
/// should wait (its client is not taking the answers, or too much input waits unread) and
/// hands the verdict to [`set`](Self::set), which calls the transport's `pause_producing` or
/// `resume_producing` when the verdict differs from the last one.
///
/// ```
/// use torsion::protocols::policies::ReadingPause;
/// use torsion::testing::StringTransport;
///
/// let st = StringTransport::new();
/// let t = st.transport();
/// let mut reading = ReadingPause::new();
/// reading.set(&t, true);
/// assert!(reading.is_paused());
/// reading.set(&t, true); // no change: the transport is not told again
/// reading.set(&t, false);
/// assert!(!reading.is_paused());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadingPause {
    paused: bool,
}

impl ReadingPause {
    /// Reading not paused.
    pub fn new() -> ReadingPause {
        ReadingPause::default()
    }

    /// Pauses (`true`) or resumes (`false`) `transport`'s reading, if that is a change.
    pub fn set(&mut self, transport: &Transport, pause: bool) {
        if pause != self.paused {
            self.paused = pause;
            if pause {
                transport.pause_producing();
            } else {
                transport.resume_producing();
            }
        }
    }

    /// Whether reading is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}
