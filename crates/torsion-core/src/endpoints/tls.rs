//! `tls:` endpoints: loading the PEM files that Twisted's arguments name (keys,
//! certificate chains, trusted roots), then listening and connecting with
//! [`torsion::tls`](mod@crate::tls). Without the `tls` feature, both fail with an error that
//! says so.

use std::io;

#[cfg(feature = "tls")]
use super::client::parse_bind_address;
use super::client::{unsupported_connect, ClientDescription};
use super::server::ServerDescription;
use crate::error::CannotListenError;
#[cfg(feature = "tls")]
use crate::error::ConnectError;
use crate::protocol::{ClientFactory, Factory};
use crate::tcp::{Connector, ListenOptions, ListeningPort};
use crate::{Failure, Reactor};

/// Listens on a `tls:` server description: loads the PEM files, then listens with
/// [`Reactor::listen_tls_with`]. A file that cannot be used fails with a
/// [`CannotListenError`] naming it.
#[cfg(feature = "tls")]
pub(super) fn listen_tls<F: Factory>(
    reactor: &Reactor,
    description: &ServerDescription,
    factory: F,
    options: ListenOptions,
    alpn: &[Vec<u8>],
) -> Result<ListeningPort, Failure> {
    use crate::tls::{load_certificates, load_private_key, Identity, ServerContext};
    let ServerDescription::Tls {
        port,
        interface,
        backlog,
        private_key,
        cert_key,
        extra_cert_chain,
        handshake_timeout,
        send_timeout,
        write_limit,
        ..
    } = description
    else {
        unreachable!("listen_tls is called for tls descriptions only")
    };
    let context = (|| {
        let chain = load_certificates(cert_key.as_deref().unwrap_or(private_key))?;
        let mut identity = Identity::new(chain, load_private_key(private_key)?)?;
        if let Some(extra) = extra_cert_chain {
            identity = identity.with_extra_chain(load_certificates(extra)?);
        }
        let timeout = (*handshake_timeout > 0)
            .then(|| std::time::Duration::from_secs(u64::from(*handshake_timeout)));
        let context = ServerContext::builder()
            .certificate(identity)
            .alpn_protocols(alpn)
            .build()?;
        Ok::<_, crate::tls::TlsError>(context.with_handshake_timeout(timeout))
    })()
    .map_err(|e| {
        CannotListenError::new(
            description.to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    reactor.listen_tls_with(
        *port,
        factory,
        context,
        interface.as_deref().unwrap_or("0.0.0.0"),
        options
            .backlog(*backlog)
            .send_timeout(super::server::send_timeout_option(*send_timeout))
            .write_limit(super::server::write_limit_option(*write_limit)),
    )
}

#[cfg(not(feature = "tls"))]
pub(super) fn listen_tls<F: Factory>(
    _reactor: &Reactor,
    description: &ServerDescription,
    _factory: F,
    _options: ListenOptions,
    _alpn: &[Vec<u8>],
) -> Result<ListeningPort, Failure> {
    Err(unsupported_listen(description, TLS_OFF))
}

/// Connects a `tls:` client description: loads the trusted roots and the client
/// certificate, then connects with [`Reactor::connect_tls_from`]. A file that cannot be
/// used fails at once with a [`ConnectError`] naming it.
#[cfg(feature = "tls")]
pub(super) fn connect_tls<F: ClientFactory>(
    reactor: &Reactor,
    description: &ClientDescription,
    factory: F,
) -> Result<Connector, Failure> {
    use crate::tls::{load_certificates, load_private_key, ClientContext, Identity};
    let ClientDescription::Tls {
        host,
        port,
        timeout,
        bind_address,
        certificate,
        private_key,
        trust_roots,
    } = description
    else {
        unreachable!("connect_tls is called for tls descriptions only")
    };
    let bind = match bind_address {
        None => None,
        Some(b) => Some(parse_bind_address(b).ok_or_else(|| {
            unsupported_connect(
                description,
                "bindAddress is not an IP address (or address:port)",
            )
        })?),
    };
    let context = (|| {
        let mut builder = ClientContext::builder();
        if let Some(roots) = trust_roots {
            builder = builder.trust(load_roots(std::path::Path::new(roots))?);
        }
        if let Some(cert) = certificate {
            let key = load_private_key(private_key.as_deref().unwrap_or(cert))?;
            builder = builder.identity(Identity::new(load_certificates(cert)?, key)?);
        }
        builder.build()
    })()
    .map_err(|e| {
        ConnectError::new(
            description.to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    Ok(reactor.connect_tls_from(host, *port, factory, context, *timeout, bind))
}

/// The CA certificates in a PEM file, or in every PEM file of a folder (Twisted's
/// `trustRoots` folder); files without certificates in a folder are skipped.
#[cfg(feature = "tls")]
fn load_roots(
    path: &std::path::Path,
) -> Result<Vec<crate::tls::CertificateDer<'static>>, crate::tls::TlsError> {
    use crate::tls::{load_certificates, TlsError};
    if !path.is_dir() {
        return load_certificates(path);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| TlsError::Config(format!("cannot read {}: {e}", path.display())))?;
    let mut roots = Vec::new();
    for entry in entries.flatten() {
        if entry.path().is_file() {
            roots.extend(load_certificates(entry.path()).unwrap_or_default());
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Config(format!(
            "no certificate found in the folder {}",
            path.display()
        )));
    }
    Ok(roots)
}

#[cfg(not(feature = "tls"))]
pub(super) fn connect_tls<F: ClientFactory>(
    _reactor: &Reactor,
    description: &ClientDescription,
    _factory: F,
) -> Result<Connector, Failure> {
    Err(unsupported_connect(description, TLS_OFF))
}

#[cfg(not(feature = "tls"))]
const TLS_OFF: &str = "TLS is not compiled in (torsion's `tls` feature is off)";

#[cfg(not(feature = "tls"))]
fn unsupported_listen(description: &ServerDescription, why: &str) -> Failure {
    Failure::new(CannotListenError::new(
        description.to_string(),
        io::Error::new(io::ErrorKind::Unsupported, why.to_owned()),
    ))
}
