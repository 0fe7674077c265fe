//! The IMAP4rev1 server (Twisted's `twisted.mail.imap4.IMAP4Server`) over the same Maildirs
//! the SMTP server delivers into.
//!
//! Each user's Maildir is their `INBOX`; other mailboxes are Maildir++ folders
//! ([`imap_store`](crate::imap_store)). Logins go through a cred [`Portal`] (LOGIN and
//! AUTHENTICATE PLAIN, with SASL-IR), refused before STARTTLS unless
//! [`login_without_tls`](ImapFactory::login_without_tls) says otherwise (`LOGINDISABLED` is
//! advertised meanwhile). A failed login is answered after
//! [`auth_failure_delay`](ImapFactory::auth_failure_delay) and the third closes the
//! connection. Commands come through the I/O-free [`Framer`] and [`parse_command`], so a
//! line or a literal over the [`Limits`] is refused before it is buffered.
//!
//! A client idle for [`timeout`](ImapFactory::timeout) (30 minutes, RFC 3501's autologout)
//! is sent `* BYE` and dropped. During IDLE the selected folder is scanned every
//! [`idle_poll`](ImapFactory::idle_poll) (one second), so mail delivered by the SMTP server
//! shows at once as `* n EXISTS`.
//!
//! ```
//! use torsion::testing::StringTransport;
//! use torsion::{Factory, Protocol};
//! use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
//! use torsion_mail::imap::ImapFactory;
//! use torsion_mail::{MaildirDomain, SmtpRealm};
//!
//! let root = std::env::temp_dir().join(format!("imap-doc-{}", std::process::id()));
//! let domain = MaildirDomain::new("example.org", &root).unwrap();
//! domain.add_user("alice").unwrap();
//! let portal = Portal::new(SmtpRealm);
//! let checker = InMemoryUsernamePasswordDatabaseDontUse::new();
//! checker.add_user("alice", "secret");
//! portal.register_checker(checker);
//! let factory = ImapFactory::new("imap.example.org", domain)
//!     .portal(portal)
//!     .login_without_tls(true);
//!
//! let st = StringTransport::new();
//! let t = st.transport();
//! let mut imap = factory.build_protocol(&t.get_peer()).unwrap();
//! imap.connection_made(&t);
//! imap.data_received(&t, b"a LOGIN alice secret\r\nb SELECT INBOX\r\nc LOGOUT\r\n");
//! let out = String::from_utf8(st.value()).unwrap();
//! assert!(out.starts_with("* OK [CAPABILITY IMAP4rev1"), "{out}");
//! assert!(out.contains("a OK [CAPABILITY"), "{out}");
//! assert!(out.contains("* 0 EXISTS\r\n"), "{out}");
//! assert!(out.contains("b OK [READ-WRITE] SELECT completed\r\n"), "{out}");
//! assert!(out.ends_with("* BYE Logging out\r\nc OK LOGOUT completed\r\n"), "{out}");
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use torsion::defer::Deferred;
use torsion::protocols::policies::{IdleTimeout, ReadingPause, WriteGate};
use torsion::reactor::{DelayedCall, ReactorTime, SharedClock};
use torsion::tls::ServerContext;
use torsion::transport::Address as PeerAddress;
use torsion::{ConnectionEnd, Factory, Failure, Protocol, Transport};
use torsion_cred::error::TooManyLogins;
use torsion_cred::{Login, Portal, Realm, UsernamePassword};

use crate::imap_message::{self, body_structure, envelope, header_block};
use crate::imap_parse::{
    internal_date, literal, parse_command, quoted_or_literal, Command, CommandKind, Date, FetchAtt,
    Frame, Framer, Limits, SearchKey, SectionText, SeqSet, StoreMode,
};
use crate::imap_store::{flag_letter, flag_names, Folder, Store};
use crate::maildir::MaildirDomain;
use crate::smtp::SmtpUser;

/// RFC 3501 section 5.4: at least 30 minutes before an idle client is logged out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Refused or malformed commands before the connection is closed.
const MAX_ERRORS: u32 = 20;

type LoginFn = dyn Fn(UsernamePassword) -> Deferred<Login<SmtpUser>>;
type MailboxFn = dyn Fn(&str) -> Option<PathBuf>;

#[derive(Clone)]
struct Shared {
    hostname: String,
    limits: Limits,
    mailboxes: Rc<MailboxFn>,
    tls: Option<ServerContext>,
    login: Option<Rc<LoginFn>>,
    login_without_tls: bool,
    auth_failure_delay: Duration,
    max_auth_failures: u32,
    timeout: Option<Duration>,
    idle_poll: Duration,
    clock: SharedClock,
}

/// Makes an [`Imap`] protocol per connection (Twisted's `IMAP4Server` factory).
#[derive(Clone)]
pub struct ImapFactory {
    shared: Rc<Shared>,
}

impl ImapFactory {
    /// A server named `hostname` whose users' mailboxes are their Maildirs in `domain` (a
    /// login `alice` or `alice@domain`).
    pub fn new(hostname: &str, domain: MaildirDomain) -> ImapFactory {
        ImapFactory::with_mailboxes(hostname, move |user: &str| {
            let local = match user.rsplit_once('@') {
                Some((l, d)) if d.eq_ignore_ascii_case(domain.domain()) => l,
                Some(_) => return None,
                None => user,
            };
            domain.maildir(local).map(|m| m.path().to_owned())
        })
    }

