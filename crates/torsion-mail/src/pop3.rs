//! The POP3 server as a protocol (Twisted's `twisted.mail.pop3.POP3` and its factory): a
//! thin [`Protocol`] over the I/O-free [`Pop3Core`], logging in through a cred [`Portal`]
//! whose realm hands out a user's [`Maildir`] ([`MaildirRealm`] does), serving it through a
//! [`Mailbox`], and starting TLS on the running connection for STLS.
//!
//! - USER and PASS are taken only once TLS is on, unless
//!   [`login_without_tls`](Pop3Factory::login_without_tls) says otherwise (RFC 2595 section
//!   2.3's advice). APOP is not offered: it needs the password in the clear on the server,
//!   and cred keeps only hashes.
//! - A failed login is answered `-ERR [AUTH]` after
//!   [`auth_failure_delay`](Pop3Factory::auth_failure_delay) (one second by default), and
//!   the third closes the connection.
//! - A maildrop is locked while a session has it: a second login for it gets `-ERR
//!   [IN-USE]` (RFC 1939 section 4), within this process.
//! - Deleted messages are removed at QUIT only; a connection lost or timed out deletes
//!   nothing.
//! - A message is sent in 64 KiB pieces read from its file while the connection's write
//!   buffer is under its high watermark, so RETR of a large message holds little memory
//!   and a client that does not read stops the reading of the file.
//! - A client that sends nothing for [`timeout`](Pop3Factory::timeout) (ten minutes, RFC
//!   1939's minimum) is dropped; one slowly reading a large message is not idle.
//!
//! ```no_run
//! use torsion::reactor;
//! use torsion_cred::{FilePasswordDb, Portal};
//! use torsion_mail::maildir::MaildirDomain;
//! use torsion_mail::pop3::{MaildirRealm, Pop3Factory};
//!
//! let domain = MaildirDomain::new("example.org", "/var/mail/example.org").unwrap();
//! let portal = Portal::new(MaildirRealm::new(vec![domain]));
//! portal.register_checker(FilePasswordDb::open("/etc/torsion/passwords").unwrap());
//! let factory = Pop3Factory::new("pop.example.org", portal).login_without_tls(true);
//! reactor().listen_tcp(8110, factory).unwrap();
//! reactor().run().unwrap();
//! ```
use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Duration;

use torsion::defer::Deferred;
use torsion::protocols::policies::{IdleTimeout, ReadingPause, WriteGate};
use torsion::reactor::{ReactorTime, SharedClock};
use torsion::tls::ServerContext;
use torsion::transport::Address as PeerAddress;
use torsion::{ConnectionEnd, Factory, Failure, Protocol, Transport};
use torsion_cred::error::{TooManyLogins, UnauthorizedLogin};
use torsion_cred::{AvatarId, Login, Logout, Portal, Realm, UsernamePassword};

use crate::mailbox::Mailbox;
use crate::maildir::{Maildir, MaildirDomain};
use crate::pop3_core::{DotStuffer, Pop3Core, Pop3Event, Pop3Limits};

/// Ten minutes without a byte from the client (RFC 1939 section 3's minimum).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Reading pauses while this much input waits unread.
const MAX_PENDING_INPUT: usize = 64 << 10;

/// A message is read and sent in pieces of this size.
const CHUNK: usize = 64 << 10;

/// A realm answering a user with their Maildir: the first of its domains where they have
/// one.
pub struct MaildirRealm {
    domains: Vec<MaildirDomain>,
}

impl MaildirRealm {
    /// Over these domains, asked in order.
    pub fn new(domains: Vec<MaildirDomain>) -> MaildirRealm {
        MaildirRealm { domains }
    }
}

impl Realm<Maildir> for MaildirRealm {
    fn request_avatar(&self, avatar_id: &AvatarId, _mind: ()) -> Deferred<(Maildir, Logout)> {
        let found = avatar_id
            .user()
            .and_then(|u| self.domains.iter().find_map(|d| d.maildir(u)));
        match found {
            Some(maildir) => torsion::defer::succeed((maildir, Logout::none())),
            None => torsion::defer::fail(UnauthorizedLogin),
        }
    }
}

