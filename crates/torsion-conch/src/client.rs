//! An SSH client on the reactor (Twisted's `twisted.conch.client` and
//! `conch.endpoints.SSHCommandClientEndpoint`): connect, check the server's host key against
//! an OpenSSH `known_hosts` file, log in with a key or a password, then run commands for
//! their output or bind a Torsion [`Protocol`] to a remote command or shell.
//!
//! The SSH protocol is russh's, bridged to the reactor as the server is (docs/design.md,
//! "Conch"): the session runs as a task of the reactor's own tokio runtime; russh's `Send`
//! handler holds a connection number and finds the connection's reactor-side state (the
//! known_hosts policy and its verdict) in a table of the thread's; each channel is read by a
//! task on the reactor thread that calls its protocol, and written through one queue per
//! channel, drained by a task that waits for the channel's window.
//!
//! - [`connect_ssh`] gives a `Deferred<SshConnection>` (awaitable); its failures are
//!   [`SshClientError`]s: a refused login, a changed or unknown host key, time-outs of the
//!   connection and of the login, measured on the reactor's clock (or the
//!   [`ClientConfig::clock`] a test gives).
//! - [`SshConnection::execute`] runs a command and gives its [`CommandOutput`] (stdout,
//!   stderr, exit status), refusing output past [`ClientConfig::max_output`].
//! - [`SshConnection::exec`] and [`SshConnection::open_shell`] bind a protocol to a channel:
//!   `data_received` is the remote output, `write` its input, `lose_connection` closes the
//!   channel, and `connection_lost` says how the remote side ended ([`exit_status_of`]).
//!
//! ```no_run
//! use torsion::reactor;
//! use torsion_conch::client::{connect_ssh, ClientConfig};
//!
//! let config = ClientConfig::new("alice")
//!     .key_file("/home/alice/.ssh/id_ed25519")
//!     .known_hosts("/home/alice/.ssh/known_hosts");
//! let r = reactor();
//! r.spawn(async move {
//!     let conn = connect_ssh(&reactor(), "example.org", 22, config).await?;
//!     let out = conn.execute("uptime").await?;
//!     print!("{}", String::from_utf8_lossy(&out.stdout));
//!     conn.close().await?;
//!     Ok::<_, torsion::Failure>(())
//! })
//! .add_both(|result| {
//!     if let Err(e) = result {
//!         eprintln!("{e}");
//!     }
//!     reactor().stop()
//! });
//! r.run().unwrap();
//! ```
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use russh::client::{AuthResult, Handle, Msg};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect};
use tokio::sync::{mpsc, oneshot};
use torsion::defer::{succeed, Deferred, Trigger};
use torsion::reactor::ReactorTime;
use torsion::transport::{Address, Transport, TransportImpl};
use torsion::{ConnectionEnd, Failure, Protocol, Reactor};

use crate::known_hosts::{verify_host_key, HostKeyAccepted, HostKeyError, UnknownHostPolicy};

/// A private key to log in with: Ed25519 or ECDSA (P-256, P-384, P-521), from an OpenSSH
/// private key file (passphrase-protected or not) or made in memory. RSA keys are not
/// supported (the crate builds russh on ring, without RSA).
#[derive(Clone)]
pub struct ClientKey(Arc<PrivateKey>);

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientKey({} {})",
            self.0.algorithm().as_str(),
            self.0.public_key().fingerprint(HashAlg::Sha256)
        )
    }
}

impl ClientKey {
    /// Loads an OpenSSH private key file (`ssh-keygen`'s format), decrypting it with
    /// `passphrase` if it is protected.
    pub fn load(
        path: impl AsRef<Path>,
        passphrase: Option<&str>,
    ) -> Result<ClientKey, SshClientError> {
        let path = path.as_ref();
        crate::openssh_key::load(path, passphrase)
            .map(|k| ClientKey(Arc::new(k)))
            .map_err(|e| SshClientError::Key {
                path: Some(path.to_owned()),
                message: e.to_string(),
            })
    }

    /// Parses an OpenSSH private key's text.
    pub fn from_openssh(text: &str, passphrase: Option<&str>) -> Result<ClientKey, SshClientError> {
        crate::openssh_key::decode(text, passphrase)
            .map(|k| ClientKey(Arc::new(k)))
            .map_err(|e| SshClientError::Key {
                path: None,
                message: e.to_string(),
            })
    }

