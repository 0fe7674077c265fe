//! The testing kit as a consumer: `StringTransport` keeps a registered producer and
//! simulates a full buffer; `connected_pair`'s pump drives producers as a socket would.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use torsion::producer::{Producer, ProducerError, ProducerStopped};
use torsion::protocols::basic::FileSender;
use torsion::testing::{connected_pair, failure_result_of, success_result_of, StringTransport};
use torsion::{Deferred, Failure, Protocol, Transport};

#[derive(Default)]
struct Calls(RefCell<Vec<&'static str>>);

impl Producer for Calls {
    fn pause_producing(&self) {
        self.0.borrow_mut().push("pause");
    }
    fn resume_producing(&self) {
        self.0.borrow_mut().push("resume");
    }
    fn stop_producing(&self) {
        self.0.borrow_mut().push("stop");
    }
}

#[test]
fn a_string_transport_keeps_its_producer_and_simulates_the_buffer() {
    let st = StringTransport::new();
    let t = st.transport();
    assert!(st.producer().is_none() && !st.streaming());
    let calls = Rc::new(Calls::default());
    t.register_producer(calls.clone(), true).unwrap();
    assert!(st.streaming());
    assert_eq!(
        t.register_producer(calls.clone(), true),
        Err(ProducerError::AlreadyRegistered)
    );
    assert_eq!(t.write_buffer_limits(), (64 * 1024, 16 * 1024));
    st.set_buffered_size(64 * 1024); // at the watermark, not over it
    assert!(calls.0.borrow().is_empty());
    st.set_buffered_size(64 * 1024 + 1);
    assert_eq!(t.buffered_size(), 64 * 1024 + 1);
    assert!(st.producer_paused());
    st.set_buffered_size(100_000); // already paused: no second call
    st.set_buffered_size(16 * 1024);
    assert_eq!(*calls.0.borrow(), ["pause", "resume"]);
    t.unregister_producer();
    st.set_buffered_size(1 << 20);
    assert_eq!(calls.0.borrow().len(), 2, "nothing once unregistered");

    // A pull producer is asked again when the simulated buffer empties after a write.
    let pull = Rc::new(Calls::default());
    st.set_buffered_size(0);
    t.register_producer(pull.clone(), false).unwrap();
    st.set_buffered_size(0);
    assert_eq!(*pull.0.borrow(), ["resume"]);
    st.set_buffered_size(0);
    assert_eq!(pull.0.borrow().len(), 1, "nothing written since: not asked");
    t.write(b"chunk");
    st.set_buffered_size(0);
    assert_eq!(*pull.0.borrow(), ["resume", "resume"]);
    st.stop_producer();
    assert_eq!(*pull.0.borrow(), ["resume", "resume", "stop"]);
    assert!(st.producer().is_none());

    t.lose_connection();
    assert_eq!(
        t.register_producer(pull, false),
        Err(ProducerError::Disconnected)
    );
}

/// Sends a file once connected, then closes.
struct Serve {
    size: usize,
    outcome: Rc<RefCell<Option<Deferred<u64>>>>,
}

impl Protocol for Serve {
    fn connection_made(&mut self, t: &Transport) {
        let t2 = t.clone();
        let d =
            FileSender::begin_file_transfer(io::Read::take(io::repeat(b'f'), self.size as u64), t)
                .add_callback(move |n| {
                    t2.lose_connection();
                    n
                });
        *self.outcome.borrow_mut() = Some(d);
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

#[derive(Default)]
struct Collect {
    got: Rc<Cell<usize>>,
    chunks: Rc<Cell<usize>>,
}

impl Protocol for Collect {
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.got.set(self.got.get() + data.len());
        self.chunks.set(self.chunks.get() + 1);
    }
}

#[test]
fn the_memory_pump_drives_a_pull_producer_to_its_end() {
    let outcome: Rc<RefCell<Option<Deferred<u64>>>> = Rc::default();
    let client = Collect::default();
    let (got, chunks) = (client.got.clone(), client.chunks.clone());
    let size = 5 * FileSender::CHUNK_SIZE + 123;
    let mut pump = connected_pair(
        client,
        Serve {
            size,
            outcome: outcome.clone(),
        },
    );
    pump.flush();
    assert!(pump.is_closed());
    assert_eq!(got.get(), size);
    assert_eq!(chunks.get(), 6, "one chunk per pump");
    let d = outcome.borrow_mut().take().unwrap();
    assert_eq!(success_result_of(&d), size as u64);
}

#[test]
fn the_memory_pump_stops_the_producer_when_the_connection_ends() {
    let outcome: Rc<RefCell<Option<Deferred<u64>>>> = Rc::default();
    let mut pump = connected_pair(
        Collect::default(),
        Serve {
            size: usize::MAX,
            outcome: outcome.clone(),
        },
    );
    pump.pump();
    pump.pump();
    pump.client_transport().abort_connection();
    pump.pump();
    assert!(pump.is_closed());
    let d = outcome.borrow_mut().take().unwrap();
    let f: Failure = failure_result_of(&d);
    assert!(f.check::<ProducerStopped>(), "{f:?}");
}
