//! The FTP server as a protocol (Twisted's `twisted.protocols.ftp.FTP` and `FTPFactory`): a
//! thin [`Protocol`] over the I/O-free [`ServerCore`], serving a folder ([`Root`]) to
//! anonymous users (read-only) and to users logged in through a cred [`Portal`] whose realm
//! gives each an [`FtpUser`] (a root, and whether they may write).
//!
//! Data connections are passive (PASV, EPSV) on ports from a configurable range, or active
//! (PORT, EPRT) when [`active`](FtpFactory::active) is on, and then only to the control
//! connection's own peer; a passive port takes one connection, from that peer. Files are
//! sent by a pull producer one 64 KiB chunk at a time (the next read only once the socket
//! took the last), and received by writing each chunk as it arrives, so a transfer of any
//! size holds a chunk or two in memory. With AUTH TLS and PROT P, data connections are in
//! TLS too (the server is the TLS server on them, RFC 4217).
//!
//! A control connection idle for [`timeout`](FtpFactory::timeout) (600 s, Twisted's
//! `FTP.timeOut`) is answered 421 and closed; a data connection that is not opened, or
//! moves no byte, for [`data_timeout`](FtpFactory::data_timeout) (60 s) is dropped and
//! the transfer answered 425 or 426.
//!
//! ABOR during a transfer ends its data connection at once: the transfer is answered 426
//! and the ABOR 226 (RFC 959), and what an upload had received stays in its file. Other
//! commands sent during a transfer wait for its end. ABOR is recognised when sent as TCP
//! urgent data (as Python's ftplib and lftp send it, the line's last byte taken out of the
//! stream) and after Telnet IP and Synch bytes.
//!
//! ```no_run
//! use torsion::reactor;
//! use torsion_ftp::fs::Root;
//! use torsion_ftp::server::FtpFactory;
//!
//! let factory = FtpFactory::new().anonymous(Root::new("/srv/ftp").unwrap());
//! reactor().listen_tcp(2121, factory).unwrap();
//! reactor().run().unwrap();
//! ```
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, SystemTime};

use torsion::defer::Deferred;
use torsion::producer::Producer;
use torsion::protocols::policies::{IdleTimeout, ReadingPause};
use torsion::reactor::{DelayedCall, ReactorTime, SharedClock};
use torsion::tcp::ListeningPort;
use torsion::tls::ServerContext;
use torsion::transport::Address as PeerAddress;
use torsion::{reactor, ConnectionEnd, Factory, Failure, Protocol, Transport};
use torsion_cred::error::TooManyLogins;
use torsion_cred::{AvatarId, Login, Logout, Portal, Realm, UsernamePassword};

use crate::command::Command;
use crate::fs::{listable, ls_line, mlsx_facts, timeval, Listing, Root, WriteMode};
use crate::reply::Reply;
use crate::server_core::{Event, Options, ServerCore};

/// Twisted's `FTP.timeOut`: ten minutes without a command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a data connection may take to open, or stay without moving a byte.
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(60);
/// The chunk files are read and sent in.
pub const CHUNK: usize = 64 << 10;
/// Reading the control connection pauses while this much input waits unread.
const MAX_PENDING_INPUT: usize = 64 << 10;

/// What an FTP login gets: the folder the user sees as `/`, and whether they may change it.
#[derive(Clone, Debug)]
pub struct FtpUser {
    /// The user's root.
    pub root: Root,
    /// STOR, APPE, DELE, RNFR/RNTO, MKD and RMD are allowed.
    pub writable: bool,
}

/// A realm giving every user the same root, or each a folder of their own under a base.
#[derive(Clone, Debug)]
pub struct FtpRealm {
    base: Root,
    per_user: bool,
    writable: bool,
}

impl FtpRealm {
    /// Every user sees `root`, writable.
    pub fn shared(root: Root) -> FtpRealm {
        FtpRealm {
            base: root,
            per_user: false,
            writable: true,
        }
    }

    /// Each user sees `base/NAME` (which must exist), writable.
    pub fn per_user(base: Root) -> FtpRealm {
        FtpRealm {
            base,
            per_user: true,
            writable: true,
        }
    }

    /// Users may only read.
    pub fn read_only(mut self) -> FtpRealm {
        self.writable = false;
        self
    }
}

impl Realm<FtpUser> for FtpRealm {
    fn request_avatar(&self, avatar_id: &AvatarId, _mind: ()) -> Deferred<(FtpUser, Logout)> {
        let root = if self.per_user {
            match self.base.child(&avatar_id.to_string()) {
                Ok(r) => r,
                Err(_) => {
                    return torsion::defer::fail(io::Error::new(
                        io::ErrorKind::NotFound,
                        "no folder for this user",
                    ))
                }
            }
        } else {
            self.base.clone()
        };
        torsion::defer::succeed((
            FtpUser {
                root,
                writable: self.writable,
            },
            Logout::none(),
        ))
    }
}

