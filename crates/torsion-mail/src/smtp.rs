//! The ESMTP server as a protocol (Twisted's `twisted.mail.smtp.ESMTP` and
//! `SMTPFactory`): a thin [`Protocol`] over the I/O-free
//! [`ServerCore`], delivering through a
//! [`MessageDelivery`], logging in through a cred [`Portal`], and starting TLS on the running
//! connection for STARTTLS.
//!
//! AUTH PLAIN and LOGIN are offered only once TLS is on (RFC 4954 section 4), unless
//! [`auth_without_tls`](SmtpFactory::auth_without_tls) says otherwise; a failed login is
//! answered 535 after [`auth_failure_delay`](SmtpFactory::auth_failure_delay) (one second by
//! default), and the third closes the connection.
//!
//! A client that sends nothing for [`timeout`](SmtpFactory::timeout) (600 seconds, as
//! Twisted's `SMTP.timeout`) is answered 421 and dropped, a message it was sending
//! discarded. A client that pipelines commands and does not read the replies stops being
//! read while the connection's write buffer is over its high watermark: the replies it is
//! owed never pile up past that.
//!
//! ```no_run
//! use torsion::reactor;
//! use torsion_mail::maildir::MaildirDomain;
//! use torsion_mail::smtp::SmtpFactory;
//!
//! let domain = MaildirDomain::new("example.org", "/var/mail/example.org").unwrap();
//! domain.add_user("alice").unwrap();
//! reactor().listen_tcp(2525, SmtpFactory::new("mx.example.org", domain)).unwrap();
//! reactor().run().unwrap();
//! ```
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use torsion::defer::{Deferred, DeferredList};
use torsion::protocols::policies::{IdleTimeout, ReadingPause, WriteGate};
use torsion::reactor::{ReactorTime, SharedClock};
use torsion::tls::ServerContext;
use torsion::transport::Address as PeerAddress;
use torsion::{ConnectionEnd, Factory, Failure, Protocol, Transport};
use torsion_cred::error::TooManyLogins;
use torsion_cred::{AvatarId, Login, Logout, Portal, Realm, UsernamePassword};

use crate::command::{Address, ReversePath};
use crate::delivery::{Message, MessageDelivery, MessageFactory, Session};
use crate::reply::Reply;
use crate::server_core::{Event, Limits, ServerCore};

/// Reading pauses while this much input waits unread (a login is being checked, or the
/// client's replies are not being taken).
const MAX_PENDING_INPUT: usize = 64 << 10;

/// Twisted's `SMTP.timeout`: ten minutes without a byte from the client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What an SMTP login gets: who the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpUser {
    /// The user's name, as the checker knows them.
    pub name: String,
}

/// A realm for servers whose logged-in users need nothing but their name: answers every
/// user with an [`SmtpUser`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SmtpRealm;

impl Realm<SmtpUser> for SmtpRealm {
    fn request_avatar(&self, avatar_id: &AvatarId, _mind: ()) -> Deferred<(SmtpUser, Logout)> {
        torsion::defer::succeed((
            SmtpUser {
                name: avatar_id.to_string(),
            },
            Logout::none(),
        ))
    }
}

type LoginFn = dyn Fn(UsernamePassword) -> Deferred<Login<SmtpUser>>;

struct Shared {
    hostname: String,
    limits: Limits,
    delivery: Rc<dyn MessageDelivery>,
    tls: Option<ServerContext>,
    login: Option<Rc<LoginFn>>,
    auth_without_tls: bool,
    auth_failure_delay: Duration,
    timeout: Option<Duration>,
    clock: SharedClock,
}

/// Makes an [`Smtp`] protocol for each connection (Twisted's `SMTPFactory`); listen with
/// it as with any factory.
#[derive(Clone)]
pub struct SmtpFactory {
    shared: Rc<Shared>,
}

