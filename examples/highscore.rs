//! A multiprotocol application in the spirit of Twisted's introduction: a game played over a
//! line protocol, whose high-score table is on the web while the players keep playing.
//! Scores are stored through a `torsion::db::ConnectionPool` (Twisted's adbapi), so they
//! survive a restart. Play with `nc -C localhost 1079` (lines end with CRLF: plain `nc`
//! sends only LF, and the game waits for the CR) or `telnet localhost 1079`.
//!
//! ```text
//! cargo run --release --example highscore -- --game-port 1079 --web-port 1080
//! nc -C localhost 1079           # play
//! curl localhost:1080/           # the table (HTML); /scores.json for JSON
//! ```
//!
//! The table page is live: its script subscribes to `/live`, a WebSocket (with
//! permessage-deflate when the browser offers it) that sends the table as `/scores.json`
//! has it when the page connects and again each time a game is saved, and the page redraws
//! its table from it. Without script the page reloads itself every 5 s.
//!
//! Without `--db`, the scores go to `highscore.db` in `$XDG_DATA_HOME/torsion` (by default
//! `~/.local/share/torsion`), and the program says where; `--db sqlite:FILE` or
//! `--db postgres://USER@HOST/DB` chooses another database.
//!
//! The game protocol, one line each way (`\r\n`, at most 256 bytes; longer lines close the
//! connection):
//!
//! ```text
//! S: welcome to highscore: send NAME <name>, then guess my number (1-100)
//! C: NAME alice                     (1-32 characters of UTF-8 text)
//! S: hello alice: guess my number between 1 and 100
//! C: 50
//! S: higher                         (or lower)
//! C: 75
//! S: correct in 2
//! S: saved: best 2, rank 1          (or: error: score not saved: <why>)
//! S: new game: guess my number between 1 and 100
//! C: QUIT
//! S: bye
//! ```
//!
//! Replies come in the order of the lines they answer: while a score is being saved, the
//! player's next lines wait (reading pauses; past 64 KiB of waiting lines the connection is
//! closed). A database error fails that one save, told to that one player.
//!
//! The game and the web pages share plain objects, as the seed's Counter does: a
//! `Scoreboard` (the top 100, loaded from the database at start and updated after each
//! save) that the pages render from.
//!
//! Several instances can share one PostgreSQL database behind a load balancer (the recipe,
//! with the HAProxy configuration, is docs/deployment.md's "Several instances behind
//! HAProxy"), so the database, not any one instance's memory, holds the table. Each
//! instance refreshes its scoreboard from the database **at most once a second**
//! (`REFRESH`): a page (or a save's rank) asked for more than a second after the last
//! refresh began waits for a new one; requests that arrive while it runs wait for that same
//! one; the others use the table as it is. So a page shows every game saved by any instance
//! up to a second before it was asked for, and this instance's own games at once, for at
//! most one query a second however busy the pages are. A refresh that fails is logged and
//! the last table shown. A refresh adds and updates players but removes none (a player
//! whose games were deleted by hand leaves the table at the next start). "Playing now" and
//! "games since the server started" stay this instance's own.
//!
//! Behind a load balancer:
//!
//! - `--proxy-protocol`: every game connection must start with a PROXY protocol header
//!   (version 1 or 2: HAProxy's `send-proxy` / `send-proxy-v2`), and the player's address
//!   in the log is the one in the header: the real client's, not the balancer's. Only the
//!   balancer may reach such a port. The web port stays plain HTTP.
//! - `GET /health` on the web port answers `200 ok` when the database answers a query, and
//!   `503` (with the reason) when it does not: the balancer's health check.
//!
//! Each saved game is logged with the player's address (`tcp:ADDRESS:PORT: NAME saved a
//! game in N guesses`).
//!
//! From the seed 000's multiprotocol showcase.
use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use torsion::db::{ConnectionPool, DbError};
use torsion::defer::{ensure_deferred, succeed, Deferred, Trigger};
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::protocols::haproxy::HAProxyWrappingFactory;
use torsion::web::proto::html_escape;
use torsion::web::resources::Directory;
use torsion::web::websocket::{
    CloseReason, DeflateOptions, WebSocketProtocol, WebSocketResource, WebSocketTransport,
};
use torsion::web::{Render, Request, Resource, Site};
use torsion::{factory, reactor, ConnectionEnd, Failure, Transport};
use torsion_conch::manhole::{rhai, ManholeFactory, Registry};
use torsion_examples::{data_dir, init_logging, startup_error};

