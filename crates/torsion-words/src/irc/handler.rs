//! [`IrcHandler`]: the callbacks an IRC client calls when things happen.

use torsion::ConnectionEnd;

use super::message::Message;
use super::sender::Irc;

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
    ///
    /// [`IrcSender::set_nick`]: super::IrcSender::set_nick
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
    fn connection_lost(&mut self, reason: ConnectionEnd) {}
}
