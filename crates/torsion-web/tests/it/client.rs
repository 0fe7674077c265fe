//! The HTTP client against servers on the same reactor: a torsion-web `Site` with small
//! resources, and raw torsion protocols for what a good server never does (closing to end a
//! body, stalling, garbage, dropping a kept-alive connection). Every test closes what it
//! opened: the pool's idle connections and the listening ports.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;

use flate2::write::GzEncoder;
use flate2::Compression;
use torsion::defer::{gather_results, CancelledError};
use torsion::error::{ConnectionRefusedError, TimeoutError};
use torsion::task::defer_later;
use torsion::tcp::ListeningPort;
use torsion::transport::Address;
use torsion::{reactor, Factory, Failure, Protocol, Reactor, Transport};
use torsion_web::client::{
    get_page, read_body, Agent, BodyTooLarge, ContentDecodingError, HttpClientFactory,
    HttpConnectionPool, HttpError, InfiniteRedirection, InvalidUrl, MalformedResponse,
    ResponseFailed, ResponseNeverReceived, ResponseTimeout, SchemeNotSupported, TimeoutPhase,
    TlsConnector,
};
use torsion_web::proto::{Headers, Version};
use torsion_web::resources::{Data, Directory, Redirect};
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

// ---------------------------------------------------------------------------------------
// Servers

/// Answers with what it saw: method, path, some headers and the body.
struct Mirror;

impl Resource for Mirror {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST", "PUT"]
    }
    fn render_get(&self, r: &Request) -> Render {
        format!(
            "{} {} host={} ua={} length={} auth={} body={}",
            r.method(),
            r.uri(),
            r.get_header("host").unwrap_or("-"),
            r.get_header("user-agent").unwrap_or("-"),
            r.get_header("content-length").unwrap_or("-"),
            r.get_header("authorization").unwrap_or("-"),
            String::from_utf8_lossy(&r.content())
        )
        .into()
    }
    fn render_post(&self, r: &Request) -> Render {
        self.render_get(r)
    }
    fn render_put(&self, r: &Request) -> Render {
        self.render_get(r)
    }
}

/// Streams its body in pieces, so the response is chunked.
struct Pieces(Vec<&'static str>);

impl Resource for Pieces {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        let pieces = self.0.clone();
        r.write(pieces[0].as_bytes());
        let r = r.clone();
        reactor().call_later(0.01, move || {
            for p in &pieces[1..] {
                r.write(p.as_bytes());
            }
            r.finish();
        });
        Render::NotDoneYet
    }
}

/// Answers after a short wait, so that requests overlap.
struct Later;

impl Resource for Later {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _: &Request) -> Render {
        Render::Later(defer_later(&reactor(), 0.05, || b"later".to_vec()))
    }
}

/// Redirects GET and POST with a given status.
struct Redirector {
    code: u16,
    location: String,
}

impl Resource for Redirector {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
    fn render_get(&self, r: &Request) -> Render {
        r.set_response_code(self.code);
        r.set_header("Location", self.location.clone());
        "moved".into()
    }
    fn render_post(&self, r: &Request) -> Render {
        self.render_get(r)
    }
}

/// Gzips its body when the client accepts gzip.
struct Gzipped(Vec<u8>);

impl Resource for Gzipped {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        if r.get_header("accept-encoding")
            .is_some_and(|v| v.contains("gzip"))
        {
            r.set_header("Content-Encoding", "gzip");
            gzip(&self.0).into()
        } else {
            self.0.clone().into()
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// What a raw server does with a request: (its transport, the request's number on the
/// connection, the request head).
type Reply = Rc<dyn Fn(&Transport, usize, &[u8])>;

/// A server that answers each request head with `reply(transport, request number on this
/// connection, head)`; it never answers when `reply` writes nothing.
struct Raw {
    reply: Reply,
    seen: Vec<u8>,
    requests: usize,
}

impl Protocol for Raw {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.seen.extend_from_slice(data);
        while let Some(end) = self.seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = self.seen.drain(..end + 4).collect();
            self.requests += 1;
            (self.reply)(t, self.requests, &head);
        }
    }
}

/// Counts the connections its factory makes.
struct Counting<F> {
    inner: F,
    made: Rc<Cell<u32>>,
}

impl<F: Factory> Factory for Counting<F> {
    type Protocol = F::Protocol;

    fn build_protocol(&self, addr: &Address) -> Option<F::Protocol> {
        self.made.set(self.made.get() + 1);
        self.inner.build_protocol(addr)
    }
}

