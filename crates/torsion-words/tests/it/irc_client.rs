//! The IRC client against scripted server lines (a `StringTransport`, a test `Clock`):
//! registration, collisions, events, CTCP, flood control, splitting, and bad input.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::testing::{Clock, StringTransport};
use torsion::ConnectionEnd;
use torsion::{Protocol, Transport};
use torsion_words::irc::{Irc, IrcClient, IrcConfig, IrcHandler, Message, MAX_LINE};

type Log = Rc<RefCell<Vec<String>>>;

/// Records every callback as a line of text.
struct Recorder {
    log: Log,
}

impl Recorder {
    fn push(&self, s: String) {
        self.log.borrow_mut().push(s);
    }
}

impl IrcHandler for Recorder {
    fn connection_made(&mut self, irc: &mut Irc<'_>) {
        self.push(format!("connection_made {}", irc.nickname()));
    }
    fn signed_on(&mut self, irc: &mut Irc<'_>) {
        self.push(format!("signed_on {}", irc.nickname()));
    }
    fn joined(&mut self, _irc: &mut Irc<'_>, channel: &str) {
        self.push(format!("joined {channel}"));
    }
    fn left(&mut self, _irc: &mut Irc<'_>, channel: &str) {
        self.push(format!("left {channel}"));
    }
    fn privmsg(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
        self.push(format!("privmsg {user} {channel} {message}"));
    }
    fn action(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, data: &str) {
        self.push(format!("action {user} {channel} {data}"));
    }
    fn noticed(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
        self.push(format!("noticed {user} {channel} {message}"));
    }
    fn ctcp_query(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, tag: &str, data: &str) {
        self.push(format!("ctcp {user} {channel} {tag} {data}"));
    }
    fn user_joined(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str) {
        self.push(format!("user_joined {nick} {channel}"));
    }
    fn user_left(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str) {
        self.push(format!("user_left {nick} {channel}"));
    }
    fn user_quit(&mut self, _irc: &mut Irc<'_>, nick: &str, message: &str) {
        self.push(format!("user_quit {nick} {message}"));
    }
    fn user_kicked(&mut self, _: &mut Irc<'_>, kickee: &str, channel: &str, kicker: &str, m: &str) {
        self.push(format!("user_kicked {kickee} {channel} {kicker} {m}"));
    }
    fn kicked_from(&mut self, _irc: &mut Irc<'_>, channel: &str, kicker: &str, message: &str) {
        self.push(format!("kicked_from {channel} {kicker} {message}"));
    }
    fn user_renamed(&mut self, _irc: &mut Irc<'_>, old: &str, new: &str) {
        self.push(format!("user_renamed {old} {new}"));
    }
    fn nick_changed(&mut self, _irc: &mut Irc<'_>, nick: &str) {
        self.push(format!("nick_changed {nick}"));
    }
    fn topic_updated(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str, topic: &str) {
        self.push(format!("topic_updated {nick} {channel} {topic}"));
    }
    fn mode_changed(
        &mut self,
        _: &mut Irc<'_>,
        user: &str,
        target: &str,
        modes: &str,
        args: &[&str],
    ) {
        self.push(format!("mode_changed {user} {target} {modes} {args:?}"));
    }
    fn irc_unknown(&mut self, _irc: &mut Irc<'_>, message: &Message<'_>) {
        self.push(format!(
            "unknown {} {:?}",
            message.command,
            message.params()
        ));
    }
    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.push("connection_lost".to_owned());
    }
}

/// A client on a string transport, connected; what it sent at connection is discarded.
struct Rig {
    st: StringTransport,
    t: Transport,
    client: IrcClient<Recorder>,
    log: Log,
    clock: Clock,
}

impl Rig {
    fn new(config: IrcConfig) -> Rig {
        Rig::with(config, &Clock::new())
    }

    fn with(config: IrcConfig, clock: &Clock) -> Rig {
        let log = Log::default();
        let st = StringTransport::new();
        let t = st.transport();
        let mut client = IrcClient::new(config, Recorder { log: log.clone() });
        client.set_clock(clock.clone());
        client.connection_made(&t);
        Rig {
            st,
            t,
            client,
            log,
            clock: clock.clone(),
        }
    }

    /// A connected client that has also received RPL_WELCOME; output and log cleared.
    fn signed_on(nick: &str) -> Rig {
        let mut rig = Rig::new(IrcConfig::new(nick));
        rig.feed(&format!(":irc.test 001 {nick} :Welcome\r\n"));
        rig.sent();
        rig.log.borrow_mut().clear();
        rig
    }

