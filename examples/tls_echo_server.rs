//! The echo server over TLS (Twisted's `listenSSL`), with rustls: no OpenSSL.
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
use torsion::tls::{Identity, ServerContext};
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_examples::{init_logging, Args};

/// Parrots back its input.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

fn main() -> Result<(), Failure> {
    init_logging();
    let args = Args::from_env();
    let port: u16 = args.get("--port", 8443);
    let (identity, generated) = match (args.text("--cert"), args.text("--key")) {
        (Some(cert), key) => (Identity::from_pem_files(cert, key.unwrap_or(cert))?, None),
        (None, Some(_)) => {
            eprintln!("error: --key needs --cert");
            std::process::exit(2)
        }
        (None, None) => {
            let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
            let cert = made.cert.pem();
            let key = made.signing_key.serialize_pem();
            (
                Identity::from_pem(cert.as_bytes(), key.as_bytes())?,
                Some(cert),
            )
        }
    };
    let listening = reactor().listen_tls(port, factory(|| Echo), ServerContext::new(identity)?)?;
    println!("tls echo server listening on {}", listening.get_host());
    if let Some(cert) = generated {
        println!("self-signed certificate for localhost:\n{cert}");
    }
    reactor().run()
}
