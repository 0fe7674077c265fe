//! The idle timeout (Twisted's `SMTP.timeout`, 600 s, closing with 421), timed on the test
//! `Clock`, and write-side backpressure: a client that pipelines and never reads stops
//! being read.

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use torsion::testing::{Clock, StringTransport};
use torsion::transport::{Address, TransportImpl};
use torsion::{Factory, Protocol, Transport};
use torsion_mail::server_core::MAX_OUTPUT;
use torsion_mail::{MaildirDomain, SmtpFactory};

use crate::support::{codes, files_in, Memory, TempDir, Wire};

/// This thread's log output, captured.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn the_default_timeout_is_twisteds_ten_minutes() {
    assert_eq!(
        torsion_mail::smtp::DEFAULT_TIMEOUT,
        Duration::from_secs(600)
    );
    let clock = Clock::new();
    let mut w =
        Wire::new(&SmtpFactory::new("mx.example.org", Memory::default()).clock(clock.clone()));
    clock.advance(599.0);
    assert_eq!(w.replies(), "");
    assert!(!w.st.disconnecting());
    clock.advance(1.0);
    assert_eq!(
        w.replies(),
        "421 4.4.2 mx.example.org Timeout, closing the connection\r\n"
    );
    assert!(w.st.disconnecting());
    assert!(!w.st.aborted(), "the 421 is sent before closing");
}

#[test]
fn every_byte_received_restarts_the_period() {
    let clock = Clock::new();
    let factory = SmtpFactory::new("h", Memory::default())
        .timeout(Some(Duration::from_secs(30)))
        .clock(clock.clone());
    let mut w = Wire::new(&factory);
    // A command a byte at a time, 29 s apart: each byte is activity.
    for byte in b"NOOP\r" {
        clock.advance(29.0);
        assert_eq!(w.send(&[*byte]), "");
    }
    clock.advance(29.0);
    assert_eq!(codes(&w.send(b"\n")), [250]);
    clock.advance(29.9);
    assert!(!w.st.disconnecting());
    clock.advance(0.1);
    assert_eq!(codes(&w.replies()), [421]);
    assert!(w.st.disconnecting());
    assert_eq!(w.send(b"NOOP\r\n"), "", "nothing is read after the 421");
}

#[test]
fn no_timeout_waits_for_ever() {
    let clock = Clock::new();
    let factory = SmtpFactory::new("h", Memory::default())
        .timeout(None)
        .clock(clock.clone());
    let mut w = Wire::new(&factory);
    clock.advance(1e9);
    assert!(!w.st.disconnecting());
    assert_eq!(codes(&w.send(b"NOOP\r\n")), [250]);
    assert!(clock.pending_call_times().is_empty(), "no timer was armed");
}

