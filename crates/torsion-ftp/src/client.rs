//! The FTP client (Twisted's `twisted.protocols.ftp.FTPClient`): log in, move around, list,
//! retrieve and store files in passive mode, every operation a [`Deferred`].
//!
//! Commands are sent one at a time in the order asked for; a reply of 400 or more fails
//! the operation's Deferred with an [`FtpError`] holding it. Data connections are passive
//! (EPSV, falling back to PASV), made to the control connection's own host (the address in a
//! PASV reply is ignored: a server cannot point the client elsewhere), and in TLS after
//! [`auth_tls`](FtpClient::auth_tls). Downloads go to a callback chunk by chunk
//! ([`retrieve_to`](FtpClient::retrieve_to)) or into memory up to a limit
//! ([`retrieve`](FtpClient::retrieve)); uploads come from bytes or from a function asked for
//! the next chunk only when the connection has sent the last
//! ([`store_from`](FtpClient::store_from)), so neither holds more than a chunk or two.
//!
//! ```no_run
//! use torsion::defer::ensure_deferred;
//! use torsion::Failure;
//! use torsion_ftp::client::FtpClient;
//!
//! ensure_deferred(async {
//!     let ftp = FtpClient::connect("127.0.0.1", 2121).await?;
//!     ftp.login("anonymous", "me@example.org").await?;
//!     for entry in ftp.list(".").await? {
//!         println!("{} {}", entry.size, entry.name);
//!     }
//!     let text = ftp.retrieve("README", 1 << 20).await?;
//!     ftp.quit().await?;
//!     Ok::<_, Failure>(text)
//! });
//! ```
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use torsion::defer::{ensure_deferred, Deferred, Trigger};
use torsion::endpoints::{connect_protocol, ClientDescription, ClientEndpoint};
use torsion::producer::Producer;
use torsion::tls::ClientContext;
use torsion::{reactor, ConnectionEnd, Failure, Protocol, Transport};

use crate::command::{parse_epsv_reply, parse_pasv_reply};
use crate::reply::{Reply, ReplyParser};

/// A reply the client did not want: 4xx or 5xx, or an unexpected code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FtpError(pub Reply);

impl fmt::Display for FtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FTP server said {} {}", self.0.code, self.0.text())
    }
}

impl std::error::Error for FtpError {}

/// A download was larger than the limit given to [`FtpClient::retrieve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the file is larger than the {} bytes allowed", self.0)
    }
}

impl std::error::Error for TooLarge {}

/// The control connection ended before the reply came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlLost;

impl fmt::Display for ControlLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the FTP control connection was lost")
    }
}

impl std::error::Error for ControlLost {}

/// One entry of a LIST reply, parsed from `ls -l` form (Twisted's `FTPFileListProtocol`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// `d` for a folder, `l` for a symbolic link, `-` for a file.
    pub kind: char,
    /// The nine permission letters (`rwxr-xr-x`).
    pub permissions: String,
    /// The owner, as the server shows it.
    pub owner: String,
    /// The group, as the server shows it.
    pub group: String,
    /// The size in bytes.
    pub size: u64,
    /// The date as the server wrote it (`Jan 02 15:04` or `Jan 02  2006`).
    pub date: String,
    /// The name (spaces kept); for a link, without its ` -> target`.
    pub name: String,
    /// A link's target, if shown.
    pub target: Option<String>,
}

