//! The Torsion client, against pyftpdlib (a server nobody here wrote) and against
//! Torsion's own server (in TLS, with PROT P).

use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;

use torsion::defer::ensure_deferred;
use torsion::{Failure, Reactor};
use torsion_ftp::client::{FtpClient, FtpError, ListEntry, TooLarge};

use crate::interop::{factory, populate};
use crate::support::{self_signed, TempDir, MEMORY};

/// Runs `f` on a fresh reactor until it finishes; gives its outcome.
fn run<T: 'static, F: Future<Output = Result<T, Failure>> + 'static>(
    f: impl FnOnce() -> F + 'static,
) -> Result<T, Failure> {
    let r = Reactor::new();
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    r.call_when_running(move || {
        drop(ensure_deferred(f()).add_both(move |res| {
            *o.borrow_mut() = Some(res);
            drop(torsion::reactor().stop());
            Ok::<(), Failure>(())
        }));
    });
    let guard = r.clone();
    r.call_later(120.0, move || drop(guard.stop()));
    r.run().unwrap();
    let res = out.borrow_mut().take();
    res.expect("finished in time")
}

const PYFTPDLIB: &str = r#"
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
auth = DummyAuthorizer()
auth.add_user("bob", "secret", sys.argv[1], perm="elradfmwMT")
FTPHandler.authorizer = auth
server = FTPServer(("127.0.0.1", 0), FTPHandler)
print(server.socket.getsockname()[1], flush=True)
server.serve_forever()
"#;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn against_pyftpdlib() {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyftpdlib-venv");
    let Some(python) = torsion::testing::python_venv(&venv, "pyftpdlib", &["pyftpdlib>=1.5"])
    else {
        return;
    };
    let dir = TempDir::new("pyftpdlib");
    populate(dir.path());
    let mut child = Command::new(python)
        .args(["-c", PYFTPDLIB])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Killed(child);
    let port: u16 = line.trim().parse().unwrap();
    let _shared = MEMORY.read().unwrap_or_else(|e| e.into_inner());
    let (pwd, entries, names, hello, chunks, big, too_large, missing) = run(move || async move {
        let ftp = FtpClient::connect("127.0.0.1", port).await?;
        let wrong = FtpClient::connect("127.0.0.1", port).await?;
        let refused = wrong.login("bob", "wrong").await.unwrap_err();
        assert_eq!(refused.downcast_ref::<FtpError>().unwrap().0.code, 530);
        ftp.login("bob", "secret").await?;
        ftp.cwd("sub dir").await?;
        let pwd = ftp.pwd().await?;
        ftp.cwd("/").await?;
        let entries = ftp.list("").await?;
        let mut names = ftp.nlst("").await?;
        names.sort();
        let hello = ftp.retrieve("hello.txt", 1 << 20).await?;
        let mut n = 0u32;
        ftp.store_from("generated.bin", move || {
            n += 1;
            (n <= 100).then(|| vec![n as u8; 10_000])
        })
        .await?;
        let chunks = Rc::new(RefCell::new(0usize));
        let c = chunks.clone();
        let got = Rc::new(RefCell::new(0usize));
        let g = got.clone();
        ftp.retrieve_to("generated.bin", move |data| {
            *c.borrow_mut() += 1;
            *g.borrow_mut() += data.len();
            Ok(())
        })
        .await?;
        ftp.store("small.txt", b"stored".to_vec()).await?;
        let too_large = ftp.retrieve("generated.bin", 1000).await.unwrap_err();
        let missing = ftp.retrieve("nope.txt", 1000).await.unwrap_err();
        ftp.quit().await?;
        let chunks = *chunks.borrow();
        let big = *got.borrow();
        Ok::<_, Failure>((pwd, entries, names, hello, chunks, big, too_large, missing))
    })
    .unwrap();
    assert_eq!(pwd, "/sub dir");
    let find = |n: &str| entries.iter().find(|e| e.name == n).cloned();
    let hello_entry: ListEntry = find("hello.txt").unwrap();
    assert_eq!(hello_entry.size, 12);
    assert!(find("sub dir").unwrap().is_dir());
    assert_eq!(names, ["hello.txt", "sub dir"]);
    assert_eq!(hello, b"Hello, FTP!\n");
    assert_eq!(big, 1_000_000);
    assert!(chunks > 1, "delivered as it came, in {chunks} chunk(s)");
    assert!(too_large.check::<TooLarge>(), "{too_large}");
    assert_eq!(missing.downcast_ref::<FtpError>().unwrap().0.code, 550);
    let stored = std::fs::read(dir.path().join("generated.bin")).unwrap();
    assert_eq!(stored.len(), 1_000_000);
    assert_eq!(stored[999_999], 100);
    assert_eq!(
        std::fs::read(dir.path().join("small.txt")).unwrap(),
        b"stored"
    );
}