    /// A new Ed25519 key, in memory only.
    pub fn generate_ed25519() -> ClientKey {
        ClientKey(Arc::new(
            PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .expect("Ed25519 key generation does not fail"),
        ))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.0.public_key().clone()
    }

    /// The public half as an OpenSSH line (`ssh-ed25519 AAAA...`), for an
    /// `authorized_keys` file.
    pub fn public_openssh(&self) -> String {
        self.0.public_key().to_openssh().unwrap_or_default()
    }
}

/// One way to log in, tried in the order given.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A key already loaded.
    Key(ClientKey),
    /// A key file, read at connect time (`ssh -i`).
    KeyFile {
        /// The OpenSSH private key file.
        path: PathBuf,
        /// Its passphrase, if it has one.
        passphrase: Option<String>,
    },
    /// A password.
    Password(String),
}

impl ClientAuth {
    fn method(&self) -> &'static str {
        match self {
            ClientAuth::Key(_) | ClientAuth::KeyFile { .. } => "publickey",
            ClientAuth::Password(_) => "password",
        }
    }
}

/// How to connect: the user, the ways to log in, the host-key policy, time-outs and limits.
#[derive(Clone)]
pub struct ClientConfig {
    /// The user name to log in as.
    pub user: String,
    /// Ways to log in, tried in order until one is accepted.
    pub auth: Vec<ClientAuth>,
    /// The known_hosts file; `None` checks against nothing (every host is unknown).
    /// [`ClientConfig::new`] sets `~/.ssh/known_hosts` when `HOME` is set.
    pub known_hosts: Option<PathBuf>,
    /// What to do with a host the file does not list ([`UnknownHostPolicy::Refuse`] by
    /// default).
    pub unknown_host: UnknownHostPolicy,
    /// Time for the TCP connection, the key exchange and the host-key check (30 s).
    pub connect_timeout: Duration,
    /// Time for the login, every method tried (30 s).
    pub auth_timeout: Duration,
    /// The most output (stdout and stderr together) [`SshConnection::execute`] collects
    /// before it gives up with [`SshClientError::OutputTooLarge`] (16 MiB).
    pub max_output: usize,
    /// The clock time-outs are measured on; `None` is the reactor's.
    pub clock: Option<Rc<dyn ReactorTime>>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("user", &self.user)
            .field(
                "auth",
                &self.auth.iter().map(ClientAuth::method).collect::<Vec<_>>(),
            )
            .field("known_hosts", &self.known_hosts)
            .field("unknown_host", &self.unknown_host)
            .field("connect_timeout", &self.connect_timeout)
            .field("auth_timeout", &self.auth_timeout)
            .field("max_output", &self.max_output)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Logging in as `user`, with no method yet, checking hosts against
    /// `~/.ssh/known_hosts` and refusing unknown ones.
    pub fn new(user: impl Into<String>) -> ClientConfig {
        ClientConfig {
            user: user.into(),
            auth: Vec::new(),
            known_hosts: std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".ssh").join("known_hosts")),
            unknown_host: UnknownHostPolicy::Refuse,
            connect_timeout: Duration::from_secs(30),
            auth_timeout: Duration::from_secs(30),
            max_output: 16 << 20,
            clock: None,
        }
    }

    /// Adds a password login.
    pub fn password(mut self, password: impl Into<String>) -> ClientConfig {
        self.auth.push(ClientAuth::Password(password.into()));
        self
    }

    /// Adds a key login with a key already loaded.
    pub fn key(mut self, key: ClientKey) -> ClientConfig {
        self.auth.push(ClientAuth::Key(key));
        self
    }

    /// Adds a key login with an unprotected key file, read at connect time.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> ClientConfig {
        self.auth.push(ClientAuth::KeyFile {
            path: path.into(),
            passphrase: None,
        });
        self
    }

    /// Adds a key login with a passphrase-protected key file, read at connect time.
    pub fn key_file_with_passphrase(
        mut self,
        path: impl Into<PathBuf>,
        passphrase: impl Into<String>,
    ) -> ClientConfig {
        self.auth.push(ClientAuth::KeyFile {
            path: path.into(),
            passphrase: Some(passphrase.into()),
        });
        self
    }

    /// Sets the known_hosts file.
    pub fn known_hosts(mut self, path: impl Into<PathBuf>) -> ClientConfig {
        self.known_hosts = Some(path.into());
        self
    }

    /// Sets the policy for hosts the file does not list.
    pub fn unknown_host(mut self, policy: UnknownHostPolicy) -> ClientConfig {
        self.unknown_host = policy;
        self
    }

    /// Measures time-outs on `clock` (a test's [`Clock`](torsion::testing::Clock)).
    pub fn clock(mut self, clock: Rc<dyn ReactorTime>) -> ClientConfig {
        self.clock = Some(clock);
        self
    }
}

