//! `ReverseProxyResource`: forwards requests to an upstream HTTP server (Twisted's
//! `twisted.web.proxy.ReverseProxyResource`).
//!
//! Mounted at a path, it sends each request's method, remaining path, query, headers and
//! body to `host:port` + `path`, and relays the answer: status, headers and body. Hop-by-hop
//! headers are not forwarded; `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto`
//! are added. An upstream that cannot be reached gives 502 Bad Gateway; one that does not
//! answer in time (60 s by default), 504.
//!
//! ```no_run
//! use std::rc::Rc;
//! use torsion_web::proxy::ReverseProxyResource;
//! use torsion_web::resources::Directory;
//! use torsion_web::{Resource, Site};
//!
//! let root = Directory::new();
//! root.put_child(b"api", Rc::new(ReverseProxyResource::new("127.0.0.1", 9000, "/v1")));
//! torsion::reactor().listen_tcp(8080, Site::new(root)).unwrap();
//! torsion::reactor().run().unwrap();
//! ```

use torsion::defer::Deferred;
use torsion::error::TimeoutError;
use torsion::transport::Address;
use torsion::Failure;

use crate::channel::error_page;
use crate::client::{read_body, Agent, ResponseTimeout};
use crate::proto::Headers;
use crate::request::Request;
use crate::resource::{Render, Resource};

/// Headers that belong to one connection, not to the message (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards every request below it to an upstream server (Twisted's `ReverseProxyResource`).
pub struct ReverseProxyResource {
    host: String,
    port: u16,
    path: String,
    agent: Agent,
}

impl ReverseProxyResource {
    /// Forwards to `http://host:port` + `path` + the rest of the request's path.
    pub fn new(host: &str, port: u16, path: &str) -> ReverseProxyResource {
        ReverseProxyResource {
            host: host.to_owned(),
            port,
            path: path.trim_end_matches('/').to_owned(),
            // Redirects and encodings pass through to the client untouched.
            agent: Agent::new().with_redirects(0).with_timeout(60.0),
        }
    }

    /// Uses `agent` (time-outs, connection pool) for upstream requests.
    pub fn with_agent(mut self, agent: Agent) -> ReverseProxyResource {
        self.agent = agent.with_redirects(0);
        self
    }

    /// Closes the kept-alive upstream connections.
    pub fn close_connections(&self) -> Deferred<()> {
        self.agent.pool().close_cached_connections()
    }

    fn upstream_url(&self, request: &Request) -> String {
        let mut url = format!("http://{}:{}{}", bracket(&self.host), self.port, self.path);
        for segment in request.postpath() {
            url.push('/');
            url.push_str(&encode_segment(&segment));
        }
        if url.ends_with(&format!(":{}", self.port)) {
            url.push('/');
        }
        if !request.query().is_empty() {
            url.push('?');
            url.push_str(&String::from_utf8_lossy(request.query()));
        }
        url
    }
}

impl Resource for ReverseProxyResource {
    fn is_leaf(&self) -> bool {
        true
    }

    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    }

    fn render(&self, request: &Request) -> Render {
        let mut headers = Headers::new();
        for (name, value) in request.headers().iter() {
            let lower = name.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str()) || lower == "host" || lower == "content-length"
            {
                continue;
            }
            headers.add(name, value);
        }
        if let Some(host) = request.get_header("host") {
            headers.set("X-Forwarded-Host", host);
        }
        if let Address::Tcp(client) = request.get_client_address() {
            let chain = match request.get_header("x-forwarded-for") {
                Some(earlier) => format!("{earlier}, {}", client.ip()),
                None => client.ip().to_string(),
            };
            headers.set("X-Forwarded-For", chain);
        }
        headers.set("X-Forwarded-Proto", "http");
        let body = {
            let content = request.content();
            let sends_body =
                !content.is_empty() || matches!(request.method(), "POST" | "PUT" | "PATCH");
            sends_body.then(|| content.to_vec())
        };
        let url = self.upstream_url(request);
        let req = request.clone();
        let failed = request.clone();
        self.agent
            .request(request.method(), &url, headers, body)
            .add_callback_deferred(move |response| {
                req.set_response_code_with_message(response.code, &response.phrase.clone());
                for (name, value) in response.headers.iter() {
                    let lower = name.to_ascii_lowercase();
                    if !HOP_BY_HOP.contains(&lower.as_str()) && lower != "content-length" {
                        req.add_header(name, value);
                    }
                }
                read_body(response).add_callback(move |bytes| {
                    if !req.lost() {
                        req.set_header("Content-Length", bytes.len().to_string());
                        req.write(&bytes);
                        req.finish();
                    }
                })
            })
            .add_errback(move |f: Failure| {
                tracing::info!(target: "torsion_web", "proxying {} failed: {f}", failed.uri());
                if !failed.started() && !failed.lost() {
                    let timed_out = f.check_any::<(TimeoutError, ResponseTimeout)>();
                    let code = if timed_out { 504 } else { 502 };
                    failed.set_response_code(code);
                    let page = error_page(code, "The upstream server could not be reached.");
                    failed.set_header("Content-Length", page.len().to_string());
                    failed.write(&page);
                }
                // The client may have left first: that is not the proxy's mistake.
                let _ = failed.try_finish();
                Ok(())
            });
        Render::NotDoneYet
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Percent-encodes a decoded path segment for the upstream URL.
fn encode_segment(segment: &[u8]) -> String {
    let mut out = String::with_capacity(segment.len());
    for &b in segment {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
