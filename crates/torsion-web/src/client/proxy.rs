//! Requests through an HTTP proxy (Twisted's `ProxyAgent`, with a `CONNECT` tunnel for
//! `https` as browsers and curl do).
//!
//! An agent given a [`Proxy`] with [`Agent::with_proxy`](super::Agent::with_proxy) sends
//! plain `http` requests to the proxy, the request line in absolute form
//! (`GET http://example.org/ HTTP/1.1`, RFC 9112 section 3.2.2), over keep-alive connections
//! to the proxy shared by every origin. For `https` it asks the proxy for a tunnel
//! (`CONNECT example.org:443`, RFC 9110 section 9.3.6) and, once the proxy answers 2xx, runs
//! TLS with the origin inside it: the proxy sees neither the request nor the certificate
//! check, which is made against the origin's name as without a proxy. A refusal (407, 403,
//! 502, ...) fails the request with a [`TunnelError`] carrying the status.

use std::fmt;

use base64::Engine;

use super::error::InvalidUrl;
use super::url::Url;

/// The largest proxy answer head to a `CONNECT` taken in (bytes): past it the tunnel fails.
#[cfg(feature = "tls")]
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// An HTTP proxy to send requests through: where it is, and the credentials it asks for, if
/// any.
///
/// ```
/// use torsion_web::client::Proxy;
///
/// let proxy = Proxy::parse("http://alice:secret@proxy.example:3128")?;
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.example", 3128));
/// assert!(proxy.has_credentials());
/// # Ok::<(), torsion_web::client::InvalidUrl>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// The `Proxy-Authorization` value, when the proxy asks for credentials.
    authorization: Option<String>,
}

impl Proxy {
    /// The proxy at `host`, `port`, without credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Proxy {
        Proxy {
            host: host.into(),
            port,
            authorization: None,
        }
    }

    /// The proxy a URL names, as the `http_proxy` variable gives it:
    /// `http://[user:password@]host[:port]` (port 80 when left out). Credentials in it are
    /// sent with Basic authentication.
    ///
    /// # Errors
    /// [`InvalidUrl`] for another scheme, a path, or a malformed host or port.
    pub fn parse(url: &str) -> Result<Proxy, InvalidUrl> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(InvalidUrl::new(url, "a proxy URL starts with http://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, rest),
        };
        if hostport.contains('/') {
            return Err(InvalidUrl::new(url, "a proxy URL has no path"));
        }
        let parsed = Url::parse(&format!("http://{hostport}/"))?;
        let proxy = Proxy::new(parsed.host(), parsed.port());
        Ok(match userinfo {
            None => proxy,
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                proxy.with_basic_auth(&percent_decode(user), &percent_decode(password))
            }
        })
    }

    /// The same proxy, sending `user` and `password` with Basic authentication
    /// (`Proxy-Authorization`, RFC 9110 section 11.7.2) on every request and tunnel.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Proxy {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(format!("Basic {token}"));
        self
    }

    /// The proxy's host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether credentials are sent to the proxy.
    pub fn has_credentials(&self) -> bool {
        self.authorization.is_some()
    }

    /// The `Proxy-Authorization` header's value, if credentials are set.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// `host:port`, as the proxy is named in errors and pool keys.
    pub(crate) fn netloc(&self) -> String {
        netloc(&self.host, self.port)
    }
}

