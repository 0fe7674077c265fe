//! Twisted Words for Torsion: chat protocols. The IRC server ([`service`], Twisted's
//! `twisted.words.service`) and the IRC client ([`irc`]), Twisted's
//! `twisted.words.protocols.irc.IRCClient`, for bots and clients.
//!
//! ```
//! use torsion_words::irc::{Irc, IrcClient, IrcConfig, IrcHandler};
//!
//! /// Joins #torsion once signed on and greets whoever joins after it.
//! struct Greeter;
//!
//! impl IrcHandler for Greeter {
//!     fn signed_on(&mut self, irc: &mut Irc<'_>) {
//!         irc.join("#torsion");
//!     }
//!
//!     fn user_joined(&mut self, irc: &mut Irc<'_>, nick: &str, channel: &str) {
//!         irc.say(channel, &format!("welcome, {nick}!"));
//!     }
//! }
//!
//! // A protocol like any other: hand it to a factory and connect.
//! let _factory = torsion::factory(|| IrcClient::new(IrcConfig::new("greeter"), Greeter));
//! ```
#![forbid(unsafe_code)]

pub mod irc;
pub mod service;
