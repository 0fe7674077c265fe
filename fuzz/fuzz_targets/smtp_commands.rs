//! Fuzzes the SMTP server: any bytes, in two chunks, never panic the command parser, the
//! state machine or the protocol; the core holds at most a line's worth of unread input when
//! nothing waits for a decision; split and whole input give the same replies and body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::testing::StringTransport;
use torsion::{Factory, Protocol};
use torsion_mail::command::{parse_command, Address, ReversePath};
use torsion_mail::delivery::{Message, MessageDelivery, MessageFactory, Session};
use torsion_mail::reply::Reply;
use torsion_mail::server_core::{Event, Limits, ServerCore};
use torsion_mail::SmtpFactory;

/// Runs the core over the chunks, accepting everything; returns replies and body.
fn run(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let limits = Limits {
        max_message_size: 4096,
        max_recipients: 5,
        ..Limits::default()
    };
    let mut c = ServerCore::new("h", limits);
    c.set_auth(true, false);
    c.set_starttls_available(true);
    let mut body = Vec::new();
    let mut out = Vec::new();
    let mut auths = 0;
    for chunk in chunks {
        c.receive(chunk);
        while let Some(e) = c.poll() {
            match e {
                Event::Mail { .. } | Event::Rcpt { .. } => c.accept(),
                Event::Data => c.start_data(),
                Event::Body(b) => body.extend_from_slice(&b),
                // What was taken before the limit was passed may have come out in a Body or
                // not, depending on the reads; it is dropped either way.
                Event::Oversize => body.clear(),
                Event::EndOfData => c.finish_data(None),
                Event::Auth { .. } => {
                    auths += 1;
                    if auths % 2 == 0 {
                        c.auth_succeeded("u");
                    } else {
                        let _ = c.auth_failed();
                    }
                }
                _ => {}
            }
        }
        assert!(c.awaiting() || c.buffered() < 8192 + 2, "{} bytes held", c.buffered());
        out.extend_from_slice(&c.take_output());
    }
    (out, body)
}

struct Sink;

impl Message for Sink {
    fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

struct Accept;

impl MessageDelivery for Accept {
    fn validate_from(&self, _: &Session, _: &ReversePath) -> Result<(), Reply> {
        Ok(())
    }
    fn validate_to(&self, _: &Session, _: &Address) -> Result<MessageFactory, Reply> {
        Ok(Box::new(|| Ok(Box::new(Sink) as Box<dyn Message>)))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    for line in rest.split(|&b| b == b'\n') {
        let _ = parse_command(line);
    }
    let whole = run(&[rest]);
    // STARTTLS drops what was sent after it in the same read, so the split changes the
    // outcome after one; otherwise, split and whole agree.
    if !rest.windows(8).any(|w| w.eq_ignore_ascii_case(b"STARTTLS")) {
        assert_eq!(whole, run(&[&rest[..at], &rest[at..]]));
    }
    let factory = SmtpFactory::new("h", Accept);
    let st = StringTransport::new();
    let t = st.transport();
    let mut smtp = factory.build_protocol(&t.get_peer()).unwrap();
    smtp.connection_made(&t);
    smtp.data_received(&t, &rest[..at]);
    smtp.data_received(&t, &rest[at..]);
});
