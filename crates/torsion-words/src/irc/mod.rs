//! The IRC client protocol (Twisted's `IRCClient`): registration, nickname collisions,
//! PING/PONG, channels, messages, actions and CTCP, with flood control.
//!
//! Write an [`IrcHandler`] (override the callbacks you need; all have defaults) and wrap it
//! in an [`IrcClient`], which is a [`Protocol`]: connect it like any other, with
//! [`connect_tcp`](torsion::Reactor::connect_tcp) or a reconnecting factory. Each callback
//! gets an [`Irc`], the connection's command side (`join`, `say`, `msg`, `describe`, ...).
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
use std::cell::RefCell;
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

/// The channel prefixes [`Irc::say`] recognizes; a name without one gets `#`.
pub const CHANNEL_PREFIXES: &str = "&#!+";

/// Room kept for what a server puts in front of a line it relays (`:nick!user@host `), with
/// the longest host name DNS allows.
const HOST_ROOM: usize = 63;

/// How many nickname collisions registration tries its way past before it gives up.
const MAX_NICK_TRIES: u32 = 16;

/// Who the client is and how it behaves (Twisted's `IRCClient` attributes).
#[derive(Clone, Debug)]
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
    /// (Twisted's `erroneousNickFallback`).
    pub erroneous_nick_fallback: String,
    /// The message sent with QUIT when the connection is asked to drain (a graceful stop).
    pub quit_message: String,
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

    /// The client's own nickname changed (after [`Irc::set_nick`], or a collision).
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
    clock: Rc<dyn ReactorTime>,
    transport: Transport,
    queue: VecDeque<String>,
    /// The call that sends the next queued line; `None` when the last line went out more
    /// than `rate` seconds ago (the next line may go at once).
    timer: Option<DelayedCall>,
}

impl Throttle {
    /// Sends the next queued line, if any, and schedules the one after.
    fn send_next(this: &Rc<RefCell<Throttle>>) {
        let mut t = this.borrow_mut();
        match t.queue.pop_front() {
            Some(line) => {
                t.transport.write_sequence(&[line.as_bytes(), b"\r\n"]);
                let next = Rc::downgrade(this);
                let rate = t.rate;
                t.timer = Some(t.clock.call_later_boxed(
                    rate,
                    Box::new(move || {
                        if let Some(this) = next.upgrade() {
                            Throttle::send_next(&this);
                        }
                    }),
                ));
            }
            None => t.timer = None,
        }
    }
}

/// The connection's state besides the handler.
struct State {
    config: IrcConfig,
    /// The nickname the server knows us by (or the one being tried, before registration).
    nickname: String,
    registered: bool,
    nick_tries: u32,
    clock: Option<Rc<dyn ReactorTime>>,
    throttle: Option<Rc<RefCell<Throttle>>>,
}

/// The command side of an IRC connection, handed to each [`IrcHandler`] callback.
///
/// Commands with a target refuse a target that would break the line (empty, or holding a
/// space, CR, LF or NUL): they send nothing and log an error. Text is split at line breaks
/// and at the room a relayed line leaves, so any text can be passed.
pub struct Irc<'a> {
    transport: &'a Transport,
    state: &'a mut State,
}

