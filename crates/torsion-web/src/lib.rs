//! # torsion-web: Twisted's web server, for Torsion
//!
//! An HTTP/1.1 server built from a tree of [`Resource`]s served by a [`Site`] — a
//! [`Factory`](torsion::Factory), so it listens like any protocol —
//! and, underneath, the protocol layer written without I/O ([`proto`]).
//!
//! ```text
//!   Site (Factory) ── HttpChannel (Protocol, one per connection)
//!                        │ parse (proto) → Request → walk the Resource tree → render
//!                        └ responses written in order, one write per response
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body_producer;
pub mod channel;
pub mod client;
pub mod encoding;
pub mod proto;
pub mod proxy;
pub mod request;
pub mod resource;
pub mod resources;
pub mod session;
pub mod site;
mod site_state;
pub mod static_file;
pub mod template;
pub mod tower;
pub mod websocket;

pub use channel::http2;
pub use request::form;
pub use request::Request;
pub use resource::{Render, Resource};
pub use site::Site;
