//! TLS settings: certificates and keys ([`Identity`]), the server's ([`ServerContext`]) and
//! the client's ([`ClientContext`]), built once and shared by every connection.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::address::Address;
use crate::error::TlsError;

use super::layer::TlsLayer;

/// The crypto provider every context uses: rustls' `ring` provider (pure Rust and assembly,
/// no OpenSSL), made once per process.
///
/// rustls 0.23.48 deprecates `ring::default_provider` because ring has no post-quantum key
/// exchange; the provider that has one (aws-lc-rs) needs a C toolchain and CMake to build,
/// which the project's machines are not required to have. Until ring gains it, Torsion stays
/// on ring and accepts classical key exchange.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn config_error(what: impl fmt::Display) -> TlsError {
    TlsError::Config(what.to_string())
}

/// Every certificate in the PEM file at `path` (Twisted's `Certificate.loadPEM`, for a
/// whole chain). Other PEM sections (keys) are skipped.
///
/// # Errors
/// [`TlsError::Config`] naming the file when it cannot be read, is not PEM, or holds no
/// certificate.
pub fn load_certificates(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let pem = std::fs::read(path)
        .map_err(|e| config_error(format_args!("cannot read {}: {e}", path.display())))?;
    certificates_from_pem(&pem).map_err(|e| config_error(format_args!("{}: {e}", path.display())))
}

/// Every certificate in PEM text (a CA bundle, a chain); other PEM sections are skipped.
///
/// ```
/// let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let certs = torsion::tls::load_certificates_pem(made.cert.pem().as_bytes())?;
/// assert_eq!(certs, [made.cert.der().clone()]);
/// assert!(torsion::tls::load_certificates_pem(b"not PEM").is_err());
/// # Ok::<(), torsion::tls::TlsError>(())
/// ```
///
/// # Errors
/// [`TlsError::Config`] when the text is not PEM or holds no certificate.
pub fn load_certificates_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certificates_from_pem(pem).map_err(config_error)
}

/// Every certificate in PEM text.
fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in the PEM file at `path`.
///
/// # Errors
/// [`TlsError::Config`] naming the file when it cannot be read or holds no key.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    let pem = std::fs::read(path)
        .map_err(|e| config_error(format_args!("cannot read {}: {e}", path.display())))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| config_error(format_args!("{}: no private key ({e})", path.display())))
}

/// A certificate chain and its private key: what a server shows, or a client that
/// authenticates with a certificate.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A chain (end-entity certificate first, then intermediates) and the end-entity's key.
    ///
    /// # Errors
    /// [`TlsError::Config`] when the chain is empty, the key cannot be used, or the key does
    /// not belong to the certificate.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Identity, TlsError> {
        let identity = Identity { chain, key };
        identity.certified_key()?;
        Ok(identity)
    }

    /// From PEM text: every certificate in `chain_pem`, and the first key in `key_pem` (the
    /// two may be the same text).
    ///
    /// # Errors
    /// As [`Identity::new`], or when the text holds no certificate or no key.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsError> {
        let chain = certificates_from_pem(chain_pem).map_err(config_error)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| config_error(format_args!("no private key ({e})")))?;
        Identity::new(chain, key)
    }

    /// From PEM files (Twisted's `certKey` and `privateKey`; they may name the same file).
    ///
    /// # Errors
    /// As [`Identity::new`], [`load_certificates`] and [`load_private_key`].
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Identity, TlsError> {
        Identity::new(load_certificates(chain)?, load_private_key(key)?)
    }

    /// Adds intermediate certificates after the chain (Twisted's `extraCertChain`).
    pub fn with_extra_chain(
        mut self,
        extra: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Identity {
        self.chain.extend(extra);
        self
    }

    /// The end-entity certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The whole chain (DER).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn certified_key(&self) -> Result<CertifiedKey, TlsError> {
        if self.chain.is_empty() {
            return Err(config_error("the certificate chain is empty"));
        }
        CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider())
            .map_err(|e| config_error(format_args!("unusable certificate or key: {e}")))
    }
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Picks the server's certificate by the name the client asked for (SNI): an exact name,
/// then a `*.` wildcard for the first label, then the default.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.by_name.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.by_name.get(&format!("*.{parent}")) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// A TLS server's settings (Twisted's server `contextFactory` / `CertificateOptions`): its
/// certificates, client authentication and ALPN. Cheap to clone.
#[derive(Clone)]
pub struct ServerContext {
    config: Arc<ServerConfig>,
    handshake_timeout: Option<Duration>,
}

