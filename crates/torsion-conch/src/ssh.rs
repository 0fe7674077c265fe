//! An SSH server on the reactor (Twisted's `twisted.conch.ssh` server side with
//! `conch.unix`'s sessions): password and public-key logins through a cred [`Portal`], and
//! session channels whose `exec` and `shell` requests are served by a Torsion [`Protocol`].
//!
//! The SSH protocol itself (key exchange, ciphers, packets, channels' windows) is russh's.
//! How russh, which wants `Send` handlers, meets protocols that live on the reactor thread is
//! in docs/design.md, "Conch": russh's session runs as a task of the reactor's own tokio
//! runtime, its handler is a `Send` shell holding a connection number, and each callback
//! finds the connection's reactor-side state in a table of the thread's.
//!
//! Also, each off unless asked for: an SFTP subsystem serving one folder
//! ([`SshServer::sftp_root`], see [`crate::sftp`]), and `direct-tcpip` forwarding to the
//! destinations a [`ForwardPolicy`] permits ([`SshServer::allow_direct_tcpip`]). A channel's
//! transport does flow control both ways: `pause_producing` holds the client's data (up to
//! [`SshOptions::max_held_per_channel`], then the connection stops reading), and a producer
//! registered on it is paused while russh cannot send.
//!
//! ```no_run
//! use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
//! use torsion::{reactor, Protocol};
//! use torsion_conch::keys::{AuthorizedKeysChecker, SshPublicKey};
//! use torsion_conch::ssh::{HostKey, SessionRequest, SshRealm, SshServer};
//! use torsion_cred::Portal;
//!
//! /// Sends every line back, over an SSH channel as over TCP.
//! struct Echo;
//!
//! impl LineReceiver for Echo {
//!     fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
//!         t.send_line(line);
//!     }
//! }
//!
//! let portal = Portal::new(SshRealm);
//! portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file("authorized_keys", &[]));
//! let host_key = HostKey::load_or_generate("ssh_host_ed25519_key").unwrap();
//! // Every exec and shell channel gets the line echo.
//! let server = SshServer::new(portal, vec![host_key], |_req: &SessionRequest| {
//!     Some(Box::new(Lines::new(Echo)) as Box<dyn Protocol>)
//! });
//! let port = server.listen("127.0.0.1:2222".parse().unwrap()).unwrap();
//! println!("listening on {}", port.local_addr());
//! reactor().run().unwrap();
//! ```
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey};
use russh::server::{Auth, Handle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::sync::{mpsc, oneshot};
use torsion::defer::{succeed, Deferred};
use torsion::error::CannotListenError;
use torsion::producer::{Producer, ProducerError, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};
use torsion::reactor::DelayedCall;
use torsion::transport::{Address, Transport, TransportImpl};
use torsion::{reactor, ConnectionEnd, Protocol};
use torsion_cred::{AvatarId, Login, Logout, Portal, Realm, UsernamePassword};

use crate::keys::SshPublicKey;
use crate::sftp::SftpServer;

/// The avatar an SSH login gets: who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAvatar {
    /// The user name the checker proved.
    pub user: String,
}

/// A realm that gives every user the [`SshAvatar`] of their name.
#[derive(Debug, Clone, Copy, Default)]
pub struct SshRealm;

impl Realm<SshAvatar> for SshRealm {
    fn request_avatar(&self, id: &AvatarId, _mind: ()) -> Deferred<(SshAvatar, Logout)> {
        let user = id.user().unwrap_or("anonymous").to_owned();
        succeed((SshAvatar { user }, Logout::none()))
    }
}

/// A host key: loaded from an OpenSSH private key file, or made.
pub struct HostKey(PrivateKey);

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKey({})", self.fingerprint())
    }
}

impl HostKey {
    /// Loads an unencrypted OpenSSH private key file (`ssh-keygen`'s format).
    pub fn load(path: impl AsRef<Path>) -> io::Result<HostKey> {
        crate::openssh_key::load(path.as_ref(), None)
            .map(HostKey)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("host key {}: {e}", path.as_ref().display()),
                )
            })
    }

    /// A new Ed25519 key, kept in memory only.
    pub fn generate() -> HostKey {
        HostKey(
            PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
                .expect("Ed25519 key generation does not fail"),
        )
    }

    /// Loads the key at `path`; if there is no file there, makes an Ed25519 key, writes it
    /// there (mode 0600, OpenSSH format) and logs that it did, with its fingerprint.
    pub fn load_or_generate(path: impl AsRef<Path>) -> io::Result<HostKey> {
        let path = path.as_ref();
        if path.exists() {
            return HostKey::load(path);
        }
        let key = HostKey::generate();
        let text = key
            .0
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .map_err(|e| io::Error::other(e.to_string()))?;
        write_private(path, text.as_bytes())?;
        tracing::warn!(
            "no SSH host key at {}: generated a new Ed25519 host key there, fingerprint {}",
            path.display(),
            key.fingerprint()
        );
        Ok(key)
    }

    /// The SHA-256 fingerprint, as `ssh-keygen -l` shows it (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        self.0
            .public_key()
            .fingerprint(russh::keys::HashAlg::Sha256)
            .to_string()
    }

    /// The public half, as an OpenSSH line (`ssh-ed25519 AAAA...`), for a known_hosts file.
    pub fn public_openssh(&self) -> String {
        self.0.public_key().to_openssh().unwrap_or_default()
    }
}

fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// A session channel's terminal, from the client's `pty-req`, kept up to date by
/// `window-change`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyInfo {
    /// The terminal type (`TERM`), such as `xterm-256color`.
    pub term: String,
    /// Width in characters.
    pub cols: u32,
    /// Height in rows.
    pub rows: u32,
}

/// What the client asked a session channel to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    /// `exec`: a command line.
    Exec(Vec<u8>),
    /// `shell`: an interactive shell.
    Shell,
}

/// The exit status a session's protocol reports: set it, then
/// [`lose_connection`](Transport::lose_connection), and the client gets `exit-status`
/// before the channel closes (what `ssh host cmd` exits with). A protocol that closes its
/// channel without setting one reports 0.
#[derive(Debug, Clone, Default)]
pub struct ExitStatus(Rc<Cell<Option<u32>>>);

impl ExitStatus {
    /// Sets the status sent when the channel closes.
    pub fn set(&self, code: u32) {
        self.0.set(Some(code));
    }

    /// The status set, if any.
    pub fn get(&self) -> Option<u32> {
        self.0.get()
    }
}

/// A session channel's request, handed to the server's factory: who, what, and the
/// channel's terminal and environment.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The logged-in user.
    pub user: String,
    /// `exec` or `shell`.
    pub kind: SessionKind,
    /// The environment the client sent (`env` requests), in order.
    pub env: Vec<(String, String)>,
    /// Where the protocol sets its exit status.
    pub exit: ExitStatus,
    pty: Rc<RefCell<Option<PtyInfo>>>,
}

impl SessionRequest {
    /// The terminal, if the client asked for one; its size follows `window-change`.
    pub fn pty(&self) -> Option<PtyInfo> {
        self.pty.borrow().clone()
    }
}

/// Makes the protocol serving a session channel; `None` refuses the request.
pub trait SessionFactory: 'static {
    /// The protocol for `request`.
    fn build(&self, request: &SessionRequest) -> Option<Box<dyn Protocol>>;
}

impl<F: Fn(&SessionRequest) -> Option<Box<dyn Protocol>> + 'static> SessionFactory for F {
    fn build(&self, request: &SessionRequest) -> Option<Box<dyn Protocol>> {
        self(request)
    }
}

/// Limits and time-outs of an [`SshServer`]; `Default` gives OpenSSH's spirit.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Authentication attempts per connection before it is closed (OpenSSH's `MaxAuthTries`, 6).
    pub max_auth_attempts: usize,
    /// Time from accept to a successful login, key exchange included, before the connection
    /// is closed (OpenSSH's `LoginGraceTime`; 120 s).
    pub login_grace_time: Duration,
    /// Every refused login takes this long, whatever refused it (russh's
    /// `auth_rejection_time`; 1 s), so no timing tells an unknown user from a wrong key.
    pub rejection_time: Duration,
    /// Session channels open at once per connection (OpenSSH's `MaxSessions`, 10).
    pub max_channels: usize,
    /// Largest channel packet accepted and sent (32 KiB).
    pub max_packet_size: u32,
    /// Connections at once, authenticated or not; more are closed at accept (OpenSSH's
    /// `MaxStartups`, as a hard limit; 100).
    pub max_connections: usize,
    /// A connection silent this long is closed (10 minutes).
    pub inactivity_timeout: Duration,
    /// Bytes a channel whose protocol paused reading
    /// ([`pause_producing`](torsion::transport::TransportImpl::pause_producing)) holds for
    /// it; past this the whole connection stops reading until the channel resumes, so the
    /// client is held back by TCP (256 KiB). russh tops up every channel's window as data
    /// arrives, so a single channel cannot be held back on its own.
    pub max_held_per_channel: usize,
}

impl Default for SshOptions {
    fn default() -> SshOptions {
        SshOptions {
            max_auth_attempts: 6,
            login_grace_time: Duration::from_secs(120),
            rejection_time: Duration::from_secs(1),
            max_channels: 10,
            max_packet_size: 32768,
            max_connections: 100,
            inactivity_timeout: Duration::from_secs(600),
            max_held_per_channel: 256 * 1024,
        }
    }
}

/// What a login attempt hands the portal.
enum Cred {
    Password(UsernamePassword),
    Key(SshPublicKey),
}

type LoginFn = dyn Fn(Cred) -> Deferred<Login<SshAvatar>>;

struct Shared {
    login: Rc<LoginFn>,
    factory: Box<dyn SessionFactory>,
    options: SshOptions,
    config: Arc<russh::server::Config>,
    connections: Cell<usize>,
    sftp: RefCell<Option<SftpServer>>,
    forward: RefCell<Option<ForwardPolicy>>,
}

/// An SSH server (Twisted's `SSHFactory` with a portal): host keys, a portal, and a
/// [`SessionFactory`] for session channels.
#[derive(Clone)]
pub struct SshServer {
    shared: Rc<Shared>,
}

