//! Twisted's LogBot (`ircLogBot.py`), "an IRC bot in ten minutes": the bot joins a
//! channel and logs what is said there, with a timestamp on each line, to a file (or to
//! standard output). Say "<botnick>: anything" and it answers; whisper to it and it scolds
//! you. When the connection drops, it reconnects, waiting a little longer each time.
//!
//! ```text
//! cargo run --release --example irc_bot -- --host 127.0.0.1 --port 6667 --nick logbot --channel '#torsion' --log bot.log
//! ```
//!
//! From the seed 003.
use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use torsion::protocols::policies::ReconnectingClientFactory;
use torsion::words::irc::{nick_of, Irc, IrcClient, IrcConfig, IrcHandler};
use torsion::{factory, reactor, ConnectionEnd, Failure};
use torsion_examples::{init_logging, startup_error};

/// An IRC bot logging a channel (Twisted's ircLogBot.py).
#[derive(Parser)]
struct Cli {
    /// The IRC server's host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The IRC server's TCP port.
    #[arg(long, default_value_t = 6667)]
    port: u16,
    /// The bot's nickname.
    #[arg(long, default_value = "logbot")]
    nick: String,
    /// The channel to join and log.
    #[arg(long, default_value = "#torsion")]
    channel: String,
    /// The file to append the log to (default: standard output).
    #[arg(long)]
    log: Option<PathBuf>,
}

/// Writes lines to a file (or standard output), each with the time (UTC) in front, flushed
/// at once so that `tail -f` shows them as they come.
struct MessageLogger(RefCell<Box<dyn Write>>);

impl MessageLogger {
    /// Writes `message` as one line: `[HH:MM:SS] message`.
    fn log(&self, message: &str) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        let secs = now.map_or(0, |d| d.as_secs()) % 86_400;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let mut out = self.0.borrow_mut();
        let written = writeln!(out, "[{h:02}:{m:02}:{s:02}] {message}").and_then(|()| out.flush());
        if let Err(e) = written {
            eprintln!("error: cannot write the log: {e}");
        }
    }
}

/// A logging IRC bot: one per connection, all writing to the same log.
struct LogBot {
    /// The channel to join once signed on.
    channel: String,
    /// The log, shared with the bots of later connections.
    logger: Rc<MessageLogger>,
}

impl IrcHandler for LogBot {
    fn connection_made(&mut self, _irc: &mut Irc<'_>) {
        self.logger.log("[connected]");
    }

    fn signed_on(&mut self, irc: &mut Irc<'_>) {
        println!("signed on as {}", irc.nickname());
        irc.join(&self.channel);
    }

    fn joined(&mut self, _irc: &mut Irc<'_>, channel: &str) {
        self.logger.log(&format!("[I have joined {channel}]"));
    }

    fn privmsg(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
        let user = nick_of(user);
        self.logger.log(&format!("<{user}> {message}"));
        if irc.is_me(channel) {
            // A private message: the channel is our own nickname, so answer the sender.
            irc.msg(user, "It isn't nice to whisper!  Play nice with the group.");
        } else if message.starts_with(&format!("{}:", irc.nickname())) {
            // Someone is talking to us in the channel.
            let reply = format!("{user}: I am a log bot");
            irc.msg(channel, &reply);
            self.logger.log(&format!("<{}> {reply}", irc.nickname()));
        }
    }

    fn action(&mut self, _irc: &mut Irc<'_>, user: &str, _channel: &str, data: &str) {
        self.logger.log(&format!("* {} {data}", nick_of(user)));
    }

    fn user_renamed(&mut self, _irc: &mut Irc<'_>, old: &str, new: &str) {
        self.logger.log(&format!("{old} is now known as {new}"));
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.logger.log("[disconnected]");
    }
}

/// Reads the command line, opens the log, and connects (and reconnects) the bot.
fn main() -> Result<(), Failure> {
    let Cli {
        host,
        port,
        nick,
        channel,
        log,
    } = Cli::parse();
    init_logging();
    let out: Box<dyn Write> = match log {
        None => Box::new(std::io::stdout()),
        Some(path) => match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(file) => Box::new(file),
            Err(e) => {
                return Err(startup_error(format!(
                    "cannot open the log {}: {e}",
                    path.display()
                )))
            }
        },
    };
    let logger = Rc::new(MessageLogger(RefCell::new(out)));

    // The factory makes a bot each time a connection is made; the reconnecting factory
    // around it connects again, with growing delays, whenever the connection fails or ends.
    let bots = factory(move || {
        let bot = LogBot {
            channel: channel.clone(),
            logger: logger.clone(),
        };
        IrcClient::new(IrcConfig::new(&nick), bot)
    });
    let reconnecting = ReconnectingClientFactory::new(bots);
    // A server can take the connection and then refuse the bot (a nickname it will not
    // have): back off unless a connection lasted a minute.
    reconnecting.set_reset_after(Some(60.0));
    reactor().connect_tcp(&host, port, reconnecting);
    reactor().run()
}
