//! What the SSH bridge costs: 64-byte messages echoed over an SSH exec channel (a russh
//! client against the Torsion SSH server) beside the same messages echoed over plain TCP by
//! a Torsion protocol, one at a time; prints the microseconds per round trip and the reactor
//! thread's CPU time per message. Run it optimised:
//!
//! ```text
//! cargo run -p torsion-conch --release --example ssh_echo_cost -- 20000
//! ```
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg};
use russh::ChannelMsg;
use torsion::{factory, Protocol, Reactor, Transport};
use torsion_conch::keys::{AuthorizedKeysChecker, SshPublicKey};
use torsion_conch::ssh::{HostKey, SessionRequest, SshRealm, SshServer};
use torsion_cred::Portal;

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// CPU time (user + system) of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

struct Client;

impl russh::client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20000);
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let dir = std::env::temp_dir().join(format!("ssh-echo-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("authorized_keys");
    std::fs::write(&auth, key.public_key().to_openssh().unwrap()).unwrap();

    let (ports_tx, ports_rx) = mpsc::channel();
    let (cpu_tx, cpu_rx) = mpsc::channel::<mpsc::Sender<f64>>();
    let server = std::thread::spawn(move || {
        let r = Reactor::new();
        r.set_install_signal_handlers(false);
        let portal = Portal::new(SshRealm);
        portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file(&auth, &[]));
        let ssh = SshServer::new(portal, vec![HostKey::generate()], |_: &SessionRequest| {
            Some(Box::new(Echo) as Box<dyn Protocol>)
        });
        let ssh_port = ssh.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let tcp = r.listen_tcp_on(0, factory(|| Echo), "127.0.0.1").unwrap();
        ports_tx
            .send((ssh_port.local_addr(), tcp.get_host().port().unwrap()))
            .unwrap();
        // Answers CPU-time questions from the measuring thread, on the reactor thread.
        let h = r.handle();
        std::thread::spawn(move || {
            for reply in cpu_rx {
                h.call_from_thread(move || {
                    let _ = reply.send(thread_cpu());
                });
            }
            h.stop();
        });
        r.run().unwrap();
    });
    let (ssh_addr, tcp_port) = ports_rx.recv().unwrap();
    let cpu = || {
        let (tx, rx) = mpsc::channel();
        cpu_tx.send(tx).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    };
    let msg = [b'x'; 64];

    // Plain TCP.
    let mut s = TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [0u8; 64];
    let (c0, t0) = (cpu(), Instant::now());
    for _ in 0..n {
        s.write_all(&msg).unwrap();
        s.read_exact(&mut buf).unwrap();
    }
    let (tcp_time, tcp_cpu) = (t0.elapsed(), cpu() - c0);

    // SSH exec channel.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ssh_time, ssh_cpu) = rt.block_on(async {
        let config = Arc::new(russh::client::Config {
            nodelay: true,
            ..Default::default()
        });
        let mut h = russh::client::connect(config, ssh_addr, Client)
            .await
            .unwrap();
        let ok = h
            .authenticate_publickey("bench", PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .unwrap();
        assert!(ok.success(), "the bench key logs in");
        let mut ch = h.channel_open_session().await.unwrap();
        ch.exec(true, "echo").await.unwrap();
        let (c0, t0) = (cpu(), Instant::now());
        for _ in 0..n {
            ch.data_bytes(bytes::Bytes::from_static(&[b'x'; 64]))
                .await
                .unwrap();
            let mut got = 0;
            while got < 64 {
                match ch.wait().await {
                    Some(ChannelMsg::Data { data }) => got += data.len(),
                    Some(_) => {}
                    None => panic!("channel closed"),
                }
            }
        }
        (t0.elapsed(), cpu() - c0)
    });
    drop(cpu_tx);
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let cpu_per = |c: f64| c * 1e6 / n as f64;
    println!("{n} round trips of 64 bytes, one at a time");
    println!(
        "tcp echo:          {:7.1} us per round trip, reactor CPU {:6.1} us per message",
        per(tcp_time),
        cpu_per(tcp_cpu)
    );
    println!(
        "ssh exec channel:  {:7.1} us per round trip, reactor CPU {:6.1} us per message",
        per(ssh_time),
        cpu_per(ssh_cpu)
    );
}
