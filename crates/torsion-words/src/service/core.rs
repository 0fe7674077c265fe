//! [`ChatCore`]: the chat service's state and its IRC server commands, without I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::irc::{Message, MAX_LINE};

/// A connection's number in a [`ChatCore`].
pub type ClientId = u64;

/// The limits and names of a [`ChatCore`]. `Default` gives a server that real clients are
/// happy with and that a hostile one cannot grow without bound.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's name, the prefix of its replies (`irc.example.org`).
    pub name: String,
    /// The network's name, in the welcome and `RPL_ISUPPORT`'s `NETWORK=`.
    pub network: String,
    /// The message of the day, one line per entry; `None` answers 422 (no MOTD).
    pub motd: Option<Vec<String>>,
    /// Whether registration needs a `PASS` checked by [`Output::Login`] (a password file).
    pub require_password: bool,
    /// The most channels one user may be in (405 past it; `CHANLIMIT` in 005).
    pub max_channels_per_user: usize,
    /// The most channels on the server at once (405 for a JOIN that would create another).
    pub max_channels: usize,
    /// The most lines a client may send in a burst (the token bucket's size).
    pub flood_burst: f64,
    /// Lines per second a client earns back (the token bucket's rate).
    pub flood_rate: f64,
    /// The most lines held back by flood control; past it the client is dropped.
    pub flood_queue: usize,
    /// Seconds of silence from a registered client before the server sends it a PING.
    pub ping_interval: f64,
    /// Seconds a PING may go unanswered (no line at all) before the client is dropped.
    pub ping_timeout: f64,
    /// Seconds a connection has to register before it is dropped.
    pub registration_timeout: f64,
    /// The most connections at once; past it a new one is told `ERROR` and closed.
    pub max_clients: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            name: "torsion.irc".to_owned(),
            network: "Torsion".to_owned(),
            motd: None,
            require_password: false,
            max_channels_per_user: 50,
            max_channels: 10_000,
            flood_burst: 20.0,
            flood_rate: 4.0,
            flood_queue: 100,
            ping_interval: 120.0,
            ping_timeout: 60.0,
            registration_timeout: 60.0,
            max_clients: 10_000,
        }
    }
}

/// What the core asks of the I/O around it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this line (without CR LF; at most 510 bytes) to the client.
    Line(ClientId, String),
    /// Close the client's connection once its lines are sent; the reason is for the log.
    Close(ClientId, String),
    /// Check the client's password (`PASS`) for its nickname, then call
    /// [`ChatCore::login_result`].
    Login {
        /// Who is registering.
        client: ClientId,
        /// The nickname, the user name to check.
        nick: String,
        /// The password the client gave with `PASS`.
        password: String,
    },
}

/// The longest nickname (`NICKLEN`).
pub const NICKLEN: usize = 30;
/// The longest channel name (`CHANNELLEN`).
pub const CHANNELLEN: usize = 50;
/// The longest topic (`TOPICLEN`), and kick or away text.
pub const TOPICLEN: usize = 390;
/// The most targets of one PRIVMSG or NOTICE (`TARGMAX`).
const MAX_TARGETS: usize = 4;
/// The most parameter-taking mode changes in one MODE (`MODES`).
const MAX_MODES: usize = 4;
/// The most lines WHO answers with.
const MAX_WHO: usize = 200;
/// Ban masks one channel keeps (`+b`); more are refused with 478, as ircds' MAXBANS.
pub const MAX_BANS: usize = 50;
/// Channels one user may hold an invitation to at once; the oldest is forgotten past it.
const MAX_INVITES: usize = 20;

/// IRC's case folding (rfc1459 casemapping), as a key.
fn fold(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'[' => '{',
            b']' => '}',
            b'\\' => '|',
            b'~' => '^',
            _ => char::from(b.to_ascii_lowercase()),
        })
        .collect()
}

/// Whether `nick` is a nickname (RFC 2812 §2.3.1, up to [`NICKLEN`]).
pub fn valid_nick(nick: &str) -> bool {
    let special = |b: u8| b"[]\\`_^{|}".contains(&b);
    let bytes = nick.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= NICKLEN
        && (bytes[0].is_ascii_alphabetic() || special(bytes[0]))
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || special(b) || b == b'-')
}

