//! Unix domain sockets: echo round trips (a tokio client, Torsion's own `connect_unix`, an
//! abstract name), the socket file's life (mode, stale clean-up, address in use, removal on
//! `stop_listening`), connection failures, peer credentials, and half-close and
//! `lose_connection` flushing as over TCP.
//!
//! Each test uses its own path under the temporary directory and removes it at the end.

use std::cell::RefCell;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::support::next;
use crate::support::TempPath;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torsion::defer::DeferredQueue;
use torsion::error::{CannotListenError, ConnectError, ConnectionDone, ConnectionRefusedError};
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::unix::{peer_credentials, PeerCredentials, UnixListenOptions};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, ClientFactory, Factory, Failure, Protocol, Transport};

/// What one side of a connection saw.
#[derive(Default)]
struct Record {
    host: RefCell<Option<Address>>,
    peer: RefCell<Option<Address>>,
    creds: RefCell<Option<PeerCredentials>>,
    received: RefCell<Vec<u8>>,
    lost: RefCell<Option<Failure>>,
    ended: DeferredQueue<()>,
}

impl Record {
    fn made(&self, t: &Transport) {
        *self.host.borrow_mut() = Some(t.get_host());
        *self.peer.borrow_mut() = Some(t.get_peer());
        *self.creds.borrow_mut() = peer_credentials(t);
    }

    fn lost(&self, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
        self.ended.put(()).unwrap();
    }
}