impl Irc<'_> {
    /// The client's current nickname.
    pub fn nickname(&self) -> &str {
        &self.state.nickname
    }

    /// Whether `name` is the client's own nickname (IRC case folding): a private message
    /// has it as its channel.
    pub fn is_me(&self, name: &str) -> bool {
        same_name(name, &self.state.nickname)
    }

    /// The nickname in a `nick!user@host` prefix.
    pub fn nick_of<'s>(&self, prefix: &'s str) -> &'s str {
        nick_of(prefix)
    }

    /// Whether registration is complete (RPL_WELCOME came).
    pub fn is_registered(&self) -> bool {
        self.state.registered
    }

    /// The connection's transport (for its addresses, or to close it).
    pub fn transport(&self) -> &Transport {
        self.transport
    }

    /// Lines held back by flood control ([`IrcConfig::line_rate`]).
    pub fn queued_lines(&self) -> usize {
        self.state
            .throttle
            .as_ref()
            .map_or(0, |t| t.borrow().queue.len())
    }

    /// Sends one raw line (without its line ending), through flood control. A line holding
    /// a CR, LF or NUL is refused (logged, not sent).
    pub fn send_line(&mut self, line: &str) {
        if let Err(e) = message::check_trailing(line) {
            tracing::error!("IRC line not sent: {e}");
            return;
        }
        self.send_checked(line.to_owned());
    }

    /// Sends a line already built by [`build_line`].
    fn send_checked(&mut self, line: String) {
        match self.state.throttle.clone() {
            Some(throttle) => {
                let idle = {
                    let mut t = throttle.borrow_mut();
                    t.queue.push_back(line);
                    t.timer.is_none()
                };
                if idle {
                    Throttle::send_next(&throttle);
                }
            }
            None => self
                .transport
                .write_sequence(&[line.as_bytes(), b"\r\n"]),
        }
    }

    /// Builds and sends a command, or logs why it cannot.
    fn command(&mut self, command: &str, middle: &[&str], trailing: Option<&str>) {
        match build_line(command, middle, trailing) {
            Ok(line) => self.send_checked(line),
            Err(e) => tracing::error!("IRC {command} not sent: {e}"),
        }
    }

    /// Sends `text` to `target` with `command` (PRIVMSG or NOTICE), split to fit.
    fn text(&mut self, command: &str, target: &str, text: &str) {
        if let Err(e) = check_middle(target) {
            tracing::error!("IRC {command} not sent: {e}");
            return;
        }
        // What the server relays: ":nick!user@host COMMAND target :text\r\n".
        let user = self
            .state
            .config
            .username
            .as_deref()
            .unwrap_or(&self.state.config.nickname);
        let overhead = 1
            + self.state.nickname.len()
            + 1
            + user.len()
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
    pub fn join(&mut self, channel: &str) {
        self.command("JOIN", &[channel], None);
    }

    /// Joins `channel` with its key.
    pub fn join_with_key(&mut self, channel: &str, key: &str) {
        self.command("JOIN", &[channel, key], None);
    }

    /// Leaves `channel`, with an optional reason (Twisted's `leave`).
    pub fn leave(&mut self, channel: &str, reason: Option<&str>) {
        self.command("PART", &[channel], reason);
    }

    /// Sends `message` to a user or channel (Twisted's `msg`).
    pub fn msg(&mut self, target: &str, message: &str) {
        self.text("PRIVMSG", target, message);
    }

    /// Sends `message` to `channel`, adding `#` when the name has no channel prefix
    /// (Twisted's `say`).
    pub fn say(&mut self, channel: &str, message: &str) {
        let channel = with_channel_prefix(channel);
        self.text("PRIVMSG", &channel, message);
    }

    /// Sends a notice (which, by convention, nobody answers automatically).
    pub fn notice(&mut self, target: &str, message: &str) {
        self.text("NOTICE", target, message);
    }

    /// Sends a CTCP ACTION (`/me`), Twisted's `describe`.
    pub fn describe(&mut self, target: &str, action: &str) {
        let action: String = action
            .chars()
            .map(|c| if matches!(c, '\r' | '\n') { ' ' } else { c })
            .filter(|&c| c != '\0' && c != '\u{1}')
            .collect();
        self.text("PRIVMSG", target, &format!("\u{1}ACTION {action}\u{1}"));
    }

    /// Asks for a new nickname ([`IrcHandler::nick_changed`] follows when the server agrees).
    pub fn set_nick(&mut self, nickname: &str) {
        if !self.state.registered {
            self.state.nickname = nickname.to_owned();
        }
        self.command("NICK", &[nickname], None);
    }

    /// Sets (`Some`) or asks for (`None`) the topic of `channel`.
    pub fn topic(&mut self, channel: &str, topic: Option<&str>) {
        self.command("TOPIC", &[channel], topic);
    }

    /// Kicks `user` out of `channel`.
    pub fn kick(&mut self, channel: &str, user: &str, reason: Option<&str>) {
        self.command("KICK", &[channel, user], reason);
    }

    /// Marks the client away with `message`.
    pub fn away(&mut self, message: &str) {
        self.command("AWAY", &[], Some(message));
    }

    /// Marks the client back.
    pub fn back(&mut self) {
        self.command("AWAY", &[], None);
    }

    /// Leaves IRC with `message`; the server then closes the connection.
    pub fn quit(&mut self, message: &str) {
        self.command("QUIT", &[], Some(message));
    }
}

/// `channel` with `#` in front unless it starts with a channel prefix.
fn with_channel_prefix(channel: &str) -> Cow<'_, str> {
    match channel.chars().next() {
        Some(c) if CHANNEL_PREFIXES.contains(c) => Cow::Borrowed(channel),
        _ => Cow::Owned(format!("#{channel}")),
    }
}

