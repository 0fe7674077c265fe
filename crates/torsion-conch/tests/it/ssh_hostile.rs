//! Hostile clients: silent floods, a client stalled in key exchange, an oversized packet, and
//! refused logins that take the same time whatever refused them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{describe, have_ssh, keygen, session, ssh_key, with_server, TempDir};
use torsion_conch::keys::{AuthorizedKeysChecker, SshPublicKey};
use torsion_conch::ssh::{HostKey, SshOptions, SshRealm, SshServer};
use torsion_cred::Portal;

fn options(grace_ms: u64, max_connections: usize) -> SshOptions {
    SshOptions {
        login_grace_time: Duration::from_millis(grace_ms),
        max_connections,
        rejection_time: Duration::from_millis(500),
        ..SshOptions::default()
    }
}

fn key_server(dir: &Path, users: &[&str], options: SshOptions) -> SshServer {
    let portal = Portal::new(SshRealm);
    portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file(
        dir.join("authorized_keys"),
        users,
    ));
    SshServer::with_options(portal, vec![HostKey::generate()], session, options)
}

/// Reads until the server closes; the time it took, or None past `deadline`.
fn closed_within(s: &mut TcpStream, deadline: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn a_client_stalled_in_key_exchange_is_closed_after_the_grace_time() {
    let dir = TempDir::new("stall");
    std::fs::write(dir.join("authorized_keys"), "").unwrap();
    let d2 = dir.path().to_owned();
    let took = with_server(
        move || key_server(&d2, &[], options(800, 100)),
        move |port| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            // The identification line, then silence: the server's KEXINIT goes unanswered.
            s.write_all(b"SSH-2.0-Stalled_1.0\r\n").unwrap();
            closed_within(&mut s, Duration::from_secs(20))
        },
    );
    let took = took.expect("the server closed the stalled connection");
    assert!(took >= Duration::from_millis(600), "closed after {took:?}");
}

#[test]
fn a_silent_flood_is_bounded_and_timed_out() {
    let dir = TempDir::new("flood");
    std::fs::write(dir.join("authorized_keys"), "").unwrap();
    let d2 = dir.path().to_owned();
    let (early, all) = with_server(
        move || key_server(&d2, &[], options(1500, 20)),
        move |port| {
            let mut socks: Vec<TcpStream> = (0..60)
                .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
                .collect();
            let start = Instant::now();
            // Past the limit of 20, connections are closed at accept.
            let mut early = 0;
            for s in socks.iter_mut() {
                if closed_within(s, Duration::from_millis(20)).is_some() {
                    early += 1;
                }
            }
            let mut all = true;
            for s in socks.iter_mut() {
                all &= closed_within(s, Duration::from_secs(20)).is_some();
            }
            (early, all && start.elapsed() < Duration::from_secs(20))
        },
    );
    assert!(
        early >= 40,
        "{early} of the 40 past the limit closed at once"
    );
    assert!(all, "every silent connection was closed by the grace time");
}

#[test]
fn an_oversized_packet_closes_the_connection() {
    let dir = TempDir::new("oversized");
    std::fs::write(dir.join("authorized_keys"), "").unwrap();
    let d2 = dir.path().to_owned();
    let closed = with_server(
        move || key_server(&d2, &[], options(30_000, 100)),
        move |port| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"SSH-2.0-Big_1.0\r\n").unwrap();
            // A packet announcing 2 GiB: the server must not wait for (or allocate) it.
            let mut packet = vec![0x7f, 0xff, 0xff, 0xff, 10];
            packet.extend_from_slice(&[0u8; 1024]);
            let _ = s.write_all(&packet);
            closed_within(&mut s, Duration::from_secs(10))
        },
    );
    assert!(closed.is_some(), "the server closed the connection");
}

#[test]
fn unknown_user_and_wrong_key_are_refused_in_the_same_time() {
    if !have_ssh() {
        return;
    }
    let dir = TempDir::new("timing");
    let public = keygen(&dir.join("id"));
    keygen(&dir.join("other"));
    std::fs::write(dir.join("authorized_keys"), public).unwrap();
    let d = dir.path().to_owned();
    let d2 = d.clone();
    let times = with_server(
        move || key_server(&d2, &["alice"], options(30_000, 100)),
        move |port| {
            let time = |user: &str, key: &str| {
                let start = Instant::now();
                let out = ssh_key(&d, port, &d.join(key))
                    .arg(format!("{user}@127.0.0.1"))
                    .arg("echo in")
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
                start.elapsed()
            };
            // Warm up (the first connection pays for the known_hosts entry).
            time("alice", "other");
            let mut unknown = Vec::new();
            let mut wrong = Vec::new();
            for _ in 0..3 {
                unknown.push(time("mallory", "id"));
                wrong.push(time("alice", "other"));
            }
            let ok = ssh_key(&d, port, &d.join("id"))
                .arg("alice@127.0.0.1")
                .arg("echo in")
                .output()
                .unwrap();
            (unknown, wrong, ok)
        },
    );
    let (unknown, wrong, ok) = times;
    assert_eq!(ok.status.code(), Some(0), "{}", describe(&ok));
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[1]
    };
    let (u, w) = (median(unknown), median(wrong));
    assert!(
        u >= Duration::from_millis(500),
        "unknown user refused in {u:?}"
    );
    assert!(
        w >= Duration::from_millis(500),
        "wrong key refused in {w:?}"
    );
    let gap = u.abs_diff(w);
    assert!(
        gap < Duration::from_millis(300),
        "unknown user {u:?}, wrong key {w:?}"
    );
}