struct Echo {
    rec: Rc<Record>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.rec.made(t);
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.rec.received.borrow_mut().extend_from_slice(data);
        t.write(data);
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

fn echo_factory(rec: &Rc<Record>) -> impl Factory {
    let rec = rec.clone();
    factory(move || Echo { rec: rec.clone() })
}

/// Sends `message` and closes once it all came back.
struct EchoClient {
    message: &'static [u8],
    rec: Rc<Record>,
}

impl Protocol for EchoClient {
    fn connection_made(&mut self, t: &Transport) {
        self.rec.made(t);
        t.write(self.message);
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut received = self.rec.received.borrow_mut();
        received.extend_from_slice(data);
        if received.len() >= self.message.len() {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

/// A tokio client sends `message` to `path` and reads the echo back.
async fn tokio_echo(path: &Path, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::UnixStream::connect(path).await?;
    stream.write_all(message).await?;
    let mut buf = vec![0u8; message.len()];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

fn own_uid(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().uid()
}

#[torsion::test]
async fn a_tokio_client_gets_its_bytes_echoed_and_the_server_sees_its_credentials(
) -> Result<(), Failure> {
    let path = TempPath::new("unix-tokio-echo");
    let server: Rc<Record> = Rc::default();
    let port = reactor().listen_unix(&path, echo_factory(&server))?;
    assert_eq!(port.get_host(), Address::Unix(Some(path.0.clone())));
    let uid = own_uid(path.as_ref());

    let echoed = tokio_echo(path.as_ref(), b"hello over unix").await?;
    assert_eq!(echoed, b"hello over unix");
    next(&server.ended).await;

    assert_eq!(&*server.received.borrow(), b"hello over unix");
    assert_eq!(
        *server.host.borrow(),
        Some(Address::Unix(Some(path.0.clone())))
    );
    assert_eq!(*server.peer.borrow(), Some(Address::Unix(None)));
    let creds = server
        .creds
        .borrow()
        .expect("credentials in connection_made");
    assert_eq!(creds.uid, uid);
    assert_eq!(creds.pid, Some(std::process::id() as i32));
    assert!(server
        .lost
        .borrow()
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn connect_unix_runs_a_torsion_client_against_a_torsion_server() -> Result<(), Failure> {
    let path = TempPath::new("unix-connect-echo");
    let server: Rc<Record> = Rc::default();
    let port = reactor().listen_unix(&path, echo_factory(&server))?;

    let client: Rc<Record> = Rc::default();
    let c = client.clone();
    let connector = reactor().connect_unix(
        &path,
        factory(move || EchoClient {
            message: b"ping pong",
            rec: c.clone(),
        }),
    );
    assert_eq!(
        connector.get_destination(),
        (path.0.display().to_string(), 0)
    );
    next(&client.ended).await;
    next(&server.ended).await;

    assert_eq!(&*client.received.borrow(), b"ping pong");
    assert_eq!(
        *client.peer.borrow(),
        Some(Address::Unix(Some(path.0.clone())))
    );
    assert!(client.creds.borrow().is_some());
    assert!(client
        .lost
        .borrow()
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
    assert!(connector.transport().is_none());
    port.stop_listening().await?;
    Ok(())
}

/// The one listen and connect every Twisted-named method goes through, with a Unix socket:
/// options reach the socket file, and a client with a time-out gets its echo.
#[torsion::test]
async fn listen_and_connect_take_a_unix_socket_with_its_options() -> Result<(), Failure> {
    use torsion::net::{Connect, Listen};
    let path = TempPath::new("unix-net-echo");
    let server: Rc<Record> = Rc::default();
    let options = UnixListenOptions {
        mode: Some(0o600),
        ..UnixListenOptions::default()
    };
    let port = reactor().listen(Listen::unix(&path).options(options), echo_factory(&server))?;
    assert_eq!(
        std::fs::metadata(&path.0)?.permissions().mode() & 0o777,
        0o600
    );
    let client: Rc<Record> = Rc::default();
    let c = client.clone();
    reactor().connect(
        Connect::unix(&path).timeout(std::time::Duration::from_secs(5)),
        factory(move || EchoClient {
            message: b"through listen and connect",
            rec: c.clone(),
        }),
    );
    next(&client.ended).await;
    next(&server.ended).await;
    assert_eq!(&*client.received.borrow(), b"through listen and connect");
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn the_socket_file_gets_the_mode_asked_for() -> Result<(), Failure> {
    let path = TempPath::new("unix-mode");
    for mode in [0o600, 0o660] {
        let options = UnixListenOptions {
            mode: Some(mode),
            ..UnixListenOptions::default()
        };
        let port = reactor().listen_unix_with(&path, echo_factory(&Rc::default()), options)?;
        let meta = std::fs::metadata(&path.0)?;
        assert_eq!(meta.permissions().mode() & 0o777, mode);
        port.stop_listening().await?;
    }
    Ok(())
}

#[torsion::test]
async fn a_stale_socket_file_is_removed_and_the_port_binds() -> Result<(), Failure> {
    let path = TempPath::new("unix-stale");
    drop(std::os::unix::net::UnixListener::bind(&path.0)?); // the file stays behind
    assert!(path.0.exists());

    // Without clean-up, the stale file is in the way.
    let options = UnixListenOptions {
        cleanup_stale: false,
        ..UnixListenOptions::default()
    };
    let refused = reactor()
        .listen_unix_with(&path, echo_factory(&Rc::default()), options)
        .unwrap_err();
    assert!(refused.check::<CannotListenError>());

    let server: Rc<Record> = Rc::default();
    let port = reactor().listen_unix(&path, echo_factory(&server))?;
    assert_eq!(tokio_echo(path.as_ref(), b"fresh").await?, b"fresh");
    next(&server.ended).await;
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn a_live_listener_makes_a_second_listen_fail() -> Result<(), Failure> {
    let path = TempPath::new("unix-in-use");
    let port = reactor().listen_unix(&path, echo_factory(&Rc::default()))?;
    let second = reactor()
        .listen_unix(&path, echo_factory(&Rc::default()))
        .unwrap_err();
    let err = second
        .downcast_ref::<CannotListenError>()
        .expect("CannotListenError");
    assert_eq!(err.io_error().kind(), std::io::ErrorKind::AddrInUse);
    assert!(second.to_string().contains(&path.0.display().to_string()));
    assert!(path.0.exists(), "the live listener's file is left alone");
    assert!(port.listening());
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn stop_listening_removes_the_socket_file() -> Result<(), Failure> {
    let path = TempPath::new("unix-remove");
    let port = reactor().listen_unix(&path, echo_factory(&Rc::default()))?;
    assert!(std::fs::symlink_metadata(&path.0).is_ok());
    port.stop_listening().await?;
    assert!(!port.listening());
    assert!(std::fs::symlink_metadata(&path.0).is_err());
    Ok(())
}

/// Records how connecting went.
#[derive(Default)]
struct Attempts {
    failed: RefCell<Vec<Failure>>,
    done: DeferredQueue<()>,
}

struct FailingClient(Rc<Attempts>);

impl Factory for FailingClient {
    type Protocol = Echo;
    fn build_protocol(&self, _addr: &Address) -> Option<Echo> {
        Some(Echo { rec: Rc::default() })
    }
}

impl ClientFactory for FailingClient {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.0.failed.borrow_mut().push(reason);
        self.0.done.put(()).unwrap();
    }
}

#[torsion::test]
async fn connecting_to_a_missing_path_fails_with_connect_error_naming_it() -> Result<(), Failure> {
    let path = TempPath::new("unix-missing");
    let attempts: Rc<Attempts> = Rc::default();
    reactor().connect_unix(&path, FailingClient(attempts.clone()));
    next(&attempts.done).await;
    let failed = attempts.failed.borrow();
    let reason = &failed[0];
    assert!(reason.check::<ConnectError>(), "{reason}");
    assert!(reason.to_string().contains(&path.0.display().to_string()));
    Ok(())
}

#[torsion::test]
async fn connecting_to_a_socket_nobody_listens_on_is_refused() -> Result<(), Failure> {
    let path = TempPath::new("unix-refused");
    drop(std::os::unix::net::UnixListener::bind(&path.0)?);
    let attempts: Rc<Attempts> = Rc::default();
    reactor().connect_unix(&path, FailingClient(attempts.clone()));
    next(&attempts.done).await;
    let reason = &attempts.failed.borrow()[0];
    assert!(reason.check::<ConnectionRefusedError>(), "{reason}");
    Ok(())
}

#[cfg(target_os = "linux")]
#[torsion::test]
async fn an_abstract_name_round_trips_without_a_file() -> Result<(), Failure> {
    let name = format!("@torsion-abstract-{}", std::process::id());
    let server: Rc<Record> = Rc::default();
    let port = reactor().listen_unix(&name, echo_factory(&server))?;
    assert_eq!(port.get_host(), Address::Unix(Some(PathBuf::from(&name))));
    assert!(!Path::new(&name).exists());

    let client: Rc<Record> = Rc::default();
    let c = client.clone();
    reactor().connect_unix(
        &name,
        factory(move || EchoClient {
            message: b"abstract",
            rec: c.clone(),
        }),
    );
    next(&client.ended).await;
    next(&server.ended).await;
    assert_eq!(&*client.received.borrow(), b"abstract");

    // A second listener on the same name is refused by the kernel.
    let second = reactor()
        .listen_unix(&name, echo_factory(&Rc::default()))
        .unwrap_err();
    assert!(second.check::<CannotListenError>());
    assert!(second.to_string().contains(&name));
    port.stop_listening().await?;
    Ok(())
}

/// Answers with the byte count once the peer stops writing.
struct Counter {
    got: usize,
}

impl Protocol for Counter {
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.got += data.len();
    }
    fn read_connection_lost(&mut self, t: &Transport) {
        t.write(format!("got {}", self.got).as_bytes());
        t.lose_connection();
    }
}

/// Sends a question, closes its sending half, and collects the answer.
struct HalfCloser {
    rec: Rc<Record>,
}

impl Protocol for HalfCloser {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"0123456789");
        t.lose_write_connection();
    }
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.rec.received.borrow_mut().extend_from_slice(data);
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

#[torsion::test]
async fn half_close_lets_the_server_answer_after_the_client_stops_writing() -> Result<(), Failure> {
    let path = TempPath::new("unix-half-close");
    let port = reactor().listen_unix(&path, factory(|| Counter { got: 0 }))?;
    let client: Rc<Record> = Rc::default();
    let c = client.clone();
    reactor().connect_unix(&path, factory(move || HalfCloser { rec: c.clone() }));
    next(&client.ended).await;
    assert_eq!(&*client.received.borrow(), b"got 10");
    assert!(client
        .lost
        .borrow()
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
    port.stop_listening().await?;
    Ok(())
}

const BIG: usize = 10 * 1024 * 1024;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Writes ten megabytes at once and closes.
struct Flood {
    rec: Rc<Record>,
}

impl Protocol for Flood {
    fn connection_made(&mut self, t: &Transport) {
        let data: Vec<u8> = (0..BIG).map(pattern).collect();
        t.write(&data);
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

#[torsion::test]
async fn lose_connection_flushes_pending_writes_before_closing() -> Result<(), Failure> {
    let path = TempPath::new("unix-flush");
    let server: Rc<Record> = Rc::default();
    let s = server.clone();
    let port = reactor().listen_unix(&path, factory(move || Flood { rec: s.clone() }))?;
    let mut stream = tokio::net::UnixStream::connect(&path.0).await?;
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await?;
    assert_eq!(all.len(), BIG);
    assert!(all.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    next(&server.ended).await;
    assert!(server
        .lost
        .borrow()
        .as_ref()
        .unwrap()
        .check::<ConnectionDone>());
    port.stop_listening().await?;
    Ok(())
}
