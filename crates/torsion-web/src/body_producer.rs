//! The producer of one response body, between a [`Request`](crate::request::Request) and the
//! connection's transport (Twisted's `Request.registerProducer` and the way `HTTPChannel`
//! passes it on).
//!
//! A response waiting behind earlier pipelined responses must not produce: its output would
//! pile up in the request's own buffer. So a body producer is registered with the transport
//! only when its request reaches the front of the queue; until then a pull producer is simply
//! not asked, and a streaming producer is paused. The transport pauses and resumes it too
//! (at its watermarks); this adapter combines both reasons, so that neither undoes the other,
//! and tells the real producer only when the combined state changes. Calls it makes on its
//! own (the pause of a queued streaming producer, the resume when its turn comes) are made
//! on the next reactor turn, never from inside the caller's code.

use std::cell::Cell;
use std::rc::{Rc, Weak};

use torsion::producer::{Producer, ProducerError, DEFAULT_HIGH_WATER};
use torsion::Transport;

pub(crate) struct BodyProducer {
    inner: Rc<dyn Producer>,
    streaming: bool,
    /// The request waits behind earlier responses.
    queued: Cell<bool>,
    /// The transport paused it (its write buffer is over the high watermark).
    transport_paused: Cell<bool>,
    /// What the real producer last heard: paused or not.
    delivered_paused: Cell<bool>,
    stopped: Cell<bool>,
    /// Registered with the transport.
    attached: Cell<bool>,
    sync_scheduled: Cell<bool>,
    /// A pull producer's next chunk is asked for on the next turn (see `wrote_nothing`).
    kick_scheduled: Cell<bool>,
    me: Weak<BodyProducer>,
}

impl BodyProducer {
    pub(crate) fn new(inner: Rc<dyn Producer>, streaming: bool) -> Rc<BodyProducer> {
        Rc::new_cyclic(|me| BodyProducer {
            inner,
            streaming,
            queued: Cell::new(true),
            transport_paused: Cell::new(false),
            delivered_paused: Cell::new(false),
            stopped: Cell::new(false),
            attached: Cell::new(false),
            sync_scheduled: Cell::new(false),
            kick_scheduled: Cell::new(false),
            me: me.clone(),
        })
    }

    /// The producer the resource registered.
    #[cfg(test)]
    pub(crate) fn inner(&self) -> &Rc<dyn Producer> {
        &self.inner
    }

    pub(crate) fn attached(&self) -> bool {
        self.attached.get()
    }

    /// The request is queued behind earlier responses and not yet attached: a streaming
    /// producer is paused on the next turn.
    pub(crate) fn hold(&self) {
        if self.streaming && !self.attached.get() {
            self.queued.set(true);
            self.schedule_sync();
        }
    }

    /// The request's turn: registers with the transport (which asks a pull producer for its
    /// first chunk), and resumes a streaming producer paused while queued.
    ///
    /// A transport without flow control (`Unsupported`) gets the body anyway: a pull
    /// producer is asked for a chunk each reactor turn while that transport reports at most
    /// the default high watermark unsent, and every millisecond otherwise.
    pub(crate) fn attach(self: &Rc<Self>, t: &Transport) -> Result<(), ProducerError> {
        if self.attached.get() || self.stopped.get() {
            return Ok(());
        }
        match t.register_producer(self.clone(), self.streaming) {
            Ok(()) => {}
            Err(ProducerError::Unsupported) => {
                if !self.streaming {
                    self.pull_unmanaged(t.clone());
                }
            }
            Err(e) => return Err(e),
        }
        self.attached.set(true);
        self.queued.set(false);
        if self.streaming {
            self.schedule_sync();
        }
        Ok(())
    }

    /// Drives a pull producer on a transport that does not call producers.
    fn pull_unmanaged(&self, t: Transport) {
        let me = self.me.clone();
        let delay = if t.buffered_size() > DEFAULT_HIGH_WATER {
            0.001
        } else {
            0.0
        };
        torsion::reactor().call_later(delay, move || {
            let Some(p) = me.upgrade() else { return };
            if !p.attached.get() || p.stopped.get() {
                return;
            }
            if t.buffered_size() <= DEFAULT_HIGH_WATER {
                p.inner.resume_producing();
            }
            p.pull_unmanaged(t);
        });
    }

