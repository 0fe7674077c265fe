//! Properties: the parser and the state machine never panic, and dot-stuffing round-trips.

use proptest::prelude::*;
use torsion_mail::command::parse_command;
use torsion_mail::server_core::{Event, Limits, ServerCore};

/// Dot-stuffs a body of CRLF lines as a client does (RFC 5321 section 4.5.2).
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line_start = true;
    for (i, &b) in body.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && body[i - 1] == b'\r';
    }
    out
}

proptest! {
    #[test]
    fn the_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_command(&line);
    }

    #[test]
    fn the_state_machine_never_panics_and_keeps_its_input_bounded(
        chunks in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..2000),
                Just(b"EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n".to_vec()),
                Just(b"AUTH LOGIN\r\n".to_vec()),
                Just(b"\r\n.\r\n".to_vec()),
            ],
            0..20,
        )
    ) {
        let mut c = ServerCore::new("h", Limits::default());
        c.set_auth(true, false);
        c.set_starttls_available(true);
        for chunk in chunks {
            c.receive(&chunk);
            while let Some(e) = c.poll() {
                match e {
                    Event::Mail { .. } | Event::Rcpt { .. } => c.accept(),
                    Event::Data => c.start_data(),
                    Event::EndOfData => c.finish_data(None),
                    Event::Auth { .. } => { let _ = c.auth_failed(); }
                    _ => {}
                }
            }
            prop_assert!(c.buffered() <= 10_000, "{} bytes held", c.buffered());
            let _ = c.take_output();
        }
    }

    #[test]
    fn dot_stuffing_round_trips(
        lines in proptest::collection::vec("[.a-z \\r]{0,12}", 0..12),
        split in 0usize..200,
    ) {
        let body: Vec<u8> = lines.iter().flat_map(|l| [l.as_bytes(), b"\r\n"].concat()).collect();
        let mut wire = stuff(&body);
        wire.extend_from_slice(b".\r\n");
        let mut c = ServerCore::new("h", Limits::default());
        c.receive(b"HELO a\r\nMAIL FROM:<>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
        let at = split.min(wire.len());
        let mut got = Vec::new();
        let mut ended = false;
        for part in [&wire[..at], &wire[at..]] {
            c.receive(part);
            while let Some(e) = c.poll() {
                match e {
                    Event::Mail { .. } | Event::Rcpt { .. } => c.accept(),
                    Event::Data => c.start_data(),
                    Event::Body(b) => got.extend_from_slice(&b),
                    Event::EndOfData => { ended = true; c.finish_data(None) }
                    _ => {}
                }
            }
        }
        prop_assert!(ended);
        prop_assert_eq!(got, body);
    }

    #[test]
    fn any_body_in_any_three_reads_is_unstuffed_and_held_to_its_limit(
        lines in proptest::collection::vec("[.a\\r\\n]{0,20}", 0..16),
        limit in 0u64..200,
        cuts in (0usize..400, 0usize..400),
    ) {
        // Lines of dots, letters and stray CRs and LFs: only CRLF ends a line.
        let body: Vec<u8> = lines.iter().flat_map(|l| [l.as_bytes(), b"\r\n"].concat()).collect();
        let mut wire = stuff(&body);
        wire.extend_from_slice(b".\r\nNOOP\r\n");
        let mut c = ServerCore::new("h", Limits { max_message_size: limit, ..Limits::default() });
        c.receive(b"HELO a\r\nMAIL FROM:<>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
        let (i, j) = (cuts.0.min(wire.len()), cuts.1.min(wire.len()));
        let (i, j) = (i.min(j), i.max(j));
        let mut got = Vec::new();
        let (mut ended, mut oversize) = (0, false);
        for part in [&wire[..i], &wire[i..j], &wire[j..]] {
            c.receive(part);
            while let Some(e) = c.poll() {
                match e {
                    Event::Mail { .. } | Event::Rcpt { .. } => c.accept(),
                    Event::Data => c.start_data(),
                    Event::Body(b) => got.extend_from_slice(&b),
                    Event::Oversize => oversize = true,
                    Event::EndOfData => { ended += 1; c.finish_data(None) }
                    _ => {}
                }
            }
        }
        let out = String::from_utf8(c.take_output()).unwrap();
        let last_two: Vec<&str> = out.lines().rev().take(2).map(|l| &l[..3]).collect();
        if body.len() as u64 <= limit {
            prop_assert_eq!(ended, 1);
            prop_assert!(!oversize);
            prop_assert_eq!(got, body);
            prop_assert_eq!(last_two, ["250", "250"]);
        } else {
            prop_assert_eq!(ended, 0);
            prop_assert!(oversize);
            prop_assert!(got.len() as u64 <= limit);
            prop_assert_eq!(last_two, ["250", "552"]);
        }
    }
}
