//! Shared helpers: scratch folders, an in-memory delivery, a test PKI, and running a peer
//! program against a server while the reactor runs.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use torsion::testing::StringTransport;
use torsion::{Factory, Protocol, Reactor, Transport};
use torsion_mail::command::{Address, ReversePath};
use torsion_mail::delivery::{Message, MessageDelivery, MessageFactory, Session};
use torsion_mail::reply::Reply;
use torsion_mail::{Smtp, SmtpFactory};

pub(crate) use torsion::testing::TempDir;

/// The files in a Maildir's `new/` (or `tmp/`), read.
pub(crate) fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// What an in-memory delivery saw.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) from: Vec<ReversePath>,
    pub(crate) messages: Vec<(Address, Vec<u8>)>,
    pub(crate) discarded: usize,
    /// Bytes held by messages not yet finished or dropped.
    pub(crate) open_bytes: usize,
    pub(crate) max_open_bytes: usize,
}

/// Takes mail for `*@example.org` except `nobody`; keeps messages in memory, without a
/// Received header.
#[derive(Clone, Default)]
pub(crate) struct Memory(pub(crate) Rc<RefCell<Seen>>);

struct Kept {
    to: Address,
    data: Vec<u8>,
    seen: Rc<RefCell<Seen>>,
    done: bool,
}

impl Message for Kept {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(data);
        let mut s = self.seen.borrow_mut();
        s.open_bytes += data.len();
        s.max_open_bytes = s.max_open_bytes.max(s.open_bytes);
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.done = true;
        let data = std::mem::take(&mut self.data);
        let mut s = self.seen.borrow_mut();
        s.open_bytes -= data.len();
        s.messages.push((self.to.clone(), data));
        Ok(())
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if !self.done {
            let mut s = self.seen.borrow_mut();
            s.open_bytes -= self.data.len();
            s.discarded += 1;
        }
    }
}

impl MessageDelivery for Memory {
    fn validate_from(&self, _: &Session, from: &ReversePath) -> Result<(), Reply> {
        if from.as_ref().is_some_and(|f| f.local() == "spammer") {
            return Err(Reply::new(550, "5.7.1 Go away"));
        }
        self.0.borrow_mut().from.push(from.clone());
        Ok(())
    }

    fn validate_to(&self, _: &Session, to: &Address) -> Result<MessageFactory, Reply> {
        if !to.domain().eq_ignore_ascii_case("example.org") {
            return Err(Reply::new(550, "5.7.1 Relaying denied"));
        }
        if to.local() == "nobody" {
            return Err(Reply::new(550, "5.1.1 No such user here"));
        }
        let seen = self.0.clone();
        let to = to.clone();
        Ok(Box::new(move || {
            Ok(Box::new(Kept {
                to,
                data: Vec::new(),
                seen,
                done: false,
            }) as Box<dyn Message>)
        }))
    }

    fn received_header(&self, _: &Session, _: &ReversePath, _: &[Address]) -> Option<Vec<u8>> {
        None
    }
}

/// An SMTP protocol on a `StringTransport`.
pub(crate) struct Wire {
    pub(crate) st: StringTransport,
    pub(crate) t: Transport,
    pub(crate) smtp: Smtp,
    /// The greeting, taken at connection.
    pub(crate) greeting: String,
}

impl Wire {
    pub(crate) fn new(factory: &SmtpFactory) -> Wire {
        let st = StringTransport::new();
        let t = st.transport();
        let mut smtp = factory.build_protocol(&t.get_peer()).unwrap();
        smtp.connection_made(&t);
        let greeting = String::from_utf8(st.take()).unwrap();
        Wire {
            st,
            t,
            smtp,
            greeting,
        }
    }

    /// Sends `data`; returns the replies written since the last call.
    pub(crate) fn send(&mut self, data: &[u8]) -> String {
        self.smtp.data_received(&self.t, data);
        self.replies()
    }

    pub(crate) fn replies(&mut self) -> String {
        String::from_utf8(self.st.take()).unwrap()
    }
}

/// Reply codes, in order.
pub(crate) fn codes(replies: &str) -> Vec<u16> {
    replies
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| l[..3].parse().unwrap())
        .collect()
}

/// A self-signed certificate for `localhost`: the server's context and the PEM a client
/// trusts.
pub(crate) fn self_signed() -> (torsion::tls::ServerContext, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let pem = cert.cert.pem();
    let id = torsion::tls::Identity::from_pem(
        pem.as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    (torsion::tls::ServerContext::new(id).unwrap(), pem)
}

/// Listens on 127.0.0.1 with `factory`, runs `peer(port)` in a thread while the reactor
/// runs, and returns what it returned.
pub(crate) fn with_server<T: Send + 'static>(
    factory: SmtpFactory,
    peer: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let r = Reactor::new();
    let port = r.listen_tcp_on(0, factory, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    let out = torsion::testing::run_with_peer(&r, 120.0, move || peer(number));
    drop(port);
    out
}