    fn feed(&mut self, data: &str) {
        self.client.data_received(&self.t, data.as_bytes());
    }

    /// The lines sent since the last call.
    fn sent(&self) -> Vec<String> {
        String::from_utf8(self.st.take())
            .unwrap()
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect()
    }

    fn events(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.borrow_mut())
    }
}

#[test]
fn registers_with_pass_nick_and_user() {
    let mut config = IrcConfig::new("bot");
    config.password = Some("sesame".into());
    config.username = Some("torsion".into());
    config.realname = Some("Torsion Bot".into());
    let rig = Rig::new(config);
    assert_eq!(
        rig.sent(),
        ["PASS :sesame", "NICK bot", "USER torsion 0 * :Torsion Bot"]
    );
    assert!(!rig.client.is_registered());
}

#[test]
fn welcome_signs_on_with_the_nickname_the_server_gives() {
    let mut rig = Rig::new(IrcConfig::new("bot"));
    rig.sent();
    rig.feed(":irc.test 001 Bot :Welcome to IRC\r\n");
    assert_eq!(rig.events(), ["connection_made bot", "signed_on Bot"]);
    assert!(rig.client.is_registered());
    assert_eq!(rig.client.nickname(), "Bot");
}

#[test]
fn a_taken_nickname_is_altered_until_one_is_free() {
    let mut rig = Rig::new(IrcConfig::new("bot"));
    rig.sent();
    rig.feed(":irc.test 433 * bot :Nickname already in use\r\n");
    assert_eq!(rig.sent(), ["NICK bot_"]);
    rig.feed(":irc.test 433 * bot_ :Nickname already in use\r\n");
    assert_eq!(rig.sent(), ["NICK bot__"]);
    rig.feed(":irc.test 001 bot__ :Welcome\r\n");
    assert_eq!(rig.events(), ["connection_made bot", "signed_on bot__"]);
}

#[test]
fn registration_gives_up_after_sixteen_collisions() {
    let mut rig = Rig::new(IrcConfig::new("bot"));
    for _ in 0..16 {
        rig.feed(":irc.test 433 * x :Nickname already in use\r\n");
    }
    assert!(!rig.st.disconnecting());
    rig.feed(":irc.test 433 * x :Nickname already in use\r\n");
    assert!(rig.st.disconnecting());
}

#[test]
fn a_collision_after_registration_is_just_reported() {
    let mut rig = Rig::signed_on("bot");
    rig.feed(":irc.test 433 bot alice :Nickname already in use\r\n");
    assert!(rig.sent().is_empty());
    assert_eq!(rig.events().len(), 1);
}

#[test]
fn an_erroneous_nickname_is_cut_to_nine_then_falls_back_then_gives_up() {
    let mut rig = Rig::new(IrcConfig::new("torsion@bot"));
    rig.sent();
    let refuse = |rig: &mut Rig, nick: &str| {
        rig.feed(&format!(":irc.test 432 * {nick} :Erroneous nickname\r\n"));
    };
    refuse(&mut rig, "torsion@bot");
    assert_eq!(rig.sent(), ["NICK torsion@b"]);
    refuse(&mut rig, "torsion@b");
    assert_eq!(rig.sent(), ["NICK defaultnick"]);
    refuse(&mut rig, "defaultnick");
    assert_eq!(rig.sent(), ["NICK defaultni"]);
    assert!(!rig.st.disconnecting());
    refuse(&mut rig, "defaultni");
    assert!(rig.sent().is_empty());
    assert!(rig.st.disconnecting());
}

#[test]
fn a_nickname_too_long_for_the_server_is_cut_to_nine() {
    let mut rig = Rig::new(IrcConfig::new("torsionbot"));
    rig.sent();
    rig.feed(":irc.test 432 * torsionbot :Erroneous nickname\r\n");
    assert_eq!(rig.sent(), ["NICK torsionbo"]);
    rig.feed(":irc.test 001 torsionbo :Welcome\r\n");
    assert_eq!(
        rig.events(),
        ["connection_made torsionbot", "signed_on torsionbo"]
    );
}

#[test]
fn ping_is_answered_at_once_even_under_flood_control() {
    let clock = Clock::new();
    let mut config = IrcConfig::new("bot");
    config.line_rate = Some(2.0);
    let mut rig = Rig::with(config, &clock);
    // Registration: NICK went out, USER waits for its turn.
    assert_eq!(rig.sent(), ["NICK bot"]);
    rig.feed("PING :irc.test\r\n");
    assert_eq!(rig.sent(), ["PONG :irc.test"]);
    clock.advance(2.0);
    assert_eq!(rig.sent(), ["USER bot 0 * :bot"]);
}