/// Which step timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The TCP connection, key exchange and host-key check.
    Connect,
    /// The login.
    Auth,
}

/// Why connecting, logging in or a command failed.
#[derive(Debug)]
pub enum SshClientError {
    /// The TCP connection failed (refused, unreachable, a name without an address).
    Connect {
        /// `host:port`.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The server's host key is not trusted: changed, unknown, revoked.
    HostKey(HostKeyError),
    /// Every login method was refused.
    AuthRefused {
        /// The user name.
        user: String,
        /// The methods tried, in order.
        tried: Vec<&'static str>,
        /// The methods the server said it would accept.
        server_methods: Vec<String>,
    },
    /// A key could not be read.
    Key {
        /// The file, if it came from one.
        path: Option<PathBuf>,
        /// Why.
        message: String,
    },
    /// A step took longer than its time-out.
    Timeout {
        /// The step.
        phase: Phase,
        /// Its time-out.
        after: Duration,
    },
    /// The server refused to open a channel or to run a request on it (`exec`, `shell`,
    /// `pty-req`).
    ChannelRefused(String),
    /// A command's output passed [`ClientConfig::max_output`]; its channel was closed.
    OutputTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The SSH session failed or was closed (russh's error, or the server's disconnect).
    Protocol(String),
}

impl fmt::Display for SshClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshClientError::Connect { addr, message } => {
                write!(f, "cannot connect to {addr}: {message}")
            }
            SshClientError::HostKey(e) => e.fmt(f),
            SshClientError::AuthRefused {
                user,
                tried,
                server_methods,
            } => write!(
                f,
                "login refused for {user} (tried: {}; the server accepts: {})",
                if tried.is_empty() {
                    "nothing".to_owned()
                } else {
                    tried.join(", ")
                },
                if server_methods.is_empty() {
                    "nothing more".to_owned()
                } else {
                    server_methods.join(", ")
                }
            ),
            SshClientError::Key { path, message } => match path {
                Some(p) => write!(f, "cannot use the key {}: {message}", p.display()),
                None => write!(f, "cannot use the key: {message}"),
            },
            SshClientError::Timeout { phase, after } => write!(
                f,
                "SSH {} timed out after {:.1} s",
                match phase {
                    Phase::Connect => "connection (TCP and key exchange)",
                    Phase::Auth => "login",
                },
                after.as_secs_f64()
            ),
            SshClientError::ChannelRefused(what) => write!(f, "the server refused {what}"),
            SshClientError::OutputTooLarge { limit } => write!(
                f,
                "the command's output passed the limit of {limit} bytes; its channel was closed"
            ),
            SshClientError::Protocol(m) => write!(f, "SSH session failed: {m}"),
        }
    }
}

impl std::error::Error for SshClientError {}

/// How a remote command ended, when it did not exit with 0: given to a bound protocol's
/// `connection_lost` inside [`ConnectionEnd::Error`] (as Twisted gives `ProcessTerminated`);
/// [`exit_status_of`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteExit {
    /// The exit status, if the server sent one.
    pub status: Option<u32>,
    /// The signal that killed it (`TERM`, `KILL`, ...), if the server sent one.
    pub signal: Option<String>,
}

impl fmt::Display for RemoteExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.status, &self.signal) {
            (_, Some(sig)) => write!(f, "remote command killed by signal {sig}"),
            (Some(s), None) => write!(f, "remote command exited with status {s}"),
            (None, None) => f.write_str("remote command ended without an exit status"),
        }
    }
}

impl std::error::Error for RemoteExit {}

