//! `TrafficLoggingFactory`: every connection's events and bytes, both ways, in the debug log.

use torsion::protocols::policies::{TrafficLoggingFactory, TRAFFIC_TARGET};
use torsion::testing::connected_pair;
use torsion::transport::Address;
use torsion::{Factory, Protocol, Transport};

use crate::support::Capture;

/// Echoes, and closes when it gets "quit".
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if data == b"quit" {
            t.lose_connection();
        } else {
            t.write(data);
        }
    }
}

/// Says one thing when connected.
struct Greeter(&'static [u8]);

impl Protocol for Greeter {
    fn connection_made(&mut self, t: &Transport) {
        t.write(self.0);
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

#[test]
fn every_event_and_byte_of_each_connection_is_logged_with_its_number_and_peer() {
    let capture = Capture::default();
    let _guard = capture.start_debug();
    let f = TrafficLoggingFactory::new(torsion::factory(|| Echo), "echo");
    let peer = Address::Named("memory:client".into());

    let server = f.build_protocol(&peer).unwrap();
    let mut pump = connected_pair(Greeter(b"hi\x00\n\""), server);
    pump.flush();
    pump.client_transport().write(b"quit");
    pump.flush();
    assert!(pump.is_closed());

    // A second connection gets the next number.
    let mut second = f.build_protocol(&peer).unwrap();
    let st = torsion::testing::StringTransport::new();
    second.connection_made(&st.transport());
    assert_eq!(f.connection_count(), 2);

    let log = capture.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(TRAFFIC_TARGET))
        .map(|l| l.split_once(": ").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        lines,
        [
            "echo-1 memory:client: connection made",
            r#"echo-1 memory:client: received "hi\x00\n\"""#,
            r#"echo-1 memory:client: wrote "hi\x00\n\"""#,
            r#"echo-1 memory:client: received "quit""#,
            "echo-1 memory:client: closing",
            "echo-1 memory:client: connection lost: connection closed cleanly",
            "echo-2 memory:client: connection made",
        ],
        "{log}"
    );
}

#[test]
fn at_the_default_level_nothing_is_logged() {
    let capture = Capture::default();
    let _guard = capture.start();
    let f = TrafficLoggingFactory::new(torsion::factory(|| Echo), "quiet");
    let mut p = f
        .build_protocol(&Address::Named("memory:client".into()))
        .unwrap();
    let st = torsion::testing::StringTransport::new();
    p.connection_made(&st.transport());
    p.data_received(&st.transport(), b"secret");
    assert_eq!(st.value(), b"secret");
    assert!(!capture.text().contains("secret"), "{}", capture.text());
}

/// Says goodbye and closes its sending half; counts `write_connection_lost`.
struct HalfCloser(std::rc::Rc<std::cell::Cell<usize>>);

impl Protocol for HalfCloser {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"bye");
        t.lose_write_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    fn write_connection_lost(&mut self, _: &Transport) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn the_wrapper_logs_and_passes_on_write_connection_lost() {
    let capture = Capture::default();
    let _guard = capture.start_debug();
    let heard = std::rc::Rc::new(std::cell::Cell::new(0));
    let h = heard.clone();
    let f = TrafficLoggingFactory::new(torsion::factory(move || HalfCloser(h.clone())), "half");
    let server = f
        .build_protocol(&Address::Named("memory:client".into()))
        .unwrap();
    let mut pump = connected_pair(Greeter(b""), server);
    pump.flush();
    assert_eq!(heard.get(), 1, "the wrapped protocol was not told");
    let log = capture.text();
    let wrote = log.find(r#"wrote "bye""#).expect(&log);
    let closed = log
        .find("half-1 memory:client: write side closed")
        .expect(&log);
    assert!(wrote < closed, "{log}");
}