type LoginFn = dyn Fn(UsernamePassword) -> Deferred<Login<Maildir>>;

#[derive(Clone)]
struct Shared {
    hostname: String,
    limits: Pop3Limits,
    login: Rc<LoginFn>,
    tls: Option<ServerContext>,
    login_without_tls: bool,
    auth_failure_delay: Duration,
    timeout: Option<Duration>,
    clock: SharedClock,
    /// The maildrops a session holds.
    locks: Rc<RefCell<HashSet<PathBuf>>>,
}

/// Makes a [`Pop3`] protocol for each connection; listen with it as with any factory.
#[derive(Clone)]
pub struct Pop3Factory {
    shared: Rc<Shared>,
}

impl Pop3Factory {
    /// A server named `hostname` (in its greeting) whose users log in through `portal`
    /// (its checker for [`UsernamePassword`]); its realm gives their [`Maildir`].
    pub fn new<R: Realm<Maildir> + 'static>(hostname: &str, portal: Portal<R>) -> Pop3Factory {
        let login: Rc<LoginFn> = Rc::new(move |c| portal.login::<Maildir, _, ()>(c, ()));
        Pop3Factory {
            shared: Rc::new(Shared {
                hostname: hostname.to_owned(),
                limits: Pop3Limits::default(),
                login,
                tls: None,
                login_without_tls: false,
                auth_failure_delay: Duration::from_secs(1),
                timeout: Some(DEFAULT_TIMEOUT),
                clock: SharedClock::running(),
                locks: Rc::new(RefCell::new(HashSet::new())),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> Pop3Factory {
        f(Rc::make_mut(&mut self.shared));
        self
    }

    /// Sets the limits.
    pub fn limits(self, limits: Pop3Limits) -> Pop3Factory {
        self.with(|s| s.limits = limits)
    }

    /// Offers STLS with this certificate.
    pub fn tls(self, context: ServerContext) -> Pop3Factory {
        self.with(|s| s.tls = Some(context))
    }

    /// Takes USER and PASS on connections without TLS (off by default: passwords are not to
    /// cross the network in the clear).
    pub fn login_without_tls(self, allow: bool) -> Pop3Factory {
        self.with(|s| s.login_without_tls = allow)
    }

    /// How long a failed login waits before its `-ERR` (one second by default).
    pub fn auth_failure_delay(self, delay: Duration) -> Pop3Factory {
        self.with(|s| s.auth_failure_delay = delay)
    }

    /// How long a client may send nothing before it is dropped ([`DEFAULT_TIMEOUT`]);
    /// `None` waits for ever.
    pub fn timeout(self, timeout: Option<Duration>) -> Pop3Factory {
        self.with(|s| s.timeout = timeout)
    }

    /// Times the idle timeout and the failed-login delay on `clock` (a test
    /// [`Clock`](torsion::testing::Clock)) instead of the running reactor.
    pub fn clock(self, clock: impl ReactorTime + 'static) -> Pop3Factory {
        let clock = SharedClock::new(clock);
        self.with(|s| s.clock = clock)
    }
}

impl Factory for Pop3Factory {
    type Protocol = Pop3;

    fn build_protocol(&self, _addr: &PeerAddress) -> Option<Pop3> {
        Some(Pop3::new(self.shared.clone()))
    }
}

/// One POP3 server connection. Made by a [`Pop3Factory`].
pub struct Pop3 {
    conn: Rc<RefCell<Conn>>,
    idle: Rc<IdleTimeout>,
}

/// A message being sent.
struct Sending {
    file: File,
    stuffer: DotStuffer,
}

struct Conn {
    shared: Rc<Shared>,
    core: Pop3Core,
    peer: String,
    mailbox: Mailbox,
    /// The maildrop this session holds locked.
    locked: Option<PathBuf>,
    sending: Option<Sending>,
    reading: ReadingPause,
    gate: WriteGate,
    transport: Option<Transport>,
    login: Option<Login<Maildir>>,
    /// The idle timer, restarted by every command and every piece of a message sent (a
    /// slow reader of a large message is not idle).
    idle: Rc<IdleTimeout>,
}

impl Pop3 {
    fn new(shared: Rc<Shared>) -> Pop3 {
        let mut core = Pop3Core::new(&shared.hostname, shared.limits.clone());
        core.set_tls_available(shared.tls.is_some());
        core.set_login_allowed_without_tls(shared.login_without_tls);
        let idle = Rc::new(IdleTimeout::new());
        Pop3 {
            conn: Rc::new(RefCell::new(Conn {
                shared,
                core,
                peer: String::new(),
                mailbox: Mailbox::default(),
                locked: None,
                sending: None,
                reading: ReadingPause::new(),
                gate: WriteGate::new(),
                transport: None,
                login: None,
                idle: idle.clone(),
            })),
            idle,
        }
    }
}

impl Conn {
    fn write_blocked(&self, t: &Transport) -> bool {
        self.gate.blocked(t)
    }

    fn flush(&mut self, t: &Transport) {
        let out = self.core.take_output();
        if !out.is_empty() {
            t.write(&out);
        }
    }

    fn unlock(&mut self) {
        if let Some(path) = self.locked.take() {
            self.shared.locks.borrow_mut().remove(&path);
        }
        self.login = None;
    }

    /// Sends pieces of the message being sent while the client takes them; whether it
    /// is all sent.
    fn send_some(&mut self, t: &Transport) -> bool {
        let mut buf = vec![0u8; CHUNK];
        while let Some(s) = self.sending.as_mut() {
            if self.gate.blocked(t) {
                return false;
            }
            let mut out = Vec::with_capacity(CHUNK + CHUNK / 8);
            let n = if s.stuffer.done() {
                0
            } else {
                match s.file.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // The +OK is out: all that can be done is to end the connection.
                        tracing::error!("POP3: reading a message failed mid-RETR: {e}");
                        self.sending = None;
                        t.abort_connection();
                        return false;
                    }
                }
            };
            if n == 0 {
                s.stuffer.finish(&mut out);
                t.write(&out);
                self.sending = None;
                self.core.retrieve_done();
                return true;
            }
            s.stuffer.feed(&buf[..n], &mut out);
            t.write(&out);
            self.idle.reset_timeout();
        }
        true
    }
}

/// Runs the core until it needs more bytes, waits for a login, or the client stops
/// taking what it is sent.
fn pump(conn: &Rc<RefCell<Conn>>, t: &Transport) {
    loop {
        if conn.borrow().write_blocked(t) {
            break;
        }
        if conn.borrow().sending.is_some() && !conn.borrow_mut().send_some(t) {
            break;
        }
        let event = conn.borrow_mut().core.poll();
        let Some(event) = event else {
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
            Pop3Event::Login { user, password } => {
                drop(c);
                start_login(conn, t, user, password);
            }
            Pop3Event::StartTls => {
                c.flush(t);
                let context = c.shared.tls.clone();
                match context.map(|ctx| t.start_tls(ctx.into())) {
                    Some(Ok(())) => c.core.tls_started(),
                    Some(Err(e)) => {
                        tracing::error!("POP3: STLS failed: {e}");
                        t.abort_connection();
                    }
                    None => t.abort_connection(),
                }
            }
            Pop3Event::Retrieve { index, lines } => {
                let opened = c.mailbox.messages().get(index).map(|m| m.open());
                match opened {
                    Some(Ok(file)) => {
                        c.core.retrieve_ok();
                        c.flush(t);
                        c.sending = Some(Sending {
                            file,
                            stuffer: DotStuffer::new(lines),
                        });
                    }
                    _ => c.core.retrieve_failed(),
                }
            }
            Pop3Event::Update { deleted } => {
                let mut ok = true;
                for i in deleted {
                    if let Some(Err(e)) = c.mailbox.messages().get(i).map(|m| m.delete()) {
                        tracing::error!("POP3: deleting a message failed: {e}");
                        ok = false;
                    }
                }
                c.core.update_done(ok);
            }
            Pop3Event::Close => {
                c.flush(t);
                c.unlock();
                t.lose_connection();
            }
        }
    }
    let mut c = conn.borrow_mut();
    c.flush(t);
    let should_pause = !c.core.closed()
        && (c.write_blocked(t) || c.sending.is_some() || c.core.buffered() > MAX_PENDING_INPUT);
    c.reading.set(t, should_pause);
}

fn start_login(conn: &Rc<RefCell<Conn>>, t: &Transport, user: String, password: Vec<u8>) {
    let (login, delay, clock) = {
        let c = conn.borrow();
        (
            c.shared.login.clone(),
            c.shared.auth_failure_delay,
            c.shared.clock.clone(),
        )
    };
    let conn = conn.clone();
    let t = t.clone();
    drop(login(UsernamePassword::new(user, password)).add_both(
        move |outcome: Result<Login<Maildir>, Failure>| {
            match outcome {
                Ok(login) => {
                    logged_in(&conn, login);
                    pump(&conn, &t);
                }
                Err(f) if f.check::<TooManyLogins>() => {
                    conn.borrow_mut().core.login_unavailable();
                    pump(&conn, &t);
                }
                Err(_) => {
                    let refuse = move || {
                        let closing = conn.borrow_mut().core.login_failed();
                        pump(&conn, &t);
                        if closing {
                            t.lose_connection();
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
        },
    ));
}

/// A login worked: lock the maildrop, list it, and enter TRANSACTION.
fn logged_in(conn: &Rc<RefCell<Conn>>, login: Login<Maildir>) {
    let mut c = conn.borrow_mut();
    if c.transport.is_none() {
        return; // the client left while its login was checked
    }
    let path = login.avatar().path().to_path_buf();
    if !c.shared.locks.borrow_mut().insert(path.clone()) {
        c.core.mailbox_locked();
        return;
    }
    match Mailbox::open(login.avatar()) {
        Ok(mailbox) => {
            let list = mailbox
                .messages()
                .iter()
                .map(|m| (m.uid().to_owned(), m.size()))
                .collect();
            c.mailbox = mailbox;
            c.locked = Some(path);
            c.login = Some(login);
            c.core.login_succeeded(list);
        }
        Err(e) => {
            tracing::error!("POP3: cannot read the maildrop {}: {e}", path.display());
            c.shared.locks.borrow_mut().remove(&path);
            c.core.login_unavailable();
        }
    }
}

/// The idle timeout fired: `-ERR`, no deletions, the connection closed (aborted if the
/// client is not taking what it is sent).
fn timed_out(conn: &Weak<RefCell<Conn>>) {
    let Some(conn) = conn.upgrade() else { return };
    let Ok(mut c) = conn.try_borrow_mut() else {
        return;
    };
    let Some(t) = c.transport.clone() else { return };
    if c.core.closed() {
        return;
    }
    tracing::info!("POP3: {} idle too long; closing without deleting", c.peer);
    let blocked = c.write_blocked(&t) || c.sending.is_some();
    c.sending = None;
    c.core.timed_out();
    c.unlock();
    if blocked {
        t.abort_connection();
    } else {
        c.flush(&t);
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

impl Protocol for Pop3 {
    fn connection_made(&mut self, t: &Transport) {
        let mut c = self.conn.borrow_mut();
        c.peer = t.get_peer().to_string();
        c.transport = Some(t.clone());
        c.flush(t);
        let weak = Rc::downgrade(&self.conn);
        if let Err(e) = c.gate.register(t, move || resume(&weak)) {
            tracing::debug!("POP3 without write-buffer flow control: {e}");
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
        c.sending = None;
        // No UPDATE: nothing is deleted.
        c.unlock();
    }
}
