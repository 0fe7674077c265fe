//! The command side of an IRC connection: [`IrcSender`], the handle that sends commands,
//! and [`Irc`], the view of it a callback gets.

use std::borrow::Cow;
use std::rc::Rc;

use torsion::Transport;

use super::message::{
    self, build_line, check_middle, nick_of, same_name, split_text, Message, MAX_LINE,
};
use super::shared::Shared;

/// The channel prefixes [`IrcSender::say`] recognizes; a name without one gets `#`.
pub const CHANNEL_PREFIXES: &str = "&#!+";

/// Room kept for what a server puts in front of a line it relays (`:nick!user@host `), with
/// the longest host name DNS allows.
const HOST_ROOM: usize = 63;

/// The command side of an IRC connection: a cheap handle (clone it freely) to send
/// commands from anywhere, a timer or another connection as well as a callback (Twisted code
/// keeps the protocol instance for this). Every [`IrcHandler`] callback gets one as an
/// [`Irc`]; [`Irc::sender`] or [`IrcClient::sender`] hands out a handle to keep.
///
/// Commands with a target refuse a target that would break the line (empty, or holding a
/// space, CR, LF or NUL): they send nothing and log an error. Text is split at line breaks
/// and at the room a relayed line leaves, so any text can be passed. After the connection is
/// gone, commands do nothing.
///
/// [`IrcHandler`]: super::IrcHandler
/// [`IrcClient::sender`]: super::IrcClient::sender
#[derive(Clone)]
pub struct IrcSender {
    pub(super) shared: Rc<Shared>,
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
    ///
    /// [`IrcConfig::line_rate`]: super::IrcConfig::line_rate
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
            Err(e) => tracing::error!(target: "torsion_words::irc", "IRC line not sent: {e}"),
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
    pub(super) fn command(&self, command: &str, middle: &[&str], trailing: Option<&str>) {
        match build_line(command, middle, trailing) {
            Ok(line) => self.send_checked(line),
            Err(e) => tracing::error!(target: "torsion_words::irc", "IRC {command} not sent: {e}"),
        }
    }

    /// Sends `text` to `target` with `command` (PRIVMSG or NOTICE), split to fit.
    fn text(&self, command: &str, target: &str, text: &str) {
        if let Err(e) = check_middle(target) {
            tracing::error!(target: "torsion_words::irc", "IRC {command} not sent: {e}");
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
    ///
    /// [`IrcHandler::nick_changed`]: super::IrcHandler::nick_changed
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
///
/// [`IrcHandler`]: super::IrcHandler
pub struct Irc<'a> {
    pub(super) sender: &'a IrcSender,
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
