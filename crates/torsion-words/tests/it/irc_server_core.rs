//! The IRC server's core (`ChatCore`) without sockets: registration, numerics, channels,
//! modes, limits, flood control, timeouts and malformed input; and a property: whatever
//! bytes clients send, nothing panics and every line out is one well-formed IRC message.

use proptest::prelude::*;
use torsion_words::irc::{Message, MAX_LINE};
use torsion_words::service::{ChatCore, ClientId, Output, ServerConfig, MAX_BANS};

fn config() -> ServerConfig {
    ServerConfig {
        name: "irc.test".into(),
        ..ServerConfig::default()
    }
}

/// The lines for `id` in `out`.
fn lines_for(out: &[Output], id: ClientId) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Line(to, l) if *to == id => Some(l.clone()),
            _ => None,
        })
        .collect()
}

/// Sends `text` from `id` and returns what everyone got.
fn say(chat: &mut ChatCore, id: ClientId, text: &str) -> Vec<Output> {
    chat.data_received(id, format!("{text}\r\n").as_bytes(), 0.0);
    chat.take_output()
}

/// Connects and registers `nick` as client `id`, returning the registration's lines.
fn register(chat: &mut ChatCore, id: ClientId, nick: &str) -> Vec<String> {
    chat.connect(id, "127.0.0.1", 0.0);
    let out = say(
        chat,
        id,
        &format!("NICK {nick}\r\nUSER {nick} 0 * :{nick} real"),
    );
    lines_for(&out, id)
}

fn codes(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| Message::parse(l).ok().map(|m| m.command.to_owned()))
        .collect()
}

#[test]
fn registration_sends_001_to_005_and_the_motd() {
    let mut chat = ChatCore::new(ServerConfig {
        motd: Some(vec!["hello".into(), "world".into()]),
        ..config()
    });
    let lines = register(&mut chat, 1, "alice");
    assert_eq!(
        codes(&lines),
        ["001", "002", "003", "004", "005", "251", "375", "372", "372", "376"]
    );
    assert_eq!(
        lines[0],
        ":irc.test 001 alice :Welcome to the Torsion IRC Network alice!~alice@127.0.0.1"
    );
    let isupport = Message::parse(&lines[4]).unwrap();
    for token in [
        "CHANTYPES=#",
        "PREFIX=(ov)@+",
        "CHANMODES=b,k,l,imnt",
        "MAXLIST=b:50",
        "CASEMAPPING=rfc1459",
        "NICKLEN=30",
        "CHANLIMIT=#:50",
    ] {
        assert!(
            isupport.params().contains(&token),
            "{token} in {:?}",
            lines[4]
        );
    }
    assert_eq!(lines[7], ":irc.test 372 alice :- hello");
    // No MOTD: 422.
    let mut chat = ChatCore::new(config());
    assert_eq!(codes(&register(&mut chat, 1, "bob")).last().unwrap(), "422");
}

#[test]
fn commands_before_registration_get_451_and_a_taken_nickname_433() {
    let mut chat = ChatCore::new(config());
    register(&mut chat, 1, "alice");
    chat.connect(2, "127.0.0.1", 0.0);
    let out = say(&mut chat, 2, "JOIN #x");
    assert_eq!(
        lines_for(&out, 2),
        [":irc.test 451 * :You have not registered"]
    );
    let out = say(&mut chat, 2, "NICK ALICE");
    assert_eq!(
        lines_for(&out, 2),
        [":irc.test 433 * ALICE :Nickname is already in use"]
    );
    let out = say(&mut chat, 2, "NICK 9lives");
    assert_eq!(codes(&lines_for(&out, 2)), ["432"]);
    let out = say(&mut chat, 2, "NICK alice_\r\nUSER a 0 * :A");
    assert_eq!(codes(&lines_for(&out, 2))[0], "001");
    let out = say(&mut chat, 2, "USER a 0 * :A");
    assert_eq!(codes(&lines_for(&out, 2)), ["462"]);
}