/// The exit status a bound protocol's `connection_lost` was given: `Some(0)` for a clean
/// end ([`ConnectionEnd::Done`]: status 0, or none sent, as Twisted's `ConnectionDone`),
/// `Some(n)` for a [`RemoteExit`] with status `n`, `None` for a signal or a lost connection.
pub fn exit_status_of(end: &ConnectionEnd) -> Option<u32> {
    match end {
        ConnectionEnd::Done => Some(0),
        other => remote_exit_of(other).and_then(|e| e.status),
    }
}

/// The [`RemoteExit`] inside a bound protocol's `connection_lost` reason, if there is one.
pub fn remote_exit_of(end: &ConnectionEnd) -> Option<&RemoteExit> {
    end.io_error()
        .and_then(|e| e.get_ref())
        .and_then(|e| e.downcast_ref::<RemoteExit>())
}

/// A command's result ([`SshConnection::execute`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error (the channel's extended data).
    pub stderr: Vec<u8>,
    /// Its exit status, if the server sent one.
    pub exit_status: Option<u32>,
    /// The signal that killed it, if the server sent one.
    pub exit_signal: Option<String>,
}

/// A terminal to ask for on a channel (`pty-req`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyRequest {
    /// The terminal type (`TERM`).
    pub term: String,
    /// Width in characters.
    pub cols: u32,
    /// Height in rows.
    pub rows: u32,
}

impl Default for PtyRequest {
    fn default() -> PtyRequest {
        PtyRequest {
            term: "xterm".into(),
            cols: 80,
            rows: 24,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The bridge: russh's Send handler, and the thread's table of connections.

/// A connection's reactor-side state, found by the handler by number.
struct ConnState {
    host: String,
    port: u16,
    known_hosts: Option<PathBuf>,
    policy: UnknownHostPolicy,
    verdict: RefCell<Option<Result<HostKeyAccepted, HostKeyError>>>,
    fingerprint: RefCell<String>,
}

thread_local! {
    static CLIENTS: RefCell<HashMap<u64, Rc<ConnState>>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

fn client_state(id: u64) -> Option<Rc<ConnState>> {
    CLIENTS.with(|c| c.borrow().get(&id).cloned())
}

/// russh's client handler: `Send`, holding only the connection's number. Its callbacks run
/// on the reactor thread (the session is a task of the reactor's runtime).
struct ClientHandler {
    id: u64,
}

impl Drop for ClientHandler {
    fn drop(&mut self) {
        let _ = CLIENTS.try_with(|c| c.borrow_mut().remove(&self.id));
    }
}

impl russh::client::Handler for ClientHandler {
    type Error = russh::Error;

    fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let ok = match (client_state(self.id), server_public_key) {
            (Some(st), russh::keys::PublicKeyOrCertificate::PublicKey { key, .. }) => {
                *st.fingerprint.borrow_mut() = key.fingerprint(HashAlg::Sha256).to_string();
                let verdict =
                    verify_host_key(st.known_hosts.as_deref(), &st.host, st.port, key, st.policy);
                let ok = verdict.is_ok();
                *st.verdict.borrow_mut() = Some(verdict);
                ok
            }
            // Host certificates are not checked: refused, as a key not listed would be.
            _ => false,
        };
        std::future::ready(Ok(ok))
    }
}

/// Runs `fut`, failing with [`SshClientError::Timeout`] if it takes longer than `after` on
/// `clock` (the future is dropped then).
async fn deadline<T>(
    clock: &dyn ReactorTime,
    after: Duration,
    phase: Phase,
    fut: impl Future<Output = Result<T, SshClientError>>,
) -> Result<T, SshClientError> {
    let (tx, mut rx) = oneshot::channel::<()>();
    let timer = clock.call_later_boxed(
        after.as_secs_f64(),
        Box::new(move || {
            let _ = tx.send(());
        }),
    );
    let mut fut = std::pin::pin!(fut);
    let out = std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        match Pin::new(&mut rx).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Err(SshClientError::Timeout { phase, after })),
            _ => Poll::Pending,
        }
    })
    .await;
    if timer.active() {
        let _ = timer.cancel();
    }
    out
}

