//! The NNTP server as a protocol (Twisted's `twisted.news.nntp.NNTPServer` and
//! `twisted.news.news.UsenetServerFactory`): a thin [`Protocol`] over the
//! [`ServerCore`], serving a [`Store`], logging in through a cred [`Portal`].
//!
//! A client that sends nothing for [`timeout`](NntpFactory::timeout) (600 seconds by default)
//! is answered 400 and dropped, an article it was posting discarded.
//!
//! ```no_run
//! use torsion::reactor;
//! use torsion_news::server::NntpFactory;
//! use torsion_news::store::Store;
//!
//! let store = Store::open("/var/spool/news").unwrap();
//! store.create_group("local.general", "Local talk", 0).unwrap();
//! reactor().listen_tcp(1119, NntpFactory::new("news.example.org", store)).unwrap();
//! reactor().run().unwrap();
//! ```
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use torsion::defer::Deferred;
use torsion::protocols::policies::{IdleTimeout, ReadingPause, WriteGate};
use torsion::reactor::{ReactorTime, SharedClock};
use torsion::transport::Address as PeerAddress;
use torsion::{ConnectionEnd, Factory, Failure, Protocol, Transport};
use torsion_cred::{AvatarId, Login, Logout, Portal, Realm, UsernamePassword};

use crate::server_core::{Config, Event, Limits, Posting, ServerCore};
use crate::store::Store;

/// Reading pauses while this much input waits unread (a login is being checked, or the
/// client's answers are not being taken).
const MAX_PENDING_INPUT: usize = 64 << 10;

/// Ten minutes without a byte from the client (RFC 3977 3.1 asks for at least three).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What an NNTP login gets: who the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsUser {
    /// The user's name, as the checker knows them.
    pub name: String,
}

/// A realm answering every user with a [`NewsUser`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NewsRealm;

impl Realm<NewsUser> for NewsRealm {
    fn request_avatar(&self, avatar_id: &AvatarId, _mind: ()) -> Deferred<(NewsUser, Logout)> {
        torsion::defer::succeed((
            NewsUser {
                name: avatar_id.to_string(),
            },
            Logout::none(),
        ))
    }
}

type LoginFn = dyn Fn(UsernamePassword) -> Deferred<Login<NewsUser>>;

#[derive(Clone)]
struct Shared {
    config: Config,
    store: Store,
    login: Option<Rc<LoginFn>>,
    timeout: Option<Duration>,
    clock: SharedClock,
    now: Rc<dyn Fn() -> i64>,
}

