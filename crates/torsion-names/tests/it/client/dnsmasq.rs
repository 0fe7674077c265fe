//! Interop: the client against dnsmasq (Debian's `dnsmasq-base`), a server nobody here wrote,
//! started on a free port with the records to serve.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use torsion::testing::{skip, Missing};
use torsion::Failure;
use torsion_names::client::ClientResolver;
use torsion_names::error::DnsNameError;
use torsion_names::{RData, Resolver};

use super::TempFile;

struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _hosts: TempFile,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start() -> Option<Dnsmasq> {
    let binary = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let hosts = TempFile::new("hosts", "192.0.2.21 fromfile.test\n");
    let big: Vec<String> = (0..12)
        .map(|i| format!("--txt-record=big.test,{i:02}-{}", "y".repeat(80)))
        .collect();
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(binary)
            .args([
                "--no-daemon",
                "--keep-in-foreground",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--user=",
                "--pid-file=",
                &format!("--addn-hosts={}", hosts.path.display()),
                "--host-record=www.test,192.0.2.20,2001:db8::20",
                "--cname=alias.test,www.test",
                "--mx-host=test,mail.test,10",
                "--txt-record=txt.test,hello world,second string",
                "--srv-host=_sip._udp.test,sip.test,5060,5,7",
                "--local=/test/",
            ])
            .args(&big)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        // Ready when it answers TCP (it opens UDP and TCP together).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken after all: try another
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Dnsmasq {
                    child,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    _hosts: hosts,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

#[torsion::test(timeout = 30)]
async fn the_client_reads_every_record_type_from_dnsmasq() -> Result<(), Failure> {
    let Some(server) = start() else {
        skip(
            Missing::Peer,
            "dnsmasq is not installed (scripts/test installs dnsmasq-base)",
        );
        return Ok(());
    };
    let r = torsion::reactor();
    let client = ClientResolver::new(&r, vec![server.addr]);

    let a = client.lookup_address("www.test").await?;
    assert!(
        matches!(&a.answers[..], [rec] if rec.data == RData::A(Ipv4Addr::new(192, 0, 2, 20).into()))
    );
    let aaaa = client.lookup_ipv6_address("www.test").await?;
    let v6: Ipv6Addr = "2001:db8::20".parse().unwrap();
    assert!(matches!(&aaaa.answers[..], [rec] if rec.data == RData::AAAA(v6.into())));
    let file = client.get_host_by_name("fromfile.test").await?;
    assert_eq!(file, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21)));

    let mx = client.lookup_mail_exchange("test").await?;
    match &mx.answers[0].data {
        RData::MX(mx) => assert_eq!(
            (mx.preference, mx.exchange.to_string().as_str()),
            (10, "mail.test.")
        ),
        other => panic!("not MX: {other:?}"),
    }
    let txt = client.lookup_text("txt.test").await?;
    match &txt.answers[0].data {
        RData::TXT(txt) => {
            let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
            assert_eq!(strings, [&b"hello world"[..], b"second string"]);
        }
        other => panic!("not TXT: {other:?}"),
    }
    let srv = client.lookup_service("_sip._udp.test").await?;
    match &srv.answers[0].data {
        RData::SRV(srv) => {
            assert_eq!((srv.priority, srv.weight, srv.port), (5, 7, 5060));
            assert_eq!(srv.target.to_string(), "sip.test.");
        }
        other => panic!("not SRV: {other:?}"),
    }
    let cname = client.lookup_address("alias.test").await?;
    assert!(cname
        .answers
        .iter()
        .any(|r| matches!(&r.data, RData::CNAME(c) if c.0.to_string() == "www.test.")));
    assert_eq!(
        client.get_host_by_name("alias.test").await?,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20))
    );

    let nx = client.lookup_address("nowhere.test").await.unwrap_err();
    assert!(nx.check::<DnsNameError>(), "{}", nx.report());

    // 12 TXT strings of 83 bytes (~1.1 KB): within the 1232 bytes the client's EDNS offers,
    // and whole (dnsmasq honours the OPT record).
    let big = client.lookup_text("big.test").await?;
    assert_eq!(big.answers.len(), 12);
    // Without EDNS they are over UDP's 512: TC, then TCP.
    client.set_edns(None);
    let big = client.lookup_text("big.test").await?;
    assert_eq!(big.answers.len(), 12);
    Ok(())
}
