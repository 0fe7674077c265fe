//! The server against peers nobody here wrote: BIND's `dig` (Debian's dnsutils) and
//! dnspython (PyPI), asking a `DnsServer` that serves the test zone over UDP and TCP on one
//! free port, on a reactor in a thread of its own.
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use torsion::reactor::ReactorHandle;
use torsion::testing::{skip, Missing};
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion_names::authority::FileAuthority;
use torsion_names::server::{DnsDatagramProtocol, DnsServer, DnsServerFactory, ServerConfig};

use crate::server::big_zone;

/// A server on 127.0.0.1, UDP and TCP on the same port; stopped when dropped.
struct Served {
    port: u16,
    reactor: ReactorHandle,
    thread: Option<JoinHandle<()>>,
}

impl Served {
    fn start() -> Served {
        Served::start_with(big_zone())
    }

    /// A server of the zone `text`.
    fn start_with(text: String) -> Served {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let r = torsion::reactor();
            let zone = Rc::new(FileAuthority::parse(&text, None, "test").unwrap());
            let server = Rc::new(
                DnsServer::new(zone.clone(), ServerConfig::default()).with_zones(vec![zone]),
            );
            let loopback = UdpOptions {
                interface: Ipv4Addr::LOCALHOST.into(),
                ..UdpOptions::default()
            };
            // UDP on a free port, then TCP on the same number, which another test may hold
            // already: then again on another port.
            let mut tries = 0;
            let port = loop {
                let udp = r
                    .listen_udp_with(0, DnsDatagramProtocol::new(server.clone()), loopback)
                    .unwrap();
                let Address::Udp(at) = udp.get_host() else {
                    panic!("a UDP port has a UDP address")
                };
                match r.listen_tcp_on(
                    at.port(),
                    DnsServerFactory::new(server.clone()),
                    "127.0.0.1",
                ) {
                    Ok(_) => break at.port(),
                    Err(e) if tries < 20 => {
                        tries += 1;
                        drop(udp.stop_listening());
                        eprintln!("TCP port {} taken ({e}); another", at.port());
                    }
                    Err(e) => panic!("no port free for both UDP and TCP: {e}"),
                }
            };
            tx.send((port, r.handle())).unwrap();
            r.run().unwrap();
        });
        let (port, reactor) = rx.recv().expect("the server thread starts");
        Served {
            port,
            reactor,
            thread: Some(thread),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.reactor.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `dig` with `args` against `served`, its whole output; None (skipped) without dig.
fn dig(served: &Served, args: &[&str]) -> Option<String> {
    let port = served.port.to_string();
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port, "+time=3", "+tries=1"])
        .args(args)
        .output();
    match out {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(_) => {
            skip(Missing::Peer, "dig is not installed (Debian's dnsutils)");
            None
        }
    }
}

#[test]
fn dig_gets_every_record_type() {
    let served = Served::start();
    for (name, t, want) in [
        (
            "example.test",
            "SOA",
            "ns1.example.test. hostmaster.example.test. 2024010101",
        ),
        ("example.test", "NS", "NS\tns2.example.test."),
        ("example.test", "MX", "MX\t10 mail.example.test."),
        ("example.test", "TXT", "\"v=spf1 -all\""),
        ("mail.example.test", "A", "A\t192.0.2.25"),
        ("mail.example.test", "AAAA", "AAAA\t2001:db8::25"),
        ("www.example.test", "CNAME", "CNAME\tmail.example.test."),
        (
            "_sip._tcp.example.test",
            "SRV",
            "SRV\t10 5 5060 mail.example.test.",
        ),
        (
            "7.2.0.192.in-addr.example.test",
            "PTR",
            "PTR\tmail.example.test.",
        ),
    ] {
        let Some(out) = dig(&served, &["+norec", name, t]) else {
            return;
        };
        assert!(out.contains("status: NOERROR"), "{name} {t}:\n{out}");
        assert!(out.contains("flags: qr aa"), "{name} {t}:\n{out}");
        assert!(out.contains(want), "{name} {t}: no {want:?} in\n{out}");
    }
    // A CNAME followed: the alias and the address, and the glue for MX in additional.
    let out = dig(&served, &["www.example.test", "A"]).unwrap();
    assert!(
        out.contains("CNAME\tmail.example.test.") && out.contains("A\t192.0.2.25"),
        "{out}"
    );
    let out = dig(&served, &["example.test", "MX"]).unwrap();
    assert!(
        out.contains("ADDITIONAL SECTION") && out.contains("AUTHORITY SECTION"),
        "{out}"
    );
}

