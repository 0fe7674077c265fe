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

mod message;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::reactor::{DelayedCall, ReactorTime};
use torsion::{Failure, Protocol, Transport};

pub use message::{
    build_line, nick_of, same_name, InvalidParam, Message, ParseError, MAX_LINE, MAX_PARAMS,
    MAX_TAGS,
};
use message::{check_middle, split_text};

/// The channel prefixes [`IrcSender::say`] recognizes; a name without one gets `#`.
pub const CHANNEL_PREFIXES: &str = "&#!+";

/// Room kept for what a server puts in front of a line it relays (`:nick!user@host `), with
/// the longest host name DNS allows.
const HOST_ROOM: usize = 63;

/// How many nickname collisions registration tries its way past before it gives up.
const MAX_NICK_TRIES: u32 = 16;

/// Who the client is and how it behaves (Twisted's `IRCClient` attributes). Its `Debug`
/// output leaves the password out.
#[derive(Clone)]
pub struct IrcConfig {
    /// The nickname to register with.
    pub nickname: String,
    /// The user name (`USER`); the nickname when `None`.
    pub username: Option<String>,
    /// The real name (`USER`'s last field); the nickname when `None`.
    pub realname: Option<String>,
    /// The server password (`PASS`), if the server wants one.
    pub password: Option<String>,
    /// Seconds between two lines sent (flood control, Twisted's `lineRate`); `None` sends at
    /// once. PONGs are never held back.
    pub line_rate: Option<f64>,
    /// The answer to a CTCP VERSION query; `None` leaves such queries unanswered.
    pub version_name: Option<String>,
    /// The nickname to try when the server calls ours erroneous during registration
    /// (Twisted's `erroneousNickFallback`). A refused nickname longer than nine characters
    /// (RFC 1459's limit, and ngIRCd's default) is first tried cut to nine; then this one,
    /// then this one cut to nine; then registration gives up.
    pub erroneous_nick_fallback: String,
    /// The message sent with QUIT when the connection is asked to drain (a graceful stop).
    pub quit_message: String,
    /// Seconds between two PINGs the client sends once signed on (Twisted's
    /// `heartbeatInterval`, 120 by default); when nothing at all has come from the server
    /// for two of them, the connection is taken for dead and closed, so a reconnecting
    /// factory can start again. `None` sends no PINGs.
    pub heartbeat_interval: Option<f64>,
}

impl std::fmt::Debug for IrcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrcConfig")
            .field("nickname", &self.nickname)
            .field("username", &self.username)
            .field("realname", &self.realname)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("line_rate", &self.line_rate)
            .field("version_name", &self.version_name)
            .field("erroneous_nick_fallback", &self.erroneous_nick_fallback)
            .field("quit_message", &self.quit_message)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish()
    }
}

impl IrcConfig {
    /// A configuration with `nickname` and Twisted's defaults for the rest.
    pub fn new(nickname: impl Into<String>) -> IrcConfig {
        IrcConfig {
            nickname: nickname.into(),
            username: None,
            realname: None,
            password: None,
            line_rate: None,
            version_name: None,
            erroneous_nick_fallback: "defaultnick".to_owned(),
            quit_message: "shutting down".to_owned(),
            heartbeat_interval: Some(120.0),
        }
    }
}

