//! Fuzzes the FTP server: any bytes, in two chunks, never panic the command parser, the
//! reply parser, the state machine or the protocol; the core holds at most a line's worth of
//! unread input when nothing waits for a decision; split and whole input give the same
//! replies; no path handed on climbs out of the root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::testing::StringTransport;
use torsion::{Factory, Protocol};
use torsion_ftp::command::{parse_command, parse_eprt, parse_epsv_reply, parse_pasv_reply, Command};
use torsion_ftp::reply::ReplyParser;
use torsion_ftp::server_core::{Event, Options, ServerCore};
use torsion_ftp::{FtpFactory, Root};

/// Runs the core over the chunks, accepting every login; returns the replies.
fn run(chunks: &[&[u8]]) -> Vec<u8> {
    let mut c = ServerCore::new(Options {
        anonymous: true,
        tls: true,
        active: true,
        ..Options::default()
    });
    c.set_peer("127.0.0.1".parse().unwrap());
    let mut out = Vec::new();
    for chunk in chunks {
        c.receive(chunk);
        let mut waiting = false;
        while let Some(e) = c.poll() {
            match e {
                Event::Login { .. } => c.logged_in("u", true),
                Event::StartTls => {
                    // Its pipelined input is dropped: stop comparing splits from here.
                    c.tls_started();
                }
                Event::Command(Command::Pasv | Command::Epsv | Command::Port(_) | Command::Eprt(_)) => {
                    c.set_data_ready(true);
                    c.done();
                }
                Event::Command(cmd) => {
                    let text = format!("{cmd:?}");
                    assert!(!text.contains("\"..") && !text.contains("/.."), "{text}");
                    c.reply(250, "ok");
                    c.done();
                }
                // Only after transfer_started, which this target never calls.
                Event::Abort => c.done(),
                Event::Close => {
                    waiting = true;
                    break;
                }
            }
        }
        assert!(waiting || c.closed() || c.buffered() <= (8 << 10) + 1, "{} bytes held", c.buffered());
        out.extend_from_slice(&c.take_output());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    for line in rest.split(|&b| b == b'\n') {
        let _ = parse_command(line);
        let text = String::from_utf8_lossy(line);
        let _ = parse_eprt(&text);
        let _ = parse_pasv_reply(&text);
        let _ = parse_epsv_reply(&text);
    }
    let mut replies = ReplyParser::new();
    replies.feed(rest);
    while let Ok(Some(_)) = replies.next_reply() {}
    let whole = run(&[rest]);
    // A chunk ending in "ABOR\r" is ABOR sent as urgent data (its LF gone): taken as a whole
    // line only when it ends the input so far, so that split differs by design.
    let lone_abor = rest[..at].len() >= 5
        && rest[..at][rest[..at].len() - 5..].eq_ignore_ascii_case(b"ABOR\r");
    if !lone_abor && !rest.windows(4).any(|w| w.eq_ignore_ascii_case(b"AUTH")) {
        assert_eq!(whole, run(&[&rest[..at], &rest[at..]]));
    }
    let root = std::env::temp_dir().join("torsion-fuzz-ftp-root");
    let _ = std::fs::create_dir_all(&root);
    let Ok(root) = Root::new(&root) else { return };
    // Anonymous and read-only: nothing the input says can change the folder.
    let factory = FtpFactory::new().anonymous(root);
    let st = StringTransport::new();
    let t = st.transport();
    let mut ftp = factory.build_protocol(&t.get_peer()).unwrap();
    ftp.connection_made(&t);
    ftp.data_received(&t, &rest[..at]);
    ftp.data_received(&t, &rest[at..]);
});
