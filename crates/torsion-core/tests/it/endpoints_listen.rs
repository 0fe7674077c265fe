//! Endpoint strings that listen and connect for real: `unix:` both ways, `backlog=`,
//! a client's `bindAddress=`, `haproxy:` around tcp and unix, and `systemd:` refusing
//! clearly when nothing was passed.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use crate::support::TempPath;
use torsion::defer::{Deferred, Trigger};
use torsion::endpoints::{client_from_string, server_from_string, ServerDescription};
use torsion::error::{CannotListenError, ConnectError};
use torsion::threads::defer_to_thread;
use torsion::{factory, reactor, ClientFactory, Factory, Failure, Protocol, Transport};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// Tells the peer address it sees, then closes.
struct Peer;
impl Protocol for Peer {
    fn connection_made(&mut self, t: &Transport) {
        t.write(format!("{}", t.get_peer()).as_bytes());
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

/// A client that sends `msg`, collects everything, and fires when the connection ends.
struct Collect {
    msg: &'static [u8],
    got: Rc<RefCell<Vec<u8>>>,
    done: RefCell<Option<Trigger<Vec<u8>>>>,
}

struct CollectProto {
    msg: &'static [u8],
    got: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for CollectProto {
    fn connection_made(&mut self, t: &Transport) {
        t.write(self.msg);
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
        if self.got.borrow().len() >= self.msg.len() && !self.msg.is_empty() {
            t.lose_connection();
        }
    }
}

impl Factory for Collect {
    type Protocol = CollectProto;
    fn build_protocol(&self, _: &torsion::transport::Address) -> Option<CollectProto> {
        Some(CollectProto {
            msg: self.msg,
            got: self.got.clone(),
        })
    }
}

impl ClientFactory for Collect {
    fn client_connection_failed(&self, _: &torsion::tcp::Connector, reason: Failure) {
        if let Some(d) = self.done.borrow_mut().take() {
            d.errback(reason);
        }
    }
    fn client_connection_lost(&self, _: &torsion::tcp::Connector, _: Failure) {
        if let Some(d) = self.done.borrow_mut().take() {
            d.callback(self.got.borrow().clone());
        }
    }
}

/// Connects with `endpoint`, sends `msg`, and returns what came back before the close.
async fn exchange(endpoint: &str, msg: &'static [u8]) -> Result<Vec<u8>, Failure> {
    let d = Deferred::new();
    let f = Collect {
        msg,
        got: Rc::default(),
        done: RefCell::new(Some(d.trigger())),
    };
    client_from_string(&reactor(), endpoint)
        .unwrap()
        .connect(f)?;
    d.await
}

#[torsion::test]
async fn unix_endpoints_listen_and_connect() -> Result<(), Failure> {
    let path = TempPath::new("ep-echo");
    let s = format!("unix:{}:mode=600:backlog=7", path.esc());
    let port = server_from_string(&reactor(), &s)
        .unwrap()
        .listen(factory(|| Echo))
        .await?;
    let mode = std::fs::metadata(&path.0)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let got = exchange(&format!("unix:{}:timeout=5", path.esc()), b"over unix").await?;
    assert_eq!(got, b"over unix");
    port.stop_listening().await?;
    assert!(!path.0.exists());

    // Nobody listens now: the client endpoint fails as connect_unix does.
    let err = exchange(&format!("unix:{}", path.esc()), b"x")
        .await
        .unwrap_err();
    assert!(err.check::<ConnectError>() || err.error_message().contains("No such file"));
    Ok(())
}

/// The backlog `ss` shows for the listening socket on the line containing `needle` (its
/// Send-Q, column `column`), or None (said loudly) without `ss`.
fn ss_backlog(args: &[&str], column: usize, needle: &str) -> Option<u32> {
    let Ok(out) = Command::new("ss").args(args).output() else {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "ss (iproute2) is missing: the backlog was not checked",
        );
        return None;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("ss {args:?} does not list {needle}:\n{text}"));
    let backlog = line
        .split_whitespace()
        .nth(column)
        .and_then(|n| n.parse().ok());
    Some(backlog.unwrap_or_else(|| panic!("no Send-Q in {line}")))
}

#[torsion::test]
async fn backlog_is_applied_to_tcp_and_unix() -> Result<(), Failure> {
    let tcp = server_from_string(&reactor(), "tcp:0:interface=127.0.0.1:backlog=7")
        .unwrap()
        .listen(factory(|| Echo))
        .await?;
    let p = tcp.get_host().port().unwrap();
    let path = TempPath::new("ep-backlog");
    let unix = server_from_string(&reactor(), &format!("unix:{}:backlog=9", path.esc()))
        .unwrap()
        .listen(factory(|| Echo))
        .await?;
    let default = server_from_string(&reactor(), "tcp:0:interface=127.0.0.1")
        .unwrap()
        .listen(factory(|| Echo))
        .await?;
    let d = default.get_host().port().unwrap();
    let p0 = path.0.display().to_string();
    let (t, u, dflt) = defer_to_thread(move || {
        (
            ss_backlog(&["-ltnH"], 2, &format!("127.0.0.1:{p} ")),
            ss_backlog(&["-lxH"], 3, &p0),
            ss_backlog(&["-ltnH"], 2, &format!("127.0.0.1:{d} ")),
        )
    })
    .await?;
    if let (Some(t), Some(u), Some(dflt)) = (t, u, dflt) {
        assert_eq!((t, u, dflt), (7, 9, 1024));
    }
    for port in [tcp, unix, default] {
        port.stop_listening().await?;
    }
    Ok(())
}

#[torsion::test]
async fn bind_address_sets_the_clients_own_address() -> Result<(), Failure> {
    let port = server_from_string(&reactor(), "tcp:0:interface=127.0.0.1")
        .unwrap()
        .listen(factory(|| Peer))
        .await?;
    let p = port.get_host().port().unwrap();
    let got = exchange(&format!("tcp:127.0.0.1:{p}:bindAddress=127.0.0.7"), b"").await?;
    let seen = String::from_utf8(got).unwrap();
    assert!(seen.starts_with("tcp:127.0.0.7:"), "{seen}");

    // With a port too (escaped colon).
    let free = std::net::TcpListener::bind("127.0.0.8:0")?
        .local_addr()?
        .port();
    let got = exchange(
        &format!("tcp:127.0.0.1:{p}:bindAddress=127.0.0.8\\:{free}"),
        b"",
    )
    .await?;
    assert_eq!(
        String::from_utf8(got).unwrap(),
        format!("tcp:127.0.0.8:{free}")
    );

    // Not an address: refused at once, the factory never called.
    let err = client_from_string(
        &reactor(),
        &format!("tcp:127.0.0.1:{p}:bindAddress=nowhere"),
    )
    .unwrap()
    .connect(factory(|| Echo))
    .unwrap_err();
    assert!(err.check::<ConnectError>());
    port.stop_listening().await?;
    Ok(())
}

#[test]
fn haproxy_descriptions_parse_and_print() {
    let d: ServerDescription = "haproxy:tcp:8080:interface=127.0.0.1".parse().unwrap();
    let ServerDescription::HAProxy(inner) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(inner.to_string(), "tcp:8080:interface=127.0.0.1");
    assert_eq!(d.to_string(), "haproxy:tcp:8080:interface=127.0.0.1");
    let again: ServerDescription = d.to_string().parse().unwrap();
    assert_eq!(again, d);
    assert_eq!(
        "HAPROXY:unix:/s"
            .parse::<ServerDescription>()
            .unwrap()
            .to_string(),
        "haproxy:unix:/s"
    );
    let nested = "haproxy:haproxy:tcp:1"
        .parse::<ServerDescription>()
        .unwrap_err();
    assert!(
        nested.to_string().contains("one PROXY protocol layer"),
        "{nested}"
    );
    assert!("haproxy:tcp:port=x".parse::<ServerDescription>().is_err());
    assert!("haproxy:".parse::<ServerDescription>().is_err());
}

#[torsion::test]
async fn haproxy_endpoints_over_tcp_and_unix() -> Result<(), Failure> {
    let tcp = server_from_string(&reactor(), "haproxy:tcp:0:interface=127.0.0.1")
        .unwrap()
        .listen(factory(|| Peer))
        .await?;
    let p = tcp.get_host().port().unwrap();
    let path = TempPath::new("ep-haproxy");
    let unix = server_from_string(&reactor(), &format!("haproxy:unix:{}", path.esc()))
        .unwrap()
        .listen(factory(|| Peer))
        .await?;
    let upath = path.0.clone();
    let (over_tcp, over_unix, refused) = defer_to_thread(move || {
        let ask = |mut s: Box<dyn ReadWrite>, header: &[u8]| {
            s.write_all(header).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        };
        let tcp = || {
            let s = TcpStream::connect(("127.0.0.1", p)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            Box::new(s) as Box<dyn ReadWrite>
        };
        let unix = || {
            let s = UnixStream::connect(&upath).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            Box::new(s) as Box<dyn ReadWrite>
        };
        (
            ask(tcp(), b"PROXY TCP4 203.0.113.9 10.0.0.1 4242 80\r\n"),
            ask(unix(), b"PROXY TCP6 2001:db8::9 ::1 4343 80\r\n"),
            ask(tcp(), b"HELLO\r\n"),
        )
    })
    .await?;
    assert_eq!(over_tcp, "tcp:203.0.113.9:4242");
    assert_eq!(over_unix, "tcp:[2001:db8::9]:4343");
    assert_eq!(refused, "");
    tcp.stop_listening().await?;
    unix.stop_listening().await?;
    Ok(())
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

#[torsion::test]
async fn systemd_without_sockets_refuses_clearly() -> Result<(), Failure> {
    // This process was not socket-activated (LISTEN_PID is not ours).
    let err = server_from_string(&reactor(), "systemd:domain=INET:index=0")
        .unwrap()
        .listen(factory(|| Echo))
        .await
        .unwrap_err();
    assert!(err.check::<CannotListenError>());
    assert!(
        err.error_message().contains("LISTEN_PID"),
        "{}",
        err.error_message()
    );
    Ok(())
}
