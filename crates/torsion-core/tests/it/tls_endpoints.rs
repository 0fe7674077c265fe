//! TLS from endpoint strings (Twisted's `ssl:`/`tls:` strports): a server from PEM files
//! (separate, combined, with an extra chain), a client trusting a CA file or folder and
//! showing a client certificate, and files that cannot be used named in the failure.

#![cfg(feature = "tls")]

use std::rc::Rc;

use crate::support::tls::{listen_echo, next, Ca, Echo, Record, Sender, TempFile};
use torsion::endpoints::{client_from_string, server_from_string, ServerDescription};
use torsion::error::{CannotListenError, ConnectError, ConnectionDone};
use torsion::{factory, reactor, Failure};

/// Listens on `server`, connects with `client` (`{port}` replaced), and returns what the
/// server and the client saw.
async fn exchange(server: &str, client: &str) -> Result<(Rc<Record>, Rc<Record>), Failure> {
    let srec: Rc<Record> = Rc::default();
    let s = srec.clone();
    let port = server_from_string(&reactor(), server)
        .unwrap()
        .listen(factory(move || Echo { rec: s.clone() }))
        .await?;
    let client = client.replace("{port}", &port.get_host().port().unwrap().to_string());
    let crec: Rc<Record> = Rc::default();
    let c = crec.clone();
    client_from_string(&reactor(), &client)
        .unwrap()
        .connect(factory(move || Sender {
            message: Rc::new(b"over an endpoint".to_vec()),
            rec: c.clone(),
        }))?;
    next(&crec.ended).await;
    next(&srec.ended).await;
    port.stop_listening().await?;
    assert_eq!(&*crec.received.borrow(), b"over an endpoint");
    let reason = crec.reason();
    assert!(reason.check::<ConnectionDone>(), "{reason}");
    Ok((srec, crec))
}