#[test]
fn a_channel_conversation_with_topic_names_modes_and_kick() {
    let mut chat = ChatCore::new(config());
    register(&mut chat, 1, "alice");
    register(&mut chat, 2, "bob");
    let out = say(&mut chat, 1, "JOIN #Chat");
    assert_eq!(
        lines_for(&out, 1),
        [
            ":alice!~alice@127.0.0.1 JOIN #Chat",
            ":irc.test 353 alice = #Chat :@alice",
            ":irc.test 366 alice #Chat :End of /NAMES list",
        ]
    );
    let out = say(&mut chat, 1, "TOPIC #chat :the topic");
    assert_eq!(
        lines_for(&out, 1),
        [":alice!~alice@127.0.0.1 TOPIC #Chat :the topic"]
    );
    let out = say(&mut chat, 2, "join #CHAT");
    let bob = lines_for(&out, 2);
    assert_eq!(codes(&bob), ["JOIN", "332", "333", "353", "366"]);
    assert_eq!(bob[3], ":irc.test 353 bob = #Chat :@alice bob");
    assert_eq!(lines_for(&out, 1), [":bob!~bob@127.0.0.1 JOIN #Chat"]);
    // +t: bob may not set the topic; CTCP passes through unchanged.
    let out = say(&mut chat, 2, "TOPIC #Chat :mine");
    assert_eq!(codes(&lines_for(&out, 2)), ["482"]);
    let out = say(&mut chat, 2, "PRIVMSG #Chat :\u{1}ACTION waves\u{1}");
    assert_eq!(
        lines_for(&out, 1),
        [":bob!~bob@127.0.0.1 PRIVMSG #Chat :\u{1}ACTION waves\u{1}"]
    );
    assert!(lines_for(&out, 2).is_empty(), "no echo to the sender");
    // +m: only voiced and operators speak; +v bob lets him.
    let out = say(&mut chat, 1, "MODE #Chat +m");
    assert_eq!(
        lines_for(&out, 2),
        [":alice!~alice@127.0.0.1 MODE #Chat +m"]
    );
    let out = say(&mut chat, 2, "PRIVMSG #Chat :hi");
    assert_eq!(
        lines_for(&out, 2),
        [":irc.test 404 bob #Chat :Cannot send to channel"]
    );
    let out = say(&mut chat, 1, "MODE #Chat +vk bob sekrit");
    assert_eq!(
        lines_for(&out, 2),
        [":alice!~alice@127.0.0.1 MODE #Chat +vk bob sekrit"]
    );
    let out = say(&mut chat, 2, "PRIVMSG #Chat :hi");
    assert_eq!(
        lines_for(&out, 1),
        [":bob!~bob@127.0.0.1 PRIVMSG #Chat :hi"]
    );
    let out = say(&mut chat, 2, "MODE #Chat");
    assert_eq!(
        lines_for(&out, 2)[0],
        ":irc.test 324 bob #Chat +mntk sekrit"
    );
    // Kick, then the key keeps bob out.
    let out = say(&mut chat, 2, "KICK #Chat alice");
    assert_eq!(codes(&lines_for(&out, 2)), ["482"]);
    let out = say(&mut chat, 1, "KICK #Chat bob :bye");
    assert_eq!(
        lines_for(&out, 2),
        [":alice!~alice@127.0.0.1 KICK #Chat bob :bye"]
    );
    assert_eq!(chat.members("#chat").unwrap(), ["alice"]);
    let out = say(&mut chat, 2, "JOIN #Chat");
    assert_eq!(codes(&lines_for(&out, 2)), ["475"]);
    let out = say(&mut chat, 2, "JOIN #Chat sekrit");
    assert_eq!(codes(&lines_for(&out, 2))[0], "JOIN");
    // +l 2: a third user is turned away.
    say(&mut chat, 1, "MODE #Chat +l 2");
    register(&mut chat, 3, "carol");
    let out = say(&mut chat, 3, "JOIN #Chat sekrit");
    assert_eq!(codes(&lines_for(&out, 3)), ["471"]);
    // +n (the default): outsiders cannot send.
    let out = say(&mut chat, 3, "PRIVMSG #Chat :hello?");
    assert_eq!(codes(&lines_for(&out, 3)), ["404"]);
}

