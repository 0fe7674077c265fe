//! News for Torsion, as Twisted's `twisted.news`: an NNTP server (RFC 3977, the reader
//! commands) over a folder of articles, and an NNTP client with Deferreds.
//!
//! Built in layers, as every protocol battery here is:
//!
//! - [`wire`]: commands parsed from lines, ranges, wildmats, dot-stuffing and NNTP's dates,
//!   without I/O.
//! - [`store`]: [`Store`], the groups and their articles, in a folder (one per group, one
//!   file per article, written atomically) or in memory.
//! - [`server_core`]: the server's state machine, bytes in and responses out; every rule of
//!   the protocol (limits, posting checks, current article) is tested against it without a
//!   socket.
//! - [`server`]: [`NntpFactory`] and its [`Nntp`] protocol, moving bytes, timing out idle
//!   clients and logging in through a [`Portal`](torsion_cred::Portal).
//! - [`client`]: [`NntpClient`], commands as Deferreds.
//!
//! # Example
//!
//! A server on a test connection, without a socket:
//!
//! ```
//! use torsion::testing::StringTransport;
//! use torsion::{Factory, Protocol};
//! use torsion_news::{NntpFactory, Store};
//!
//! let store = Store::in_memory();
//! store.create_group("local.test", "Tests", 0).unwrap();
//! let factory = NntpFactory::new("news.example", store);
//! let st = StringTransport::new();
//! let t = st.transport();
//! let mut nntp = factory.build_protocol(&t.get_peer()).unwrap();
//! nntp.connection_made(&t);
//! nntp.data_received(&t, b"POST\r\n");
//! nntp.data_received(&t, b"From: a@b\r\nNewsgroups: local.test\r\nSubject: hi\r\n\r\nHello\r\n.\r\n");
//! nntp.data_received(&t, b"GROUP local.test\r\nQUIT\r\n");
//! let out = String::from_utf8(st.value()).unwrap();
//! assert!(out.contains("240 Article received OK\r\n211 1 1 1 local.test\r\n205"), "{out}");
//! assert!(st.disconnecting());
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod server;
pub mod server_core;
pub mod store;
pub mod wire;

pub use client::{GroupStatus, NntpClient, NntpError, OverviewEntry, Response};
pub use server::{NewsRealm, NewsUser, Nntp, NntpFactory};
pub use server_core::{Config, Event, Limits, Posting, ServerCore};
pub use store::{GroupInfo, Overview, Store};
