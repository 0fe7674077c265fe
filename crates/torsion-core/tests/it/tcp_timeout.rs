//! A connection attempt that gets no answer fails with TimeoutError after the given time.
//! The unanswering server is local: a listener whose accept queue is full (Linux then drops
//! new SYNs, so the connect hangs until the client gives up).

use std::cell::RefCell;
use std::rc::Rc;

use socket2::{Domain, Socket, Type};
use torsion::error::TimeoutError;
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::{reactor, ClientFactory, Factory, Failure, Protocol, Transport};

struct Nothing;

impl Protocol for Nothing {
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

struct Failing(Rc<RefCell<Option<Failure>>>);

impl Factory for Failing {
    type Protocol = Nothing;
    fn build_protocol(&self, _: &Address) -> Option<Nothing> {
        Some(Nothing)
    }
}

impl ClientFactory for Failing {
    fn client_connection_failed(&self, _: &Connector, reason: Failure) {
        *self.0.borrow_mut() = Some(reason);
        let _ = reactor().stop();
    }
    fn client_connection_lost(&self, _: &Connector, _: Failure) {
        let _ = reactor().stop();
    }
}

#[test]
fn an_unanswered_connect_fails_with_timeout_error() {
    // Backlog 0, and fill the queue with connections nobody accepts.
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }

    let r = torsion::Reactor::new();
    r.set_install_signal_handlers(false);
    let reason = Rc::new(RefCell::new(None));
    let started = r.seconds();
    r.connect_tcp_timeout("127.0.0.1", addr.port(), Failing(reason.clone()), 0.3);
    let guard = r.clone();
    r.call_later(20.0, move || guard.stop());
    r.run().unwrap();
    let elapsed = r.seconds() - started;
    let reason = reason.borrow_mut().take().expect("the attempt failed");
    assert!(reason.check::<TimeoutError>(), "got {}", reason.report());
    assert!(
        elapsed >= 0.29,
        "gave up after {elapsed} s, before the time-out"
    );
    drop(fillers);
}