fn listen<F: Factory>(f: F) -> (ListeningPort, u16) {
    let port = reactor().listen_tcp_on(0, f, "127.0.0.1").unwrap();
    let n = port.get_host().port().unwrap();
    (port, n)
}

/// Listens with a raw server; returns the port, its number and the connection count.
fn listen_raw(
    reply: impl Fn(&Transport, usize, &[u8]) + 'static,
) -> (ListeningPort, u16, Rc<Cell<u32>>) {
    let reply: Reply = Rc::new(reply);
    let made = Rc::new(Cell::new(0));
    let f = Counting {
        inner: torsion::factory(move || Raw {
            reply: reply.clone(),
            seen: Vec::new(),
            requests: 0,
        }),
        made: made.clone(),
    };
    let (port, n) = listen(f);
    (port, n, made)
}

/// Listens with a site; returns the port, its number and the connection count.
fn listen_site(site: Site) -> (ListeningPort, u16, Rc<Cell<u32>>) {
    let made = Rc::new(Cell::new(0));
    let (port, n) = listen(Counting {
        inner: site,
        made: made.clone(),
    });
    (port, n, made)
}

fn tree() -> Directory {
    let root = Directory::new();
    root.put_child(b"", Rc::new(Data::new("home", "text/plain")));
    root.put_child(b"mirror", Rc::new(Mirror));
    root.put_child(
        b"pieces",
        Rc::new(Pieces(vec!["first ", "second ", "third"])),
    );
    root.put_child(b"later", Rc::new(Later));
    root.put_child(b"big", Rc::new(Data::new(vec![b'x'; 1000], "text/plain")));
    root
}

async fn sleep(seconds: f64) {
    defer_later(&reactor(), seconds, || ()).await.unwrap();
}