#[test]
fn against_torsions_own_server_in_tls() {
    let dir = TempDir::new("client-tls");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    let (ctx, pem) = self_signed();
    let cafile = dir.path().join("ca.pem");
    std::fs::write(&cafile, pem).unwrap();
    let f = factory(&root, &dir.path().join("passwords"))
        .tls(ctx)
        .require_tls_for_login(true);
    let _shared = MEMORY.read().unwrap_or_else(|e| e.into_inner());
    let r = Reactor::new();
    let port = r.listen_tcp_on(0, f, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    r.call_when_running(move || {
        let go = async move {
            let roots = torsion::tls::ClientContext::trusting_pem_file(&cafile)?;
            let ftp = FtpClient::connect("127.0.0.1", number).await?;
            let early = ftp.login("alice", "wonderland").await.unwrap_err();
            assert_eq!(early.downcast_ref::<FtpError>().unwrap().0.code, 530);
            ftp.auth_tls(roots).await?;
            ftp.login("alice", "wonderland").await?;
            ftp.store("up.txt", b"over TLS".to_vec()).await?;
            let back = ftp.retrieve("up.txt", 100).await?;
            let list = ftp.list("/").await?;
            ftp.quit().await?;
            Ok::<_, Failure>((back, list.len()))
        };
        drop(ensure_deferred(go).add_both(move |res| {
            *o.borrow_mut() = Some(res);
            drop(torsion::reactor().stop());
            Ok::<(), Failure>(())
        }));
    });
    let guard = r.clone();
    r.call_later(60.0, move || drop(guard.stop()));
    r.run().unwrap();
    drop(port);
    let (back, n) = out.borrow_mut().take().unwrap().unwrap();
    assert_eq!(back, b"over TLS");
    assert_eq!(n, 3);
}

/// A server that answers PASV naming another host (192.0.2.1, TEST-NET) and the port of a
/// listener on 127.0.0.1: the client must connect to 127.0.0.1, its control host.
#[test]
fn a_pasv_reply_naming_another_host_is_not_followed() {
    use std::io::Write;
    use std::net::TcpListener;
    let control = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = control.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (s, _) = control.accept().unwrap();
        let data = TcpListener::bind("127.0.0.1:0").unwrap();
        let dport = data.local_addr().unwrap().port();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"220 fake\r\n").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let verb = line.split_whitespace().next().unwrap_or("").to_owned();
            let reply = match verb.as_str() {
                "USER" => "230 in\r\n".to_owned(),
                "TYPE" => "200 ok\r\n".to_owned(),
                "EPSV" => "502 no EPSV here\r\n".to_owned(),
                "PASV" => format!(
                    "227 Entering Passive Mode (192,0,2,1,{},{})\r\n",
                    dport >> 8,
                    dport & 0xff
                ),
                "RETR" => {
                    w.write_all(b"150 here\r\n").unwrap();
                    let (mut d, _) = data.accept().unwrap();
                    d.write_all(b"followed the control host").unwrap();
                    drop(d);
                    "226 done\r\n".to_owned()
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").unwrap();
                    return;
                }
                _ => "502 ?\r\n".to_owned(),
            };
            w.write_all(reply.as_bytes()).unwrap();
        }
    });
    let got = run(move || async move {
        let ftp = FtpClient::connect("127.0.0.1", port).await?;
        ftp.login("x", "y").await?;
        let got = ftp.retrieve("f", 1000).await?;
        ftp.quit().await?;
        Ok::<_, Failure>(got)
    })
    .unwrap();
    assert_eq!(got, b"followed the control host");
    server.join().unwrap();
}