/// Connects to `host` on `port`, checks its host key and logs in as `config` says (Twisted's
/// `SSHCommandClientEndpoint.newConnection`'s connection step). The Deferred fails with a
/// [`SshClientError`].
pub fn connect_ssh(
    reactor: &Reactor,
    host: &str,
    port: u16,
    config: ClientConfig,
) -> Deferred<SshConnection> {
    let r = reactor.clone();
    let host = host.to_owned();
    reactor
        .spawn(connect(r, host, port, config))
        .add_callback_result(|out| out.map_err(Failure::new))
}

async fn connect(
    r: Reactor,
    host: String,
    port: u16,
    config: ClientConfig,
) -> Result<SshConnection, SshClientError> {
    let clock: Rc<dyn ReactorTime> = config.clock.clone().unwrap_or_else(|| Rc::new(r.clone()));
    let id = NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    let state = Rc::new(ConnState {
        host: host.clone(),
        port,
        known_hosts: config.known_hosts.clone(),
        policy: config.unknown_host,
        verdict: RefCell::new(None),
        fingerprint: RefCell::new(String::new()),
    });
    CLIENTS.with(|c| c.borrow_mut().insert(id, state.clone()));
    let russh_config = Arc::new(russh::client::Config {
        client_id: russh::SshId::Standard(
            concat!("SSH-2.0-Torsion_", env!("CARGO_PKG_VERSION")).into(),
        ),
        nodelay: true,
        ..Default::default()
    });
    let addr = format!("{host}:{port}");
    let connecting = async {
        let ip = r
            .resolve(&host)
            .await
            .map_err(|f| SshClientError::Connect {
                addr: addr.clone(),
                message: f.error_message(),
            })?;
        let stream = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| SshClientError::Connect {
                addr: addr.clone(),
                message: e.to_string(),
            })?;
        russh::client::connect_stream(russh_config, stream, ClientHandler { id })
            .await
            .map_err(|e| match state.verdict.borrow_mut().take() {
                Some(Err(refused)) => SshClientError::HostKey(refused),
                _ => SshClientError::Protocol(e.to_string()),
            })
    };
    let result = deadline(&*clock, config.connect_timeout, Phase::Connect, connecting).await;
    let mut handle = match result {
        Ok(h) => h,
        Err(e) => {
            CLIENTS.with(|c| c.borrow_mut().remove(&id));
            return Err(e);
        }
    };
    let host_key = match state.verdict.borrow_mut().take() {
        Some(Ok(accepted)) => accepted,
        _ => return Err(SshClientError::Protocol("no host key was checked".into())),
    };
    deadline(
        &*clock,
        config.auth_timeout,
        Phase::Auth,
        authenticate(&mut handle, &config),
    )
    .await?;
    let fingerprint = state.fingerprint.borrow().clone();
    Ok(SshConnection {
        inner: Rc::new(ConnInner {
            handle,
            host,
            port,
            user: config.user.clone(),
            max_output: config.max_output,
            host_key,
            fingerprint,
        }),
    })
}

async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    config: &ClientConfig,
) -> Result<(), SshClientError> {
    let mut tried = Vec::new();
    let mut server_methods = Vec::new();
    for auth in &config.auth {
        let result = match auth {
            ClientAuth::Password(p) => handle.authenticate_password(&config.user, p).await,
            ClientAuth::Key(key) => {
                handle
                    .authenticate_publickey(
                        &config.user,
                        PrivateKeyWithHashAlg::new(key.0.clone(), None),
                    )
                    .await
            }
            ClientAuth::KeyFile { path, passphrase } => {
                let key = ClientKey::load(path, passphrase.as_deref())?;
                handle
                    .authenticate_publickey(
                        &config.user,
                        PrivateKeyWithHashAlg::new(key.0.clone(), None),
                    )
                    .await
            }
        }
        .map_err(|e| SshClientError::Protocol(e.to_string()))?;
        tried.push(auth.method());
        match result {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods, ..
            } => {
                server_methods = remaining_methods.iter().map(String::from).collect();
            }
        }
    }
    Err(SshClientError::AuthRefused {
        user: config.user.clone(),
        tried,
        server_methods,
    })
}

// ---------------------------------------------------------------------------------------
// Connections and channels.

struct ConnInner {
    handle: Handle<ClientHandler>,
    host: String,
    port: u16,
    user: String,
    max_output: usize,
    host_key: HostKeyAccepted,
    fingerprint: String,
}

