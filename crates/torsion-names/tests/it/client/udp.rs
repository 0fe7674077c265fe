//! The UDP/TCP client against servers the test plays: ids, ports, answer checks, response
//! codes, retries and timeouts, truncation.

use std::collections::HashSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::defer::Deferred;
use torsion::error::CancelledError;
use torsion::testing::Clock;
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::{factory, Failure, Protocol, Reactor, Transport};
use torsion_names::client::ClientResolver;
use torsion_names::error::{
    DnsFormatError, DnsNameError, DnsNotImplementedError, DnsQueryRefusedError,
    DnsQueryTimeoutError, DnsServerError, DnsUnknownError,
};
use torsion_names::proto::op::{Message, MessageType, ResponseCode};
use torsion_names::proto::rr::rdata::TXT;
use torsion_names::{Answer, Name, RData, Record, RecordType, Resolver};

use super::{a, reply, FakeServer};

fn first_a(answer: &Answer) -> Ipv4Addr {
    match &answer.answers[0].data {
        RData::A(a) => a.0,
        other => panic!("not an A record: {other:?}"),
    }
}

#[torsion::test(timeout = 10)]
async fn each_query_has_a_random_id_and_a_port_of_its_own() -> Result<(), Failure> {
    let r = torsion::reactor();
    let server = FakeServer::start(&r, |q, _| {
        vec![reply(q, vec![a(&q.queries[0].name, [192, 0, 2, 1], 60)])
            .to_vec()
            .unwrap()]
    });
    let client = ClientResolver::new(&r, vec![server.addr()]);
    for _ in 0..8 {
        let answer = client.lookup_address("www.example.test").await?;
        assert_eq!(first_a(&answer), Ipv4Addr::new(192, 0, 2, 1));
    }
    let seen = server.seen.borrow().clone();
    assert_eq!(seen.len(), 8);
    let ids: HashSet<u16> = seen.iter().map(|(m, _)| m.metadata.id).collect();
    let ports: HashSet<u16> = seen.iter().map(|(_, from)| from.port()).collect();
    assert!(ids.len() >= 6, "ids repeat: {ids:?}");
    assert!(ports.len() >= 6, "source ports repeat: {ports:?}");
    let q = &seen[0].0;
    assert!(q.metadata.recursion_desired);
    assert_eq!(q.queries[0].name().to_string(), "www.example.test.");
    server.port.stop_listening();
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn answers_that_do_not_match_the_query_are_dropped() -> Result<(), Failure> {
    let r = torsion::reactor();
    let options = UdpOptions {
        interface: Ipv4Addr::LOCALHOST.into(),
        ..UdpOptions::default()
    };
    // A second port playing an off-path attacker who guessed everything but the address.
    struct Quiet;
    impl torsion::datagram::DatagramProtocol for Quiet {
        fn datagram_received(
            &mut self,
            _: &torsion::datagram::DatagramTransport,
            _: &[u8],
            _: &Address,
        ) {
        }
    }
    let spoofer = r.listen_udp_with(0, Quiet, options)?;
    let from_spoofer = spoofer.clone();
    let server = FakeServer::start(&r, move |q, asker| {
        let name = &q.queries[0].name;
        let evil = || vec![a(name, [203, 0, 113, 66], 60)];
        let forged = reply(q, evil()).to_vec().unwrap();
        from_spoofer.write(&forged, &Address::Udp(asker)).unwrap();
        let mut wrong_id = reply(q, evil());
        wrong_id.metadata.id = q.metadata.id.wrapping_add(1);
        let mut wrong_question = reply(q, evil());
        wrong_question.queries[0].set_name("other.example.test.".parse().unwrap());
        let mut wrong_type = reply(q, evil());
        wrong_type.queries[0].set_query_type(RecordType::AAAA);
        let mut not_a_response = reply(q, evil());
        not_a_response.metadata.message_type = MessageType::Query;
        // 0x20-style case changes are the same question.
        let mut right = reply(q, vec![a(name, [192, 0, 2, 7], 60)]);
        right.queries[0].set_name("WWW.Example.TEST.".parse().unwrap());
        vec![
            b"\x00\x01garbage".to_vec(),
            wrong_id.to_vec().unwrap(),
            wrong_question.to_vec().unwrap(),
            wrong_type.to_vec().unwrap(),
            not_a_response.to_vec().unwrap(),
            right.to_vec().unwrap(),
        ]
    });
    let client = ClientResolver::new(&r, vec![server.addr()]);
    let answer = client.lookup_address("www.example.test").await?;
    assert_eq!(first_a(&answer), Ipv4Addr::new(192, 0, 2, 7));
    assert_eq!(answer.answers.len(), 1);
    server.port.stop_listening();
    spoofer.stop_listening();
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn response_codes_become_twisteds_errors() -> Result<(), Failure> {
    let r = torsion::reactor();
    let codes = [
        ("nx", ResponseCode::NXDomain),
        ("servfail", ResponseCode::ServFail),
        ("formerr", ResponseCode::FormErr),
        ("notimp", ResponseCode::NotImp),
        ("refused", ResponseCode::Refused),
        ("yxdomain", ResponseCode::YXDomain),
    ];
    let server = FakeServer::start(&r, move |q, _| {
        let label = q.queries[0].name.iter().next().unwrap().to_vec();
        let code = codes
            .iter()
            .find(|(l, _)| l.as_bytes() == label)
            .map_or(ResponseCode::NoError, |(_, c)| *c);
        let mut m = reply(q, vec![]);
        m.metadata.response_code = code;
        vec![m.to_vec().unwrap()]
    });
    let client = ClientResolver::new(&r, vec![server.addr()]);
    let failure = |name: &str| {
        let d = client.lookup_address(name);
        async move { d.await.unwrap_err() }
    };
    assert!(failure("nx.example.test").await.check::<DnsNameError>());
    assert!(failure("servfail.example.test")
        .await
        .check::<DnsServerError>());
    assert!(failure("formerr.example.test")
        .await
        .check::<DnsFormatError>());
    assert!(failure("notimp.example.test")
        .await
        .check::<DnsNotImplementedError>());
    assert!(failure("refused.example.test")
        .await
        .check::<DnsQueryRefusedError>());
    assert!(failure("yxdomain.example.test")
        .await
        .check::<DnsUnknownError>());
    let empty = client.lookup_address("fine.example.test").await?;
    assert!(
        empty.answers.is_empty(),
        "NOERROR with no record is an empty answer"
    );
    server.port.stop_listening();
    Ok(())
}

/// The next query a silent server got, within a few seconds (the client sends at once: the
/// wait only covers the kernel).
fn next_query(server: &UdpSocket) -> Option<Message> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match server.recv_from(&mut buf) {
            Ok((n, _)) => return Message::from_vec(&buf[..n]).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
    }
    None
}

fn silent_server() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

fn nothing_waiting(server: &UdpSocket) -> bool {
    let mut buf = [0u8; 2048];
    matches!(server.recv_from(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn retries_go_round_the_servers_once_per_timeout_as_twisted() {
    let reactor = Reactor::new();
    let (one, two) = (silent_server(), silent_server());
    let client = ClientResolver::new(
        &reactor,
        vec![one.local_addr().unwrap(), two.local_addr().unwrap()],
    );
    let clock = Rc::new(Clock::new());
    client.set_clock(clock.clone());
    let d = client.lookup_address("slow.example.test");
    let mut ids = HashSet::new();
    // Twisted's (1, 3, 11, 45): each round asks server one, then server two.
    for timeout in [1.0, 3.0, 11.0, 45.0] {
        for server in [&one, &two] {
            let q = next_query(server).expect("a try");
            assert_eq!(q.queries[0].name().to_string(), "slow.example.test.");
            ids.insert(q.metadata.id);
            assert!(d.result().is_none());
            clock.advance(timeout - 0.001);
            assert!(
                nothing_waiting(&one) && nothing_waiting(&two),
                "a try before its timeout"
            );
            clock.advance(0.001);
        }
    }
    let failure = d
        .result()
        .expect("fired after the last timeout")
        .unwrap_err();
    assert!(failure.check::<DnsQueryTimeoutError>(), "{failure}");
    assert!(ids.len() >= 6, "every try has a fresh id: {ids:?}");
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn timeouts_can_be_set() {
    let reactor = Reactor::new();
    let silent = silent_server();
    let client = ClientResolver::new(&reactor, vec![silent.local_addr().unwrap()]);
    let clock = Rc::new(Clock::new());
    client.set_clock(clock.clone());
    client.set_timeouts(vec![0.5]);
    let d = client.lookup_text("slow.example.test");
    clock.advance(0.5);
    assert!(d
        .result()
        .unwrap()
        .unwrap_err()
        .check::<DnsQueryTimeoutError>());
}

#[torsion::test(timeout = 10)]
async fn cancelling_a_lookup_closes_its_port_and_timer() -> Result<(), Failure> {
    let r = torsion::reactor();
    let silent = silent_server();
    let client = ClientResolver::new(&r, vec![silent.local_addr().unwrap()]);
    let d = client.lookup_address("slow.example.test");
    d.cancel();
    assert!(d.await.unwrap_err().check::<CancelledError>());
    // run_test fails the test if the try's port or timer were left behind.
    Ok(())
}

/// A TCP DNS server: reads one framed query, answers with `answer(query)` framed.
struct TcpServer {
    buffer: Vec<u8>,
    answer: Rc<dyn Fn(&Message) -> Message>,
}

impl Protocol for TcpServer {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() < 2 {
            return;
        }
        let n = usize::from(u16::from_be_bytes([self.buffer[0], self.buffer[1]]));
        if self.buffer.len() < 2 + n {
            return;
        }
        let query = Message::from_vec(&self.buffer[2..2 + n]).unwrap();
        let bytes = (self.answer)(&query).to_vec().unwrap();
        t.write(&(bytes.len() as u16).to_be_bytes());
        t.write(&bytes);
    }
}

fn big_txt(name: &Name) -> Vec<Record> {
    (0..20)
        .map(|i| {
            let text = format!("{i:02}-{}", "x".repeat(60));
            Record::from_rdata(name.clone(), 60, RData::TXT(TXT::new(vec![text])))
        })
        .collect()
}

#[torsion::test(timeout = 10)]
async fn a_truncated_answer_is_asked_again_over_tcp() -> Result<(), Failure> {
    let r = torsion::reactor();
    // The UDP and TCP ports share a number, as a real server's do.
    let (server, tcp) = (0..20)
        .find_map(|_| {
            let server = FakeServer::start(&r, |q, _| {
                let mut m = reply(q, vec![]);
                m.metadata.truncation = true;
                vec![m.to_vec().unwrap()]
            });
            let answer: Rc<dyn Fn(&Message) -> Message> =
                Rc::new(|q: &Message| reply(q, big_txt(&q.queries[0].name)));
            let make = move || TcpServer {
                buffer: Vec::new(),
                answer: answer.clone(),
            };
            match r.listen_tcp(server.addr().port(), factory(make)) {
                Ok(tcp) => Some((server, tcp)),
                Err(_) => {
                    server.port.stop_listening();
                    None
                }
            }
        })
        .expect("a port free for both UDP and TCP");
    let client = ClientResolver::new(&r, vec![server.addr()]);
    let answer = client.lookup_text("big.example.test").await?;
    assert_eq!(answer.answers.len(), 20);
    assert_eq!(server.seen.borrow().len(), 1, "asked once over UDP");
    server.port.stop_listening();
    tcp.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_tcp_server_that_refuses_fails_the_lookup() -> Result<(), Failure> {
    let r = torsion::reactor();
    let server = FakeServer::start(&r, |q, _| {
        let mut m = reply(q, vec![]);
        m.metadata.truncation = true;
        vec![m.to_vec().unwrap()]
    });
    let client = ClientResolver::new(&r, vec![server.addr()]);
    let d: Deferred<Answer> = client.lookup_text("big.example.test");
    let failure = d.await.unwrap_err();
    assert!(
        failure.check::<torsion::error::ConnectionRefusedError>(),
        "{}",
        failure.report()
    );
    server.port.stop_listening();
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn malformed_datagrams_are_dropped_and_the_answer_still_taken() -> Result<(), Failure> {
    let r = torsion::reactor();
    let server = FakeServer::start(&r, |q, _| {
        let right = reply(q, vec![a(&q.queries[0].name, [192, 0, 2, 8], 60)])
            .to_vec()
            .unwrap();
        // Every prefix of the right answer (cut-off messages), then bytes from a small LCG.
        let mut junk: Vec<Vec<u8>> = (0..right.len()).map(|n| right[..n].to_vec()).collect();
        let mut x: u32 = 0x2545_f491;
        for len in [1usize, 12, 13, 100, 512, 1500] {
            junk.push(
                (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        (x >> 16) as u8
                    })
                    .collect(),
            );
        }
        // The right id on random bytes: parses or not, never the question.
        let mut with_id = junk.last().unwrap().clone();
        with_id[..2].copy_from_slice(&q.metadata.id.to_be_bytes());
        junk.push(with_id);
        junk.push(right);
        junk
    });
    let client = ClientResolver::new(&r, vec![server.addr()]);
    let answer = client.lookup_address("junk.example.test").await?;
    assert_eq!(first_a(&answer), Ipv4Addr::new(192, 0, 2, 8));
    server.port.stop_listening();
    Ok(())
}