/// Whether `name` is a channel name this server takes (`#`, up to [`CHANNELLEN`], no space,
/// comma, BEL or control character).
pub fn valid_channel(name: &str) -> bool {
    name.len() > 1
        && name.len() <= CHANNELLEN
        && name.starts_with('#')
        && !name.bytes().any(|b| b <= b' ' || b == b',' || b == 0x7f)
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `text` matches the IRC glob `mask` (`*` any run, `?` one character), compared
/// in the rfc1459 case mapping the server folds names with.
fn mask_matches(mask: &str, text: &str) -> bool {
    let (m, t): (Vec<char>, Vec<char>) =
        (fold(mask).chars().collect(), fold(text).chars().collect());
    // Iterative glob with one backtrack point: linear in practice, never exponential.
    let (mut mi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == t[ti]) {
            mi += 1;
            ti += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, ti));
            mi += 1;
        } else if let Some((smi, sti)) = star {
            mi = smi + 1;
            ti = sti + 1;
            star = Some((smi, sti + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == '*')
}

/// A ban mask completed as ircds do: `nick` becomes `nick!*@*`, `user@host` becomes
/// `*!user@host`, and missing parts are `*`.
fn normal_mask(mask: &str) -> String {
    let (nick, rest) = match mask.split_once('!') {
        Some((n, r)) => (n, Some(r)),
        None if mask.contains('@') => ("*", Some(mask)),
        None => (mask, None),
    };
    let (user, host) = match rest {
        Some(r) => r.split_once('@').unwrap_or((r, "*")),
        None => ("*", "*"),
    };
    let part = |p: &str| {
        if p.is_empty() {
            "*".to_owned()
        } else {
            p.to_owned()
        }
    };
    cut(
        &format!("{}!{}@{}", part(nick), part(user), part(host)),
        100,
    )
    .to_owned()
}

struct Client {
    nick: Option<String>,
    user: Option<(String, String)>,
    host: String,
    password: Option<String>,
    registered: bool,
    logging_in: bool,
    invisible: bool,
    away: Option<String>,
    /// Folded names of the channels the client is in.
    channels: BTreeSet<String>,
    /// Folded names of the invite-only channels the client was invited to and has not
    /// joined yet (INVITE), oldest first.
    invited: VecDeque<String>,
    connected_at: f64,
    signon: f64,
    last_spoke: f64,
    last_heard: f64,
    ping_sent: Option<f64>,
    tokens: f64,
    tokens_at: f64,
    held: VecDeque<String>,
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
    /// Dropping the rest of a line that was too long.
    overlong: bool,
}

impl Client {
    fn nick(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    fn mask(&self) -> String {
        let user = self.user.as_ref().map_or("unknown", |(u, _)| u.as_str());
        format!("{}!{}@{}", self.nick(), user, self.host)
    }
}

#[derive(Default, Clone, Copy)]
struct Member {
    op: bool,
    voice: bool,
}

impl Member {
    fn prefix(self) -> &'static str {
        if self.op {
            "@"
        } else if self.voice {
            "+"
        } else {
            ""
        }
    }
}

struct Channel {
    name: String,
    topic: Option<(String, String, u64)>,
    members: BTreeMap<ClientId, Member>,
    topic_ops_only: bool,
    no_external: bool,
    moderated: bool,
    key: Option<String>,
    limit: Option<usize>,
    invite_only: bool,
    /// Ban masks (`nick!user@host` globs with `*` and `?`), with who set them and when.
    bans: Vec<(String, String, u64)>,
    created: u64,
}

impl Channel {
    fn banned(&self, mask: &str) -> bool {
        self.bans.iter().any(|(b, _, _)| mask_matches(b, mask))
    }

    fn modes(&self, show_key: bool) -> (String, Vec<String>) {
        let mut m = "+".to_owned();
        let mut args = Vec::new();
        if self.invite_only {
            m.push('i');
        }
        if self.moderated {
            m.push('m');
        }
        if self.no_external {
            m.push('n');
        }
        if self.topic_ops_only {
            m.push('t');
        }
        if let Some(k) = &self.key {
            m.push('k');
            args.push(if show_key { k.clone() } else { "*".to_owned() });
        }
        if let Some(l) = self.limit {
            m.push('l');
            args.push(l.to_string());
        }
        (m, args)
    }
}

/// The chat service (Twisted's `twisted.words.service`: users, groups, topics, modes)
/// speaking IRC to its clients, without I/O: bytes and the time go in, [`Output`]s come out.
///
/// ```
/// use torsion_words::service::{ChatCore, Output, ServerConfig};
///
/// let mut chat = ChatCore::new(ServerConfig::default());
/// chat.connect(1, "127.0.0.1", 0.0);
/// chat.data_received(1, b"NICK alice\r\nUSER alice 0 * :Alice\r\n", 0.0);
/// let out = chat.take_output();
/// assert!(matches!(&out[0], Output::Line(1, l) if l.starts_with(":torsion.irc 001 alice ")));
/// ```
pub struct ChatCore {
    config: ServerConfig,
    clients: HashMap<ClientId, Client>,
    nicks: HashMap<String, ClientId>,
    channels: HashMap<String, Channel>,
    out: Vec<Output>,
    created: String,
}

impl ChatCore {
    /// A service with no users and no channels yet.
    pub fn new(config: ServerConfig) -> ChatCore {
        ChatCore {
            config,
            clients: HashMap::new(),
            nicks: HashMap::new(),
            channels: HashMap::new(),
            out: Vec::new(),
            created: "at start-up".to_owned(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// What the core asks for since the last call, in order.
    pub fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// How many channels exist.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The nicknames in `channel`, if it exists.
    pub fn members(&self, channel: &str) -> Option<Vec<String>> {
        let c = self.channels.get(&fold(channel))?;
        Some(
            c.members
                .keys()
                .filter_map(|id| self.clients.get(id))
                .map(|cl| cl.nick().to_owned())
                .collect(),
        )
    }

    /// The client known by `nick`, if registered or registering.
    pub fn client_by_nick(&self, nick: &str) -> Option<ClientId> {
        self.nicks.get(&fold(nick)).copied()
    }

    /// A new connection from `host` (its address, shown in its mask). Past
    /// [`ServerConfig::max_clients`] it is told so and closed.
    pub fn connect(&mut self, id: ClientId, host: &str, now: f64) {
        if self.clients.len() >= self.config.max_clients {
            tracing::warn!(
                target: "torsion_words::service",
                "IRC server full ({} clients); refusing {host}",
                self.config.max_clients
            );
            let line = "ERROR :Closing Link: Server is full".to_owned();
            self.out.push(Output::Line(id, line));
            self.out
                .push(Output::Close(id, "Server is full".to_owned()));
            return;
        }
        self.clients.insert(
            id,
            Client {
                nick: None,
                user: None,
                host: cut(host, 63).replace([' ', '!', '@'], "_"),
                password: None,
                registered: false,
                logging_in: false,
                invisible: false,
                away: None,
                channels: BTreeSet::new(),
                invited: VecDeque::new(),
                connected_at: now,
                signon: now,
                last_spoke: now,
                last_heard: now,
                ping_sent: None,
                tokens: self.config.flood_burst,
                tokens_at: now,
                held: VecDeque::new(),
                partial: Vec::new(),
                overlong: false,
            },
        );
    }

    /// The connection went away: the user quits (its channels are told), without an
    /// [`Output::Close`].
    pub fn disconnected(&mut self, id: ClientId, reason: &str) {
        self.remove(id, reason, false);
    }

    /// Drops a client (its channels are told `reason`) and asks for its connection to close.
    pub fn drop_client(&mut self, id: ClientId, reason: &str) {
        self.remove(id, reason, true);
    }

    /// Bytes from a client: cut into lines at CR or LF, each at most 512 bytes with its line
    /// ending (a longer one is dropped and answered 417), then through flood control.
    pub fn data_received(&mut self, id: ClientId, data: &[u8], now: f64) {
        let mut lines = Vec::new();
        {
            let Some(c) = self.clients.get_mut(&id) else {
                return;
            };
            c.last_heard = now;
            c.ping_sent = None;
            for &b in data {
                if b == b'\r' || b == b'\n' {
                    if c.overlong {
                        c.overlong = false;
                        lines.push(None);
                    } else if !c.partial.is_empty() {
                        let line = String::from_utf8_lossy(&c.partial).replace('\0', "");
                        lines.push(Some(line));
                    }
                    c.partial.clear();
                } else if c.overlong {
                } else if c.partial.len() >= MAX_LINE - 2 {
                    c.partial.clear();
                    c.overlong = true;
                } else {
                    c.partial.push(b);
                }
            }
        }
        for line in lines {
            match line {
                None => {
                    let nick = self.nick_of(id);
                    self.reply(id, "417", &[&nick], "Input line was too long");
                }
                Some(line) => self.line_received(id, line, now),
            }
            if !self.clients.contains_key(&id) {
                return;
            }
        }
    }

    /// One line (without its ending) from a client, through flood control.
    fn line_received(&mut self, id: ClientId, line: String, now: f64) {
        let (burst, rate, limit) = (
            self.config.flood_burst,
            self.config.flood_rate,
            self.config.flood_queue,
        );
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if rate <= 0.0 {
            self.handle(id, &line, now);
            return;
        }
        c.tokens = (c.tokens + (now - c.tokens_at).max(0.0) * rate).min(burst);
        c.tokens_at = c.tokens_at.max(now);
        if c.held.is_empty() && c.tokens >= 1.0 {
            c.tokens -= 1.0;
            self.handle(id, &line, now);
        } else if c.held.len() >= limit {
            tracing::warn!(
                target: "torsion_words::service",
                "IRC client {} ({}) flooded past {limit} held lines; dropping it",
                c.nick(),
                c.host
            );
            self.drop_client(id, "Excess Flood");
        } else {
            c.held.push_back(line);
        }
    }

    /// Lets time pass: held lines go through as the clients earn tokens, silent clients
    /// are pinged and dropped when they stay silent, unregistered ones time out. Call it
    /// every second or so.
    pub fn tick(&mut self, now: f64) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        let config = self.config.clone();
        for id in ids {
            while let Some(c) = self.clients.get_mut(&id) {
                if c.held.is_empty() {
                    break;
                }
                c.tokens = (c.tokens + (now - c.tokens_at).max(0.0) * config.flood_rate)
                    .min(config.flood_burst);
                c.tokens_at = c.tokens_at.max(now);
                if c.tokens < 1.0 {
                    break;
                }
                c.tokens -= 1.0;
                let line = c.held.pop_front().unwrap_or_default();
                self.handle(id, &line, now);
            }
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            if !c.registered {
                if !c.logging_in && now - c.connected_at >= config.registration_timeout {
                    self.drop_client(id, "Registration timed out");
                }
            } else if let Some(sent) = c.ping_sent {
                if now - sent >= config.ping_timeout {
                    let quiet = (now - c.last_heard).round();
                    self.drop_client(id, &format!("Ping timeout: {quiet} seconds"));
                }
            } else if now - c.last_heard >= config.ping_interval {
                c.ping_sent = Some(now);
                let line = format!("PING :{}", config.name);
                self.out.push(Output::Line(id, line));
            }
        }
    }

    /// The answer to an [`Output::Login`]: welcome the client, or refuse it (464) and close.
    pub fn login_result(&mut self, id: ClientId, ok: bool, now: f64) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if !c.logging_in {
            return;
        }
        c.logging_in = false;
        if ok {
            self.welcome(id, now);
        } else {
            let nick = self.nick_of(id);
            self.reply(id, "464", &[&nick], "Password incorrect");
            self.drop_client(id, "Bad password");
        }
    }

    fn nick_of(&self, id: ClientId) -> String {
        self.clients
            .get(&id)
            .map_or_else(|| "*".to_owned(), |c| c.nick().to_owned())
    }

    fn mask_of(&self, id: ClientId) -> String {
        self.clients.get(&id).map_or_else(String::new, Client::mask)
    }

    /// Queues a line, cut to 510 bytes.
    fn send(&mut self, id: ClientId, line: String) {
        let line = if line.len() > MAX_LINE - 2 {
            cut(&line, MAX_LINE - 2).to_owned()
        } else {
            line
        };
        self.out.push(Output::Line(id, line));
    }

    /// `:server CODE params... :trailing`.
    /// 403 ERR_NOSUCHCHANNEL for `chan` (cut to the longest channel name).
    fn no_such_channel(&mut self, id: ClientId, nick: &str, chan: &str) {
        self.reply(id, "403", &[nick, cut(chan, CHANNELLEN)], "No such channel");
    }

    fn reply(&mut self, id: ClientId, code: &str, params: &[&str], trailing: &str) {
        let mut line = format!(":{} {code}", self.config.name);
        for p in params {
            line.push(' ');
            line.push_str(p);
        }
        line.push_str(" :");
        line.push_str(trailing);
        self.send(id, line);
    }

    /// Sends `line` to every member of every channel `id` is in (each once), and to `id`
    /// itself when `me`.
    fn send_to_peers(&mut self, id: ClientId, line: &str, me: bool) {
        let mut seen = BTreeSet::new();
        if me {
            seen.insert(id);
        }
        if let Some(c) = self.clients.get(&id) {
            for ch in &c.channels {
                if let Some(ch) = self.channels.get(ch) {
                    seen.extend(ch.members.keys().copied());
                }
            }
        }
        if !me {
            seen.remove(&id);
        }
        for to in seen {
            self.send(to, line.to_owned());
        }
    }

    /// Sends `line` to every member of `chan` except `except`.
    fn send_to_channel(&mut self, chan: &str, line: &str, except: Option<ClientId>) {
        let members: Vec<ClientId> = match self.channels.get(chan) {
            Some(c) => c.members.keys().copied().collect(),
            None => return,
        };
        for to in members {
            if Some(to) != except {
                self.send(to, line.to_owned());
            }
        }
    }

    fn remove(&mut self, id: ClientId, reason: &str, close: bool) {
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        let (registered, mask, host) = (c.registered, c.mask(), c.host.clone());
        if registered {
            self.send_to_peers(id, &format!(":{mask} QUIT :{reason}"), false);
        }
        if close {
            self.send(id, format!("ERROR :Closing Link: {host} ({reason})"));
        }
        let Some(c) = self.clients.remove(&id) else {
            return;
        };
        if let Some(n) = &c.nick {
            let key = fold(n);
            if self.nicks.get(&key) == Some(&id) {
                self.nicks.remove(&key);
            }
        }
        for ch in &c.channels {
            self.leave_channel(id, ch);
        }
        if close {
            self.out.push(Output::Close(id, reason.to_owned()));
        }
    }

    /// Takes `id` out of the channel (folded name), removing the channel once empty.
    fn leave_channel(&mut self, id: ClientId, key: &str) {
        if let Some(ch) = self.channels.get_mut(key) {
            ch.members.remove(&id);
            if ch.members.is_empty() {
                self.channels.remove(key);
            }
        }
        if let Some(c) = self.clients.get_mut(&id) {
            c.channels.remove(key);
        }
    }

    /// One line from a client, past flood control.
    fn handle(&mut self, id: ClientId, line: &str, now: f64) {
        let Ok(m) = Message::parse(line) else {
            // Not a message (no command, a bad command word): ignored, as ircds do.
            return;
        };
        let command = m.command.to_ascii_uppercase();
        let registered = self.clients.get(&id).is_some_and(|c| c.registered);
        let nick = self.nick_of(id);
        let p = m.params();
        let need = |n: usize| p.len() < n;
        match command.as_str() {
            "CAP" => match p.first().map(|s| s.to_ascii_uppercase()).as_deref() {
                Some("LS") | Some("LIST") => {
                    let sub = p[0].to_ascii_uppercase();
                    self.reply(id, "CAP", &[&nick, &sub], "");
                }
                Some("REQ") => {
                    let want = p.get(1).copied().unwrap_or("");
                    self.reply(id, "CAP", &[&nick, "NAK"], want);
                }
                _ => {}
            },
            "PASS" if registered || self.clients.get(&id).is_some_and(|c| c.logging_in) => {
                self.reply(id, "462", &[&nick], "You may not reregister");
            }
            "PASS" if need(1) => self.reply(id, "461", &[&nick, "PASS"], "Not enough parameters"),
            "PASS" => {
                if let Some(c) = self.clients.get_mut(&id) {
                    c.password = Some(p[0].to_owned());
                }
            }
            "NICK" if need(1) || p[0].is_empty() => {
                self.reply(id, "431", &[&nick], "No nickname given")
            }
            "NICK" => self.nick(id, p[0], now),
            "USER" if registered || self.clients.get(&id).is_some_and(|c| c.user.is_some()) => {
                self.reply(id, "462", &[&nick], "You may not reregister")
            }
            "USER" if need(4) => self.reply(id, "461", &[&nick, "USER"], "Not enough parameters"),
            "USER" => {
                let user: String = p[0]
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                    .take(10)
                    .collect();
                let user = if user.is_empty() {
                    "user".to_owned()
                } else {
                    user
                };
                let real = cut(p[3], 100).to_owned();
                if let Some(c) = self.clients.get_mut(&id) {
                    c.user = Some((format!("~{user}"), real));
                }
                self.try_register(id, now);
            }
            "PING" if need(1) => self.reply(id, "409", &[&nick], "No origin specified"),
            "PING" => {
                let name = self.config.name.clone();
                self.send(id, format!(":{name} PONG {name} :{}", p[p.len() - 1]));
            }
            "PONG" => {}
            "QUIT" => {
                let why = p.first().map_or_else(
                    || "Client Quit".to_owned(),
                    |q| format!("Quit: {}", cut(q, TOPICLEN)),
                );
                self.drop_client(id, &why);
            }
            _ if !registered => self.reply(id, "451", &[&nick], "You have not registered"),
            "JOIN" if need(1) => self.reply(id, "461", &[&nick, "JOIN"], "Not enough parameters"),
            "JOIN" => self.join(id, p[0], p.get(1).copied().unwrap_or(""), now),
            "PART" if need(1) => self.reply(id, "461", &[&nick, "PART"], "Not enough parameters"),
            "PART" => {
                for chan in p[0].split(',').filter(|c| !c.is_empty()) {
                    self.part(id, chan, p.get(1).copied());
                }
            }
            "PRIVMSG" | "NOTICE" => {
                let notice = command == "NOTICE";
                if need(1) || p[0].is_empty() {
                    if !notice {
                        self.reply(id, "411", &[&nick], "No recipient given (PRIVMSG)");
                    }
                } else if need(2) || p[1].is_empty() {
                    if !notice {
                        self.reply(id, "412", &[&nick], "No text to send");
                    }
                } else {
                    if let Some(c) = self.clients.get_mut(&id) {
                        c.last_spoke = now;
                    }
                    for target in p[0].split(',').filter(|t| !t.is_empty()).take(MAX_TARGETS) {
                        self.message(id, &command, target, p[1]);
                    }
                }
            }
            "TOPIC" if need(1) => self.reply(id, "461", &[&nick, "TOPIC"], "Not enough parameters"),
            "TOPIC" => self.topic(id, p[0], p.get(1).copied(), now),
            "NAMES" => match p.first() {
                Some(chans) => {
                    for chan in chans.split(',').filter(|c| !c.is_empty()).take(10) {
                        self.names(id, chan);
                    }
                }
                None => self.reply(id, "366", &[&nick, "*"], "End of /NAMES list"),
            },
            "WHO" => self.who(id, p.first().copied().unwrap_or("*")),
            "WHOIS" if need(1) => self.reply(id, "431", &[&nick], "No nickname given"),
            "WHOIS" => {
                let target = p[p.len() - 1];
                for t in target
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .take(MAX_TARGETS)
                {
                    self.whois(id, t, now);
                }
            }
            "LIST" => self.list(id, p.first().copied()),
            "MODE" if need(1) => self.reply(id, "461", &[&nick, "MODE"], "Not enough parameters"),
            "MODE" => self.mode(id, p, now),
            "INVITE" if need(2) => {
                self.reply(id, "461", &[&nick, "INVITE"], "Not enough parameters")
            }
            "INVITE" => self.invite(id, p[0], p[1]),
            "KICK" if need(2) => self.reply(id, "461", &[&nick, "KICK"], "Not enough parameters"),
            "KICK" => self.kick(id, p[0], p[1], p.get(2).copied()),
            "AWAY" => {
                let text = p.first().filter(|t| !t.is_empty());
                if let Some(c) = self.clients.get_mut(&id) {
                    c.away = text.map(|t| cut(t, TOPICLEN).to_owned());
                }
                match text {
                    Some(_) => {
                        self.reply(id, "306", &[&nick], "You have been marked as being away")
                    }
                    None => self.reply(
                        id,
                        "305",
                        &[&nick],
                        "You are no longer marked as being away",
                    ),
                }
            }
            "ISON" => {
                let on: Vec<String> = p
                    .iter()
                    .flat_map(|s| s.split(' '))
                    .filter_map(|n| self.client_by_nick(n).map(|i| self.nick_of(i)))
                    .take(50)
                    .collect();
                self.reply(id, "303", &[&nick], &on.join(" "));
            }
            "MOTD" => self.motd(id),
            "VERSION" => {
                let name = self.config.name.clone();
                let v = format!("torsion-{}", env!("CARGO_PKG_VERSION"));
                self.reply(id, "351", &[&nick, &v, &name], "");
            }
            _ => {
                let cmd = cut(m.command, 32).to_owned();
                self.reply(id, "421", &[&nick, &cmd], "Unknown command");
            }
        }
    }

    fn nick(&mut self, id: ClientId, new: &str, now: f64) {
        let nick = self.nick_of(id);
        if !valid_nick(new) {
            let shown = cut(new, NICKLEN).replace(' ', "_");
            self.reply(id, "432", &[&nick, &shown], "Erroneous Nickname");
            return;
        }
        let key = fold(new);
        match self.nicks.get(&key) {
            Some(&other) if other != id => {
                self.reply(id, "433", &[&nick, new], "Nickname is already in use");
                return;
            }
            _ => {}
        }
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        if c.logging_in {
            return;
        }
        let registered = c.registered;
        let old_mask = c.mask();
        if let Some(old) = &c.nick {
            let old_key = fold(old);
            self.nicks.remove(&old_key);
        }
        self.nicks.insert(key, id);
        if let Some(c) = self.clients.get_mut(&id) {
            c.nick = Some(new.to_owned());
        }
        if registered {
            self.send_to_peers(id, &format!(":{old_mask} NICK :{new}"), true);
        } else {
            self.try_register(id, now);
        }
    }

    fn try_register(&mut self, id: ClientId, now: f64) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if c.registered || c.logging_in || c.nick.is_none() || c.user.is_none() {
            return;
        }
        if self.config.require_password {
            let nick = c.nick().to_owned();
            match c.password.take() {
                Some(password) => {
                    c.logging_in = true;
                    self.out.push(Output::Login {
                        client: id,
                        nick,
                        password,
                    });
                }
                None => {
                    self.reply(id, "464", &[&nick], "Password required (PASS)");
                    self.drop_client(id, "No password");
                }
            }
            return;
        }
        self.welcome(id, now);
    }

    fn welcome(&mut self, id: ClientId, now: f64) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        c.registered = true;
        c.signon = now;
        c.last_spoke = now;
        c.password = None;
        let nick = c.nick().to_owned();
        let mask = c.mask();
        let cfg = self.config.clone();
        let version = format!("torsion-{}", env!("CARGO_PKG_VERSION"));
        self.reply(
            id,
            "001",
            &[&nick],
            &format!("Welcome to the {} IRC Network {mask}", cfg.network),
        );
        let host = format!("Your host is {}, running version {version}", cfg.name);
        self.reply(id, "002", &[&nick], &host);
        let created = format!("This server was created {}", self.created);
        self.reply(id, "003", &[&nick], &created);
        let line = format!(
            ":{} 004 {nick} {} {version} i biklmnotv bklov",
            cfg.name, cfg.name
        );
        self.send(id, line);
        let isupport = format!(
            "CASEMAPPING=rfc1459 CHANLIMIT=#:{} CHANMODES=b,k,l,imnt CHANNELLEN={CHANNELLEN} \
             CHANTYPES=# KICKLEN={TOPICLEN} MAXLIST=b:{MAX_BANS} MAXTARGETS={MAX_TARGETS} MODES={MAX_MODES} \
             NETWORK={} NICKLEN={NICKLEN} PREFIX=(ov)@+ TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS} \
             TOPICLEN={TOPICLEN}",
            cfg.max_channels_per_user,
            cfg.network.replace(' ', "_"),
        );
        let params: Vec<&str> = std::iter::once(nick.as_str())
            .chain(isupport.split(' '))
            .collect();
        self.reply(id, "005", &params, "are supported by this server");
        let users = self.clients.values().filter(|c| c.registered).count();
        self.reply(
            id,
            "251",
            &[&nick],
            &format!("There are {users} users and 0 invisible on 1 servers"),
        );
        self.motd(id);
    }

    fn motd(&mut self, id: ClientId) {
        let nick = self.nick_of(id);
        match self.config.motd.clone() {
            None => self.reply(id, "422", &[&nick], "MOTD File is missing"),
            Some(lines) => {
                let name = self.config.name.clone();
                self.reply(
                    id,
                    "375",
                    &[&nick],
                    &format!("- {name} Message of the day - "),
                );
                for l in lines.iter().take(200) {
                    self.reply(id, "372", &[&nick], &format!("- {}", cut(l, 400)));
                }
                self.reply(id, "376", &[&nick], "End of /MOTD command.");
            }
        }
    }

    fn join(&mut self, id: ClientId, chans: &str, keys: &str, now: f64) {
        let nick = self.nick_of(id);
        if chans == "0" {
            let mine: Vec<String> = self
                .clients
                .get(&id)
                .map(|c| c.channels.iter().cloned().collect())
                .unwrap_or_default();
            for key in mine {
                let name = self.channels.get(&key).map(|c| c.name.clone());
                if let Some(name) = name {
                    self.part(id, &name, None);
                }
            }
            return;
        }
        let mut keys = keys.split(',');
        for chan in chans.split(',').filter(|c| !c.is_empty()) {
            let given = keys.next().unwrap_or("");
            if !valid_channel(chan) {
                self.no_such_channel(id, &nick, chan);
                continue;
            }
            let key = fold(chan);
            let Some(c) = self.clients.get(&id) else {
                return;
            };
            if c.channels.contains(&key) {
                continue;
            }
            if c.channels.len() >= self.config.max_channels_per_user {
                self.reply(
                    id,
                    "405",
                    &[&nick, chan],
                    "You have joined too many channels",
                );
                continue;
            }
            let mut op = false;
            match self.channels.get(&key) {
                Some(ch) => {
                    let invited = c.invited.contains(&key);
                    if ch.invite_only && !invited {
                        self.reply(id, "473", &[&nick, chan], "Cannot join channel (+i)");
                        continue;
                    }
                    if !invited && ch.banned(&c.mask()) {
                        self.reply(id, "474", &[&nick, chan], "Cannot join channel (+b)");
                        continue;
                    }
                    if ch.key.as_deref().is_some_and(|k| k != given) {
                        self.reply(id, "475", &[&nick, chan], "Cannot join channel (+k)");
                        continue;
                    }
                    if ch.limit.is_some_and(|l| ch.members.len() >= l) {
                        self.reply(id, "471", &[&nick, chan], "Cannot join channel (+l)");
                        continue;
                    }
                }
                None => {
                    if self.channels.len() >= self.config.max_channels {
                        tracing::warn!(
                            target: "torsion_words::service",
                            "IRC channel limit ({}) reached; {nick} cannot create {chan}",
                            self.config.max_channels
                        );
                        self.reply(
                            id,
                            "405",
                            &[&nick, chan],
                            "Too many channels on this server",
                        );
                        continue;
                    }
                    op = true;
                    self.channels.insert(
                        key.clone(),
                        Channel {
                            name: chan.to_owned(),
                            topic: None,
                            members: BTreeMap::new(),
                            topic_ops_only: true,
                            no_external: true,
                            moderated: false,
                            key: None,
                            limit: None,
                            invite_only: false,
                            bans: Vec::new(),
                            created: now as u64,
                        },
                    );
                }
            }
            if let Some(ch) = self.channels.get_mut(&key) {
                ch.members.insert(id, Member { op, voice: false });
            }
            if let Some(c) = self.clients.get_mut(&id) {
                c.channels.insert(key.clone());
                c.invited.retain(|k| *k != key);
            }
            let name = self.channels[&key].name.clone();
            let line = format!(":{} JOIN {name}", self.mask_of(id));
            self.send_to_channel(&key, &line, None);
            if self.channels[&key].topic.is_some() {
                self.topic(id, &name, None, now);
            }
            self.names(id, &name);
        }
    }

    fn part(&mut self, id: ClientId, chan: &str, why: Option<&str>) {
        let nick = self.nick_of(id);
        let key = fold(chan);
        let Some(ch) = self.channels.get(&key) else {
            self.no_such_channel(id, &nick, chan);
            return;
        };
        if !ch.members.contains_key(&id) {
            let name = ch.name.clone();
            self.reply(id, "442", &[&nick, &name], "You're not on that channel");
            return;
        }
        let mut line = format!(":{} PART {}", self.mask_of(id), ch.name);
        if let Some(why) = why {
            line.push_str(" :");
            line.push_str(cut(why, TOPICLEN));
        }
        self.send_to_channel(&key, &line, None);
        self.leave_channel(id, &key);
    }

    fn message(&mut self, id: ClientId, command: &str, target: &str, text: &str) {
        let nick = self.nick_of(id);
        let notice = command == "NOTICE";
        let mask = self.mask_of(id);
        if target.starts_with('#') {
            let key = fold(target);
            let Some(ch) = self.channels.get(&key) else {
                if !notice {
                    self.reply(
                        id,
                        "401",
                        &[&nick, cut(target, CHANNELLEN)],
                        "No such nick/channel",
                    );
                }
                return;
            };
            let member = ch.members.get(&id).copied();
            let privileged = member.is_some_and(|m| m.op || m.voice);
            let refused = (ch.no_external && member.is_none())
                || (ch.moderated && !privileged)
                || (!privileged && ch.banned(&mask));
            let name = ch.name.clone();
            if refused {
                if !notice {
                    self.reply(id, "404", &[&nick, &name], "Cannot send to channel");
                }
                return;
            }
            let line = format!(":{mask} {command} {name} :{text}");
            self.send_to_channel(&key, &line, Some(id));
        } else {
            let Some(to) = self.client_by_nick(target) else {
                if !notice {
                    self.reply(
                        id,
                        "401",
                        &[&nick, cut(target, NICKLEN)],
                        "No such nick/channel",
                    );
                }
                return;
            };
            let to_nick = self.nick_of(to);
            self.send(to, format!(":{mask} {command} {to_nick} :{text}"));
            if !notice {
                if let Some(away) = self.clients.get(&to).and_then(|c| c.away.clone()) {
                    self.reply(id, "301", &[&nick, &to_nick], &away);
                }
            }
        }
    }

    fn topic(&mut self, id: ClientId, chan: &str, text: Option<&str>, now: f64) {
        let nick = self.nick_of(id);
        let key = fold(chan);
        let Some(ch) = self.channels.get(&key) else {
            self.no_such_channel(id, &nick, chan);
            return;
        };
        let name = ch.name.clone();
        let member = ch.members.get(&id).copied();
        let Some(text) = text else {
            match ch.topic.clone() {
                None => self.reply(id, "331", &[&nick, &name], "No topic is set"),
                Some((topic, by, at)) => {
                    self.reply(id, "332", &[&nick, &name], &topic);
                    let line = format!(":{} 333 {nick} {name} {by} {at}", self.config.name);
                    self.send(id, line);
                }
            }
            return;
        };
        let Some(member) = member else {
            self.reply(id, "442", &[&nick, &name], "You're not on that channel");
            return;
        };
        if ch.topic_ops_only && !member.op {
            self.reply(id, "482", &[&nick, &name], "You're not channel operator");
            return;
        }
        let text = cut(text, TOPICLEN).to_owned();
        if let Some(ch) = self.channels.get_mut(&key) {
            ch.topic = if text.is_empty() {
                None
            } else {
                Some((text.clone(), nick.clone(), now as u64))
            };
        }
        let line = format!(":{} TOPIC {name} :{text}", self.mask_of(id));
        self.send_to_channel(&key, &line, None);
    }

    fn names(&mut self, id: ClientId, chan: &str) {
        let nick = self.nick_of(id);
        let key = fold(chan);
        let mut entries = Vec::new();
        let mut name = cut(chan, CHANNELLEN).to_owned();
        if let Some(ch) = self.channels.get(&key) {
            name = ch.name.clone();
            let inside = ch.members.contains_key(&id);
            for (m, member) in &ch.members {
                let Some(c) = self.clients.get(m) else {
                    continue;
                };
                if inside || !c.invisible {
                    entries.push(format!("{}{}", member.prefix(), c.nick()));
                }
            }
        }
        let head = format!(":{} 353 {nick} = {name} :", self.config.name);
        let mut line = head.clone();
        for e in entries {
            if line.len() + e.len() + 1 > MAX_LINE - 2 {
                self.send(id, std::mem::replace(&mut line, head.clone()));
            }
            if line.len() > head.len() {
                line.push(' ');
            }
            line.push_str(&e);
        }
        if line.len() > head.len() {
            self.send(id, line);
        }
        self.reply(id, "366", &[&nick, &name], "End of /NAMES list");
    }

    fn who_line(&mut self, id: ClientId, chan: &str, who: ClientId, prefix: &str) {
        let nick = self.nick_of(id);
        let Some(c) = self.clients.get(&who) else {
            return;
        };
        let (user, real) = c.user.clone().unwrap_or_default();
        let here = if c.away.is_some() { "G" } else { "H" };
        let line = format!(
            ":{0} 352 {nick} {chan} {user} {1} {0} {2} {here}{prefix} :0 {real}",
            self.config.name,
            c.host,
            c.nick()
        );
        self.send(id, line);
    }

    fn who(&mut self, id: ClientId, mask: &str) {
        let nick = self.nick_of(id);
        let shown = cut(mask, CHANNELLEN).to_owned();
        if mask.starts_with('#') {
            let key = fold(mask);
            if let Some(ch) = self.channels.get(&key) {
                let inside = ch.members.contains_key(&id);
                let name = ch.name.clone();
                let members: Vec<(ClientId, Member)> =
                    ch.members.iter().map(|(k, v)| (*k, *v)).collect();
                for (m, member) in members.into_iter().take(MAX_WHO) {
                    if inside || !self.clients.get(&m).is_some_and(|c| c.invisible) {
                        self.who_line(id, &name, m, member.prefix());
                    }
                }
            }
        } else if let Some(who) = self.client_by_nick(mask) {
            self.who_line(id, "*", who, "");
        } else if mask == "*" || mask == "0" {
            let mut visible: Vec<ClientId> = self
                .clients
                .iter()
                .filter(|(k, c)| c.registered && (!c.invisible || **k == id))
                .map(|(k, _)| *k)
                .collect();
            visible.sort_unstable();
            for who in visible.into_iter().take(MAX_WHO) {
                self.who_line(id, "*", who, "");
            }
        }
        self.reply(id, "315", &[&nick, &shown], "End of /WHO list");
    }

    fn whois(&mut self, id: ClientId, target: &str, now: f64) {
        let nick = self.nick_of(id);
        let Some(who) = self.client_by_nick(target) else {
            self.reply(
                id,
                "401",
                &[&nick, cut(target, NICKLEN)],
                "No such nick/channel",
            );
            self.reply(
                id,
                "318",
                &[&nick, cut(target, NICKLEN)],
                "End of /WHOIS list",
            );
            return;
        };
        let Some(c) = self.clients.get(&who) else {
            return;
        };
        let their = c.nick().to_owned();
        let (user, real) = c.user.clone().unwrap_or_default();
        let host = c.host.clone();
        let away = c.away.clone();
        let idle = (now - c.last_spoke).max(0.0) as u64;
        let signon = c.signon as u64;
        let chans: Vec<String> = c
            .channels
            .iter()
            .filter_map(|k| self.channels.get(k))
            .map(|ch| {
                format!(
                    "{}{}",
                    ch.members.get(&who).copied().unwrap_or_default().prefix(),
                    ch.name
                )
            })
            .collect();
        self.reply(id, "311", &[&nick, &their, &user, &host, "*"], &real);
        if !chans.is_empty() {
            let head = format!(":{} 319 {nick} {their} :", self.config.name);
            let mut line = head.clone();
            for ch in chans {
                if line.len() + ch.len() + 1 > MAX_LINE - 2 {
                    self.send(id, std::mem::replace(&mut line, head.clone()));
                }
                if line.len() > head.len() {
                    line.push(' ');
                }
                line.push_str(&ch);
            }
            self.send(id, line);
        }
        let name = self.config.name.clone();
        let network = self.config.network.clone();
        self.reply(id, "312", &[&nick, &their, &name], &network);
        if let Some(away) = away {
            self.reply(id, "301", &[&nick, &their], &away);
        }
        let (i, s) = (idle.to_string(), signon.to_string());
        self.reply(
            id,
            "317",
            &[&nick, &their, &i, &s],
            "seconds idle, signon time",
        );
        self.reply(id, "318", &[&nick, &their], "End of /WHOIS list");
    }

    fn list(&mut self, id: ClientId, which: Option<&str>) {
        let nick = self.nick_of(id);
        self.reply(id, "321", &[&nick, "Channel"], "Users  Name");
        let mut rows: Vec<(String, usize, String)> = match which {
            Some(chans) => chans
                .split(',')
                .filter_map(|c| self.channels.get(&fold(c)))
                .map(|ch| {
                    (
                        ch.name.clone(),
                        ch.members.len(),
                        ch.topic.clone().map(|t| t.0).unwrap_or_default(),
                    )
                })
                .collect(),
            None => self
                .channels
                .values()
                .map(|ch| {
                    (
                        ch.name.clone(),
                        ch.members.len(),
                        ch.topic.clone().map(|t| t.0).unwrap_or_default(),
                    )
                })
                .collect(),
        };
        rows.sort();
        for (name, count, topic) in rows {
            self.reply(id, "322", &[&nick, &name, &count.to_string()], &topic);
        }
        self.reply(id, "323", &[&nick], "End of /LIST");
    }

    fn mode(&mut self, id: ClientId, p: &[&str], now: f64) {
        let nick = self.nick_of(id);
        let target = p[0];
        if !target.starts_with('#') {
            if self.client_by_nick(target) != Some(id) {
                match self.client_by_nick(target) {
                    Some(_) => self.reply(id, "502", &[&nick], "Can't change mode for other users"),
                    None => self.reply(
                        id,
                        "401",
                        &[&nick, cut(target, NICKLEN)],
                        "No such nick/channel",
                    ),
                }
                return;
            }
            let Some(changes) = p.get(1) else {
                let inv = self.clients.get(&id).is_some_and(|c| c.invisible);
                let modes = if inv { "+i" } else { "+" };
                let line = format!(":{} 221 {nick} {modes}", self.config.name);
                self.send(id, line);
                return;
            };
            let mut plus = true;
            let mut applied = String::new();
            let mut sign = ' ';
            for ch in changes.chars() {
                match ch {
                    '+' => plus = true,
                    '-' => plus = false,
                    'i' => {
                        let Some(c) = self.clients.get_mut(&id) else {
                            return;
                        };
                        if c.invisible != plus {
                            c.invisible = plus;
                            let s = if plus { '+' } else { '-' };
                            if s != sign {
                                applied.push(s);
                                sign = s;
                            }
                            applied.push('i');
                        }
                    }
                    _ => {
                        self.reply(id, "501", &[&nick], "Unknown MODE flag");
                    }
                }
            }
            if !applied.is_empty() {
                self.send(id, format!(":{nick} MODE {nick} :{applied}"));
            }
            return;
        }
        let key = fold(target);
        let Some(ch) = self.channels.get(&key) else {
            self.no_such_channel(id, &nick, target);
            return;
        };
        let name = ch.name.clone();
        let me = ch.members.get(&id).copied();
        let Some(changes) = p.get(1) else {
            let (modes, args) = ch.modes(me.is_some());
            let created = ch.created.to_string();
            let mut line = format!(":{} 324 {nick} {name} {modes}", self.config.name);
            for a in args {
                line.push(' ');
                line.push_str(&a);
            }
            self.send(id, line);
            self.send(
                id,
                format!(":{} 329 {nick} {name} {created}", self.config.name),
            );
            return;
        };
        // List queries: the ban list; exceptions and invitation masks are not kept.
        if matches!(changes.trim_start_matches('+'), "b" | "e" | "I") && p.len() == 2 {
            if changes.trim_start_matches('+') == "b" {
                let bans = ch.bans.clone();
                for (mask, by, at) in bans {
                    let line = format!(":{} 367 {nick} {name} {mask} {by} {at}", self.config.name);
                    self.send(id, line);
                }
            }
            let (code, text) = match changes.trim_start_matches('+') {
                "b" => ("368", "End of channel ban list"),
                "e" => ("349", "End of channel exception list"),
                _ => ("347", "End of channel invite list"),
            };
            self.reply(id, code, &[&nick, &name], text);
            return;
        }
        if !me.is_some_and(|m| m.op) {
            self.reply(id, "482", &[&nick, &name], "You're not channel operator");
            return;
        }
        let mut args = p[2..].iter();
        let mut plus = true;
        let mut applied = String::new();
        let mut applied_args: Vec<String> = Vec::new();
        let mut sign = ' ';
        let mut with_arg = 0;
        let setter = self.mask_of(id);
        for m in changes.chars() {
            let mut arg = None;
            let mut ban_mask: Option<String> = None;
            match m {
                '+' => {
                    plus = true;
                    continue;
                }
                '-' => {
                    plus = false;
                    continue;
                }
                'o' | 'v' | 'k' | 'l' | 'b' if m != 'l' || plus => {
                    with_arg += 1;
                    if with_arg > MAX_MODES {
                        continue;
                    }
                    match args.next() {
                        Some(a) => arg = Some(*a),
                        None if m == 'k' && !plus => {}
                        None => continue,
                    }
                }
                _ => {}
            }
            let ok = {
                let Some(ch) = self.channels.get_mut(&key) else {
                    return;
                };
                match m {
                    't' => std::mem::replace(&mut ch.topic_ops_only, plus) != plus,
                    'i' => std::mem::replace(&mut ch.invite_only, plus) != plus,
                    'b' => {
                        let mask = normal_mask(arg.unwrap_or("*"));
                        let at = ch.bans.iter().position(|(b, _, _)| fold(b) == fold(&mask));
                        let done = match (plus, at) {
                            (true, None) if ch.bans.len() >= MAX_BANS => {
                                let params: [&str; 3] = [&nick, &name, &mask];
                                self.reply(id, "478", &params, "Channel ban list is full");
                                false
                            }
                            (true, None) => {
                                ch.bans.push((mask.clone(), setter.clone(), now as u64));
                                true
                            }
                            (false, Some(i)) => {
                                ch.bans.remove(i);
                                true
                            }
                            _ => false,
                        };
                        ban_mask = Some(mask);
                        done
                    }
                    'n' => std::mem::replace(&mut ch.no_external, plus) != plus,
                    'm' => std::mem::replace(&mut ch.moderated, plus) != plus,
                    'k' if plus => {
                        let k = arg.unwrap_or("");
                        if k.is_empty() || k.len() > 23 || k.contains(',') {
                            false
                        } else {
                            ch.key = Some(k.to_owned());
                            true
                        }
                    }
                    'k' => {
                        arg = Some("*");
                        ch.key.take().is_some()
                    }
                    'l' if plus => match arg.and_then(|a| a.parse::<usize>().ok()) {
                        Some(l) if l > 0 => {
                            ch.limit = Some(l);
                            true
                        }
                        _ => false,
                    },
                    'l' => ch.limit.take().is_some(),
                    'o' | 'v' => {
                        let who = arg.and_then(|a| self.nicks.get(&fold(a)).copied());
                        match who.and_then(|w| ch.members.get_mut(&w)) {
                            Some(member) => {
                                let flag = if m == 'o' {
                                    &mut member.op
                                } else {
                                    &mut member.voice
                                };
                                *flag = plus;
                                true
                            }
                            None => {
                                let a = arg.unwrap_or("");
                                let (code, text) = if who.is_some() {
                                    ("441", "They aren't on that channel")
                                } else {
                                    ("401", "No such nick/channel")
                                };
                                let shown = cut(a, NICKLEN).to_owned();
                                let params: [&str; 3] = [&nick, &shown, &name];
                                self.reply(id, code, &params, text);
                                false
                            }
                        }
                    }
                    _ => {
                        let c = m.to_string();
                        self.reply(id, "472", &[&nick, &c], "is unknown mode char to me");
                        false
                    }
                }
            };
            if ok {
                let s = if plus { '+' } else { '-' };
                if s != sign {
                    applied.push(s);
                    sign = s;
                }
                applied.push(m);
                if let Some(mask) = ban_mask {
                    applied_args.push(mask);
                } else if let Some(a) = arg {
                    let a = if matches!(m, 'o' | 'v') {
                        self.client_by_nick(a)
                            .map_or_else(|| a.to_owned(), |w| self.nick_of(w))
                    } else {
                        a.to_owned()
                    };
                    applied_args.push(a);
                }
            }
        }
        if !applied.is_empty() {
            let mut line = format!(":{} MODE {name} {applied}", self.mask_of(id));
            for a in applied_args {
                line.push(' ');
                line.push_str(&a);
            }
            self.send_to_channel(&key, &line, None);
        }
    }

    /// INVITE: a member asks another user into a channel; on an invite-only (+i) channel
    /// only operators may, and the invitation lets the user join past +i and bans.
    fn invite(&mut self, id: ClientId, target: &str, chan: &str) {
        let nick = self.nick_of(id);
        let Some(to) = self.client_by_nick(target) else {
            let shown = cut(target, NICKLEN).to_owned();
            self.reply(id, "401", &[&nick, &shown], "No such nick/channel");
            return;
        };
        let key = fold(chan);
        let Some(ch) = self.channels.get(&key) else {
            self.no_such_channel(id, &nick, chan);
            return;
        };
        let name = ch.name.clone();
        let to_nick = self.nick_of(to);
        match ch.members.get(&id) {
            None => {
                self.reply(id, "442", &[&nick, &name], "You're not on that channel");
                return;
            }
            Some(m) if ch.invite_only && !m.op => {
                self.reply(id, "482", &[&nick, &name], "You're not channel operator");
                return;
            }
            Some(_) => {}
        }
        if ch.members.contains_key(&to) {
            let params: [&str; 3] = [&nick, &to_nick, &name];
            self.reply(id, "443", &params, "is already on channel");
            return;
        }
        if let Some(c) = self.clients.get_mut(&to) {
            if !c.invited.contains(&key) {
                if c.invited.len() >= MAX_INVITES {
                    c.invited.pop_front();
                }
                c.invited.push_back(key);
            }
        }
        let line = format!(":{} 341 {nick} {to_nick} {name}", self.config.name);
        self.send(id, line);
        if let Some(away) = self.clients.get(&to).and_then(|c| c.away.clone()) {
            self.reply(id, "301", &[&nick, &to_nick], &away);
        }
        let line = format!(":{} INVITE {to_nick} :{name}", self.mask_of(id));
        self.send(to, line);
    }

    fn kick(&mut self, id: ClientId, chan: &str, target: &str, why: Option<&str>) {
        let nick = self.nick_of(id);
        let key = fold(chan);
        let Some(ch) = self.channels.get(&key) else {
            self.no_such_channel(id, &nick, chan);
            return;
        };
        let name = ch.name.clone();
        match ch.members.get(&id) {
            None => {
                self.reply(id, "442", &[&nick, &name], "You're not on that channel");
                return;
            }
            Some(m) if !m.op => {
                self.reply(id, "482", &[&nick, &name], "You're not channel operator");
                return;
            }
            Some(_) => {}
        }
        let victim = self.client_by_nick(target);
        let Some(victim) = victim.filter(|v| ch.members.contains_key(v)) else {
            let shown = cut(target, NICKLEN).to_owned();
            self.reply(
                id,
                "441",
                &[&nick, &shown, &name],
                "They aren't on that channel",
            );
            return;
        };
        let their = self.nick_of(victim);
        let why = why.map_or_else(|| nick.clone(), |w| cut(w, TOPICLEN).to_owned());
        let line = format!(":{} KICK {name} {their} :{why}", self.mask_of(id));
        self.send_to_channel(&key, &line, None);
        self.leave_channel(victim, &key);
    }
}