/// A logged-in SSH connection. Clones share it; it closes when [`close`](Self::close) is
/// called, when the server closes it, or once every clone and every channel opened on it
/// is gone (dropping the clones leaves open channels running).
#[derive(Clone)]
pub struct SshConnection {
    inner: Rc<ConnInner>,
}

impl fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshConnection")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("user", &self.inner.user)
            .finish_non_exhaustive()
    }
}

/// What a channel is opened for.
enum Request {
    Exec(String),
    Shell,
}

impl SshConnection {
    /// The user logged in.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// How the server's host key was trusted.
    pub fn host_key(&self) -> &HostKeyAccepted {
        &self.inner.host_key
    }

    /// The server's host key's SHA-256 fingerprint (`SHA256:...`).
    pub fn host_key_fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// True once the SSH session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.handle.is_closed()
    }

    /// Sends the server a disconnect and ends the session; open channels' protocols get
    /// `connection_lost`. The Deferred fires once the disconnect is handed to the session
    /// (at once if it had already ended); it may be dropped.
    pub fn close(&self) -> Deferred<()> {
        let inner = self.inner.clone();
        torsion::reactor().spawn(async move {
            let _ = inner
                .handle
                .disconnect(Disconnect::ByApplication, "", "")
                .await;
        })
    }

    /// Runs `command` and gives its output once the channel closes. The command gets an
    /// empty standard input (EOF at once, as `ssh host cmd < /dev/null`). Output past
    /// [`ClientConfig::max_output`] fails it with [`SshClientError::OutputTooLarge`].
    pub fn execute(&self, command: &str) -> Deferred<CommandOutput> {
        let inner = self.inner.clone();
        let command = command.to_owned();
        torsion::reactor()
            .spawn(async move { execute(inner, command).await })
            .add_callback_result(|out| out.map_err(Failure::new))
    }

    /// Runs `command` with the protocol `factory` makes bound to it (Twisted's
    /// `SSHCommandClientEndpoint.connect`): see [`SshChannel`].
    pub fn exec<P: Protocol>(
        &self,
        command: &str,
        factory: impl FnOnce() -> P + 'static,
    ) -> Deferred<SshChannel> {
        self.bind(Request::Exec(command.to_owned()), None, factory)
    }

    /// Opens a shell, on a terminal if `pty` asks for one, with the protocol `factory`
    /// makes bound to it: see [`SshChannel`].
    pub fn open_shell<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        pty: Option<PtyRequest>,
    ) -> Deferred<SshChannel> {
        self.bind(Request::Shell, pty, factory)
    }

    fn bind<P: Protocol>(
        &self,
        request: Request,
        pty: Option<PtyRequest>,
        factory: impl FnOnce() -> P + 'static,
    ) -> Deferred<SshChannel> {
        let inner = self.inner.clone();
        torsion::reactor()
            .spawn(async move {
                let (read, write, early) = open(&inner, &request, pty.as_ref()).await?;
                Ok::<_, SshClientError>(run_channel(
                    &inner,
                    read,
                    write,
                    early,
                    Box::new(factory()),
                ))
            })
            .add_callback_result(|out| out.map_err(Failure::new))
    }
}

/// Opens a session channel and makes the request; gives the channel's halves and what
/// arrived before the server's answer.
async fn open(
    inner: &ConnInner,
    request: &Request,
    pty: Option<&PtyRequest>,
) -> Result<(ChannelReadHalf, ChannelWriteHalf<Msg>, Vec<ChannelMsg>), SshClientError> {
    let channel = inner
        .handle
        .channel_open_session()
        .await
        .map_err(|e| SshClientError::ChannelRefused(format!("a session channel ({e})")))?;
    let (mut read, write) = channel.split();
    let mut asked = Vec::new();
    let sent = async {
        if let Some(p) = pty {
            write
                .request_pty(true, &p.term, p.cols, p.rows, 0, 0, &[])
                .await?;
            asked.push("pty-req");
        }
        match request {
            Request::Exec(cmd) => {
                write.exec(true, cmd.as_bytes()).await?;
                asked.push("exec");
            }
            Request::Shell => {
                write.request_shell(true).await?;
                asked.push("shell");
            }
        }
        Ok::<_, russh::Error>(())
    }
    .await;
    sent.map_err(|e| SshClientError::Protocol(e.to_string()))?;
    let mut early = Vec::new();
    let mut answered = 0;
    while answered < asked.len() {
        match read.wait().await {
            Some(ChannelMsg::Success) => answered += 1,
            Some(ChannelMsg::Failure) => {
                let what = match request {
                    Request::Exec(cmd) if asked[answered] == "exec" => format!("exec {cmd:?}"),
                    _ => asked[answered].to_owned(),
                };
                let _ = write.close().await;
                return Err(SshClientError::ChannelRefused(what));
            }
            Some(ChannelMsg::Close) | None => {
                return Err(SshClientError::ChannelRefused(format!(
                    "{} (the channel closed)",
                    asked[answered]
                )))
            }
            Some(other) => {
                // Bounded: a server cannot make us hold more than a window's worth.
                if early.len() < 1024 {
                    early.push(other);
                }
            }
        }
    }
    Ok((read, write, early))
}

