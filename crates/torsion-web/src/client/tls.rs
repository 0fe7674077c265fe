//! HTTPS for the [`Agent`](super::Agent) (Twisted's `BrowserLikePolicyForHTTPS` and
//! `optionsForClientTLS`): which certificates a server may show, checked as a browser does.
//!
//! [`Agent::new`](super::Agent::new) fetches `https` URLs with a [`BrowserLikePolicyForHttps`]:
//! rustls (no OpenSSL), the server's certificate chain checked against the platform's trusted
//! roots (`/etc/ssl/certs` on Debian, through `rustls-native-certs`, loaded once per process at
//! the first `https` request), its name checked against the URL's host, the host sent as SNI,
//! and ALPN offering `http/1.1`. A policy can trust more roots, only given roots, or take
//! settings of its own for one host ([`options_for_client_tls`]); install it with
//! [`Agent::with_policy`](super::Agent::with_policy).
//!
//! A certificate that fails the checks fails the request with [`TlsFailed`](super::TlsFailed),
//! whose [`TlsProblem`](super::TlsProblem) says why: expired, unknown issuer, name mismatch...
//!
//! ```
//! use torsion_web::client::{options_for_client_tls, Agent, BrowserLikePolicyForHttps};
//!
//! // A private CA's certificate (made here; normally read from a file).
//! let ca = rcgen::generate_simple_self_signed(vec!["ca.internal".into()]).unwrap();
//! let ca_pem = ca.cert.pem();
//!
//! // The platform's roots, and this CA besides.
//! let policy = BrowserLikePolicyForHttps::new().add_roots_pem(ca_pem.as_bytes())?;
//! // Only this CA (Twisted's `BrowserLikePolicyForHTTPS(trustRoot=...)`).
//! let pinned = BrowserLikePolicyForHttps::trusting_pem(ca_pem.as_bytes())?;
//! // One host with settings of its own: its certificate must name `api.internal`.
//! let context = options_for_client_tls("api.internal")
//!     .trust(torsion::tls::load_certificates_pem(ca_pem.as_bytes())?)
//!     .build()?;
//! let policy = policy.for_host("10.0.0.7", context);
//! let agent = Agent::new().with_policy(policy);
//! # drop((agent, pinned));
//! # Ok::<(), torsion::tls::TlsError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::OnceLock;

use torsion::tls::{
    load_certificates_pem, CertificateDer, ClientContext, ClientContextBuilder, TlsError,
};
use torsion::Failure;

/// The ALPN protocol the agent offers: it speaks HTTP/1.1 only.
const ALPN: &[u8] = b"http/1.1";

/// Chooses the TLS settings for a connection to `host:port` (Twisted's `IPolicyForHTTPS`).
///
/// [`BrowserLikePolicyForHttps`] is the usual one; implement this to choose in another way
/// (per port, from a configuration). An error fails the request before it connects.
pub trait PolicyForHttps {
    /// The settings for a connection to `host` (as in the URL: a name or an IP address,
    /// IPv6 in brackets) on `port` (Twisted's `creatorForNetloc`).
    ///
    /// # Errors
    /// Why no connection can be made, such as no trusted roots at all.
    fn creator_for_netloc(&self, host: &str, port: u16) -> Result<ClientContext, Failure>;
}