impl SshServer {
    /// A server logging users in through `portal` (password logins if it has a checker for
    /// [`UsernamePassword`], key logins if it has one for [`SshPublicKey`]), with default
    /// [`SshOptions`].
    pub fn new<R: Realm<SshAvatar> + 'static>(
        portal: Portal<R>,
        host_keys: Vec<HostKey>,
        factory: impl SessionFactory,
    ) -> SshServer {
        SshServer::with_options(portal, host_keys, factory, SshOptions::default())
    }

    /// [`new`](Self::new) with `options`.
    pub fn with_options<R: Realm<SshAvatar> + 'static>(
        portal: Portal<R>,
        host_keys: Vec<HostKey>,
        factory: impl SessionFactory,
        options: SshOptions,
    ) -> SshServer {
        let mut methods = MethodSet::empty();
        if portal.handles::<UsernamePassword>() {
            methods.push(MethodKind::Password);
        }
        if portal.handles::<SshPublicKey>() {
            methods.push(MethodKind::PublicKey);
        }
        let config = russh::server::Config {
            server_id: russh::SshId::Standard(
                concat!("SSH-2.0-Torsion_", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods,
            auth_rejection_time: options.rejection_time,
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: host_keys.into_iter().map(|k| k.0).collect(),
            max_auth_attempts: options.max_auth_attempts,
            maximum_packet_size: options.max_packet_size,
            inactivity_timeout: Some(options.inactivity_timeout),
            nodelay: true,
            ..Default::default()
        };
        let login: Rc<LoginFn> = Rc::new(move |cred| match cred {
            Cred::Password(c) => portal.login(c, ()),
            Cred::Key(c) => portal.login(c, ()),
        });
        SshServer {
            shared: Rc::new(Shared {
                login,
                factory: Box::new(factory),
                options,
                config: Arc::new(config),
                connections: Cell::new(0),
                sftp: RefCell::new(None),
                forward: RefCell::new(None),
            }),
        }
    }

    /// Listens on `addr` (port 0 for any free port) and serves every connection on the
    /// current reactor until [`SshPort::stop_listening`] or the reactor stops.
    pub fn listen(&self, addr: SocketAddr) -> Result<SshPort, CannotListenError> {
        let listener =
            StdListener::bind(addr).map_err(|e| CannotListenError::new(addr.to_string(), e))?;
        self.listen_on(listener)
            .map_err(|e| CannotListenError::new(addr.to_string(), e))
    }

    /// Serves connections accepted from `listener`, a socket already bound (a program that
    /// binds before it reads its keys, or a socket handed over by systemd).
    pub fn listen_on(&self, listener: StdListener) -> io::Result<SshPort> {
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let shared = self.shared.clone();
        reactor()
            .spawn(accept_loop(shared, listener, stop_rx))
            .add_callback(|r| {
                if let Err(e) = r {
                    tracing::warn!("SSH accept loop ended: {e}");
                }
            });
        Ok(SshPort {
            addr: local,
            stop: RefCell::new(Some(stop_tx)),
        })
    }

    /// Serves the folder `dir` over SFTP (the `sftp` subsystem, read and write, nothing
    /// outside it; see [`crate::sftp`]) to every logged-in user. Off unless set: without it
    /// the subsystem is refused.
    pub fn sftp_root(self, dir: impl AsRef<Path>) -> io::Result<SshServer> {
        Ok(self.sftp(SftpServer::new(dir)?))
    }

    /// Serves SFTP with `server` (its own folder and limits); see [`sftp_root`](Self::sftp_root).
    pub fn sftp(self, server: SftpServer) -> SshServer {
        *self.shared.sftp.borrow_mut() = Some(server);
        self
    }

    /// Lets logged-in users open `direct-tcpip` channels (`ssh -L`, `ssh -W`) to the
    /// destinations `policy` permits; the server connects with the reactor's TCP client and
    /// relays both ways with flow control. Off unless set: every such channel is refused
    /// (administratively prohibited).
    pub fn allow_direct_tcpip(self, policy: ForwardPolicy) -> SshServer {
        *self.shared.forward.borrow_mut() = Some(policy);
        self
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections.get()
    }
}

/// Where `direct-tcpip` channels may lead (OpenSSH's `PermitOpen`): a list of
/// `host:port` patterns, either side `*` for any. The host is compared with what the client
/// asked for, as text (case aside): `localhost:80` does not permit `127.0.0.1:80`.
///
/// ```
/// use torsion_conch::ssh::ForwardPolicy;
///
/// let p = ForwardPolicy::parse(&["127.0.0.1:8080", "db.internal:*", "[::1]:22"]).unwrap();
/// assert!(p.permits("127.0.0.1", 8080));
/// assert!(!p.permits("127.0.0.1", 8081));
/// assert!(p.permits("DB.internal", 5432));
/// assert!(p.permits("::1", 22));
/// assert!(ForwardPolicy::parse(&["no-port"]).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ForwardPolicy {
    allowed: Vec<(Option<String>, Option<u16>)>,
}

impl ForwardPolicy {
    /// The policy permitting `patterns` (`host:port`, `[v6]:port`, `*` for any host or
    /// port); an error names the first pattern that does not parse.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<ForwardPolicy, String> {
        let mut allowed = Vec::new();
        for pat in patterns {
            let pat = pat.as_ref();
            let bad = || format!("forwarding pattern {pat:?} is not host:port");
            let (host, port) = pat.rsplit_once(':').ok_or_else(bad)?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(bad());
            }
            let port = match port {
                "*" => None,
                p => Some(p.parse::<u16>().map_err(|_| bad())?),
            };
            let host = (host != "*").then(|| host.to_ascii_lowercase());
            allowed.push((host, port));
        }
        Ok(ForwardPolicy { allowed })
    }

    /// Whether `host:port` may be reached.
    pub fn permits(&self, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|(h, p)| {
            h.as_ref().is_none_or(|h| h.eq_ignore_ascii_case(host)) && p.is_none_or(|p| p == port)
        })
    }
}