#[test]
fn bans_keep_matching_users_out_and_quiet_until_lifted() {
    let mut chat = ChatCore::new(config());
    register(&mut chat, 1, "alice");
    register(&mut chat, 2, "bob");
    register(&mut chat, 3, "carol");
    say(&mut chat, 1, "JOIN #den");
    say(&mut chat, 3, "JOIN #den");
    // A bare nick is completed to nick!*@*; the ban is shown to the channel.
    let out = say(&mut chat, 1, "MODE #den +b BOB");
    assert_eq!(
        lines_for(&out, 3),
        [":alice!~alice@127.0.0.1 MODE #den +b BOB!*@*"]
    );
    // Matching is case-insensitive in the rfc1459 mapping, as nick matching is.
    let out = say(&mut chat, 2, "JOIN #den");
    assert_eq!(
        lines_for(&out, 2),
        [":irc.test 474 bob #den :Cannot join channel (+b)"]
    );
    // A member who matches a later ban stays but is quiet, unless voiced.
    let out = say(&mut chat, 1, "MODE #den +b *!~carol@*");
    assert_eq!(codes(&lines_for(&out, 1)), ["MODE"]);
    let out = say(&mut chat, 3, "PRIVMSG #den :hello");
    assert_eq!(codes(&lines_for(&out, 3)), ["404"]);
    assert!(lines_for(&out, 1).is_empty());
    say(&mut chat, 1, "MODE #den +v carol");
    let out = say(&mut chat, 3, "PRIVMSG #den :hello");
    assert_eq!(
        lines_for(&out, 1),
        [":carol!~carol@127.0.0.1 PRIVMSG #den :hello"]
    );
    // The list, to anyone who asks; only operators change it.
    let out = say(&mut chat, 2, "MODE #den b");
    let listed = lines_for(&out, 2);
    assert_eq!(codes(&listed), ["367", "367", "368"]);
    assert!(listed[0].starts_with(":irc.test 367 bob #den BOB!*@* alice!~alice@127.0.0.1 "));
    let out = say(&mut chat, 3, "MODE #den -b BOB!*@*");
    assert_eq!(codes(&lines_for(&out, 3)), ["482"]);
    // Lifting needs the same mask (any case); removing a mask that is not there says nothing.
    let out = say(&mut chat, 1, "MODE #den -b bob!*@*");
    assert_eq!(
        lines_for(&out, 1),
        [":alice!~alice@127.0.0.1 MODE #den -b bob!*@*"]
    );
    let out = say(&mut chat, 1, "MODE #den -b nobody");
    assert!(out.is_empty());
    let out = say(&mut chat, 2, "JOIN #den");
    assert_eq!(codes(&lines_for(&out, 2))[0], "JOIN");
    // The list is bounded: past MAX_BANS, 478.
    // (Spread over time, past flood control.)
    for i in 1..MAX_BANS {
        chat.data_received(
            1,
            format!("MODE #den +b spam{i}\r\n").as_bytes(),
            i as f64 * 10.0,
        );
    }
    chat.data_received(1, b"NOOP\r\n", MAX_BANS as f64 * 10.0);
    chat.take_output();
    chat.data_received(1, b"MODE #den +b onemore\r\n", MAX_BANS as f64 * 20.0);
    let out = chat.take_output();
    assert_eq!(
        lines_for(&out, 1),
        [":irc.test 478 alice #den onemore!*@* :Channel ban list is full"]
    );
}