    /// The producer wrote, but nothing reached the transport (an encoder kept the bytes in
    /// its window): the transport will not ask a pull producer for more, since it has nothing
    /// to send, so the next chunk is asked for on the next reactor turn.
    pub(crate) fn wrote_nothing(&self) {
        if self.streaming
            || !self.attached.get()
            || self.stopped.get()
            || self.kick_scheduled.replace(true)
        {
            return;
        }
        let me = self.me.clone();
        torsion::reactor().call_later(0.0, move || {
            let Some(p) = me.upgrade() else { return };
            p.kick_scheduled.set(false);
            if p.attached.get() && !p.stopped.get() {
                p.inner.resume_producing();
            }
        });
    }

    /// Unregisters from the transport, if registered; the producer is not told.
    pub(crate) fn detach(&self, t: Option<&Transport>) {
        if self.attached.replace(false) {
            if let Some(t) = t {
                t.unregister_producer();
            }
        }
        self.stopped.set(true);
    }

    /// Stops the real producer once (the client went away).
    pub(crate) fn stop(&self) {
        if !self.stopped.replace(true) {
            self.inner.stop_producing();
        }
    }

    fn schedule_sync(&self) {
        if self.sync_scheduled.replace(true) {
            return;
        }
        let me = self.me.clone();
        torsion::reactor().call_later(0.0, move || {
            if let Some(p) = me.upgrade() {
                p.sync_scheduled.set(false);
                p.sync();
            }
        });
    }

    /// Tells the real producer the combined state, if it changed.
    fn sync(&self) {
        if self.stopped.get() || !self.streaming {
            return;
        }
        let want = self.queued.get() || self.transport_paused.get();
        if want != self.delivered_paused.replace(want) {
            if want {
                self.inner.pause_producing();
            } else {
                self.inner.resume_producing();
            }
        }
    }
}

/// What the transport calls (from its own task, never re-entrantly).
impl Producer for BodyProducer {
    fn pause_producing(&self) {
        self.transport_paused.set(true);
        self.sync();
    }

    fn resume_producing(&self) {
        if self.streaming {
            self.transport_paused.set(false);
            self.sync();
        } else if !self.stopped.get() {
            self.inner.resume_producing();
        }
    }

    fn stop_producing(&self) {
        self.attached.set(false);
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use torsion::transport::{Address, TransportImpl};
    use torsion::Failure;

    use super::*;

    /// A transport without flow control that records what is written.
    #[derive(Default)]
    struct Plain(RefCell<Vec<u8>>);

    impl TransportImpl for Plain {
        fn write(&self, data: &[u8]) {
            self.0.borrow_mut().extend_from_slice(data);
        }
        fn lose_connection(&self) {}
        fn abort_connection(&self) {}
        fn get_peer(&self) -> Address {
            Address::Named("peer".into())
        }
        fn get_host(&self) -> Address {
            Address::Named("host".into())
        }
    }

    /// Writes three chunks, one per call.
    struct Three {
        t: Transport,
        calls: Cell<u32>,
    }

    impl Producer for Three {
        fn resume_producing(&self) {
            if self.calls.get() < 3 {
                self.calls.set(self.calls.get() + 1);
                self.t.write(b"chunk");
            }
        }
        fn stop_producing(&self) {}
    }

    #[test]
    fn a_pull_body_reaches_a_transport_without_flow_control() {
        torsion::testing::run_test("unmanaged", 10.0, || async {
            let plain = Rc::new(Plain::default());
            let t = Transport::new(plain.clone());
            let three = Rc::new(Three {
                t: t.clone(),
                calls: Cell::new(0),
            });
            let body = BodyProducer::new(three.clone(), false);
            body.attach(&t).expect("attached without flow control");
            while three.calls.get() < 3 {
                torsion::task::defer_later(&torsion::reactor(), 0.0, || ()).await?;
            }
            body.detach(Some(&t));
            // One more turn: the driving loop notices and ends (no call left pending).
            torsion::task::defer_later(&torsion::reactor(), 0.0, || ()).await?;
            assert_eq!(&*plain.0.borrow(), b"chunkchunkchunk");
            Ok::<(), Failure>(())
        });
    }
}