/// Which roots a [`BrowserLikePolicyForHttps`] trusts.
#[derive(Clone, Debug)]
enum Roots {
    /// The platform's (Twisted's `platformTrust()`).
    Platform,
    /// The platform's and these.
    PlatformAnd(Vec<CertificateDer<'static>>),
    /// Only these (Twisted's `trustRoot`).
    Only(Vec<CertificateDer<'static>>),
}

/// Checks servers' certificates as a browser does (Twisted's `BrowserLikePolicyForHTTPS`):
/// the chain must lead to a trusted root, be valid now, and name the URL's host; the host is
/// sent as SNI (not for an IP address, which TLS does not allow) and ALPN offers `http/1.1`.
///
/// The roots are the platform's by default ([`new`](Self::new)), with more
/// ([`add_roots_pem`](Self::add_roots_pem)) or instead ([`trusting_pem`](Self::trusting_pem));
/// [`for_host`](Self::for_host) gives one host settings of its own (Twisted's
/// `optionsForClientTLS`). The settings are made once, at the first `https` request, and
/// shared by every connection; the platform's roots are read once per process. Cheap to clone.
///
/// When the platform has no roots (a container without `ca-certificates`) and no others are
/// given, each `https` request fails with a [`TlsError::Config`] saying so.
#[derive(Clone)]
pub struct BrowserLikePolicyForHttps {
    roots: Roots,
    hosts: HashMap<String, ClientContext>,
    /// The settings made from `roots`, at first use.
    made: Rc<std::cell::OnceCell<Result<ClientContext, TlsError>>>,
}

impl Default for BrowserLikePolicyForHttps {
    fn default() -> Self {
        BrowserLikePolicyForHttps::new()
    }
}

impl BrowserLikePolicyForHttps {
    /// Trusts the platform's roots (Twisted's default, `platformTrust()`).
    pub fn new() -> BrowserLikePolicyForHttps {
        BrowserLikePolicyForHttps::with_roots(Roots::Platform)
    }

    fn with_roots(roots: Roots) -> BrowserLikePolicyForHttps {
        BrowserLikePolicyForHttps {
            roots,
            hosts: HashMap::new(),
            made: Rc::default(),
        }
    }

    /// Trusts only these CA certificates, not the platform's (Twisted's
    /// `BrowserLikePolicyForHTTPS(trustRoot=...)`): pins the roots.
    pub fn trusting(roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        BrowserLikePolicyForHttps::with_roots(Roots::Only(roots.into_iter().collect()))
    }

    /// Trusts only the CA certificates in PEM text (see [`trusting`](Self::trusting)).
    ///
    /// # Errors
    /// [`TlsError::Config`] when the text holds no certificate.
    pub fn trusting_pem(pem: &[u8]) -> Result<Self, TlsError> {
        Ok(BrowserLikePolicyForHttps::trusting(load_certificates_pem(
            pem,
        )?))
    }

    /// Trusts these CA certificates as well as those trusted already.
    pub fn add_roots(mut self, roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.roots = match self.roots {
            Roots::Platform => Roots::PlatformAnd(roots.into_iter().collect()),
            Roots::PlatformAnd(mut have) => {
                have.extend(roots);
                Roots::PlatformAnd(have)
            }
            Roots::Only(mut have) => {
                have.extend(roots);
                Roots::Only(have)
            }
        };
        self.made = Rc::default();
        self
    }

    /// Trusts the CA certificates in PEM text as well (see [`add_roots`](Self::add_roots)).
    ///
    /// # Errors
    /// [`TlsError::Config`] when the text holds no certificate.
    pub fn add_roots_pem(self, pem: &[u8]) -> Result<Self, TlsError> {
        Ok(self.add_roots(load_certificates_pem(pem)?))
    }

    /// Uses `context` for connections to `host` (any port), instead of the policy's own
    /// settings (Twisted's `optionsForClientTLS` for one host): another CA, a client
    /// certificate, another name to check. Build it with [`options_for_client_tls`] to keep
    /// the `http/1.1` ALPN offer; the host is matched without regard to case, an IPv6
    /// address without brackets.
    pub fn for_host(mut self, host: &str, context: ClientContext) -> Self {
        self.hosts.insert(host_key(host), context);
        self
    }

    /// The settings made from the roots, made at the first call.
    fn context(&self) -> Result<ClientContext, TlsError> {
        self.made
            .get_or_init(|| match &self.roots {
                Roots::Platform => platform(),
                Roots::PlatformAnd(extra) => options()
                    .trust(extra.iter().cloned())
                    .system_roots(true)
                    .build(),
                Roots::Only(roots) => options().trust(roots.iter().cloned()).build(),
            })
            .clone()
    }
}

impl PolicyForHttps for BrowserLikePolicyForHttps {
    fn creator_for_netloc(&self, host: &str, _port: u16) -> Result<ClientContext, Failure> {
        if let Some(c) = self.hosts.get(&host_key(host)) {
            return Ok(c.clone());
        }
        self.context().map_err(Failure::new)
    }
}

impl fmt::Debug for BrowserLikePolicyForHttps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::Platform => "platform".to_owned(),
            Roots::PlatformAnd(r) => format!("platform and {} more", r.len()),
            Roots::Only(r) => format!("only {} given", r.len()),
        };
        let mut hosts: Vec<&String> = self.hosts.keys().collect();
        hosts.sort();
        f.debug_struct("BrowserLikePolicyForHttps")
            .field("roots", &roots)
            .field("hosts", &hosts)
            .finish()
    }
}

fn host_key(host: &str) -> String {
    host.trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase()
}

/// The platform's roots, read once per process: reading and parsing the store (some 150
/// certificates on Debian) costs milliseconds, and `get_page` makes an agent per call.
fn platform() -> Result<ClientContext, TlsError> {
    static PLATFORM: OnceLock<Result<ClientContext, TlsError>> = OnceLock::new();
    PLATFORM
        .get_or_init(|| {
            options().build().map_err(|e| {
                let why = match e {
                    TlsError::Config(why) => why,
                    other => other.to_string(),
                };
                TlsError::Config(format!(
                    "cannot fetch https URLs: {why} (or give the agent a policy that trusts a \
                     CA: BrowserLikePolicyForHttps::trusting_pem)"
                ))
            })
        })
        .clone()
}

/// The settings every connection of the agent starts from: ALPN `http/1.1`.
fn options() -> ClientContextBuilder {
    ClientContext::builder().alpn_protocols([ALPN])
}

/// Settings for connections to `hostname` (Twisted's `optionsForClientTLS`): the server's
/// certificate must name `hostname` (sent as SNI), whatever host the URL names; ALPN offers
/// `http/1.1`; the platform's roots are trusted until [`trust`](ClientContextBuilder::trust)
/// gives others (Twisted's `trustRoot`). Add a client certificate with
/// [`identity`](ClientContextBuilder::identity), then [`build`](ClientContextBuilder::build)
/// and hand it to [`BrowserLikePolicyForHttps::for_host`].
pub fn options_for_client_tls(hostname: &str) -> ClientContextBuilder {
    options().server_name(hostname)
}