/// A listening SSH server's port.
#[derive(Debug)]
pub struct SshPort {
    addr: SocketAddr,
    stop: RefCell<Option<oneshot::Sender<()>>>,
}

impl SshPort {
    /// The address listened on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; open connections go on.
    pub fn stop_listening(&self) {
        self.stop.borrow_mut().take();
    }
}

async fn accept_loop(
    shared: Rc<Shared>,
    listener: StdListener,
    mut stop: oneshot::Receiver<()>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let accepted = std::future::poll_fn(|cx| {
            if std::pin::Pin::new(&mut stop).poll(cx).is_ready() {
                return std::task::Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        let Some(accepted) = accepted else {
            return Ok(());
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("SSH accept failed: {e}");
                continue;
            }
        };
        if shared.connections.get() >= shared.options.max_connections {
            tracing::warn!(
                "SSH connection from {peer} refused: {} open",
                shared.connections.get()
            );
            continue;
        }
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(_) => continue,
        };
        reactor().spawn(serve_connection(shared.clone(), std, peer));
    }
}

/// A message for the task that writes a connection's channel output through russh.
enum Out {
    Data(ChannelId, bytes::Bytes, Rc<Flow>),
    /// Closes the channel; a session channel sends its exit status first.
    Finish(ChannelId, Option<u32>),
}

/// A session channel on the reactor side.
struct Chan {
    request: SessionRequest,
    transport: Option<Transport>,
    protocol: Option<Box<dyn Protocol>>,
    flow: Rc<Flow>,
}

/// A channel's flow control, both ways.
///
/// In: while the protocol has paused its transport, data is held here and handed over on
/// resume, in order, EOF after it; past `max_held` the connection's `data` callback waits
/// (russh reads nothing more from the socket) until the held data drains to half.
///
/// Out: bytes written and not yet taken by russh (whose own queue is bounded: it stops
/// taking once the peer's window is used up) are counted; a registered streaming producer
/// is paused above the high watermark and resumed at the low one, as over TCP, and a pull
/// producer is asked for more when the count is back to zero.
struct Flow {
    paused: Cell<bool>,
    held: RefCell<std::collections::VecDeque<Vec<u8>>>,
    held_bytes: Cell<usize>,
    max_held: usize,
    eof_held: Cell<bool>,
    /// The connection's `data` callback is waiting for the held data to drain.
    blocked: Cell<bool>,
    wake: Arc<tokio::sync::Notify>,
    delivery_scheduled: Cell<bool>,
    queued: Cell<usize>,
    producer: RefCell<Option<Rc<dyn Producer>>>,
    streaming: Cell<bool>,
    producer_paused: Cell<bool>,
    high: Cell<usize>,
    low: Cell<usize>,
}

impl Flow {
    fn new(max_held: usize) -> Flow {
        Flow {
            paused: Cell::new(false),
            held: RefCell::new(std::collections::VecDeque::new()),
            held_bytes: Cell::new(0),
            max_held,
            eof_held: Cell::new(false),
            blocked: Cell::new(false),
            wake: Arc::new(tokio::sync::Notify::new()),
            delivery_scheduled: Cell::new(false),
            queued: Cell::new(0),
            producer: RefCell::new(None),
            streaming: Cell::new(false),
            producer_paused: Cell::new(false),
            high: Cell::new(DEFAULT_HIGH_WATER),
            low: Cell::new(DEFAULT_LOW_WATER),
        }
    }

    /// Whether data must be held rather than delivered now.
    fn holding(&self) -> bool {
        self.paused.get() || !self.held.borrow().is_empty()
    }

    /// Holds `data`; returns the waker to wait on when past the limit.
    fn hold(&self, data: &[u8]) -> Option<Arc<tokio::sync::Notify>> {
        self.held.borrow_mut().push_back(data.to_vec());
        self.held_bytes.set(self.held_bytes.get() + data.len());
        if self.held_bytes.get() > self.max_held && !self.blocked.replace(true) {
            return Some(self.wake.clone());
        }
        None
    }

    fn take_held(&self) -> Option<Vec<u8>> {
        let chunk = self.held.borrow_mut().pop_front()?;
        self.held_bytes
            .set(self.held_bytes.get().saturating_sub(chunk.len()));
        if self.blocked.get() && self.held_bytes.get() <= self.max_held / 2 {
            self.blocked.set(false);
            self.wake.notify_one();
        }
        Some(chunk)
    }

    /// Drops what is held (the channel is closing) and lets the connection read again.
    fn release(&self) {
        self.held.borrow_mut().clear();
        self.held_bytes.set(0);
        self.eof_held.set(false);
        if self.blocked.replace(false) {
            self.wake.notify_one();
        }
    }

    fn wrote(&self, n: usize) {
        self.queued.set(self.queued.get() + n);
        if self.streaming.get()
            && !self.producer_paused.get()
            && self.queued.get() > self.high.get()
        {
            let p = self.producer.borrow().clone();
            if let Some(p) = p {
                self.producer_paused.set(true);
                p.pause_producing();
            }
        }
    }

    fn sent(&self, n: usize) {
        self.queued.set(self.queued.get().saturating_sub(n));
        let p = self.producer.borrow().clone();
        let Some(p) = p else { return };
        if self.streaming.get() {
            if self.producer_paused.get() && self.queued.get() <= self.low.get() {
                self.producer_paused.set(false);
                p.resume_producing();
            }
        } else if self.queued.get() == 0 {
            p.resume_producing();
        }
    }

