//! Twisted's `getPage`: fetches a URL and prints the page; on any failure prints
//! "Unable to fetch." and exits with status 1. By default in the callback style
//! (`add_callback(print_result)`, `add_errback(print_error)`); with `--async`, as async code
//! awaiting the Deferred, Twisted's `inlineCallbacks` with `try`/`except`/`finally`.
//!
//! ```text
//! cargo run --example get_page -- http://python.org [--async]
//! ```
//!
//! From the seed 004.
use std::cell::Cell;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use torsion::defer::ensure_deferred;
use torsion::web::client::get_page;
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// Fetches a URL and prints the page (Twisted's getPage).
#[derive(Parser)]
struct Cli {
    /// The page to fetch (http:// or https://).
    url: String,
    /// Awaits the page in async code instead of adding callbacks.
    #[arg(long = "async")]
    use_async: bool,
}

/// Prints the page, as Python's `print(html)` would.
fn print_page(html: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(html);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Prints why, for the curious, and the seed's message.
fn print_failure(err: &Failure) {
    eprintln!("get_page: {err}");
    println!("Unable to fetch.");
}

/// The callback style: one callback, one errback, each stops the reactor.
fn with_callbacks(url: &str, failed: Rc<Cell<bool>>) {
    let print_result = |html: Vec<u8>| {
        print_page(&html);
        let _ = reactor().stop();
    };
    let print_error = move |err: Failure| {
        print_failure(&err);
        failed.set(true);
        let _ = reactor().stop();
        Ok(())
    };
    let d = get_page(url);
    d.add_callback(print_result).add_errback(print_error);
}

/// The async style: try, except, finally.
fn with_async(url: String, failed: Rc<Cell<bool>>) {
    ensure_deferred(async move {
        match get_page(&url).await {
            Ok(html) => print_page(&html),
            Err(err) => {
                print_failure(&err);
                failed.set(true);
            }
        }
        let _ = reactor().stop(); // finally
        Ok::<_, Failure>(())
    });
}

fn main() -> ExitCode {
    let Cli { url, use_async } = Cli::parse();
    init_logging();
    let failed = Rc::new(Cell::new(false));
    let flag = failed.clone();
    reactor().call_when_running(move || {
        if use_async {
            with_async(url, flag);
        } else {
            with_callbacks(&url, flag);
        }
    });
    if let Err(f) = reactor().run() {
        eprintln!("Error: {f:?}");
        return ExitCode::FAILURE;
    }
    if failed.get() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