impl SmtpFactory {
    /// A server named `hostname` (in its greeting and `Received:` headers) delivering
    /// through `delivery`, with the default [`Limits`], no TLS and no AUTH.
    pub fn new(hostname: &str, delivery: impl MessageDelivery + 'static) -> SmtpFactory {
        SmtpFactory {
            shared: Rc::new(Shared {
                hostname: hostname.to_owned(),
                limits: Limits::default(),
                delivery: Rc::new(delivery),
                tls: None,
                login: None,
                auth_without_tls: false,
                auth_failure_delay: Duration::from_secs(1),
                timeout: Some(DEFAULT_TIMEOUT),
                clock: SharedClock::running(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> SmtpFactory {
        match Rc::get_mut(&mut self.shared) {
            Some(shared) => f(shared),
            None => {
                let s = &self.shared;
                let mut copy = Shared {
                    hostname: s.hostname.clone(),
                    limits: s.limits.clone(),
                    delivery: s.delivery.clone(),
                    tls: s.tls.clone(),
                    login: s.login.clone(),
                    auth_without_tls: s.auth_without_tls,
                    auth_failure_delay: s.auth_failure_delay,
                    timeout: s.timeout,
                    clock: s.clock.clone(),
                };
                f(&mut copy);
                self.shared = Rc::new(copy);
            }
        }
        self
    }

    /// Sets the limits.
    pub fn limits(self, limits: Limits) -> SmtpFactory {
        self.with(|s| s.limits = limits)
    }

    /// Offers STARTTLS with this certificate.
    pub fn tls(self, context: ServerContext) -> SmtpFactory {
        self.with(|s| s.tls = Some(context))
    }

    /// Offers AUTH PLAIN and LOGIN, checked by `portal` (its checker for
    /// [`UsernamePassword`]); the realm makes an [`SmtpUser`] ([`SmtpRealm`] will do).
    pub fn portal<R: Realm<SmtpUser> + 'static>(self, portal: Portal<R>) -> SmtpFactory {
        let login: Rc<LoginFn> = Rc::new(move |c| portal.login::<SmtpUser, _, ()>(c, ()));
        self.with(|s| s.login = Some(login))
    }

    /// Offers AUTH on connections without TLS too (for a server behind a TLS-terminating
    /// proxy, or tests). Off by default: passwords are not to cross the network in the
    /// clear.
    pub fn auth_without_tls(self, allow: bool) -> SmtpFactory {
        self.with(|s| s.auth_without_tls = allow)
    }

    /// How long a failed login waits before its 535 (one second by default), which slows
    /// down guessing on top of the three-failures limit per connection.
    pub fn auth_failure_delay(self, delay: Duration) -> SmtpFactory {
        self.with(|s| s.auth_failure_delay = delay)
    }

    /// How long a client may send nothing before it is answered 421 and dropped
    /// ([`DEFAULT_TIMEOUT`], ten minutes, by default; Twisted's `SMTP.timeout`). `None`
    /// waits for ever. The period restarts with every byte received, so a slow but steady
    /// DATA is not cut off; one stalled mid-DATA is, and its message is discarded.
    pub fn timeout(self, timeout: Option<Duration>) -> SmtpFactory {
        self.with(|s| s.timeout = timeout)
    }

    /// Times the idle timeout and the failed-login delay on `clock` (a test
    /// [`Clock`](torsion::testing::Clock)) instead of the running reactor.
    pub fn clock(self, clock: impl ReactorTime + 'static) -> SmtpFactory {
        let clock = SharedClock::new(clock);
        self.with(|s| s.clock = clock)
    }
}

impl Factory for SmtpFactory {
    type Protocol = Smtp;

    fn build_protocol(&self, _addr: &PeerAddress) -> Option<Smtp> {
        Some(Smtp::new(self.shared.clone()))
    }
}

/// One SMTP server connection (Twisted's `ESMTP`). Made by an [`SmtpFactory`].
pub struct Smtp {
    conn: Rc<RefCell<Conn>>,
    idle: IdleTimeout,
}

struct Conn {
    shared: Rc<Shared>,
    core: ServerCore,
    peer: String,
    /// What [`Conn::session`] gives the delivery.
    session: Session,
    from: ReversePath,
    recipients: Vec<(Address, MessageFactory)>,
    messages: Vec<Box<dyn Message>>,
    failed: bool,
    reading: ReadingPause,
    /// Set by the transport (through [`WriteGate`]) while its write buffer is over the
    /// high watermark; outside the `RefCell`, as the transport may say so during a write.
    gate: WriteGate,
    /// The connection, for the timer and the write gate (which hold only a `Weak` of
    /// this); dropped when it is lost, so nothing keeps the transport alive in a cycle.
    transport: Option<Transport>,
    login: Option<Login<SmtpUser>>,
}

impl Smtp {
    fn new(shared: Rc<Shared>) -> Smtp {
        let mut core = ServerCore::new(&shared.hostname, shared.limits.clone());
        core.set_starttls_available(shared.tls.is_some());
        core.set_auth(shared.login.is_some(), !shared.auth_without_tls);
        let session = Session {
            hostname: shared.hostname.clone(),
            ..Session::default()
        };
        Smtp {
            conn: Rc::new(RefCell::new(Conn {
                shared,
                core,
                peer: String::new(),
                session,
                from: None,
                recipients: Vec::new(),
                messages: Vec::new(),
                failed: false,
                reading: ReadingPause::new(),
                gate: WriteGate::new(),
                transport: None,
                login: None,
            })),
            idle: IdleTimeout::new(),
        }
    }
}

impl Conn {
    /// The session as the delivery sees it, brought up to date with the core: kept from
    /// one command to the next rather than made (five strings) for each.
    fn session(&mut self) -> &Session {
        let s = &mut self.session;
        let helo = self.core.helo().unwrap_or_default();
        if s.helo != helo {
            helo.clone_into(&mut s.helo);
        }
        if s.peer != self.peer {
            self.peer.clone_into(&mut s.peer);
        }
        if s.authenticated.as_deref() != self.core.authenticated() {
            s.authenticated = self.core.authenticated().map(str::to_owned);
        }
        s.extended = self.core.extended();
        s.tls = self.core.tls_active();
        s
    }

    /// Whether the client is not taking its replies: the transport said so, or holds more
    /// unsent than its high watermark now (a real transport says so only later).
    fn write_blocked(&self, t: &Transport) -> bool {
        self.gate.blocked(t)
    }

    fn flush(&mut self, t: &Transport) {
        let out = self.core.take_output();
        if !out.is_empty() {
            t.write(&out);
        }
    }

    fn reset(&mut self) {
        self.recipients.clear();
        self.messages.clear();
        self.failed = false;
    }
}

/// Runs the core until it needs more bytes or waits for a login.
fn pump(conn: &Rc<RefCell<Conn>>, t: &Transport) {
    loop {
        // A client not taking its replies gets no more until it does (the gate pumps again
        // then).
        if conn.borrow().write_blocked(t) {
            break;
        }
        let event = conn.borrow_mut().core.poll();
        let Some(event) = event else {
            // Stopped for want of input or of a decision, or with a batch of replies
            // to send: go on only if the client takes them.
            let mut c = conn.borrow_mut();
            let full = c.core.output_full();
            c.flush(t);
            if full && !c.write_blocked(t) {
                continue;
            }
            break;
        };
        let mut c = conn.borrow_mut();
        match event {
            Event::Mail { from, .. } => {
                let delivery = c.shared.delivery.clone();
                match delivery.validate_from(c.session(), &from) {
                    Ok(()) => {
                        c.reset();
                        c.from = from;
                        c.core.accept();
                    }
                    Err(reply) => c.core.reject(&reply),
                }
            }
            Event::Rcpt { to } => {
                let delivery = c.shared.delivery.clone();
                match delivery.validate_to(c.session(), &to) {
                    Ok(factory) => {
                        c.recipients.push((to, factory));
                        c.core.accept();
                    }
                    Err(reply) => c.core.reject(&reply),
                }
            }
            Event::Data => start_messages(&mut c),
            Event::Body(data) => {
                let c = &mut *c;
                write_body(&mut c.messages, &mut c.failed, &data);
            }
            Event::Oversize => c.messages.clear(),
            Event::EndOfData => {
                let failed = c.failed;
                let messages = std::mem::take(&mut c.messages);
                c.reset();
                drop(c);
                store_messages(conn, t, messages, failed);
                continue;
            }
            Event::Reset => c.reset(),
            Event::Auth {
                authzid,
                user,
                password,
            } => {
                drop(c);
                start_login(conn, t, authzid, user, password);
                continue;
            }
            Event::StartTls => {
                c.flush(t);
                c.reset();
                let context = c.shared.tls.clone();
                if let Some(Err(e)) = context.map(|ctx| t.start_tls(ctx.into())) {
                    tracing::error!("SMTP: STARTTLS failed: {e}");
                    t.abort_connection();
                }
            }
            Event::Close => {
                c.flush(t);
                c.reset();
                t.lose_connection();
            }
        }
    }
    let mut c = conn.borrow_mut();
    c.flush(t);
    let should_pause =
        !c.core.closed() && (c.write_blocked(t) || c.core.buffered() > MAX_PENDING_INPUT);
    c.reading.set(t, should_pause);
}

/// Writes part of the body to each recipient's message; one failing drops them all, and
/// the end of the body is then answered 451.
fn write_body(messages: &mut Vec<Box<dyn Message>>, failed: &mut bool, data: &[u8]) {
    let mut failed_now = false;
    for m in messages.iter_mut() {
        if let Err(e) = m.write(data) {
            tracing::error!("SMTP: storing a message failed: {e}");
            failed_now = true;
        }
    }
    if failed_now {
        messages.clear();
        *failed = true;
    }
}

fn start_messages(c: &mut Conn) {
    let delivery = c.shared.delivery.clone();
    c.session();
    let mut messages = Vec::new();
    for (to, factory) in std::mem::take(&mut c.recipients) {
        let header = delivery.received_header(&c.session, &c.from, std::slice::from_ref(&to));
        let opened = factory().and_then(|mut m| {
            if let Some(h) = header {
                m.write(&h)?;
            }
            Ok(m)
        });
        match opened {
            Ok(m) => messages.push(m),
            Err(e) => {
                tracing::error!("SMTP: cannot open a message for <{to}>: {e}");
                c.core
                    .reject(&Reply::new(451, "4.3.0 Cannot store the message now"));
                c.reset();
                return;
            }
        }
    }
    c.messages = messages;
    c.failed = false;
    c.core.start_data();
}

/// Stores the messages of a body that ended and answers once they are all stored (250), or
/// any failed (451); the connection reads nothing more meanwhile, as the core waits for the
/// answer.
fn store_messages(
    conn: &Rc<RefCell<Conn>>,
    t: &Transport,
    messages: Vec<Box<dyn Message>>,
    failed: bool,
) {
    let answer = |conn: &Rc<RefCell<Conn>>, t: &Transport, ok: bool| {
        conn.borrow_mut()
            .core
            .finish_data((!ok).then(|| Reply::new(451, "4.3.0 Cannot store the message now")));
        pump(conn, t);
    };
    if failed || messages.is_empty() {
        drop(messages);
        return answer(conn, t, !failed);
    }
    let (conn, t) = (conn.clone(), t.clone());
    let mut messages = messages;
    if messages.len() == 1 {
        // One recipient, the usual case: its own Deferred, without a list around it.
        let stored = messages.remove(0).eom_received();
        drop(stored.add_both(move |outcome: Result<(), Failure>| {
            if let Err(f) = &outcome {
                tracing::error!("SMTP: storing a message failed: {}", f.error_message());
            }
            answer(&conn, &t, outcome.is_ok());
            Ok(())
        }));
        return;
    }
    let stored: Vec<Deferred<()>> = messages.into_iter().map(|m| m.eom_received()).collect();
    let all = DeferredList::builder(stored).consume_errors(true).build();
    drop(all.add_callback(move |outcomes| {
        let mut ok = true;
        for f in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            tracing::error!("SMTP: storing a message failed: {}", f.error_message());
            ok = false;
        }
        answer(&conn, &t, ok);
    }));
}

fn start_login(
    conn: &Rc<RefCell<Conn>>,
    t: &Transport,
    authzid: String,
    user: String,
    password: Vec<u8>,
) {
    let (login, delay, clock) = {
        let c = conn.borrow();
        (
            c.shared.login.clone(),
            c.shared.auth_failure_delay,
            c.shared.clock.clone(),
        )
    };
    let Some(login) = login else {
        conn.borrow_mut().core.auth_unavailable();
        return;
    };
    // Logging in as someone else (a PLAIN authorization identity) is not supported.
    let attempt = if authzid.is_empty() || authzid == user {
        login(UsernamePassword::new(user, password))
    } else {
        torsion::defer::fail(torsion_cred::error::UnauthorizedLogin)
    };
    let conn = conn.clone();
    let t = t.clone();
    drop(
        attempt.add_both(move |outcome: Result<Login<SmtpUser>, Failure>| {
            match outcome {
                Ok(login) => {
                    let mut c = conn.borrow_mut();
                    let name = login.avatar().name.clone();
                    c.core.auth_succeeded(&name);
                    c.login = Some(login);
                    drop(c);
                    pump(&conn, &t);
                }
                Err(f) if f.check::<TooManyLogins>() => {
                    conn.borrow_mut().core.auth_unavailable();
                    pump(&conn, &t);
                }
                Err(_) => {
                    let refuse = move || {
                        let closing = conn.borrow_mut().core.auth_failed();
                        if closing.is_some() {
                            let mut c = conn.borrow_mut();
                            c.flush(&t);
                            t.lose_connection();
                        } else {
                            pump(&conn, &t);
                        }
                    };
                    if delay.is_zero() {
                        refuse();
                    } else {
                        drop(clock.call_later_boxed(delay.as_secs_f64(), Box::new(refuse)));
                    }
                }
            }
            Ok(())
        }),
    );
}

/// The idle timeout fired: 421, the message being received (if any) discarded, and the
/// connection closed — aborted if the client is not even taking its replies, as waiting to
/// send them would hold the connection for ever.
fn timed_out(conn: &Weak<RefCell<Conn>>) {
    let Some(conn) = conn.upgrade() else { return };
    let Ok(mut c) = conn.try_borrow_mut() else {
        return;
    };
    let Some(t) = c.transport.clone() else { return };
    let t = &t;
    if c.core.closed() {
        return;
    }
    let period = c.shared.timeout.unwrap_or_default().as_secs();
    if c.core.in_data() {
        tracing::warn!(
            "SMTP: {} stalled mid-DATA for {period} s; closing with 421 and discarding its partial message",
            c.peer
        );
    } else {
        tracing::info!("SMTP: {} idle for {period} s; closing with 421", c.peer);
    }
    c.core.timed_out();
    c.reset();
    c.login = None;
    let blocked = c.write_blocked(t);
    c.flush(t);
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

impl Protocol for Smtp {
    fn connection_made(&mut self, t: &Transport) {
        let mut c = self.conn.borrow_mut();
        c.peer = t.get_peer().to_string();
        c.transport = Some(t.clone());
        c.flush(t);
        let weak = Rc::downgrade(&self.conn);
        if let Err(e) = c.gate.register(t, move || resume(&weak)) {
            tracing::debug!("SMTP without write-buffer flow control: {e}");
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
        {
            // The body goes from the read straight into the messages where it can.
            let mut c = self.conn.borrow_mut();
            let Conn {
                core,
                messages,
                failed,
                ..
            } = &mut *c;
            core.receive_with_body(data, |run| write_body(messages, failed, run));
        }
        pump(&self.conn, t);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.idle.set_timeout(None);
        let mut c = self.conn.borrow_mut();
        c.transport = None;
        // Unfinished messages are discarded (dropped), the login logs out.
        c.reset();
        c.login = None;
    }
}
