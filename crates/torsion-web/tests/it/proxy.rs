//! ReverseProxyResource: requests below the mount point reach the upstream with the rest of
//! their path, query, method, headers and body; answers come back with status, headers and
//! body; an unreachable upstream is 502.

use std::rc::Rc;

use crate::support::exchange;
use torsion::{reactor, Failure};
use torsion_web::proxy::ReverseProxyResource;
use torsion_web::resources::Directory;
use torsion_web::{Render, Request, Resource, Site};

/// The upstream: tells what it received.
struct Upstream;

impl Resource for Upstream {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
    fn render_get(&self, r: &Request) -> Render {
        r.set_response_code(201);
        r.set_header("X-Upstream", "yes");
        format!(
            "{} {} host={} xff={} body={}",
            r.method(),
            r.uri(),
            r.get_header("host").unwrap_or("-"),
            r.get_header("x-forwarded-for").unwrap_or("-"),
            String::from_utf8_lossy(&r.content())
        )
        .into()
    }
    fn render_post(&self, r: &Request) -> Render {
        self.render_get(r)
    }
}

#[torsion::test]
async fn requests_reach_the_upstream_and_answers_come_back() -> Result<(), Failure> {
    let upstream = reactor().listen_tcp_on(0, Site::new(Upstream), "127.0.0.1")?;
    let up_port = upstream.get_host().port().unwrap();
    let proxy = Rc::new(ReverseProxyResource::new("127.0.0.1", up_port, "/base"));
    let root = Directory::new();
    root.put_child(b"api", proxy.clone());
    let front = reactor().listen_tcp_on(0, Site::new(root), "127.0.0.1")?;
    let addr = front.get_host().socket_addr().unwrap();

    let out = exchange(
        addr,
        "GET /api/a/b%20c?x=1 HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 201 Created"), "{out}");
    assert!(
        out.contains("X-Upstream: yes") || out.contains("x-upstream: yes"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "GET /base/a/b%20c?x=1 host=127.0.0.1:{up_port} xff=127.0.0.1"
        )),
        "{out}"
    );

    let out = exchange(
        addr,
        "POST /api/form HTTP/1.1\r\nHost: front\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(
        out.contains("POST /base/form") && out.ends_with("body=hello"),
        "{out}"
    );

    proxy.close_connections().await?;
    front.stop_listening().await?;
    upstream.stop_listening().await
}

#[torsion::test]
async fn an_unreachable_upstream_is_a_bad_gateway() -> Result<(), Failure> {
    let free = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let proxy = Rc::new(ReverseProxyResource::new("127.0.0.1", free, ""));
    let front = reactor().listen_tcp_on(
        0,
        Site::with_config(proxy.clone(), Default::default()),
        "127.0.0.1",
    )?;
    let addr = front.get_host().socket_addr().unwrap();
    let out = exchange(
        addr,
        "GET /x HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 502 Bad Gateway"), "{out}");
    proxy.close_connections().await?;
    front.stop_listening().await
}