/// A guessing game over a line protocol, with its high-score table on the web (a Twisted
/// multiprotocol application).
#[derive(Parser)]
struct Cli {
    /// The TCP port of the game (0 picks a free one).
    #[arg(long, default_value_t = 1079)]
    game_port: u16,
    /// The HTTP port of the table (/ and /scores.json) and of GET /health, a load
    /// balancer's check: 200 "ok" when the database answers, 503 when not (0 picks a free
    /// one).
    #[arg(long, default_value_t = 1080)]
    web_port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
    /// The database: sqlite:FILE or postgres://USER@HOST/DB [default: sqlite:highscore.db in
    /// $XDG_DATA_HOME/torsion or ~/.local/share/torsion]
    #[arg(long)]
    db: Option<String>,
    /// Game connections start with a PROXY protocol header (v1 or v2, as HAProxy's
    /// send-proxy / send-proxy-v2 send): the logged player address is the one in the
    /// header. Only for a port that only the load balancer can reach. The web port is not
    /// affected.
    #[arg(long)]
    proxy_protocol: bool,
    /// Serve a console (Rhai, over telnet) on this port of 127.0.0.1: `online`,
    /// `games_played`, `games_started`, and the `scores` table (`scores.top(n)`,
    /// `scores.len()`, `scores.remove(name)`) (0 picks a free one).
    #[arg(long, value_name = "PORT")]
    manhole: Option<u16>,
}

/// The scoreboard as the manhole shows it: a handle on the program's own table.
#[derive(Clone)]
struct ScoresHandle(Rc<Scoreboard>);

impl std::fmt::Debug for ScoresHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scores({} players)", self.0.top.borrow().len())
    }
}

/// The manhole's registry: the game's counters and its table of scores.
fn manhole_registry(scores: &Rc<Scoreboard>, game: &Rc<Game>) -> Registry {
    let registry = Registry::new();
    let s = scores.clone();
    registry.value("online", move || s.online.get() as i64);
    let s = scores.clone();
    registry.value("games_played", move || s.games_played.get() as i64);
    let g = game.clone();
    registry.value("games_started", move || g.games_started.get() as i64);
    registry.object("scores", ScoresHandle(scores.clone()));
    registry.method("len", |t: &mut ScoresHandle| t.0.top.borrow().len() as i64);
    registry.method("top", |t: &mut ScoresHandle, n: i64| -> rhai::Array {
        let n = usize::try_from(n).unwrap_or(0);
        t.0.top
            .borrow()
            .iter()
            .take(n)
            .map(|e| {
                let mut m = rhai::Map::new();
                m.insert("name".into(), e.name.clone().into());
                m.insert("best".into(), i64::from(e.best).into());
                m.insert("games".into(), (e.games as i64).into());
                rhai::Dynamic::from_map(m)
            })
            .collect()
    });
    // Takes a player off the table shown (until the next refresh from the database).
    registry.method("remove", |t: &mut ScoresHandle, name: &str| -> bool {
        let mut top = t.0.top.borrow_mut();
        let before = top.len();
        top.retain(|e| e.name != name);
        top.len() != before
    });
    registry
}

