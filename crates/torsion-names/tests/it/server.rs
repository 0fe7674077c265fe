//! The server core (`DnsServer::handle`) and its TCP framing, without a network.
use std::cell::RefCell;
use std::rc::Rc;

use torsion::datagram::DatagramProtocol;
use torsion::defer::{Deferred, Trigger};
use torsion::protocol::Factory;
use torsion::testing::{Clock, FakeDatagramTransport, StringTransport};
use torsion::transport::Address;
use torsion::Protocol;
use torsion_names::authority::FileAuthority;
use torsion_names::proto::op::{Edns, Message, OpCode, Query as WireQuery, ResponseCode};
use torsion_names::server::{
    DnsDatagramProtocol, DnsServer, DnsServerFactory, ServerConfig, Transport,
};
use torsion_names::{Answer, Name, Query, RecordType};

use crate::authority::ZONE;

/// The test zone, plus a TXT record of 1000 bytes and one of 3000 (for truncation).
pub(crate) fn big_zone() -> String {
    let chunk = "x".repeat(250);
    let strings = |n: usize| vec![format!("\"{chunk}\""); n].join(" ");
    format!(
        "{ZONE}big IN TXT {}\nhuge IN TXT {}\n",
        strings(4),
        strings(12)
    )
}

fn server(config: ServerConfig) -> Rc<DnsServer> {
    let zone = Rc::new(FileAuthority::parse(&big_zone(), None, "test").unwrap());
    Rc::new(DnsServer::new(zone.clone(), config).with_zones(vec![zone]))
}

fn peer() -> Address {
    Address::Udp("192.0.2.200:5353".parse().unwrap())
}