    /// A server finding a logged-in user's Maildir with `mailboxes` (`None`: the user has
    /// none, and the login is refused).
    pub fn with_mailboxes(
        hostname: &str,
        mailboxes: impl Fn(&str) -> Option<PathBuf> + 'static,
    ) -> ImapFactory {
        ImapFactory {
            shared: Rc::new(Shared {
                hostname: hostname.to_owned(),
                limits: Limits::default(),
                mailboxes: Rc::new(mailboxes),
                tls: None,
                login: None,
                login_without_tls: false,
                auth_failure_delay: Duration::from_secs(1),
                max_auth_failures: 3,
                timeout: Some(DEFAULT_TIMEOUT),
                idle_poll: Duration::from_secs(1),
                clock: SharedClock::running(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> ImapFactory {
        f(Rc::make_mut(&mut self.shared));
        self
    }

    /// Sets the line and literal limits.
    pub fn limits(self, limits: Limits) -> ImapFactory {
        self.with(|s| s.limits = limits)
    }

    /// Offers STARTTLS with this certificate.
    pub fn tls(self, context: ServerContext) -> ImapFactory {
        self.with(|s| s.tls = Some(context))
    }

    /// Logs users in through `portal` (its checker for [`UsernamePassword`]).
    pub fn portal<R: Realm<SmtpUser> + 'static>(self, portal: Portal<R>) -> ImapFactory {
        let login: Rc<LoginFn> = Rc::new(move |c| portal.login::<SmtpUser, _, ()>(c, ()));
        self.with(|s| s.login = Some(login))
    }

    /// Takes LOGIN and AUTHENTICATE on connections without TLS too (off by default).
    pub fn login_without_tls(self, allow: bool) -> ImapFactory {
        self.with(|s| s.login_without_tls = allow)
    }

    /// How long a failed login waits before its `NO` (one second by default).
    pub fn auth_failure_delay(self, delay: Duration) -> ImapFactory {
        self.with(|s| s.auth_failure_delay = delay)
    }

    /// How long a client may send nothing before `* BYE` ([`DEFAULT_TIMEOUT`]); `None`
    /// waits for ever.
    pub fn timeout(self, timeout: Option<Duration>) -> ImapFactory {
        self.with(|s| s.timeout = timeout)
    }

    /// How often IDLE looks for new mail (one second by default).
    pub fn idle_poll(self, every: Duration) -> ImapFactory {
        self.with(|s| s.idle_poll = every)
    }

    /// Times the idle timeout, IDLE's polls and the failed-login delay on `clock` (a test
    /// [`Clock`](torsion::testing::Clock)) instead of the running reactor.
    pub fn clock(self, clock: impl ReactorTime + 'static) -> ImapFactory {
        let clock = SharedClock::new(clock);
        self.with(|s| s.clock = clock)
    }
}

impl Factory for ImapFactory {
    type Protocol = Imap;

    fn build_protocol(&self, _addr: &PeerAddress) -> Option<Imap> {
        Some(Imap {
            conn: Rc::new(RefCell::new(Conn {
                framer: Framer::new(self.shared.limits.clone()),
                shared: self.shared.clone(),
                out: Vec::new(),
                transport: None,
                tls_active: false,
                user: None,
                store: None,
                login: None,
                selected: None,
                waiting: false,
                closed: false,
                auth_failures: 0,
                errors: 0,
                authenticating: None,
                idling: None,
                idle_timer: None,
                gate: WriteGate::new(),
                reading: ReadingPause::new(),
            })),
            idle: IdleTimeout::new(),
        })
    }
}

/// One IMAP server connection. Made by an [`ImapFactory`].
pub struct Imap {
    conn: Rc<RefCell<Conn>>,
    idle: IdleTimeout,
}

impl Imap {
    /// Bytes received and held, not yet part of a command run: at most a line's worth
    /// ([`Limits::max_line`]) plus the literals of the command being received.
    pub fn buffered(&self) -> usize {
        self.conn.borrow().framer.buffered()
    }
}

struct Selected {
    name: String,
    read_only: bool,
    folder: Folder,
    recent: HashSet<u32>,
}

struct Conn {
    shared: Rc<Shared>,
    framer: Framer,
    out: Vec<u8>,
    transport: Option<Transport>,
    tls_active: bool,
    user: Option<String>,
    store: Option<Store>,
    login: Option<Login<SmtpUser>>,
    selected: Option<Selected>,
    /// A login is being checked: read no further command.
    waiting: bool,
    closed: bool,
    auth_failures: u32,
    errors: u32,
    /// AUTHENTICATE PLAIN's tag, waiting for the client's response line.
    authenticating: Option<String>,
    /// IDLE's tag, waiting for DONE.
    idling: Option<String>,
    idle_timer: Option<DelayedCall>,
    /// Set by the transport (through [`WriteGate`]) while its write buffer is over the
    /// high watermark: no further command is run, and reading pauses, until it drains.
    gate: WriteGate,
    reading: ReadingPause,
}

impl Conn {
    /// Whether the client is not taking what it is sent.
    fn write_blocked(&self, t: &Transport) -> bool {
        self.gate.blocked(t)
    }

    fn line(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn flush(&mut self, t: &Transport) {
        if !self.out.is_empty() {
            t.write(&std::mem::take(&mut self.out));
        }
    }

    fn capabilities(&self) -> String {
        let mut c = String::from("IMAP4rev1 LITERAL+ IDLE SASL-IR");
        c.push_str(&format!(" APPENDLIMIT={}", self.shared.limits.max_literal));
        if self.user.is_none() {
            if self.shared.tls.is_some() && !self.tls_active {
                c.push_str(" STARTTLS");
            }
            if self.login_allowed() {
                c.push_str(" AUTH=PLAIN");
            } else {
                c.push_str(" LOGINDISABLED");
            }
        }
        c
    }

    fn login_allowed(&self) -> bool {
        self.shared.login.is_some() && (self.tls_active || self.shared.login_without_tls)
    }

    fn bad(&mut self, tag: Option<&str>, why: &str) {
        self.errors += 1;
        self.line(&format!("{} BAD {why}", tag.unwrap_or("*")));
        if self.errors >= MAX_ERRORS {
            self.line("* BYE Too many bad commands");
            self.closed = true;
        }
    }

    fn stop_idle_timer(&mut self) {
        if let Some(t) = self.idle_timer.take() {
            let _ = t.cancel();
        }
    }

    /// Rescans the selected folder and reports what changed: new messages (EXISTS,
    /// RECENT), flags changed elsewhere (FETCH) and, if `expunges` (not during FETCH,
    /// STORE or SEARCH, RFC 3501 section 7.4.1), removed ones.
    fn sync(&mut self, expunges: bool) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        // Nothing changed on disk: nothing to tell (a NOOP or an IDLE poll costs two
        // stat calls, not a scan).
        if sel.folder.unchanged() {
            return;
        }
        let Ok(new) = Folder::open(sel.folder.path().to_owned()) else {
            return;
        };
        let old = sel.folder.messages();
        let keep: HashSet<u32> = new.messages().iter().map(|m| m.uid).collect();
        let gone: Vec<usize> = (0..old.len())
            .filter(|&i| !keep.contains(&old[i].uid))
            .collect();
        if !gone.is_empty() && !expunges {
            return;
        }
        let mut lines = Vec::new();
        for &i in gone.iter().rev() {
            lines.push(format!("* {} EXPUNGE", i + 1));
        }
        let before: HashSet<u32> = old.iter().map(|m| m.uid).collect();
        let mut any_new = false;
        for (i, m) in new.messages().iter().enumerate() {
            if m.recent {
                sel.recent.insert(m.uid);
            }
            if !before.contains(&m.uid) {
                any_new = true;
            } else if let Some(o) = old.iter().find(|o| o.uid == m.uid) {
                if o.flags != m.flags {
                    lines.push(format!(
                        "* {} FETCH (FLAGS ({}))",
                        i + 1,
                        flags_text(&m.flags, sel.recent.contains(&m.uid))
                    ));
                }
            }
        }
        if any_new || !gone.is_empty() {
            lines.push(format!("* {} EXISTS", new.messages().len()));
        }
        if any_new {
            let recent = new
                .messages()
                .iter()
                .filter(|m| sel.recent.contains(&m.uid))
                .count();
            lines.push(format!("* {recent} RECENT"));
        }
        sel.folder = new;
        for l in lines {
            self.line(&l);
        }
    }
}

fn flags_text(letters: &str, recent: bool) -> String {
    let mut v = flag_names(letters);
    if recent {
        v.push("\\Recent");
    }
    v.join(" ")
}

const ALL_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// Runs commands until input runs out or a login is being checked.
fn pump(conn: &Rc<RefCell<Conn>>, t: &Transport) {
    loop {
        let frame = {
            let mut c = conn.borrow_mut();
            // A client that does not read its responses gets no more until it does (the
            // gate pumps again then): what is held for it stays bounded.
            if c.waiting || c.closed || c.write_blocked(t) {
                break;
            }
            c.framer.next()
        };
        let Some(frame) = frame else { break };
        let mut c = conn.borrow_mut();
        match frame {
            Frame::Continuation => c.line("+ Ready for literal data"),
            Frame::TooLong { tag } => {
                let tag = tag.filter(|_| c.idling.is_none() && c.authenticating.is_none());
                c.bad(tag.as_deref(), "Line too long");
            }
            Frame::LiteralTooLarge {
                tag,
                non_synchronising,
            } => {
                let tag = tag.unwrap_or_else(|| "*".into());
                if non_synchronising {
                    c.line(&format!("{tag} BAD [TOOBIG] Literal too large"));
                    c.line("* BYE The literal being sent is too large");
                    c.closed = true;
                } else {
                    c.errors += 1;
                    c.line(&format!("{tag} NO [TOOBIG] Literal too large"));
                }
            }
            Frame::Command(bytes) => {
                drop(c);
                command(conn, t, &bytes);
            }
        }
    }
    let mut c = conn.borrow_mut();
    c.flush(t);
    if c.closed {
        c.stop_idle_timer();
        t.lose_connection();
        return;
    }
    let should_pause = c.write_blocked(t);
    c.reading.set(t, should_pause);
}

fn command(conn: &Rc<RefCell<Conn>>, t: &Transport, bytes: &[u8]) {
    let mut c = conn.borrow_mut();
    if let Some(tag) = c.idling.clone() {
        if bytes.eq_ignore_ascii_case(b"DONE") {
            c.idling = None;
            c.stop_idle_timer();
            c.line(&format!("{tag} OK IDLE terminated"));
        } else {
            c.idling = None;
            c.stop_idle_timer();
            c.bad(Some(&tag), "Expected DONE");
        }
        return;
    }
    if let Some(tag) = c.authenticating.take() {
        if bytes == b"*" {
            c.bad(Some(&tag), "AUTHENTICATE cancelled");
            return;
        }
        drop(c);
        plain(conn, t, &tag, bytes);
        return;
    }
    let cmd = match parse_command(bytes) {
        Ok(cmd) => cmd,
        Err(e) => {
            c.bad(e.tag.as_deref(), &e.message);
            return;
        }
    };
    drop(c);
    run(conn, t, cmd);
}

fn plain(conn: &Rc<RefCell<Conn>>, t: &Transport, tag: &str, b64: &[u8]) {
    let decoded = B64.decode(b64.trim_ascii()).ok();
    let parts: Option<Vec<Vec<u8>>> =
        decoded.map(|d| d.split(|&b| b == 0).map(<[u8]>::to_vec).collect());
    match parts.as_deref() {
        Some([authz, user, pass]) if authz.is_empty() || authz == user => {
            let user = String::from_utf8_lossy(user).into_owned();
            start_login(conn, t, tag.to_owned(), user, pass.clone());
        }
        _ => conn
            .borrow_mut()
            .bad(Some(tag), "Malformed AUTHENTICATE PLAIN response"),
    }
}

fn start_login(conn: &Rc<RefCell<Conn>>, t: &Transport, tag: String, user: String, pass: Vec<u8>) {
    let (login, delay, clock, max) = {
        let mut c = conn.borrow_mut();
        c.waiting = true;
        (
            c.shared.login.clone(),
            c.shared.auth_failure_delay,
            c.shared.clock.clone(),
            c.shared.max_auth_failures,
        )
    };
    let Some(login) = login else {
        let mut c = conn.borrow_mut();
        c.waiting = false;
        c.line(&format!("{tag} NO Logins are not configured"));
        return;
    };
    let attempt = login(UsernamePassword::new(user.clone(), pass));
    let conn = conn.clone();
    let t = t.clone();
    drop(
        attempt.add_both(move |outcome: Result<Login<SmtpUser>, Failure>| {
            let mailbox = outcome
                .as_ref()
                .ok()
                .and_then(|_| (conn.borrow().shared.mailboxes)(&user))
                .and_then(|p| Store::new(p).ok());
            match (outcome, mailbox) {
                (Ok(login), Some(store)) => {
                    let mut c = conn.borrow_mut();
                    c.waiting = false;
                    c.user = Some(user);
                    c.store = Some(store);
                    c.login = Some(login);
                    let caps = c.capabilities();
                    c.line(&format!("{tag} OK [CAPABILITY {caps}] Logged in"));
                    drop(c);
                    pump(&conn, &t);
                }
                (Err(f), _) if f.check::<TooManyLogins>() => {
                    let mut c = conn.borrow_mut();
                    c.waiting = false;
                    c.line(&format!(
                        "{tag} NO [UNAVAILABLE] Too many logins; try later"
                    ));
                    drop(c);
                    pump(&conn, &t);
                }
                _ => {
                    let refuse = move || {
                        let mut c = conn.borrow_mut();
                        c.waiting = false;
                        c.auth_failures += 1;
                        c.line(&format!(
                            "{tag} NO [AUTHENTICATIONFAILED] Authentication failed"
                        ));
                        if c.auth_failures >= max {
                            c.line("* BYE Too many failed logins");
                            c.closed = true;
                        }
                        drop(c);
                        pump(&conn, &t);
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

fn run(conn: &Rc<RefCell<Conn>>, t: &Transport, cmd: Command) {
    use CommandKind as K;
    let Command { tag, kind } = cmd;
    let mut c = conn.borrow_mut();
    let authed = c.user.is_some();
    let selected = c.selected.is_some();
    match &kind {
        K::Capability | K::Noop | K::Logout => {}
        K::StartTls | K::Authenticate { .. } | K::Login { .. } if authed => {
            return c.bad(Some(&tag), "Already logged in");
        }
        K::StartTls | K::Authenticate { .. } | K::Login { .. } => {}
        K::Check
        | K::Close
        | K::Expunge
        | K::Search { .. }
        | K::Fetch { .. }
        | K::Store { .. }
        | K::Copy { .. }
            if !selected =>
        {
            return c.bad(Some(&tag), "No mailbox selected");
        }
        _ if !authed => return c.bad(Some(&tag), "Log in first"),
        _ => {}
    }
    let quiet = matches!(
        kind,
        K::Fetch { uid: false, .. } | K::Store { uid: false, .. } | K::Search { uid: false, .. }
    );
    match kind {
        K::Capability => {
            let caps = c.capabilities();
            c.line(&format!("* CAPABILITY {caps}"));
            c.line(&format!("{tag} OK CAPABILITY completed"));
        }
        K::Noop | K::Check => {
            c.sync(true);
            c.line(&format!("{tag} OK Done"));
        }
        K::Logout => {
            c.line("* BYE Logging out");
            c.line(&format!("{tag} OK LOGOUT completed"));
            c.closed = true;
        }
        K::StartTls => match c.shared.tls.clone() {
            Some(ctx) if !c.tls_active => {
                c.line(&format!("{tag} OK Begin TLS negotiation now"));
                c.flush(t);
                // What the client sent after STARTTLS in the clear is dropped (RFC 3501
                // section 6.2.1 / RFC 2595).
                c.framer.clear();
                c.tls_active = true;
                if let Err(e) = t.start_tls(ctx.into()) {
                    tracing::error!("IMAP: STARTTLS failed: {e}");
                    c.closed = true;
                }
            }
            _ => c.bad(Some(&tag), "STARTTLS is not available"),
        },
        K::Login { user, password } => {
            if !c.login_allowed() {
                c.line(&format!(
                    "{tag} NO [PRIVACYREQUIRED] LOGIN is disabled until STARTTLS"
                ));
                return;
            }
            drop(c);
            start_login(conn, t, tag, user, password);
        }
        K::Authenticate { mechanism, initial } => {
            if mechanism != "PLAIN" {
                c.line(&format!("{tag} NO Unsupported mechanism"));
            } else if !c.login_allowed() {
                c.line(&format!(
                    "{tag} NO [PRIVACYREQUIRED] AUTHENTICATE is disabled until STARTTLS"
                ));
            } else if let Some(ir) = initial {
                drop(c);
                plain(conn, t, &tag, ir.as_bytes());
            } else {
                c.line("+ ");
                c.authenticating = Some(tag);
            }
        }
        K::Select(name) => select(&mut c, &tag, &name, false),
        K::Examine(name) => select(&mut c, &tag, &name, true),
        K::Create(name) => {
            let r = c.store.as_ref().map(|s| s.create(&name));
            ok_or_no(&mut c, &tag, "CREATE", r);
        }
        K::Delete(name) => {
            if c.selected.as_ref().is_some_and(|s| s.name == name) {
                c.selected = None;
            }
            let r = c.store.as_ref().map(|s| s.delete(&name));
            ok_or_no(&mut c, &tag, "DELETE", r);
        }
        K::Rename(a, b) => {
            let r = c.store.as_ref().map(|s| s.rename(&a, &b));
            ok_or_no(&mut c, &tag, "RENAME", r);
        }
        K::Subscribe(name) => {
            let r = c.store.as_ref().map(|s| s.set_subscribed(&name, true));
            ok_or_no(&mut c, &tag, "SUBSCRIBE", r);
        }
        K::Unsubscribe(name) => {
            let r = c.store.as_ref().map(|s| s.set_subscribed(&name, false));
            ok_or_no(&mut c, &tag, "UNSUBSCRIBE", r);
        }
        K::List(reference, pattern) => list(&mut c, &tag, &reference, &pattern, false),
        K::Lsub(reference, pattern) => list(&mut c, &tag, &reference, &pattern, true),
        K::Status(name, items) => status(&mut c, &tag, &name, &items),
        K::Append {
            mailbox,
            flags,
            date,
            message,
        } => {
            let Some(path) = c
                .store
                .as_ref()
                .filter(|s| s.exists(&mailbox))
                .and_then(|s| s.folder_path(&mailbox))
            else {
                c.line(&format!("{tag} NO [TRYCREATE] No such mailbox"));
                return;
            };
            let letters: String = flags.iter().filter_map(|f| flag_letter(f)).collect();
            match Folder::append(&path, &message, &letters, date) {
                Ok(()) => {
                    c.sync(true);
                    c.line(&format!("{tag} OK APPEND completed"));
                }
                Err(e) => c.line(&format!("{tag} NO [SERVERBUG] Cannot store: {e}")),
            }
        }
        K::Close => {
            if let Some(mut sel) = c.selected.take() {
                if !sel.read_only {
                    let _ = sel.folder.expunge();
                }
            }
            c.line(&format!("{tag} OK CLOSE completed"));
        }
        K::Expunge => {
            c.sync(true);
            let Some(sel) = c.selected.as_mut() else {
                return;
            };
            if sel.read_only {
                c.line(&format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
                return;
            }
            match sel.folder.expunge() {
                Ok(gone) => {
                    for i in gone.into_iter().rev() {
                        c.line(&format!("* {} EXPUNGE", i + 1));
                    }
                    c.line(&format!("{tag} OK EXPUNGE completed"));
                }
                Err(e) => c.line(&format!("{tag} NO [SERVERBUG] {e}")),
            }
        }
        K::Search { uid, key } => {
            c.sync(!quiet);
            let hits = search(&c, &key, uid);
            let mut line = String::from("* SEARCH");
            for h in hits {
                line.push_str(&format!(" {h}"));
            }
            c.line(&line);
            c.line(&format!("{tag} OK SEARCH completed"));
        }
        K::Fetch { uid, set, items } => {
            c.sync(!quiet);
            fetch(&mut c, uid, &set, &items);
            c.line(&format!("{tag} OK FETCH completed"));
        }
        K::Store {
            uid,
            set,
            mode,
            silent,
            flags,
        } => {
            c.sync(!quiet);
            if c.selected.as_ref().is_some_and(|s| s.read_only) {
                c.line(&format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
                return;
            }
            store(&mut c, uid, &set, mode, silent, &flags);
            c.line(&format!("{tag} OK STORE completed"));
        }
        K::Copy { uid, set, mailbox } => {
            c.sync(true);
            let dest = c
                .store
                .as_ref()
                .filter(|s| s.exists(&mailbox))
                .and_then(|s| s.folder_path(&mailbox));
            let Some(dest) = dest else {
                c.line(&format!("{tag} NO [TRYCREATE] No such mailbox"));
                return;
            };
            let sel = c.selected.as_ref().expect("checked above");
            let result: std::io::Result<()> = matching(sel, &set, uid)
                .into_iter()
                .try_for_each(|i| sel.folder.copy_to(i, &dest));
            match result {
                Ok(()) => c.line(&format!("{tag} OK COPY completed")),
                Err(e) => c.line(&format!("{tag} NO COPY failed: {e}")),
            }
        }
        K::Idle => {
            c.sync(true);
            c.line("+ idling");
            c.idling = Some(tag);
            let every = c.shared.idle_poll.as_secs_f64();
            let clock = c.shared.clock.clone();
            drop(c);
            schedule_idle_poll(Rc::downgrade(conn), clock, every);
        }
    }
}

fn list(c: &mut Conn, tag: &str, reference: &str, pattern: &str, lsub: bool) {
    let what = if lsub { "LSUB" } else { "LIST" };
    if pattern.is_empty() && !lsub {
        c.line("* LIST (\\Noselect) \".\" \"\"");
    } else if let Some(store) = c.store.clone() {
        let full = format!("{reference}{pattern}");
        let names = if lsub {
            store.subscriptions()
        } else {
            store.list()
        };
        for n in names.iter().filter(|n| wildcard(n, &full)) {
            let q = String::from_utf8_lossy(&quoted_or_literal(n.as_bytes())).into_owned();
            c.line(&format!("* {what} () \".\" {q}"));
        }
    }
    c.line(&format!("{tag} OK {what} completed"));
}

fn schedule_idle_poll(weak: Weak<RefCell<Conn>>, clock: SharedClock, every: f64) {
    let Some(conn) = weak.upgrade() else { return };
    let c2 = clock.clone();
    let w2 = weak.clone();
    let call = clock.call_later_boxed(
        every,
        Box::new(move || {
            let Some(conn) = w2.upgrade() else { return };
            let t = {
                let Ok(mut c) = conn.try_borrow_mut() else {
                    return;
                };
                if c.idling.is_none() {
                    return;
                }
                c.idle_timer = None;
                c.sync(true);
                c.transport.clone()
            };
            if let Some(t) = t {
                conn.borrow_mut().flush(&t);
            }
            schedule_idle_poll(w2, c2, every);
        }),
    );
    conn.borrow_mut().idle_timer = Some(call);
}

fn ok_or_no(c: &mut Conn, tag: &str, what: &str, r: Option<std::io::Result<()>>) {
    match r {
        Some(Ok(())) => c.line(&format!("{tag} OK {what} completed")),
        Some(Err(e)) => {
            let code = match e.kind() {
                std::io::ErrorKind::AlreadyExists => "[ALREADYEXISTS] ",
                std::io::ErrorKind::NotFound => "[NONEXISTENT] ",
                _ => "",
            };
            c.line(&format!("{tag} NO {code}{what} failed: {e}"))
        }
        None => c.line(&format!("{tag} NO Not logged in")),
    }
}

/// `name` matches a LIST pattern: `*` anything, `%` anything but the separator `.`
/// (dynamic programming: linear in the pattern times the name, whatever the wildcards).
fn wildcard(name: &str, pattern: &str) -> bool {
    if name == "INBOX" && pattern.eq_ignore_ascii_case("inbox") {
        return true;
    }
    let (n, p) = (name.as_bytes(), pattern.as_bytes());
    if p.len() > 1024 {
        return false;
    }
    // row[j]: the pattern so far matches the first j bytes of the name.
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for &c in p {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            next[j] = match c {
                b'*' => row[j] || (j > 0 && next[j - 1]),
                b'%' => row[j] || (j > 0 && n[j - 1] != b'.' && next[j - 1]),
                _ => j > 0 && row[j - 1] && n[j - 1] == c,
            };
        }
        row = next;
    }
    row[n.len()]
}

fn select(c: &mut Conn, tag: &str, name: &str, read_only: bool) {
    c.selected = None;
    let Some(store) = c.store.clone() else { return };
    if !store.exists(name) {
        c.line(&format!("{tag} NO [NONEXISTENT] No such mailbox"));
        return;
    }
    let Some(path) = store.folder_path(name) else {
        return;
    };
    let folder = match Folder::open(path) {
        Ok(f) => f,
        Err(e) => {
            c.line(&format!("{tag} NO [SERVERBUG] {e}"));
            return;
        }
    };
    let recent: HashSet<u32> = folder
        .messages()
        .iter()
        .filter(|m| m.recent)
        .map(|m| m.uid)
        .collect();
    c.line(&format!("* FLAGS ({ALL_FLAGS})"));
    if read_only {
        c.line("* OK [PERMANENTFLAGS ()] Read-only");
    } else {
        c.line(&format!("* OK [PERMANENTFLAGS ({ALL_FLAGS})] Limited"));
    }
    c.line(&format!("* {} EXISTS", folder.messages().len()));
    c.line(&format!("* {} RECENT", recent.len()));
    if let Some(i) = folder
        .messages()
        .iter()
        .position(|m| !m.flags.contains('S'))
    {
        c.line(&format!("* OK [UNSEEN {}] First unseen", i + 1));
    }
    c.line(&format!(
        "* OK [UIDVALIDITY {}] UIDs valid",
        folder.uid_validity
    ));
    c.line(&format!(
        "* OK [UIDNEXT {}] Predicted next UID",
        folder.next_uid
    ));
    let (code, what) = if read_only {
        ("READ-ONLY", "EXAMINE")
    } else {
        ("READ-WRITE", "SELECT")
    };
    c.line(&format!("{tag} OK [{code}] {what} completed"));
    c.selected = Some(Selected {
        name: name.to_owned(),
        read_only,
        folder,
        recent,
    });
}

fn status(c: &mut Conn, tag: &str, name: &str, items: &[String]) {
    let Some(path) = c
        .store
        .as_ref()
        .filter(|s| s.exists(name))
        .and_then(|s| s.folder_path(name))
    else {
        c.line(&format!("{tag} NO [NONEXISTENT] No such mailbox"));
        return;
    };
    let folder = match Folder::open(path) {
        Ok(f) => f,
        Err(e) => {
            c.line(&format!("{tag} NO [SERVERBUG] {e}"));
            return;
        }
    };
    let m = folder.messages();
    let mut parts = Vec::new();
    for item in items {
        let v = match item.as_str() {
            "MESSAGES" => m.len() as u64,
            "RECENT" => m.iter().filter(|x| x.recent).count() as u64,
            "UIDNEXT" => u64::from(folder.next_uid),
            "UIDVALIDITY" => u64::from(folder.uid_validity),
            "UNSEEN" => m.iter().filter(|x| !x.flags.contains('S')).count() as u64,
            _ => return c.bad(Some(tag), "Unknown STATUS item"),
        };
        parts.push(format!("{item} {v}"));
    }
    let q = String::from_utf8_lossy(&quoted_or_literal(name.as_bytes())).into_owned();
    c.line(&format!("* STATUS {q} ({})", parts.join(" ")));
    c.line(&format!("{tag} OK STATUS completed"));
}

/// The 0-based indexes a set names, by sequence number or UID.
fn matching(sel: &Selected, set: &SeqSet, uid: bool) -> Vec<usize> {
    let m = sel.folder.messages();
    if uid {
        let max = m.last().map_or(0, |x| x.uid);
        (0..m.len())
            .filter(|&i| set.contains(m[i].uid, max))
            .collect()
    } else {
        let max = m.len() as u32;
        (0..m.len())
            .filter(|&i| set.contains(i as u32 + 1, max))
            .collect()
    }
}

fn fetch(c: &mut Conn, uid: bool, set: &SeqSet, items: &[FetchAtt]) {
    let Some(sel) = c.selected.as_mut() else {
        return;
    };
    let needs_data = items
        .iter()
        .any(|i| !matches!(i, FetchAtt::Flags | FetchAtt::Uid | FetchAtt::InternalDate));
    let sets_seen = !sel.read_only
        && items.iter().any(|i| {
            matches!(
                i,
                FetchAtt::Rfc822 | FetchAtt::Rfc822Text | FetchAtt::Section { peek: false, .. }
            )
        });
    let mut out = Vec::new();
    for i in matching(sel, set, uid) {
        let data = if needs_data {
            match sel.folder.read(i) {
                Ok(d) => d,
                // Gone under us (another session expunged it): reported at the next sync.
                Err(_) => continue,
            }
        } else {
            Vec::new()
        };
        let mut flags_changed = false;
        if sets_seen && !sel.folder.messages()[i].flags.contains('S') {
            let f = format!("{}S", sel.folder.messages()[i].flags);
            flags_changed = sel.folder.set_flags(i, &f).is_ok();
        }
        let msg = &sel.folder.messages()[i];
        let mut parts: Vec<Vec<u8>> = Vec::new();
        if uid && !items.contains(&FetchAtt::Uid) {
            parts.push(format!("UID {}", msg.uid).into_bytes());
        }
        for item in items {
            let mut p = Vec::new();
            match item {
                FetchAtt::Flags => p.extend(
                    format!(
                        "FLAGS ({})",
                        flags_text(&msg.flags, sel.recent.contains(&msg.uid))
                    )
                    .into_bytes(),
                ),
                FetchAtt::Uid => p.extend(format!("UID {}", msg.uid).into_bytes()),
                FetchAtt::InternalDate => p.extend(
                    format!(
                        "INTERNALDATE \"{}\"",
                        internal_date(sel.folder.internal_date(i))
                    )
                    .into_bytes(),
                ),
                FetchAtt::Rfc822Size => {
                    p.extend(format!("RFC822.SIZE {}", data.len()).into_bytes())
                }
                FetchAtt::Rfc822 => {
                    p.extend_from_slice(b"RFC822 ");
                    p.extend(literal(&data));
                }
                FetchAtt::Rfc822Header => {
                    p.extend_from_slice(b"RFC822.HEADER ");
                    p.extend(literal(header_block(&data)));
                }
                FetchAtt::Rfc822Text => {
                    p.extend_from_slice(b"RFC822.TEXT ");
                    p.extend(literal(&data[header_block(&data).len()..]));
                }
                FetchAtt::Envelope => {
                    p.extend_from_slice(b"ENVELOPE ");
                    p.extend(envelope(&data));
                }
                FetchAtt::BodyStructure => {
                    p.extend_from_slice(b"BODYSTRUCTURE ");
                    p.extend(body_structure(&data, true));
                }
                FetchAtt::Body => {
                    p.extend_from_slice(b"BODY ");
                    p.extend(body_structure(&data, false));
                }
                FetchAtt::Section {
                    section, partial, ..
                } => {
                    let mut name = String::from("BODY[");
                    name.push_str(
                        &section
                            .part
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join("."),
                    );
                    if let Some(t) = &section.text {
                        if !section.part.is_empty() {
                            name.push('.');
                        }
                        name.push_str(&match t {
                            SectionText::Header => "HEADER".to_owned(),
                            SectionText::Text => "TEXT".to_owned(),
                            SectionText::Mime => "MIME".to_owned(),
                            SectionText::HeaderFields(f) => {
                                format!("HEADER.FIELDS ({})", f.join(" ").to_uppercase())
                            }
                            SectionText::HeaderFieldsNot(f) => {
                                format!("HEADER.FIELDS.NOT ({})", f.join(" ").to_uppercase())
                            }
                        });
                    }
                    name.push(']');
                    let body = imap_message::section(&data, section).unwrap_or_default();
                    let body = match partial {
                        Some((o, n)) => {
                            name.push_str(&format!("<{o}>"));
                            let o = (*o as usize).min(body.len());
                            let e = o.saturating_add(*n as usize).min(body.len());
                            body[o..e].to_vec()
                        }
                        None => body,
                    };
                    p.extend(name.into_bytes());
                    p.push(b' ');
                    p.extend(literal(&body));
                }
            }
            parts.push(p);
        }
        if flags_changed && !items.contains(&FetchAtt::Flags) {
            parts.push(
                format!(
                    "FLAGS ({})",
                    flags_text(&msg.flags, sel.recent.contains(&msg.uid))
                )
                .into_bytes(),
            );
        }
        out.extend(format!("* {} FETCH (", i + 1).into_bytes());
        for (k, p) in parts.into_iter().enumerate() {
            if k > 0 {
                out.push(b' ');
            }
            out.extend(p);
        }
        out.extend_from_slice(b")\r\n");
    }
    c.out.extend(out);
}

fn store(c: &mut Conn, uid: bool, set: &SeqSet, mode: StoreMode, silent: bool, flags: &[String]) {
    let Some(sel) = c.selected.as_mut() else {
        return;
    };
    // Keywords are not kept (PERMANENTFLAGS lists only the system flags).
    let letters: String = flags.iter().filter_map(|f| flag_letter(f)).collect();
    let mut lines = Vec::new();
    for i in matching(sel, set, uid) {
        let old = sel.folder.messages()[i].flags.clone();
        let new: String = match mode {
            StoreMode::Replace => letters.clone(),
            StoreMode::Add => format!("{old}{letters}"),
            StoreMode::Remove => old.chars().filter(|c| !letters.contains(*c)).collect(),
        };
        if sel.folder.set_flags(i, &new).is_err() {
            continue;
        }
        if !silent {
            let m = &sel.folder.messages()[i];
            let uid_part = if uid {
                format!("UID {} ", m.uid)
            } else {
                String::new()
            };
            lines.push(format!(
                "* {} FETCH ({uid_part}FLAGS ({}))",
                i + 1,
                flags_text(&m.flags, sel.recent.contains(&m.uid))
            ));
        }
    }
    for l in lines {
        c.line(&l);
    }
}

fn search(c: &Conn, key: &SearchKey, uid: bool) -> Vec<u32> {
    let Some(sel) = c.selected.as_ref() else {
        return Vec::new();
    };
    let m = sel.folder.messages();
    let max_uid = m.last().map_or(0, |x| x.uid);
    let mut hits = Vec::new();
    for (i, msg) in m.iter().enumerate() {
        let mut data = None;
        let mut ctx = SearchCtx {
            sel,
            i,
            max_uid,
            data: &mut data,
        };
        if ctx.test(key) {
            hits.push(if uid { msg.uid } else { i as u32 + 1 });
        }
    }
    hits
}

struct SearchCtx<'a> {
    sel: &'a Selected,
    i: usize,
    max_uid: u32,
    data: &'a mut Option<Vec<u8>>,
}

impl SearchCtx<'_> {
    fn data(&mut self) -> &[u8] {
        if self.data.is_none() {
            *self.data = Some(self.sel.folder.read(self.i).unwrap_or_default());
        }
        self.data.as_deref().unwrap_or_default()
    }

    fn day(&self) -> i64 {
        self.sel.folder.internal_date(self.i).div_euclid(86400)
    }

    fn sent_day(&mut self) -> Option<i64> {
        imap_message::sent_date(self.data()).map(|t| t.div_euclid(86400))
    }

    fn test(&mut self, key: &SearchKey) -> bool {
        let msg = &self.sel.folder.messages()[self.i];
        let recent = self.sel.recent.contains(&msg.uid);
        let d = |date: &Date| date.days();
        match key {
            SearchKey::All => true,
            SearchKey::Flag(c, on) => msg.flags.contains(*c) == *on,
            SearchKey::New => recent && !msg.flags.contains('S'),
            SearchKey::Old => !recent,
            SearchKey::Recent => recent,
            SearchKey::Keyword(_, on) => !on,
            SearchKey::Header(name, needle) => {
                let data = self.data();
                let header = header_block(data);
                imap_message::fields(header).iter().any(|(n, f)| {
                    n == name
                        && imap_message::contains_ci(
                            f.get(name.len() + 1..).unwrap_or_default(),
                            needle,
                        )
                })
            }
            SearchKey::Body(needle) => {
                let data = self.data();
                imap_message::contains_ci(&data[header_block(data).len()..], needle)
            }
            SearchKey::Text(needle) => imap_message::contains_ci(self.data(), needle),
            SearchKey::Before(date) => self.day() < d(date),
            SearchKey::On(date) => self.day() == d(date),
            SearchKey::Since(date) => self.day() >= d(date),
            SearchKey::SentBefore(date) => self.sent_day().is_some_and(|s| s < d(date)),
            SearchKey::SentOn(date) => self.sent_day() == Some(d(date)),
            SearchKey::SentSince(date) => self.sent_day().is_some_and(|s| s >= d(date)),
            SearchKey::Larger(n) => self.data().len() as u64 > *n,
            SearchKey::Smaller(n) => (self.data().len() as u64) < *n,
            SearchKey::Uid(set) => set.contains(msg.uid, self.max_uid),
            SearchKey::Seq(set) => {
                set.contains(self.i as u32 + 1, self.sel.folder.messages().len() as u32)
            }
            SearchKey::Not(k) => !self.test(k),
            SearchKey::Or(a, b) => self.test(a) || self.test(b),
            SearchKey::And(keys) => keys.iter().all(|k| self.test(k)),
        }
    }
}

fn timed_out(conn: &Weak<RefCell<Conn>>) {
    let Some(conn) = conn.upgrade() else { return };
    let Ok(mut c) = conn.try_borrow_mut() else {
        return;
    };
    let Some(t) = c.transport.clone() else { return };
    if c.closed {
        return;
    }
    tracing::info!("IMAP: client idle too long; logging it out");
    c.line("* BYE Autologout; idle for too long");
    c.closed = true;
    c.stop_idle_timer();
    c.flush(&t);
    t.lose_connection();
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

impl Protocol for Imap {
    fn connection_made(&mut self, t: &Transport) {
        let mut c = self.conn.borrow_mut();
        c.transport = Some(t.clone());
        let caps = c.capabilities();
        let host = c.shared.hostname.clone();
        c.line(&format!("* OK [CAPABILITY {caps}] {host} IMAP4rev1 ready"));
        c.flush(t);
        let weak = Rc::downgrade(&self.conn);
        if let Err(e) = c.gate.register(t, move || resume(&weak)) {
            tracing::debug!("IMAP without write-buffer flow control: {e}");
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
            let mut c = self.conn.borrow_mut();
            if c.closed {
                return;
            }
            c.framer.push(data);
        }
        pump(&self.conn, t);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.idle.set_timeout(None);
        let mut c = self.conn.borrow_mut();
        c.stop_idle_timer();
        c.transport = None;
        c.selected = None;
        c.login = None;
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn list_patterns_match_as_rfc_3501_says_in_linear_time() {
        assert!(wildcard("Work.2026", "Work.%"));
        assert!(!wildcard("Work.2026.x", "Work.%"));
        assert!(wildcard("Work.2026.x", "*x"));
        assert!(wildcard("INBOX", "inbox"));
        assert!(!wildcard("Work", ""));
        // Backtracking would take 255^8 steps here.
        let long = "a".repeat(255);
        let start = std::time::Instant::now();
        assert!(!wildcard(&long, "*a*a*a*a*a*a*a*b"));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