/// The secret number is in `1..=HIGHEST`.
const HIGHEST: u32 = 100;
/// The longest line a player may send.
const MAX_LINE: usize = 256;
/// The longest name, in characters.
const MAX_NAME: usize = 32;
/// Bytes of lines a player may send while their score is being saved (reading pauses
/// meanwhile, so this is at most what one read brought).
const MAX_WAITING_BYTES: usize = 64 * 1024;
/// Bytes of table updates a watching page may leave unread before it misses updates.
const MAX_WATCHER_BACKLOG: usize = 256 * 1024;
/// How many players the scoreboard (and the pages) keep.
const TABLE_SIZE: usize = 100;
/// How often, at most, the scoreboard is refreshed from the database (which other
/// instances write to as well).
const REFRESH: Duration = Duration::from_secs(1);

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS games (\
    name TEXT NOT NULL, guesses INTEGER NOT NULL, played_at BIGINT NOT NULL)";
const INDEX: &str = "CREATE INDEX IF NOT EXISTS games_by_name ON games (name)";

/// One line of the high-score table.
#[derive(Clone)]
struct Entry {
    name: String,
    best: u32,
    games: u64,
}

/// The plain object shared by the game and the web pages.
#[derive(Default)]
struct Scoreboard {
    /// The best players: fewest guesses first, then most games, then by name.
    top: RefCell<Vec<Entry>>,
    online: Cell<usize>,
    games_played: Cell<u64>,
    /// The pages watching the table over `/live`, by a number of their own.
    watchers: RefCell<Vec<(u64, WebSocketTransport)>>,
    next_watcher: Cell<u64>,
}

impl Scoreboard {
    /// Records a player's best and game count (from the database); returns their rank.
    fn update(&self, entry: Entry) -> Option<usize> {
        let mut top = self.top.borrow_mut();
        top.retain(|e| e.name != entry.name);
        let name = entry.name.clone();
        top.push(entry);
        top.sort_by(|a, b| {
            (a.best, std::cmp::Reverse(a.games), &a.name).cmp(&(
                b.best,
                std::cmp::Reverse(b.games),
                &b.name,
            ))
        });
        top.truncate(TABLE_SIZE);
        top.iter().position(|e| e.name == name).map(|i| i + 1)
    }

    /// Sends the table to every page watching it. A page whose connection has more than
    /// `MAX_WATCHER_BACKLOG` bytes unsent skips this update (it gets the next one).
    fn tell_watchers(&self) {
        let watchers = self.watchers.borrow();
        if watchers.is_empty() {
            return;
        }
        let json = table_json(self);
        for (_, t) in watchers.iter() {
            if t.buffered_size() <= MAX_WATCHER_BACKLOG {
                t.send_text(&json);
            }
        }
    }

    /// Takes in the database's top players. A player's count of games only grows, so of
    /// two lines for one player the one with more games is the newer: a game this instance
    /// saved while the query ran is kept. Sorting the union and keeping the first
    /// `TABLE_SIZE` drops whoever other instances' players pushed out.
    fn merge(&self, rows: Vec<Entry>) {
        let mut top = self.top.borrow_mut();
        for row in rows {
            match top.iter_mut().find(|e| e.name == row.name) {
                Some(e) if e.games >= row.games => {}
                Some(e) => *e = row,
                None => top.push(row),
            }
        }
        top.sort_by(|a, b| {
            (a.best, std::cmp::Reverse(a.games), &a.name).cmp(&(
                b.best,
                std::cmp::Reverse(b.games),
                &b.name,
            ))
        });
        top.truncate(TABLE_SIZE);
    }
}

/// When the scoreboard was last refreshed from the database, and who waits for the refresh
/// running now.
#[derive(Default)]
struct Freshness {
    last: Option<Instant>,
    /// `Some` while a refresh runs: the requests waiting for it (at most one per request
    /// being answered).
    waiting: Option<Vec<Trigger<()>>>,
}

