//! [`run_with_peer`]: a reactor serving while a blocking peer (a client library, a child
//! process) runs in a thread.

use std::cell::RefCell;
use std::rc::Rc;

use crate::failure::Failure;
use crate::reactor::Reactor;

/// Runs `reactor` while `peer` runs in a thread of its pool, stops it when `peer` returns,
/// and returns what `peer` returned: for a test whose client is blocking code (a socket
/// client, a Python script run with `Command::output`) talking to servers the test listens
/// with on `reactor`.
///
/// # Panics
/// If `peer` did not return within `timeout` seconds (the reactor is stopped then), or
/// panicked (its panic message is in this one).
///
/// ```
/// use std::io::{Read, Write};
/// use torsion::{factory, testing::run_with_peer, Protocol, Reactor, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let r = Reactor::new();
/// r.set_install_signal_handlers(false);
/// let port = r.listen_tcp_on(0, factory(|| Echo), "127.0.0.1").unwrap();
/// let number = port.get_host().port().unwrap();
/// let got = run_with_peer(&r, 30.0, move || {
///     let mut s = std::net::TcpStream::connect(("127.0.0.1", number)).unwrap();
///     s.write_all(b"ping").unwrap();
///     let mut buf = [0; 4];
///     s.read_exact(&mut buf).unwrap();
///     buf
/// });
/// assert_eq!(&got, b"ping");
/// ```
pub fn run_with_peer<T: Send + 'static>(
    reactor: &Reactor,
    timeout: f64,
    peer: impl FnOnce() -> T + Send + 'static,
) -> T {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    let r = reactor.clone();
    reactor.call_when_running(move || {
        drop(crate::threads::defer_to_thread(peer).add_both(move |res| {
            *o.borrow_mut() = Some(res);
            drop(r.stop());
            Ok::<(), Failure>(())
        }));
    });
    let guard = reactor.clone();
    let deadline = reactor.call_later(timeout, move || drop(guard.stop()));
    reactor.run().expect("the reactor ran");
    if deadline.active() {
        let _ = deadline.cancel();
    }
    let res = out.borrow_mut().take();
    match res {
        None => panic!("the peer did not finish within {timeout} s"),
        Some(Ok(v)) => v,
        Some(Err(f)) => panic!("the peer's thread failed: {}", f.error_message()),
    }
}
