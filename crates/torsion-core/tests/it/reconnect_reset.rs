//! When `ReconnectingClientFactory` goes back to its initial delay. Twisted's class never
//! does by itself: the program calls `resetDelay()`. Torsion resets in `build_protocol` by
//! default, and `set_reset_on_connect(false)` gives Twisted's behaviour, the protocol calling
//! `reset_delay` when it decides; docs/design.md ("ReconnectingClientFactory resets on
//! connect") says why. All on a test `Clock`, with the connection in memory.

use std::cell::Cell;
use std::f64::consts::E;
use std::rc::{Rc, Weak};

use torsion::protocol::FnFactory;
use torsion::protocols::policies::ReconnectingClientFactory;
use torsion::testing::{connected_pair, Clock};
use torsion::transport::Address;
use torsion::{factory, Factory, Protocol, Transport};

type Reconnecting = ReconnectingClientFactory<FnFactory<Box<dyn Fn() -> Bot>>>;

/// Resets its factory's delay when the server says `welcome` (an IRC bot's `signedOn`).
struct Bot {
    reconnecting: Weak<Reconnecting>,
}

impl Protocol for Bot {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        if data.starts_with(b"welcome") {
            if let Some(f) = self.reconnecting.upgrade() {
                f.reset_delay();
            }
        }
    }
}

/// Greets each client.
struct Server;

impl Protocol for Server {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"welcome\r\n");
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// A factory on `clock` without jitter, after two failed attempts (delay e²).
fn after_two_retries(clock: &Clock) -> Rc<Reconnecting> {
    let f: Rc<Reconnecting> = Rc::new_cyclic(|me: &Weak<Reconnecting>| {
        let me = me.clone();
        let make: Box<dyn Fn() -> Bot> = Box::new(move || Bot {
            reconnecting: me.clone(),
        });
        ReconnectingClientFactory::new(factory(make))
    });
    f.set_clock(clock.clone());
    f.set_jitter(0.0);
    let attempts = Rc::new(Cell::new(0));
    for _ in 0..2 {
        let a = attempts.clone();
        assert!(f.retry_with(move || a.set(a.get() + 1)));
        clock.advance(f.delay());
    }
    assert_eq!(attempts.get(), 2);
    assert!(close(f.delay(), E * E));
    f
}

#[test]
fn by_default_a_connection_resets_the_delay_unlike_twisted() {
    let clock = Clock::new();
    let f = after_two_retries(&clock);
    assert!(f.reset_on_connect());
    let bot = f.build_protocol(&Address::Named("server".into()));
    assert!(bot.is_some());
    // Twisted's buildProtocol leaves the delay alone; Torsion's resets it.
    assert_eq!((f.delay(), f.retries()), (1.0, 0));
}

#[test]
fn without_reset_on_connect_only_the_protocol_resets_as_in_twisted() {
    let clock = Clock::new();
    let f = after_two_retries(&clock);
    f.set_reset_on_connect(false);
    let bot = f
        .build_protocol(&Address::Named("server".into()))
        .expect("a bot");
    // Connected, but not signed on yet: the delay still grows from e².
    assert!(close(f.delay(), E * E));
    assert_eq!(f.retries(), 2);
    let mut pump = connected_pair(bot, Server);
    pump.flush();
    // The server's welcome made the bot call reset_delay.
    assert_eq!((f.delay(), f.retries()), (1.0, 0));
    // The next loss is retried after initial × factor again.
    assert!(f.retry_with(|| {}));
    let due = clock.pending_call_times();
    assert!(close(due[0] - clock.seconds(), E), "retry due at {due:?}");
}
