//! The Echo protocol over TLS, Twisted's `listenSSL` echo server, with rustls: no OpenSSL.
//!
//! ```text
//! cargo run --release --example tls_echo_server -- --port 8443 --cert cert.pem --key key.pem
//! ```
//!
//! `--cert` is a PEM file with the certificate chain, `--key` the PEM file with its private
//! key (default: the `--cert` file, holding both). Without them the server makes a
//! self-signed certificate for `localhost` and prints it after the line saying where it
//! listens, so a client can trust it:
//!
//! ```text
//! openssl s_client -connect localhost:8443 -CAfile printed-cert.pem
//! ```
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use torsion::tls::{Identity, ServerContext};
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_examples::init_logging;

/// The Echo protocol over TLS (Twisted's listenSSL).
#[derive(Parser)]
struct Cli {
    /// The TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
    /// A PEM file with the certificate chain (default: a self-signed one for localhost).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The PEM file with the private key (default: the --cert file).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

/// Parrots back its input.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let (identity, generated) = match &cli.cert {
        Some(cert) => (
            Identity::from_pem_files(cert, cli.key.as_ref().unwrap_or(cert))?,
            None,
        ),
        None => {
            let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
            let cert = made.cert.pem();
            let key = made.signing_key.serialize_pem();
            (
                Identity::from_pem(cert.as_bytes(), key.as_bytes())?,
                Some(cert),
            )
        }
    };
    let listening = reactor().listen_tls_on(
        cli.port,
        factory(|| Echo),
        ServerContext::new(identity)?,
        &cli.interface.to_string(),
    )?;
    println!("tls echo server listening on {}", listening.get_host());
    if let Some(cert) = generated {
        println!("self-signed certificate for localhost:\n{cert}");
    }
    reactor().run()
}
