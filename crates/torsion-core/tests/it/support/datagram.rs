//! Helpers shared by the datagram tests: a protocol that records what happens to it.

#![allow(dead_code, unreachable_pub)]

use std::rc::Rc;

use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::defer::DeferredQueue;
use torsion::transport::Address;

pub(crate) use super::next;

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

/// The next event, which must be a datagram: its bytes and sender.
pub async fn next_datagram(q: &DeferredQueue<Event>) -> (Vec<u8>, Address) {
    match next(q).await {
        Event::Datagram(data, from) => (data, from),
        other => panic!("expected a datagram, got {other:?}"),
    }
}
