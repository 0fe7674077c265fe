//! [`IrcClient`]: the protocol that registers, keeps the connection alive and calls its
//! [`IrcHandler`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::reactor::ReactorTime;
use torsion::ConnectionEnd;
use torsion::{Protocol, Transport};

use super::config::IrcConfig;
use super::handler::IrcHandler;
use super::message::{check_middle, nick_of, same_name, Message, MAX_LINE, MAX_TAGS};
use super::sender::{Irc, IrcSender};
use super::shared::{Shared, Throttle};

/// How many nickname collisions registration tries its way past before it gives up.
const MAX_NICK_TRIES: u32 = 16;

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
                    tracing::error!(
                        target: "torsion_words::irc",
                        "IRC registration gave up: {MAX_NICK_TRIES} nicknames in use"
                    );
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
                            target: "torsion_words::irc",
                            "IRC server refuses the nickname {refused:?}; trying {next:?}"
                        );
                        sender.set_nick(&next);
                    }
                    None => {
                        tracing::error!(
                            target: "torsion_words::irc",
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
            "ERROR" => tracing::warn!(target: "torsion_words::irc", "IRC server error: {}", p(0)),
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
                    target: "torsion_words::irc",
                    "{e} from {}: {text:?}; closing the connection",
                    transport.get_peer()
                );
                transport.lose_connection();
            }
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
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

    fn write_connection_lost(&mut self, transport: &Transport) {
        self.lines.write_connection_lost(transport);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.lines.connection_lost(reason);
    }

    fn drain(&mut self, transport: &Transport) {
        self.lines.drain(transport);
    }
}