async fn execute(inner: Rc<ConnInner>, command: String) -> Result<CommandOutput, SshClientError> {
    let (mut read, write, early) = open(&inner, &Request::Exec(command), None).await?;
    let _ = write.eof().await;
    let mut out = CommandOutput::default();
    let mut early = early.into_iter();
    loop {
        let msg = match early.next() {
            Some(m) => Some(m),
            None => read.wait().await,
        };
        match msg {
            Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => out.stderr.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => out.exit_status = Some(exit_status),
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                out.exit_signal = Some(signal_name_of(&signal_name))
            }
            Some(ChannelMsg::Close) => return Ok(out),
            None => {
                return Err(SshClientError::Protocol(
                    "the connection closed before the command ended".into(),
                ))
            }
            Some(_) => {}
        }
        if out.stdout.len() + out.stderr.len() > inner.max_output {
            let _ = write.close().await;
            return Err(SshClientError::OutputTooLarge {
                limit: inner.max_output,
            });
        }
    }
}

fn signal_name_of(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// What a bound channel's transport sends.
enum Out {
    Data(bytes::Bytes),
    Eof,
    Close,
    WindowChange(u32, u32),
}

/// How a bound channel ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelExit {
    /// The exit status the server sent, if any.
    pub status: Option<u32>,
    /// The signal the server said killed the command, if any.
    pub signal: Option<String>,
    /// True when the connection ended before the channel was closed.
    pub lost: bool,
}

struct ChanState {
    exit: RefCell<ChannelExit>,
    closed: Cell<bool>,
    waiting: RefCell<Vec<Trigger<ChannelExit>>>,
    out: mpsc::UnboundedSender<Out>,
}

/// A channel bound to a protocol ([`SshConnection::exec`], [`SshConnection::open_shell`]).
///
/// The protocol's `data_received` gets the remote standard output (standard error is logged
/// at debug level and dropped; use [`SshConnection::execute`] to collect it); its
/// transport's `write` is the remote standard input, `lose_write_connection` sends EOF, and
/// `lose_connection` sends EOF and closes the channel. The server's EOF is
/// `read_connection_lost` (whose default closes). `connection_lost` comes once the channel
/// closes: [`ConnectionEnd::Done`] for exit status 0 (or none), else a [`RemoteExit`]
/// inside [`ConnectionEnd::Error`] ([`exit_status_of`]).
#[derive(Clone)]
pub struct SshChannel {
    state: Rc<ChanState>,
}

impl fmt::Debug for SshChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshChannel")
            .field("closed", &self.state.closed.get())
            .field("exit", &*self.state.exit.borrow())
            .finish()
    }
}

impl SshChannel {
    /// The exit status the server sent, once it has.
    pub fn exit_status(&self) -> Option<u32> {
        self.state.exit.borrow().status
    }

    /// True once the channel has closed.
    pub fn is_closed(&self) -> bool {
        self.state.closed.get()
    }

    /// Fires with how the channel ended, once it has closed (after the protocol's
    /// `connection_lost`).
    pub fn closed(&self) -> Deferred<ChannelExit> {
        if self.state.closed.get() {
            return succeed(self.state.exit.borrow().clone());
        }
        let d = Deferred::new();
        self.state.waiting.borrow_mut().push(d.trigger());
        d
    }

    /// Tells the server the terminal's new size (`window-change`).
    pub fn window_change(&self, cols: u32, rows: u32) {
        let _ = self.state.out.send(Out::WindowChange(cols, rows));
    }
}