fn query(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(WireQuery::query(Name::from_ascii(name).unwrap(), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn answers(s: &Rc<DnsServer>, bytes: &[u8], t: Transport) -> Vec<Message> {
    s.handle(bytes, t, &peer())
        .expect("answered")
        .result()
        .expect("at once")
        .unwrap()
        .iter()
        .map(|b| Message::from_vec(b).unwrap())
        .collect()
}

fn one(s: &Rc<DnsServer>, bytes: &[u8], t: Transport) -> (Message, usize) {
    let raw = s
        .handle(bytes, t, &peer())
        .unwrap()
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(raw.len(), 1);
    (Message::from_vec(&raw[0]).unwrap(), raw[0].len())
}

#[test]
fn an_answer_is_authoritative_and_echoes_id_question_and_rd() {
    let s = server(ServerConfig::default());
    let q = query("mail.example.test.", RecordType::A, None);
    let (m, _) = one(&s, &q, Transport::Udp);
    let asked = Message::from_vec(&q).unwrap();
    assert_eq!(m.metadata.id, asked.metadata.id);
    assert_eq!(m.queries, asked.queries);
    assert!(m.metadata.authoritative && m.metadata.recursion_desired);
    assert!(!m.metadata.recursion_available);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.authorities.len(), 2, "the zone's NS");
}

#[test]
fn nxdomain_carries_the_soa_and_foreign_names_are_refused() {
    let s = server(ServerConfig::default());
    let (m, _) = one(
        &s,
        &query("nope.example.test.", RecordType::A, None),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let (m, _) = one(
        &s,
        &query("example.org.", RecordType::A, None),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
}

#[test]
fn unreadable_bytes_and_responses_are_dropped_and_a_bad_body_is_formerr() {
    let s = server(ServerConfig::default());
    assert!(s.handle(b"", Transport::Udp, &peer()).is_none());
    assert!(s.handle(&[0; 11], Transport::Udp, &peer()).is_none());
    let mut response = Message::from_vec(&query("a.", RecordType::A, None)).unwrap();
    response.metadata.message_type = torsion_names::proto::op::MessageType::Response;
    assert!(s
        .handle(&response.to_vec().unwrap(), Transport::Udp, &peer())
        .is_none());
    // A header saying one question, and no question.
    let mut q = query("a.", RecordType::A, None);
    q.truncate(12);
    let (m, _) = one(&s, &q, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, u16::from_be_bytes([q[0], q[1]]));
    let c = s.counters();
    assert_eq!((c.queries, c.dropped), (4, 3));
    assert_eq!(c.answers.get("FormErr"), Some(&1));
}

#[test]
fn other_opcodes_are_notimp_and_edns_versions_above_0_badvers() {
    let s = server(ServerConfig::default());
    let mut m = Message::from_vec(&query("example.test.", RecordType::A, None)).unwrap();
    m.metadata.op_code = OpCode::Status;
    let (r, _) = one(&s, &m.to_vec().unwrap(), Transport::Udp);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    let mut m = Message::from_vec(&query("example.test.", RecordType::A, Some(1232))).unwrap();
    m.edns.as_mut().unwrap().set_version(1);
    let (r, _) = one(&s, &m.to_vec().unwrap(), Transport::Udp);
    // BADVERS is 16, which reads back as its other name, BADSIG (RFC 6891, RFC 8945).
    assert_eq!(u16::from(r.metadata.response_code), 16);
}

#[test]
fn udp_answers_fit_512_without_edns_and_the_edns_size_up_to_the_ceiling() {
    let s = server(ServerConfig::default());
    // 1000 bytes of TXT: TC without EDNS, whole with EDNS 4096 (the ceiling is 1232).
    let (m, len) = one(
        &s,
        &query("big.example.test.", RecordType::TXT, None),
        Transport::Udp,
    );
    assert!(m.metadata.truncation && m.answers.is_empty() && len <= 512);
    let (m, len) = one(
        &s,
        &query("big.example.test.", RecordType::TXT, Some(4096)),
        Transport::Udp,
    );
    assert!(
        !m.metadata.truncation && m.answers.len() == 1 && len <= 1232,
        "{len}"
    );
    assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(1232));
    // 3000 bytes: over the ceiling, whatever the query says; whole over TCP.
    let (m, len) = one(
        &s,
        &query("huge.example.test.", RecordType::TXT, Some(4096)),
        Transport::Udp,
    );
    assert!(m.metadata.truncation && len <= 1232);
    let (m, len) = one(
        &s,
        &query("huge.example.test.", RecordType::TXT, None),
        Transport::Tcp,
    );
    assert!(!m.metadata.truncation && len > 3000);
    // An EDNS size below 512 counts as 512.
    let (_, len) = one(
        &s,
        &query("mail.example.test.", RecordType::A, Some(100)),
        Transport::Udp,
    );
    assert!(len > 100);
    // A bigger ceiling lets bigger answers through.
    let s = server(ServerConfig {
        udp_ceiling: 4096,
        ..ServerConfig::default()
    });
    let (m, len) = one(
        &s,
        &query("huge.example.test.", RecordType::TXT, Some(4096)),
        Transport::Udp,
    );
    assert!(!m.metadata.truncation && len > 3000);
    assert_eq!(s.counters().truncated, 0);
}

#[test]
fn axfr_is_served_over_tcp_only_for_served_zones() {
    let s = server(ServerConfig::default());
    let (m, _) = one(
        &s,
        &query("example.test.", RecordType::AXFR, None),
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let (m, _) = one(
        &s,
        &query("example.org.", RecordType::AXFR, None),
        Transport::Tcp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let messages = answers(
        &s,
        &query("Example.Test.", RecordType::AXFR, None),
        Transport::Tcp,
    );
    let records: Vec<_> = messages.iter().flat_map(|m| m.answers.clone()).collect();
    assert_eq!(records.first().unwrap().record_type(), RecordType::SOA);
    assert_eq!(records.last().unwrap().record_type(), RecordType::SOA);
    assert_eq!(records.len(), 18);
    assert_eq!(s.counters().transfers, 1);
}

/// An IXFR query for example.test. carrying the client's serial (`None`: no SOA at all).
fn ixfr(serial: Option<u32>) -> Vec<u8> {
    use torsion_names::proto::rr::rdata::SOA;
    use torsion_names::{RData, Record};
    let mut m = Message::query();
    let zone = Name::from_ascii("example.test.").unwrap();
    m.add_query(WireQuery::query(zone.clone(), RecordType::IXFR));
    if let Some(serial) = serial {
        let soa = SOA::new(zone.clone(), zone.clone(), serial, 0, 0, 0, 0);
        m.add_authority(Record::from_rdata(zone, 0, RData::SOA(soa)));
    }
    m.to_vec().unwrap()
}

#[test]
fn ixfr_is_the_whole_zone_to_an_older_serial_else_the_soa() {
    let s = server(ServerConfig::default());
    // The zone's serial is 2024010101. Older (4294967295 too: serials wrap, RFC 1982):
    // over TCP, the AXFR records.
    for older in [1, 2024010100, u32::MAX] {
        let messages = answers(&s, &ixfr(Some(older)), Transport::Tcp);
        let records: Vec<_> = messages.iter().flat_map(|m| m.answers.clone()).collect();
        assert_eq!(records.len(), 18, "{older}");
    }
    // As new or newer, or any over UDP: the SOA alone.
    for (serial, t) in [
        (2024010101, Transport::Tcp),
        (2024010102, Transport::Tcp),
        (1, Transport::Udp),
    ] {
        let (m, _) = one(&s, &ixfr(Some(serial)), t);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(m.answers.len(), 1, "{serial} {t:?}");
        assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    }
    // No SOA from the client: FORMERR.
    let (m, _) = one(&s, &ixfr(None), Transport::Tcp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn a_big_zone_is_transferred_in_several_messages() {
    let mut text = String::from("$ORIGIN many.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n");
    for i in 0..3000 {
        text.push_str(&format!("h{i} TXT \"{}\"\n", "y".repeat(40)));
    }
    let zone = Rc::new(FileAuthority::parse(&text, None, "many").unwrap());
    let s = Rc::new(DnsServer::new(zone.clone(), ServerConfig::default()).with_zones(vec![zone]));
    let messages = answers(
        &s,
        &query("many.test.", RecordType::AXFR, None),
        Transport::Tcp,
    );
    let codes: Vec<_> = messages.iter().map(|m| m.metadata.response_code).collect();
    assert!(messages.len() > 1, "{codes:?}");
    assert_eq!(
        messages.iter().map(|m| m.answers.len()).sum::<usize>(),
        3002
    );
}

/// The triggers of the Deferreds a [`later`] resolver made.
type Pending = Rc<RefCell<Vec<Trigger<Answer>>>>;

/// A resolver whose answers come later: the Deferreds it made, to fire by hand.
fn later() -> (Rc<dyn torsion_names::Resolver>, Pending) {
    let pending: Rc<RefCell<Vec<Trigger<Answer>>>> = Rc::default();
    let p = pending.clone();
    let resolver = move |_: &Query| {
        let d = Deferred::new();
        p.borrow_mut().push(d.trigger());
        d
    };
    (Rc::new(resolver), pending)
}

#[test]
fn an_answer_that_comes_later_is_sent_when_it_comes_and_in_flight_is_bounded() {
    let (resolver, pending) = later();
    let config = ServerConfig {
        max_in_flight: 2,
        ..ServerConfig::default()
    };
    let s = Rc::new(DnsServer::new(resolver, config));
    let q = query("late.example.", RecordType::A, None);
    let first = s.handle(&q, Transport::Udp, &peer()).unwrap();
    let _second = s.handle(&q, Transport::Udp, &peer()).unwrap();
    assert!(
        s.handle(&q, Transport::Udp, &peer()).is_none(),
        "over max_in_flight"
    );
    assert!(!first.called());
    let fire = pending.borrow_mut().remove(0);
    fire.callback(Answer::default());
    let m = Message::from_vec(&first.result().unwrap().unwrap()[0]).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        s.handle(&q, Transport::Udp, &peer()).is_some(),
        "room again"
    );
}

#[test]
fn tcp_frames_several_queries_and_closes_idle_connections() {
    let clock = Clock::new();
    let factory = DnsServerFactory::new(server(ServerConfig::default())).with_clock(clock.clone());
    let mut p = factory.build_protocol(&peer()).unwrap();
    let st = StringTransport::new();
    let t = st.transport();
    p.connection_made(&t);
    let mut bytes = Vec::new();
    for name in ["ns1.example.test.", "ns2.example.test."] {
        let q = query(name, RecordType::A, None);
        bytes.extend_from_slice(&u16::try_from(q.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&q);
    }
    // In odd pieces: one byte, then the rest of the first and half the second, then the rest.
    let cut = bytes.len() - 10;
    p.data_received(&t, &bytes[..1]);
    p.data_received(&t, &bytes[1..cut]);
    let out = st.value();
    assert_eq!(
        usize::from(u16::from_be_bytes([out[0], out[1]])),
        out.len() - 2
    );
    p.data_received(&t, &bytes[cut..]);
    let out = st.take();
    let mut at = 0;
    let mut names = Vec::new();
    while at < out.len() {
        let len = usize::from(u16::from_be_bytes([out[at], out[at + 1]]));
        let m = Message::from_vec(&out[at + 2..at + 2 + len]).unwrap();
        names.push(m.answers[0].name.to_string());
        at += 2 + len;
    }
    assert_eq!(names, ["ns1.example.test.", "ns2.example.test."]);
    clock.advance(9.0);
    assert!(!st.disconnecting());
    clock.advance(1.5);
    assert!(st.disconnecting(), "closed after 10 s idle");
}

#[test]
fn a_tcp_connection_stops_reading_while_its_pipeline_is_full() {
    let (resolver, pending) = later();
    let s = Rc::new(DnsServer::new(resolver, ServerConfig::default()));
    let factory = DnsServerFactory::new(s);
    let mut p = factory.build_protocol(&peer()).unwrap();
    let st = StringTransport::new();
    let t = st.transport();
    p.connection_made(&t);
    let q = query("late.example.", RecordType::A, None);
    let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    for _ in 0..torsion_names::server::TCP_PIPELINE - 1 {
        p.data_received(&t, &framed);
    }
    assert!(!st.paused());
    p.data_received(&t, &framed);
    assert!(st.paused(), "paused at TCP_PIPELINE waiting queries");
    let fire = pending.borrow_mut().remove(0);
    fire.callback(Answer::default());
    assert!(!st.paused(), "resumed once one is answered");
    assert!(!st.value().is_empty());
}

// --- kept answers (the zones' encoded answers to plain UDP queries) ---------------------------

/// A server that keeps no answers: what the kept ones must equal.
fn uncached() -> Rc<DnsServer> {
    server(ServerConfig {
        answer_cache_bytes: 0,
        ..ServerConfig::default()
    })
}

/// The one answer's bytes.
fn raw(s: &Rc<DnsServer>, bytes: &[u8]) -> Vec<u8> {
    let mut out = s
        .handle(bytes, Transport::Udp, &peer())
        .expect("answered")
        .result()
        .expect("at once")
        .unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn with_id(mut q: Vec<u8>, id: u16) -> Vec<u8> {
    q[..2].copy_from_slice(&id.to_be_bytes());
    q
}

/// `name` with the letters at odd positions upper-cased (0x20 randomisation, RFC draft
/// vixie-dnsext-dns0x20).
fn mixed_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn a_repeated_query_gets_the_same_bytes_but_its_id() {
    let s = server(ServerConfig::default());
    let q = query("mail.example.test.", RecordType::MX, None);
    let first = raw(&s, &with_id(q.clone(), 0x1111));
    assert_eq!(s.kept_answers().entries, 1);
    let again = raw(&s, &with_id(q.clone(), 0xbeef));
    assert_eq!(s.kept_answers().hits, 1);
    assert_eq!(&again[..2], &[0xbe, 0xef]);
    assert_eq!(&again[2..], &first[2..]);
    // And it is what a server keeping nothing answers, byte for byte.
    assert_eq!(again, raw(&uncached(), &with_id(q, 0xbeef)));
    // Over UDP through the protocol, the same.
    let fake = FakeDatagramTransport::new(Address::Udp("127.0.0.1:53".parse().unwrap()));
    let mut p = DnsDatagramProtocol::new(Rc::clone(&s));
    for id in [7u16, 8] {
        let q = with_id(query("mail.example.test.", RecordType::MX, None), id);
        p.datagram_received(&fake.transport(), &q, &peer());
        let written = fake.take_written();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].0[..2], id.to_be_bytes());
        assert_eq!(written[0].0[2..], first[2..]);
    }
    assert_eq!(s.kept_answers().hits, 3);
    let c = s.counters();
    assert_eq!((c.queries, c.answers.get("NoError")), (4, Some(&4)));
}

#[test]
fn each_query_gets_its_own_case_back() {
    let s = server(ServerConfig::default());
    let plain = uncached();
    for name in [
        "www.example.test.",
        "WWW.EXAMPLE.TEST.",
        &mixed_case("www.example.test."),
    ] {
        let q = query(name, RecordType::A, None);
        for _ in 0..2 {
            let bytes = raw(&s, &q);
            assert_eq!(bytes, raw(&plain, &q), "{name}");
            let m = Message::from_vec(&bytes).unwrap();
            assert_eq!(m.queries[0].name().to_ascii(), name);
            assert_eq!(m.answers.len(), 2, "the CNAME and the address");
        }
    }
    assert_eq!(s.kept_answers().entries, 3);
    assert_eq!(s.kept_answers().hits, 3);
}

#[test]
fn edns_sizes_and_rd_get_their_own_answers_and_tc_is_unchanged() {
    let s = server(ServerConfig::default());
    let plain = uncached();
    let no_rd = {
        let mut m = Message::from_vec(&query("big.example.test.", RecordType::TXT, None)).unwrap();
        m.metadata.recursion_desired = false;
        m.to_vec().unwrap()
    };
    let queries = [
        query("big.example.test.", RecordType::TXT, None),
        query("big.example.test.", RecordType::TXT, Some(4096)),
        query("big.example.test.", RecordType::TXT, Some(600)),
        query("huge.example.test.", RecordType::TXT, Some(4096)),
        no_rd,
    ];
    for round in 0..3 {
        for q in &queries {
            assert_eq!(raw(&s, q), raw(&plain, q), "round {round}");
        }
    }
    let (m, _) = one(&s, &queries[0], Transport::Udp);
    assert!(m.metadata.truncation && m.metadata.recursion_desired);
    let (m, _) = one(&s, &queries[1], Transport::Udp);
    assert!(!m.metadata.truncation && m.answers.len() == 1);
    let (m, _) = one(&s, &queries[2], Transport::Udp);
    assert!(m.metadata.truncation, "1000 bytes of TXT do not fit in 600");
    let (m, _) = one(&s, &queries[4], Transport::Udp);
    assert!(m.metadata.truncation && !m.metadata.recursion_desired);
    assert_eq!(s.kept_answers().entries, queries.len());
    // The counters count kept answers as the others: the same as the server keeping none.
    for q in &queries[..3] {
        raw(&plain, q);
    }
    raw(&plain, &queries[4]);
    assert_eq!(s.counters(), plain.counters());
    assert_eq!(s.counters().truncated, 3 * 4 + 3);
}

#[test]
fn replacing_the_zones_forgets_the_kept_answers() {
    let s = server(ServerConfig::default());
    let q = query("mail.example.test.", RecordType::A, None);
    let address = |bytes: &[u8]| {
        Message::from_vec(bytes).unwrap().answers[0]
            .data
            .to_string()
    };
    assert_eq!(address(&raw(&s, &q)), "192.0.2.25");
    assert_eq!(address(&raw(&s, &q)), "192.0.2.25");
    let text = big_zone().replace("192.0.2.25", "192.0.2.26");
    s.set_zones(vec![Rc::new(
        FileAuthority::parse(&text, None, "test").unwrap(),
    )]);
    assert_eq!(s.kept_answers().entries, 0);
    assert_eq!(address(&raw(&s, &q)), "192.0.2.26");
    assert_eq!(address(&raw(&s, &q)), "192.0.2.26");
}

#[test]
fn answers_from_the_resolver_tcp_and_other_queries_are_never_kept() {
    // A resolver after the zone that counts what it is asked (a cache or upstream server).
    let asked = Rc::new(RefCell::new(0));
    let counted = Rc::clone(&asked);
    let upstream = move |q: &Query| {
        *counted.borrow_mut() += 1;
        let a = torsion_names::Record::from_rdata(
            q.name.clone(),
            60,
            torsion_names::RData::A(torsion_names::proto::rr::rdata::A::new(192, 0, 2, 9)),
        );
        torsion::defer::succeed(Answer {
            answers: vec![a],
            ..Answer::default()
        })
    };
    let zone = Rc::new(FileAuthority::parse(&big_zone(), None, "test").unwrap());
    let chain = torsion_names::chain::ResolverChain::new(vec![
        Box::new(Rc::clone(&zone)),
        Box::new(upstream),
    ]);
    let s = Rc::new(DnsServer::new(Rc::new(chain), ServerConfig::default()).with_zones(vec![zone]));
    let q = query("elsewhere.example.org.", RecordType::A, None);
    for n in 1..=3 {
        let (m, _) = one(&s, &q, Transport::Udp);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(*asked.borrow(), n, "asked every time");
    }
    // A zone's name over TCP, with an EDNS option, or with a second question: answered,
    // not kept.
    one(
        &s,
        &query("mail.example.test.", RecordType::A, None),
        Transport::Tcp,
    );
    let mut m = Message::from_vec(&query("mail.example.test.", RecordType::A, Some(1232))).unwrap();
    m.edns.as_mut().unwrap().options_mut().insert(
        torsion_names::proto::rr::rdata::opt::EdnsOption::Unknown(10, vec![1; 8]),
    );
    one(&s, &m.to_vec().unwrap(), Transport::Udp);
    let mut m = Message::from_vec(&query("mail.example.test.", RecordType::A, None)).unwrap();
    m.add_query(WireQuery::query(
        Name::from_ascii("ns1.example.test.").unwrap(),
        RecordType::A,
    ));
    one(&s, &m.to_vec().unwrap(), Transport::Udp);
    // A query with a byte after it.
    let mut q = query("mail.example.test.", RecordType::A, None);
    q.push(0);
    s.handle(&q, Transport::Udp, &peer());
    assert_eq!(s.kept_answers().entries, 0);
}

#[test]
fn kept_answers_stay_under_their_bound() {
    let bound = 1000;
    let s = server(ServerConfig {
        answer_cache_bytes: bound,
        ..ServerConfig::default()
    });
    let plain = uncached();
    for i in 0..100 {
        let q = query(&format!("n{i}.example.test."), RecordType::A, None);
        assert_eq!(raw(&s, &q), raw(&plain, &q));
        assert!(s.kept_answers().bytes <= bound);
    }
    let kept = s.kept_answers();
    assert!(kept.entries > 1 && kept.flushes > 0, "{kept:?}");
    // An answer bigger than the bound is not kept at all.
    raw(&s, &query("big.example.test.", RecordType::TXT, Some(1232)));
    assert!(s.kept_answers().bytes <= bound);
    // 0 keeps nothing.
    raw(&plain, &query("n1.example.test.", RecordType::A, None));
    assert_eq!(plain.kept_answers().entries, 0);
}

#[test]
fn more_names_than_front_slots_each_get_their_own_answer() {
    // 600 names over the 256 slots in front of the kept answers: many share a slot, and each
    // round of queries evicts the others' answers from it. Every answer is still its own
    // name's (the question is echoed, so another name's answer would show), from the kept
    // answers from the second round on.
    let s = server(ServerConfig::default());
    let plain = uncached();
    let names: Vec<Vec<u8>> = (0..600)
        .map(|i| query(&format!("n{i}.example.test."), RecordType::A, None))
        .collect();
    for round in 0..3u16 {
        for (i, q) in names.iter().enumerate() {
            let q = with_id(q.clone(), round * 1000 + i as u16);
            assert_eq!(raw(&s, &q), raw(&plain, &q), "round {round}, name {i}");
        }
    }
    let kept = s.kept_answers();
    assert_eq!((kept.entries, kept.hits, kept.flushes), (600, 1200, 0));
}

proptest::proptest! {
    /// Whatever the bytes (mutations of plain queries: ids, flags, case, EDNS, lengths), a
    /// server keeping answers answers exactly as one keeping none.
    #[test]
    fn kept_answers_are_the_answers(
        ops in proptest::collection::vec((0usize..6, 0usize..40, proptest::num::u8::ANY), 1..40)
    ) {
        let s = server(ServerConfig::default());
        let plain = uncached();
        let bases = [
            query("mail.example.test.", RecordType::A, None),
            query("www.example.test.", RecordType::A, Some(1232)),
            query("nope.example.test.", RecordType::MX, Some(512)),
            query("big.example.test.", RecordType::TXT, None),
            query("x.sub.example.test.", RecordType::A, None),
            query("example.test.", RecordType::NS, None),
        ];
        for (base, at, byte) in ops {
            let mut q = bases[base].clone();
            if at < q.len() {
                q[at] = byte;
            } else if at % 2 == 0 {
                q.push(byte);
            } else {
                q.truncate(at - q.len().min(at));
            }
            for _ in 0..2 {
                let a = s.handle(&q, Transport::Udp, &peer()).map(|d| d.result().unwrap().unwrap());
                let b = plain.handle(&q, Transport::Udp, &peer()).map(|d| d.result().unwrap().unwrap());
                proptest::prop_assert_eq!(a, b);
            }
        }
        proptest::prop_assert_eq!(s.counters(), plain.counters());
    }
}
