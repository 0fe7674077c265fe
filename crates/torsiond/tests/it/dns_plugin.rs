//! `torsiond dns`, run for real: a zone served over UDP and TCP on one port (`--listen` and
//! twistd's `-p`), the counters logged at shutdown, and misuse.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};

use torsion_names::proto::op::{Message, Query, ResponseCode};
use torsion_names::{Name, RecordType};

use crate::support::{free_port, run, stderr_of, Running, TempDir, TIMEOUT};

const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n\
@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.80\n";

fn query(name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

fn over_udp(port: u16, name: &str) -> Message {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.send_to(&query(name), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1500];
    let n = s.recv(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn over_tcp(port: u16, name: &str) -> Message {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let q = query(name);
    s.write_all(&u16::try_from(q.len()).unwrap().to_be_bytes())
        .unwrap();
    s.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

#[test]
fn serves_a_zone_over_udp_and_tcp_on_one_port() {
    let dir = TempDir::new("dns");
    // Named after its zone, with no $ORIGIN: the origin is the file's name, as in twistd.
    let zone = dir.path().join("example.test");
    std::fs::write(&zone, ZONE).unwrap();
    let zone = zone.to_str().unwrap();
    let mut dns = Running::start(&[
        "dns",
        "--bindzone",
        zone,
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let port = dns.port();
    // The second time from the kept answer: the same, and counted the same.
    for _ in 0..2 {
        let answer = over_udp(port, "www.example.test.");
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer.answers[0].data.to_string(), "192.0.2.80");
    }
    let answer = over_tcp(port, "nope.example.test.");
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(dns.terminate().success());
    let line = dns.wait_for("dns: ");
    assert!(
        line.contains("3 queries") && line.contains("NoError=2") && line.contains("NXDomain=1"),
        "{line}"
    );

    // twistd's -p PORT with --interface; and no answers kept.
    let port = free_port();
    let mut dns = Running::start(&[
        "dns",
        "--bindzone",
        zone,
        "--answer-cache",
        "0",
        "-p",
        &port.to_string(),
        "--interface",
        "127.0.0.1",
    ]);
    dns.wait_for("listening on tcp:");
    for _ in 0..2 {
        assert_eq!(over_udp(port, "ns1.example.test.").answers.len(), 1);
    }
    assert!(dns.terminate().success());
}

#[test]
fn misuse_is_refused_with_a_message() {
    let dir = TempDir::new("dns-misuse");
    let bad = dir.path().join("bad.zone");
    std::fs::write(
        &bad,
        "$ORIGIN bad.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\nx A 999.1.1.1\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let out = run(&["dns", "--bindzone", bad, "--listen", "tcp:0"], TIMEOUT);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(&format!("{bad}:4: ")),
        "{}",
        stderr_of(&out)
    );
    let out = run(&["dns", "--listen", "tcp:0"], TIMEOUT);
    assert!(
        stderr_of(&out).contains("give --bindzone"),
        "{}",
        stderr_of(&out)
    );
    let out = run(
        &[
            "dns",
            "--recursive",
            "--forward",
            "127.0.0.1",
            "--listen",
            "tcp:0",
        ],
        TIMEOUT,
    );
    assert!(
        stderr_of(&out).contains("--recursive or --forward, not both"),
        "{}",
        stderr_of(&out)
    );
    let out = run(
        &["dns", "--forward", "dns.example", "--listen", "tcp:0"],
        TIMEOUT,
    );
    assert!(
        stderr_of(&out).contains("--forward takes IP or IP:PORT"),
        "{}",
        stderr_of(&out)
    );
}

/// `--forward` with `--cache` and `--hosts-file`, as twistd's `--recursive --cache
/// --hosts-file`: names the hosts file has are answered from it, others by the server
/// forwarded to (here another `torsiond dns`), and those answers are kept: once the upstream
/// is gone, the cached name still answers.
#[test]
fn forwards_to_an_upstream_and_caches_its_answers() {
    let dir = TempDir::new("dns-forward");
    let zone = dir.path().join("example.test");
    std::fs::write(&zone, ZONE).unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "# local names\n10.9.8.7 printer.lan printer\n").unwrap();
    let mut upstream = Running::start(&[
        "dns",
        "--bindzone",
        zone.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let forward = format!("127.0.0.1:{}", upstream.port());
    let mut dns = Running::start(&[
        "dns",
        "--forward",
        &forward,
        "--cache",
        "--hosts-file",
        hosts.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let port = dns.port();
    let answer = over_udp(port, "www.example.test.");
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers[0].data.to_string(), "192.0.2.80");
    let answer = over_tcp(port, "printer.lan.");
    assert_eq!(answer.answers[0].data.to_string(), "10.9.8.7");
    // The upstream's NXDOMAIN reaches the client as NXDOMAIN.
    let answer = over_udp(port, "nope.example.test.");
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);

    assert!(upstream.terminate().success());
    let answer = over_udp(port, "www.example.test.");
    assert_eq!(answer.answers[0].data.to_string(), "192.0.2.80");
    assert!(answer.answers[0].ttl <= 300);
    assert!(dns.terminate().success());
}
