//! The FTP server's control connection as a state machine, without I/O: bytes in, replies
//! and [`Event`]s out.
//!
//! [`ServerCore`] answers by itself everything that needs neither the file system nor the
//! network: syntax, the order of commands (USER before PASS, a login before anything else,
//! PBSZ before PROT, RNFR before RNTO, a PASV/PORT before a transfer), TYPE/MODE/STRU,
//! FEAT, OPTS UTF8, SYST, NOOP, HELP, REST, PWD, QUIT, the bounce rule for PORT/EPRT (only
//! to the control connection's peer, and only when active mode is on), write permission
//! for read-only (anonymous) logins, the limit on failed logins and on refused commands.
//! Path arguments come out already resolved against the working directory into virtual
//! paths (see [`virtual_path`]); one above the root is answered
//! 550 here.
//!
//! What needs a decision comes out of [`poll`](ServerCore::poll) and the core reads no
//! further command until the caller says it is [`done`](ServerCore::done) (after any number
//! of [`reply`](ServerCore::reply)s: a transfer answers 150 then 226).
//!
//! ```
//! use torsion_ftp::command::Command;
//! use torsion_ftp::server_core::{Event, Options, ServerCore};
//!
//! let mut core = ServerCore::new(Options { anonymous: true, ..Options::default() });
//! core.receive(b"USER anonymous\r\nPASS me@example.org\r\nCWD pub\r\n");
//! let Some(Event::Login { anonymous: true, .. }) = core.poll() else { panic!() };
//! core.logged_in("anonymous", false);
//! assert_eq!(core.poll(), Some(Event::Command(Command::Cwd("/pub".into()))));
//! core.set_cwd("/pub");
//! core.reply(250, "Directory changed to /pub.");
//! core.done();
//! core.receive(b"STOR x\r\nPWD\r\n");
//! assert_eq!(core.poll(), None); // STOR refused (read-only), PWD answered
//! let out = String::from_utf8(core.take_output()).unwrap();
//! assert!(out.ends_with("550 Permission denied.\r\n257 \"/pub\" is the current directory.\r\n"), "{out}");
//! ```
use std::net::{IpAddr, SocketAddr};

use crate::command::{parse_command, Command, CommandError};
use crate::fs::virtual_path;
use crate::reply::Reply;

/// How a server treats its clients.
#[derive(Clone, Debug)]
pub struct Options {
    /// `USER anonymous` (or `ftp`) logs in, read-only, with any password.
    pub anonymous: bool,
    /// AUTH TLS is offered (the caller has a certificate).
    pub tls: bool,
    /// Logins other than anonymous are refused until AUTH TLS (passwords never cross the
    /// network in the clear).
    pub require_tls_for_login: bool,
    /// PORT and EPRT are served (off by default: active mode only ever connects to the
    /// control connection's own peer, but passive mode is enough for every client).
    pub active: bool,
    /// Failed logins before the connection is closed (3).
    pub max_login_failures: u32,
    /// Refused commands before the connection is closed with 421 (20).
    pub max_errors: u32,
    /// The longest command line, CRLF included (8 KiB: paths may be long).
    pub max_line: usize,
    /// The greeting's text.
    pub greeting: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            anonymous: false,
            tls: false,
            require_tls_for_login: false,
            active: false,
            max_login_failures: 3,
            max_errors: 20,
            max_line: 8 << 10,
            greeting: "Torsion FTP server ready.".into(),
        }
    }
}

