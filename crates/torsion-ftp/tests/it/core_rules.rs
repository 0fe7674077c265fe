//! The control connection's rules, on the I/O-free core; and properties of the parsers
//! over arbitrary input.

use proptest::prelude::*;
use torsion_ftp::command::{format_pasv, parse_command, parse_eprt, parse_pasv_reply, Command};
use torsion_ftp::fs::virtual_path;
use torsion_ftp::reply::{Reply, ReplyParser};
use torsion_ftp::server_core::{Event, Options, ServerCore};

fn codes(out: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| l[..3].parse().unwrap())
        .collect()
}

fn logged_in(options: Options, writable: bool) -> ServerCore {
    let mut core = ServerCore::new(options);
    core.receive(b"USER alice\r\nPASS pw\r\n");
    assert!(matches!(
        core.poll(),
        Some(Event::Login {
            anonymous: false,
            ..
        })
    ));
    core.logged_in("alice", writable);
    core.take_output();
    core
}

#[test]
fn nothing_before_a_login() {
    let mut core = ServerCore::new(Options::default());
    core.receive(b"PWD\r\nRETR x\r\nPASS early\r\nPASV\r\n");
    assert_eq!(core.poll(), None);
    assert_eq!(codes(&core.take_output()), [220, 530, 530, 503, 530]);
}

#[test]
fn failed_logins_are_limited() {
    let mut core = ServerCore::new(Options::default());
    for _ in 0..3 {
        core.receive(b"USER bob\r\nPASS guess\r\n");
        assert!(matches!(core.poll(), Some(Event::Login { .. })));
        core.login_failed();
    }
    assert_eq!(core.poll(), Some(Event::Close));
    let out = core.take_output();
    assert_eq!(codes(&out), [220, 331, 530, 331, 530, 331, 421]);
}

#[test]
fn anonymous_is_read_only_and_off_by_default() {
    let mut off = ServerCore::new(Options::default());
    off.receive(b"USER anonymous\r\nPASS x\r\n");
    assert!(matches!(
        off.poll(),
        Some(Event::Login {
            anonymous: false,
            ..
        })
    ));
    let mut core = ServerCore::new(Options {
        anonymous: true,
        ..Options::default()
    });
    core.receive(b"USER ftp\r\nPASS a@b\r\n");
    assert!(matches!(
        core.poll(),
        Some(Event::Login {
            anonymous: true,
            ..
        })
    ));
    core.logged_in("anonymous", false);
    core.receive(b"DELE x\r\nMKD d\r\nRNFR a\r\nSTOR f\r\nAPPE f\r\nRMD d\r\n");
    assert_eq!(core.poll(), None);
    assert_eq!(
        codes(&core.take_output()),
        [220, 331, 230, 550, 550, 550, 550, 550, 550]
    );
}

#[test]
fn prot_needs_auth_tls_and_pbsz() {
    let mut core = ServerCore::new(Options {
        tls: true,
        require_tls_for_login: true,
        ..Options::default()
    });
    core.receive(b"PBSZ 0\r\nPROT P\r\nUSER alice\r\nAUTH TLS\r\nNOOP\r\n");
    assert_eq!(core.poll(), Some(Event::StartTls));
    // What was pipelined after AUTH is dropped (RFC 4217: no plaintext injection).
    core.tls_started();
    assert_eq!(core.poll(), None);
    assert_eq!(codes(&core.take_output()), [220, 503, 503, 530, 234]);
    core.receive(b"PROT P\r\nPBSZ 0\r\nPROT P\r\nPROT S\r\n");
    assert_eq!(core.poll(), None);
    assert_eq!(codes(&core.take_output()), [503, 200, 200, 536]);
    assert!(core.prot_private());
}