#[test]
fn invite_only_channels_admit_the_invited_once() {
    let mut chat = ChatCore::new(config());
    register(&mut chat, 1, "alice");
    register(&mut chat, 2, "bob");
    register(&mut chat, 3, "carol");
    say(&mut chat, 1, "JOIN #club");
    say(&mut chat, 3, "JOIN #club");
    let out = say(&mut chat, 1, "MODE #club +i");
    assert_eq!(codes(&lines_for(&out, 1)), ["MODE"]);
    let out = say(&mut chat, 1, "MODE #club");
    assert_eq!(lines_for(&out, 1)[0], ":irc.test 324 alice #club +int");
    let out = say(&mut chat, 2, "JOIN #club");
    assert_eq!(
        lines_for(&out, 2),
        [":irc.test 473 bob #club :Cannot join channel (+i)"]
    );
    // On +i only operators invite; outsiders never; members already in get 443.
    let out = say(&mut chat, 3, "INVITE bob #club");
    assert_eq!(codes(&lines_for(&out, 3)), ["482"]);
    let out = say(&mut chat, 2, "INVITE carol #club");
    assert_eq!(codes(&lines_for(&out, 2)), ["442"]);
    let out = say(&mut chat, 1, "INVITE carol #club");
    assert_eq!(codes(&lines_for(&out, 1)), ["443"]);
    let out = say(&mut chat, 1, "INVITE nobody #club");
    assert_eq!(codes(&lines_for(&out, 1)), ["401"]);
    let out = say(&mut chat, 1, "INVITE bob #nowhere");
    assert_eq!(codes(&lines_for(&out, 1)), ["403"]);
    let out = say(&mut chat, 1, "INVITE");
    assert_eq!(codes(&lines_for(&out, 1)), ["461"]);
    // An invitation: RPL_INVITING to the inviter, INVITE to the invitee, and a way in,
    // past a ban too.
    say(&mut chat, 1, "MODE #club +b bob");
    let out = say(&mut chat, 1, "INVITE BOB #CLUB");
    assert_eq!(lines_for(&out, 1), [":irc.test 341 alice bob #club"]);
    assert_eq!(
        lines_for(&out, 2),
        [":alice!~alice@127.0.0.1 INVITE bob :#club"]
    );
    let out = say(&mut chat, 2, "JOIN #club");
    assert_eq!(codes(&lines_for(&out, 2))[0], "JOIN");
    // Used once: after leaving, bob is out again.
    say(&mut chat, 2, "PART #club");
    let out = say(&mut chat, 2, "JOIN #club");
    assert_eq!(codes(&lines_for(&out, 2)), ["473"]);
    // -i opens the channel; the ban still holds.
    say(&mut chat, 1, "MODE #club -i");
    let out = say(&mut chat, 2, "JOIN #club");
    assert_eq!(codes(&lines_for(&out, 2)), ["474"]);
}

