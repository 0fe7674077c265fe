//! DNS for Torsion, as Twisted's `twisted.names`: an asynchronous resolver whose lookups
//! return Deferreds, and the building blocks of a DNS server (an authority loaded from a zone
//! file, a cache, a chain of resolvers) that `torsiond dns` serves.
//!
//! Messages, names and records are [Hickory](https://docs.rs/hickory-proto)'s: the wire format
//! and the zone-file parser are never written by hand here.
//!
//! - [`Resolver`]: Twisted's `IResolver`, one [`query`](Resolver::query) and the typed
//!   `lookup_*` methods built on it. Every source of answers implements it.
//! - [`Query`], [`Answer`]: what is asked and the three record sections that come back.
//! - [`error`]: the failures a lookup ends with (Twisted's `twisted.names.error`).
//! - [`client`]: the DNS client over UDP and TCP ([`ClientResolver`], Twisted's
//!   `client.Resolver`), [`create_resolver`] (hosts file, cache, servers, chained), and
//!   [`NameResolver`], which makes the reactor's `connect_tcp` and `HostnameEndpoint` use
//!   any resolver instead of `getaddrinfo`.
//! - [`hosts`], [`resolv_conf`]: `/etc/hosts` answers and `/etc/resolv.conf`'s servers,
//!   each read again when the file changes.
//! - [`cache`], [`chain`]: a TTL-honouring bounded cache and a chain of resolvers asked in
//!   turn (Twisted's `CacheResolver` and `ResolverChain`).
//!
//! Any closure from a [`Query`] to a Deferred [`Answer`] is a resolver, which is how a test
//! answers without a network:
//!
//! ```
//! use std::net::Ipv4Addr;
//! use torsion::defer::succeed;
//! use torsion_names::{Answer, Query, Record, RData, Resolver};
//! use torsion_names::proto::rr::rdata::A;
//!
//! let fixed = |q: &Query| {
//!     let a = Record::from_rdata(q.name.clone(), 60, RData::A(A(Ipv4Addr::new(192, 0, 2, 7))));
//!     succeed(Answer { answers: vec![a], ..Answer::default() })
//! };
//! let answer = fixed.lookup_address("example.com").result().unwrap().unwrap();
//! assert_eq!(answer.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 7))));
//! ```
#![forbid(unsafe_code)]

pub mod authority;
pub mod cache;
pub mod chain;
pub mod client;
pub mod error;
pub mod hosts;
pub mod resolv_conf;
pub mod resolver;
pub mod server;

pub use cache::CacheResolver;
pub use chain::ResolverChain;
pub use client::{create_resolver, ClientResolver, NameResolver};
/// Hickory's DNS types, re-exported so programs name the same versions Torsion uses.
pub use hickory_proto as proto;
pub use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
pub use hosts::HostsResolver;
pub use resolver::{Answer, Query, Resolver};