/// The transport a bound channel's protocol gets.
struct ChannelTransport {
    out: mpsc::UnboundedSender<Out>,
    closing: Cell<bool>,
    eof_sent: Cell<bool>,
    peer: String,
}

impl TransportImpl for ChannelTransport {
    fn write(&self, data: &[u8]) {
        if !self.closing.get() && !self.eof_sent.get() && !data.is_empty() {
            let _ = self
                .out
                .send(Out::Data(bytes::Bytes::copy_from_slice(data)));
        }
    }

    fn lose_write_connection(&self) {
        if !self.eof_sent.replace(true) {
            let _ = self.out.send(Out::Eof);
        }
    }

    fn lose_connection(&self) {
        if !self.closing.replace(true) {
            self.lose_write_connection();
            let _ = self.out.send(Out::Close);
        }
    }

    fn abort_connection(&self) {
        self.lose_connection();
    }

    fn get_peer(&self) -> Address {
        Address::Named(self.peer.clone())
    }

    fn get_host(&self) -> Address {
        Address::Named("ssh-client".into())
    }

    fn disconnecting(&self) -> bool {
        self.closing.get()
    }
}

fn run_channel(
    inner: &ConnInner,
    mut read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    early: Vec<ChannelMsg>,
    mut protocol: Box<dyn Protocol>,
) -> SshChannel {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let state = Rc::new(ChanState {
        exit: RefCell::new(ChannelExit::default()),
        closed: Cell::new(false),
        waiting: RefCell::new(Vec::new()),
        out: tx.clone(),
    });
    let transport_impl = Rc::new(ChannelTransport {
        out: tx,
        closing: Cell::new(false),
        eof_sent: Cell::new(false),
        peer: format!("{}@{}:{}", inner.user, inner.host, inner.port),
    });
    let transport = Transport::new(transport_impl.clone());
    let r = torsion::reactor();
    // The writer: sends what the protocol wrote, in order, each chunk once the window has
    // room for it.
    r.spawn(async move {
        while let Some(out) = rx.recv().await {
            let ok = match out {
                Out::Data(data) => write.data_bytes(data).await.is_ok(),
                Out::Eof => write.eof().await.is_ok(),
                Out::WindowChange(cols, rows) => {
                    write.window_change(cols, rows, 0, 0).await.is_ok()
                }
                Out::Close => {
                    let _ = write.close().await;
                    false
                }
            };
            if !ok {
                break;
            }
        }
    });
    // The reader: calls the protocol with what the server sent.
    let st = state.clone();
    r.spawn(async move {
        protocol.connection_made(&transport);
        let mut early = early.into_iter();
        let mut closed = false;
        loop {
            let msg = match early.next() {
                Some(m) => Some(m),
                None => read.wait().await,
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    if !transport.disconnecting() {
                        protocol.data_received(&transport, &data);
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext }) => {
                    tracing::debug!(
                        "SSH channel: {} bytes of extended data ({ext}) dropped",
                        data.len()
                    );
                }
                Some(ChannelMsg::Eof) => protocol.read_connection_lost(&transport),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    st.exit.borrow_mut().status = Some(exit_status)
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    st.exit.borrow_mut().signal = Some(signal_name_of(&signal_name))
                }
                Some(ChannelMsg::Close) => {
                    closed = true;
                    break;
                }
                None => break,
                Some(_) => {}
            }
        }
        transport_impl.closing.set(true);
        // Ends the writer (a lost connection ends it too).
        let _ = st.out.send(Out::Close);
        let exit = {
            let mut exit = st.exit.borrow_mut();
            exit.lost = !closed;
            exit.clone()
        };
        let end = if !closed {
            ConnectionEnd::Error(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the SSH connection ended before the channel closed",
            ))
        } else if exit.signal.is_none() && exit.status.unwrap_or(0) == 0 {
            ConnectionEnd::Done
        } else {
            ConnectionEnd::Error(io::Error::other(RemoteExit {
                status: exit.status,
                signal: exit.signal.clone(),
            }))
        };
        protocol.connection_lost(end);
        st.closed.set(true);
        for t in st.waiting.take() {
            t.callback(exit.clone());
        }
    });
    SshChannel { state }
}
