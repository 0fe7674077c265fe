//! AMP, Twisted's Asynchronous Messaging Protocol (`twisted.protocols.amp`), for Torsion:
//! request/response over one connection, wire-compatible with Python Twisted in both
//! directions.
//!
//! - [`wire`]: boxes and their encoding, without I/O.
//! - [`types`]: the argument types (Integer, String, Unicode, Boolean, Float, Decimal,
//!   DateTime, ListOf, AmpList, optional, your own).
//! - [`command!`] and [`record!`]: commands declared with types.
//! - [`Amp`], [`Locator`], [`AmpSender`]: the protocol, its responders, and `call_remote`.
//!
//! Twisted's howto commands, served and called over a connection:
//!
//! ```
//! use torsion_amp::{command, Amp, Locator, RemoteError};
//!
//! command! {
//!     /// `Sum(a, b) -> total`.
//!     pub struct Sum { a: i64, b: i64 }
//!     response SumResult { total: i64 }
//! }
//! command! {
//!     /// `Divide(numerator, denominator) -> result`, or `ZERO_DIVISION`.
//!     pub struct Divide { numerator: i64, denominator: i64 }
//!     response DivideResult { result: f64 }
//!     errors ["ZERO_DIVISION"]
//! }
//!
//! fn responders() -> Locator {
//!     Locator::new()
//!         .responder(|c: Sum, _| Ok::<_, RemoteError>(SumResult { total: c.a + c.b }))
//!         .responder(|c: Divide, _| match c.denominator {
//!             0 => Err(RemoteError::new("ZERO_DIVISION", "integer division by zero")),
//!             d => Ok(DivideResult { result: c.numerator as f64 / d as f64 }),
//!         })
//! }
//!
//! // Two ends of one connection in memory; over TCP, `listen_tcp` and `connect_deferred`.
//! let (server, client) = (Amp::new(responders()), Amp::new(Locator::new()));
//! let caller = client.sender();
//! let mut pump = torsion::testing::connected_pair(client, server);
//! let sum = caller.call_remote(Sum { a: 13, b: 81 });
//! pump.flush();
//! assert_eq!(sum.result().unwrap().unwrap().total, 94);
//! let div = caller.call_remote(Divide { numerator: 1234, denominator: 0 });
//! pump.flush();
//! let failure = div.result().unwrap().err().unwrap();
//! assert!(RemoteError::check(&failure, "ZERO_DIVISION"));
//! ```
#![forbid(unsafe_code)]

pub mod command;
pub mod error;
pub mod protocol;
pub mod types;
pub mod wire;

pub use command::Command;
pub use error::{
    AmpError, RemoteError, TooLong, UnhandledCommand, UNHANDLED_ERROR_CODE, UNKNOWN_ERROR_CODE,
};
pub use protocol::{Amp, AmpConfig, AmpSender, Locator, Respond, StartTls, StartTlsResult};
pub use types::{AmpList, DateTime, Decimal};
pub use wire::AmpBox;