#[test]
fn flood_control_sends_one_line_per_line_rate() {
    let clock = Clock::new();
    let mut config = IrcConfig::new("bot");
    config.line_rate = Some(1.0);
    let mut rig = Rig::with(config, &clock);
    clock.advance(1.0); // USER
    clock.advance(1.0); // the queue is empty again
    rig.feed(":irc.test 001 bot :Welcome\r\n");
    rig.sent();
    // Three answers at once: the first goes now, then one per second.
    rig.feed(":alice!a@h PRIVMSG bot :\u{1}PING 1\u{1}\r\n");
    rig.feed(":alice!a@h PRIVMSG bot :\u{1}PING 2\u{1}\r\n");
    rig.feed(":alice!a@h PRIVMSG bot :\u{1}PING 3\u{1}\r\n");
    assert_eq!(rig.sent(), ["NOTICE alice :\u{1}PING 1\u{1}"]);
    clock.advance(0.5);
    assert!(rig.sent().is_empty());
    clock.advance(0.5);
    assert_eq!(rig.sent(), ["NOTICE alice :\u{1}PING 2\u{1}"]);
    clock.advance(1.0);
    assert_eq!(rig.sent(), ["NOTICE alice :\u{1}PING 3\u{1}"]);
    clock.advance(1.0);
    // Only the heartbeat is left.
    assert_eq!(clock.pending_call_times().len(), 1);
}

#[test]
fn a_heartbeat_pings_the_server_and_closes_a_silent_connection() {
    let mut config = IrcConfig::new("bot");
    config.heartbeat_interval = Some(10.0);
    let mut rig = Rig::new(config);
    assert!(
        rig.clock.pending_call_times().is_empty(),
        "not before signing on"
    );
    rig.feed(":irc.test 001 bot :Welcome\r\n");
    rig.sent();
    rig.clock.advance(10.0);
    assert_eq!(rig.sent(), ["PING :irc.test"]);
    // The server answers: the connection is alive.
    rig.clock.advance(5.0);
    rig.feed(":irc.test PONG irc.test :irc.test\r\n");
    rig.clock.advance(5.0);
    assert_eq!(rig.sent(), ["PING :irc.test"]);
    rig.clock.advance(10.0);
    assert_eq!(rig.sent(), ["PING :irc.test"]);
    assert!(!rig.st.disconnecting());
    // Two intervals without a word from the server: taken for dead.
    rig.clock.advance(10.0);
    assert!(rig.st.disconnecting());
    assert!(rig.sent().is_empty());
    rig.client.connection_lost(ConnectionEnd::Done);
    assert!(rig.clock.pending_call_times().is_empty());
}

#[test]
fn no_heartbeat_when_it_is_turned_off() {
    let mut config = IrcConfig::new("bot");
    config.heartbeat_interval = None;
    let mut rig = Rig::new(config);
    rig.feed(":irc.test 001 bot :Welcome\r\n");
    rig.sent();
    rig.clock.advance(1000.0);
    assert!(rig.sent().is_empty());
    assert!(rig.clock.pending_call_times().is_empty());
}

#[test]
fn losing_the_connection_drops_the_queue_and_its_timer() {
    let clock = Clock::new();
    let mut config = IrcConfig::new("bot");
    config.line_rate = Some(1.0);
    let mut rig = Rig::with(config, &clock);
    assert_eq!(clock.pending_call_times().len(), 1);
    rig.client.connection_lost(ConnectionEnd::Done);
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(rig.events(), ["connection_made bot", "connection_lost"]);
}

