//! # Torsion: Twisted's event-driven networking, in Rust
//!
//! Torsion is Twisted's programming model — a [reactor](mod@reactor) that calls your code when
//! events happen, [Deferreds](defer) for results you don't have yet, and [protocols](protocol),
//! [factories](protocol::Factory) and [transports](transport) that separate the meaning of
//! bytes from moving them — written as idiomatic, fast Rust on tokio.
//!
//! ```text
//!   your Protocol                          <- meaning
//!     data_received, connection_lost
//!        ^               |
//!        | events        | write, lose_connection
//!        |               v
//!   Transport handle                       <- byte pipe
//!     buffered, coalesced writes
//!        ^
//!        |
//!   Reactor: one per thread, on tokio's    <- events: I/O, timers,
//!     LocalRuntime; timers, triggers,         signals, other threads
//!     call_from_thread
//! ```
//!
//! The seed's echo server, complete:
//!
//! ```no_run
//! use torsion::{factory, reactor, Protocol, Transport};
//!
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! fn main() -> Result<(), torsion::Failure> {
//!     reactor().listen_tcp(1033, factory(|| Echo))?;
//!     reactor().run()
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Lets `#[torsion::test]` (which names `::torsion`) work in this crate's own tests.
extern crate self as torsion;

mod address;
pub mod application;
mod connector;
pub mod datagram;
pub mod defer;
pub mod endpoints;
mod engine;
pub mod error;
mod failure;
pub mod log;
pub mod net;
#[cfg(target_os = "linux")]
mod poller;
mod port;
pub mod process;
pub mod producer;
pub mod protocol;
pub mod protocols;
pub mod reactor;
mod runtime;
pub mod stdio;
mod stream;
pub mod task;
pub mod tcp;
pub mod testing;
pub mod threads;
mod time;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;
pub mod udp;
pub mod unix;
pub mod unix_datagram;
mod util;

pub use defer::Deferred;
pub use failure::{BoxError, ErrorTypes, Failure};
pub use protocol::{factory, ClientFactory, ConnectionEnd, Factory, Protocol};
pub use reactor::{reactor, Reactor};
pub use transport::Transport;

/// Runs an async test in a fresh reactor, failing it on error, time-out or a dirty reactor;
/// see [`testing::run_test`].
pub use torsion_macros::test;