/// The scoreboard, kept at most `REFRESH` behind the database.
struct Tables {
    scores: Rc<Scoreboard>,
    pool: ConnectionPool,
    freshness: RefCell<Freshness>,
}

impl Tables {
    /// Fires when the scoreboard holds the database's table of at most `REFRESH` ago: at
    /// once if the last refresh began since, else when the running refresh (or a new one)
    /// ends. Never fails: a failed refresh is logged and the table stays as it was.
    fn fresh(self: &Rc<Self>) -> Deferred<()> {
        let mut f = self.freshness.borrow_mut();
        if f.waiting.is_none() && f.last.is_some_and(|t| t.elapsed() < REFRESH) {
            return succeed(());
        }
        let d = Deferred::new();
        let running = f.waiting.is_some();
        f.waiting.get_or_insert_with(Vec::new).push(d.trigger());
        if !running {
            f.last = Some(Instant::now());
            drop(f);
            let me = self.clone();
            ensure_deferred(async move {
                match top_players(&me.pool).await {
                    Ok(rows) => me.scores.merge(rows),
                    Err(failure) => torsion::log::err(
                        &failure,
                        "refreshing the table from the database failed; showing the last one:",
                    ),
                }
                let waiting = me.freshness.borrow_mut().waiting.take();
                for t in waiting.unwrap_or_default() {
                    // A request that went away meanwhile no longer listens.
                    let _ = t.try_callback(());
                }
                Ok::<(), Failure>(())
            });
        }
        d
    }
}

/// What every connection shares.
struct Game {
    scores: Rc<Scoreboard>,
    tables: Rc<Tables>,
    pool: ConnectionPool,
    random: RandomState,
    games_started: Cell<u64>,
}

impl Game {
    fn new_secret(&self) -> u32 {
        let n = self.games_started.get() + 1;
        self.games_started.set(n);
        let mut h = self.random.build_hasher();
        h.write_u64(n);
        (h.finish() % u64::from(HIGHEST)) as u32 + 1
    }
}

/// One player's state, shared between the protocol and the callbacks of its saves.
struct Session {
    name: Option<String>,
    secret: u32,
    guesses: u32,
    /// A save is in flight: lines wait in `waiting`.
    saving: bool,
    waiting: VecDeque<Vec<u8>>,
    waiting_bytes: usize,
    /// The peer closed its side: close once the waiting lines are answered.
    close_when_done: bool,
    gone: bool,
}

/// The game protocol: a `LineReceiver` handing each line to [`handle_line`].
struct Player {
    game: Rc<Game>,
    session: Rc<RefCell<Session>>,
}

impl LineReceiver for Player {
    fn max_length(&self) -> usize {
        MAX_LINE
    }

    fn connection_made(&mut self, t: &mut LineTransport<'_>) {
        self.game
            .scores
            .online
            .set(self.game.scores.online.get() + 1);
        t.send_line(b"welcome to highscore: send NAME <name>, then guess my number (1-100)");
    }

    fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        let mut s = self.session.borrow_mut();
        if s.saving {
            if s.waiting_bytes + line.len() > MAX_WAITING_BYTES {
                drop(s);
                torsion::log::msg(&format!(
                    "{}: too many lines while saving; closing",
                    t.get_peer()
                ));
                t.lose_connection();
                return;
            }
            s.waiting_bytes += line.len();
            s.waiting.push_back(line.to_vec());
            return;
        }
        drop(s);
        handle_line(&self.game, &self.session, t.transport(), line);
    }

    fn read_connection_lost(&mut self, t: &mut LineTransport<'_>) {
        let mut s = self.session.borrow_mut();
        if s.saving {
            s.close_when_done = true;
        } else {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.session.borrow_mut().gone = true;
        self.game
            .scores
            .online
            .set(self.game.scores.online.get() - 1);
    }
}

fn send(t: &Transport, line: &str) {
    t.write_sequence(&[line.as_bytes(), b"\r\n"]);
}