impl fmt::Debug for Proxy {
    /// Credentials are never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn netloc(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `%XX` escapes of a URL's userinfo undone (invalid ones kept as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A proxy did not open the tunnel an `https` request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelError {
    /// The proxy, `host:port`.
    pub proxy: String,
    /// The origin the tunnel was for, `host:port`.
    pub target: String,
    /// The proxy's answer status (such as 407 or 502), if it answered with one.
    pub status: Option<u16>,
    /// What went wrong, in words.
    pub reason: String,
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the proxy {} did not open a tunnel to {}: ",
            self.proxy, self.target
        )?;
        match self.status {
            Some(code) => write!(f, "it answered {code} {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for TunnelError {}

/// The `CONNECT` tunnel (TLS is needed inside it, so it exists with the `tls` feature only).
#[cfg(feature = "tls")]
mod tunnel {
    use std::cell::RefCell;
    use std::rc::Rc;

    use torsion::tcp::Connector;
    use torsion::transport::Address;
    use torsion::ConnectionEnd;
    use torsion::{ClientFactory, Factory, Failure, Protocol, Transport};

    use super::super::protocol::{Http11ClientProtocol, HttpClientFactory};
    use super::{netloc, Proxy, TunnelError, MAX_CONNECT_HEAD};

    /// What a tunnel's protocol shares with its factory.
    struct Tunnel {
        inner: HttpClientFactory,
        proxy: String,
        target: String,
        authorization: Option<String>,
        context: torsion::tls::ClientContext,
    }

    impl Tunnel {
        fn error(&self, status: Option<u16>, reason: impl Into<String>) -> Failure {
            Failure::new(TunnelError {
                proxy: self.proxy.clone(),
                target: self.target.clone(),
                status,
                reason: reason.into(),
            })
        }
    }

    /// Makes the protocol that opens a `CONNECT` tunnel and then runs the HTTP client protocol
    /// over TLS inside it.
    pub(crate) struct TunnelFactory {
        tunnel: Rc<Tunnel>,
    }

    impl TunnelFactory {
        /// A factory for one attempt: `inner` is the pool's factory for the connection, `target`
        /// the origin (`host`, `port`), `context` the TLS settings for it (its server name set).
        pub(crate) fn new(
            inner: HttpClientFactory,
            proxy: &Proxy,
            target: (&str, u16),
            context: torsion::tls::ClientContext,
        ) -> TunnelFactory {
            TunnelFactory {
                tunnel: Rc::new(Tunnel {
                    inner,
                    proxy: proxy.netloc(),
                    target: netloc(target.0, target.1),
                    authorization: proxy.authorization().map(str::to_owned),
                    context,
                }),
            }
        }
    }

    impl Factory for TunnelFactory {
        type Protocol = TunnelProtocol;

        fn build_protocol(&self, _addr: &Address) -> Option<TunnelProtocol> {
            Some(TunnelProtocol {
                tunnel: Rc::clone(&self.tunnel),
                state: RefCell::new(State::Asking(Vec::new())),
            })
        }
    }

    impl ClientFactory for TunnelFactory {
        fn client_connection_failed(&self, connector: &Connector, reason: Failure) {
            self.tunnel
                .inner
                .client_connection_failed(connector, reason);
        }
    }

    /// Where a tunnel stands.
    enum State {
        /// `CONNECT` written; the proxy's answer head so far.
        Asking(Vec<u8>),
        /// The tunnel is open: TLS runs in it, and the HTTP client protocol on top.
        Through(Http11ClientProtocol),
        /// It failed; the connection is closing.
        Failed,
    }

    /// The protocol of a connection to a proxy that carries one `https` origin's requests.
    pub(crate) struct TunnelProtocol {
        tunnel: Rc<Tunnel>,
        state: RefCell<State>,
    }

    impl TunnelProtocol {
        /// Fails the connection attempt and closes the connection.
        fn fail(&self, transport: &Transport, reason: Failure) {
            *self.state.borrow_mut() = State::Failed;
            tracing::debug!(target: "torsion.web", "proxy tunnel: {}", reason.error_message());
            self.tunnel.inner.fail(reason);
            transport.lose_connection();
        }

        /// The proxy's answer head is complete (`head` without the blank line).
        fn answered(&self, transport: &Transport, head: &[u8], rest: &[u8]) {
            let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut parts = line.trim_end().splitn(3, ' ');
            let version = parts.next().unwrap_or_default();
            let code = parts.next().and_then(|c| c.parse::<u16>().ok());
            let reason = parts.next().unwrap_or_default().to_owned();
            let code = match code {
                Some(c) if version.starts_with("HTTP/1.") && (100..1000).contains(&c) => c,
                _ => {
                    let e = self
                        .tunnel
                        .error(None, format!("its answer is not HTTP: {line:?}"));
                    return self.fail(transport, e);
                }
            };
            if !(200..300).contains(&code) {
                return self.fail(transport, self.tunnel.error(Some(code), reason));
            }
            if !rest.is_empty() {
                let e = self
                    .tunnel
                    .error(Some(code), "it sent bytes before TLS started");
                return self.fail(transport, e);
            }
            if let Err(e) = transport.start_tls(self.tunnel.context.clone().into()) {
                let e = self
                    .tunnel
                    .error(Some(code), format!("TLS could not start: {e}"));
                return self.fail(transport, e);
            }
            let Some(mut inner) = self.tunnel.inner.build_protocol(&transport.get_peer()) else {
                return self.fail(transport, self.tunnel.error(Some(code), "no protocol"));
            };
            inner.connection_made(transport);
            *self.state.borrow_mut() = State::Through(inner);
        }
    }

    impl Protocol for TunnelProtocol {
        fn connection_made(&mut self, transport: &Transport) {
            let t = &self.tunnel;
            let mut ask = format!("CONNECT {} HTTP/1.1\r\nHost: {}\r\n", t.target, t.target);
            if let Some(auth) = &t.authorization {
                ask.push_str("Proxy-Authorization: ");
                ask.push_str(auth);
                ask.push_str("\r\n");
            }
            ask.push_str("\r\n");
            transport.write(ask.as_bytes());
        }

        fn data_received(&mut self, transport: &Transport, data: &[u8]) {
            let state = self.state.get_mut();
            match state {
                State::Through(inner) => inner.data_received(transport, data),
                State::Failed => {}
                State::Asking(buf) => {
                    buf.extend_from_slice(data);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let buf = std::mem::take(buf);
                        self.answered(transport, &buf[..end], &buf[end + 4..]);
                    } else if buf.len() > MAX_CONNECT_HEAD {
                        let e = self.tunnel.error(
                            None,
                            format!("its answer head is over {MAX_CONNECT_HEAD} bytes"),
                        );
                        self.fail(transport, e);
                    }
                }
            }
        }

        fn connection_lost(&mut self, reason: ConnectionEnd) {
            match std::mem::replace(self.state.get_mut(), State::Failed) {
                State::Through(mut inner) => inner.connection_lost(reason),
                State::Asking(_) => self.tunnel.inner.fail(
                    self.tunnel
                        .error(None, "it closed the connection before answering CONNECT"),
                ),
                State::Failed => {}
            }
        }
    }
}

#[cfg(feature = "tls")]
pub(crate) use tunnel::TunnelFactory;
