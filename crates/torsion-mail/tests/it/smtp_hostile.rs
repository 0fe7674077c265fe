//! Hostile clients: a 1 MB line, 10,000 RCPTs, DATA past SIZE, pipelined garbage. Each
//! gets clear replies while memory stays bounded.

use torsion_mail::server_core::Limits;
use torsion_mail::SmtpFactory;

use crate::support::{codes, Memory, Wire};

#[test]
fn a_one_megabyte_line_is_answered_500_and_never_held() {
    let mut w = Wire::new(&SmtpFactory::new("h", Memory::default()));
    let chunk = vec![b'A'; 64 << 10];
    for _ in 0..16 {
        assert_eq!(w.send(&chunk), "");
    }
    let r = w.send(b"\r\nNOOP\r\n");
    assert_eq!(codes(&r), [500, 250], "{r}");
    assert!(r.starts_with("500 5.5.2 Line too long"));
}

#[test]
fn ten_thousand_recipients_get_452_past_the_cap_and_one_copy_each_for_the_first_hundred() {
    let memory = Memory::default();
    let mut w = Wire::new(&SmtpFactory::new("h", memory.clone()));
    let mut input = b"EHLO c\r\nMAIL FROM:<a@x.org>\r\n".to_vec();
    for i in 0..10_000 {
        input.extend_from_slice(format!("RCPT TO:<u{i}@example.org>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\nhi\r\n.\r\n");
    let r = w.send(&input);
    let c = codes(&r);
    assert_eq!(c.iter().filter(|&&c| c == 250).count(), 2 + 100 + 1);
    assert_eq!(c.iter().filter(|&&c| c == 452).count(), 9_900);
    assert!(r.contains("452 4.5.3 Too many recipients"));
    assert_eq!(memory.0.borrow().messages.len(), 100);
}

#[test]
fn data_past_size_is_dropped_as_it_arrives_and_answered_552() {
    let memory = Memory::default();
    let factory = SmtpFactory::new("h", memory.clone()).limits(Limits {
        max_message_size: 100_000,
        ..Limits::default()
    });
    let mut w = Wire::new(&factory);
    let r =
        w.send(b"EHLO c\r\nMAIL FROM:<a@x.org> SIZE=1000\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    assert_eq!(codes(&r), [250, 250, 250, 354]);
    let line = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
    // 10 MB, in 64 KiB reads, while the limit is 100 kB.
    let chunk: Vec<u8> = line.iter().copied().cycle().take(64 << 10).collect();
    for _ in 0..160 {
        assert_eq!(w.send(&chunk), "");
    }
    let r = w.send(b"\r\n.\r\nNOOP\r\n");
    assert_eq!(codes(&r), [552, 250], "{r}");
    let seen = memory.0.borrow();
    assert!(seen.messages.is_empty());
    assert_eq!(seen.discarded, 1);
    assert!(
        seen.max_open_bytes <= 100_000,
        "{} bytes stored",
        seen.max_open_bytes
    );
}

#[test]
fn pipelined_garbage_is_cut_off_after_twenty_errors() {
    let mut w = Wire::new(&SmtpFactory::new("h", Memory::default()));
    let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let r = w.send(&garbage);
    let r = r + &w.send(&garbage);
    assert!(
        r.ends_with("421 4.7.0 Too many errors, closing the connection\r\n"),
        "{r}"
    );
    assert!(w.st.disconnecting());
    assert_eq!(w.send(b"NOOP\r\n"), "", "nothing is read after the 421");
}