/// Answers one line. Called by the protocol, and by a save's callback for the lines that
/// waited.
fn handle_line(game: &Rc<Game>, session: &Rc<RefCell<Session>>, t: &Transport, line: &[u8]) {
    let line = line.trim_ascii();
    let (command, arg) = match line.iter().position(|b| *b == b' ') {
        Some(i) => (&line[..i], line[i + 1..].trim_ascii()),
        None => (line, &b""[..]),
    };
    let mut s = session.borrow_mut();
    if command.eq_ignore_ascii_case(b"NAME") {
        match valid_name(arg) {
            Ok(name) => {
                send(
                    t,
                    &format!("hello {name}: guess my number between 1 and {HIGHEST}"),
                );
                if s.name.is_none() {
                    s.secret = game.new_secret();
                    s.guesses = 0;
                }
                s.name = Some(name);
            }
            Err(why) => send(t, &format!("error: {why}")),
        }
    } else if command.eq_ignore_ascii_case(b"QUIT") {
        send(t, "bye");
        t.lose_connection();
    } else if let Ok(guess) = std::str::from_utf8(line).unwrap_or("").parse::<u32>() {
        let Some(name) = s.name.clone() else {
            return send(t, "error: send NAME <name> first");
        };
        if !(1..=HIGHEST).contains(&guess) {
            return send(t, &format!("error: guess a number between 1 and {HIGHEST}"));
        }
        s.guesses += 1;
        if guess < s.secret {
            send(t, "higher");
        } else if guess > s.secret {
            send(t, "lower");
        } else {
            send(t, &format!("correct in {}", s.guesses));
            s.saving = true;
            t.pause_producing();
            let guesses = s.guesses;
            drop(s);
            save_score(game, session, t, name, guesses);
        }
    } else {
        send(
            t,
            "error: unknown command; send NAME <name>, a number, or QUIT",
        );
    }
}

/// A name: UTF-8 text of 1 to 32 characters, no control characters.
fn valid_name(arg: &[u8]) -> Result<String, &'static str> {
    let name = std::str::from_utf8(arg).map_err(|_| "names must be UTF-8 text")?;
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME {
        return Err("names have 1 to 32 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("names cannot hold control characters");
    }
    Ok(name.to_owned())
}

/// Stores a finished game, then tells the player and answers the lines that waited.
fn save_score(
    game: &Rc<Game>,
    session: &Rc<RefCell<Session>>,
    t: &Transport,
    name: String,
    guesses: u32,
) {
    let played_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let who = name.clone();
    let saved = game.pool.run_interaction(move |txn| {
        txn.execute(
            "INSERT INTO games (name, guesses, played_at) VALUES ($1, $2, $3)",
            (who.as_str(), guesses, played_at),
        )?;
        let row = txn.query(
            "SELECT min(guesses), count(*) FROM games WHERE name = $1",
            (who.as_str(),),
        )?;
        Ok::<_, DbError>((row[0].get::<u32>(0)?, row[0].get::<u64>(1)?))
    });
    let (game, session, t) = (game.clone(), session.clone(), t.clone());
    ensure_deferred(async move {
        let reply = match saved.await {
            Ok((best, games)) => {
                torsion::log::msg(&format!(
                    "{}: {name} saved a game in {guesses} guesses",
                    t.get_peer()
                ));
                game.scores
                    .games_played
                    .set(game.scores.games_played.get() + 1);
                // The rank counts the other instances' players too (as of at most REFRESH
                // ago).
                game.tables.fresh().await.ok();
                let rank = game.scores.update(Entry { name, best, games });
                game.scores.tell_watchers();
                match rank {
                    Some(rank) => format!("saved: best {best}, rank {rank}"),
                    None => format!("saved: best {best}, unranked"),
                }
            }
            Err(failure) => {
                torsion::log::err(&failure, "saving a score failed:");
                let why = failure.to_string().replace(['\r', '\n'], " ");
                format!("error: score not saved: {why}")
            }
        };
        finish_save(&game, &session, &t, &reply);
        Ok::<(), Failure>(())
    });
}

