//! The PROXY protocol wrapper, driven by hand: versions 1 and 2, every way a header can be
//! split, and every way it can be refused (garbage, too long, too late).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use proptest::prelude::*;
use torsion::protocols::haproxy::{
    parse_header, HAProxyProtocol, HAProxyWrappingFactory, DEFAULT_MAX_V2_LENGTH, V2_SIGNATURE,
};
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, Factory, Protocol, Transport};

/// What the wrapped protocol saw.
#[derive(Default, Debug)]
struct Seen {
    made: usize,
    peer: Option<Address>,
    host: Option<Address>,
    data: Vec<u8>,
    lost: usize,
}

struct Recorder(Rc<RefCell<Seen>>);

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &Transport) {
        let mut s = self.0.borrow_mut();
        s.made += 1;
        s.peer = Some(t.get_peer());
        s.host = Some(t.get_host());
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut s = self.0.borrow_mut();
        assert_eq!(s.peer.as_ref(), Some(&t.get_peer()));
        s.data.extend_from_slice(data);
    }
    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.0.borrow_mut().lost += 1;
    }
}

fn real_peer() -> Address {
    Address::Tcp("10.9.9.9:5555".parse().unwrap())
}

fn real_host() -> Address {
    Address::Tcp("10.1.1.1:8080".parse().unwrap())
}

struct Conn {
    seen: Rc<RefCell<Seen>>,
    proto: HAProxyProtocol<Recorder>,
    st: StringTransport,
    clock: Clock,
}

impl Conn {
    fn new() -> Conn {
        let seen: Rc<RefCell<Seen>> = Rc::default();
        let s = seen.clone();
        let f = HAProxyWrappingFactory::new(factory(move || Recorder(s.clone())));
        let clock = Clock::new();
        f.set_clock(clock.clone());
        let mut proto = f.build_protocol(&real_peer()).unwrap();
        let st = StringTransport::with_addresses(real_peer(), real_host());
        proto.connection_made(&st.transport());
        Conn {
            seen,
            proto,
            st,
            clock,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        let t = self.st.transport();
        self.proto.data_received(&t, data);
    }

    fn peer(&self) -> Option<Address> {
        self.seen.borrow().peer.clone()
    }

    fn host(&self) -> Option<Address> {
        self.seen.borrow().host.clone()
    }

    fn data(&self) -> Vec<u8> {
        self.seen.borrow().data.clone()
    }

    /// Refused: closed at once, and the wrapped protocol never heard of the connection.
    fn assert_refused(&self) {
        assert!(self.st.aborted(), "the connection should be aborted");
        assert_eq!(self.seen.borrow().made, 0);
        assert!(self.data().is_empty());
    }
}

fn tcp(s: &str) -> Address {
    Address::Tcp(s.parse::<SocketAddr>().unwrap())
}

/// A version 2 header: command (0 LOCAL, 1 PROXY), family byte, address block, TLVs.
fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(family);
    let len = u16::try_from(addresses.len() + tlvs.len()).unwrap();
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(addresses);
    h.extend_from_slice(tlvs);
    h
}