/// What the core needs decided or done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// USER and PASS: check them, then [`logged_in`](ServerCore::logged_in) or
    /// [`login_failed`](ServerCore::login_failed).
    Login {
        /// The user name.
        user: String,
        /// The password (for anonymous logins, the e-mail address given).
        password: String,
        /// An anonymous login (allowed by [`Options::anonymous`]).
        anonymous: bool,
    },
    /// AUTH TLS was accepted: its 234 is in the output; send it, then start TLS, then
    /// [`tls_started`](ServerCore::tls_started). Commands pipelined after it were dropped.
    StartTls,
    /// A command for the file system or the network, from a logged-in user, its paths
    /// virtual and absolute, write permission checked. Answer with
    /// [`reply`](ServerCore::reply)s, then [`done`](ServerCore::done). For `PORT`/`EPRT`
    /// the address is the client's own (checked); for transfers the data connection was
    /// prepared (PASV, EPSV, PORT or EPRT) and [`take_rest`](ServerCore::take_rest) says
    /// where to start; for `Rnto` the name from RNFR is in
    /// [`take_rename_from`](ServerCore::take_rename_from).
    Command(Command),
    /// ABOR arrived while a transfer runs (after
    /// [`transfer_started`](ServerCore::transfer_started)): end the data connection, answer
    /// 426 for the transfer and 226 for the ABOR, then [`done`](ServerCore::done). Commands
    /// other than ABOR wait for the transfer, as RFC 959 has them.
    Abort,
    /// Close the connection once the output is sent.
    Close,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Auth {
    /// Waiting for USER.
    Nobody,
    /// USER given; waiting for PASS.
    User { name: String, anonymous: bool },
    /// A login is being checked.
    Checking,
    /// Logged in.
    In { writable: bool },
}

/// The control connection's state machine. See the [module](self) documentation.
#[derive(Debug)]
pub struct ServerCore {
    options: Options,
    input: Vec<u8>,
    out: Vec<u8>,
    auth: Auth,
    busy: bool,
    /// A transfer's 150 was sent and its end not yet answered: ABOR is looked for.
    transferring: bool,
    closed: bool,
    discarding: bool,
    cwd: String,
    binary: bool,
    rest: u64,
    rename_from: Option<String>,
    data_ready: bool,
    tls_active: bool,
    pbsz: bool,
    prot_private: bool,
    peer: Option<IpAddr>,
    login_failures: u32,
    errors: u32,
    user: Option<String>,
}

impl ServerCore {
    /// A connection's core; its 220 greeting is in the output.
    pub fn new(options: Options) -> ServerCore {
        let greeting = options.greeting.clone();
        let mut core = ServerCore {
            options,
            input: Vec::new(),
            out: Vec::new(),
            auth: Auth::Nobody,
            busy: false,
            transferring: false,
            closed: false,
            discarding: false,
            cwd: "/".into(),
            binary: false,
            rest: 0,
            rename_from: None,
            data_ready: false,
            tls_active: false,
            pbsz: false,
            prot_private: false,
            peer: None,
            login_failures: 0,
            errors: 0,
            user: None,
        };
        core.reply(220, &greeting);
        core
    }

    /// The control connection's peer: PORT and EPRT may connect only to it.
    pub fn set_peer(&mut self, peer: IpAddr) {
        self.peer = Some(peer);
    }

    /// Adds bytes received from the client.
    pub fn receive(&mut self, data: &[u8]) {
        if !self.closed {
            self.input.extend_from_slice(data);
        }
    }

    /// Bytes received and not yet read as commands.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// Takes the replies written so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Writes a one-line reply.
    pub fn reply(&mut self, code: u16, text: &str) {
        self.out
            .extend_from_slice(&Reply::new(code, text).to_bytes());
    }

    /// Writes a reply.
    pub fn send(&mut self, reply: &Reply) {
        self.out.extend_from_slice(&reply.to_bytes());
    }

    /// The command being handled is answered: read the next.
    pub fn done(&mut self) {
        self.busy = false;
        self.transferring = false;
    }

    /// The command being handled started a transfer (its 150 is sent): until
    /// [`done`](Self::done), an ABOR from the client is acted on at once
    /// ([`Event::Abort`]) instead of waiting behind the transfer.
    pub fn transfer_started(&mut self) {
        self.transferring = true;
    }