/// dig's output without what changes from one run to the next (the id, the time taken, the
/// date).
fn stable(out: &str) -> String {
    out.lines()
        .filter(|l| !l.contains("Query time") && !l.contains("WHEN"))
        .map(|l| match l.find(", id: ") {
            Some(at) => l[..at].to_string(),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn dig_gets_the_same_answer_again_from_the_kept_ones() {
    let served = Served::start();
    // Without a cookie (an EDNS option, which is never kept), with EDNS and without, RD or
    // not, in mixed case: each asked twice, the second answer kept, and both the same.
    for args in [
        &["+nocookie", "www.example.test", "A"][..],
        &["+noedns", "+norec", "MAIL.Example.TEST", "MX"],
        &["+nocookie", "+bufsize=4096", "big.example.test", "TXT"],
        &["+noedns", "+ignore", "big.example.test", "TXT"],
        &["+nocookie", "nope.example.test", "A"],
    ] {
        let Some(first) = dig(&served, args) else {
            return;
        };
        let again = dig(&served, args).unwrap();
        assert!(
            (first.contains("status: NOERROR") || first.contains("status: NXDOMAIN"))
                && first.contains("flags: qr aa"),
            "{args:?}:\n{first}"
        );
        assert_eq!(stable(&first), stable(&again), "{args:?}");
    }
    let out = dig(&served, &["+noedns", "+norec", "MAIL.Example.TEST", "MX"]).unwrap();
    assert!(out.contains(";MAIL.Example.TEST.\t\tIN\tMX"), "{out}");
    let out = dig(&served, &["+noedns", "+ignore", "big.example.test", "TXT"]).unwrap();
    assert!(out.contains(" tc"), "TC without EDNS:\n{out}");
}

#[test]
fn dig_gets_nxdomain_with_the_soa_and_refused_elsewhere() {
    let served = Served::start();
    let Some(out) = dig(&served, &["nope.example.test", "A"]) else {
        return;
    };
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let authority = out.split("AUTHORITY SECTION").nth(1).expect(&out);
    assert!(authority.contains("SOA\tns1.example.test."), "{out}");
    let out = dig(&served, &["example.org", "A"]).unwrap();
    assert!(out.contains("status: REFUSED"), "{out}");
}

#[test]
fn dig_gets_wildcard_answers_and_nodata_where_names_exist() {
    let served = Served::start_with(crate::authority::WILD_ZONE.to_owned());
    let Some(out) = dig(&served, &["+norec", "anything.example.test", "MX"]) else {
        return;
    };
    assert!(
        out.contains("status: NOERROR") && out.contains("flags: qr aa"),
        "{out}"
    );
    assert!(
        out.contains("anything.example.test.\t3600\tIN\tMX\t10 host1.example.test."),
        "a synthesised MX owned by the name asked: {out}"
    );
    let out = dig(&served, &["a.b.c.example.test", "TXT"]).unwrap();
    assert!(
        out.contains("a.b.c.example.test.\t3600\tIN\tTXT\t\"this is a wildcard\""),
        "{out}"
    );
    // host1 exists, _tcp.host1 exists (empty non-terminal): no wildcard for them.
    for name in ["host1.example.test", "_tcp.host1.example.test"] {
        let out = dig(&served, &[name, "TXT"]).unwrap();
        assert!(
            out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
            "{out}"
        );
    }
    let out = dig(&served, &["nope.host1.example.test", "TXT"]).unwrap();
    assert!(out.contains("status: NXDOMAIN"), "{out}");
}

#[test]
fn dig_transfers_the_zone() {
    let served = Served::start();
    let Some(out) = dig(&served, &["axfr", "example.test"]) else {
        return;
    };
    let records: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect();
    assert_eq!(records.len(), 18, "{out}");
    assert!(
        records[0].contains("\tSOA\t") && records[17].contains("\tSOA\t"),
        "{out}"
    );
}

/// The answer records of dig's output.
fn records(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect()
}

#[test]
fn dig_ixfr_gets_the_whole_zone_or_the_soa_when_up_to_date() {
    let served = Served::start();
    // An older serial, over TCP (dig's default for IXFR): the whole zone, as AXFR.
    let Some(out) = dig(&served, &["ixfr=2023000000", "example.test"]) else {
        return;
    };
    let got = records(&out);
    assert_eq!(got.len(), 18, "{out}");
    assert!(
        got[0].contains("\tSOA\t") && got[17].contains("\tSOA\t"),
        "{out}"
    );
    // The zone's own serial (2024010101), or a newer one: the SOA alone, up to date.
    for serial in ["2024010101", "2024010102"] {
        let out = dig(&served, &[&format!("ixfr={serial}"), "example.test"]).unwrap();
        let got = records(&out);
        assert_eq!(got.len(), 1, "{out}");
        assert!(
            got[0].contains("\tSOA\t") && got[0].contains("2024010101"),
            "{out}"
        );
    }
    // Over UDP an older client gets the SOA alone too: its cue to ask over TCP.
    let out = dig(&served, &["+notcp", "ixfr=1", "example.test"]).unwrap();
    let got = records(&out);
    assert_eq!(got.len(), 1, "{out}");
    assert!(got[0].contains("\tSOA\t"), "{out}");
    // A zone not served here: refused.
    let out = dig(&served, &["ixfr=1", "elsewhere.test"]).unwrap();
    assert!(records(&out).is_empty(), "{out}");
    assert!(out.contains("Transfer failed"), "{out}");
}

#[test]
fn dig_retries_a_truncated_answer_over_tcp() {
    let served = Served::start();
    // 1000 bytes of TXT, no EDNS: 512 bytes at most, so TC.
    let Some(out) = dig(&served, &["+ignore", "+noedns", "big.example.test", "TXT"]) else {
        return;
    };
    assert!(out.contains("flags: qr aa tc"), "{out}");
    assert!(out.contains("ANSWER: 0"), "{out}");
    // Plain dig sees TC and asks again over TCP.
    let out = dig(&served, &["+noedns", "big.example.test", "TXT"]).unwrap();
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(
        out.contains("ANSWER: 1") && !out.contains("flags: qr aa tc"),
        "{out}"
    );
}

#[test]
fn dig_with_edns_gets_up_to_the_ceiling() {
    let served = Served::start();
    let Some(out) = dig(
        &served,
        &["+bufsize=4096", "+ignore", "big.example.test", "TXT"],
    ) else {
        return;
    };
    assert!(out.contains("ANSWER: 1") && !out.contains(" tc"), "{out}");
    assert!(out.contains("udp: 1232"), "the server's EDNS size:\n{out}");
    let out = dig(
        &served,
        &["+bufsize=4096", "+ignore", "huge.example.test", "TXT"],
    )
    .unwrap();
    assert!(
        out.contains("flags: qr aa tc"),
        "3000 bytes is over the 1232 ceiling:\n{out}"
    );
    assert!(out.contains("MSG SIZE  rcvd:"), "{out}");
}

/// A python with dnspython from PyPI (a venv made on first use, once per process), or None,
/// loudly, without python3.
fn dnspython() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dnspython-venv");
    torsion::testing::python_venv(&venv, "dns.query, dns.zone", &["dnspython>=2"])
}

const DNSPYTHON_PEER: &str = r#"
import sys
import dns.message, dns.query, dns.rcode, dns.zone, dns.flags
port = int(sys.argv[1])
q = dns.message.make_query("mail.example.test", "AAAA")
r = dns.query.udp(q, "127.0.0.1", port=port, timeout=5)
print("udp", dns.rcode.to_text(r.rcode()), bool(r.flags & dns.flags.AA), r.answer[0][0].to_text())
q = dns.message.make_query("huge.example.test", "TXT")
r, tcp = dns.query.udp_with_fallback(q, "127.0.0.1", port=port, timeout=5)
print("fallback", tcp, len(b"".join(r.answer[0][0].strings)))
q = dns.message.make_query("nope.example.test", "A")
r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=5)
print("tcp", dns.rcode.to_text(r.rcode()), r.authority[0].rdtype == dns.rdatatype.SOA)
z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test", port=port, timeout=5))
print("axfr", len(z.nodes), z.get_rdataset("www", "CNAME")[0].to_text())
"#;

#[test]
fn dnspython_queries_and_transfers_the_zone() {
    let Some(py) = dnspython() else {
        return;
    };
    let served = Served::start();
    let out = Command::new(py)
        .args(["-c", DNSPYTHON_PEER, &served.port.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "udp NOERROR True 2001:db8::25",
            "fallback True 3000",
            "tcp NXDOMAIN True",
            "axfr 12 mail",
        ],
        "{stdout}"
    );
}