#[test]
fn transfers_need_a_data_connection_and_paths_are_resolved() {
    let mut core = logged_in(Options::default(), true);
    core.receive(b"RETR a\r\nCWD /x/y\r\n");
    assert_eq!(
        core.poll(),
        Some(Event::Command(Command::Cwd("/x/y".into())))
    );
    core.set_cwd("/x/y");
    core.done();
    core.receive(b"CDUP\r\n");
    assert_eq!(core.poll(), Some(Event::Command(Command::Cwd("/x".into()))));
    core.set_cwd("/x");
    core.done();
    core.receive(b"SIZE ../../../etc/passwd\r\nREST 10\r\nRNTO b\r\nEPSV\r\n");
    assert_eq!(core.poll(), Some(Event::Command(Command::Epsv)));
    core.set_data_ready(true);
    core.done();
    core.receive(b"REST 5\r\nRETR ../f\r\n");
    assert_eq!(
        core.poll(),
        Some(Event::Command(Command::Retr("/f".into())))
    );
    assert_eq!(core.take_rest(), 5);
    assert_eq!(codes(&core.take_output()), [425, 550, 350, 503, 350]);
}

#[test]
fn abor_during_a_transfer_is_acted_on_at_once_and_other_commands_wait() {
    let retr = |core: &mut ServerCore| {
        core.receive(b"EPSV\r\n");
        assert_eq!(core.poll(), Some(Event::Command(Command::Epsv)));
        core.set_data_ready(true);
        core.done();
        core.receive(b"RETR f\r\n");
        assert!(matches!(
            core.poll(),
            Some(Event::Command(Command::Retr(_)))
        ));
        core.transfer_started();
    };
    let mut core = logged_in(Options::default(), true);
    retr(&mut core);
    // A command queued before ABOR waits; ABOR does not.
    core.receive(b"PWD\r\nABOR\r\n");
    assert_eq!(core.poll(), Some(Event::Abort));
    core.done();
    assert_eq!(core.poll(), None, "PWD was answered by the core");
    assert_eq!(codes(&core.take_output()), [257]);
    // As Python's ftplib sends it: the whole line as urgent data, its last byte taken out
    // of the stream.
    retr(&mut core);
    core.receive(b"ABOR\r");
    assert_eq!(core.poll(), Some(Event::Abort));
    core.done();
    // The LF arriving later (SO_OOBINLINE on the client's side) is an empty line.
    core.receive(b"\nNOOP\r\n");
    assert_eq!(core.poll(), None);
    assert_eq!(codes(&core.take_output()), [200]);
    // With Telnet IP and Synch before it, as RFC 959 describes.
    retr(&mut core);
    core.receive(b"\xff\xf4\xff\xf2abor\r\n");
    assert_eq!(core.poll(), Some(Event::Abort));
    core.done();
    // Not during a transfer: an ordinary command, answered 226 by the core.
    core.receive(b"\xff\xf4\xf2ABOR\r\n");
    assert_eq!(core.poll(), None);
    assert_eq!(codes(&core.take_output()), [226]);
    // The same with its LF taken out of the stream and no transfer running.
    core.receive(b"ABOR\r");
    assert_eq!(core.poll(), None);
    assert_eq!(codes(&core.take_output()), [226]);
    // A half line that is not ABOR is left alone until the transfer ends.
    retr(&mut core);
    core.receive(b"ABORT\r\nAB");
    assert_eq!(core.poll(), None);
    core.done();
    core.receive(b"OR\r\n");
    assert_eq!(core.poll(), None);
    assert_eq!(codes(&core.take_output()), [502, 226]);
}

#[test]
fn port_goes_only_to_the_peer() {
    let mut core = logged_in(
        Options {
            active: true,
            ..Options::default()
        },
        true,
    );
    core.set_peer("192.0.2.7".parse().unwrap());
    core.receive(b"PORT 198,51,100,1,19,137\r\nEPRT |1|192.0.2.7|21|\r\nPORT 192,0,2,7,19,137\r\n");
    assert_eq!(
        core.poll(),
        Some(Event::Command(Command::Port(
            "192.0.2.7:5001".parse().unwrap()
        )))
    );
    assert_eq!(codes(&core.take_output()), [504, 504]);
}

