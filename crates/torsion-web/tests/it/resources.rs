//! The shipped resources: Data, Directory, Redirect, ErrorPage, NoResource, NameVirtualHost.

use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::{reactor, Failure};
use torsion_web::resources::{Data, Directory, ErrorPage, NameVirtualHost, Redirect};
use torsion_web::{Resource, Site};

async fn get(addr: std::net::SocketAddr, path: &str, host: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[torsion::test]
async fn redirect_error_page_and_data() -> Result<(), Failure> {
    let root = Directory::new();
    root.put_child(b"old", Rc::new(Redirect::new("/new?a=<b>")));
    root.put_child(b"gone", Rc::new(Redirect::permanent("/elsewhere")));
    root.put_child(
        b"teapot",
        Rc::new(ErrorPage::new(418, "short & stout <tea>")),
    );
    root.put_child(
        b"data",
        Rc::new(Data::new("{\"ok\":true}", "application/json")),
    );
    let port = reactor().listen_tcp_on(0, Site::new(root), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();

    let out = get(addr, "/old", "x").await;
    assert!(out.starts_with("HTTP/1.1 302 Found"), "{out}");
    assert!(out.contains("Location: /new?a=<b>"), "{out}");
    assert!(
        out.contains("href=\"/new?a=&lt;b&gt;\""),
        "the page escapes the URL: {out}"
    );
    assert!(get(addr, "/gone", "x")
        .await
        .starts_with("HTTP/1.1 301 Moved Permanently"));

    let out = get(addr, "/teapot", "x").await;
    assert!(out.starts_with("HTTP/1.1 418 "), "{out}");
    assert!(out.contains("short &amp; stout &lt;tea&gt;"), "{out}");

    let out = get(addr, "/data", "x").await;
    assert!(out.contains("Content-Type: application/json"), "{out}");
    assert!(out.contains("X-Content-Type-Options: nosniff"), "{out}");
    assert!(out.ends_with("{\"ok\":true}"), "{out}");

    let out = get(addr, "/", "x").await;
    assert!(
        out.starts_with("HTTP/1.1 404 "),
        "a bare Directory has nothing at '/': {out}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn name_virtual_host_picks_by_host_header() -> Result<(), Failure> {
    let vhost = NameVirtualHost::new();
    let a = Directory::new();
    a.put_child(b"page", Rc::new(Data::new("site A", "text/plain")));
    vhost.add_host("a.example", Rc::new(a));
    vhost.add_host("b.example", Rc::new(Data::new("site B", "text/plain")));
    let port = reactor().listen_tcp_on(0, Site::new(vhost), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    assert!(get(addr, "/page", "a.example:8080")
        .await
        .ends_with("site A"));
    assert!(get(addr, "/page", "A.EXAMPLE").await.ends_with("site A"));
    assert!(get(addr, "/anything", "b.example")
        .await
        .ends_with("site B"));
    assert!(get(addr, "/page", "c.example")
        .await
        .starts_with("HTTP/1.1 404 "));
    port.stop_listening().await
}

#[torsion::test]
async fn name_virtual_host_falls_back_to_its_default() -> Result<(), Failure> {
    let vhost = NameVirtualHost::new();
    vhost.set_default(Rc::new(Data::new("default", "text/plain")));
    let port = reactor().listen_tcp_on(0, Site::new(vhost), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    assert!(get(addr, "/", "unknown.example").await.ends_with("default"));
    port.stop_listening().await
}