#[test]
fn who_whois_list_names_and_user_modes() {
    let mut chat = ChatCore::new(config());
    register(&mut chat, 1, "alice");
    register(&mut chat, 2, "bob");
    say(&mut chat, 1, "JOIN #a");
    say(&mut chat, 2, "JOIN #a");
    let out = say(&mut chat, 2, "WHO #a");
    assert_eq!(
        lines_for(&out, 2),
        [
            ":irc.test 352 bob #a ~alice 127.0.0.1 irc.test alice H@ :0 alice real",
            ":irc.test 352 bob #a ~bob 127.0.0.1 irc.test bob H :0 bob real",
            ":irc.test 315 bob #a :End of /WHO list",
        ]
    );
    let out = say(&mut chat, 2, "WHOIS alice");
    assert_eq!(
        codes(&lines_for(&out, 2)),
        ["311", "319", "312", "317", "318"]
    );
    assert_eq!(lines_for(&out, 2)[1], ":irc.test 319 bob alice :@#a");
    let out = say(&mut chat, 2, "WHOIS nobody");
    assert_eq!(codes(&lines_for(&out, 2)), ["401", "318"]);
    let out = say(&mut chat, 2, "LIST");
    assert_eq!(
        lines_for(&out, 2),
        [
            ":irc.test 321 bob Channel :Users  Name",
            ":irc.test 322 bob #a 2 :",
            ":irc.test 323 bob :End of /LIST",
        ]
    );
    let out = say(&mut chat, 2, "MODE bob +i");
    assert_eq!(lines_for(&out, 2), [":bob MODE bob :+i"]);
    let out = say(&mut chat, 2, "MODE bob");
    assert_eq!(lines_for(&out, 2), [":irc.test 221 bob +i"]);
    let out = say(&mut chat, 2, "MODE alice +i");
    assert_eq!(codes(&lines_for(&out, 2)), ["502"]);
    let out = say(&mut chat, 2, "PART #a :later");
    assert_eq!(lines_for(&out, 1), [":bob!~bob@127.0.0.1 PART #a :later"]);
    // bob is invisible and shares no channel with carol: NAMES and WHO * leave him out.
    register(&mut chat, 3, "carol");
    let out = say(&mut chat, 3, "WHO *");
    let who = lines_for(&out, 3);
    assert!(who.iter().all(|l| !l.contains(" bob ")), "{who:?}");
    let out = say(&mut chat, 1, "NICK alicia");
    assert_eq!(lines_for(&out, 1), [":alice!~alice@127.0.0.1 NICK :alicia"]);
    let out = say(&mut chat, 3, "PRIVMSG alicia,bob :psst");
    assert_eq!(
        lines_for(&out, 1),
        [":carol!~carol@127.0.0.1 PRIVMSG alicia :psst"]
    );
    assert_eq!(
        lines_for(&out, 2),
        [":carol!~carol@127.0.0.1 PRIVMSG bob :psst"]
    );
}

#[test]
fn five_thousand_joins_stop_at_the_cap_with_405() {
    // Flood control off: the cap, not the token bucket, is under test.
    let mut chat = ChatCore::new(ServerConfig {
        flood_rate: 0.0,
        ..config()
    });
    register(&mut chat, 1, "greedy");
    let mut joined = 0;
    let mut refused = 0;
    for i in 0..5000 {
        let out = say(&mut chat, 1, &format!("JOIN #c{i}"));
        let lines = lines_for(&out, 1);
        if codes(&lines)[0] == "JOIN" {
            joined += 1;
        } else {
            assert_eq!(
                lines,
                [format!(
                    ":irc.test 405 greedy #c{i} :You have joined too many channels"
                )]
            );
            refused += 1;
        }
    }
    assert_eq!((joined, refused), (50, 4950));
    assert_eq!(chat.channel_count(), 50);
    // The server-wide cap, with users under their own.
    let mut chat = ChatCore::new(ServerConfig {
        max_channels: 3,
        flood_rate: 0.0,
        ..config()
    });
    register(&mut chat, 1, "a");
    let out = say(&mut chat, 1, "JOIN #1,#2,#3,#4");
    let lines = lines_for(&out, 1);
    assert_eq!(
        lines.last().unwrap(),
        ":irc.test 405 a #4 :Too many channels on this server"
    );
    assert_eq!(chat.channel_count(), 3);
}

