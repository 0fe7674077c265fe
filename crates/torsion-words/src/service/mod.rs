//! An IRC server: the chat service of Twisted's `twisted.words.service` (users, channels,
//! topics, modes) behind the IRC server protocol that real clients speak.
//!
//! [`ChatCore`] is the whole service without I/O: bytes and the time go in, lines to send
//! and connections to close come out, so it is tested (and fuzzed) without sockets.
//! [`IrcServerFactory`] puts it behind connections: one core shared by every connection,
//! a one-second tick for flood control and pings, `PASS` checked through a
//! [`Portal`](torsion_cred::Portal) when one is given, and a bound on what waits to be sent
//! to each client.
//!
//! ```
//! use torsion_words::service::{ChatCore, Output, ServerConfig};
//!
//! let mut chat = ChatCore::new(ServerConfig::default());
//! for (id, nick) in [(1, "alice"), (2, "bob")] {
//!     chat.connect(id, "127.0.0.1", 0.0);
//!     chat.data_received(id, format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #t\r\n").as_bytes(), 0.0);
//! }
//! chat.take_output();
//! chat.data_received(1, b"PRIVMSG #t :hello\r\n", 0.0);
//! assert_eq!(
//!     chat.take_output(),
//!     [Output::Line(2, ":alice!~alice@127.0.0.1 PRIVMSG #t :hello".into())]
//! );
//! ```
//!
//! Every input is bounded: lines are at most 512 bytes with their ending (a longer one is
//! answered 417 and dropped), each client has a token bucket ([`ServerConfig::flood_burst`],
//! [`ServerConfig::flood_rate`]) past which its lines wait, and past
//! [`ServerConfig::flood_queue`] waiting lines it is dropped; channels per user and in all
//! are capped (405); silent clients are pinged and dropped.

mod core;
mod server;

pub use self::core::{
    valid_channel, valid_nick, ChatCore, ClientId, Output, ServerConfig, CHANNELLEN, MAX_BANS,
    NICKLEN, TOPICLEN,
};
pub use server::{ChatRealm, ChatUser, IrcServer, IrcServerFactory, DEFAULT_MAX_SENDQ};