#[test]
fn replies_cannot_be_forged_by_names() {
    let r = Reply::multi(
        250,
        vec![
            "Listing".into(),
            "226 fake\r\n550 more".into(),
            "End".into(),
        ],
    );
    let bytes = r.to_bytes();
    let mut p = ReplyParser::new();
    p.feed(&bytes);
    let back = p.next_reply().unwrap().unwrap();
    assert_eq!(back.code, 250);
    assert_eq!(back.lines.len(), 3);
    assert!(p.next_reply().unwrap().is_none());
}

#[test]
fn long_lines_and_garbage_end_the_connection() {
    let mut core = ServerCore::new(Options::default());
    core.receive(&vec![b'A'; 100_000]);
    core.receive(b"\r\n");
    assert_eq!(core.poll(), None);
    assert!(core.buffered() < 10_000);
    for _ in 0..30 {
        core.receive(b"BOGUS\r\n");
    }
    assert_eq!(core.poll(), Some(Event::Close));
    let out = core.take_output();
    assert_eq!(codes(&out).last(), Some(&421));
}

proptest! {
    #[test]
    fn any_bytes_never_panic_and_stay_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..20)) {
        let mut core = ServerCore::new(Options { anonymous: true, tls: true, active: true, ..Options::default() });
        core.set_peer("127.0.0.1".parse().unwrap());
        // A transfer runs until the chunk's commands are looked through (so an ABOR after
        // it in the same chunk is acted on), then ends.
        let mut in_transfer = false;
        for c in chunks {
            core.receive(&c);
            loop {
                while let Some(event) = core.poll() {
                    match event {
                        Event::Login { .. } => core.logged_in("x", true),
                        Event::StartTls => core.tls_started(),
                        Event::Command(Command::Epsv | Command::Pasv | Command::Port(_) | Command::Eprt(_)) => {
                            core.set_data_ready(true);
                            core.done();
                        }
                        Event::Command(Command::Retr(_) | Command::Stor(_) | Command::List(_)) => {
                            core.transfer_started();
                            in_transfer = true;
                        }
                        Event::Command(cmd) => {
                            // Every path handed on is absolute and free of dot segments.
                            let text = format!("{cmd:?}");
                            prop_assert!(!text.contains("\"..") && !text.contains("/.."), "{text}");
                            core.reply(200, "ok");
                            core.done();
                        }
                        Event::Abort => {
                            in_transfer = false;
                            core.done();
                        }
                        Event::Close => break,
                    }
                }
                if !std::mem::take(&mut in_transfer) || core.closed() {
                    break;
                }
                core.reply(226, "done");
                core.done();
            }
            prop_assert!(core.buffered() <= 8 << 10 | 3000);
            core.take_output();
        }
    }

    #[test]
    fn commands_parse_without_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_command(&line);
        let _ = parse_eprt(&String::from_utf8_lossy(&line));
        let _ = parse_pasv_reply(&String::from_utf8_lossy(&line));
    }

    #[test]
    fn virtual_paths_never_climb(cwd in "(/[a-z.]{1,3}){0,4}", arg in "[a-z./]{0,20}") {
        if let Ok(p) = virtual_path(&cwd, &arg) {
            prop_assert!(p.starts_with('/'));
            prop_assert!(!p.split('/').any(|s| s == ".." || s == "."));
        }
    }

    #[test]
    fn pasv_round_trips(a in any::<[u8; 4]>(), port in any::<u16>()) {
        let addr = std::net::SocketAddr::from((a, port));
        prop_assert_eq!(parse_pasv_reply(&format_pasv(addr)), Some(addr));
    }

    #[test]
    fn replies_round_trip(code in 100u16..600, lines in proptest::collection::vec("[ -~]{0,40}", 1..5)) {
        let r = Reply::multi(code, lines);
        let mut p = ReplyParser::new();
        p.feed(&r.to_bytes());
        let back = p.next_reply().unwrap().unwrap();
        prop_assert_eq!(back.code, code);
        prop_assert_eq!(back.lines.len(), r.lines.len());
        prop_assert!(p.next_reply().unwrap().is_none());
    }
}
