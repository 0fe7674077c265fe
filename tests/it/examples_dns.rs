//! Runs the `dns_lookup` example against a DNS server played by the test, and checks it
//! prints what `dig +short` would.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Stdio;
use std::thread;

use torsion::names::proto::op::{Message, MessageType, ResponseCode};
use torsion::names::proto::rr::rdata::{A, MX, TXT};
use torsion::names::{RData, Record, RecordType};

use crate::support;

/// A server answering A, MX and TXT for any name but `nowhere.example.test`; runs until the
/// test process ends (its thread blocks on the socket).
fn start_server() -> std::net::SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first() else {
                continue;
            };
            let mut m = Message::new(
                query.metadata.id,
                MessageType::Response,
                query.metadata.op_code,
            );
            m.add_queries(query.queries.clone());
            let name = q.name().clone();
            if name.to_string() == "nowhere.example.test." {
                m.metadata.response_code = ResponseCode::NXDomain;
            } else {
                let data = match q.query_type() {
                    RecordType::A => vec![RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))],
                    RecordType::MX => vec![
                        RData::MX(MX::new(10, "mx1.example.test.".parse().unwrap())),
                        RData::MX(MX::new(20, "mx2.example.test.".parse().unwrap())),
                    ],
                    RecordType::TXT => vec![RData::TXT(TXT::new(vec![
                        "v=spf1 -all".into(),
                        "say \"hi\"".into(),
                    ]))],
                    _ => vec![],
                };
                m.add_answers(
                    data.into_iter()
                        .map(|d| Record::from_rdata(name.clone(), 60, d)),
                );
            }
            let _ = socket.send_to(&m.to_vec().unwrap(), from);
        }
    });
    addr
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = support::example("dns_lookup")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("cannot start cargo run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dns_lookup_prints_answers_as_dig_short() {
    let server = start_server().to_string();
    let (code, out, err) = run(&["www.example.test", "--server", &server]);
    assert_eq!((code, out.as_str()), (0, "192.0.2.1\n"), "{err}");
    let (code, out, err) = run(&["example.test", "--type", "mx", "--server", &server]);
    assert_eq!(
        (code, out.as_str()),
        (0, "10 mx1.example.test.\n20 mx2.example.test.\n"),
        "{err}"
    );
    let (code, out, err) = run(&["example.test", "--type", "16", "--server", &server]);
    assert_eq!(
        (code, out.as_str()),
        (0, "\"v=spf1 -all\" \"say \\\"hi\\\"\"\n"),
        "{err}"
    );
    let (code, out, err) = run(&["nowhere.example.test", "--server", &server]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("NXDOMAIN"), "{err}");
    let (code, _, err) = run(&["example.test", "--type", "NOSUCHTYPE", "--server", &server]);
    assert_eq!(code, 2, "{err}");
}