/// The line receiver behind [`IrcClient`].
struct Core<H> {
    handler: H,
    state: State,
}

impl<H: IrcHandler> Core<H> {
    fn irc<'a>(state: &'a mut State, transport: &'a Transport) -> Irc<'a> {
        Irc { transport, state }
    }

    /// Handles one parsed message.
    fn dispatch(&mut self, t: &Transport, m: &Message<'_>) {
        let h = &mut self.handler;
        let nick = m.nick().unwrap_or("");
        let p = |i: usize| m.param(i).unwrap_or("");
        match m.command {
            "PING" => {
                // At once, past flood control: a late PONG costs the connection.
                match build_line("PONG", &[], Some(m.last().unwrap_or(""))) {
                    Ok(line) => t.write_sequence(&[line.as_bytes(), b"\r\n"]),
                    Err(e) => tracing::warn!("IRC PONG not sent: {e}"),
                }
            }
            "001" => {
                self.state.registered = true;
                if let Some(me) = m.param(0).filter(|n| !n.is_empty()) {
                    self.state.nickname = me.to_owned();
                }
                h.signed_on(&mut Core::<H>::irc(&mut self.state, t));
            }
            "433" => {
                // ERR_NICKNAMEINUSE: during registration, try another; later, the change
                // simply did not happen.
                if !self.state.registered {
                    self.state.nick_tries += 1;
                    if self.state.nick_tries > MAX_NICK_TRIES {
                        tracing::error!(
                            "IRC registration gave up: {MAX_NICK_TRIES} nicknames in use"
                        );
                        t.lose_connection();
                        return;
                    }
                    let next = h.alter_collided_nick(&self.state.nickname);
                    Core::<H>::irc(&mut self.state, t).set_nick(&next);
                } else {
                    h.irc_unknown(&mut Core::<H>::irc(&mut self.state, t), m);
                }
            }
            "432" if !self.state.registered => {
                // ERR_ERRONEUSNICKNAME: fall back once, then give up.
                let fallback = self.state.config.erroneous_nick_fallback.clone();
                if same_name(&self.state.nickname, &fallback) {
                    tracing::error!(
                        "IRC registration failed: the server refuses the nickname {fallback:?}"
                    );
                    t.lose_connection();
                } else {
                    Core::<H>::irc(&mut self.state, t).set_nick(&fallback);
                }
            }
            "NICK" => {
                let new = p(0);
                let mut irc = Core::<H>::irc(&mut self.state, t);
                if irc.is_me(nick) {
                    irc.state.nickname = new.to_owned();
                    h.nick_changed(&mut irc, new);
                } else {
                    h.user_renamed(&mut irc, nick, new);
                }
            }
            "JOIN" => {
                let mut irc = Core::<H>::irc(&mut self.state, t);
                if irc.is_me(nick) {
                    h.joined(&mut irc, p(0));
                } else {
                    h.user_joined(&mut irc, nick, p(0));
                }
            }
            "PART" => {
                let mut irc = Core::<H>::irc(&mut self.state, t);
                if irc.is_me(nick) {
                    h.left(&mut irc, p(0));
                } else {
                    h.user_left(&mut irc, nick, p(0));
                }
            }
            "QUIT" => {
                h.user_quit(&mut Core::<H>::irc(&mut self.state, t), nick, p(0));
            }
            "KICK" => {
                let mut irc = Core::<H>::irc(&mut self.state, t);
                let (channel, kicked, message) = (p(0), p(1), p(2));
                if irc.is_me(kicked) {
                    h.kicked_from(&mut irc, channel, nick, message);
                } else {
                    h.user_kicked(&mut irc, kicked, channel, nick, message);
                }
            }
            "TOPIC" => {
                h.topic_updated(&mut Core::<H>::irc(&mut self.state, t), nick, p(0), p(1));
            }
            "332" => {
                // RPL_TOPIC: "<me> <channel> :<topic>", from the server.
                h.topic_updated(&mut Core::<H>::irc(&mut self.state, t), nick, p(1), p(2));
            }
            "MODE" => {
                let args = m.params().get(2..).unwrap_or(&[]);
                let mut irc = Core::<H>::irc(&mut self.state, t);
                h.mode_changed(&mut irc, m.prefix.unwrap_or(""), p(0), p(1), args);
            }
            "PRIVMSG" => self.privmsg(t, m),
            "NOTICE" => {
                let user = m.prefix.unwrap_or("");
                h.noticed(&mut Core::<H>::irc(&mut self.state, t), user, p(0), p(1));
            }
            "ERROR" => {
                tracing::warn!("IRC server error: {}", p(0));
            }
            _ => h.irc_unknown(&mut Core::<H>::irc(&mut self.state, t), m),
        }
    }

