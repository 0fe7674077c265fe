//! Producers through `ThrottlingFactory`: a producer registered by a throttled protocol is
//! paused while the write limit holds its writes back and resumed once they are sent (a pull
//! producer is not asked meanwhile), on top of the transport's own watermarks, which it
//! does not undo. Deterministic, with a test `Clock` and a `StringTransport`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torsion::producer::{Producer, ProducerError};
use torsion::protocols::policies::{ThrottlingFactory, ThrottlingProtocol};
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::{factory, Factory, Protocol, Transport};

/// Records the calls it gets; writes `chunk` bytes on each `step` (and, as a pull producer,
/// on each resume).
#[derive(Default)]
struct Recorder {
    t: RefCell<Option<Transport>>,
    chunk: usize,
    pull: bool,
    paused: Cell<bool>,
    calls: RefCell<Vec<&'static str>>,
}

impl Recorder {
    fn step(&self) {
        if !self.paused.get() {
            let t = self.t.borrow().clone().unwrap();
            t.write(&vec![b'w'; self.chunk]);
        }
    }
}

impl Producer for Recorder {
    fn pause_producing(&self) {
        self.paused.set(true);
        self.calls.borrow_mut().push("pause");
    }
    fn resume_producing(&self) {
        self.paused.set(false);
        self.calls.borrow_mut().push("resume");
        if self.pull {
            self.step();
        }
    }
    fn stop_producing(&self) {
        self.calls.borrow_mut().push("stop");
    }
}

/// Registers its recorder as the producer when the connection is made.
struct Registers(Rc<Recorder>);

impl Protocol for Registers {
    fn connection_made(&mut self, t: &Transport) {
        *self.0.t.borrow_mut() = Some(t.clone());
        t.register_producer(self.0.clone(), !self.0.pull).unwrap();
        assert_eq!(
            t.register_producer(self.0.clone(), true),
            Err(ProducerError::AlreadyRegistered)
        );
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

/// A throttled connection over a `StringTransport`, with its factory and protocol (keep
/// them: dropping the protocol ends the connection).
fn throttled(
    recorder: &Rc<Recorder>,
    limit: u64,
) -> (
    Clock,
    StringTransport,
    ThrottlingFactory<torsion::protocol::FnFactory<impl Fn() -> Registers>>,
    ThrottlingProtocol<Registers>,
) {
    let clock = Clock::new();
    let r = recorder.clone();
    let f = ThrottlingFactory::new(factory(move || Registers(r.clone())));
    f.set_write_limit(Some(limit));
    f.set_clock(clock.clone());
    let st = StringTransport::new();
    st.transport().set_write_buffer_limits(1000, 100);
    let mut p = f
        .build_protocol(&Address::Named("peer".into()))
        .expect("admitted");
    p.connection_made(&st.transport());
    (clock, st, f, p)
}

#[test]
fn a_streaming_producer_pauses_while_writes_are_held_back() {
    let rec = Rc::new(Recorder {
        chunk: 150,
        ..Recorder::default()
    });
    let (clock, st, _f, _p) = throttled(&rec, 100);
    rec.step(); // 100 go out, 50 are held back
    assert_eq!(st.value().len(), 100);
    assert!(rec.calls.borrow().is_empty(), "never from inside write");
    clock.advance(0.0);
    assert_eq!(*rec.calls.borrow(), ["pause"]);
    rec.step(); // paused: writes nothing
    clock.advance(1.0); // the held 50 are sent; the producer resumes
    assert_eq!(st.value().len(), 150);
    assert_eq!(*rec.calls.borrow(), ["pause", "resume"]);
}

#[test]
fn the_transport_watermark_and_the_throttle_do_not_undo_each_other() {
    let rec = Rc::new(Recorder {
        chunk: 150,
        ..Recorder::default()
    });
    let (clock, st, _f, _p) = throttled(&rec, 100);
    rec.step();
    clock.advance(0.0);
    assert_eq!(*rec.calls.borrow(), ["pause"]); // throttled
    st.set_buffered_size(5000); // and the transport is full
    clock.advance(1.0); // the throttle lets go, the transport does not
    assert_eq!(*rec.calls.borrow(), ["pause"]);
    assert!(rec.paused.get());
    st.set_buffered_size(0);
    assert_eq!(*rec.calls.borrow(), ["pause", "resume"]);
    // The other way round: full transport first, then held writes.
    st.set_buffered_size(5000);
    assert_eq!(*rec.calls.borrow(), ["pause", "resume", "pause"]);
    st.stop_producer();
    assert_eq!(
        *rec.calls.borrow(),
        ["pause", "resume", "pause", "stop"],
        "the connection's end reaches the producer"
    );
}

#[test]
fn a_pull_producer_is_not_asked_while_writes_are_held_back() {
    let rec = Rc::new(Recorder {
        chunk: 150,
        pull: true,
        ..Recorder::default()
    });
    let (clock, st, f, _p) = throttled(&rec, 100);
    assert!(!st.streaming());
    let registered = st.producer().expect("registered with the real transport");
    registered.resume_producing(); // the transport asks: 100 sent, 50 held
    assert_eq!(*rec.calls.borrow(), ["resume"]);
    assert_eq!(st.value().len(), 100);
    registered.resume_producing(); // asked again while held: owed, not passed on
    clock.advance(0.0);
    assert_eq!(*rec.calls.borrow(), ["resume"]);
    clock.advance(1.0); // held bytes sent: the owed call is made (and it writes again)
    assert_eq!(*rec.calls.borrow(), ["resume", "resume"]);
    assert_eq!(st.value().len(), 200);
    // Unregistering through the wrapper reaches the real transport.
    let t = rec.t.borrow().clone().unwrap();
    t.unregister_producer();
    assert!(st.producer().is_none());
    clock.advance(1.0);
    clock.advance(1.0);
    assert_eq!(rec.calls.borrow().len(), 2, "nothing after unregistering");
    assert_eq!(f.connection_count(), 1);
}