fn inet4_block() -> Vec<u8> {
    let mut b = vec![192, 0, 2, 10, 198, 51, 100, 20];
    b.extend_from_slice(&40000u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

/// An ALPN TLV, a unique-id TLV and a NOOP TLV: all to be skipped.
fn some_tlvs() -> Vec<u8> {
    let mut t = vec![0x01, 0x00, 0x02];
    t.extend_from_slice(b"h2");
    t.extend_from_slice(&[0x05, 0x00, 0x04]);
    t.extend_from_slice(b"abcd");
    t.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
    t
}

#[test]
fn v1_tcp4_gives_the_client_address_and_passes_the_rest_on() {
    let mut c = Conn::new();
    c.feed(b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.peer(), Some(tcp("192.0.2.1:56324")));
    assert_eq!(c.host(), Some(tcp("198.51.100.7:443")));
    assert_eq!(c.data(), b"GET / HTTP/1.0\r\n\r\n");
    assert!(!c.st.disconnecting());
    // Later bytes go straight through, and the wrapped protocol writes to the real connection.
    c.feed(b"more");
    assert_eq!(c.data(), b"GET / HTTP/1.0\r\n\r\nmore");
    c.proto.transport().unwrap().write(b"reply");
    assert_eq!(c.st.value(), b"reply");
    c.proto
        .connection_lost(ConnectionEnd::Error(std::io::Error::other("done")));
    assert_eq!(c.seen.borrow().lost, 1);
}

#[test]
fn v1_tcp6() {
    let mut c = Conn::new();
    c.feed(b"PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n");
    assert_eq!(c.peer(), Some(tcp("[2001:db8::1]:1234")));
    assert_eq!(c.host(), Some(tcp("[2001:db8::2]:80")));
    assert!(c.data().is_empty());
}

#[test]
fn v1_unknown_keeps_the_real_addresses() {
    for header in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    ] {
        let mut c = Conn::new();
        c.feed(header);
        c.feed(b"x");
        assert_eq!(c.peer(), Some(real_peer()));
        assert_eq!(c.host(), Some(real_host()));
        assert_eq!(c.data(), b"x");
    }
}

#[test]
fn v1_malformed_headers_are_refused() {
    for bad in [
        &b"PROXY TCP4 192.0.2.1 198.51.100.7 56324\r\n"[..], // a port missing
        b"PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n",      // v6 address in TCP4
        b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",         // v4 address in TCP6
        b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 1\r\n",    // port out of range
        b"PROXY TCP4 192.0.2.1 198.51.100.7 +1 1\r\n",       // not digits
        b"PROXY TCP4  192.0.2.1 198.51.100.7 1 1\r\n",       // two spaces
        b"PROXY UDP4 192.0.2.1 198.51.100.7 1 1\r\n",        // not TCP
        b"PROXY TCP4 192.0.2.1 198.51.100.7 1 1\n",          // LF without CR
        b"PROXY \xff\r\n",                                   // not ASCII
    ] {
        let mut c = Conn::new();
        c.feed(bad);
        c.assert_refused();
    }
}

#[test]
fn garbage_is_refused_at_once() {
    let mut c = Conn::new();
    c.feed(b"GET / HTTP/1.1\r\n");
    c.assert_refused();
    // Nothing more is passed on, even if bytes keep coming before the close.
    c.feed(b"Host: x\r\n\r\n");
    c.assert_refused();

    // The first wrong byte is enough: no waiting for a line end.
    let mut c = Conn::new();
    c.feed(b"PROXX");
    c.assert_refused();
    let mut c = Conn::new();
    c.feed(b"\r\n\r\n\0\r\nQUIX");
    c.assert_refused();
}

#[test]
fn an_oversize_v1_header_is_refused() {
    let mut c = Conn::new();
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(106, b'a'); // 106 bytes and no line end yet: could still end in time
    c.feed(&long);
    assert!(!c.st.disconnecting());
    c.feed(b"a"); // 107 bytes without CRLF: too long
    c.assert_refused();

    // Exactly 107 bytes, CRLF included, is fine.
    let mut c = Conn::new();
    let mut max = b"PROXY UNKNOWN ".to_vec();
    max.resize(105, b'a');
    max.extend_from_slice(b"\r\n");
    assert_eq!(max.len(), 107);
    c.feed(&max);
    assert_eq!(c.seen.borrow().made, 1);
}

#[test]
fn v2_proxy_inet_with_tlvs() {
    let mut c = Conn::new();
    let mut data = v2(1, 0x11, &inet4_block(), &some_tlvs());
    data.extend_from_slice(b"payload");
    c.feed(&data);
    assert_eq!(c.peer(), Some(tcp("192.0.2.10:40000")));
    assert_eq!(c.host(), Some(tcp("198.51.100.20:443")));
    assert_eq!(c.data(), b"payload");
}

#[test]
fn v2_proxy_inet6_udp_and_unix() {
    let mut block = Vec::new();
    block.extend_from_slice(
        &"2001:db8::5"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    block.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    block.extend_from_slice(&[0x1f, 0x90, 0x00, 0x50]);
    let mut c = Conn::new();
    c.feed(&v2(1, 0x21, &block, &[]));
    assert_eq!(c.peer(), Some(tcp("[2001:db8::5]:8080")));
    assert_eq!(c.host(), Some(tcp("[::1]:80")));

    let mut c = Conn::new();
    c.feed(&v2(1, 0x12, &inet4_block(), &[]));
    let udp: SocketAddr = "192.0.2.10:40000".parse().unwrap();
    assert_eq!(c.peer(), Some(Address::Udp(udp)));

    let mut block = vec![0u8; 216];
    block[..9].copy_from_slice(b"/tmp/in.s");
    // An abstract destination name (leading NUL) has no path.
    block[109..112].copy_from_slice(b"abs");
    let mut c = Conn::new();
    c.feed(&v2(1, 0x31, &block, &some_tlvs()));
    assert_eq!(
        c.peer(),
        Some(Address::Unix(Some(PathBuf::from("/tmp/in.s"))))
    );
    assert_eq!(c.host(), Some(Address::Unix(None)));
}

#[test]
fn v2_local_and_unspec_keep_the_real_addresses() {
    // LOCAL (a balancer's health check), even with an address block and TLVs.
    let mut c = Conn::new();
    let mut data = v2(0, 0x11, &inet4_block(), &some_tlvs());
    data.extend_from_slice(b"ping");
    c.feed(&data);
    assert_eq!(c.peer(), Some(real_peer()));
    assert_eq!(c.host(), Some(real_host()));
    assert_eq!(c.data(), b"ping");

    // PROXY with AF_UNSPEC.
    let mut c = Conn::new();
    c.feed(&v2(1, 0x00, &[], &some_tlvs()));
    assert_eq!(c.peer(), Some(real_peer()));
    assert_eq!(c.seen.borrow().made, 1);
}

#[test]
fn v2_malformed_headers_are_refused() {
    let mut wrong_version = v2(1, 0x11, &inet4_block(), &[]);
    wrong_version[12] = 0x11;
    let bad_command = {
        let mut h = v2(1, 0x11, &inet4_block(), &[]);
        h[12] = 0x22;
        h
    };
    for bad in [
        wrong_version,
        bad_command,
        v2(1, 0x13, &inet4_block(), &[]), // transport 3 does not exist
        v2(1, 0x10, &inet4_block(), &[]), // INET with an unspecified transport
        v2(1, 0x41, &inet4_block(), &[]), // family 4 does not exist
        v2(1, 0x11, &inet4_block()[..11], &[]), // address block too short
        v2(1, 0x21, &inet4_block(), &[]), // an IPv4 block for INET6
    ] {
        let mut c = Conn::new();
        c.feed(&bad);
        c.assert_refused();
    }
}

#[test]
fn an_oversize_v2_header_is_refused_before_it_arrives() {
    let mut c = Conn::new();
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]); // 65,535 more bytes announced
    c.feed(&h);
    c.assert_refused();

    // Within a raised limit, the same size is accepted.
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let s = seen.clone();
    let f = HAProxyWrappingFactory::new(factory(move || Recorder(s.clone())));
    f.set_max_v2_length(16 + 65535);
    let mut p = f.build_protocol(&real_peer()).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    let mut tlvs = Vec::new();
    while tlvs.len() + 3 + 1000 <= 65535 - 12 {
        tlvs.extend_from_slice(&[0x04, 0x03, 0xe8]);
        tlvs.extend_from_slice(&[0u8; 1000]);
    }
    let header = v2(1, 0x11, &inet4_block(), &tlvs);
    for chunk in header.chunks(1000) {
        p.data_received(&st.transport(), chunk);
    }
    assert_eq!(seen.borrow().peer, Some(tcp("192.0.2.10:40000")));
    assert!(!st.disconnecting());
}

