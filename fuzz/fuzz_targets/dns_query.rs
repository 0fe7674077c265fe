//! Fuzzes the DNS server core with a small zone. The first byte is where to split the rest
//! (as in the other targets); the rest, as a UDP query, a TCP query and a length-framed TCP
//! stream in two chunks, never panics; every answer decodes, keeps the query's id, and
//! fits the limit of its transport (a UDP answer is never larger than 1232 bytes, the
//! default ceiling, nor than 512 when the query had no EDNS). The zone loader never panics
//! on the bytes as text.
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use torsion::protocol::Factory;
use torsion::testing::StringTransport;
use torsion::transport::Address;
use torsion::Protocol;
use torsion_names::authority::FileAuthority;
use torsion_names::proto::op::Message;
use torsion_names::server::{DnsServer, DnsServerFactory, ServerConfig, Transport};

const ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n\
@ SOA ns hm 1 2 3 4 5\n@ NS ns\n@ MX 10 mail\nns A 192.0.2.1\nmail A 192.0.2.2\n\
mail AAAA 2001:db8::2\nwww CNAME mail\nloop CNAME loop\n_s._tcp SRV 1 1 53 ns\n\
sub NS ns.sub\nns.sub A 192.0.2.3\nbig TXT \"a\" \"bb\" \"ccc\"\n";

thread_local! {
    static SERVER: Rc<DnsServer> = {
        let zone = Rc::new(FileAuthority::parse(ZONE, None, "fuzz").unwrap());
        Rc::new(DnsServer::new(zone.clone(), ServerConfig::default()).with_zones(vec![zone]))
    };
    /// The same, keeping no answers: what the kept ones must equal, byte for byte.
    static PLAIN: Rc<DnsServer> = {
        let zone = Rc::new(FileAuthority::parse(ZONE, None, "fuzz").unwrap());
        let config = ServerConfig { answer_cache_bytes: 0, ..ServerConfig::default() };
        Rc::new(DnsServer::new(zone.clone(), config).with_zones(vec![zone]))
    };
}

fn check(query: &[u8], transport: Transport) {
    let peer = Address::Udp("192.0.2.9:53".parse().unwrap());
    SERVER.with(|server| {
        let Some(d) = server.handle(query, transport, &peer) else {
            return;
        };
        let answers = d.result().expect("a zone answers at once").expect("never fails");
        let plain = PLAIN.with(|plain| {
            plain.handle(query, transport, &peer).map(|d| d.result().unwrap().unwrap())
        });
        assert_eq!(Some(&answers), plain.as_ref(), "kept answers are the answers");
        let edns = Message::from_vec(query).ok().is_some_and(|m| m.edns.is_some());
        for a in answers {
            let limit = match (transport, edns) {
                (Transport::Tcp, _) => 65535,
                (Transport::Udp, true) => 1232,
                (Transport::Udp, false) => 512,
            };
            assert!(a.len() <= limit, "{} bytes over {transport:?}", a.len());
            let m = Message::from_vec(&a).expect("an answer decodes");
            assert_eq!(&a[..2], &query[..2], "the id is kept");
            assert_eq!(m.metadata.message_type, torsion_names::proto::op::MessageType::Response);
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    check(rest, Transport::Udp);
    check(rest, Transport::Tcp);
    let mut framed = u16::try_from(rest.len()).unwrap_or(u16::MAX).to_be_bytes().to_vec();
    framed.extend_from_slice(rest);
    let at = usize::from(split).min(framed.len());
    SERVER.with(|server| {
        let factory = DnsServerFactory::new(server.clone());
        let peer = Address::Udp("192.0.2.9:53".parse().unwrap());
        let mut p = factory.build_protocol(&peer).unwrap();
        let st = StringTransport::new();
        let t = st.transport();
        p.connection_made(&t);
        p.data_received(&t, &framed[..at]);
        p.data_received(&t, &framed[at..]);
    });
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = FileAuthority::parse(text, None, "fuzz");
    }
});