    /// Takes an ABOR line out of the input, wherever it is among the buffered lines. Its
    /// end may be `\r\n`, `\n`, or a lone `\r` at the end of the input: clients send ABOR
    /// as TCP urgent data (Python's ftplib sends the whole line with `MSG_OOB`), which
    /// takes its last byte out of the stream. Telnet IP and Synch bytes before it are
    /// skipped (RFC 959, section 4.1.3).
    fn take_abort(&mut self) -> bool {
        let mut start = 0;
        while start < self.input.len() {
            let rest = &self.input[start..];
            let verb = rest
                .iter()
                .position(|b| !matches!(b, 0xff | 0xf4 | 0xf2))
                .unwrap_or(rest.len());
            let line_end = memchr::memchr(b'\n', rest);
            let word = &rest[verb..line_end.unwrap_or(rest.len())];
            let word = word.strip_suffix(b"\r").unwrap_or(word);
            let whole = line_end.is_some() || rest.last() == Some(&b'\r');
            if whole && word.eq_ignore_ascii_case(b"ABOR") {
                let end = line_end.map_or(self.input.len(), |e| start + e + 1);
                self.input.drain(start..end);
                return true;
            }
            match line_end {
                Some(e) => start += e + 1,
                None => return false,
            }
        }
        false
    }

    /// Whether the connection is to close (QUIT, limits, a timeout).
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The working directory (virtual).
    pub fn cwd(&self) -> &str {
        &self.cwd
    }

    /// Sets the working directory (after CWD or CDUP was checked to name a folder).
    pub fn set_cwd(&mut self, vpath: &str) {
        self.cwd = vpath.to_owned();
    }

    /// Whether TYPE I (binary) is on; ASCII (the default) otherwise.
    pub fn binary(&self) -> bool {
        self.binary
    }

    /// Whether data connections are to be in TLS (PROT P).
    pub fn prot_private(&self) -> bool {
        self.prot_private
    }

    /// Whether the control connection is in TLS.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The logged-in user's name.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Where the next transfer starts (REST), reset to 0.
    pub fn take_rest(&mut self) -> u64 {
        std::mem::take(&mut self.rest)
    }

    /// The name RNFR accepted, taken (for RNTO).
    pub fn take_rename_from(&mut self) -> Option<String> {
        self.rename_from.take()
    }

    /// RNFR named something that exists: RNTO may follow.
    pub fn set_rename_from(&mut self, vpath: &str) {
        self.rename_from = Some(vpath.to_owned());
    }

    /// A data connection was prepared (the caller answered PASV/EPSV/PORT/EPRT).
    pub fn set_data_ready(&mut self, ready: bool) {
        self.data_ready = ready;
    }

    /// The login was accepted; `writable` lets the user change files.
    pub fn logged_in(&mut self, user: &str, writable: bool) {
        self.auth = Auth::In { writable };
        self.user = Some(user.to_owned());
        self.reply(230, "User logged in, proceed.");
        self.busy = false;
    }

    /// The login was refused: 530, and past the limit, 421 and [`Event::Close`] next.
    pub fn login_failed(&mut self) {
        self.auth = Auth::Nobody;
        self.login_failures += 1;
        self.busy = false;
        if self.login_failures >= self.options.max_login_failures {
            self.reply(421, "Too many failed logins; closing the connection.");
            self.close();
        } else {
            self.reply(530, "Login incorrect.");
        }
    }