impl ListEntry {
    /// Parses one `ls -l` line; `None` for lines of another form (`total 12`).
    pub fn parse(line: &str) -> Option<ListEntry> {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut rest = line;
        let mut fields = Vec::with_capacity(8);
        for _ in 0..8 {
            rest = rest.trim_start_matches(' ');
            let end = rest.find(' ')?;
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        // One space separates the date from the name; more are part of the name.
        let name = rest.strip_prefix(' ')?;
        let mode = fields[0];
        let kind = mode.chars().next()?;
        if !matches!(kind, 'd' | 'l' | '-') || mode.len() < 10 {
            return None;
        }
        let size = fields[4].parse().ok()?;
        let (name, target) = match (kind, name.split_once(" -> ")) {
            ('l', Some((n, t))) => (n.to_owned(), Some(t.to_owned())),
            _ => (name.to_owned(), None),
        };
        if name.is_empty() {
            return None;
        }
        Some(ListEntry {
            kind,
            permissions: mode[1..10].to_owned(),
            owner: fields[2].to_owned(),
            group: fields[3].to_owned(),
            size,
            date: format!("{} {} {}", fields[5], fields[6], fields[7]),
            name,
            target,
        })
    }

    /// Whether it is a folder.
    pub fn is_dir(&self) -> bool {
        self.kind == 'd'
    }
}

#[derive(Default)]
struct Control {
    parser: ReplyParser,
    ready: VecDeque<Reply>,
    waiting: VecDeque<Trigger<Reply>>,
    lost: bool,
}

type Due = Vec<(Trigger<Reply>, Result<Reply, Failure>)>;

impl Control {
    /// Pairs replies with their waiters; the caller fires them once the borrow is over
    /// (a waiter's code runs at once and may send the next command).
    fn due(&mut self) -> Due {
        let mut due = Vec::new();
        while !self.waiting.is_empty() {
            let Some(reply) = self.ready.pop_front() else {
                break;
            };
            if let Some(t) = self.waiting.pop_front() {
                due.push((t, Ok(reply)));
            }
        }
        if self.lost {
            for t in self.waiting.drain(..) {
                due.push((t, Err(Failure::new(ControlLost))));
            }
        }
        due
    }
}

fn fire(due: Due) {
    for (t, outcome) in due {
        let _ = t.fire(outcome);
    }
}

struct ControlProtocol(Rc<RefCell<Control>>);

impl Protocol for ControlProtocol {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut c = self.0.borrow_mut();
        c.parser.feed(data);
        loop {
            match c.parser.next_reply() {
                Ok(Some(r)) => c.ready.push_back(r),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("FTP client: {e}; closing");
                    t.abort_connection();
                    break;
                }
            }
        }
        let due = c.due();
        drop(c);
        fire(due);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        let mut c = self.0.borrow_mut();
        c.lost = true;
        let due = c.due();
        drop(c);
        fire(due);
    }
}

/// What a data connection does with what arrives.
type Sink = Box<dyn FnMut(&[u8]) -> Result<(), Failure>>;

struct DataProtocol {
    sink: Sink,
    failed: Option<Failure>,
    done: Option<Trigger<()>>,
    peer_done: bool,
}

impl Protocol for DataProtocol {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(f) = (self.sink)(data) {
            self.failed = Some(f);
            t.abort_connection();
        }
    }

    fn read_connection_lost(&mut self, t: &Transport) {
        self.peer_done = true;
        t.lose_connection();
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let outcome = match self.failed.take() {
            Some(f) => Err(f),
            None if matches!(reason, ConnectionEnd::Done) || self.peer_done => Ok(()),
            None => Err(reason.into()),
        };
        if let Some(t) = self.done.take() {
            let _ = t.fire(outcome);
        }
    }
}

/// Sends an upload a chunk at a time: asks for the next only when the last was sent.
struct Uploader {
    t: Transport,
    next: RefCell<Box<dyn FnMut() -> Option<Vec<u8>>>>,
}

impl Producer for Uploader {
    fn resume_producing(&self) {
        let chunk = (self.next.borrow_mut())();
        match chunk {
            Some(bytes) => self.t.write(&bytes),
            None => {
                self.t.unregister_producer();
                self.t.lose_connection();
            }
        }
    }

    fn stop_producing(&self) {}
}

struct Inner {
    control: Rc<RefCell<Control>>,
    t: Transport,
    host: String,
    tls: RefCell<Option<ClientContext>>,
}

/// A logged-in (or about to be) FTP session. Cheap to clone; every clone the same session.
#[derive(Clone)]
pub struct FtpClient {
    inner: Rc<Inner>,
}

fn endpoint(host: &str, port: u16) -> ClientEndpoint {
    ClientEndpoint::new(
        &reactor(),
        ClientDescription::Tcp {
            host: host.to_owned(),
            port,
            timeout: 30.0,
            bind_address: None,
        },
    )
}

impl FtpClient {
    /// Connects to `host:port` and reads the greeting.
    pub fn connect(host: &str, port: u16) -> Deferred<FtpClient> {
        let host = host.to_owned();
        ensure_deferred(async move {
            let control = Rc::new(RefCell::new(Control::default()));
            let conn =
                connect_protocol(&endpoint(&host, port), ControlProtocol(control.clone())).await?;
            let ip = conn
                .transport()
                .get_peer()
                .socket_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or(host);
            let client = FtpClient {
                inner: Rc::new(Inner {
                    control,
                    t: conn.transport().clone(),
                    host: ip,
                    tls: RefCell::new(None),
                }),
            };
            let greeting = client.next_reply().await?;
            if greeting.code != 220 {
                return Err(Failure::new(FtpError(greeting)));
            }
            Ok::<_, Failure>(client)
        })
    }