    /// A PRIVMSG: a message, or a CTCP query (`\x01TAG data\x01`).
    fn privmsg(&mut self, t: &Transport, m: &Message<'_>) {
        let user = m.prefix.unwrap_or("");
        let channel = m.param(0).unwrap_or("");
        let text = m.param(1).unwrap_or("");
        let h = &mut self.handler;
        let mut irc = Core::<H>::irc(&mut self.state, t);
        let Some(ctcp) = text
            .strip_prefix('\u{1}')
            .map(|s| s.strip_suffix('\u{1}').unwrap_or(s))
        else {
            h.privmsg(&mut irc, user, channel, text);
            return;
        };
        let (tag, data) = ctcp.split_once(' ').unwrap_or((ctcp, ""));
        let to = nick_of(user);
        match tag {
            "ACTION" => h.action(&mut irc, user, channel, data),
            "PING" => {
                if check_middle(to).is_ok() {
                    let data = data.replace('\u{1}', "");
                    irc.notice(to, &format!("\u{1}PING {data}\u{1}"));
                }
            }
            "VERSION" => {
                if let Some(v) = irc.state.config.version_name.clone() {
                    if check_middle(to).is_ok() {
                        irc.notice(to, &format!("\u{1}VERSION {v}\u{1}"));
                    }
                }
            }
            _ => h.ctcp_query(&mut irc, user, channel, tag, data),
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
        let t = transport.transport().clone();
        if let Some(rate) = self.state.config.line_rate.filter(|r| *r > 0.0) {
            let clock = self
                .state
                .clock
                .clone()
                .unwrap_or_else(|| Rc::new(torsion::reactor()));
            self.state.throttle = Some(Rc::new(RefCell::new(Throttle {
                rate,
                clock,
                transport: t.clone(),
                queue: VecDeque::new(),
                timer: None,
            })));
        }
        let config = self.state.config.clone();
        let user = config.username.as_deref().unwrap_or(&config.nickname);
        let real = config.realname.as_deref().unwrap_or(&config.nickname);
        let mut irc = Core::<H>::irc(&mut self.state, &t);
        if let Some(password) = &config.password {
            irc.command("PASS", &[], Some(password));
        }
        irc.set_nick(&config.nickname);
        irc.command("USER", &[user, "0", "*"], Some(real));
    }

    fn line_received(&mut self, transport: &mut LineTransport<'_>, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if text.is_empty() {
            return;
        }
        let t = transport.transport().clone();
        match Message::parse(text) {
            Ok(m) => self.dispatch(&t, &m),
            Err(e) => {
                tracing::error!("{e} from {}: {text:?}; closing the connection", t.get_peer());
                t.lose_connection();
            }
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        if let Some(throttle) = self.state.throttle.take() {
            let mut th = throttle.borrow_mut();
            th.queue.clear();
            if let Some(timer) = th.timer.take() {
                let _ = timer.cancel();
            }
        }
        self.handler.connection_lost(reason);
    }

    fn drain(&mut self, transport: &mut LineTransport<'_>) {
        let t = transport.transport().clone();
        let message = self.state.config.quit_message.clone();
        // Past flood control: the stop does not wait for queued lines.
        match build_line("QUIT", &[], Some(&message)) {
            Ok(line) => t.write_sequence(&[line.as_bytes(), b"\r\n"]),
            Err(_) => t.write(b"QUIT\r\n"),
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
        let nickname = config.nickname.clone();
        IrcClient {
            lines: Lines::new(Core {
                handler,
                state: State {
                    config,
                    nickname,
                    registered: false,
                    nick_tries: 0,
                    clock: None,
                    throttle: None,
                },
            }),
        }
    }

    /// Times flood control with `clock` instead of the reactor (for tests, with
    /// [`Clock`](torsion::testing::Clock)). Call before the connection is made.
    pub fn set_clock(&mut self, clock: impl ReactorTime + 'static) {
        self.lines.handler_mut().state.clock = Some(Rc::new(clock));
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.lines.handler().handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.lines.handler_mut().handler
    }

    /// The client's current nickname.
    pub fn nickname(&self) -> &str {
        &self.lines.handler().state.nickname
    }

    /// Whether registration is complete.
    pub fn is_registered(&self) -> bool {
        self.lines.handler().state.registered
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