    fn stop_producer(&self) {
        let p = self.producer.borrow_mut().take();
        if let Some(p) = p {
            p.stop_producing();
        }
    }
}

/// Hands a resumed channel's held data to its protocol, then a held EOF.
fn deliver_held(id: u64, ch: ChannelId, flow: Rc<Flow>) {
    flow.delivery_scheduled.set(false);
    while !flow.paused.get() {
        let Some(chunk) = flow.take_held() else { break };
        with_protocol(id, ch, |p, t| {
            if !t.disconnecting() {
                p.data_received(t, &chunk)
            }
        });
    }
    if !flow.paused.get() && flow.held.borrow().is_empty() && flow.eof_held.replace(false) {
        with_protocol(id, ch, |p, t| p.read_connection_lost(t));
    }
}

/// A connection's reactor-side state, found by its number from the `Send` handler.
struct Conn {
    shared: Rc<Shared>,
    peer: SocketAddr,
    host: SocketAddr,
    out: mpsc::UnboundedSender<Out>,
    logins: Vec<Login<SshAvatar>>,
    user: Option<String>,
    channels: HashMap<ChannelId, Chan>,
    grace: Option<DelayedCall>,
}

thread_local! {
    static CONNS: RefCell<HashMap<u64, Rc<RefCell<Conn>>>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

fn conn(id: u64) -> Option<Rc<RefCell<Conn>>> {
    CONNS.with(|c| c.borrow().get(&id).cloned())
}

async fn serve_connection(shared: Rc<Shared>, std: StdStream, peer: SocketAddr) {
    let id = NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    let host = std.local_addr().unwrap_or(peer);
    let killer = std.try_clone().ok();
    let grace = killer.map(|k| {
        reactor().call_later(shared.options.login_grace_time.as_secs_f64(), move || {
            tracing::info!("SSH connection from {peer}: no login within the grace time");
            let _ = k.shutdown(Shutdown::Both);
        })
    });
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let state = Rc::new(RefCell::new(Conn {
        shared: shared.clone(),
        peer,
        host,
        out: out_tx,
        logins: Vec::new(),
        user: None,
        channels: HashMap::new(),
        grace,
    }));
    CONNS.with(|c| c.borrow_mut().insert(id, state.clone()));
    shared.connections.set(shared.connections.get() + 1);

    let result = async {
        std.set_nonblocking(true)?;
        // russh sets TCP_NODELAY only on sockets its own accept loop took; without it a
        // small answer (an SFTP status, an echoed line) waits for the client's delayed ACK.
        std.set_nodelay(shared.config.nodelay)?;
        let stream = tokio::net::TcpStream::from_std(std)?;
        let running =
            russh::server::run_stream(shared.config.clone(), stream, Handler { id }).await?;
        reactor().spawn(pump(running.handle(), out_rx));
        running.await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!("SSH connection from {peer} ended: {e}");
    }

    shared.connections.set(shared.connections.get() - 1);
    CONNS.with(|c| c.borrow_mut().remove(&id));
    let (channels, logins, grace) = {
        let mut st = state.borrow_mut();
        (
            std::mem::take(&mut st.channels),
            std::mem::take(&mut st.logins),
            st.grace.take(),
        )
    };
    if let Some(g) = grace {
        let _ = g.cancel();
    }
    for (_, mut chan) in channels {
        chan.flow.release();
        chan.flow.stop_producer();
        if let Some(mut p) = chan.protocol.take() {
            p.connection_lost(ConnectionEnd::Aborted);
        }
    }
    drop(logins);
}

/// Sends what the reactor side wrote, in order, through russh's session handle.
async fn pump(handle: Handle, mut rx: mpsc::UnboundedReceiver<Out>) {
    while let Some(out) = rx.recv().await {
        let ok = match out {
            Out::Data(ch, data, flow) => {
                let n = data.len();
                let ok = handle.data(ch, data).await.is_ok();
                flow.sent(n);
                ok
            }
            Out::Finish(ch, code) => {
                if let Some(code) = code {
                    let _ = handle.exit_status_request(ch, code).await;
                }
                let _ = handle.eof(ch).await;
                handle.close(ch).await.is_ok()
            }
        };
        if !ok {
            return;
        }
    }
}

/// The transport a session channel's protocol gets.
struct ChannelTransport {
    conn: u64,
    flow: Rc<Flow>,
    channel: ChannelId,
    out: mpsc::UnboundedSender<Out>,
    exit: ExitStatus,
    /// A session channel (exec, shell, subsystem), which reports an exit status.
    session: bool,
    closing: Cell<bool>,
    peer: SocketAddr,
    host: SocketAddr,
}

impl TransportImpl for ChannelTransport {
    fn write(&self, data: &[u8]) {
        if !self.closing.get() && !data.is_empty() {
            let sent = self.out.send(Out::Data(
                self.channel,
                bytes::Bytes::copy_from_slice(data),
                self.flow.clone(),
            ));
            if sent.is_ok() {
                self.flow.wrote(data.len());
            }
        }
    }

    fn lose_connection(&self) {
        if !self.closing.replace(true) {
            // The close must reach russh: a connection waiting on this channel's held
            // data would never take it.
            self.flow.release();
            self.flow.stop_producer();
            let code = self.session.then(|| self.exit.get().unwrap_or(0));
            let _ = self.out.send(Out::Finish(self.channel, code));
        }
    }

    fn abort_connection(&self) {
        self.lose_connection();
    }

    fn get_peer(&self) -> Address {
        Address::Tcp(self.peer)
    }

    fn get_host(&self) -> Address {
        Address::Tcp(self.host)
    }

    fn disconnecting(&self) -> bool {
        self.closing.get()
    }

    fn buffered_size(&self) -> usize {
        self.flow.queued.get()
    }

    fn pause_producing(&self) {
        self.flow.paused.set(true);
    }

    fn resume_producing(&self) {
        let flow = &self.flow;
        if !flow.paused.replace(false) || flow.delivery_scheduled.replace(true) {
            return;
        }
        // Delivered from the reactor, not from inside the protocol's own call.
        let (id, ch, flow) = (self.conn, self.channel, flow.clone());
        reactor().call_later(0.0, move || deliver_held(id, ch, flow));
    }

    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.closing.get() {
            return Err(ProducerError::Disconnected);
        }
        let mut slot = self.flow.producer.borrow_mut();
        if slot.is_some() {
            return Err(ProducerError::AlreadyRegistered);
        }
        *slot = Some(producer.clone());
        self.flow.streaming.set(streaming);
        self.flow.producer_paused.set(false);
        drop(slot);
        if !streaming {
            // A pull producer is asked for its first chunk at once, as over TCP.
            reactor().call_later(0.0, move || producer.resume_producing());
        }
        Ok(())
    }

    fn unregister_producer(&self) {
        self.flow.producer.borrow_mut().take();
        self.flow.producer_paused.set(false);
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.flow.high.set(high);
        self.flow.low.set(low.min(high));
    }

    fn write_buffer_limits(&self) -> (usize, usize) {
        (self.flow.high.get(), self.flow.low.get())
    }
}

