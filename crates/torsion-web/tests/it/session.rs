//! Cookie sessions: the cookie names the session, values persist between requests, sessions
//! expire after the idle time-out (on a test Clock), activity extends them, ids are unique.

use std::cell::Cell;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::testing::Clock;
use torsion::{reactor, Failure};
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

/// Counts visits per session; counts expiries.
struct Visits {
    expired: Rc<Cell<u32>>,
}

impl Resource for Visits {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Render {
        let session = request.get_session();
        let n = session.get::<u32>().unwrap_or(0) + 1;
        if n == 1 {
            let expired = self.expired.clone();
            session.notify_on_expire(move || expired.set(expired.get() + 1));
        }
        session.set(n);
        format!("visit {n}").into()
    }
}

/// GETs `/` with an optional cookie; returns (body, the session cookie set, if any).
async fn visit(addr: std::net::SocketAddr, cookie: Option<&str>) -> (String, Option<String>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: TORSION_SESSION={c}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("GET / HTTP/1.1\r\nHost: x\r\n{cookie}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let set = out.lines().find_map(|l| {
        let v = l.strip_prefix("Set-Cookie: TORSION_SESSION=")?;
        Some(v.split(';').next().unwrap().to_owned())
    });
    (out.split_once("\r\n\r\n").unwrap().1.to_owned(), set)
}

fn site(clock: &Clock, expired: &Rc<Cell<u32>>) -> Site {
    let site = Site::with_config(
        Rc::new(Visits {
            expired: expired.clone(),
        }),
        SiteConfig::default(),
    );
    site.set_clock(clock.clone());
    site
}

#[torsion::test]
async fn a_session_persists_between_requests_and_expires_when_idle() -> Result<(), Failure> {
    let clock = Clock::new();
    let expired = Rc::new(Cell::new(0));
    let site = site(&clock, &expired);
    let port = reactor().listen_tcp_on(0, site.clone(), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();

    let (body, cookie) = visit(addr, None).await;
    assert_eq!(body, "visit 1");
    let uid = cookie.expect("a session cookie was set");
    assert_eq!(uid.len(), 32);
    assert!(uid.bytes().all(|b| b.is_ascii_hexdigit()));

    let (body, again) = visit(addr, Some(&uid)).await;
    assert_eq!((body.as_str(), again), ("visit 2", None));

    clock.advance(800.0);
    assert_eq!(
        visit(addr, Some(&uid)).await.0,
        "visit 3",
        "still alive at 800 s"
    );
    clock.advance(800.0);
    assert_eq!(expired.get(), 0, "activity at 800 s extended it past 900 s");
    clock.advance(100.0);
    assert_eq!(expired.get(), 1, "expired 900 s after the last visit");
    assert_eq!(site.session_count(), 0);

    let (body, new) = visit(addr, Some(&uid)).await;
    assert_eq!(body, "visit 1", "an expired id starts a new session");
    assert_ne!(new.as_deref(), Some(uid.as_str()));
    site.expire_sessions();
    port.stop_listening().await
}

#[torsion::test]
async fn an_unknown_cookie_starts_a_fresh_session() -> Result<(), Failure> {
    let clock = Clock::new();
    let expired = Rc::new(Cell::new(0));
    let site = site(&clock, &expired);
    let port = reactor().listen_tcp_on(0, site.clone(), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    let (body, cookie) = visit(addr, Some("0123456789abcdef0123456789abcdef")).await;
    assert_eq!(body, "visit 1");
    assert!(cookie.is_some());
    site.expire_sessions();
    assert_eq!(expired.get(), 1);
    port.stop_listening().await
}

#[torsion::test]
async fn session_ids_are_unique() -> Result<(), Failure> {
    let clock = Clock::new();
    let expired = Rc::new(Cell::new(0));
    let site = site(&clock, &expired);
    let port = reactor().listen_tcp_on(0, site.clone(), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..200 {
        ids.insert(visit(addr, None).await.1.unwrap());
    }
    assert_eq!(ids.len(), 200);
    site.expire_sessions();
    port.stop_listening().await
}
