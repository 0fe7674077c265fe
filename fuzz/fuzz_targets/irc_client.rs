//! Fuzzes the IRC client: any bytes from the server, in any chunks, never panic, and a bot
//! that repeats what it is told (as targets, channels, nicknames and text) never sends a line
//! that is not one well-formed IRC message of at most 512 bytes: nothing from the network
//! can smuggle a command through it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::testing::StringTransport;
use torsion::Protocol;
use torsion_words::irc::{Irc, IrcClient, IrcConfig, IrcHandler, Message, MAX_LINE};

/// Repeats every message it gets through every command, with the network's text.
struct Parrot;

impl IrcHandler for Parrot {
    fn privmsg(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
        irc.msg(channel, message);
        irc.msg(user, message);
        irc.say(message, user);
        irc.notice(irc.nick_of(user), message);
        irc.describe(channel, message);
        irc.join(message);
        irc.leave(channel, Some(message));
        irc.topic(channel, Some(message));
        irc.kick(channel, message, Some(message));
        irc.set_nick(message);
        irc.away(message);
        irc.send_line(message);
        irc.quit(message);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let st = StringTransport::new();
    let t = st.transport();
    let mut config = IrcConfig::new("bot");
    config.version_name = Some("fuzz".into());
    // No timers: they would pile up in the reactor across runs.
    config.heartbeat_interval = None;
    let mut client = IrcClient::new(config, Parrot);
    client.connection_made(&t);
    client.data_received(&t, b":irc.test 001 bot :Welcome\r\n");
    let cut = (split as usize).min(rest.len());
    client.data_received(&t, &rest[..cut]);
    client.data_received(&t, &rest[cut..]);
    let out = st.value();
    assert!(out.is_empty() || out.ends_with(b"\r\n"));
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("every line ends in CR LF");
        assert!(line.len() + 2 <= MAX_LINE, "{} bytes", line.len());
        assert!(!line.contains(&b'\r') && !line.contains(&0));
        let text = std::str::from_utf8(line).expect("UTF-8 out");
        Message::parse(text).expect("a well-formed message");
    }
});
