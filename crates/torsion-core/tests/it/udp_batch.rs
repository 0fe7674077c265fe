//! UDP writes made while a batch of datagrams is delivered (Linux reads them with `recvmmsg`
//! and sends the replies with one `sendmmsg`): every reply goes, in order, and a queued
//! write's error is logged and counted, where a write outside a batch returns it, and a burst
//! after small reads (which offer fewer slots) is read whole (docs/design.md, "UDP writes
//! during a read batch are sent together").

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;

use crate::support::Capture;
use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::{reactor, Failure};

fn v4() -> UdpOptions {
    UdpOptions {
        interface: Ipv4Addr::LOCALHOST.into(),
        ..UdpOptions::default()
    }
}

/// Not allowed without `SO_BROADCAST`: sending here fails with `EACCES`.
fn broadcast() -> Address {
    Address::Udp(SocketAddr::new(Ipv4Addr::BROADCAST.into(), 9))
}

/// Answers each datagram with three (the datagram and a digit); on "broadcast" it first
/// writes to the broadcast address, keeping what `write` returned.
struct Replier {
    results: Rc<RefCell<Vec<io::Result<()>>>>,
}

impl DatagramProtocol for Replier {
    fn datagram_received(&mut self, t: &DatagramTransport, data: &[u8], addr: &Address) {
        if data == b"broadcast" {
            self.results.borrow_mut().push(t.write(b"x", &broadcast()));
        }
        for k in 0..3 {
            let reply = [data, &[b'0' + k]].concat();
            t.write(&reply, addr).unwrap();
        }
    }
}

async fn replies(peer: &tokio::net::UdpSocket, count: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < count {
        let n = peer.recv(&mut buf).await?;
        got.push(buf[..n].to_vec());
    }
    Ok(got)
}

/// Sends 100 datagrams named `prefix` and a number at once (more than one batch's worth), and
/// checks the three replies to each come back in order (300: more than one queue's worth).
async fn burst_is_answered_in_order(peer: &tokio::net::UdpSocket, prefix: &str) -> io::Result<()> {
    let asked: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("{prefix}{i:03}").into_bytes())
        .collect();
    for q in &asked {
        peer.send(q).await?;
    }
    let expected: Vec<Vec<u8>> = asked
        .iter()
        .flat_map(|q| (0..3).map(move |k| [&q[..], &[b'0' + k]].concat()))
        .collect();
    assert_eq!(replies(peer, expected.len()).await?, expected);
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn replies_written_during_a_batch_all_go_in_order() -> Result<(), Failure> {
    let results = Rc::default();
    let port = reactor().listen_udp_with(0, Replier { results }, v4())?;
    let target = port.get_host().socket_addr().unwrap();
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    peer.connect(target).await?;
    // Sent before the port's task runs: it finds them waiting and reads them together (more
    // than one batch's worth, and 300 replies: more than one queue's worth).
    burst_is_answered_in_order(&peer, "q").await?;
    assert_eq!((port.dropped_writes(), port.failed_writes()), (0, 0));
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_burst_after_a_trickle_is_all_read_in_order() -> Result<(), Failure> {
    // After reads of one datagram, the next read offers fewer slots (8 rather than 32); a
    // burst then must still be read whole, the reads growing back to 32.
    let results = Rc::default();
    let port = reactor().listen_udp_with(0, Replier { results }, v4())?;
    let target = port.get_host().socket_addr().unwrap();
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    peer.connect(target).await?;
    for q in [&b"one"[..], b"two"] {
        peer.send(q).await?;
        let expected: Vec<Vec<u8>> = (0..3).map(|k| [q, &[b'0' + k]].concat()).collect();
        assert_eq!(replies(&peer, 3).await?, expected);
    }
    burst_is_answered_in_order(&peer, "b").await?;
    assert_eq!((port.dropped_writes(), port.failed_writes()), (0, 0));
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_queued_writes_error_is_logged_and_counted_not_returned() -> Result<(), Failure> {
    let capture = Capture::default();
    let _guard = capture.start_debug();
    let results: Rc<RefCell<Vec<io::Result<()>>>> = Rc::default();
    let port = reactor().listen_udp_with(
        0,
        Replier {
            results: results.clone(),
        },
        v4(),
    )?;
    // Outside a batch a write goes at once, and its error is the caller's, as in Twisted.
    let e = port.write(b"x", &broadcast()).expect_err("EACCES");
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);

    let target = port.get_host().socket_addr().unwrap();
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    peer.connect(target).await?;
    peer.send(b"broadcast").await?;
    peer.send(b"after").await?;
    let got = replies(&peer, 6).await?;
    assert_eq!(
        got,
        [
            &b"broadcast0"[..],
            b"broadcast1",
            b"broadcast2",
            b"after0",
            b"after1",
            b"after2"
        ],
        "the datagrams queued with the failing one went"
    );
    let results = results.take();
    assert_eq!(results.len(), 1);
    if cfg!(target_os = "linux") {
        // Inside a batch the write is queued: it returns Ok, and the error shows up when the
        // batch's writes are sent.
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert_eq!(port.failed_writes(), 1);
        let log = capture.text();
        assert!(
            log.contains("written during a batch was not sent")
                && log.contains("255.255.255.255:9"),
            "{log}"
        );
    } else {
        assert_eq!(
            results[0].as_ref().unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }
    port.stop_listening().await?;
    Ok(())
}