#[test]
fn a_header_that_does_not_arrive_in_time_closes_the_connection() {
    let mut c = Conn::new();
    c.feed(b"PROXY TCP4 ");
    c.clock.advance(9.9);
    assert!(!c.st.aborted());
    c.clock.advance(0.1);
    c.assert_refused();

    // Nothing at all: the same.
    let c = Conn::new();
    c.clock.advance(10.0);
    c.assert_refused();

    // A header in time disarms the timer.
    let mut c = Conn::new();
    c.clock.advance(5.0);
    c.feed(b"PROXY UNKNOWN\r\n");
    c.clock.advance(60.0);
    assert!(!c.st.disconnecting());
    assert!(c.clock.pending_call_times().is_empty());
}

#[test]
fn a_connection_lost_before_the_header_is_not_passed_on() {
    let mut c = Conn::new();
    c.feed(b"PROXY TCP4 1.2");
    c.proto.read_connection_lost(&c.st.transport());
    assert!(c.st.disconnecting());
    c.proto
        .connection_lost(ConnectionEnd::Error(std::io::Error::other("gone")));
    assert_eq!((c.seen.borrow().made, c.seen.borrow().lost), (0, 0));
    assert!(c.clock.pending_call_times().is_empty());
}

/// Every header kind the split test uses, with what the wrapped protocol should see.
fn headers() -> Vec<(Vec<u8>, Address)> {
    vec![
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".to_vec(),
            tcp("192.0.2.1:56324"),
        ),
        (
            b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n".to_vec(),
            tcp("[2001:db8::1]:1"),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), real_peer()),
        (
            v2(1, 0x11, &inet4_block(), &some_tlvs()),
            tcp("192.0.2.10:40000"),
        ),
        (v2(0, 0x11, &inet4_block(), &some_tlvs()), real_peer()),
    ]
}

