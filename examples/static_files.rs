//! Twisted Web's "serving static files": `File('.')` behind a `Site`, with index pages,
//! folder listings, content types, caching validators and byte ranges.
//!
//! ```text
//! cargo run --release --example static_files -- --path . --port 8080
//! curl -r 0-99 http://localhost:8080/Cargo.toml
//! ```
//!
//! From the seed 004.
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use torsion::web::static_file::File;
use torsion::web::Site;
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, startup_error};

/// Serves a folder over HTTP (Twisted Web's static.File).
#[derive(Parser)]
struct Cli {
    /// The folder to serve.
    #[arg(long, default_value = ".")]
    path: PathBuf,
    /// The HTTP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let path = &cli.path;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(startup_error(format!(
                "--path {}: not a folder (give the folder to serve)",
                path.display()
            )))
        }
        Err(e) => {
            return Err(startup_error(format!(
                "--path {}: {e} (give an existing folder, such as --path .)",
                path.display()
            )))
        }
    }
    let listening = reactor().listen_tcp_on(
        cli.port,
        Site::new(File::new(path)),
        &cli.interface.to_string(),
    )?;
    println!(
        "static_files listening on {} serving {}",
        listening.get_host(),
        path.display()
    );
    reactor().run()
}