/// Calls `f` with a channel's protocol and transport, the connection's state unborrowed (the
/// protocol may write, close, or start other work).
fn with_protocol(id: u64, ch: ChannelId, f: impl FnOnce(&mut dyn Protocol, &Transport)) {
    let Some(state) = conn(id) else { return };
    let taken = {
        let mut st = state.borrow_mut();
        st.channels
            .get_mut(&ch)
            .and_then(|c| Some((c.protocol.take()?, c.transport.clone()?)))
    };
    let Some((mut protocol, transport)) = taken else {
        return;
    };
    f(&mut *protocol, &transport);
    let mut st = state.borrow_mut();
    if let Some(c) = st.channels.get_mut(&ch) {
        c.protocol = Some(protocol);
    }
}

/// Seconds a `direct-tcpip` channel waits for its TCP connection before it is refused.
const FORWARD_CONNECT_TIMEOUT: f64 = 10.0;

/// A `direct-tcpip` channel and its TCP connection: the channel is confirmed once the TCP
/// connection is made, refused if it fails. Each side is registered as the producer of
/// the other's writes, so a slow side pauses reading on the fast one.
struct Relay {
    conn: u64,
    ch: ChannelId,
    reply: RefCell<Option<russh::server::ChannelOpenHandle>>,
    tcp: RefCell<Option<Transport>>,
}

impl Relay {
    /// Confirms or refuses the channel now: russh's `accept` and `reject` only queue a
    /// message (on the session's priority queue), so one poll finishes them, and the
    /// confirmation is queued before any of the channel's data can be.
    fn answer(&self, why: Option<ChannelOpenFailure>) {
        if let Some(reply) = self.reply.borrow_mut().take() {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let done = match why {
                None => std::pin::pin!(reply.accept()).poll(&mut cx).is_ready(),
                Some(why) => std::pin::pin!(reply.reject(why)).poll(&mut cx).is_ready(),
            };
            debug_assert!(done, "russh's channel open reply awaits nothing");
        }
    }
}

struct RelayFactory(Rc<Relay>);

impl torsion::Factory for RelayFactory {
    type Protocol = TcpSide;

    fn build_protocol(&self, _addr: &Address) -> Option<TcpSide> {
        Some(TcpSide(self.0.clone()))
    }
}

impl torsion::ClientFactory for RelayFactory {
    fn client_connection_failed(&self, _c: &torsion::tcp::Connector, reason: torsion::Failure) {
        tracing::info!("SSH direct-tcpip: connecting failed: {reason}");
        if let Some(state) = conn(self.0.conn) {
            state.borrow_mut().channels.remove(&self.0.ch);
        }
        self.0.answer(Some(ChannelOpenFailure::ConnectFailed));
    }
}

/// The TCP connection's protocol: what arrives goes to the channel.
struct TcpSide(Rc<Relay>);

impl Protocol for TcpSide {
    fn connection_made(&mut self, transport: &Transport) {
        let relay = &self.0;
        *relay.tcp.borrow_mut() = Some(transport.clone());
        if start_channel(
            relay.conn,
            relay.ch,
            None,
            Some(Box::new(ChanSide(relay.clone()))),
        ) {
            relay.answer(None);
        } else {
            relay.answer(Some(ChannelOpenFailure::ResourceShortage));
            transport.lose_connection();
        }
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        if let Some(t) = channel_transport(self.0.conn, self.0.ch) {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.0.tcp.borrow_mut().take();
        if let Some(t) = channel_transport(self.0.conn, self.0.ch) {
            t.lose_connection();
        }
    }
}

/// The channel's protocol: what arrives goes to the TCP connection.
struct ChanSide(Rc<Relay>);

impl ChanSide {
    fn tcp(&self) -> Option<Transport> {
        self.0.tcp.borrow().clone()
    }
}

impl Protocol for ChanSide {
    fn connection_made(&mut self, transport: &Transport) {
        if let Some(tcp) = self.tcp() {
            let _ = transport.register_producer(Rc::new(tcp.clone()), true);
            let _ = tcp.register_producer(Rc::new(transport.clone()), true);
        }
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        if let Some(tcp) = self.tcp() {
            tcp.write(data);
        }
    }