    /// TLS is on for the control connection (after [`Event::StartTls`]). As RFC 4217
    /// section 4 says, the user logs in again.
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.auth = Auth::Nobody;
        self.user = None;
        self.busy = false;
    }

    /// The idle timeout fired: 421 and close.
    pub fn timed_out(&mut self) {
        if !self.closed {
            self.reply(421, "Idle timeout; closing the control connection.");
            self.close();
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.input = Vec::new();
    }

    fn error(&mut self, code: u16, text: &str) {
        self.reply(code, text);
        self.errors += 1;
        if self.errors >= self.options.max_errors {
            self.reply(421, "Too many errors; closing the connection.");
            self.close();
        }
    }

    fn writable(&self) -> bool {
        matches!(self.auth, Auth::In { writable: true })
    }

    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            match memchr::memchr(b'\n', &self.input) {
                Some(end) => {
                    let line: Vec<u8> = self.input.drain(..=end).collect();
                    if std::mem::take(&mut self.discarding) {
                        self.error(500, "Command line too long.");
                        if self.closed {
                            return None;
                        }
                        continue;
                    }
                    let mut line = line;
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Some(line);
                }
                None => {
                    if self.input.len() > self.options.max_line {
                        self.input.clear();
                        self.discarding = true;
                    }
                    return None;
                }
            }
        }
    }

    /// The next thing to decide, after answering every command it can by itself; `None`
    /// when it needs more input or waits for [`done`](Self::done).
    pub fn poll(&mut self) -> Option<Event> {
        loop {
            if self.closed {
                return if std::mem::take(&mut self.busy) {
                    None
                } else {
                    self.busy = true;
                    Some(Event::Close)
                };
            }
            if self.busy {
                if self.transferring && self.take_abort() {
                    return Some(Event::Abort);
                }
                return None;
            }
            let line = match self.next_line() {
                Some(line) => line,
                // ABOR sent as urgent data, its LF gone (see `take_abort`), with no
                // transfer running.
                None if self.take_abort() => {
                    self.reply(226, "No transfer to abort.");
                    continue;
                }
                None => return None,
            };
            // Telnet IP/Synch before a command (clients send them before ABOR).
            let skip = line
                .iter()
                .position(|b| !matches!(b, 0xff | 0xf4 | 0xf2))
                .unwrap_or(line.len());
            let line = &line[skip..];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let command = match parse_command(line) {
                Ok(c) => c,
                Err(CommandError::Unknown(v)) => {
                    self.error(502, &format!("Command '{v}' not implemented."));
                    continue;
                }
                Err(CommandError::Syntax(why)) => {
                    self.error(501, &format!("Syntax error in parameters: {why}."));
                    continue;
                }
                Err(CommandError::NotImplementedForParameter) => {
                    self.error(504, "Command not implemented for that parameter.");
                    continue;
                }
            };
            if let Some(event) = self.command(command) {
                return Some(event);
            }
        }
    }

    fn command(&mut self, command: Command) -> Option<Event> {
        // Commands for everybody.
        match command {
            Command::Quit => {
                self.reply(221, "Goodbye.");
                self.close();
                return None;
            }
            Command::Noop => {
                self.reply(200, "NOOP ok.");
                return None;
            }
            Command::Feat => {
                let mut lines = vec!["Features:".to_owned()];
                if self.options.tls {
                    lines.extend([" AUTH TLS".into(), " PBSZ".into(), " PROT".into()]);
                }
                if self.options.active {
                    lines.push(" EPRT".into());
                }
                lines.extend(
                    [
                        " EPSV",
                        " MDTM",
                        " MLST type*;size*;modify*;perm*;",
                        " REST STREAM",
                        " SIZE",
                        " TVFS",
                        " UTF8",
                        "End",
                    ]
                    .map(String::from),
                );
                self.send(&Reply::multi(211, lines));
                return None;
            }
            Command::Syst => {
                self.reply(215, "UNIX Type: L8");
                return None;
            }
            Command::Help => {
                self.reply(214, "See RFC 959; FEAT lists the extensions.");
                return None;
            }
            Command::Opts(name, value) => {
                if name == "UTF8" && matches!(value.trim().to_ascii_uppercase().as_str(), "ON" | "")
                {
                    self.reply(200, "UTF8 mode is always on.");
                } else {
                    self.error(501, "Option not understood.");
                }
                return None;
            }
            Command::Auth(mech) => {
                if !self.options.tls {
                    self.error(502, "TLS is not offered here.");
                } else if self.tls_active {
                    self.error(503, "TLS is already on.");
                } else if matches!(mech.as_str(), "TLS" | "TLS-C" | "SSL") {
                    self.reply(234, "AUTH TLS ok; starting TLS.");
                    // RFC 4217: nothing sent in the clear after AUTH is read.
                    self.input.clear();
                    self.busy = true;
                    return Some(Event::StartTls);
                } else {
                    self.error(504, "Only AUTH TLS is offered.");
                }
                return None;
            }
            Command::Pbsz(_) => {
                if self.tls_active {
                    self.pbsz = true;
                    self.reply(200, "PBSZ=0");
                } else {
                    self.error(503, "PBSZ needs AUTH TLS first.");
                }
                return None;
            }
            Command::Prot(level) => {
                if !self.tls_active || !self.pbsz {
                    self.error(503, "PROT needs AUTH TLS and PBSZ first.");
                } else {
                    match level {
                        'C' => {
                            self.prot_private = false;
                            self.reply(200, "Protection level set to Clear.");
                        }
                        'P' => {
                            self.prot_private = true;
                            self.reply(200, "Protection level set to Private.");
                        }
                        'S' | 'E' => self.error(536, "Only PROT C and P are offered."),
                        _ => self.error(504, "Unknown protection level."),
                    }
                }
                return None;
            }
            Command::Ccc => {
                self.error(534, "The control connection stays in TLS.");
                return None;
            }
            Command::User(name) => {
                if matches!(self.auth, Auth::In { .. }) {
                    self.error(503, "Already logged in.");
                    return None;
                }
                let anonymous = self.options.anonymous
                    && (name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp"));
                if !anonymous && self.options.require_tls_for_login && !self.tls_active {
                    self.error(530, "Use AUTH TLS before logging in.");
                    return None;
                }
                if anonymous {
                    self.reply(331, "Guest login ok, send your e-mail address as password.");
                } else {
                    self.reply(331, "Password required.");
                }
                self.auth = Auth::User { name, anonymous };
                return None;
            }
            Command::Pass(password) => {
                return match std::mem::replace(&mut self.auth, Auth::Nobody) {
                    Auth::User { name, anonymous } => {
                        self.auth = Auth::Checking;
                        self.busy = true;
                        Some(Event::Login {
                            user: name,
                            password,
                            anonymous,
                        })
                    }
                    other => {
                        self.auth = other;
                        self.error(503, "Login with USER first.");
                        None
                    }
                };
            }
            Command::Acct => {
                self.reply(202, "No account needed.");
                return None;
            }
            _ => {}
        }
        if !matches!(self.auth, Auth::In { .. }) {
            self.error(530, "Please log in with USER and PASS.");
            return None;
        }
        let needs_write = matches!(
            command,
            Command::Stor(_)
                | Command::Appe(_)
                | Command::Dele(_)
                | Command::Rnfr(_)
                | Command::Rnto(_)
                | Command::Mkd(_)
                | Command::Rmd(_)
        );
        if needs_write && !self.writable() {
            self.error(550, "Permission denied.");
            return None;
        }
        if !matches!(command, Command::Rnto(_)) {
            // RNTO must follow RNFR at once.
            if !matches!(command, Command::Rnfr(_)) {
                self.rename_from = None;
            }
        }
        if !matches!(
            command,
            Command::Rest(_) | Command::Retr(_) | Command::Stor(_)
        ) {
            self.rest = 0;
        }
        match command {
            Command::Pwd => {
                let quoted = self.cwd.replace('"', "\"\"");
                self.reply(257, &format!("\"{quoted}\" is the current directory."));
                None
            }
            Command::Type(t) => {
                self.binary = t == 'I';
                self.reply(200, &format!("Type set to {t}."));
                None
            }
            Command::Mode(m) => {
                if m == 'S' {
                    self.reply(200, "Mode S ok.");
                } else {
                    self.error(504, "Only MODE S is served.");
                }
                None
            }
            Command::Stru(s) => {
                if s == 'F' {
                    self.reply(200, "Structure F ok.");
                } else {
                    self.error(504, "Only STRU F is served.");
                }
                None
            }
            Command::Rest(at) => {
                self.rest = at;
                self.reply(350, &format!("Restarting at {at}. Send STOR or RETR."));
                None
            }
            Command::Allo => {
                self.reply(202, "No storage allocation necessary.");
                None
            }
            Command::Stat => {
                let user = self.user.clone().unwrap_or_default();
                self.send(&Reply::multi(
                    211,
                    vec![
                        "Torsion FTP server status:".into(),
                        format!(" Logged in as {user}"),
                        format!(" TYPE: {}", if self.binary { "I" } else { "A" }),
                        "End of status".into(),
                    ],
                ));
                None
            }
            Command::Abor => {
                self.reply(226, "No transfer to abort.");
                None
            }
            Command::Port(addr) | Command::Eprt(addr) => {
                if !self.options.active {
                    self.error(502, "Active mode is off; use PASV or EPSV.");
                    return None;
                }
                if self.peer.is_some_and(|p| !same_ip(p, addr.ip())) || addr.port() < 1024 {
                    // No FTP bounce: data connections only to the client itself, and
                    // never to a privileged port.
                    self.error(504, "Data connections go only to your own address.");
                    return None;
                }
                self.busy = true;
                Some(Event::Command(if matches!(command, Command::Port(_)) {
                    Command::Port(addr)
                } else {
                    Command::Eprt(addr)
                }))
            }
            Command::Cdup => self.path_command(Command::Cwd("..".into())),
            Command::Rnto(_) if self.rename_from.is_none() => {
                self.error(503, "RNFR first.");
                None
            }
            Command::List(_)
            | Command::Nlst(_)
            | Command::Mlsd(_)
            | Command::Retr(_)
            | Command::Stor(_)
            | Command::Appe(_)
                if !self.data_ready =>
            {
                self.error(425, "Use PASV or EPSV first.");
                None
            }
            other => self.path_command(other),
        }
    }

    /// Resolves the command's path (if any) against the working directory and hands it on.
    fn path_command(&mut self, command: Command) -> Option<Event> {
        let resolve = |cwd: &str, p: &str| virtual_path(cwd, p);
        let cwd = self.cwd.clone();
        let fix = |p: Option<String>| -> Result<Option<String>, ()> {
            match p {
                None => Ok(None),
                Some(p) => resolve(&cwd, &p).map(Some).map_err(|_| ()),
            }
        };
        let fix1 = |p: String| resolve(&cwd, &p).map_err(|_| ());
        let resolved = match command {
            Command::Cwd(p) => fix1(p).map(Command::Cwd),
            Command::List(p) => fix(p).map(Command::List),
            Command::Nlst(p) => fix(p).map(Command::Nlst),
            Command::Mlsd(p) => fix(p).map(Command::Mlsd),
            Command::Mlst(p) => fix(p).map(Command::Mlst),
            Command::Retr(p) => fix1(p).map(Command::Retr),
            Command::Stor(p) => fix1(p).map(Command::Stor),
            Command::Appe(p) => fix1(p).map(Command::Appe),
            Command::Dele(p) => fix1(p).map(Command::Dele),
            Command::Rnfr(p) => fix1(p).map(Command::Rnfr),
            Command::Rnto(p) => fix1(p).map(Command::Rnto),
            Command::Mkd(p) => fix1(p).map(Command::Mkd),
            Command::Rmd(p) => fix1(p).map(Command::Rmd),
            Command::Size(p) => fix1(p).map(Command::Size),
            Command::Mdtm(p) => fix1(p).map(Command::Mdtm),
            other => Ok(other),
        };
        match resolved {
            Ok(c) => {
                if matches!(
                    c,
                    Command::List(_)
                        | Command::Nlst(_)
                        | Command::Mlsd(_)
                        | Command::Retr(_)
                        | Command::Stor(_)
                        | Command::Appe(_)
                ) {
                    // One data connection per transfer.
                    self.data_ready = false;
                }
                self.busy = true;
                Some(Event::Command(c))
            }
            Err(()) => {
                self.error(550, "No such file or directory.");
                None
            }
        }
    }
}

/// Whether two addresses are the same host, an IPv4-mapped IPv6 address matching its IPv4.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let norm = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    norm(a) == norm(b)
}

/// A helper for callers: the address PASV advertises for a passive port opened on the
/// control connection's local address `host` and `port`.
pub fn passive_address(host: SocketAddr, port: u16) -> SocketAddr {
    SocketAddr::new(host.ip(), port)
}
