//! The IRC client against a real IRC server nobody here wrote: ngIRCd, started by the test on
//! a free loopback port (installed with apt-get when missing). Torsion clients register,
//! collide, join, talk, act, answer CTCP, split long text, rename, part and quit through it.

use std::cell::RefCell;
use std::rc::Rc;

use crate::support::ngircd::{Ngircd, CHANNEL, TOPIC};
use torsion::defer::DeferredQueue;
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure};
use torsion_words::irc::{nick_of, Irc, IrcClient, IrcConfig, IrcHandler, IrcSender};

/// What one client saw, as lines of text; and its command side once signed on.
#[derive(Clone, Default)]
struct Seen {
    events: DeferredQueue<String>,
    sender: Rc<RefCell<Option<IrcSender>>>,
}

impl Seen {
    fn push(&self, event: String) {
        eprintln!("{event}");
        let _ = self.events.put(event);
    }

    /// Waits for `want`; the events before it are returned.
    async fn until(&self, want: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let event = self
                .events
                .get()
                .expect("one reader")
                .await
                .expect("an event");
            if event == want {
                return before;
            }
            before.push(event);
        }
    }

    fn sender(&self) -> IrcSender {
        self.sender.borrow().clone().expect("signed on")
    }
}

/// Records what happens and answers "<its nick>: ping" with "<sender>: pong".
struct Peer {
    seen: Seen,
}

impl IrcHandler for Peer {
    fn signed_on(&mut self, irc: &mut Irc<'_>) {
        *self.seen.sender.borrow_mut() = Some(irc.sender());
        self.seen.push(format!("signed_on {}", irc.nickname()));
    }
    fn joined(&mut self, _irc: &mut Irc<'_>, channel: &str) {
        self.seen.push(format!("joined {channel}"));
    }
    fn topic_updated(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str, topic: &str) {
        self.seen
            .push(format!("topic_updated {nick} {channel} {topic}"));
    }
    fn user_joined(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str) {
        self.seen.push(format!("user_joined {nick} {channel}"));
    }
    fn privmsg(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
        let from = nick_of(user);
        self.seen
            .push(format!("privmsg {from} {channel} {message}"));
        if message == format!("{}: ping", irc.nickname()) {
            irc.say(channel, &format!("{from}: pong"));
        }
    }
    fn action(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, data: &str) {
        self.seen
            .push(format!("action {} {channel} {data}", nick_of(user)));
    }
    fn noticed(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
        self.seen
            .push(format!("noticed {} {channel} {message}", nick_of(user)));
    }
    fn user_renamed(&mut self, _irc: &mut Irc<'_>, old: &str, new: &str) {
        self.seen.push(format!("user_renamed {old} {new}"));
    }
    fn nick_changed(&mut self, _irc: &mut Irc<'_>, nick: &str) {
        self.seen.push(format!("nick_changed {nick}"));
    }
    fn user_left(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str) {
        self.seen.push(format!("user_left {nick} {channel}"));
    }
    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.seen.push("lost".to_owned());
    }
}

/// Connects a client registering as `config` says.
fn connect(server: &Ngircd, config: IrcConfig) -> Seen {
    let seen = Seen::default();
    let s = seen.clone();
    reactor().connect_tcp(
        "127.0.0.1",
        server.port,
        factory(move || IrcClient::new(config.clone(), Peer { seen: s.clone() })),
    );
    seen
}

/// Quits and waits for the connection to end.
async fn quit(seen: &Seen) {
    seen.sender().quit("done");
    seen.until("lost").await;
}

#[torsion::test(timeout = 60)]
async fn two_clients_talk_through_ngircd() -> Result<(), Failure> {
    let server = Ngircd::start();
    let mut config = IrcConfig::new("alice");
    config.version_name = Some("torsion-words test".into());
    let alice = connect(&server, config);
    let bob = connect(&server, IrcConfig::new("bob"));
    alice.until("signed_on alice").await;
    bob.until("signed_on bob").await;

    alice.sender().join(CHANNEL);
    alice.until(&format!("joined {CHANNEL}")).await;
    alice
        .until(&format!("topic_updated irc.torsion.test {CHANNEL} {TOPIC}"))
        .await;
    bob.sender().join(CHANNEL);
    bob.until(&format!("joined {CHANNEL}")).await;
    alice.until(&format!("user_joined bob {CHANNEL}")).await;

    // A message, and the answer it gets.
    bob.sender().say(CHANNEL, "alice: ping");
    alice
        .until(&format!("privmsg bob {CHANNEL} alice: ping"))
        .await;
    bob.until(&format!("privmsg alice {CHANNEL} bob: pong"))
        .await;

    // An action, a private message, a CTCP VERSION answered by notice.
    alice.sender().describe(CHANNEL, "waves");
    bob.until(&format!("action alice {CHANNEL} waves")).await;
    bob.sender().msg("alice", "psst");
    alice.until("privmsg bob alice psst").await;
    bob.sender().msg("alice", "\u{1}VERSION\u{1}");
    bob.until("noticed alice bob \u{1}VERSION torsion-words test\u{1}")
        .await;

    // Text longer than a line arrives whole, in pieces the server accepted.
    let long: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    let long = long.join(" ");
    alice.sender().say(CHANNEL, &long);
    let mut got = Vec::new();
    while got.join(" ") != long {
        let event = bob.events.get().expect("one reader").await?;
        let prefix = format!("privmsg alice {CHANNEL} ");
        let piece = event
            .strip_prefix(&prefix)
            .expect("a piece of the long text");
        got.push(piece.to_owned());
        assert!(got.join(" ").len() <= long.len(), "{got:?}");
    }
    assert!(got.len() >= 3, "{} pieces", got.len());

    // A rename, seen from both sides; then bob leaves and both quit.
    bob.sender().set_nick("bobby");
    bob.until("nick_changed bobby").await;
    alice.until("user_renamed bob bobby").await;
    bob.sender().leave(CHANNEL, Some("bye"));
    alice.until(&format!("user_left bobby {CHANNEL}")).await;
    quit(&bob).await;
    quit(&alice).await;
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn a_taken_nickname_is_altered_on_a_real_server() -> Result<(), Failure> {
    let server = Ngircd::start();
    let first = connect(&server, IrcConfig::new("carol"));
    first.until("signed_on carol").await;
    let second = connect(&server, IrcConfig::new("carol"));
    second.until("signed_on carol_").await;
    quit(&second).await;
    quit(&first).await;
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn flood_control_delivers_every_line_in_order() -> Result<(), Failure> {
    let server = Ngircd::start();
    let mut config = IrcConfig::new("dave");
    config.line_rate = Some(0.02);
    let dave = connect(&server, config);
    let erin = connect(&server, IrcConfig::new("erin"));
    dave.until("signed_on dave").await;
    erin.until("signed_on erin").await;
    for i in 0..10 {
        dave.sender().msg("erin", &format!("line {i}"));
    }
    assert!(
        dave.sender().queued_lines() > 0,
        "flood control held lines back"
    );
    for i in 0..10 {
        let event = erin.events.get().expect("one reader").await?;
        assert_eq!(event, format!("privmsg dave erin line {i}"));
    }
    quit(&erin).await;
    quit(&dave).await;
    Ok(())
}