fn finish_save(game: &Rc<Game>, session: &Rc<RefCell<Session>>, t: &Transport, reply: &str) {
    {
        let mut s = session.borrow_mut();
        if s.gone {
            return;
        }
        send(t, reply);
        send(
            t,
            &format!("new game: guess my number between 1 and {HIGHEST}"),
        );
        s.secret = game.new_secret();
        s.guesses = 0;
        s.saving = false;
    }
    // Answer the lines that arrived meanwhile, until one starts another save.
    loop {
        let next = {
            let mut s = session.borrow_mut();
            if s.saving || t.disconnecting() {
                return;
            }
            let line = s.waiting.pop_front();
            if let Some(l) = &line {
                s.waiting_bytes -= l.len();
            }
            line
        };
        match next {
            Some(line) => handle_line(game, session, t, &line),
            None => break,
        }
    }
    if session.borrow().close_when_done {
        t.lose_connection();
    } else {
        t.resume_producing();
    }
}

/// `/live`: a page's subscription to the table.
struct LiveTable {
    scores: Rc<Scoreboard>,
    id: u64,
}

impl WebSocketProtocol for LiveTable {
    fn connection_made(&mut self, t: &WebSocketTransport) {
        t.send_text(&table_json(&self.scores));
        self.scores.watchers.borrow_mut().push((self.id, t.clone()));
    }

    /// A page sends nothing; what it sends is ignored.
    fn text_message_received(&mut self, _t: &WebSocketTransport, _text: String) {}

    fn connection_lost(&mut self, _reason: CloseReason) {
        self.scores
            .watchers
            .borrow_mut()
            .retain(|(id, _)| *id != self.id);
    }
}

/// The script of the table page: redraws the table from each message on `/live`. Names go
/// in as text (`textContent`), never as markup.
const LIVE_SCRIPT: &str = r#"<script>
(function () {
  var ws = new WebSocket((location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + "/live");
  var body = document.body;
  ws.onopen = function () { body.dataset.live = "open"; };
  ws.onclose = function () { body.dataset.live = "closed"; };
  ws.onmessage = function (e) {
    var t = JSON.parse(e.data);
    document.getElementById("online").textContent = t.online;
    document.getElementById("played").textContent = t.games_played;
    var table = document.getElementById("scores");
    while (table.rows.length > 1) { table.deleteRow(1); }
    t.scores.forEach(function (s) {
      var row = table.insertRow();
      [s.rank, s.name, s.best, s.games].forEach(function (v) { row.insertCell().textContent = v; });
    });
    body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
  };
})();
</script>
"#;

/// `/`: the table as HTML (names escaped), kept up to date over `/live` by its script (or
/// reloading itself every 5 s without script).
struct TablePage {
    tables: Rc<Tables>,
}

impl Resource for TablePage {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, request: &Request) -> Render {
        request.set_header("Content-Type", "text/html; charset=utf-8");
        let tables = self.tables.clone();
        Render::future(async move {
            tables.fresh().await?;
            Ok::<_, Failure>(table_html(&tables.scores).into_bytes())
        })
    }
}

/// The table page's HTML.
fn table_html(scores: &Scoreboard) -> String {
    {
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>High scores</title>\
             <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript></head><body>\n\
             <h1>High scores</h1>\n<p><span id=\"online\">{}</span> playing now, \
             <span id=\"played\">{}</span> games since the server started.</p>\n\
             <table id=\"scores\">\n<tr><th>#</th><th>Player</th><th>Best (guesses)</th><th>Games</th></tr>\n",
            scores.online.get(),
            scores.games_played.get()
        );
        for (i, e) in scores.top.borrow().iter().enumerate() {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                i + 1,
                html_escape(&e.name),
                e.best,
                e.games
            ));
        }
        html.push_str("</table>\n");
        html.push_str(LIVE_SCRIPT);
        html.push_str("</body></html>\n");
        html
    }
}