/// The default time an accepted TLS connection has to complete its handshake: 60 s, as
/// nginx's `ssl_handshake_timeout`. Twisted has no limit; a client that connects and never
/// finishes its handshake would hold a file descriptor for ever. See
/// [`ServerContext::with_handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

impl ServerContext {
    /// A server showing one certificate to everyone, with no client authentication.
    ///
    /// # Errors
    /// [`TlsError::Config`] if rustls refuses the settings.
    pub fn new(identity: Identity) -> Result<ServerContext, TlsError> {
        ServerContext::builder().certificate(identity).build()
    }

    /// A server with the certificate chain and key in PEM files.
    ///
    /// # Errors
    /// As [`Identity::from_pem_files`].
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerContext, TlsError> {
        ServerContext::new(Identity::from_pem_files(chain, key)?)
    }

    /// Settings to build step by step: several certificates, client certificates, ALPN.
    pub fn builder() -> ServerContextBuilder {
        ServerContextBuilder::default()
    }

    /// Uses a rustls configuration made by hand (anything rustls can do).
    pub fn from_config(config: Arc<ServerConfig>) -> ServerContext {
        ServerContext {
            config,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// This context with another handshake timeout (`None`: wait for ever, as Twisted).
    /// A connection accepted by a listener with this context whose TLS handshake has not
    /// completed `timeout` after it was accepted is aborted, with a log line naming the
    /// peer. The default is [`DEFAULT_HANDSHAKE_TIMEOUT`] (60 s, nginx's
    /// `ssl_handshake_timeout`). Only listeners apply it, not `start_tls`.
    ///
    /// ```
    /// # let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// # let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    /// use std::time::Duration;
    /// use torsion::tls::{Identity, ServerContext, DEFAULT_HANDSHAKE_TIMEOUT};
    ///
    /// let context = ServerContext::new(Identity::from_pem(cert.as_bytes(), key.as_bytes())?)?;
    /// assert_eq!(context.handshake_timeout(), Some(DEFAULT_HANDSHAKE_TIMEOUT));
    /// let context = context.with_handshake_timeout(Some(Duration::from_secs(10)));
    /// assert_eq!(context.handshake_timeout(), Some(Duration::from_secs(10)));
    /// # Ok::<(), torsion::tls::TlsError>(())
    /// ```
    pub fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> ServerContext {
        self.handshake_timeout = timeout;
        self
    }

    /// How long an accepted connection has to complete its handshake (`None`: no limit).
    pub fn handshake_timeout(&self) -> Option<Duration> {
        self.handshake_timeout
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    pub(crate) fn layer(&self) -> Result<TlsLayer, TlsError> {
        TlsLayer::server(self.config.clone())
    }
}

impl fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerContext")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ServerContext`]; see [`ServerContext::builder`].
#[derive(Debug, Default)]
pub struct ServerContextBuilder {
    default: Option<Identity>,
    sni: Vec<(String, Identity)>,
    client_roots: Option<(Vec<CertificateDer<'static>>, bool)>,
    alpn: Vec<Vec<u8>>,
}

impl ServerContextBuilder {
    /// The certificate shown when the client names no host, or one with no certificate of
    /// its own.
    pub fn certificate(mut self, identity: Identity) -> Self {
        self.default = Some(identity);
        self
    }

    /// The certificate shown to clients asking for `name` (SNI). `*.example.com` serves
    /// every name one label under `example.com` that has no certificate of its own.
    pub fn sni_certificate(mut self, name: &str, identity: Identity) -> Self {
        self.sni.push((name.to_ascii_lowercase(), identity));
        self
    }

    /// Requires every client to show a certificate issued by one of `roots`; a client
    /// without one fails the handshake.
    pub fn require_client_certificate(
        mut self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Self {
        self.client_roots = Some((roots.into_iter().collect(), true));
        self
    }

    /// Asks clients for a certificate issued by one of `roots`, but lets clients without
    /// one in ([`Transport::peer_certificate`](crate::transport::Transport::peer_certificate)
    /// tells which).
    pub fn request_client_certificate(
        mut self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Self {
        self.client_roots = Some((roots.into_iter().collect(), false));
        self
    }

    /// The application protocols offered by ALPN, most preferred first (`b"h2"`,
    /// `b"http/1.1"`).
    pub fn alpn_protocols<I: IntoIterator<Item = P>, P: AsRef<[u8]>>(mut self, protos: I) -> Self {
        self.alpn = protos.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Checks the settings and makes the context.
    ///
    /// # Errors
    /// [`TlsError::Config`]: no certificate at all, a bad SNI name, an unusable client CA.
    pub fn build(self) -> Result<ServerContext, TlsError> {
        let provider = provider();
        if self.default.is_none() && self.sni.is_empty() {
            return Err(config_error("a TLS server needs at least one certificate"));
        }
        let mut by_name = HashMap::new();
        for (name, identity) in &self.sni {
            let dns = name.strip_prefix("*.").unwrap_or(name);
            if ServerName::try_from(dns).is_err() {
                return Err(config_error(format_args!("'{name}' is not a host name")));
            }
            by_name.insert(name.clone(), Arc::new(identity.certified_key()?));
        }
        let resolver = SniResolver {
            by_name,
            default: match &self.default {
                Some(identity) => Some(Arc::new(identity.certified_key()?)),
                None => None,
            },
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?;
        let builder = match self.client_roots {
            None => builder.with_no_client_auth(),
            Some((roots, required)) => {
                let mut store = RootCertStore::empty();
                for cert in roots {
                    store
                        .add(cert)
                        .map_err(|e| config_error(format_args!("bad client CA: {e}")))?;
                }
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider);
                if !required {
                    verifier = verifier.allow_unauthenticated();
                }
                builder.with_client_cert_verifier(verifier.build().map_err(config_error)?)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn;
        Ok(ServerContext::from_config(Arc::new(config)))
    }
}

/// A TLS client's settings (Twisted's `optionsForClientTLS`): whom to trust, the name to
/// check the server's certificate against, a client certificate, and ALPN. Cheap to clone.
#[derive(Clone)]
pub struct ClientContext {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl ClientContext {
    /// A client trusting the system's roots (the platform's store, as Twisted's
    /// `platformTrust`).
    ///
    /// # Errors
    /// [`TlsError::Config`] when the system store has no certificates (on Debian, install
    /// `ca-certificates`).
    pub fn new() -> Result<ClientContext, TlsError> {
        ClientContext::builder().build()
    }

    /// A client trusting only the CA certificates in the PEM file `ca` (Twisted's
    /// `trustRoot`).
    ///
    /// # Errors
    /// As [`load_certificates`].
    pub fn trusting_pem_file(ca: impl AsRef<Path>) -> Result<ClientContext, TlsError> {
        ClientContext::builder()
            .trust(load_certificates(ca)?)
            .build()
    }

    /// Settings to build step by step.
    pub fn builder() -> ClientContextBuilder {
        ClientContextBuilder::default()
    }

    /// Uses a rustls configuration made by hand.
    pub fn from_config(config: Arc<ClientConfig>) -> ClientContext {
        ClientContext {
            config,
            server_name: None,
        }
    }

    /// The same settings checking the server's certificate against `name` (and sending it
    /// as SNI), whatever host is connected to.
    ///
    /// # Errors
    /// [`TlsError::Config`] when `name` is neither a host name nor an IP address.
    pub fn with_server_name(mut self, name: &str) -> Result<ClientContext, TlsError> {
        self.server_name = Some(server_name(name)?);
        Ok(self)
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// A client layer for a connection to `host` (the context's own server name first).
    pub(crate) fn layer(&self, host: &str) -> Result<TlsLayer, TlsError> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => server_name(host)?,
        };
        TlsLayer::client(self.config.clone(), name)
    }

    /// A client layer for a running connection to `peer` (`start_tls`): the context's server
    /// name, or the peer's IP address.
    pub(crate) fn layer_for_peer(&self, peer: &Address) -> Result<TlsLayer, TlsError> {
        match (&self.server_name, peer.socket_addr()) {
            (Some(_), _) => self.layer(""),
            (None, Some(addr)) => self.layer(&addr.ip().to_string()),
            (None, None) => Err(config_error(format_args!(
                "start_tls as a client on {peer} needs a server name \
                 (ClientContext::with_server_name)"
            ))),
        }
    }
}

impl fmt::Debug for ClientContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientContext")
            .field("server_name", &self.server_name)
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    let name = name.trim_matches(|c| c == '[' || c == ']');
    ServerName::try_from(name.to_owned())
        .map_err(|_| config_error(format_args!("'{name}' is not a valid server name")))
}

/// Builds a [`ClientContext`]; see [`ClientContext::builder`].
#[derive(Debug, Default)]
pub struct ClientContextBuilder {
    roots: Vec<CertificateDer<'static>>,
    system_roots: Option<bool>,
    identity: Option<Identity>,
    alpn: Vec<Vec<u8>>,
    server_name: Option<String>,
}

impl ClientContextBuilder {
    /// Trusts these CA certificates. Once any are given, the system's roots are no longer
    /// trusted unless [`system_roots(true)`](Self::system_roots) says so.
    pub fn trust(mut self, roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.roots.extend(roots);
        self
    }

    /// Whether to trust the system's roots too (by default: only when no CA is given).
    pub fn system_roots(mut self, on: bool) -> Self {
        self.system_roots = Some(on);
        self
    }

    /// Shows this certificate when the server asks for one.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The application protocols to offer by ALPN, most preferred first.
    pub fn alpn_protocols<I: IntoIterator<Item = P>, P: AsRef<[u8]>>(mut self, protos: I) -> Self {
        self.alpn = protos.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// The name the server's certificate must show (and the SNI sent), instead of the host
    /// connected to.
    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = Some(name.to_owned());
        self
    }

    /// Checks the settings and makes the context.
    ///
    /// # Errors
    /// [`TlsError::Config`]: no trusted root at all, a bad CA certificate, a bad server name.
    pub fn build(self) -> Result<ClientContext, TlsError> {
        let mut store = RootCertStore::empty();
        for cert in self.roots.iter().cloned() {
            store
                .add(cert)
                .map_err(|e| config_error(format_args!("bad CA certificate: {e}")))?;
        }
        if self.system_roots.unwrap_or(self.roots.is_empty()) {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 && store.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(config_error(format_args!(
                    "no trusted roots: the system store is empty{why}; install \
                     ca-certificates or trust a CA explicitly"
                )));
            }
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_root_certificates(store);
        let mut config = match self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain, identity.key)
                .map_err(|e| config_error(format_args!("unusable client certificate: {e}")))?,
        };
        config.alpn_protocols = self.alpn;
        Ok(ClientContext {
            config: Arc::new(config),
            server_name: match &self.server_name {
                Some(n) => Some(server_name(n)?),
                None => None,
            },
        })
    }
}