#[test]
fn a_header_split_at_every_byte_boundary_reads_the_same() {
    for (header, peer) in headers() {
        let mut data = header.clone();
        data.extend_from_slice(b"app bytes");
        for cut in 0..=data.len() {
            let mut c = Conn::new();
            c.feed(&data[..cut]);
            c.feed(&data[cut..]);
            assert_eq!(c.peer(), Some(peer.clone()), "cut at {cut}");
            assert_eq!(c.data(), b"app bytes", "cut at {cut}");
            assert!(!c.st.disconnecting());
        }
        // And one byte at a time.
        let mut c = Conn::new();
        for b in &data {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!(c.data(), b"app bytes");
    }
}

proptest! {
    #[test]
    fn any_split_of_a_header_and_payload_reads_the_same(
        which in 0usize..5,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let (header, peer) = headers().swap_remove(which);
        let mut data = header;
        data.extend_from_slice(&payload);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        points.sort_unstable();
        let mut c = Conn::new();
        let mut at = 0;
        for p in points.into_iter().chain([data.len()]) {
            c.feed(&data[at..p]);
            at = p;
        }
        prop_assert_eq!(c.peer(), Some(peer));
        prop_assert_eq!(c.data(), payload);
        prop_assert!(!c.st.disconnecting());
    }

    #[test]
    fn any_bytes_give_the_same_answer_however_split(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        cut in any::<prop::sample::Index>(),
    ) {
        let whole = parse_header(&data, DEFAULT_MAX_V2_LENGTH);
        let mut c = Conn::new();
        let cut = cut.index(data.len() + 1);
        c.feed(&data[..cut]);
        c.feed(&data[cut..]);
        match whole {
            Ok(Some((h, n))) => {
                let expected = h.source.unwrap_or_else(real_peer);
                prop_assert_eq!(c.peer(), Some(expected));
                prop_assert_eq!(c.data(), data[n..].to_vec());
            }
            Ok(None) => prop_assert_eq!(c.seen.borrow().made, 0),
            Err(_) => c.assert_refused(),
        }
    }
}