    fn next_reply(&self) -> Deferred<Reply> {
        let d = Deferred::new();
        let mut c = self.inner.control.borrow_mut();
        c.waiting.push_back(d.trigger());
        let due = c.due();
        drop(c);
        fire(due);
        d
    }

    /// Sends one command line and gives its first reply; one of 400 or more fails with
    /// [`FtpError`]. Line breaks in `line` are refused (they would send a second command).
    pub fn send_command(&self, line: &str) -> Deferred<Reply> {
        if line.contains(['\r', '\n']) {
            return torsion::defer::fail(FtpError(Reply::new(501, "line breaks in a command")));
        }
        self.inner.t.write(format!("{line}\r\n").as_bytes());
        self.next_reply().add_callback_result(|r| {
            if r.code >= 400 {
                Err(Failure::new(FtpError(r)))
            } else {
                Ok(r)
            }
        })
    }

    /// USER and PASS (Twisted's `FTPClient(username, password)` does it on connection).
    pub fn login(&self, user: &str, password: &str) -> Deferred<()> {
        let this = self.clone();
        let password = password.to_owned();
        self.send_command(&format!("USER {user}"))
            .add_callback_deferred(move |r| {
                if r.code == 331 {
                    this.send_command(&format!("PASS {password}"))
                } else {
                    torsion::defer::succeed(r)
                }
            })
            .add_callback_result(|r| {
                if r.code == 230 || r.code == 202 {
                    Ok(())
                } else {
                    Err(Failure::new(FtpError(r)))
                }
            })
    }

    /// AUTH TLS on the control connection (checking the server's certificate with
    /// `context`), then PBSZ 0 and PROT P: data connections are in TLS too. Before
    /// [`login`](Self::login).
    pub fn auth_tls(&self, context: ClientContext) -> Deferred<()> {
        let this = self.clone();
        ensure_deferred(async move {
            let r = this.send_command("AUTH TLS").await?;
            if r.code != 234 {
                return Err(Failure::new(FtpError(r)));
            }
            let ctx = context
                .clone()
                .with_server_name(&this.inner.host)
                .unwrap_or(context);
            this.inner.t.start_tls(ctx.clone().into())?;
            *this.inner.tls.borrow_mut() = Some(ctx);
            this.send_command("PBSZ 0").await?;
            this.send_command("PROT P").await?;
            Ok::<_, Failure>(())
        })
    }

    /// The working directory (PWD), unquoted.
    pub fn pwd(&self) -> Deferred<String> {
        self.send_command("PWD").add_callback_result(|r| {
            let text = r.text();
            let start = text.find('"');
            let end = text.rfind('"');
            match (start, end) {
                (Some(s), Some(e)) if e > s => Ok(text[s + 1..e].replace("\"\"", "\"")),
                _ => Err(Failure::new(FtpError(r))),
            }
        })
    }

    /// Changes the working directory (CWD).
    pub fn cwd(&self, path: &str) -> Deferred<()> {
        self.send_command(&format!("CWD {path}"))
            .add_callback(|_| ())
    }

    /// TYPE I, then opens a passive data connection handing what arrives to `sink`, sends
    /// `command`, and waits for both the connection's end and the final reply.
    fn transfer(
        &self,
        command: String,
        sink: Option<Sink>,
        upload: Option<Box<dyn FnMut() -> Option<Vec<u8>>>>,
    ) -> Deferred<()> {
        let this = self.clone();
        ensure_deferred(async move {
            this.send_command("TYPE I").await?;
            let port = match this.send_command("EPSV").await {
                Ok(r) => parse_epsv_reply(r.text()),
                Err(_) => {
                    let r = this.send_command("PASV").await?;
                    // Only the port is used: the data connection goes to the control
                    // connection's host, whatever address the reply names.
                    parse_pasv_reply(r.text()).map(|a| a.port())
                }
            };
            let Some(port) = port else {
                return Err(Failure::new(FtpError(Reply::new(
                    500,
                    "no port in the passive reply",
                ))));
            };
            let done = Deferred::new();
            let data = DataProtocol {
                sink: sink.unwrap_or_else(|| Box::new(|_| Ok(()))),
                failed: None,
                done: Some(done.trigger()),
                peer_done: false,
            };
            // The data connection's end, never a failure of its own: one not waited for (the
            // command was refused) is no unhandled error.
            let done = done.add_both(|r: Result<(), Failure>| Ok(r.err()));
            let conn = connect_protocol(&endpoint(&this.inner.host, port), data).await?;
            let t = conn.transport().clone();
            let tls = this.inner.tls.borrow().clone();
            if let Some(ctx) = tls {
                t.start_tls(ctx.into())?;
            }
            let first = match this.send_command(&command).await {
                Ok(r) => r,
                Err(f) => {
                    t.abort_connection();
                    return Err(f);
                }
            };
            if first.code >= 200 {
                // Answered without a transfer (an empty listing, say).
                t.lose_connection();
                return Ok(());
            }
            if let Some(next) = upload {
                let producer = Rc::new(Uploader {
                    t: t.clone(),
                    next: RefCell::new(next),
                });
                t.register_producer(producer, false)?;
            }
            let moved = done.await?;
            let last = this.next_reply().await?;
            if let Some(f) = moved {
                return Err(f);
            }
            if last.code != 226 && last.code != 250 {
                return Err(Failure::new(FtpError(last)));
            }
            Ok::<_, Failure>(())
        })
    }

