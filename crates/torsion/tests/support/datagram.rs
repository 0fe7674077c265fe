//! Helpers shared by the datagram tests: a protocol that records what happens to it, and
//! log capture.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::defer::DeferredQueue;
use torsion::transport::Address;

/// Something that happened to a [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started(Address),
    Datagram(Vec<u8>, Address),
    Refused,
    Stopped,
}

/// Records every protocol event on a queue; echoes datagrams back when `echo` is set, and
/// panics on a datagram equal to `panic_on`.
pub struct Recorder {
    pub events: Rc<DeferredQueue<Event>>,
    pub echo: bool,
    pub panic_on: Option<&'static [u8]>,
}

impl Recorder {
    /// A recorder and the queue its events go to.
    pub fn new(echo: bool) -> (Recorder, Rc<DeferredQueue<Event>>) {
        let events = Rc::new(DeferredQueue::new());
        let r = Recorder {
            events: events.clone(),
            echo,
            panic_on: None,
        };
        (r, events)
    }
}

impl DatagramProtocol for Recorder {
    fn start_protocol(&mut self, t: &DatagramTransport) {
        self.events.put(Event::Started(t.get_host())).unwrap();
    }

    fn datagram_received(&mut self, t: &DatagramTransport, data: &[u8], addr: &Address) {
        if self.panic_on == Some(data) {
            panic!(
                "recorder told to panic on {:?}",
                String::from_utf8_lossy(data)
            );
        }
        self.events
            .put(Event::Datagram(data.to_vec(), addr.clone()))
            .unwrap();
        if self.echo {
            t.write(data, addr).unwrap();
        }
    }

    fn connection_refused(&mut self, _: &DatagramTransport) {
        self.events.put(Event::Refused).unwrap();
    }

    fn stop_protocol(&mut self) {
        self.events.put(Event::Stopped).unwrap();
    }
}

/// The next event on `q`, once there is one.
pub async fn next(q: &DeferredQueue<Event>) -> Event {
    q.get()
        .expect("no other reader waits")
        .await
        .expect("a queued event")
}

/// The next event, which must be a datagram: its bytes and sender.
pub async fn next_datagram(q: &DeferredQueue<Event>) -> (Vec<u8>, Address) {
    match next(q).await {
        Event::Datagram(data, from) => (data, from),
        other => panic!("expected a datagram, got {other:?}"),
    }
}

/// Log output captured from a `tracing` subscriber scoped to the test's thread.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Captures this thread's log output (debug level and up) until the guard is dropped.
    pub fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The output captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