type LoginFn = dyn Fn(UsernamePassword) -> Deferred<Login<FtpUser>>;

#[derive(Clone)]
struct Shared {
    options: Options,
    anonymous: Option<Root>,
    login: Option<Rc<LoginFn>>,
    tls: Option<ServerContext>,
    data_tls: Option<ServerContext>,
    passive_ports: Option<(u16, u16)>,
    timeout: Option<Duration>,
    data_timeout: Duration,
    login_failure_delay: Duration,
    clock: SharedClock,
}

/// Makes an [`Ftp`] protocol for each connection (Twisted's `FTPFactory`).
#[derive(Clone)]
pub struct FtpFactory {
    shared: Rc<Shared>,
}

impl Default for FtpFactory {
    fn default() -> FtpFactory {
        FtpFactory::new()
    }
}

impl FtpFactory {
    /// A server nobody can log in to yet: add [`anonymous`](Self::anonymous) access or a
    /// [`portal`](Self::portal).
    pub fn new() -> FtpFactory {
        FtpFactory {
            shared: Rc::new(Shared {
                options: Options::default(),
                anonymous: None,
                login: None,
                tls: None,
                data_tls: None,
                passive_ports: None,
                timeout: Some(DEFAULT_TIMEOUT),
                data_timeout: DEFAULT_DATA_TIMEOUT,
                login_failure_delay: Duration::from_secs(1),
                clock: SharedClock::running(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> FtpFactory {
        f(Rc::make_mut(&mut self.shared));
        self
    }

    /// Anonymous users (`anonymous` or `ftp`, any password) read `root`.
    pub fn anonymous(self, root: Root) -> FtpFactory {
        self.with(|s| {
            s.anonymous = Some(root);
            s.options.anonymous = true;
        })
    }

    /// Users log in through `portal` (its checker for [`UsernamePassword`]); the realm
    /// gives each an [`FtpUser`] ([`FtpRealm`] will do).
    pub fn portal<R: Realm<FtpUser> + 'static>(self, portal: Portal<R>) -> FtpFactory {
        let login: Rc<LoginFn> = Rc::new(move |c| portal.login::<FtpUser, _, ()>(c, ()));
        self.with(|s| s.login = Some(login))
    }

    /// Offers AUTH TLS (explicit FTPS) with this certificate.
    pub fn tls(self, context: ServerContext) -> FtpFactory {
        // Data connections get no TLS 1.3 session tickets: a client that only uploads never
        // reads them, and its close then resets the connection (losing the end of the
        // upload in the kernel) instead of closing it.
        let mut config = (**context.config()).clone();
        config.send_tls13_tickets = 0;
        let data = ServerContext::from_config(std::sync::Arc::new(config));
        self.with(|s| {
            s.tls = Some(context);
            s.data_tls = Some(data);
            s.options.tls = true;
        })
    }

    /// Refuses logins other than anonymous ones until AUTH TLS (off by default).
    pub fn require_tls_for_login(self, require: bool) -> FtpFactory {
        self.with(|s| s.options.require_tls_for_login = require)
    }

    /// Serves PORT and EPRT (off by default); data connections then go only to the
    /// control connection's peer, never to a port under 1024.
    pub fn active(self, on: bool) -> FtpFactory {
        self.with(|s| s.options.active = on)
    }

    /// Passive data connections listen on ports from `first` to `last` (inclusive); by
    /// default any free port.
    pub fn passive_ports(self, first: u16, last: u16) -> FtpFactory {
        self.with(|s| s.passive_ports = Some((first.min(last), first.max(last))))
    }

    /// How long a client may send no command before it is answered 421 and dropped
    /// ([`DEFAULT_TIMEOUT`]); `None` waits for ever. Not counted while a transfer runs.
    pub fn timeout(self, timeout: Option<Duration>) -> FtpFactory {
        self.with(|s| s.timeout = timeout)
    }

    /// How long a data connection may take to open or stay without moving a byte
    /// ([`DEFAULT_DATA_TIMEOUT`]).
    pub fn data_timeout(self, timeout: Duration) -> FtpFactory {
        self.with(|s| s.data_timeout = timeout)
    }

    /// How long a failed login waits before its 530 (one second by default).
    pub fn login_failure_delay(self, delay: Duration) -> FtpFactory {
        self.with(|s| s.login_failure_delay = delay)
    }

    /// The server's limits and its greeting, besides what the other settings set.
    pub fn options(self, f: impl FnOnce(&mut Options)) -> FtpFactory {
        self.with(|s| f(&mut s.options))
    }

    /// Times the timeouts and the failed-login delay on `clock` (a test
    /// [`Clock`](torsion::testing::Clock)) instead of the running reactor.
    pub fn clock(self, clock: impl ReactorTime + 'static) -> FtpFactory {
        let clock = SharedClock::new(clock);
        self.with(|s| s.clock = clock)
    }
}

impl Factory for FtpFactory {
    type Protocol = Ftp;

    fn build_protocol(&self, _addr: &PeerAddress) -> Option<Ftp> {
        Some(Ftp::new(self.shared.clone()))
    }
}

/// Where the bytes of a transfer come from (the server sends) or go (it receives).
enum Job {
    Send(Box<dyn Source>),
    Receive(File),
}

/// Bytes to send, a chunk at a time.
trait Source {
    /// The next chunk; empty at the end.
    fn next_chunk(&mut self) -> io::Result<Vec<u8>>;
}

struct FileSource {
    file: File,
    buf: Vec<u8>,
}

impl Source for FileSource {
    fn next_chunk(&mut self) -> io::Result<Vec<u8>> {
        if self.buf.len() != CHUNK {
            self.buf = vec![0; CHUNK];
        }
        let n = self.file.read(&mut self.buf)?;
        Ok(self.buf[..n].to_vec())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Long,
    Names,
    Facts,
}

/// A folder's listing, formatted a batch of entries at a time: a folder of any size
/// costs one batch of memory.
struct ListSource {
    entries: Option<Listing>,
    single: Option<Vec<u8>>,
    kind: ListKind,
    writable: bool,
    now: SystemTime,
}

impl Source for ListSource {
    fn next_chunk(&mut self) -> io::Result<Vec<u8>> {
        if let Some(one) = self.single.take() {
            return Ok(one);
        }
        let mut out = Vec::new();
        let Some(entries) = self.entries.as_mut() else {
            return Ok(out);
        };
        while out.len() < CHUNK {
            let Some((name, meta)) = entries.next() else {
                self.entries = None;
                break;
            };
            let Some(name) = listable(&name) else {
                continue;
            };
            out.extend_from_slice(
                list_entry(self.kind, &name, &meta, self.writable, self.now).as_bytes(),
            );
        }
        Ok(out)
    }
}

fn list_entry(
    kind: ListKind,
    name: &str,
    meta: &std::fs::Metadata,
    writable: bool,
    now: SystemTime,
) -> String {
    match kind {
        ListKind::Long => format!("{}\r\n", ls_line(name, meta, now)),
        ListKind::Names => format!("{name}\r\n"),
        ListKind::Facts => format!("{}{name}\r\n", mlsx_facts(meta, None, writable)),
    }
}

#[derive(Default)]
struct Data {
    listener: Option<ListeningPort>,
    active: Option<SocketAddr>,
    transport: Option<Transport>,
    job: Option<Job>,
    /// The transfer's last byte was handed to the data connection.
    sent_all: bool,
    /// Bytes moved by the transfer.
    moved: u64,
    /// A failure while the transfer ran (a file error), answered instead of 226.
    failed: Option<Reply>,
    /// Waiting for the data connection to open.
    wait: Option<DelayedCall>,
    /// A transfer is under way (its 150 was sent).
    running: bool,
}

struct Conn {
    shared: Rc<Shared>,
    core: ServerCore,
    control: Option<Transport>,
    peer: Option<SocketAddr>,
    root: Option<Root>,
    writable: bool,
    login: Option<Login<FtpUser>>,
    data: Data,
    reading: ReadingPause,
    /// The control connection's idle timer (owned by [`Ftp`]): a transfer's end restarts it.
    idle: Weak<IdleTimeout>,
}

/// One FTP control connection (Twisted's `FTP`). Made by an [`FtpFactory`].
pub struct Ftp {
    conn: Rc<RefCell<Conn>>,
    idle: Rc<IdleTimeout>,
}

impl Ftp {
    fn new(shared: Rc<Shared>) -> Ftp {
        let core = ServerCore::new(shared.options.clone());
        let idle = Rc::new(IdleTimeout::new());
        Ftp {
            conn: Rc::new(RefCell::new(Conn {
                shared,
                core,
                control: None,
                peer: None,
                root: None,
                writable: false,
                login: None,
                data: Data::default(),
                reading: ReadingPause::new(),
                idle: Rc::downgrade(&idle),
            })),
            idle,
        }
    }
}

impl Conn {
    fn flush(&mut self) {
        let out = self.core.take_output();
        if let (false, Some(t)) = (out.is_empty(), self.control.as_ref()) {
            t.write(&out);
        }
    }

    fn root(&self) -> io::Result<&Root> {
        self.root
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::PermissionDenied, "not logged in"))
    }

    /// Ends any data connection and listener (after a transfer, or when a new PASV comes).
    fn close_data(&mut self) {
        // A transfer's end (or a new PASV) starts the control connection's idle period
        // again, as Twisted's FTP re-enables its timeout after a transfer.
        if let Some(idle) = self.idle.upgrade() {
            idle.reset_timeout();
        }
        let data = std::mem::take(&mut self.data);
        if let Some(l) = data.listener {
            drop(l.stop_listening());
        }
        if let Some(w) = data.wait {
            let _ = w.cancel();
        }
        if let Some(t) = data.transport {
            t.abort_connection();
        }
        self.core.set_data_ready(false);
    }
}

fn fs_error(e: &io::Error) -> (u16, String) {
    match e.kind() {
        io::ErrorKind::NotFound => (550, "No such file or directory.".into()),
        io::ErrorKind::PermissionDenied => (550, "Permission denied.".into()),
        io::ErrorKind::AlreadyExists => (550, "File exists.".into()),
        io::ErrorKind::DirectoryNotEmpty => (550, "Directory not empty.".into()),
        io::ErrorKind::NotADirectory => (550, "Not a directory.".into()),
        io::ErrorKind::IsADirectory => (550, "Is a directory.".into()),
        _ => (550, "Requested action not taken.".into()),
    }
}

/// Runs the core until it needs more bytes or waits for something.
fn pump(conn: &Rc<RefCell<Conn>>) {
    loop {
        let event = match conn.try_borrow_mut() {
            Ok(mut c) => c.core.poll(),
            Err(_) => return,
        };
        let Some(event) = event else { break };
        match event {
            Event::Login {
                user,
                password,
                anonymous,
            } => start_login(conn, user, password, anonymous),
            Event::StartTls => {
                let mut c = conn.borrow_mut();
                c.flush();
                let context = c.shared.tls.clone();
                let Some(t) = c.control.clone() else { return };
                match context.map(|ctx| t.start_tls(ctx.into())) {
                    Some(Ok(())) => c.core.tls_started(),
                    Some(Err(e)) => {
                        tracing::error!("FTP: AUTH TLS failed: {e}");
                        t.abort_connection();
                        return;
                    }
                    None => t.abort_connection(),
                }
            }
            Event::Command(command) => handle(conn, command),
            Event::Abort => {
                let mut c = conn.borrow_mut();
                tracing::debug!("FTP: ABOR during a transfer");
                // What an upload received so far stays in the file, as with a data
                // connection the client closes.
                c.close_data();
                c.core.reply(426, "Connection closed; transfer aborted.");
                c.core.reply(226, "Abort successful.");
                c.core.done();
            }
            Event::Close => {
                let mut c = conn.borrow_mut();
                c.flush();
                c.close_data();
                if let Some(t) = c.control.clone() {
                    t.lose_connection();
                }
                return;
            }
        }
    }
    let Ok(mut c) = conn.try_borrow_mut() else {
        return;
    };
    c.flush();
    let should_pause = !c.core.closed() && c.core.buffered() > MAX_PENDING_INPUT;
    let c = &mut *c;
    if let Some(t) = &c.control {
        c.reading.set(t, should_pause);
    }
}

fn start_login(conn: &Rc<RefCell<Conn>>, user: String, password: String, anonymous: bool) {
    let (login, delay, clock, anon_root) = {
        let c = conn.borrow();
        (
            c.shared.login.clone(),
            c.shared.login_failure_delay,
            c.shared.clock.clone(),
            c.shared.anonymous.clone(),
        )
    };
    if anonymous {
        if let Some(root) = anon_root {
            let mut c = conn.borrow_mut();
            c.root = Some(root);
            c.writable = false;
            c.core.logged_in("anonymous", false);
            return;
        }
    }
    let refuse = {
        let conn = conn.clone();
        move || {
            conn.borrow_mut().core.login_failed();
            pump(&conn);
        }
    };
    let Some(login) = login else {
        drop(clock.call_later_boxed(delay.as_secs_f64(), Box::new(refuse)));
        return;
    };
    let attempt = login(UsernamePassword::new(user, password.into_bytes()));
    let conn = conn.clone();
    drop(
        attempt.add_both(move |outcome: Result<Login<FtpUser>, Failure>| {
            match outcome {
                Ok(login) => {
                    let mut c = conn.borrow_mut();
                    let avatar = login.avatar().clone();
                    let name = login.avatar_id().to_string();
                    c.root = Some(avatar.root);
                    c.writable = avatar.writable;
                    c.core.logged_in(&name, avatar.writable);
                    c.login = Some(login);
                    drop(c);
                    pump(&conn);
                }
                Err(f) => {
                    if f.check::<TooManyLogins>() {
                        tracing::info!("FTP: login refused, too many logins");
                    }
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

/// Handles a command the core passed on; answers it now or when its transfer ends.
fn handle(conn: &Rc<RefCell<Conn>>, command: Command) {
    let mut c = conn.borrow_mut();
    let answer = |c: &mut Conn, r: io::Result<(u16, String)>| {
        let (code, text) = r.unwrap_or_else(|e| fs_error(&e));
        c.core.reply(code, &text);
        c.core.done();
    };
    let list_kind = match &command {
        Command::List(_) => ListKind::Long,
        Command::Nlst(_) => ListKind::Names,
        _ => ListKind::Facts,
    };
    let is_append = matches!(command, Command::Appe(_));
    match command {
        Command::Cwd(v) => {
            let r = c.root().and_then(|root| {
                if root.metadata(&v)?.is_dir() {
                    Ok((250, format!("Directory changed to {v}.")))
                } else {
                    Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"))
                }
            });
            if r.is_ok() {
                c.core.set_cwd(&v);
            }
            answer(&mut c, r);
        }
        Command::Size(v) => {
            let r = c.root().and_then(|root| {
                let m = root.metadata(&v)?;
                if m.is_file() {
                    Ok((213, m.len().to_string()))
                } else {
                    Err(io::Error::new(io::ErrorKind::IsADirectory, "not a file"))
                }
            });
            answer(&mut c, r);
        }
        Command::Mdtm(v) => {
            let r = c.root().and_then(|root| {
                let m = root.metadata(&v)?;
                Ok((213, timeval(m.modified()?)))
            });
            answer(&mut c, r);
        }
        Command::Mlst(v) => {
            let v = v.unwrap_or_else(|| c.core.cwd().to_owned());
            let writable = c.writable;
            match c.root().and_then(|root| root.metadata(&v)) {
                Ok(m) => {
                    let kind = (v == "/").then_some("cdir");
                    let facts = mlsx_facts(&m, kind, writable);
                    c.core.send(&Reply::multi(
                        250,
                        vec![format!("Listing {v}"), format!(" {facts}{v}"), "End".into()],
                    ));
                    c.core.done();
                }
                Err(e) => answer(&mut c, Err(e)),
            }
        }
        Command::Dele(v) => {
            let r = c
                .root()
                .and_then(|root| root.remove_file(&v))
                .map(|()| (250, "File deleted.".into()));
            answer(&mut c, r);
        }
        Command::Mkd(v) => {
            let r = c.root().and_then(|root| {
                root.create_dir(&v)?;
                Ok((257, format!("\"{}\" created.", v.replace('"', "\"\""))))
            });
            answer(&mut c, r);
        }
        Command::Rmd(v) => {
            let r = c.root().and_then(|root| {
                root.remove_dir(&v)?;
                Ok((250, "Directory removed.".into()))
            });
            answer(&mut c, r);
        }
        Command::Rnfr(v) => {
            let r = c.root().and_then(|root| {
                if v == "/" {
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, "the root"));
                }
                root.symlink_metadata(&v)?;
                Ok((350, "Ready for RNTO.".into()))
            });
            if r.is_ok() {
                c.core.set_rename_from(&v);
            }
            answer(&mut c, r);
        }
        Command::Rnto(v) => {
            let from = c.core.take_rename_from().unwrap_or_default();
            let r = c.root().and_then(|root| {
                root.rename(&from, &v)?;
                Ok((250, "Renamed.".into()))
            });
            answer(&mut c, r);
        }
        Command::Pasv | Command::Epsv => {
            let extended = matches!(command, Command::Epsv);
            c.close_data();
            drop(c);
            open_passive(conn, extended);
        }
        Command::Port(addr) | Command::Eprt(addr) => {
            c.close_data();
            c.data.active = Some(addr);
            c.core.set_data_ready(true);
            c.core.reply(200, "Data connection target accepted.");
            c.core.done();
        }
        Command::List(v) | Command::Nlst(v) | Command::Mlsd(v) => {
            let kind = list_kind;
            let v = v.unwrap_or_else(|| c.core.cwd().to_owned());
            let writable = c.writable;
            let source = c.root().and_then(|root| {
                let meta = root.metadata(&v)?;
                let now = SystemTime::now();
                if meta.is_dir() {
                    Ok(ListSource {
                        entries: Some(root.read_dir(&v)?),
                        single: None,
                        kind,
                        writable,
                        now,
                    })
                } else if kind == ListKind::Facts {
                    Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"))
                } else {
                    let last = v.rsplit('/').next().unwrap_or_default();
                    let name = listable(std::ffi::OsStr::new(last)).unwrap_or_default();
                    Ok(ListSource {
                        entries: None,
                        single: Some(list_entry(kind, &name, &meta, writable, now).into_bytes()),
                        kind,
                        writable,
                        now,
                    })
                }
            });
            match source {
                Ok(s) => {
                    drop(c);
                    start_transfer(conn, Job::Send(Box::new(s)), "Here comes the listing.");
                }
                Err(e) => {
                    c.close_data();
                    answer(&mut c, Err(e));
                }
            }
        }
        Command::Retr(v) => {
            let rest = c.core.take_rest();
            let opened = c.root().and_then(|root| {
                let mut f = root.open_read(&v)?;
                if !f.metadata()?.is_file() {
                    return Err(io::Error::new(io::ErrorKind::IsADirectory, "not a file"));
                }
                if rest > 0 {
                    f.seek(SeekFrom::Start(rest))?;
                }
                Ok(f)
            });
            match opened {
                Ok(file) => {
                    drop(c);
                    let source = FileSource {
                        file,
                        buf: Vec::new(),
                    };
                    start_transfer(
                        conn,
                        Job::Send(Box::new(source)),
                        "Opening data connection.",
                    );
                }
                Err(e) => {
                    c.close_data();
                    answer(&mut c, Err(e));
                }
            }
        }
        Command::Stor(v) | Command::Appe(v) => {
            let append = is_append;
            let rest = c.core.take_rest();
            let opened = c.root().and_then(|root| {
                let mode = if append {
                    WriteMode::Append
                } else if rest > 0 {
                    WriteMode::Keep
                } else {
                    WriteMode::Truncate
                };
                let mut f = root.open_write(&v, mode)?;
                if rest > 0 && !append {
                    f.set_len(rest)?;
                    f.seek(SeekFrom::Start(rest))?;
                }
                Ok(f)
            });
            match opened {
                Ok(file) => {
                    drop(c);
                    start_transfer(conn, Job::Receive(file), "Ready to receive.");
                }
                Err(e) => {
                    c.close_data();
                    answer(&mut c, Err(e));
                }
            }
        }
        other => {
            tracing::debug!("FTP: unexpected command from the core: {other:?}");
            c.core.reply(502, "Command not implemented.");
            c.core.done();
        }
    }
}

/// Opens a passive port for the next transfer and answers 227 or 229.
fn open_passive(conn: &Rc<RefCell<Conn>>, extended: bool) {
    let (host, range) = {
        let c = conn.borrow();
        let host = c.control.as_ref().and_then(|t| t.get_host().socket_addr());
        (host, c.shared.passive_ports)
    };
    let Some(host) = host else {
        let mut c = conn.borrow_mut();
        c.core.reply(425, "Cannot open a passive port here.");
        c.core.done();
        return;
    };
    let interface = host.ip().to_string();
    let factory = DataFactory {
        conn: Rc::downgrade(conn),
    };
    let ports: Vec<u16> = match range {
        None => vec![0],
        Some((a, b)) => {
            // Start somewhere in the range, so connections do not all race for its first port.
            let span = u32::from(b - a) + 1;
            let start = (std::process::id() ^ reactor().seconds().to_bits() as u32) % span;
            (0..span).map(|i| a + ((start + i) % span) as u16).collect()
        }
    };
    let mut listener = None;
    for p in ports {
        if let Ok(l) = reactor().listen_tcp_on(p, factory.clone(), &interface) {
            listener = Some(l);
            break;
        }
    }
    let mut c = conn.borrow_mut();
    match listener {
        Some(l) => {
            let port = l.get_host().port().unwrap_or(0);
            c.data.listener = Some(l);
            c.core.set_data_ready(true);
            if extended {
                c.core
                    .reply(229, &format!("Entering Extended Passive Mode (|||{port}|)"));
            } else {
                c.core.reply(
                    227,
                    &crate::command::format_pasv(SocketAddr::new(host.ip(), port)),
                );
            }
        }
        None => c.core.reply(425, "No passive port free; try again later."),
    }
    c.core.done();
}

/// A transfer's file or listing is ready: 150, then the data connection does the rest.
fn start_transfer(conn: &Rc<RefCell<Conn>>, job: Job, text: &str) {
    let mut c = conn.borrow_mut();
    c.core.reply(150, text);
    c.core.transfer_started();
    c.flush();
    c.data.job = Some(job);
    c.data.running = true;
    c.data.sent_all = false;
    c.data.moved = 0;
    c.data.failed = None;
    if let Some(t) = c.data.transport.clone() {
        drop(c);
        begin(conn, &t);
        return;
    }
    let timeout = c.shared.data_timeout;
    let weak = Rc::downgrade(conn);
    let wait = c.shared.clock.call_later_boxed(
        timeout.as_secs_f64(),
        Box::new(move || {
            let Some(conn) = weak.upgrade() else { return };
            let mut c = conn.borrow_mut();
            if c.data.transport.is_none() && c.data.running {
                tracing::info!("FTP: the data connection was not opened in time");
                c.data.wait = None;
                c.close_data();
                c.core.reply(425, "Can't open data connection.");
                c.core.done();
                drop(c);
                pump(&conn);
            }
        }),
    );
    c.data.wait = Some(wait);
    if let Some(addr) = c.data.active {
        let factory = DataFactory {
            conn: Rc::downgrade(conn),
        };
        drop(c);
        drop(reactor().connect_tcp_timeout(
            &addr.ip().to_string(),
            addr.port(),
            factory,
            timeout.as_secs_f64(),
        ));
    }
}

/// The data connection and the transfer are both there: go.
fn begin(conn: &Rc<RefCell<Conn>>, t: &Transport) {
    let mut c = conn.borrow_mut();
    if let Some(w) = c.data.wait.take() {
        let _ = w.cancel();
    }
    // Reading was paused until the transfer was known; TLS's handshake and the peer's
    // close need it on either way.
    t.resume_producing();
    match &c.data.job {
        Some(Job::Send(_)) => {
            let producer = Rc::new(Sender {
                conn: Rc::downgrade(conn),
                t: t.clone(),
            });
            drop(c);
            if let Err(e) = t.register_producer(producer, false) {
                tracing::debug!("FTP: cannot send on the data connection: {e}");
                t.abort_connection();
            }
        }
        Some(Job::Receive(_)) | None => {}
    }
}

/// The pull producer of a download or listing.
struct Sender {
    conn: Weak<RefCell<Conn>>,
    t: Transport,
}

impl Producer for Sender {
    fn resume_producing(&self) {
        let Some(conn) = self.conn.upgrade() else {
            self.t.unregister_producer();
            return;
        };
        let Ok(mut c) = conn.try_borrow_mut() else {
            return;
        };
        let chunk = match c.data.job.as_mut() {
            Some(Job::Send(s)) => s.next_chunk(),
            _ => Ok(Vec::new()),
        };
        match chunk {
            Ok(bytes) if !bytes.is_empty() => {
                c.data.moved += bytes.len() as u64;
                self.t.write(&bytes);
            }
            Ok(_) => {
                c.data.sent_all = true;
                self.t.unregister_producer();
                self.t.lose_connection();
            }
            Err(e) => {
                tracing::warn!("FTP: reading a file to send failed: {e}");
                c.data.failed = Some(Reply::new(451, "Reading the file failed."));
                self.t.unregister_producer();
                self.t.abort_connection();
            }
        }
    }

    fn stop_producing(&self) {}
}

/// Makes the one data connection of a passive port (or an active one).
#[derive(Clone)]
struct DataFactory {
    conn: Weak<RefCell<Conn>>,
}

impl Factory for DataFactory {
    type Protocol = DataProtocol;

    fn build_protocol(&self, _addr: &PeerAddress) -> Option<DataProtocol> {
        Some(DataProtocol {
            conn: self.conn.clone(),
            idle: Rc::new(IdleTimeout::new()),
            accepted: false,
            peer_done: false,
        })
    }
}

impl torsion::ClientFactory for DataFactory {
    fn client_connection_failed(&self, _connector: &torsion::tcp::Connector, reason: Failure) {
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        let mut c = conn.borrow_mut();
        tracing::info!("FTP: active data connection failed: {reason}");
        if c.data.running {
            c.close_data();
            c.core.reply(425, "Can't open data connection.");
            c.core.done();
            drop(c);
            pump(&conn);
        }
    }
}

/// One data connection.
struct DataProtocol {
    conn: Weak<RefCell<Conn>>,
    idle: Rc<IdleTimeout>,
    accepted: bool,
    /// The peer ended its side cleanly (end of stream, or TLS close_notify).
    peer_done: bool,
}

impl Protocol for DataProtocol {
    fn connection_made(&mut self, t: &Transport) {
        let Some(conn) = self.conn.upgrade() else {
            t.abort_connection();
            return;
        };
        let mut c = conn.borrow_mut();
        // One connection per port, and only from the control connection's peer.
        let peer_ip = t.get_peer().socket_addr().map(|a| a.ip());
        let control_ip = c.peer.map(|a| a.ip());
        let same = match (peer_ip, control_ip) {
            (Some(a), Some(b)) => {
                let norm = |ip: std::net::IpAddr| match ip {
                    std::net::IpAddr::V6(v6) => {
                        v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip)
                    }
                    v4 => v4,
                };
                norm(a) == norm(b)
            }
            _ => false,
        };
        if !same || c.data.transport.is_some() {
            tracing::warn!("FTP: data connection from {} refused", t.get_peer());
            t.abort_connection();
            return;
        }
        if let Some(l) = c.data.listener.take() {
            drop(l.stop_listening());
        }
        if c.core.prot_private() {
            if let Some(ctx) = c.shared.data_tls.clone() {
                if let Err(e) = t.start_tls(ctx.into()) {
                    tracing::error!("FTP: TLS on the data connection failed: {e}");
                    t.abort_connection();
                    return;
                }
            }
        }
        self.accepted = true;
        c.data.transport = Some(t.clone());
        let period = c.shared.data_timeout.as_secs_f64();
        self.idle.set_clock(c.shared.clock.clone());
        let tt = t.clone();
        self.idle.set_timeout_connection(move || {
            tracing::info!("FTP: data connection idle; dropping it");
            tt.abort_connection();
        });
        self.idle.set_timeout(Some(period));
        let ready = c.data.job.is_some();
        drop(c);
        if ready {
            begin(&conn, t);
        } else {
            // Nothing to receive until STOR says where it goes.
            t.pause_producing();
        }
        // A sender's progress keeps the connection alive too.
        let idle = self.idle.clone();
        let conn2 = Rc::downgrade(&conn);
        track_progress(idle, conn2, period);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.idle.reset_timeout();
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        let mut c = conn.borrow_mut();
        let written = match c.data.job.as_mut() {
            Some(Job::Receive(f)) => f.write_all(data),
            _ => return,
        };
        match written {
            Ok(()) => c.data.moved += data.len() as u64,
            Err(e) => {
                tracing::warn!("FTP: writing a received file failed: {e}");
                c.data.failed = Some(Reply::new(452, "Writing the file failed."));
                c.data.job = None;
                t.abort_connection();
            }
        }
    }

    fn read_connection_lost(&mut self, t: &Transport) {
        self.peer_done = true;
        t.lose_connection();
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.idle.set_timeout(None);
        if !self.accepted {
            return;
        }
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        let Ok(mut c) = conn.try_borrow_mut() else {
            return;
        };
        tracing::debug!("FTP: data connection ended: {reason:?}");
        let clean = matches!(reason, ConnectionEnd::Done) || self.peer_done;
        let job = c.data.job.take();
        let failed = c.data.failed.take();
        let reply = match (job, failed) {
            (_, Some(r)) => r,
            (Some(Job::Receive(f)), None) => match f.sync_all() {
                Ok(()) if clean => Reply::new(226, "Transfer complete."),
                Ok(()) => Reply::new(426, "Connection closed; transfer aborted."),
                Err(_) => Reply::new(452, "Writing the file failed."),
            },
            (_, None) if c.data.sent_all && clean => Reply::new(226, "Transfer complete."),
            (None, None) if !c.data.running => {
                // Closed before any transfer used it.
                c.data.transport = None;
                return;
            }
            _ => Reply::new(426, "Connection closed; transfer aborted."),
        };
        c.data.transport = None;
        let was_running = std::mem::take(&mut c.data.running);
        c.close_data();
        if was_running {
            c.core.send(&reply);
            c.core.done();
        }
        drop(c);
        pump(&conn);
    }
}

/// Resets a data connection's idle timer while the bytes it sends move: a pull producer's
/// chunks are taken only as the peer reads, so a peer that stops reading stops the resets.
fn track_progress(idle: Rc<IdleTimeout>, conn: Weak<RefCell<Conn>>, period: f64) {
    let Some(c) = conn.upgrade() else { return };
    let (moved, clock) = match c.try_borrow() {
        Ok(c) if c.data.transport.is_some() => (c.data.moved, c.shared.clock.clone()),
        _ => return,
    };
    drop(c);
    let step = (period / 4.0).max(0.05);
    drop(clock.call_later_boxed(
        step,
        Box::new(move || {
            let now = conn
                .upgrade()
                .and_then(|c| c.try_borrow().ok().map(|c| c.data.moved));
            if let Some(now) = now {
                if now != moved {
                    idle.reset_timeout();
                }
                track_progress(idle, conn, period);
            }
        }),
    ));
}

impl Protocol for Ftp {
    fn connection_made(&mut self, t: &Transport) {
        let mut c = self.conn.borrow_mut();
        c.control = Some(t.clone());
        c.peer = t.get_peer().socket_addr();
        if let Some(ip) = c.peer.map(|a| a.ip()) {
            c.core.set_peer(ip);
        }
        c.flush();
        if let Some(period) = c.shared.timeout {
            self.idle.set_clock(c.shared.clock.clone());
            let weak = Rc::downgrade(&self.conn);
            let idle = Rc::downgrade(&self.idle);
            let period = period.as_secs_f64();
            self.idle
                .set_timeout_connection(move || timed_out(&weak, &idle, period));
            self.idle.set_timeout(Some(period));
        }
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.idle.reset_timeout();
        self.conn.borrow_mut().core.receive(data);
        pump(&self.conn);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.idle.set_timeout(None);
        let mut c = self.conn.borrow_mut();
        c.control = None;
        c.close_data();
        c.login = None;
    }
}

/// The control connection's idle timeout fired: 421 and close, unless a transfer runs
/// (then the timer is armed again: it must still count once the transfer ends).
fn timed_out(conn: &Weak<RefCell<Conn>>, idle: &Weak<IdleTimeout>, period: f64) {
    let Some(conn) = conn.upgrade() else { return };
    let again = || {
        if let Some(idle) = idle.upgrade() {
            idle.set_timeout(Some(period));
        }
    };
    let Ok(mut c) = conn.try_borrow_mut() else {
        // Busy right now (not expected from a timer): look again a period later.
        again();
        return;
    };
    if c.data.running {
        // The data connection has its own timeout.
        again();
        return;
    }
    tracing::info!(
        "FTP: {} idle; closing with 421",
        c.peer.map(|p| p.to_string()).unwrap_or_default()
    );
    c.core.timed_out();
    c.flush();
    c.close_data();
    if let Some(t) = c.control.clone() {
        t.lose_connection();
    }
}