#[test]
fn malformed_and_overlong_lines_are_ignored_or_answered() {
    let mut chat = ChatCore::new(config());
    register(&mut chat, 1, "alice");
    for bad in [
        ":",
        ":x",
        "@",
        "1234 x",
        "PRIV-MSG x",
        "\u{1}",
        ": PRIVMSG a :b",
    ] {
        let out = say(&mut chat, 1, bad);
        assert!(lines_for(&out, 1).is_empty(), "{bad:?}: {out:?}");
    }
    let out = say(&mut chat, 1, "FROB x");
    assert_eq!(
        lines_for(&out, 1),
        [":irc.test 421 alice FROB :Unknown command"]
    );
    let out = say(&mut chat, 1, "PRIVMSG");
    assert_eq!(codes(&lines_for(&out, 1)), ["411"]);
    let out = say(&mut chat, 1, "PRIVMSG alice");
    assert_eq!(codes(&lines_for(&out, 1)), ["412"]);
    let out = say(&mut chat, 1, "JOIN bad,#ok");
    assert_eq!(codes(&lines_for(&out, 1)), ["403", "JOIN", "353", "366"]);
    // 511 bytes before CR LF: too long, answered 417; the next line still works.
    let long = format!("PRIVMSG #ok :{}", "x".repeat(511 - 13));
    assert_eq!(long.len(), 511);
    let out = say(&mut chat, 1, &format!("{long}\r\nPING :still"));
    assert_eq!(
        lines_for(&out, 1),
        [
            ":irc.test 417 alice :Input line was too long",
            ":irc.test PONG irc.test :still",
        ]
    );
    // 510 bytes: taken.
    register(&mut chat, 2, "bob");
    say(&mut chat, 2, "JOIN #ok");
    let out = say(&mut chat, 1, &long[..510]);
    assert_eq!(lines_for(&out, 2).len(), 1);
    // Invalid UTF-8 and a NUL do not break anything.
    chat.data_received(1, b"PRIVMSG #ok :\xff\xfe\0a\r\n", 0.0);
    let out = chat.take_output();
    assert_eq!(
        lines_for(&out, 2),
        [":alice!~alice@127.0.0.1 PRIVMSG #ok :\u{fffd}\u{fffd}a"]
    );
}

#[test]
fn flood_control_delays_lines_then_drops_the_flooder() {
    let mut chat = ChatCore::new(ServerConfig {
        flood_burst: 5.0,
        flood_rate: 1.0,
        flood_queue: 10,
        ..config()
    });
    register(&mut chat, 1, "flood");
    register(&mut chat, 2, "watch");
    // Registration took two of the five tokens: three PINGs answered now, two held.
    let out = say(
        &mut chat,
        1,
        &(0..5)
            .map(|i| format!("PING :{i}"))
            .collect::<Vec<_>>()
            .join("\r\n"),
    );
    assert_eq!(lines_for(&out, 1).len(), 3);
    chat.tick(1.0);
    assert_eq!(
        lines_for(&chat.take_output(), 1),
        [":irc.test PONG irc.test :3"]
    );
    chat.tick(2.0);
    assert_eq!(
        lines_for(&chat.take_output(), 1),
        [":irc.test PONG irc.test :4"]
    );
    // Past ten held lines: dropped, and the others are told.
    say(&mut chat, 2, "JOIN #f");
    say(&mut chat, 1, "JOIN #f");
    chat.tick(30.0);
    chat.take_output();
    let flood: Vec<String> = (0..30).map(|i| format!("PRIVMSG #f :{i}")).collect();
    let out = say(&mut chat, 1, &flood.join("\r\n"));
    assert!(
        out.contains(&Output::Close(1, "Excess Flood".into())),
        "{out:?}"
    );
    assert_eq!(
        lines_for(&out, 2).last().unwrap(),
        ":flood!~flood@127.0.0.1 QUIT :Excess Flood"
    );
    assert_eq!(chat.client_count(), 1);
}

#[test]
fn silent_clients_are_pinged_then_dropped_and_unregistered_ones_time_out() {
    let mut chat = ChatCore::new(config());
    register(&mut chat, 1, "sleepy");
    register(&mut chat, 2, "awake");
    chat.connect(3, "127.0.0.1", 0.0);
    chat.tick(59.0);
    assert!(chat.take_output().is_empty());
    chat.tick(60.0);
    assert_eq!(
        chat.take_output(),
        [
            Output::Line(
                3,
                "ERROR :Closing Link: 127.0.0.1 (Registration timed out)".into()
            ),
            Output::Close(3, "Registration timed out".into())
        ]
    );
    chat.tick(119.0);
    assert!(chat.take_output().is_empty());
    chat.tick(120.0);
    let out = chat.take_output();
    assert_eq!(lines_for(&out, 1), ["PING :irc.test"]);
    assert_eq!(lines_for(&out, 2), ["PING :irc.test"]);
    chat.data_received(2, b"PONG :irc.test\r\n", 150.0);
    chat.tick(180.0);
    let out = chat.take_output();
    assert!(
        out.contains(&Output::Close(1, "Ping timeout: 180 seconds".into())),
        "{out:?}"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Close(2, _))));
}