/// Makes an [`Nntp`] protocol for each connection; listen with it as with any factory.
#[derive(Clone)]
pub struct NntpFactory {
    shared: Rc<Shared>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl NntpFactory {
    /// A server named `hostname` serving `store`: anyone may read and post, default
    /// [`Limits`], no NEWNEWS.
    pub fn new(hostname: &str, store: Store) -> NntpFactory {
        NntpFactory {
            shared: Rc::new(Shared {
                config: Config::new(hostname),
                store,
                login: None,
                timeout: Some(DEFAULT_TIMEOUT),
                clock: SharedClock::running(),
                now: Rc::new(unix_now),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> NntpFactory {
        f(Rc::make_mut(&mut self.shared));
        self
    }

    /// Sets the limits.
    pub fn limits(self, limits: Limits) -> NntpFactory {
        self.with(|s| s.config.limits = limits)
    }

    /// Sets who may post; [`Posting::AuthRequired`] needs a [`portal`](Self::portal).
    pub fn posting(self, posting: Posting) -> NntpFactory {
        self.with(|s| s.config.posting = posting)
    }

    /// Answers NEWNEWS (off by default).
    pub fn newnews(self, on: bool) -> NntpFactory {
        self.with(|s| s.config.newnews = on)
    }

    /// Offers AUTHINFO USER/PASS, checked by `portal` (its checker for
    /// [`UsernamePassword`]); posting then requires a login.
    pub fn portal<R: Realm<NewsUser> + 'static>(self, portal: Portal<R>) -> NntpFactory {
        let login: Rc<LoginFn> = Rc::new(move |c| portal.login::<NewsUser, _, ()>(c, ()));
        self.with(|s| {
            s.login = Some(login);
            s.config.auth = true;
            if s.config.posting == Posting::Open {
                s.config.posting = Posting::AuthRequired;
            }
        })
    }

    /// How long a client may send nothing before it is answered 400 and dropped
    /// ([`DEFAULT_TIMEOUT`]); `None` waits for ever.
    pub fn timeout(self, timeout: Option<Duration>) -> NntpFactory {
        self.with(|s| s.timeout = timeout)
    }

    /// Times the idle time-out on `clock` (a test [`Clock`](torsion::testing::Clock)), and
    /// takes the date (DATE, `Date:` headers) from its seconds.
    pub fn clock(self, clock: impl ReactorTime + 'static) -> NntpFactory {
        let clock: Rc<dyn ReactorTime> = Rc::new(clock);
        let c = clock.clone();
        self.with(|s| {
            s.clock = SharedClock::from_rc(clock);
            s.now = Rc::new(move || c.seconds() as i64);
        })
    }
}

impl Factory for NntpFactory {
    type Protocol = Nntp;

    fn build_protocol(&self, _addr: &PeerAddress) -> Option<Nntp> {
        let shared = self.shared.clone();
        let mut core = ServerCore::new(shared.config.clone(), shared.store.clone());
        core.set_now((shared.now)());
        Some(Nntp {
            conn: Rc::new(RefCell::new(Conn {
                shared,
                core,
                peer: String::new(),
                transport: None,
                login: None,
                reading: ReadingPause::new(),
                gate: WriteGate::new(),
            })),
            idle: IdleTimeout::new(),
        })
    }
}

/// One NNTP server connection. Made by an [`NntpFactory`].
pub struct Nntp {
    conn: Rc<RefCell<Conn>>,
    idle: IdleTimeout,
}

struct Conn {
    shared: Rc<Shared>,
    core: ServerCore,
    peer: String,
    transport: Option<Transport>,
    login: Option<Login<NewsUser>>,
    reading: ReadingPause,
    /// Set by the transport (through [`WriteGate`]) while its write buffer is over the high
    /// watermark; outside the `RefCell`, as the transport may say so during a write.
    gate: WriteGate,
}

impl Conn {
    /// Whether the client is not taking its answers: the transport said so, or holds more
    /// unsent than its high watermark now.
    fn write_blocked(&self, t: &Transport) -> bool {
        self.gate.blocked(t)
    }

    fn flush(&mut self, t: &Transport) {
        let out = self.core.take_output();
        if !out.is_empty() {
            t.write(&out);
        }
    }
}

/// Runs the core until it needs more bytes, waits for a login, or the client stops taking
/// its answers; then pauses or resumes reading to match.
fn pump(conn: &Rc<RefCell<Conn>>, t: &Transport) {
    loop {
        if conn.borrow().write_blocked(t) {
            break;
        }
        let event = {
            let mut c = conn.borrow_mut();
            let now = (c.shared.now)();
            c.core.set_now(now);
            c.core.poll()
        };
        let Some(event) = event else {
            // Out of input, or a batch of answers to send: go on only if the client takes
            // them.
            let mut c = conn.borrow_mut();
            let full = c.core.output_full();
            c.flush(t);
            if full && !c.write_blocked(t) {
                continue;
            }
            break;
        };
        match event {
            Event::Auth { user, password } => start_login(conn, t, user, password),
            Event::Close => {
                let mut c = conn.borrow_mut();
                c.flush(t);
                t.lose_connection();
                return;
            }
        }
    }
    let mut c = conn.borrow_mut();
    c.flush(t);
    let should_pause =
        !c.core.closed() && (c.write_blocked(t) || c.core.buffered() > MAX_PENDING_INPUT);
    c.reading.set(t, should_pause);
}

fn start_login(conn: &Rc<RefCell<Conn>>, t: &Transport, user: String, password: String) {
    let login = conn.borrow().shared.login.clone();
    let Some(login) = login else {
        // The core offers AUTHINFO only with a portal.
        let _ = conn.borrow_mut().core.auth_failed();
        return;
    };
    let attempt = login(UsernamePassword::new(user, password.into_bytes()));
    let conn = conn.clone();
    let t = t.clone();
    drop(
        attempt.add_both(move |outcome: Result<Login<NewsUser>, Failure>| {
            let closing = {
                let mut c = conn.borrow_mut();
                match outcome {
                    Ok(login) => {
                        let name = login.avatar().name.clone();
                        c.core.auth_succeeded(&name);
                        c.login = Some(login);
                        false
                    }
                    Err(_) => c.core.auth_failed(),
                }
            };
            if closing {
                conn.borrow_mut().flush(&t);
                t.lose_connection();
            } else {
                pump(&conn, &t);
            }
            Ok(())
        }),
    );
}

/// The idle time-out fired: 400, the article being posted (if any) dropped, and the
/// connection closed.
fn timed_out(conn: &Weak<RefCell<Conn>>) {
    let Some(conn) = conn.upgrade() else { return };
    let Ok(mut c) = conn.try_borrow_mut() else {
        return;
    };
    let Some(t) = c.transport.clone() else { return };
    if c.core.closed() {
        return;
    }
    let period = c.shared.timeout.unwrap_or_default().as_secs();
    if c.core.in_post() {
        tracing::warn!(
            "NNTP: {} stalled mid-POST for {period} s; closing with 400 and dropping its article",
            c.peer
        );
    } else {
        tracing::info!("NNTP: {} idle for {period} s; closing with 400", c.peer);
    }
    c.core.timed_out();
    c.login = None;
    let blocked = c.write_blocked(&t);
    c.flush(&t);
    // A client not taking its answers would hold the connection for ever: abort.
    if blocked {
        t.abort_connection();
    } else {
        t.lose_connection();
    }
}

/// The client has read what was waiting: go on answering (from the reactor, never from
/// inside `pump`; but be sure).
fn resume(conn: &Weak<RefCell<Conn>>) {
    let Some(conn) = conn.upgrade() else { return };
    let transport = conn.try_borrow().ok().and_then(|c| c.transport.clone());
    if let Some(t) = transport {
        pump(&conn, &t);
    }
}

impl Protocol for Nntp {
    fn connection_made(&mut self, t: &Transport) {
        let mut c = self.conn.borrow_mut();
        c.peer = t.get_peer().to_string();
        c.transport = Some(t.clone());
        c.flush(t);
        let weak = Rc::downgrade(&self.conn);
        if let Err(e) = c.gate.register(t, move || resume(&weak)) {
            tracing::debug!("NNTP without write-buffer flow control: {e}");
        }
        if let Some(period) = c.shared.timeout {
            self.idle.set_clock(c.shared.clock.clone());
            let weak = Rc::downgrade(&self.conn);
            self.idle.set_timeout_connection(move || timed_out(&weak));
            self.idle.set_timeout(Some(period.as_secs_f64()));
        }
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.idle.reset_timeout();
        self.conn.borrow_mut().core.receive(data);
        pump(&self.conn, t);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.idle.set_timeout(None);
        let mut c = self.conn.borrow_mut();
        c.transport = None;
        c.login = None;
    }
}