#[test]
fn own_and_others_joins_parts_kicks_and_renames_go_to_their_callbacks() {
    let mut rig = Rig::signed_on("bot");
    rig.feed(":bot!b@h JOIN #t\r\n");
    rig.feed(":irc.test 332 bot #t :the topic\r\n");
    rig.feed(":alice!a@h JOIN :#t\r\n");
    rig.feed(":alice!a@h TOPIC #t :new topic\r\n");
    rig.feed(":alice!a@h NICK alicia\r\n");
    rig.feed(":BOT!b@h NICK bot2\r\n");
    rig.feed(":alicia!a@h KICK #t carol :spam\r\n");
    rig.feed(":alicia!a@h PART #t :bye\r\n");
    rig.feed(":dave!d@h QUIT :gone\r\n");
    rig.feed(":alicia!a@h MODE #t +o bot2\r\n");
    rig.feed(":bot2!b@h PART #t\r\n");
    rig.feed(":alicia!a@h KICK #t Bot2 :out\r\n");
    assert_eq!(
        rig.events(),
        [
            "joined #t",
            "topic_updated irc.test #t the topic",
            "user_joined alice #t",
            "topic_updated alice #t new topic",
            "user_renamed alice alicia",
            "nick_changed bot2",
            "user_kicked carol #t alicia spam",
            "user_left alicia #t",
            "user_quit dave gone",
            "mode_changed alicia!a@h #t +o [\"bot2\"]",
            "left #t",
            "kicked_from #t alicia out",
        ]
    );
    assert_eq!(rig.client.nickname(), "bot2");
}

#[test]
fn messages_actions_notices_and_ctcp() {
    let mut config = IrcConfig::new("bot");
    config.version_name = Some("torsion-words".into());
    let mut rig = Rig::new(config);
    rig.feed(":irc.test 001 bot :Welcome\r\n");
    rig.sent();
    rig.events();
    rig.feed(":alice!a@h PRIVMSG #t :hello all\r\n");
    rig.feed(":alice!a@h PRIVMSG bot :psst\r\n");
    rig.feed(":alice!a@h PRIVMSG #t :\u{1}ACTION waves\u{1}\r\n");
    rig.feed(":alice!a@h NOTICE bot :fyi\r\n");
    rig.feed(":alice!a@h PRIVMSG bot :\u{1}TIME\u{1}\r\n");
    assert_eq!(
        rig.events(),
        [
            "privmsg alice!a@h #t hello all",
            "privmsg alice!a@h bot psst",
            "action alice!a@h #t waves",
            "noticed alice!a@h bot fyi",
            "ctcp alice!a@h bot TIME ",
        ]
    );
    assert!(rig.sent().is_empty());
    rig.feed(":alice!a@h PRIVMSG bot :\u{1}VERSION\u{1}\r\n");
    rig.feed(":alice!a@h PRIVMSG bot :\u{1}PING 12345\u{1}\r\n");
    assert_eq!(
        rig.sent(),
        [
            "NOTICE alice :\u{1}VERSION torsion-words\u{1}",
            "NOTICE alice :\u{1}PING 12345\u{1}",
        ]
    );
}

#[test]
fn version_queries_go_unanswered_without_a_version_name() {
    let mut rig = Rig::signed_on("bot");
    rig.feed(":alice!a@h PRIVMSG bot :\u{1}VERSION\u{1}\r\n");
    assert!(rig.sent().is_empty());
}

#[test]
fn numerics_and_unknown_commands_go_to_irc_unknown() {
    let mut rig = Rig::signed_on("bot");
    rig.feed(":irc.test 372 bot :- message of the day\r\n");
    rig.feed(":irc.test WALLOPS :hi\r\n");
    assert_eq!(
        rig.events(),
        [
            "unknown 372 [\"bot\", \"- message of the day\"]",
            "unknown WALLOPS [\"hi\"]"
        ]
    );
}