async fn fetch(agent: &Agent, url: &str) -> Result<(u16, String), Failure> {
    let response = agent.get(url).await?;
    let code = response.code;
    let body = read_body(response).await?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

// ---------------------------------------------------------------------------------------
// Round trips and bodies

#[torsion::test]
async fn get_and_post_round_trips() -> Result<(), Failure> {
    let (port, n, _) = listen_site(Site::new(tree()));
    let agent = Agent::new();

    let response = agent
        .get(&format!("http://127.0.0.1:{n}/mirror?q=1"))
        .await?;
    assert_eq!((response.code, response.phrase.as_str()), (200, "OK"));
    assert_eq!(response.version, Version::Http11);
    assert_eq!(response.headers.get_str("server"), Some("Torsion"));
    let length = response.length();
    let body = String::from_utf8(read_body(response).await?).unwrap();
    assert_eq!(length, Some(body.len() as u64));
    assert_eq!(
        body,
        format!("GET /mirror?q=1 host=127.0.0.1:{n} ua=Torsion length=- auth=- body=")
    );

    let mut headers = Headers::new();
    headers.add("Content-Type", "text/plain");
    headers.add("User-Agent", "test/1");
    let response = agent
        .request(
            "POST",
            &format!("http://127.0.0.1:{n}/mirror"),
            headers,
            Some(b"hello".to_vec()),
        )
        .await?;
    let body = String::from_utf8(response.body().await?).unwrap();
    assert_eq!(
        body,
        format!("POST /mirror host=127.0.0.1:{n} ua=test/1 length=5 auth=- body=hello")
    );

    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn host_names_go_through_the_reactors_name_resolver() -> Result<(), Failure> {
    // Twisted's Agent resolves with `reactor.nameResolver`; so does this one: a name known
    // only to the installed resolver is fetched, and one it refuses fails with
    // DnsLookupError.
    let (port, n, _) = listen_site(Site::new(tree()));
    reactor().install_name_resolver(|host: &str, port: u16| {
        if host == "site.test" {
            torsion::defer::succeed(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
        } else {
            torsion::defer::fail(Failure::new(torsion::error::DnsLookupError::not_found(
                host,
            )))
        }
    });
    let agent = Agent::new();
    let (code, body) = fetch(&agent, &format!("http://site.test:{n}/mirror")).await?;
    assert_eq!(code, 200);
    assert!(body.contains(&format!("host=site.test:{n}")), "{body}");
    let err = fetch(&agent, "http://elsewhere.test/").await.unwrap_err();
    assert!(err.check::<torsion::error::DnsLookupError>(), "{err:?}");
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn chunked_bodies_are_reassembled_and_the_connection_reused() -> Result<(), Failure> {
    let (port, n, made) = listen_site(Site::new(tree()));
    let agent = Agent::new();
    let response = agent.get(&format!("http://127.0.0.1:{n}/pieces")).await?;
    assert!(response.headers.has_token("transfer-encoding", "chunked"));
    assert_eq!(response.length(), None);
    assert_eq!(read_body(response).await?, b"first second third");
    let (_, body) = fetch(&agent, &format!("http://127.0.0.1:{n}/pieces")).await?;
    assert_eq!(body, "first second third");
    assert_eq!(made.get(), 1);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn until_close_bodies_end_when_the_server_closes() -> Result<(), Failure> {
    let (port, n, _) = listen_raw(|t, _, _| {
        t.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ");
        t.write(b"it, until the end");
        t.lose_connection();
    });
    let agent = Agent::new();
    let (code, body) = fetch(&agent, &format!("http://127.0.0.1:{n}/")).await?;
    assert_eq!((code, body.as_str()), (200, "all of it, until the end"));
    assert_eq!(agent.pool().idle_connections(), 0, "never reused");
    port.stop_listening().await
}

#[torsion::test]
async fn head_204_and_interim_responses_have_no_body() -> Result<(), Failure> {
    let (site_port, n, _) = listen_site(Site::new(tree()));
    let agent = Agent::new();
    let head = agent
        .request(
            "HEAD",
            &format!("http://127.0.0.1:{n}/big"),
            Headers::new(),
            None,
        )
        .await?;
    assert_eq!(head.headers.get_str("content-length"), Some("1000"));
    assert_eq!(read_body(head).await?, b"");
    // The connection is still good after a HEAD.
    assert_eq!(
        fetch(&agent, &format!("http://127.0.0.1:{n}/")).await?.1,
        "home"
    );

    let (raw_port, m, made) = listen_raw(|t, i, _| {
        if i == 1 {
            t.write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
            );
            t.write(b"HTTP/1.1 204 No Content\r\n\r\n");
        } else {
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
        }
    });
    let (code, body) = fetch(&agent, &format!("http://127.0.0.1:{m}/")).await?;
    assert_eq!((code, body.as_str()), (204, ""));
    let (code, body) = fetch(&agent, &format!("http://127.0.0.1:{m}/")).await?;
    assert_eq!((code, body.as_str()), (200, "second"));
    assert_eq!(made.get(), 1);

    agent.close_cached_connections().await?;
    site_port.stop_listening().await?;
    raw_port.stop_listening().await
}

// ---------------------------------------------------------------------------------------
// The pool

#[torsion::test]
async fn keep_alive_reuses_one_connection() -> Result<(), Failure> {
    let (port, n, made) = listen_site(Site::new(tree()));
    let agent = Agent::new();
    for path in ["", "mirror", "big", ""] {
        let (code, _) = fetch(&agent, &format!("http://127.0.0.1:{n}/{path}")).await?;
        assert_eq!(code, 200);
    }
    assert_eq!(made.get(), 1, "one connection for four requests");
    assert_eq!(agent.pool().connections_made(), 1);
    assert_eq!(agent.pool().idle_connections(), 1);
    agent.close_cached_connections().await?;
    assert_eq!(agent.pool().idle_connections(), 0);
    port.stop_listening().await
}

#[torsion::test]
async fn at_most_two_idle_per_host_and_idle_ones_expire() -> Result<(), Failure> {
    let (port, n, made) = listen_site(Site::new(tree()));
    let pool = HttpConnectionPool::new(true);
    pool.set_cached_connection_timeout(0.1);
    let agent = Agent::new().with_pool(pool.clone());
    let url = format!("http://127.0.0.1:{n}/later");
    let all = (0..3)
        .map(|_| agent.get(&url).add_callback_deferred(read_body))
        .collect();
    let bodies = gather_results(all).await?;
    assert!(bodies.iter().all(|b| b == b"later"));
    assert_eq!(
        made.get(),
        3,
        "three requests at once need three connections"
    );
    assert_eq!(pool.idle_connections(), 2, "only two are kept");
    sleep(0.3).await;
    assert_eq!(pool.idle_connections(), 0, "closed after the idle time-out");
    // The next request needs a new connection.
    assert_eq!(fetch(&agent, &url).await?.1, "later");
    assert_eq!(made.get(), 4);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn a_connection_the_server_closed_is_not_reused() -> Result<(), Failure> {
    let config = SiteConfig {
        idle_timeout: Some(0.05),
        ..SiteConfig::default()
    };
    let (port, n, made) = listen_site(Site::with_config(Rc::new(tree()), config));
    let agent = Agent::new();
    let url = format!("http://127.0.0.1:{n}/");
    assert_eq!(fetch(&agent, &url).await?.1, "home");
    assert_eq!(agent.pool().idle_connections(), 1);
    sleep(0.3).await;
    assert_eq!(
        agent.pool().idle_connections(),
        0,
        "the server's close was noticed"
    );
    assert_eq!(fetch(&agent, &url).await?.1, "home");
    assert_eq!(made.get(), 2);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn a_dead_reused_connection_is_retried_once_for_idempotent_methods() -> Result<(), Failure> {
    // Answers the first request of each connection, and hangs up on the second.
    let (port, n, made) = listen_raw(|t, i, _| {
        if i == 1 {
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        } else {
            t.lose_connection();
        }
    });
    let agent = Agent::new();
    let url = format!("http://127.0.0.1:{n}/");
    assert_eq!(fetch(&agent, &url).await?.1, "ok");
    assert_eq!(
        fetch(&agent, &url).await?.1,
        "ok",
        "retried on a new connection"
    );
    assert_eq!(made.get(), 2);

    // A POST is not retried: it fails, on the reused connection.
    let post = agent
        .request("POST", &url, Headers::new(), Some(b"once".to_vec()))
        .await
        .unwrap_err();
    let e = post.trap::<ResponseNeverReceived>().unwrap();
    assert!(e.to_string().contains("before any response"), "{e}");
    assert_eq!(made.get(), 2);

    // Without automatic retries, a GET fails the same way.
    agent.pool().set_retry_automatically(false);
    assert_eq!(fetch(&agent, &url).await?.1, "ok");
    let f = fetch(&agent, &url).await.unwrap_err();
    assert!(f.check::<ResponseNeverReceived>(), "{f}");
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn a_non_persistent_pool_asks_to_close() -> Result<(), Failure> {
    let (port, n, made) = listen_site(Site::new(tree()));
    let agent = Agent::new().with_pool(HttpConnectionPool::new(false));
    for _ in 0..2 {
        let response = agent.get(&format!("http://127.0.0.1:{n}/")).await?;
        assert!(response.headers.has_token("connection", "close"));
        assert_eq!(read_body(response).await?, b"home");
    }
    assert_eq!(made.get(), 2);
    assert_eq!(agent.pool().idle_connections(), 0);
    // Let the closes complete before the port goes.
    sleep(0.01).await;
    port.stop_listening().await
}

// ---------------------------------------------------------------------------------------
// Redirects

#[torsion::test]
async fn redirects_are_followed() -> Result<(), Failure> {
    let root = Rc::new(tree());
    let site = Site::with_config(root.clone(), SiteConfig::default());
    let (port, n, made) = listen_site(site);
    let target = format!("http://127.0.0.1:{n}/mirror");
    root.put_child(b"rel", Rc::new(Redirect::new("mirror?from=rel")));
    root.put_child(b"abs", Rc::new(Redirect::permanent(&target)));
    root.put_child(b"loop", Rc::new(Redirect::new("/loop")));
    let moved = |code, location: &str| {
        Rc::new(Redirector {
            code,
            location: location.to_owned(),
        })
    };
    root.put_child(b"see-other", moved(303, "/mirror"));
    root.put_child(b"temporary", moved(307, "/mirror"));
    root.put_child(b"permanent", moved(308, "./mirror"));
    root.put_child(b"found", moved(302, "//127.0.0.1:1/elsewhere"));

    let agent = Agent::new().with_redirects(3);
    let base = format!("http://127.0.0.1:{n}");

    let response = agent.get(&format!("{base}/rel")).await?;
    assert_eq!(response.url(), format!("{target}?from=rel"));
    let body = String::from_utf8(read_body(response).await?).unwrap();
    assert!(body.starts_with("GET /mirror?from=rel "), "{body}");
    let (_, body) = fetch(&agent, &format!("{base}/abs")).await?;
    assert!(body.starts_with("GET /mirror "), "{body}");

    let post = |path: &str, body: &[u8]| {
        let mut h = Headers::new();
        h.add("Content-Type", "text/plain");
        h.add("Authorization", "Basic dTpw");
        agent.request("POST", &format!("{base}/{path}"), h, Some(body.to_vec()))
    };
    let body = read_body(post("see-other", b"form").await?).await?;
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.starts_with("GET /mirror ") && body.ends_with("auth=Basic dTpw body="),
        "{body}"
    );
    for path in ["temporary", "permanent"] {
        let body = String::from_utf8(read_body(post(path, b"data").await?).await?).unwrap();
        assert!(
            body.starts_with("POST /mirror ")
                && body.ends_with("length=4 auth=Basic dTpw body=data"),
            "{body}"
        );
    }

    let f = agent.get(&format!("{base}/loop")).await.unwrap_err();
    let e = f.trap::<InfiniteRedirection>().unwrap();
    assert_eq!(
        (e.limit, e.location.as_str()),
        (3, format!("{base}/loop").as_str())
    );

    // A cross-origin redirect is followed (here to a closed port).
    let f = agent.get(&format!("{base}/found")).await.unwrap_err();
    assert!(f.check::<ConnectionRefusedError>(), "{f}");

    // Without redirect following, the redirect itself is the response.
    let plain = Agent::new();
    let response = plain.get(&format!("{base}/rel")).await?;
    assert_eq!(response.code, 302);
    assert_eq!(
        response.headers.get_str("location"),
        Some("mirror?from=rel")
    );
    drop(response);

    assert!(
        made.get() <= 3,
        "redirects reuse connections: {}",
        made.get()
    );
    agent.close_cached_connections().await?;
    plain.close_cached_connections().await?;
    port.stop_listening().await
}

// ---------------------------------------------------------------------------------------
// gzip

#[torsion::test]
async fn gzip_bodies_are_asked_for_and_decoded() -> Result<(), Failure> {
    let text: Vec<u8> = b"compress me, ".repeat(500);
    let root = tree();
    root.put_child(b"gz", Rc::new(Gzipped(text.clone())));
    root.put_child(b"bomb", Rc::new(Gzipped(vec![0; 1 << 20])));
    let (port, n, _) = listen_site(Site::new(root));
    let url = format!("http://127.0.0.1:{n}/gz");

    let agent = Agent::new().with_gzip();
    let response = agent.get(&url).await?;
    assert!(!response.headers.contains("content-encoding"));
    assert_eq!(response.length(), None);
    assert_eq!(read_body(response).await?, text);

    let plain = Agent::new();
    let response = plain.get(&url).await?;
    assert!(
        !response.headers.contains("content-encoding"),
        "not asked for"
    );
    assert_eq!(read_body(response).await?, text);

    let small = Agent::new().with_gzip().with_max_body(10_000);
    let response = small.get(&format!("http://127.0.0.1:{n}/bomb")).await?;
    assert!(response.length().is_none());
    let f = read_body(response).await.unwrap_err();
    assert_eq!(f.trap::<BodyTooLarge>().unwrap().limit, 10_000);

    agent.close_cached_connections().await?;
    plain.close_cached_connections().await?;
    small.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn a_corrupt_gzip_body_fails_clearly() -> Result<(), Failure> {
    let mut body = gzip(b"hello hello hello");
    let last = body.len() - 5;
    body[last] ^= 0xff; // break the CRC
    let (port, n, _) = listen_raw(move |t, _, _| {
        t.write(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        t.write(&body);
    });
    let agent = Agent::new().with_gzip();
    let f = fetch(&agent, &format!("http://127.0.0.1:{n}/"))
        .await
        .unwrap_err();
    assert!(f.check::<ContentDecodingError>(), "{f}");
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

/// A raw server answering every request with `coding` and `body`.
fn listen_encoded(coding: &'static str, body: Vec<u8>) -> (ListeningPort, u16) {
    let (port, n, _) = listen_raw(move |t, _, _| {
        t.write(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        t.write(&body);
    });
    (port, n)
}

#[torsion::test]
async fn stacked_gzip_codings_are_all_decoded_or_fail() -> Result<(), Failure> {
    let text = b"twice compressed ".repeat(50);
    let agent = Agent::new().with_gzip();

    let (port, n) = listen_encoded("gzip, x-gzip", gzip(&gzip(&text)));
    let response = agent.get(&format!("http://127.0.0.1:{n}/")).await?;
    assert!(!response.headers.contains("content-encoding"));
    assert_eq!(read_body(response).await?, text, "both layers decoded");
    port.stop_listening().await?;

    // A coding the agent cannot undo stops decoding and stays named in the header.
    let (port, n) = listen_encoded("br, gzip", gzip(b"pretend brotli"));
    let response = agent.get(&format!("http://127.0.0.1:{n}/")).await?;
    assert_eq!(response.headers.get_str("content-encoding"), Some("br"));
    assert_eq!(read_body(response).await?, b"pretend brotli");
    port.stop_listening().await?;

    // Two layers announced, one sent: the inner layer is not gzip, so it fails.
    let (port, n) = listen_encoded("gzip, gzip", gzip(&text));
    let f = fetch(&agent, &format!("http://127.0.0.1:{n}/"))
        .await
        .unwrap_err();
    assert!(f.check::<ContentDecodingError>(), "{f}");
    port.stop_listening().await?;

    let mut five = text.clone();
    for _ in 0..5 {
        five = gzip(&five);
    }
    let (port, n) = listen_encoded("gzip, gzip, gzip, gzip, gzip", five);
    let f = agent
        .get(&format!("http://127.0.0.1:{n}/"))
        .await
        .unwrap_err();
    assert!(f.check::<ContentDecodingError>(), "{f}");
    assert!(f.to_string().contains("5 stacked gzip codings"), "{f}");
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

// ---------------------------------------------------------------------------------------
// Limits, time-outs and failures

#[torsion::test]
async fn bodies_over_the_limit_fail() -> Result<(), Failure> {
    let root = tree();
    root.put_child(b"many", Rc::new(Pieces(vec!["0123456789"; 20])));
    let (port, n, _) = listen_site(Site::new(root));
    let agent = Agent::new().with_max_body(100);
    for path in ["big", "many"] {
        let f = fetch(&agent, &format!("http://127.0.0.1:{n}/{path}"))
            .await
            .unwrap_err();
        let e = f.trap::<BodyTooLarge>().unwrap();
        assert_eq!(e.limit, 100);
        assert!(e.to_string().contains("100 bytes"), "{e}");
    }
    assert_eq!(
        fetch(&agent, &format!("http://127.0.0.1:{n}/")).await?.1,
        "home"
    );
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn a_server_that_never_answers_times_out() -> Result<(), Failure> {
    let (port, n, _) = listen_raw(|_, _, _| {});
    let agent = Agent::new().with_timeout(0.2);
    let started = reactor().seconds();
    let f = agent
        .get(&format!("http://127.0.0.1:{n}/"))
        .await
        .unwrap_err();
    let e = f.downcast_ref::<ResponseTimeout>().unwrap();
    assert_eq!((e.phase, e.seconds), (TimeoutPhase::Total, 0.2), "{f}");
    let took = reactor().seconds() - started;
    assert!((0.19..2.0).contains(&took), "{took}");
    assert_eq!(agent.pool().idle_connections(), 0);
    sleep(0.01).await;
    port.stop_listening().await
}

#[torsion::test]
async fn a_body_that_stalls_times_out() -> Result<(), Failure> {
    let (port, n, _) = listen_raw(|t, _, _| {
        t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part");
    });
    let agent = Agent::new().with_timeout(0.2);
    let response = agent.get(&format!("http://127.0.0.1:{n}/")).await?;
    assert_eq!(response.code, 200);
    let f = read_body(response).await.unwrap_err();
    let e = f.downcast_ref::<ResponseTimeout>().unwrap();
    assert_eq!(e.phase, TimeoutPhase::Total, "{f}");
    sleep(0.01).await;
    port.stop_listening().await
}

/// A plain std server on a thread of its own, outside the reactor: it accepts one
/// connection, reads the request head, writes `reply` and then says nothing more. Joining
/// the handle gives whether the client closed the connection within 10 s.
fn stalling_server(reply: &'static [u8]) -> (u16, std::thread::JoinHandle<bool>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let n = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let mut replied = false;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            conn.set_read_timeout(Some(left)).unwrap();
            match conn.read(&mut buf) {
                Ok(0) => return true,
                Ok(k) => seen.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
            if !replied && seen.windows(4).any(|w| w == b"\r\n\r\n") {
                replied = true;
                conn.write_all(reply).unwrap();
            }
        }
    });
    (n, handle)
}

#[test]
fn agents_have_head_and_idle_timeouts_by_default() {
    let _ = Reactor::new();
    let debug = format!("{:?}", Agent::new());
    assert!(debug.contains("head_timeout: Some(60.0)"), "{debug}");
    assert!(debug.contains("idle_timeout: Some(60.0)"), "{debug}");
    let debug = format!("{:?}", Agent::new().with_idle_timeout(None));
    assert!(debug.contains("idle_timeout: None"), "{debug}");
}

#[torsion::test]
async fn a_server_that_sends_nothing_hits_the_head_timeout() -> Result<(), Failure> {
    let (n, server) = stalling_server(b"");
    let agent = Agent::new().with_head_timeout(Some(1.0));
    let started = reactor().seconds();
    let f = agent
        .get(&format!("http://127.0.0.1:{n}/"))
        .await
        .unwrap_err();
    let took = reactor().seconds() - started;
    let e = *f
        .downcast_ref::<ResponseTimeout>()
        .unwrap_or_else(|| panic!("{f}"));
    assert_eq!((e.phase, e.seconds), (TimeoutPhase::Head, 1.0));
    assert!(f.to_string().contains("head time-out"), "{f}");
    let source = std::error::Error::source(f.error()).unwrap();
    assert!(source.is::<TimeoutError>());
    assert!((0.9..5.0).contains(&took), "{took}");
    assert_eq!(agent.pool().idle_connections(), 0);
    assert!(server.join().unwrap(), "the client closed the connection");
    Ok(())
}

#[torsion::test]
async fn a_body_that_stalls_hits_the_idle_timeout() -> Result<(), Failure> {
    let (n, server) = stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part");
    let agent = Agent::new()
        .with_head_timeout(Some(5.0))
        .with_idle_timeout(Some(1.0));
    let response = agent.get(&format!("http://127.0.0.1:{n}/")).await?;
    assert_eq!(response.code, 200);
    let started = reactor().seconds();
    let f = read_body(response).await.unwrap_err();
    let took = reactor().seconds() - started;
    let e = *f
        .downcast_ref::<ResponseTimeout>()
        .unwrap_or_else(|| panic!("{f}"));
    assert_eq!((e.phase, e.seconds), (TimeoutPhase::Idle, 1.0));
    assert!(f.to_string().contains("idle time-out"), "{f}");
    assert!((0.5..5.0).contains(&took), "{took}");
    assert!(server.join().unwrap(), "the client closed the connection");
    Ok(())
}

#[torsion::test]
async fn cancelling_a_request_closes_its_connection() -> Result<(), Failure> {
    let (port, n, _) = listen_raw(|_, _, _| {});
    let agent = Agent::new();
    let d = agent.get(&format!("http://127.0.0.1:{n}/"));
    sleep(0.05).await;
    d.cancel();
    let f = d.await.unwrap_err();
    assert!(f.check::<CancelledError>(), "{f}");
    sleep(0.01).await;
    port.stop_listening().await
}

#[torsion::test]
async fn a_refused_connection_is_connection_refused() -> Result<(), Failure> {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let n = free.local_addr().unwrap().port();
    drop(free);
    let agent = Agent::new();
    let f = agent
        .get(&format!("http://127.0.0.1:{n}/"))
        .await
        .unwrap_err();
    assert!(f.check::<ConnectionRefusedError>(), "{f}");
    let f = get_page(&format!("http://127.0.0.1:{n}/"))
        .await
        .unwrap_err();
    assert!(f.check::<ConnectionRefusedError>(), "{f}");
    Ok(())
}

#[torsion::test]
async fn malformed_responses_carry_the_parse_error() -> Result<(), Failure> {
    let (port, n, _) = listen_raw(|t, _, head| {
        if head.starts_with(b"GET /garbage ") {
            t.write(b"SPDY/9 200 nope\r\n\r\n");
        } else {
            t.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n");
        }
    });
    let agent = Agent::new();
    let f = agent
        .get(&format!("http://127.0.0.1:{n}/garbage"))
        .await
        .unwrap_err();
    let e = f.trap::<MalformedResponse>().unwrap();
    assert_eq!(e.parse_error().status(), 400, "{e}");
    let f = fetch(&agent, &format!("http://127.0.0.1:{n}/bad-chunk"))
        .await
        .unwrap_err();
    assert!(f.check::<MalformedResponse>(), "{f}");
    sleep(0.01).await;
    port.stop_listening().await
}

#[torsion::test]
async fn a_connection_closed_early_says_what_was_missing() -> Result<(), Failure> {
    let (port, n, _) = listen_raw(|t, _, head| {
        if head.starts_with(b"GET /body ") {
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
        } else if head.starts_with(b"GET /head ") {
            t.write(b"HTTP/1.1 200 OK\r\nContent-Le");
        }
        t.lose_connection();
    });
    let agent = Agent::new();
    let f = fetch(&agent, &format!("http://127.0.0.1:{n}/body"))
        .await
        .unwrap_err();
    let e = f.trap::<ResponseFailed>().unwrap();
    assert_eq!(e.missing(), "91 of 100 body bytes");
    let f = agent
        .get(&format!("http://127.0.0.1:{n}/head"))
        .await
        .unwrap_err();
    let e = f.trap::<ResponseFailed>().unwrap();
    assert_eq!(e.missing(), "the rest of the response head");
    let f = agent
        .get(&format!("http://127.0.0.1:{n}/nothing"))
        .await
        .unwrap_err();
    assert!(f.check::<ResponseNeverReceived>(), "{f}");
    port.stop_listening().await
}

#[torsion::test]
async fn other_schemes_and_bad_urls_fail_clearly() -> Result<(), Failure> {
    let agent = Agent::new();
    // https is fetched out of the box: here it reaches the point of connecting.
    let f = agent.get("https://127.0.0.1:1/").await.unwrap_err();
    assert!(f.check::<ConnectionRefusedError>(), "{f}");
    let f = agent.get("ftp://example.com/").await.unwrap_err();
    assert!(f.check::<SchemeNotSupported>());
    let f = agent.get("example.com/x").await.unwrap_err();
    assert!(f.check::<InvalidUrl>());
    Ok(())
}

/// A stand-in TLS connector that connects in the clear, to show the hook is used.
struct ClearText(Rc<Cell<u32>>);

impl TlsConnector for ClearText {
    fn connect_tls(
        &self,
        reactor: &Reactor,
        host: &str,
        port: u16,
        factory: HttpClientFactory,
        timeout: f64,
    ) -> torsion::tcp::Connector {
        self.0.set(self.0.get() + 1);
        reactor.connect_tcp_timeout(host, port, factory, timeout)
    }
}

#[torsion::test]
async fn https_goes_through_the_tls_connector() -> Result<(), Failure> {
    let (port, n, _) = listen_site(Site::new(tree()));
    let used = Rc::new(Cell::new(0));
    let agent = Agent::new().with_tls(ClearText(used.clone()));
    let (_, body) = fetch(&agent, &format!("https://127.0.0.1:{n}/mirror")).await?;
    assert!(body.contains(&format!("host=127.0.0.1:{n} ")), "{body}");
    assert_eq!(used.get(), 1);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn ipv6_literals_in_brackets() -> Result<(), Failure> {
    let Ok(port) = reactor().listen_tcp_on(0, Site::new(tree()), "::1") else {
        torsion::testing::skip(
            torsion::testing::Missing::HostFeature,
            "cannot listen on ::1",
        );
        return Ok(());
    };
    let n = port.get_host().port().unwrap();
    let agent = Agent::new();
    let (code, body) = fetch(&agent, &format!("http://[::1]:{n}/mirror")).await?;
    assert_eq!(code, 200);
    assert!(body.contains(&format!("host=[::1]:{n} ")), "{body}");
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

// ---------------------------------------------------------------------------------------
// get_page

#[torsion::test]
async fn get_page_gives_the_body_follows_redirects_and_fails_on_errors() -> Result<(), Failure> {
    let root = tree();
    root.put_child(b"old", Rc::new(Redirect::new("/mirror")));
    let (port, n, _) = listen_site(Site::new(root));
    assert_eq!(get_page(&format!("http://127.0.0.1:{n}/")).await?, b"home");
    let body = get_page(&format!("http://127.0.0.1:{n}/old")).await?;
    assert!(body.starts_with(b"GET /mirror "));
    let f = get_page(&format!("http://127.0.0.1:{n}/nowhere"))
        .await
        .unwrap_err();
    let e = f.trap::<HttpError>().unwrap();
    assert_eq!((e.status, e.message.as_str()), (404, "Not Found"));
    assert!(
        String::from_utf8_lossy(&e.response).contains("No luck finding that resource"),
        "{e:?}"
    );
    sleep(0.01).await;
    port.stop_listening().await
}

#[torsion::test]
async fn get_page_in_callback_style() -> Result<(), Failure> {
    let (port, n, _) = listen_site(Site::new(tree()));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let ok = seen.clone();
    let err = seen.clone();
    get_page(&format!("http://127.0.0.1:{n}/"))
        .add_callback(move |html| ok.borrow_mut().push(String::from_utf8(html).unwrap()))
        .add_errback(move |_| {
            err.borrow_mut().push("Unable to fetch.".to_owned());
            Ok(())
        })
        .await?;
    assert_eq!(*seen.borrow(), ["home"]);
    sleep(0.01).await;
    port.stop_listening().await
}
