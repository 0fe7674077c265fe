//! The SMTP state machine without I/O: order of commands, pipelining, limits, AUTH.

use torsion_mail::reply::Reply;
use torsion_mail::server_core::{Event, Limits, ServerCore};

use crate::support::codes;

fn core() -> ServerCore {
    let mut c = ServerCore::new("mx.example.org", Limits::default());
    c.take_output();
    c
}

fn out(c: &mut ServerCore) -> String {
    String::from_utf8(c.take_output()).unwrap()
}

/// Accepts every decision, answering the body's end with 250; returns the events seen.
fn drive(c: &mut ServerCore) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Some(e) = c.poll() {
        match &e {
            Event::Mail { .. } | Event::Rcpt { .. } => c.accept(),
            Event::Data => c.start_data(),
            Event::EndOfData => c.finish_data(None),
            Event::Auth { .. } => c.auth_unavailable(),
            _ => {}
        }
        seen.push(e);
    }
    seen
}

#[test]
fn commands_out_of_order_are_refused_503_and_the_session_goes_on() {
    let mut c = core();
    c.receive(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    assert!(drive(&mut c).is_empty());
    assert_eq!(codes(&out(&mut c)), [503, 503, 503]);
    c.receive(b"HELO me\r\nRCPT TO:<b@example.org>\r\nMAIL FROM:<a@x.org>\r\nDATA\r\n");
    drive(&mut c);
    // RCPT before MAIL: 503; DATA without recipients: 554.
    assert_eq!(codes(&out(&mut c)), [250, 503, 250, 554]);
    c.receive(b"MAIL FROM:<a@x.org>\r\n");
    drive(&mut c);
    assert_eq!(codes(&out(&mut c)), [503], "nested MAIL");
}

#[test]
fn pipelined_commands_wait_for_each_decision_and_are_answered_in_order() {
    let mut c = core();
    c.receive(
        b"EHLO me\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
    );
    assert!(matches!(c.poll(), Some(Event::Mail { .. })));
    assert_eq!(
        c.poll(),
        None,
        "nothing more is read until MAIL is answered"
    );
    c.accept();
    assert!(matches!(c.poll(), Some(Event::Rcpt { .. })));
    c.reject(&Reply::new(550, "5.1.1 No such user here"));
    assert!(matches!(c.poll(), Some(Event::Rcpt { .. })));
    c.accept();
    assert_eq!(c.poll(), Some(Event::Data));
    c.start_data();
    let text = out(&mut c);
    assert!(
        text.starts_with("250-mx.example.org Hello\r\n250-PIPELINING\r\n"),
        "{text}"
    );
    assert_eq!(codes(&text), [250, 250, 550, 250, 354]);
}

#[test]
fn ehlo_advertises_size_8bitmime_and_starttls_auth_only_when_offered() {
    let mut c = core();
    c.receive(b"EHLO me\r\n");
    drive(&mut c);
    let plain = out(&mut c);
    assert!(plain.contains("250-SIZE 10485760\r\n") && plain.contains("8BITMIME"));
    assert!(!plain.contains("STARTTLS") && !plain.contains("AUTH"));

    let mut c = core();
    c.set_starttls_available(true);
    c.set_auth(true, true);
    c.receive(b"EHLO me\r\nAUTH PLAIN AGEAYg==\r\n");
    drive(&mut c);
    let text = out(&mut c);
    assert!(
        text.contains("STARTTLS") && !text.contains("AUTH PLAIN LOGIN"),
        "{text}"
    );
    assert_eq!(
        codes(&text).last(),
        Some(&538),
        "AUTH before TLS: encryption required"
    );

    let mut c = core();
    c.set_auth(true, false);
    c.receive(b"EHLO me\r\n");
    drive(&mut c);
    assert!(out(&mut c).contains("250 AUTH PLAIN LOGIN\r\n"));
}

#[test]
fn starttls_drops_what_was_pipelined_after_it_and_resets_the_session() {
    let mut c = core();
    c.set_starttls_available(true);
    c.receive(b"EHLO me\r\nSTARTTLS\r\nMAIL FROM:<injected@x.org>\r\n");
    assert_eq!(c.poll(), Some(Event::StartTls));
    assert_eq!(c.poll(), None, "the injected command is gone");
    assert!(c.tls_active() && c.helo().is_none());
    assert_eq!(codes(&out(&mut c)), [250, 220]);
    c.receive(b"MAIL FROM:<a@x.org>\r\nSTARTTLS\r\n");
    drive(&mut c);
    assert_eq!(
        codes(&out(&mut c)),
        [503, 503],
        "EHLO again first; TLS only once"
    );
}

#[test]
fn dot_unstuffing_and_only_crlf_dot_crlf_ends_the_message() {
    let mut c = core();
    c.receive(b"HELO me\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    c.receive(b"..one\r\n.\n.two\r\nbare\n.\r\nx.\r\n...\r\n.\r\n");
    let body: Vec<u8> = drive(&mut c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Body(b) => Some(b),
            _ => None,
        })
        .flatten()
        .collect();
    // A bare LF does not start a line: "\n.\r\n" is not the end (SMTP smuggling), and
    // only a dot after CRLF is a stuffed one.
    assert_eq!(body, b".one\r\n\n.two\r\nbare\n.\r\nx.\r\n..\r\n");
    assert_eq!(codes(&out(&mut c)).last(), Some(&250));
}

#[test]
fn a_body_split_anywhere_gives_the_same_message() {
    let msg = b"Subject: s\r\n\r\n..a\r\nb\r\n.\r\n";
    for at in 0..msg.len() {
        let mut c = core();
        c.receive(b"HELO me\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
        let mut events = drive(&mut c);
        c.receive(&msg[..at]);
        events.extend(drive(&mut c));
        c.receive(&msg[at..]);
        events.extend(drive(&mut c));
        let body: Vec<u8> = events
            .iter()
            .filter_map(|e| match e {
                Event::Body(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(body, b"Subject: s\r\n\r\n.a\r\nb\r\n", "split at {at}");
        assert_eq!(events.last(), Some(&Event::EndOfData));
    }
}

/// A core past 354 with the given size limit.
fn in_data(max_message_size: u64) -> ServerCore {
    let limits = Limits {
        max_message_size,
        ..Limits::default()
    };
    let mut c = ServerCore::new("h", limits);
    c.receive(b"HELO me\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    drive(&mut c);
    c.take_output();
    c
}

/// The body the events carry.
fn body_of(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Body(b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_body_split_in_three_anywhere_gives_the_same_message_and_the_next_command() {
    // A dot-stuffed last line, an end marker and a pipelined command after it: every split
    // into three reads (a "." line, a CRLF or a stuffed dot cut between reads) gives the
    // same body, one end, and the command answered.
    let wire = b"ab\r\n..\r\n.x\r\n...\r\n.\r\nNOOP\r\n";
    for i in 0..=wire.len() {
        for j in i..=wire.len() {
            let mut c = in_data(1 << 20);
            let mut events = Vec::new();
            for part in [&wire[..i], &wire[i..j], &wire[j..]] {
                c.receive(part);
                events.extend(drive(&mut c));
            }
            assert_eq!(
                body_of(&events),
                b"ab\r\n.\r\nx\r\n..\r\n",
                "split at {i}, {j}"
            );
            let ends = events.iter().filter(|e| **e == Event::EndOfData).count();
            assert_eq!(ends, 1, "split at {i}, {j}");
            assert_eq!(codes(&out(&mut c)), [250, 250], "split at {i}, {j}");
        }
    }
}

#[test]
fn receive_with_body_passes_the_body_on_in_order_without_holding_it() {
    // The same splits through receive_with_body: what goes to the sink and what comes
    // out as Event::Body make the body, in order, and the rest is as with receive.
    let wire = b"ab\r\n..\r\n.x\r\n...\r\n.\r\nNOOP\r\n";
    for i in 0..=wire.len() {
        for j in i..=wire.len() {
            let mut c = in_data(1 << 20);
            let mut body = Vec::new();
            let mut ends = 0;
            for part in [&wire[..i], &wire[i..j], &wire[j..]] {
                c.receive_with_body(part, |run| body.extend_from_slice(run));
                for e in drive(&mut c) {
                    match e {
                        Event::Body(b) => body.extend_from_slice(&b),
                        Event::EndOfData => ends += 1,
                        _ => {}
                    }
                }
            }
            assert_eq!(body, b"ab\r\n.\r\nx\r\n..\r\n", "split at {i}, {j}");
            assert_eq!(ends, 1, "split at {i}, {j}");
            assert_eq!(codes(&out(&mut c)), [250, 250], "split at {i}, {j}");
        }
    }
    // In one read, the lines before the end marker go to the sink, none is held.
    let mut c = in_data(1 << 20);
    let mut sunk = Vec::new();
    c.receive_with_body(b"one\r\ntwo\r\n.\r\n", |run| sunk.extend_from_slice(run));
    assert_eq!(sunk, b"one\r\ntwo\r\n");
    assert_eq!(c.buffered(), 3, "only the end marker is kept");
    assert_eq!(drive(&mut c), [Event::EndOfData]);
}

#[test]
fn a_body_exactly_at_the_size_limit_is_taken_and_one_byte_more_is_not() {
    // 100 bytes after unstuffing: the stuffed dot does not count.
    let line = [b"..".as_slice(), &[b'y'; 97], b"\r\n"].concat();
    assert_eq!(line.len(), 101);
    for (extra, accepted) in [(b"".as_slice(), true), (b"z", false)] {
        // In one read (scanned as it arrives) and line by line.
        for whole in [true, false] {
            let mut c = in_data(100 + extra.len() as u64 - u64::from(!accepted));
            let wire = [extra, &line, b".\r\nNOOP\r\n"].concat();
            let mut events = Vec::new();
            if whole {
                c.receive(&wire);
                events.extend(drive(&mut c));
            } else {
                for b in &wire {
                    c.receive(std::slice::from_ref(b));
                    events.extend(drive(&mut c));
                }
            }
            let what = format!("extra {extra:?}, whole {whole}");
            if accepted {
                assert_eq!(body_of(&events), &line[1..], "{what}");
                assert!(events.contains(&Event::EndOfData), "{what}");
                assert_eq!(codes(&out(&mut c)), [250, 250], "{what}");
            } else {
                assert!(events.contains(&Event::Oversize), "{what}");
                assert!(!events.contains(&Event::EndOfData), "{what}");
                assert_eq!(codes(&out(&mut c)), [552, 250], "{what}");
            }
        }
    }
}

#[test]
fn a_long_line_passes_in_pieces_and_a_cr_at_a_piece_end_waits_for_its_lf() {
    let mut c = in_data(1 << 20);
    // 20,000 bytes without a line end, the last a CR: passed on (bounded memory) but for
    // the CR, which could begin the CRLF before an end marker.
    let mut long = vec![b'a'; 19_999];
    long.push(b'\r');
    c.receive(&long);
    let mut events = drive(&mut c);
    assert_eq!(body_of(&events).len(), 19_999);
    assert!(c.buffered() <= 1, "{} bytes held", c.buffered());
    c.receive(b"\n.");
    events.extend(drive(&mut c));
    c.receive(b"\r\n");
    events.extend(drive(&mut c));
    let body = body_of(&events);
    assert_eq!(body.len(), 20_001);
    assert!(body.ends_with(b"a\r\n"));
    assert_eq!(events.last(), Some(&Event::EndOfData));
}

#[test]
fn the_recipient_cap_answers_452_past_the_limit() {
    let mut c = ServerCore::new(
        "h",
        Limits {
            max_recipients: 3,
            ..Limits::default()
        },
    );
    c.take_output();
    c.receive(b"HELO me\r\nMAIL FROM:<>\r\n");
    for i in 0..5 {
        c.receive(format!("RCPT TO:<u{i}@example.org>\r\n").as_bytes());
    }
    drive(&mut c);
    assert_eq!(codes(&out(&mut c)), [250, 250, 250, 250, 250, 452, 452]);
}

#[test]
fn size_is_refused_at_mail_from_and_enforced_while_the_body_arrives() {
    let limits = Limits {
        max_message_size: 100,
        ..Limits::default()
    };
    let mut c = ServerCore::new("h", limits);
    c.take_output();
    c.receive(b"EHLO me\r\nMAIL FROM:<a@x.org> SIZE=101\r\nMAIL FROM:<a@x.org> SIZE=50\r\n");
    c.receive(b"RCPT TO:<b@example.org>\r\nDATA\r\n");
    let mut events = drive(&mut c);
    assert_eq!(codes(&out(&mut c)), [250, 552, 250, 250, 354]);
    for _ in 0..10 {
        c.receive(&[b'x'; 20]);
        c.receive(b"\r\n");
        events.extend(drive(&mut c));
    }
    c.receive(b".\r\nNOOP\r\n");
    events.extend(drive(&mut c));
    let stored: usize = events
        .iter()
        .map(|e| match e {
            Event::Body(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert!(stored <= 100, "{stored} bytes passed on");
    assert!(events.contains(&Event::Oversize));
    assert!(!events.contains(&Event::EndOfData));
    assert_eq!(
        codes(&out(&mut c)),
        [552, 250],
        "552 at the end, and the session goes on"
    );
}

#[test]
fn auth_plain_and_login_exchanges_and_the_failure_limit() {
    let mut c = core();
    c.set_auth(true, false);
    // PLAIN with the response on its own line.
    c.receive(b"EHLO me\r\nAUTH PLAIN\r\n");
    assert_eq!(c.poll(), None);
    assert!(out(&mut c).ends_with("334 \r\n"));
    c.receive(b"AGFsaWNlAHNlY3JldA==\r\n"); // \0alice\0secret
    assert_eq!(
        c.poll(),
        Some(Event::Auth {
            authzid: String::new(),
            user: "alice".into(),
            password: b"secret".to_vec()
        })
    );
    assert_eq!(c.auth_failed(), None);
    // LOGIN, user and password asked in turn.
    c.receive(b"AUTH LOGIN\r\nYWxpY2U=\r\nd3Jvbmc=\r\n");
    assert!(matches!(c.poll(), Some(Event::Auth { ref user, .. }) if user == "alice"));
    assert_eq!(c.auth_failed(), None);
    // Cancelled with "*", garbage base64: 501, not counted as failed logins.
    c.receive(b"AUTH LOGIN\r\n*\r\nAUTH PLAIN !!!\r\n");
    assert_eq!(c.poll(), None);
    c.receive(b"AUTH PLAIN AGFsaWNlAHg=\r\n");
    assert!(matches!(c.poll(), Some(Event::Auth { .. })));
    assert_eq!(
        c.auth_failed(),
        Some(Event::Close),
        "the third failure closes"
    );
    assert!(c.closed());
    let text = out(&mut c);
    assert_eq!(
        codes(&text),
        [535, 334, 334, 535, 334, 501, 501, 535, 421],
        "{text}"
    );
    assert!(text.contains("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"));
}

#[test]
fn auth_success_is_remembered_and_a_second_auth_refused() {
    let mut c = core();
    c.set_auth(true, false);
    c.receive(b"EHLO me\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert!(matches!(c.poll(), Some(Event::Auth { .. })));
    c.auth_succeeded("alice");
    assert_eq!(c.poll(), None);
    assert_eq!(c.authenticated(), Some("alice"));
    assert_eq!(codes(&out(&mut c)), [250, 235, 503]);
}

#[test]
fn vrfy_expn_noop_help_rset_quit() {
    let mut c = core();
    c.receive(b"VRFY root\r\nEXPN staff\r\nNOOP\r\nHELP\r\nRSET\r\nQUIT\r\nNOOP\r\n");
    let events = drive(&mut c);
    assert_eq!(events.last(), Some(&Event::Close));
    assert_eq!(codes(&out(&mut c)), [252, 502, 250, 214, 250, 221]);
    assert!(c.closed());
}

#[test]
fn lines_over_1000_bytes_are_refused_500_without_being_kept() {
    let mut c = core();
    let mut line = b"NOOP ".to_vec();
    line.resize(998, b'a');
    line.extend_from_slice(b"\r\n"); // exactly 1000 with CRLF: fine
    c.receive(&line);
    line.insert(5, b'a'); // 1001: too long
    c.receive(&line);
    drive(&mut c);
    let text = out(&mut c);
    assert_eq!(codes(&text), [250, 500]);
    assert!(text.contains("Line too long (the limit is 1000 octets including CRLF)"));
}

#[test]
fn too_many_errors_close_the_connection() {
    let mut c = core();
    for _ in 0..30 {
        c.receive(b"GARBAGE\r\n");
    }
    let events = drive(&mut c);
    assert_eq!(events, [Event::Close]);
    let text = out(&mut c);
    assert_eq!(codes(&text).len(), 21, "20 refusals, then 421");
    assert!(text.ends_with("421 4.7.0 Too many errors, closing the connection\r\n"));
}