#[test]
fn with_a_password_file_registration_waits_for_the_login() {
    let mut chat = ChatCore::new(ServerConfig {
        require_password: true,
        ..config()
    });
    chat.connect(1, "127.0.0.1", 0.0);
    let out = say(&mut chat, 1, "PASS secret\r\nNICK alice\r\nUSER a 0 * :A");
    assert_eq!(
        out,
        [Output::Login {
            client: 1,
            nick: "alice".into(),
            password: "secret".into()
        }]
    );
    chat.login_result(1, true, 0.0);
    assert_eq!(codes(&lines_for(&chat.take_output(), 1))[0], "001");
    chat.connect(2, "127.0.0.1", 0.0);
    say(&mut chat, 2, "PASS wrong\r\nNICK bob\r\nUSER b 0 * :B");
    chat.login_result(2, false, 0.0);
    let out = chat.take_output();
    assert_eq!(
        lines_for(&out, 2)[0],
        ":irc.test 464 bob :Password incorrect"
    );
    assert!(out.contains(&Output::Close(2, "Bad password".into())));
    chat.connect(3, "127.0.0.1", 0.0);
    let out = say(&mut chat, 3, "NICK carol\r\nUSER c 0 * :C");
    assert_eq!(codes(&lines_for(&out, 3))[0], "464");
}

#[test]
fn past_max_clients_a_connection_is_told_and_closed() {
    let mut chat = ChatCore::new(ServerConfig {
        max_clients: 2,
        ..config()
    });
    register(&mut chat, 1, "a");
    register(&mut chat, 2, "b");
    chat.connect(3, "127.0.0.1", 0.0);
    assert_eq!(
        chat.take_output(),
        [
            Output::Line(3, "ERROR :Closing Link: Server is full".into()),
            Output::Close(3, "Server is full".into())
        ]
    );
    assert_eq!(chat.client_count(), 2);
    // Bytes from the refused connection are ignored.
    assert!(say(&mut chat, 3, "NICK c").is_empty());
}

/// Every line out is at most 510 bytes, free of CR, LF and NUL, and parses.
fn check_output(out: &[Output]) {
    for o in out {
        if let Output::Line(_, line) = o {
            assert!(line.len() + 2 <= MAX_LINE, "{} bytes", line.len());
            assert!(!line.contains(['\r', '\n', '\0']), "{line:?}");
            Message::parse(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        }
    }
}

proptest! {
    #[test]
    fn any_bytes_from_any_client_make_well_formed_lines(
        chunks in proptest::collection::vec((0u64..3, proptest::collection::vec(any::<u8>(), 0..300)), 0..30),
        words in proptest::collection::vec(
            prop_oneof![
                Just("JOIN #a"), Just("PRIVMSG #a :x"), Just("MODE #a +o b"), Just("MODE #a +kl k 1"),
                Just("TOPIC #a :t"), Just("NICK b"), Just("KICK #a c"), Just("PART #a"), Just("WHO #a"),
                Just("NAMES #a"), Just("LIST"), Just("QUIT"), Just("WHOIS a"), Just("MODE a +i"),
            ],
            0..40,
        ),
    ) {
        let mut chat = ChatCore::new(config());
        for (id, nick) in [(0, "a"), (1, "b"), (2, "c")] {
            register(&mut chat, id, nick);
        }
        for (i, w) in words.iter().enumerate() {
            let out = say(&mut chat, i as u64 % 3, w);
            check_output(&out);
        }
        for (i, (id, bytes)) in chunks.iter().enumerate() {
            chat.data_received(*id, bytes, i as f64);
            chat.tick(i as f64);
            check_output(&chat.take_output());
        }
    }
}