/// Sends what `f` sends from a callback, on a signed-on client.
fn sent_by(f: impl FnOnce(&mut Irc<'_>) + 'static) -> Vec<String> {
    type Action = Box<dyn FnOnce(&mut Irc<'_>)>;
    struct Once(Option<Action>);
    impl IrcHandler for Once {
        fn signed_on(&mut self, irc: &mut Irc<'_>) {
            if let Some(f) = self.0.take() {
                f(irc);
            }
        }
    }
    let st = StringTransport::new();
    let t = st.transport();
    let mut client = IrcClient::new(IrcConfig::new("bot"), Once(Some(Box::new(f))));
    client.connection_made(&t);
    st.take();
    client.data_received(&t, b":irc.test 001 bot :Welcome\r\n");
    String::from_utf8(st.take())
        .unwrap()
        .split_terminator("\r\n")
        .map(str::to_owned)
        .collect()
}

#[test]
fn commands_build_the_lines_twisted_sends() {
    let sent = sent_by(|irc| {
        irc.join("#a");
        irc.join_with_key("#b", "key");
        irc.leave("#a", Some("bye now"));
        irc.leave("#b", None);
        irc.say("c", "hi");
        irc.say("&d", "hi");
        irc.msg("alice", "hello");
        irc.notice("alice", "fyi");
        irc.describe("#a", "waves");
        irc.set_nick("bot2");
        irc.topic("#a", Some("new"));
        irc.topic("#a", None);
        irc.kick("#a", "eve", Some("spam"));
        irc.away("lunch");
        irc.back();
        irc.quit("done");
    });
    assert_eq!(
        sent,
        [
            "JOIN #a",
            "JOIN #b key",
            "PART #a :bye now",
            "PART #b",
            "PRIVMSG #c :hi",
            "PRIVMSG &d :hi",
            "PRIVMSG alice :hello",
            "NOTICE alice :fyi",
            "PRIVMSG #a :\u{1}ACTION waves\u{1}",
            "NICK bot2",
            "TOPIC #a :new",
            "TOPIC #a",
            "KICK #a eve :spam",
            "AWAY :lunch",
            "AWAY",
            "QUIT :done",
        ]
    );
}

#[test]
fn text_is_split_at_line_breaks_and_to_fit_a_relayed_line() {
    let long = "lorem ipsum ".repeat(100);
    let sent = sent_by(move |irc| {
        irc.msg("#a", "one\r\ntwo\nthree");
        irc.msg("#a", &long);
    });
    assert_eq!(
        sent[..3],
        ["PRIVMSG #a :one", "PRIVMSG #a :two", "PRIVMSG #a :three"]
    );
    let pieces = &sent[3..];
    assert!(pieces.len() >= 3, "{pieces:?}");
    // Relayed as ":bot!bot@<63-byte host> PRIVMSG #a :text\r\n", each still fits 512.
    let relayed_prefix = 1 + 3 + 1 + 3 + 1 + 63 + 1;
    for p in pieces {
        assert!(
            relayed_prefix + p.len() + 2 <= MAX_LINE,
            "{} bytes",
            p.len()
        );
    }
    let text: Vec<&str> = pieces
        .iter()
        .map(|p| p.strip_prefix("PRIVMSG #a :").unwrap())
        .collect();
    // Cut at spaces, which the cuts drop: joined with spaces, the text comes back whole.
    assert_eq!(text.join(" "), "lorem ipsum ".repeat(100));
}

#[test]
fn targets_that_would_break_the_line_are_refused() {
    let sent = sent_by(|irc| {
        irc.msg("alice\r\nQUIT", "x");
        irc.msg("two words", "x");
        irc.msg("", "x");
        irc.join(":#a");
        irc.send_line("PRIVMSG #a :x\r\nQUIT :injected");
        irc.kick("#a", "eve", Some("a\nb"));
        irc.msg("alice", "still fine");
    });
    assert_eq!(sent, ["PRIVMSG alice :still fine"]);
}

#[test]
fn a_line_that_is_not_irc_closes_the_connection() {
    let mut rig = Rig::signed_on("bot");
    rig.feed(":irc.test\r\n");
    assert!(rig.st.disconnecting());
}

#[test]
fn an_overlong_line_closes_the_connection() {
    let mut rig = Rig::signed_on("bot");
    let line = format!(":a!b@c PRIVMSG #t :{}\r\n", "x".repeat(9000));
    rig.feed(&line);
    assert!(rig.st.disconnecting());
    assert!(rig.events().is_empty());
}

#[test]
fn invalid_utf8_and_bare_lf_lines_are_still_read() {
    let mut rig = Rig::signed_on("bot");
    rig.client.data_received(
        &rig.t,
        b":alice!a@h PRIVMSG #t :caf\xe9\n:alice!a@h PRIVMSG #t :ok\n",
    );
    assert_eq!(
        rig.events(),
        [
            "privmsg alice!a@h #t caf\u{fffd}",
            "privmsg alice!a@h #t ok"
        ]
    );
    assert!(!rig.st.disconnecting());
}

#[test]
fn commands_are_case_insensitive() {
    let mut rig = Rig::signed_on("bot");
    rig.feed(":alice!a@h privmsg #t :hi\r\n");
    rig.feed("ping :x\r\n");
    assert_eq!(rig.events(), ["privmsg alice!a@h #t hi"]);
    assert_eq!(rig.sent(), ["PONG :x"]);
}

#[test]
fn lines_split_across_reads_are_joined() {
    let mut rig = Rig::signed_on("bot");
    rig.feed(":alice!a@h PRIV");
    rig.feed("MSG #t :hel");
    assert!(rig.events().is_empty());
    rig.feed("lo\r\n");
    assert_eq!(rig.events(), ["privmsg alice!a@h #t hello"]);
}

#[test]
fn a_graceful_stop_sends_quit() {
    let mut config = IrcConfig::new("bot");
    config.quit_message = "see you".into();
    let mut rig = Rig::new(config);
    rig.sent();
    rig.client.drain(&rig.t);
    assert_eq!(rig.sent(), ["QUIT :see you"]);
}

#[test]
fn handler_state_is_reachable_from_the_client() {
    let rig = Rig::signed_on("bot");
    assert!(rig.client.handler().log.borrow().is_empty());
}

#[test]
fn a_kept_sender_sends_from_outside_callbacks_through_flood_control() {
    let clock = Clock::new();
    let mut config = IrcConfig::new("bot");
    config.line_rate = Some(1.0);
    let mut rig = Rig::with(config, &clock);
    clock.advance(1.0);
    clock.advance(1.0);
    rig.sent();
    let sender = rig.client.sender().expect("connected");
    sender.say("#t", "one");
    sender.say("#t", "two");
    assert_eq!(rig.sent(), ["PRIVMSG #t :one"]);
    assert_eq!(sender.queued_lines(), 1);
    // The connection goes: the queued line and its timer go with it.
    rig.client.connection_lost(ConnectionEnd::Done);
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(sender.queued_lines(), 0);
    clock.advance(5.0);
    assert!(rig.sent().is_empty());
}

#[test]
fn raw_lines_and_commands_that_are_not_one_short_message_are_refused() {
    let sent = sent_by(|irc| {
        irc.send_line("NOT-IRC x");
        irc.send_line(":prefix-only");
        irc.send_line(&format!("PRIVMSG #a :{}", "x".repeat(600)));
        irc.topic("#a", Some(&"y".repeat(600)));
        irc.send_line("PRIVMSG #a :raw is fine");
    });
    assert_eq!(sent, ["PRIVMSG #a :raw is fine"]);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Repeats network text through every command.
    struct Parrot;

    impl IrcHandler for Parrot {
        fn privmsg(&mut self, irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
            irc.msg(channel, message);
            irc.say(message, user);
            irc.describe(channel, message);
            irc.join(message);
            irc.topic(channel, Some(message));
            irc.kick(channel, message, Some(message));
            irc.set_nick(message);
            irc.send_line(message);
        }
    }

    proptest! {
        /// Whatever the network says, a bot repeating it sends only well-formed lines of at
        /// most 512 bytes: nothing can be smuggled through it.
        #[test]
        fn a_parrot_bot_sends_only_well_formed_lines(
            user in "[^\r\n\0 ]{1,30}",
            channel in "[^\r\n\0 ]{1,30}",
            text in "(?s).{0,700}",
        ) {
            let st = StringTransport::new();
            let t = st.transport();
            let mut config = IrcConfig::new("bot");
            config.heartbeat_interval = None;
            let mut client = IrcClient::new(config, Parrot);
            client.connection_made(&t);
            client.data_received(&t, b":irc.test 001 bot :Welcome\r\n");
            let line = format!(":{user} PRIVMSG {channel} :{text}\r\n");
            client.data_received(&t, line.as_bytes());
            let out = String::from_utf8(st.value()).unwrap();
            for line in out.split_terminator("\r\n") {
                prop_assert!(line.len() + 2 <= MAX_LINE, "{} bytes", line.len());
                prop_assert!(!line.contains(['\r', '\n', '\0']));
                prop_assert!(Message::parse(line).is_ok(), "{line:?}");
            }
        }

        /// A line built from valid parts parses back into those parts.
        #[test]
        fn built_lines_parse_back(
            middle in proptest::collection::vec("[^\r\n\0 :][^\r\n\0 ]{0,20}", 0..5),
            trailing in proptest::option::of("[^\r\n\0]{0,100}"),
        ) {
            let refs: Vec<&str> = middle.iter().map(String::as_str).collect();
            let line = torsion_words::irc::build_line("PRIVMSG", &refs, trailing.as_deref()).unwrap();
            let m = Message::parse(&line).unwrap();
            prop_assert_eq!(m.command, "PRIVMSG");
            let mut want = refs.clone();
            if let Some(t) = &trailing {
                want.push(t);
            }
            prop_assert_eq!(m.params(), &want[..]);
        }
    }
}

#[test]
fn the_config_does_not_show_its_password() {
    let mut config = IrcConfig::new("bot");
    config.password = Some("sesame".into());
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("sesame") && shown.contains("<hidden>"),
        "{shown}"
    );
}