#[torsion::test(timeout = 30)]
async fn tls_endpoints_from_pem_files() -> Result<(), Failure> {
    let ca = Ca::new("Torsion endpoint CA");
    let (cert, key) = ca.leaf_pem(&["localhost"]);
    let (cert_file, key_file) = (
        TempFile::new("cert.pem", cert.as_bytes()),
        TempFile::new("key.pem", key.as_bytes()),
    );
    let both = TempFile::new("both.pem", format!("{key}{cert}").as_bytes());
    let ca_file = TempFile::new("ca.pem", ca.pem().as_bytes());

    // Separate files.
    let (_, crec) = exchange(
        &format!(
            "tls:0:privateKey={}:certKey={}:interface=127.0.0.1",
            key_file.path(),
            cert_file.path()
        ),
        &format!(
            "tls:host=localhost:port={{port}}:trustRoots={}",
            ca_file.path()
        ),
    )
    .await?;
    assert!(crec.peer_certificate.borrow().is_some());

    // One file with both (Twisted's default: certKey is the privateKey file), `ssl:`, the
    // ignored sslmethod, and the CA as an extra chain certificate.
    exchange(
        &format!(
            "ssl:0:privateKey={}:sslmethod=TLSv1_2_METHOD:interface=127.0.0.1:extraCertChain={}",
            both.path(),
            ca_file.path()
        ),
        &format!("ssl:localhost:{{port}}:trustRoots={}", ca_file.path()),
    )
    .await?;

    // trustRoots as a folder of PEM files (other files in it are skipped).
    let folder = std::env::temp_dir().join(format!("torsion-tls-roots-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(folder.join("README"), "not a certificate").unwrap();
    let r = exchange(
        &format!(
            "tls:0:{}:{}:interface=127.0.0.1",
            key_file.path(),
            cert_file.path()
        ),
        &format!(
            "tls:host=localhost:port={{port}}:trustRoots={}",
            folder.display()
        ),
    )
    .await;
    let _ = std::fs::remove_dir_all(&folder);
    r?;
    Ok(())
}

#[torsion::test(timeout = 30)]
async fn a_tls_client_endpoint_shows_its_certificate() -> Result<(), Failure> {
    let ca = Ca::new("Torsion endpoint CA");
    let (server_cert, server_key) = ca.leaf_pem(&["localhost"]);
    let (client_cert, client_key) = ca.leaf_pem(&["client.test"]);
    let server_both = TempFile::new(
        "server.pem",
        format!("{server_cert}{server_key}").as_bytes(),
    );
    let client_both = TempFile::new(
        "client.pem",
        format!("{client_cert}{client_key}").as_bytes(),
    );
    let ca_file = TempFile::new("ca.pem", ca.pem().as_bytes());
    // The endpoint string has no client-CA option: build the server by hand.
    let server = torsion::tls::ServerContext::builder()
        .certificate(
            torsion::tls::Identity::from_pem_files(server_both.path(), server_both.path()).unwrap(),
        )
        .require_client_certificate([ca.cert()])
        .build()
        .unwrap();
    let (port, srec) = listen_echo(server)?;
    let crec: Rc<Record> = Rc::default();
    let c = crec.clone();
    let client = format!(
        "tls:host=localhost:port={}:trustRoots={}:certificate={}",
        port.get_host().port().unwrap(),
        ca_file.path(),
        client_both.path()
    );
    client_from_string(&reactor(), &client)
        .unwrap()
        .connect(factory(move || Sender {
            message: Rc::new(b"it is me".to_vec()),
            rec: c.clone(),
        }))?;
    next(&crec.ended).await;
    next(&srec.ended).await;
    port.stop_listening().await?;
    assert_eq!(&*srec.received.borrow(), b"it is me");
    assert!(
        srec.peer_certificate.borrow().is_some(),
        "the server saw the client's certificate"
    );
    Ok(())
}

#[test]
fn tls_endpoint_files_that_cannot_be_used_are_named() {
    let r = torsion::Reactor::new();
    let listen = |s: &str| {
        server_from_string(&r, s)
            .unwrap()
            .listen(factory(|| Echo { rec: Rc::default() }))
            .result()
            .expect("listen fires at once")
            .expect_err("cannot listen")
    };
    let f = listen("tls:0:privateKey=/nonexistent/key.pem");
    assert!(f.check::<CannotListenError>());
    assert!(
        f.error_message()
            .contains("cannot read /nonexistent/key.pem"),
        "{f}"
    );
    let not_pem = TempFile::new("junk.pem", b"junk");
    let f = listen(&format!("tls:0:privateKey={}", not_pem.path()));
    assert!(f.error_message().contains("no certificate found"), "{f}");

    let connect = |s: &str| {
        client_from_string(&r, s)
            .unwrap()
            .connect(factory(|| Echo { rec: Rc::default() }))
            .expect_err("cannot connect")
    };
    let f = connect("tls:host=localhost:port=1:trustRoots=/nonexistent/ca.pem");
    assert!(f.check::<ConnectError>());
    assert!(
        f.error_message()
            .contains("cannot read /nonexistent/ca.pem"),
        "{f}"
    );
    let ca_file = TempFile::new("ca.pem", Ca::new("CA").pem().as_bytes());
    let f = connect(&format!(
        "tls:host=localhost:port=1:trustRoots={}:certificate={}",
        ca_file.path(),
        not_pem.path()
    ));
    assert!(f.check::<ConnectError>());
    assert!(f.error_message().contains("no private key"), "{f}");

    // sslmethod is Twisted's fourth positional argument, before interface.
    match "tls:443:key.pem:cert.pem:SSLv23_METHOD:127.0.0.1"
        .parse::<ServerDescription>()
        .unwrap()
    {
        ServerDescription::Tls {
            interface,
            private_key,
            cert_key,
            ..
        } => {
            assert_eq!(interface.as_deref(), Some("127.0.0.1"));
            assert_eq!(private_key, "key.pem");
            assert_eq!(cert_key.as_deref(), Some("cert.pem"));
        }
        other => panic!("{other:?}"),
    }
}