/// What an IRC client does when things happen (Twisted's `IRCClient` callbacks). Every
/// method has a default that does nothing (or what Twisted does), so a bot overrides only
/// what it needs.
///
/// Names follow Twisted: `user` is a full prefix (`nick!user@host`) where Twisted passes
/// one (messages, notices, actions) and a nickname where Twisted passes one (joins, parts,
/// quits, kicks, renames); `channel` is the client's own nickname for a private message.
#[allow(unused_variables)]
pub trait IrcHandler: 'static {
    /// The connection is made and registration sent (Twisted's `connectionMade`).
    fn connection_made(&mut self, irc: &mut Irc<'_>) {}

    /// Registration is complete (RPL_WELCOME): join channels here.
    fn signed_on(&mut self, irc: &mut Irc<'_>) {}

    /// The client joined `channel`.
    fn joined(&mut self, irc: &mut Irc<'_>, channel: &str) {}

    /// The client left `channel`.
    fn left(&mut self, irc: &mut Irc<'_>, channel: &str) {}

    /// A message to `channel` (or, when `channel` is the client's nickname, to the client).
    fn privmsg(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {}

    /// A CTCP ACTION (`/me does something`) to `channel` or to the client.
    fn action(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, data: &str) {}

    /// A notice to `channel` or to the client. (Never answer a notice automatically.)
    fn noticed(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {}

    /// A CTCP query other than ACTION, VERSION and PING (which the client answers itself).
    fn ctcp_query(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, tag: &str, data: &str) {}

    /// Someone else joined `channel`.
    fn user_joined(&mut self, irc: &mut Irc<'_>, nick: &str, channel: &str) {}

    /// Someone else left `channel`.
    fn user_left(&mut self, irc: &mut Irc<'_>, nick: &str, channel: &str) {}

    /// Someone quit IRC.
    fn user_quit(&mut self, irc: &mut Irc<'_>, nick: &str, message: &str) {}

    /// `kicker` kicked `kickee` out of `channel`.
    fn user_kicked(
        &mut self,
        irc: &mut Irc<'_>,
        kickee: &str,
        channel: &str,
        kicker: &str,
        message: &str,
    ) {
    }

    /// `kicker` kicked the client out of `channel`.
    fn kicked_from(&mut self, irc: &mut Irc<'_>, channel: &str, kicker: &str, message: &str) {}

    /// Someone else changed nickname.
    fn user_renamed(&mut self, irc: &mut Irc<'_>, old: &str, new: &str) {}

    /// The client's own nickname changed (after [`IrcSender::set_nick`], or a collision).
    fn nick_changed(&mut self, irc: &mut Irc<'_>, nick: &str) {}

    /// The topic of `channel` is `topic`, set by `nick` (on a change, or the topic a server
    /// gives on joining, where `nick` is the server's name).
    fn topic_updated(&mut self, irc: &mut Irc<'_>, nick: &str, channel: &str, topic: &str) {}

    /// A MODE change on `target` (a channel or the client), as the server sent it.
    fn mode_changed(
        &mut self,
        irc: &mut Irc<'_>,
        user: &str,
        target: &str,
        modes: &str,
        args: &[&str],
    ) {
    }

    /// Any message the client does not handle itself (numeric replies, other commands).
    fn irc_unknown(&mut self, irc: &mut Irc<'_>, message: &Message<'_>) {}

    /// The nickname to try when `nickname` is taken (Twisted's `alterCollidedNick`).
    fn alter_collided_nick(&mut self, nickname: &str) -> String {
        format!("{nickname}_")
    }

    /// The connection is gone.
    fn connection_lost(&mut self, reason: Failure) {}
}

/// Lines waiting for their turn under [`IrcConfig::line_rate`].
struct Throttle {
    rate: f64,
    queue: VecDeque<String>,
    /// The call that sends the next queued line; `None` when the last line went out more
    /// than `rate` seconds ago (the next line may go at once).
    timer: Option<DelayedCall>,
}

/// What the connection's command side shares between the protocol and every [`IrcSender`].
struct Shared {
    transport: Transport,
    /// The nickname the server knows us by (or the one being tried, before registration).
    nickname: RefCell<String>,
    registered: Cell<bool>,
    /// The user name, for the room a relayed line leaves.
    username: String,
    throttle: RefCell<Option<Throttle>>,
    /// The reactor, or a test clock.
    clock: Rc<dyn ReactorTime>,
    /// When the last line came from the server.
    last_heard: Cell<f64>,
    /// The next heartbeat, once signed on.
    heartbeat: RefCell<Option<DelayedCall>>,
}

impl Shared {
    /// Writes one line (without its line ending) at once.
    fn write_line(&self, line: &str) {
        self.transport.write_sequence(&[line.as_bytes(), b"\r\n"]);
    }

    /// Builds `COMMAND :trailing` and writes it at once, past flood control (PONG, the
    /// heartbeat's PING, QUIT on a stop), or logs why it cannot.
    fn write_now(&self, command: &str, trailing: &str) {
        match build_line(command, &[], Some(trailing)) {
            Ok(line) => self.write_line(&line),
            Err(e) => tracing::warn!("IRC {command} not sent: {e}"),
        }
    }

    /// Sends the next queued line, if any, and schedules the one after. The queue is not
    /// borrowed while the line is written.
    fn send_next(this: &Rc<Shared>) {
        let next = match this.throttle.borrow_mut().as_mut() {
            Some(t) => t.queue.pop_front(),
            None => return,
        };
        let Some(line) = next else {
            if let Some(t) = this.throttle.borrow_mut().as_mut() {
                t.timer = None;
            }
            return;
        };
        this.write_line(&line);
        if let Some(t) = this.throttle.borrow_mut().as_mut() {
            let again = Rc::downgrade(this);
            t.timer = Some(this.clock.call_later_boxed(
                t.rate,
                Box::new(move || {
                    if let Some(this) = again.upgrade() {
                        Shared::send_next(&this);
                    }
                }),
            ));
        }
    }

    /// Drops the queued lines and the timers (the connection is gone).
    fn stop(&self) {
        if let Some(mut t) = self.throttle.borrow_mut().take() {
            if let Some(timer) = t.timer.take() {
                let _ = timer.cancel();
            }
        }
        if let Some(timer) = self.heartbeat.borrow_mut().take() {
            let _ = timer.cancel();
        }
    }

    /// Schedules the next heartbeat in `interval` seconds: a PING to `server`, or, when
    /// nothing has come for two intervals, the end of the connection.
    fn schedule_heartbeat(this: &Rc<Shared>, interval: f64, server: Rc<str>) {
        let weak = Rc::downgrade(this);
        let call = this.clock.call_later_boxed(
            interval,
            Box::new(move || {
                let Some(this) = weak.upgrade() else {
                    return;
                };
                this.heartbeat.borrow_mut().take();
                let silent = this.clock.seconds() - this.last_heard.get();
                if silent >= 2.0 * interval {
                    tracing::warn!(
                        "nothing from IRC server {server} for {silent:.0} s; closing the connection"
                    );
                    this.transport.lose_connection();
                    return;
                }
                this.write_now("PING", &server);
                Shared::schedule_heartbeat(&this, interval, server);
            }),
        );
        if let Some(old) = this.heartbeat.borrow_mut().replace(call) {
            let _ = old.cancel();
        }
    }
}

/// The command side of an IRC connection: a cheap handle (clone it freely) to send
/// commands from anywhere, a timer or another connection as well as a callback (Twisted code
/// keeps the protocol instance for this). Every [`IrcHandler`] callback gets one as an
/// [`Irc`]; [`Irc::sender`] or [`IrcClient::sender`] hands out a handle to keep.
///
/// Commands with a target refuse a target that would break the line (empty, or holding a
/// space, CR, LF or NUL): they send nothing and log an error. Text is split at line breaks
/// and at the room a relayed line leaves, so any text can be passed. After the connection is
/// gone, commands do nothing.
#[derive(Clone)]
pub struct IrcSender {
    shared: Rc<Shared>,
}

impl IrcSender {
    /// The client's current nickname.
    pub fn nickname(&self) -> String {
        self.shared.nickname.borrow().clone()
    }

    /// Whether `name` is the client's own nickname (IRC case folding): a private message
    /// has it as its channel.
    pub fn is_me(&self, name: &str) -> bool {
        same_name(name, &self.shared.nickname.borrow())
    }

    /// The nickname in a `nick!user@host` prefix.
    pub fn nick_of<'s>(&self, prefix: &'s str) -> &'s str {
        nick_of(prefix)
    }

    /// Whether registration is complete (RPL_WELCOME came).
    pub fn is_registered(&self) -> bool {
        self.shared.registered.get()
    }

    /// The connection's transport (for its addresses, or to close it).
    pub fn transport(&self) -> &Transport {
        &self.shared.transport
    }

    /// Lines held back by flood control ([`IrcConfig::line_rate`]).
    pub fn queued_lines(&self) -> usize {
        self.shared
            .throttle
            .borrow()
            .as_ref()
            .map_or(0, |t| t.queue.len())
    }

    /// Sends one raw line (without its line ending), through flood control. A line that is
    /// not one IRC message (it holds a CR, LF or NUL, does not parse, or is over 510 bytes)
    /// is refused (logged, not sent).
    pub fn send_line(&self, line: &str) {
        let checked = message::check_trailing(line)
            .and_then(|()| message::check_length(line))
            .map_err(|e| e.to_string())
            .and_then(|()| Message::parse(line).map(drop).map_err(|e| e.to_string()));
        match checked {
            Ok(()) => self.send_checked(line.to_owned()),
            Err(e) => tracing::error!("IRC line not sent: {e}"),
        }
    }

    /// Sends a line already built by [`build_line`], through flood control.
    fn send_checked(&self, line: String) {
        let idle = {
            let mut guard = self.shared.throttle.borrow_mut();
            match guard.as_mut() {
                Some(t) => {
                    t.queue.push_back(line);
                    t.timer.is_none()
                }
                None => {
                    drop(guard);
                    self.shared.write_line(&line);
                    return;
                }
            }
        };
        if idle {
            Shared::send_next(&self.shared);
        }
    }

    /// Builds and sends a command, or logs why it cannot.
    fn command(&self, command: &str, middle: &[&str], trailing: Option<&str>) {
        match build_line(command, middle, trailing) {
            Ok(line) => self.send_checked(line),
            Err(e) => tracing::error!("IRC {command} not sent: {e}"),
        }
    }

    /// Sends `text` to `target` with `command` (PRIVMSG or NOTICE), split to fit.
    fn text(&self, command: &str, target: &str, text: &str) {
        if let Err(e) = check_middle(target) {
            tracing::error!("IRC {command} not sent: {e}");
            return;
        }
        // What the server relays: ":nick!user@host COMMAND target :text\r\n".
        let overhead = 1
            + self.shared.nickname.borrow().len()
            + 1
            + self.shared.username.len()
            + 1
            + HOST_ROOM
            + 1
            + command.len()
            + 1
            + target.len()
            + 2
            + 2;
        let room = MAX_LINE.saturating_sub(overhead);
        for piece in split_text(text, room) {
            self.command(command, &[target], Some(&piece));
        }
    }

    /// Joins `channel`.
    pub fn join(&self, channel: &str) {
        self.command("JOIN", &[channel], None);
    }

    /// Joins `channel` with its key.
    pub fn join_with_key(&self, channel: &str, key: &str) {
        self.command("JOIN", &[channel, key], None);
    }

    /// Leaves `channel`, with an optional reason (Twisted's `leave`).
    pub fn leave(&self, channel: &str, reason: Option<&str>) {
        self.command("PART", &[channel], reason);
    }

    /// Sends `message` to a user or channel (Twisted's `msg`).
    pub fn msg(&self, target: &str, message: &str) {
        self.text("PRIVMSG", target, message);
    }

    /// Sends `message` to `channel`, adding `#` when the name has no channel prefix
    /// (Twisted's `say`).
    pub fn say(&self, channel: &str, message: &str) {
        let channel = with_channel_prefix(channel);
        self.text("PRIVMSG", &channel, message);
    }

    /// Sends a notice (which, by convention, nobody answers automatically).
    pub fn notice(&self, target: &str, message: &str) {
        self.text("NOTICE", target, message);
    }

    /// Sends a CTCP ACTION (`/me`), Twisted's `describe`.
    pub fn describe(&self, target: &str, action: &str) {
        let action: String = action
            .chars()
            .map(|c| if matches!(c, '\r' | '\n') { ' ' } else { c })
            .filter(|&c| c != '\0' && c != '\u{1}')
            .collect();
        self.text("PRIVMSG", target, &format!("\u{1}ACTION {action}\u{1}"));
    }

    /// Asks for a new nickname ([`IrcHandler::nick_changed`] follows when the server agrees).
    pub fn set_nick(&self, nickname: &str) {
        if !self.shared.registered.get() {
            *self.shared.nickname.borrow_mut() = nickname.to_owned();
        }
        self.command("NICK", &[nickname], None);
    }

    /// Sets (`Some`) or asks for (`None`) the topic of `channel`.
    pub fn topic(&self, channel: &str, topic: Option<&str>) {
        self.command("TOPIC", &[channel], topic);
    }

    /// Kicks `user` out of `channel`.
    pub fn kick(&self, channel: &str, user: &str, reason: Option<&str>) {
        self.command("KICK", &[channel, user], reason);
    }

    /// Marks the client away with `message`.
    pub fn away(&self, message: &str) {
        self.command("AWAY", &[], Some(message));
    }

    /// Marks the client back.
    pub fn back(&self) {
        self.command("AWAY", &[], None);
    }

    /// Leaves IRC with `message`; the server then closes the connection.
    pub fn quit(&self, message: &str) {
        self.command("QUIT", &[], Some(message));
    }
}

/// The command side of the connection as an [`IrcHandler`] callback sees it: every
/// [`IrcSender`] command (`irc.join(..)`, `irc.say(..)`), and [`sender`](Irc::sender) for a
/// handle to keep.
pub struct Irc<'a> {
    sender: &'a IrcSender,
}

impl Irc<'_> {
    /// A handle to this connection's command side, to keep and use outside callbacks.
    pub fn sender(&self) -> IrcSender {
        self.sender.clone()
    }
}

impl std::ops::Deref for Irc<'_> {
    type Target = IrcSender;

    fn deref(&self) -> &IrcSender {
        self.sender
    }
}

/// `channel` with `#` in front unless it starts with a channel prefix.
fn with_channel_prefix(channel: &str) -> Cow<'_, str> {
    match channel.chars().next() {
        Some(c) if CHANNEL_PREFIXES.contains(c) => Cow::Borrowed(channel),
        _ => Cow::Owned(format!("#{channel}")),
    }
}

/// `nick` cut to nine characters, RFC 1459's limit for nicknames.
fn cut_nick(nick: &str) -> String {
    nick.chars().take(9).collect()
}

/// The line receiver behind [`IrcClient`].
struct Core<H> {
    handler: H,
    config: IrcConfig,
    nick_tries: u32,
    /// Nicknames the server called erroneous during registration.
    refused: Vec<String>,
    clock: Option<Rc<dyn ReactorTime>>,
    /// The command side, from the connection on.
    sender: Option<IrcSender>,
}

impl<H: IrcHandler> Core<H> {
    /// Handles one parsed message.
    fn dispatch(&mut self, sender: &IrcSender, m: &Message<'_>) {
        let h = &mut self.handler;
        let irc = &mut Irc { sender };
        let nick = m.nick().unwrap_or("");
        let p = |i: usize| m.param(i).unwrap_or("");
        // Commands are case-insensitive (RFC 1459 §2.3); servers send them in capitals.
        let upper;
        let command = if m.command.bytes().any(|b| b.is_ascii_lowercase()) {
            upper = m.command.to_ascii_uppercase();
            upper.as_str()
        } else {
            m.command
        };
        match command {
            // At once, past flood control: a late PONG costs the connection.
            "PING" => sender.shared.write_now("PONG", m.last().unwrap_or("")),
            "001" => {
                sender.shared.registered.set(true);
                if let Some(me) = m.param(0).filter(|n| !n.is_empty()) {
                    *sender.shared.nickname.borrow_mut() = me.to_owned();
                }
                if let Some(interval) = self.config.heartbeat_interval.filter(|i| *i > 0.0) {
                    let server: Rc<str> = match m.prefix {
                        Some(p) if check_middle(p).is_ok() => p.into(),
                        _ => "torsion".into(),
                    };
                    Shared::schedule_heartbeat(&sender.shared, interval, server);
                }
                h.signed_on(irc);
            }
            // ERR_NICKNAMEINUSE: during registration, try another; later, the change
            // simply did not happen.
            "433" if !sender.is_registered() => {
                self.nick_tries += 1;
                if self.nick_tries > MAX_NICK_TRIES {
                    tracing::error!("IRC registration gave up: {MAX_NICK_TRIES} nicknames in use");
                    sender.transport().lose_connection();
                    return;
                }
                let next = h.alter_collided_nick(&sender.nickname());
                sender.set_nick(&next);
            }
            // ERR_ERRONEUSNICKNAME during registration: try a shorter one, then the
            // fallback, then give up.
            "432" if !sender.is_registered() => {
                let refused = sender.nickname();
                self.refused.push(refused.clone());
                let fallback = &self.config.erroneous_nick_fallback;
                let next = [cut_nick(&refused), fallback.clone(), cut_nick(fallback)]
                    .into_iter()
                    .find(|n| !n.is_empty() && !self.refused.iter().any(|r| same_name(r, n)));
                match next {
                    Some(next) => {
                        tracing::warn!(
                            "IRC server refuses the nickname {refused:?}; trying {next:?}"
                        );
                        sender.set_nick(&next);
                    }
                    None => {
                        tracing::error!(
                            "IRC registration failed: the server refuses the nicknames {:?}",
                            self.refused
                        );
                        sender.transport().lose_connection();
                    }
                }
            }
            "NICK" => {
                let new = p(0);
                if sender.is_me(nick) {
                    *sender.shared.nickname.borrow_mut() = new.to_owned();
                    h.nick_changed(irc, new);
                } else {
                    h.user_renamed(irc, nick, new);
                }
            }
            "JOIN" if sender.is_me(nick) => h.joined(irc, p(0)),
            "JOIN" => h.user_joined(irc, nick, p(0)),
            "PART" if sender.is_me(nick) => h.left(irc, p(0)),
            "PART" => h.user_left(irc, nick, p(0)),
            "QUIT" => h.user_quit(irc, nick, p(0)),
            "KICK" if sender.is_me(p(1)) => h.kicked_from(irc, p(0), nick, p(2)),
            "KICK" => h.user_kicked(irc, p(1), p(0), nick, p(2)),
            "TOPIC" => h.topic_updated(irc, nick, p(0), p(1)),
            // RPL_TOPIC: "<me> <channel> :<topic>", from the server.
            "332" => h.topic_updated(irc, nick, p(1), p(2)),
            "MODE" => {
                let args = m.params().get(2..).unwrap_or(&[]);
                h.mode_changed(irc, m.prefix.unwrap_or(""), p(0), p(1), args);
            }
            "PRIVMSG" => self.privmsg(sender, m),
            "NOTICE" => h.noticed(irc, m.prefix.unwrap_or(""), p(0), p(1)),
            "ERROR" => tracing::warn!("IRC server error: {}", p(0)),
            _ => h.irc_unknown(irc, m),
        }
    }

    /// A PRIVMSG: a message, or a CTCP query (`\x01TAG data\x01`).
    fn privmsg(&mut self, sender: &IrcSender, m: &Message<'_>) {
        let user = m.prefix.unwrap_or("");
        let channel = m.param(0).unwrap_or("");
        let text = m.param(1).unwrap_or("");
        let h = &mut self.handler;
        let irc = &mut Irc { sender };
        let Some(ctcp) = text
            .strip_prefix('\u{1}')
            .map(|s| s.strip_suffix('\u{1}').unwrap_or(s))
        else {
            h.privmsg(irc, user, channel, text);
            return;
        };
        let (tag, data) = ctcp.split_once(' ').unwrap_or((ctcp, ""));
        let to = nick_of(user);
        match tag {
            "ACTION" => h.action(irc, user, channel, data),
            "PING" => {
                if check_middle(to).is_ok() {
                    let data = data.replace('\u{1}', "");
                    irc.notice(to, &format!("\u{1}PING {data}\u{1}"));
                }
            }
            "VERSION" => {
                if let Some(v) = &self.config.version_name {
                    if check_middle(to).is_ok() {
                        irc.notice(to, &format!("\u{1}VERSION {v}\u{1}"));
                    }
                }
            }
            _ => h.ctcp_query(irc, user, channel, tag, data),
        }
    }
}

impl<H: IrcHandler> LineReceiver for Core<H> {
    fn delimiter(&self) -> &[u8] {
        b"\n"
    }

    fn max_length(&self) -> usize {
        MAX_LINE + MAX_TAGS + 1
    }

    fn connection_made(&mut self, transport: &mut LineTransport<'_>) {
        let config = &self.config;
        let throttle = config.line_rate.filter(|r| *r > 0.0).map(|rate| Throttle {
            rate,
            queue: VecDeque::new(),
            timer: None,
        });
        let clock = self
            .clock
            .clone()
            .unwrap_or_else(|| Rc::new(torsion::reactor()));
        let user = config.username.as_deref().unwrap_or(&config.nickname);
        let real = config.realname.as_deref().unwrap_or(&config.nickname);
        let sender = IrcSender {
            shared: Rc::new(Shared {
                transport: transport.transport().clone(),
                nickname: RefCell::new(config.nickname.clone()),
                registered: Cell::new(false),
                username: user.to_owned(),
                throttle: RefCell::new(throttle),
                last_heard: Cell::new(clock.seconds()),
                clock,
                heartbeat: RefCell::new(None),
            }),
        };
        if let Some(password) = &config.password {
            sender.command("PASS", &[], Some(password));
        }
        sender.set_nick(&config.nickname);
        sender.command("USER", &[user, "0", "*"], Some(real));
        self.handler.connection_made(&mut Irc { sender: &sender });
        self.sender = Some(sender);
    }

    fn line_received(&mut self, transport: &mut LineTransport<'_>, line: &[u8]) {
        let Some(sender) = self.sender.clone() else {
            return;
        };
        sender.shared.last_heard.set(sender.shared.clock.seconds());
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if text.is_empty() {
            return;
        }
        match Message::parse(text) {
            Ok(m) => self.dispatch(&sender, &m),
            Err(e) => {
                tracing::error!(
                    "{e} from {}: {text:?}; closing the connection",
                    transport.get_peer()
                );
                transport.lose_connection();
            }
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        if let Some(sender) = &self.sender {
            sender.shared.stop();
        }
        self.handler.connection_lost(reason);
    }

    fn drain(&mut self, _transport: &mut LineTransport<'_>) {
        // Past flood control: the stop does not wait for queued lines.
        if let Some(sender) = &self.sender {
            sender.shared.write_now("QUIT", &self.config.quit_message);
        }
    }
}

/// An IRC client connection: a [`Protocol`] that registers, keeps the connection alive and
/// calls its [`IrcHandler`] (Twisted's `IRCClient`).
pub struct IrcClient<H> {
    lines: Lines<Core<H>>,
}

impl<H: IrcHandler> IrcClient<H> {
    /// A client that registers as `config` says and reports to `handler`.
    pub fn new(config: IrcConfig, handler: H) -> IrcClient<H> {
        IrcClient {
            lines: Lines::new(Core {
                handler,
                config,
                nick_tries: 0,
                refused: Vec::new(),
                clock: None,
                sender: None,
            }),
        }
    }

    /// Times flood control and heartbeats with `clock` instead of the reactor (for tests,
    /// with [`Clock`](torsion::testing::Clock)). Call before the connection is made.
    pub fn set_clock(&mut self, clock: impl ReactorTime + 'static) {
        self.lines.handler_mut().clock = Some(Rc::new(clock));
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.lines.handler().handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.lines.handler_mut().handler
    }

    /// The connection's command side, once connected.
    pub fn sender(&self) -> Option<IrcSender> {
        self.lines.handler().sender.clone()
    }

    /// The client's current nickname.
    pub fn nickname(&self) -> String {
        let core = self.lines.handler();
        match &core.sender {
            Some(s) => s.nickname(),
            None => core.config.nickname.clone(),
        }
    }

    /// Whether registration is complete.
    pub fn is_registered(&self) -> bool {
        self.lines
            .handler()
            .sender
            .as_ref()
            .is_some_and(IrcSender::is_registered)
    }
}

impl<H: IrcHandler> Protocol for IrcClient<H> {
    fn connection_made(&mut self, transport: &Transport) {
        self.lines.connection_made(transport);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.lines.data_received(transport, data);
    }

    fn read_connection_lost(&mut self, transport: &Transport) {
        self.lines.read_connection_lost(transport);
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.lines.connection_lost(reason);
    }

    fn drain(&mut self, transport: &Transport) {
        self.lines.drain(transport);
    }
}