    fn read_connection_lost(&mut self, _transport: &Transport) {
        // The client is done sending: half-close towards the destination, keep relaying
        // its answer.
        if let Some(tcp) = self.tcp() {
            tcp.lose_write_connection();
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        if let Some(tcp) = self.0.tcp.borrow_mut().take() {
            tcp.lose_connection();
        }
    }
}

/// A channel's transport, once its protocol started.
fn channel_transport(id: u64, ch: ChannelId) -> Option<Transport> {
    let state = conn(id)?;
    let st = state.borrow();
    st.channels.get(&ch)?.transport.clone()
}

/// Asks the portal; the answer comes back through a `Send` oneshot.
fn start_login(id: u64, cred: Cred) -> oneshot::Receiver<bool> {
    let (tx, rx) = oneshot::channel();
    let Some(state) = conn(id) else {
        let _ = tx.send(false);
        return rx;
    };
    let login = state.borrow().shared.login.clone();
    let tx = Rc::new(RefCell::new(Some(tx)));
    let tx2 = tx.clone();
    login(cred)
        .add_callback(move |login: Login<SshAvatar>| {
            let mut st = state.borrow_mut();
            st.user = Some(login.avatar().user.clone());
            st.logins.push(login);
            if let Some(g) = st.grace.take() {
                let _ = g.cancel();
            }
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(true);
            }
        })
        .add_errback(move |f| {
            tracing::info!("SSH login refused: {f}");
            if let Some(tx) = tx2.borrow_mut().take() {
                let _ = tx.send(false);
            }
            Ok(())
        });
    rx
}

async fn answer(rx: oneshot::Receiver<bool>) -> Result<Auth, russh::Error> {
    Ok(if rx.await.unwrap_or(false) {
        Auth::Accept
    } else {
        Auth::reject()
    })
}

/// russh's handler: `Send`, so it holds only the connection's number; every callback runs on
/// the reactor thread (the session is a task of the reactor's runtime) and looks the
/// connection up there.
struct Handler {
    id: u64,
}

impl Handler {
    fn start(&self, ch: ChannelId, kind: SessionKind, session: &mut Session) {
        let ok = self.start_inner(ch, kind, None);
        let _ = if ok {
            session.channel_success(ch)
        } else {
            session.channel_failure(ch)
        };
    }

    /// Starts the channel's protocol: `given`, or else the factory's for `kind`.
    fn start_inner(
        &self,
        ch: ChannelId,
        kind: SessionKind,
        given: Option<Box<dyn Protocol>>,
    ) -> bool {
        start_channel(self.id, ch, Some(kind), given)
    }
}

/// Starts a channel's protocol: `given`, or else the factory's for `kind` (a session
/// channel; `None` is a forwarding channel, which must be given its protocol).
fn start_channel(
    id: u64,
    ch: ChannelId,
    kind: Option<SessionKind>,
    given: Option<Box<dyn Protocol>>,
) -> bool {
    {
        let session = kind.is_some();
        let Some(state) = conn(id) else {
            return false;
        };
        let (factory_req, shared, out, peer, host, flow) = {
            let mut st = state.borrow_mut();
            let (peer, host, out, shared) = (st.peer, st.host, st.out.clone(), st.shared.clone());
            let Some(c) = st.channels.get_mut(&ch) else {
                return false;
            };
            if c.protocol.is_some() {
                return false;
            }
            if let Some(kind) = kind {
                c.request.kind = kind;
            }
            (c.request.clone(), shared, out, peer, host, c.flow.clone())
        };
        let built = if session {
            given.or_else(|| shared.factory.build(&factory_req))
        } else {
            given
        };
        let Some(protocol) = built else {
            return false;
        };
        let transport = Transport::new(Rc::new(ChannelTransport {
            conn: id,
            flow,
            channel: ch,
            out,
            exit: factory_req.exit.clone(),
            session,
            closing: Cell::new(false),
            peer,
            host,
        }));
        if let Some(c) = state.borrow_mut().channels.get_mut(&ch) {
            c.protocol = Some(protocol);
            c.transport = Some(transport);
        }
        with_protocol(id, ch, |p, t| p.connection_made(t));
        true
    }
}

type Done = std::future::Ready<Result<(), russh::Error>>;

fn done() -> Done {
    std::future::ready(Ok(()))
}

impl russh::server::Handler for Handler {
    type Error = russh::Error;

    fn auth_password(
        &mut self,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<Auth, Self::Error>> + Send {
        answer(start_login(
            self.id,
            Cred::Password(UsernamePassword::new(user, password)),
        ))
    }

    fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: russh::server::PublicKeyOffer<'_>,
    ) -> impl Future<Output = Result<Auth, Self::Error>> + Send {
        // Every offer is answered yes and the decision made on the signed request, so a
        // known and an unknown user take the same path.
        std::future::ready(Ok(Auth::Accept))
    }

    fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> impl Future<Output = Result<Auth, Self::Error>> + Send {
        answer(start_login(
            self.id,
            Cred::Key(SshPublicKey::new(user, key.public_key.clone())),
        ))
    }

    fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        // The Channel is dropped: data comes through `data` below, on the reactor thread.
        let accepted = self.with_chan(channel.id(), |_| {});
        async move {
            if accepted {
                reply.accept().await;
            } else {
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
            }
            Ok(())
        }
    }

    fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let ch = channel.id();
        let port = u16::try_from(port_to_connect).ok();
        let permitted = conn(self.id).is_some_and(|s| {
            let st = s.borrow();
            let forward = st.shared.forward.borrow();
            st.user.is_some()
                && port.is_some_and(|p| {
                    forward
                        .as_ref()
                        .is_some_and(|f| f.permits(host_to_connect, p))
                })
        });
        let refusal = if !permitted {
            tracing::info!("SSH direct-tcpip to {host_to_connect}:{port_to_connect} refused");
            Some((reply, ChannelOpenFailure::AdministrativelyProhibited))
        } else if !self.with_chan(ch, |_| {}) {
            Some((reply, ChannelOpenFailure::ResourceShortage))
        } else {
            let relay = Rc::new(Relay {
                conn: self.id,
                ch,
                reply: RefCell::new(Some(reply)),
                tcp: RefCell::new(None),
            });
            reactor().connect_tcp_timeout(
                host_to_connect,
                port.unwrap_or(0),
                RelayFactory(relay),
                FORWARD_CONNECT_TIMEOUT,
            );
            None
        };
        async move {
            if let Some((reply, why)) = refusal {
                reply.reject(why).await;
            }
            Ok(())
        }
    }

    fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let ok = self.with_chan(channel, |c| {
            *c.request.pty.borrow_mut() = Some(PtyInfo {
                term: term.chars().take(64).collect(),
                cols: col_width,
                rows: row_height,
            });
        });
        let _ = if ok {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        };
        done()
    }

    fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.with_chan(channel, |c| {
            if let Some(p) = c.request.pty.borrow_mut().as_mut() {
                p.cols = col_width;
                p.rows = row_height;
            }
        });
        done()
    }

    fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let ok = self.with_chan(channel, |c| {
            // Bounded: a client cannot grow a channel's environment without end.
            if c.request.env.len() < 64 && variable_name.len() + variable_value.len() < 4096 {
                c.request
                    .env
                    .push((variable_name.to_owned(), variable_value.to_owned()));
            }
        });
        let _ = if ok {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        };
        done()
    }

    fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.start(channel, SessionKind::Shell, session);
        done()
    }

    fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.start(channel, SessionKind::Exec(data.to_vec()), session);
        done()
    }

    fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let sftp = match name {
            "sftp" => conn(self.id).and_then(|s| s.borrow().shared.sftp.borrow().clone()),
            _ => None,
        };
        let ok = match sftp {
            Some(server) => self.start_inner(
                channel,
                SessionKind::Shell,
                Some(Box::new(server.session())),
            ),
            None => false,
        };
        let _ = if ok {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        };
        done()
    }

    fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let flow = self.flow(channel);
        let wait = match flow {
            Some(flow) if flow.holding() => flow.hold(data),
            _ => {
                with_protocol(self.id, channel, |p, t| {
                    if !t.disconnecting() {
                        p.data_received(t, data)
                    }
                });
                None
            }
        };
        async move {
            // Past the channel's hold limit: russh reads nothing more until it drains.
            if let Some(wake) = wait {
                wake.notified().await;
            }
            Ok(())
        }
    }

    fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        match self.flow(channel) {
            Some(flow) if flow.holding() => flow.eof_held.set(true),
            _ => with_protocol(self.id, channel, |p, t| p.read_connection_lost(t)),
        }
        done()
    }

    fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let chan = conn(self.id).and_then(|s| s.borrow_mut().channels.remove(&channel));
        if let Some(mut chan) = chan {
            chan.flow.release();
            chan.flow.stop_producer();
            if let Some(mut p) = chan.protocol.take() {
                p.connection_lost(ConnectionEnd::Done);
            }
        }
        done()
    }
}

impl Handler {
    /// The channel's flow control, if it is open.
    fn flow(&self, ch: ChannelId) -> Option<Rc<Flow>> {
        let state = conn(self.id)?;
        let st = state.borrow();
        st.channels.get(&ch).map(|c| c.flow.clone())
    }

    /// Runs `f` on the channel's entry, making it on the first request (russh names the
    /// channel only once the open is confirmed). False when the connection is gone, not
    /// logged in, or at its channel limit.
    fn with_chan(&self, ch: ChannelId, f: impl FnOnce(&mut Chan)) -> bool {
        let Some(state) = conn(self.id) else {
            return false;
        };
        let mut st = state.borrow_mut();
        let Some(user) = st.user.clone() else {
            return false;
        };
        if !st.channels.contains_key(&ch) {
            let max_held = st.shared.options.max_held_per_channel;
            if st.channels.len() >= st.shared.options.max_channels {
                return false;
            }
            st.channels.insert(
                ch,
                Chan {
                    request: SessionRequest {
                        user,
                        kind: SessionKind::Shell,
                        env: Vec::new(),
                        exit: ExitStatus::default(),
                        pty: Rc::new(RefCell::new(None)),
                    },
                    transport: None,
                    protocol: None,
                    flow: Rc::new(Flow::new(max_held)),
                },
            );
        }
        if let Some(c) = st.channels.get_mut(&ch) {
            f(c);
        }
        true
    }
}