/// `/scores.json`: the same table as JSON.
struct JsonScores {
    tables: Rc<Tables>,
}

impl Resource for JsonScores {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, request: &Request) -> Render {
        request.set_header("Content-Type", "application/json");
        // JSON must never be sniffed into HTML or script by a browser.
        request.set_header("X-Content-Type-Options", "nosniff");
        let tables = self.tables.clone();
        Render::future(async move {
            tables.fresh().await?;
            Ok::<_, Failure>(table_json(&tables.scores).into_bytes())
        })
    }
}

/// The table as JSON.
fn table_json(scores: &Scoreboard) -> String {
    let table: Vec<serde_json::Value> = scores
        .top
        .borrow()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::json!({
                "rank": i + 1, "name": e.name, "best": e.best, "games": e.games,
            })
        })
        .collect();
    serde_json::json!({
        "online": scores.online.get(),
        "games_played": scores.games_played.get(),
        "scores": table,
    })
    .to_string()
}

/// `/health`: `200 ok` when the database answers, `503` and the reason when it does not
/// (what a load balancer's health check asks).
struct Health {
    pool: ConnectionPool,
}

impl Resource for Health {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, request: &Request) -> Render {
        request.set_header("Content-Type", "text/plain; charset=utf-8");
        request.set_header("Cache-Control", "no-store");
        let (pool, request) = (self.pool.clone(), request.clone());
        Render::future(async move {
            match pool.run_query("SELECT 1", ()).await {
                Ok(_) => Ok::<_, Failure>(b"ok\n".to_vec()),
                Err(failure) => {
                    request.set_response_code(503);
                    let why = failure.to_string().replace(['\r', '\n'], " ");
                    Ok(format!("database unavailable: {why}\n").into_bytes())
                }
            }
        })
    }
}

/// The database's top players, best first.
async fn top_players(pool: &ConnectionPool) -> Result<Vec<Entry>, Failure> {
    let rows = pool
        .run_query(
            "SELECT name, min(guesses) AS best, count(*) AS games FROM games \
             GROUP BY name ORDER BY best, games DESC, name LIMIT $1",
            (TABLE_SIZE as i64,),
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Entry {
                name: row.get("name")?,
                best: row.get("best")?,
                games: row.get("games")?,
            })
        })
        .collect()
}

/// Creates the table and its index if they are missing. Instances started together on a
/// new PostgreSQL database race: `CREATE ... IF NOT EXISTS` is not atomic there, and the
/// loser fails with a unique violation in the catalog (`pg_type_typname_nsp_index`). Its
/// second try finds the table made, so a failure is retried. Each failed try means another
/// instance made one of the two objects, so three tries are enough; an error that stays
/// (a missing right, say) is reported after the third.
async fn create_schema(pool: &ConnectionPool) -> Result<(), Failure> {
    const TRIES: u32 = 3;
    for attempt in 1.. {
        let created = async {
            pool.run_operation(SCHEMA, ()).await?;
            pool.run_operation(INDEX, ()).await
        };
        match created.await {
            Ok(_) => break,
            Err(failure) if attempt < TRIES => torsion::log::msg(&format!(
                "creating the games table failed ({failure}); trying again (another \
                 instance may be creating it)"
            )),
            Err(failure) => return Err(failure),
        }
    }
    Ok(())
}

