//! The IRC client protocol (Twisted's `IRCClient`): registration, nickname collisions,
//! PING/PONG, channels, messages, actions and CTCP, with flood control.
//!
//! Write an [`IrcHandler`] (override the callbacks you need; all have defaults) and wrap it
//! in an [`IrcClient`], which is a [`Protocol`]: connect it like any other, with
//! [`connect_tcp`](torsion::Reactor::connect_tcp) or a reconnecting factory. Each callback
//! gets an [`Irc`], the connection's command side (`join`, `say`, `msg`, `describe`, ...);
//! [`Irc::sender`] hands out an [`IrcSender`], a handle to the same commands to keep and use
//! from anywhere else (a timer, another connection).
//!
//! ```
//! use torsion::testing::StringTransport;
//! use torsion::Protocol;
//! use torsion_words::irc::{Irc, IrcClient, IrcConfig, IrcHandler};
//!
//! /// Answers "ping" with "pong" wherever it is said.
//! struct PingBot;
//!
//! impl IrcHandler for PingBot {
//!     fn signed_on(&mut self, irc: &mut Irc<'_>) {
//!         irc.join("#torsion");
//!     }
//!
//!     fn privmsg(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
//!         if message == "ping" {
//!             // In a channel, answer there; in private, answer the sender.
//!             let to = if irc.is_me(channel) { irc.nick_of(user) } else { channel };
//!             irc.msg(to, "pong");
//!         }
//!     }
//! }
//!
//! let st = StringTransport::new();
//! let t = st.transport();
//! let mut bot = IrcClient::new(IrcConfig::new("pingbot"), PingBot);
//! bot.connection_made(&t);
//! assert_eq!(st.take(), b"NICK pingbot\r\nUSER pingbot 0 * :pingbot\r\n");
//! bot.data_received(&t, b":irc.test 001 pingbot :Welcome\r\n");
//! assert_eq!(st.take(), b"JOIN #torsion\r\n");
//! bot.data_received(&t, b":alice!a@host PRIVMSG #torsion :ping\r\n");
//! assert_eq!(st.take(), b"PRIVMSG #torsion :pong\r\n");
//! ```
//!
//! Incoming lines are cut at LF (a CR before it is dropped), decoded as UTF-8 (invalid bytes
//! become U+FFFD), and limited to 512 bytes plus 8,191 of IRCv3 tags: a longer line, or one
//! that is not an IRC message, closes the connection with a log line. Outgoing text is split
//! at line breaks and at the length a relayed line leaves room for, and a target or channel
//! that would break a line (a space, CR, LF) is refused with an error in the log, so text
//! from the network cannot smuggle commands through the bot.
//!
//! [`Protocol`]: torsion::Protocol

// The client's log events name their target, `torsion_words::irc`, in every file rather
// than take the file's module path: the target stays what it was before irc/ was split.
mod client;
mod config;
mod handler;
mod message;
mod sender;
mod shared;

pub use client::IrcClient;
pub use config::IrcConfig;
pub use handler::IrcHandler;
pub use message::{
    build_line, nick_of, same_name, InvalidParam, Message, ParseError, MAX_LINE, MAX_PARAMS,
    MAX_TAGS,
};
pub use sender::{Irc, IrcSender, CHANNEL_PREFIXES};
