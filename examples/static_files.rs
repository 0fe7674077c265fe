//! Seed 004: "Twisted Web: serving static files" — `File('.')` behind a `Site`: index pages,
//! folder listings, content types, caching validators and byte ranges.
//!
//! ```text
//! cargo run --release --example static_files -- --path . --port 8080
//! curl -r 0-99 http://localhost:8080/Cargo.toml
//! ```
use torsion::web::static_file::File;
use torsion::web::Site;
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, Args};

fn main() -> Result<(), Failure> {
    init_logging();
    let args = Args::from_env();
    let path = args.text("--path").unwrap_or(".").to_owned();
    let port: u16 = args.get("--port", 8080);
    let listening = reactor().listen_tcp(port, Site::new(File::new(&path)))?;
    println!(
        "static_files listening on {} serving {path}",
        listening.get_host()
    );
    reactor().run()
}