/// Creates the table if needed and loads the scoreboard.
async fn load(tables: &Tables) -> Result<(), Failure> {
    create_schema(&tables.pool).await?;
    tables.scores.merge(top_players(&tables.pool).await?);
    tables.freshness.borrow_mut().last = Some(Instant::now());
    Ok(())
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let (db, file) = match cli.db {
        Some(db) => (db, None),
        None => {
            let folder = data_dir().map_err(|f| startup_error(format!("{f}, or give --db")))?;
            let file = folder.join("highscore.db");
            (format!("sqlite:{}", file.display()), Some(file))
        }
    };

    // Nothing touches the database until the first call, so the ports are taken first: a
    // busy port stops the program before it creates a database file.
    let pool = ConnectionPool::new(&db, 1, 4)?;
    let scores = Rc::new(Scoreboard::default());
    let tables = Rc::new(Tables {
        scores: scores.clone(),
        pool: pool.clone(),
        freshness: RefCell::default(),
    });
    let game = Rc::new(Game {
        scores: scores.clone(),
        tables: tables.clone(),
        pool: pool.clone(),
        random: RandomState::new(),
        games_started: Cell::new(0),
    });
    let manhole = match cli.manhole {
        Some(port) => Some(
            ManholeFactory::listen_telnet(
                &reactor(),
                port,
                "127.0.0.1",
                manhole_registry(&scores, &game),
            )
            .map_err(Failure::new)?,
        ),
        None => None,
    };
    let players = factory(move || {
        Lines::new(Player {
            game: game.clone(),
            session: Rc::new(RefCell::new(Session {
                name: None,
                secret: 0,
                guesses: 0,
                saving: false,
                waiting: VecDeque::new(),
                waiting_bytes: 0,
                close_when_done: false,
                gone: false,
            })),
        })
    });
    let root = Directory::new();
    root.put_child(
        b"",
        Rc::new(TablePage {
            tables: tables.clone(),
        }),
    );
    root.put_child(
        b"scores.json",
        Rc::new(JsonScores {
            tables: tables.clone(),
        }),
    );
    root.put_child(b"health", Rc::new(Health { pool: pool.clone() }));
    let watched = scores.clone();
    root.put_child(
        b"live",
        Rc::new(
            WebSocketResource::new(move |_request| {
                let id = watched.next_watcher.get() + 1;
                watched.next_watcher.set(id);
                Some(LiveTable {
                    scores: watched.clone(),
                    id,
                })
            })
            .with_deflate(DeflateOptions::default()),
        ),
    );
    let interface = cli.interface.to_string();
    let game_listening = if cli.proxy_protocol {
        reactor().listen_tcp_on(
            cli.game_port,
            HAProxyWrappingFactory::new(players),
            &interface,
        )?
    } else {
        reactor().listen_tcp_on(cli.game_port, players, &interface)?
    };
    let web_listening = reactor().listen_tcp_on(cli.web_port, Site::new(root), &interface)?;
    if let Some(file) = &file {
        let folder = file.parent().expect("a file in the data folder");
        std::fs::create_dir_all(folder)
            .map_err(|e| startup_error(format!("cannot create {}: {e}", folder.display())))?;
        println!(
            "highscore: scores kept in {} (--db chooses another database)",
            file.display()
        );
    }

    let failed: Rc<RefCell<Option<Failure>>> = Rc::default();
    let failure = failed.clone();
    reactor().call_when_running(move || {
        ensure_deferred(async move {
            load(&tables).await?;
            println!(
                "highscore: {} players on the table, from {}",
                scores.top.borrow().len(),
                pool.backend()
            );
            // Said once the table is loaded: a client that waits for these lines sees it.
            println!("highscore game listening on {}", game_listening.get_host());
            println!("highscore web listening on {}", web_listening.get_host());
            if let Some(port) = &manhole {
                println!("highscore manhole listening on {}", port.get_host());
            }
            Ok::<(), Failure>(())
        })
        .add_both(move |started| {
            if let Err(f) = started {
                *failure.borrow_mut() = Some(f);
                reactor().stop()?;
            }
            Ok::<(), Failure>(())
        })
    });
    reactor().run()?;
    match failed.take() {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