#[test]
fn a_client_stalled_mid_data_is_dropped_with_421_a_log_line_and_no_partial_message() {
    let log = Log::default();
    let _guard = log.start();
    let dir = TempDir::new("stalled");
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    domain.add_user("alice").unwrap();
    let clock = Clock::new();
    let factory = SmtpFactory::new("mx.example.org", domain)
        .timeout(Some(Duration::from_secs(600)))
        .clock(clock.clone());
    let mut w = Wire::new(&factory);
    let r =
        w.send(b"EHLO c\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
    assert_eq!(codes(&r), [250, 250, 250, 354]);
    // Enough body to leave the message's buffer, then nothing.
    let body = b"Subject: half\r\n\r\n".repeat(8000);
    assert_eq!(w.send(&body), "");
    let tmp = dir.path().join("alice/tmp");
    assert_eq!(
        files_in(&tmp).len(),
        1,
        "the message is being written in tmp/"
    );
    clock.advance(600.0);
    assert_eq!(
        w.replies(),
        "421 4.4.2 mx.example.org Timeout, closing the connection\r\n"
    );
    assert!(w.st.disconnecting());
    assert!(files_in(&tmp).is_empty(), "the partial message is removed");
    assert!(files_in(&dir.path().join("alice/new")).is_empty());
    let text = log.text();
    assert!(
        text.contains("stalled mid-DATA for 600 s") && text.contains("string-transport-peer"),
        "{text}"
    );
    // The end of the message, arriving late, is not read.
    assert_eq!(w.send(b".\r\nQUIT\r\n"), "");
    assert!(files_in(&dir.path().join("alice/new")).is_empty());
}

#[test]
fn a_timeout_while_the_client_takes_no_replies_aborts() {
    let clock = Clock::new();
    let factory = SmtpFactory::new("h", Memory::default()).clock(clock.clone());
    let w = Wire::new(&factory);
    w.st.set_buffered_size(1 << 20);
    clock.advance(600.0);
    assert!(
        w.st.aborted(),
        "a 421 nobody reads would hold the connection for ever"
    );
}

/// A connection whose client reads nothing until told to: a [`StringTransport`] that also
/// counts what was written and not yet read as its unsent buffer, as a socket's does.
struct Unread {
    st: StringTransport,
    t: Transport,
    unsent: Cell<usize>,
}

impl TransportImpl for Unread {
    fn write(&self, data: &[u8]) {
        self.unsent.set(self.unsent.get() + data.len());
        self.t.write(data);
    }
    fn lose_connection(&self) {
        self.t.lose_connection();
    }
    fn abort_connection(&self) {
        self.t.abort_connection();
    }
    fn get_peer(&self) -> Address {
        self.t.get_peer()
    }
    fn get_host(&self) -> Address {
        self.t.get_host()
    }
    fn wrapped(&self) -> Option<&Transport> {
        Some(&self.t)
    }
    fn buffered_size(&self) -> usize {
        self.unsent.get()
    }
}

/// A client pipelines 100,000 NOOPs (600 kB) and reads nothing: the server answers at most
/// one batch of replies past the transport's high watermark, then stops reading; once the
/// client reads, every command is answered, in order.
#[test]
fn a_client_that_pipelines_and_never_reads_stops_being_read() {
    let st = StringTransport::new();
    let unread = Rc::new(Unread {
        st: st.clone(),
        t: st.transport(),
        unsent: Cell::new(0),
    });
    let t = Transport::new(unread.clone());
    let factory = SmtpFactory::new("h", Memory::default());
    let mut smtp = factory.build_protocol(&t.get_peer()).unwrap();
    smtp.connection_made(&t);
    assert!(
        st.streaming(),
        "the connection registers as a streaming producer"
    );
    let (high, _) = t.write_buffer_limits();
    let noops = b"NOOP\r\n".repeat(100_000);
    let mut fed = 0;
    // The transport delivers 64 KiB reads until it is paused; nobody reads the replies.
    let mut reads = 0;
    while fed < noops.len() && !st.paused() {
        let end = (fed + (64 << 10)).min(noops.len());
        smtp.data_received(&t, &noops[fed..end]);
        fed = end;
        reads += 1;
        // The reactor tells the producer about the full buffer (later than the write).
        unread.st.set_buffered_size(unread.unsent.get());
    }
    let written = st.value().len();
    assert!(st.paused(), "reading stopped");
    assert!(st.producer_paused());
    assert_eq!(reads, 1, "{fed} bytes read");
    assert!(
        written <= high + MAX_OUTPUT + 64,
        "{written} bytes of replies held for a client that reads nothing"
    );
    // A read already in flight when reading paused is held, not answered.
    let end = fed + 4096;
    smtp.data_received(&t, &noops[fed..end]);
    fed = end;
    assert_eq!(st.value().len(), written);

    // The client reads everything it is sent from now on: answering resumes, batch by
    // batch, each batch read before the next.
    let mut rounds = 0;
    loop {
        unread.unsent.set(0);
        unread.st.set_buffered_size(0);
        if !st.paused() {
            if fed == noops.len() {
                break;
            }
            let end = (fed + (64 << 10)).min(noops.len());
            smtp.data_received(&t, &noops[fed..end]);
            fed = end;
        }
        unread.st.set_buffered_size(unread.unsent.get());
        rounds += 1;
        assert!(rounds < 10_000);
    }
    let replies = String::from_utf8(st.value()).unwrap();
    let mut lines = replies.lines();
    assert_eq!(lines.next(), Some("220 h ESMTP Torsion"));
    let others: Vec<&str> = lines.filter(|l| *l != "250 2.0.0 OK").collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(
        codes(&replies).len(),
        1 + 100_000,
        "every NOOP answered once"
    );
}