    /// LIST `path`, parsed; lines of other forms are skipped.
    pub fn list(&self, path: &str) -> Deferred<Vec<ListEntry>> {
        self.list_lines(&format!("LIST {path}"))
            .add_callback(|lines| lines.iter().filter_map(|l| ListEntry::parse(l)).collect())
    }

    /// NLST `path`: the names.
    pub fn nlst(&self, path: &str) -> Deferred<Vec<String>> {
        self.list_lines(&format!("NLST {path}"))
    }

    fn list_lines(&self, command: &str) -> Deferred<Vec<String>> {
        let buf = Rc::new(RefCell::new(Vec::new()));
        let b = buf.clone();
        const MAX_LISTING: usize = 64 << 20;
        let sink: Sink = Box::new(move |data| {
            let mut b = b.borrow_mut();
            if b.len() + data.len() > MAX_LISTING {
                return Err(Failure::new(TooLarge(MAX_LISTING)));
            }
            b.extend_from_slice(data);
            Ok(())
        });
        self.transfer(command.to_owned(), Some(sink), None)
            .add_callback(move |()| {
                let bytes = std::mem::take(&mut *buf.borrow_mut());
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|l| l.trim_end_matches('\r').to_owned())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
    }

    /// RETR `path`, each chunk to `consumer` as it arrives (Twisted's `retrieveFile` with a
    /// consumer protocol); an error from it aborts the transfer.
    pub fn retrieve_to(
        &self,
        path: &str,
        consumer: impl FnMut(&[u8]) -> Result<(), Failure> + 'static,
    ) -> Deferred<()> {
        self.transfer(format!("RETR {path}"), Some(Box::new(consumer)), None)
    }

    /// RETR `path` into memory, failing with [`TooLarge`] past `max` bytes.
    pub fn retrieve(&self, path: &str, max: usize) -> Deferred<Vec<u8>> {
        let buf = Rc::new(RefCell::new(Vec::new()));
        let b = buf.clone();
        self.retrieve_to(path, move |data| {
            let mut b = b.borrow_mut();
            if b.len() + data.len() > max {
                return Err(Failure::new(TooLarge(max)));
            }
            b.extend_from_slice(data);
            Ok(())
        })
        .add_callback(move |()| std::mem::take(&mut *buf.borrow_mut()))
    }

    /// STOR `path` from `next`, asked for a chunk each time the last was sent; `None` ends
    /// the file (Twisted's `storeFile` with a producer).
    pub fn store_from(
        &self,
        path: &str,
        next: impl FnMut() -> Option<Vec<u8>> + 'static,
    ) -> Deferred<()> {
        self.transfer(format!("STOR {path}"), None, Some(Box::new(next)))
    }

    /// STOR `path` with `data`.
    pub fn store(&self, path: &str, data: Vec<u8>) -> Deferred<()> {
        let mut data = Some(data);
        self.store_from(path, move || data.take())
    }

    /// QUIT, and the connection closes.
    pub fn quit(&self) -> Deferred<()> {
        let t = self.inner.t.clone();
        self.send_command("QUIT")
            .add_callback(move |_| t.lose_connection())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines() {
        let e = ListEntry::parse(
            "-rw-r--r--   1 ftp      ftp            12 Dec 07 03:20 a file  name.txt\r",
        )
        .unwrap();
        assert_eq!(e.name, "a file  name.txt");
        assert_eq!(e.size, 12);
        assert!(!e.is_dir());
        let l = ListEntry::parse("lrwxrwxrwx 1 root root 7 Jan 1 2020 bin -> usr/bin").unwrap();
        assert_eq!(
            (l.name.as_str(), l.target.as_deref()),
            ("bin", Some("usr/bin"))
        );
        assert_eq!(ListEntry::parse("total 12"), None);
        assert!(ListEntry::parse("drwxr-xr-x 2 a b 4096 Jan  1  2020 d")
            .unwrap()
            .is_dir());
    }
}
