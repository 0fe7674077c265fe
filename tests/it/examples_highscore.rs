//! Runs the `highscore` example (`cargo run --example highscore`) and plays it over real
//! sockets: games by binary search, a pipelining player, hostile input (oversized lines,
//! non-UTF-8 and HTML names), hundreds of concurrent players, a restart (scores persist), and
//! a database that refuses one player's scores (that player is told; the others play on).
//! The web page and the JSON endpoint are checked against what the players saw.

use crate::support;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::Running;

/// How long the example may take to start, building included.
const DEADLINE: Duration = Duration::from_secs(300);
/// How long a client waits for an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An SQLite file (and its WAL files) in the temporary folder, removed when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new(tag: &str) -> TempDb {
        TempDb(support::temp_path(&format!("highscore-{tag}"), ".db"))
    }

    fn url(&self) -> String {
        format!("sqlite:{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Starts the game on ephemeral ports; returns it with its game and web ports.
fn start(db: &TempDb) -> (Running, u16, u16) {
    start_on(&db.url())
}

/// Starts the game on the database `url`.
fn start_on(url: &str) -> (Running, u16, u16) {
    let mut child = support::example("highscore")
        .args(["--game-port", "0", "--web-port", "0", "--db", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start cargo run");
    let stdout = child.stdout.take().unwrap();
    // Its log (a line per saved game) shows with the test's output when the test fails.
    let log = support::lines(child.stderr.take().unwrap());
    thread::spawn(move || log.iter().for_each(|line| eprintln!("{line}")));
    let running = Running(child);
    let rx = support::lines(stdout);
    let port_after = |line: &str, prefix: &str| -> Option<u16> {
        line.strip_prefix(prefix)?.rsplit_once(':')?.1.parse().ok()
    };
    let (mut game, mut web) = (None, None);
    let started = Instant::now();
    while game.is_none() || web.is_none() {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .expect("highscore did not say where it listens");
        game = game.or(port_after(&line, "highscore game listening on tcp:"));
        web = web.or(port_after(&line, "highscore web listening on tcp:"));
    }
    (running, game.unwrap(), web.unwrap())
}

/// A player's connection.
struct Player {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Player {
    /// Connects and reads the welcome line.
    fn connect(port: u16) -> Player {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the game");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut p = Player {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        assert!(p.line().starts_with("welcome to highscore"));
        p
    }

    fn send(&mut self, line: &[u8]) {
        self.writer.write_all(line).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
    }

    /// The next line, without its `\r\n`; panics at end of stream.
    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut buf)
            .expect("read a line");
        assert!(n > 0, "the server closed the connection");
        String::from_utf8(buf)
            .expect("UTF-8 reply")
            .trim_end()
            .to_owned()
    }

    fn ask(&mut self, line: &[u8]) -> String {
        self.send(line);
        self.line()
    }

    /// True when the server has closed the connection (after reading what was left): end
    /// of stream, or a reset (a server closing with unread input sends one); false on a
    /// time-out.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    fn name(&mut self, name: &str) {
        let hello = self.ask(format!("NAME {name}").as_bytes());
        assert_eq!(
            hello,
            format!("hello {name}: guess my number between 1 and 100")
        );
    }

    /// Plays one game by binary search; returns the guesses it took and the line that
    /// followed `correct in N` (`saved: ...` or `error: ...`).
    fn play(&mut self) -> (u32, String) {
        let (mut low, mut high) = (1, 100);
        for n in 1..=7 {
            let guess = (low + high) / 2;
            match self.ask(guess.to_string().as_bytes()).as_str() {
                "higher" => low = guess + 1,
                "lower" => high = guess - 1,
                reply => {
                    assert_eq!(reply, format!("correct in {n}"));
                    let outcome = self.line();
                    assert_eq!(self.line(), "new game: guess my number between 1 and 100");
                    return (n, outcome);
                }
            }
        }
        panic!("binary search over 1..=100 takes at most 7 guesses");
    }
}

/// GET `path` from the web port; returns the content type and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the web port");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    if path.ends_with(".json") {
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nx-content-type-options: nosniff"),
            "JSON must not be sniffed: {head}"
        );
    }
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// The JSON endpoint's table, as (name, best, games) by rank.
fn json_scores(port: u16) -> (serde_json::Value, Vec<(String, u64, u64)>) {
    let (content_type, body) = get(port, "/scores.json");
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    let table = json["scores"]
        .as_array()
        .expect("a scores array")
        .iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e["rank"].as_u64(), Some(i as u64 + 1));
            (
                e["name"].as_str().unwrap().to_owned(),
                e["best"].as_u64().unwrap(),
                e["games"].as_u64().unwrap(),
            )
        })
        .collect();
    (json, table)
}

fn entry<'a>(table: &'a [(String, u64, u64)], name: &str) -> &'a (String, u64, u64) {
    table
        .iter()
        .find(|e| e.0 == name)
        .unwrap_or_else(|| panic!("{name} is not in {table:?}"))
}

const HTML_NAME: &str = "<script>alert(\"x\")</script>&";

#[test]
fn games_web_hostile_input_restart_and_database_errors() {
    let db = TempDb::new("main");
    let (server, game_port, web_port) = start(&db);

    // alice plays two games, the HTML-named player one.
    let mut alice = Player::connect(game_port);
    assert_eq!(alice.ask(b"42"), "error: send NAME <name> first");
    alice.name("alice");
    let (a1, saved1) = alice.play();
    assert_eq!(saved1, format!("saved: best {a1}, rank 1"));
    let (a2, saved2) = alice.play();
    let alice_best = a1.min(a2);
    assert!(saved2.starts_with(&format!("saved: best {alice_best}, rank ")));

    let mut html = Player::connect(game_port);
    html.name(HTML_NAME);
    let (h1, _) = html.play();

    // Hostile input: bad names and guesses get errors and the connection stays...
    let mut rogue = Player::connect(game_port);
    assert_eq!(
        rogue.ask(b"NAME \xff\xfe bad"),
        "error: names must be UTF-8 text"
    );
    assert_eq!(rogue.ask(b"NAME "), "error: names have 1 to 32 characters");
    assert_eq!(
        rogue.ask(format!("NAME {}", "x".repeat(40)).as_bytes()),
        "error: names have 1 to 32 characters"
    );
    assert_eq!(
        rogue.ask(b"NAME a\x07b"),
        "error: names cannot hold control characters"
    );
    rogue.name("rogue");
    assert_eq!(
        rogue.ask(b"1000"),
        "error: guess a number between 1 and 100"
    );
    assert_eq!(
        rogue.ask(b"\x00\x01 garbage \xff"),
        "error: unknown command; send NAME <name>, a number, or QUIT"
    );
    // ... and an oversized line closes only that connection.
    rogue.send(&[b'9'; 10_000]);
    assert!(
        rogue.closed(),
        "an oversized line must close the connection"
    );
    let (a3, _) = alice.play(); // alice is unaffected
    let alice_best = alice_best.min(a3);

    // A pipelining player: 100 guesses in one write. Every line is answered in order, the
    // lines sent while a score is saved included.
    let mut pipe = Player::connect(game_port);
    let mut burst = b"NAME pipe\r\n".to_vec();
    for n in 1..=100 {
        burst.extend_from_slice(format!("{n}\r\n").as_bytes());
    }
    pipe.writer.write_all(&burst).unwrap();
    assert!(pipe.line().starts_with("hello pipe"));
    let (mut answered, mut pipe_games, mut guesses) = (0, 0, 0);
    while answered < 100 {
        let reply = pipe.line();
        answered += 1;
        guesses += 1;
        if let Some(n) = reply.strip_prefix("correct in ") {
            assert_eq!(n.parse::<u32>().unwrap(), guesses);
            assert!(pipe.line().starts_with("saved: best "));
            assert!(pipe.line().starts_with("new game: "));
            pipe_games += 1;
            guesses = 0;
        } else {
            assert!(reply == "higher" || reply == "lower", "{reply}");
        }
    }
    assert!(pipe_games >= 1);
    assert_eq!(pipe.ask(b"QUIT"), "bye");
    assert!(pipe.closed());

    // The web page: the live table, names escaped.
    let (content_type, page) = get(web_port, "/");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(page.contains("<td>alice</td>"), "{page}");
    assert!(!page.contains("<script>alert"), "unescaped name in {page}");
    assert!(
        page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;"),
        "{page}"
    );
    // The JSON: what the players saw.
    let (json, table) = json_scores(web_port);
    assert_eq!(
        entry(&table, "alice"),
        &("alice".into(), alice_best.into(), 3)
    );
    assert_eq!(entry(&table, HTML_NAME), &(HTML_NAME.into(), h1.into(), 1));
    assert_eq!(entry(&table, "pipe").2, pipe_games);
    assert_eq!(json["games_played"].as_u64(), Some(4 + pipe_games));
    let bests: Vec<u64> = table.iter().map(|e| e.1).collect();
    assert!(
        bests.windows(2).all(|w| w[0] <= w[1]),
        "not sorted: {table:?}"
    );
    drop((alice, html));
    drop(server);

    // The database refuses mallory's scores from now on.
    let conn = rusqlite::Connection::open(&db.0).expect("open the game's database");
    conn.execute_batch(
        "CREATE TRIGGER no_mallory BEFORE INSERT ON games WHEN NEW.name = 'mallory' \
         BEGIN SELECT RAISE(ABORT, 'mallory is banned'); END;",
    )
    .unwrap();
    drop(conn);

    // Restarted on the same database: the scores are still there.
    let (_server, game_port, web_port) = start(&db);
    let (json, table) = json_scores(web_port);
    assert_eq!(
        entry(&table, "alice"),
        &("alice".into(), alice_best.into(), 3)
    );
    assert_eq!(entry(&table, HTML_NAME).2, 1);
    assert_eq!(json["games_played"].as_u64(), Some(0));

    // mallory is told the score was not saved, and plays on; alice is not disturbed.
    let mut mallory = Player::connect(game_port);
    mallory.name("mallory");
    let mut alice = Player::connect(game_port);
    alice.name("alice");
    let (_, refused) = mallory.play();
    assert!(refused.starts_with("error: score not saved: "), "{refused}");
    assert!(refused.contains("mallory is banned"), "{refused}");
    let (_, saved) = alice.play();
    assert!(saved.starts_with("saved: "), "{saved}");
    let (_, refused) = mallory.play();
    assert!(refused.contains("mallory is banned"), "{refused}");
    let (_, table) = json_scores(web_port);
    assert!(table.iter().all(|e| e.0 != "mallory"));
    assert_eq!(entry(&table, "alice").2, 4);
}

#[test]
fn hundreds_of_concurrent_players() {
    const PLAYERS: usize = 200;
    let db = TempDb::new("crowd");
    let (_server, game_port, web_port) = start(&db);
    // Everyone connects first, so that all are online at once; then all play together.
    let players: Vec<Player> = (0..PLAYERS).map(|_| Player::connect(game_port)).collect();
    let (_, page) = get(web_port, "/");
    assert!(
        page.contains(&format!("<span id=\"online\">{PLAYERS}</span> playing now")),
        "{page}"
    );
    let handles: Vec<_> = players
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            thread::spawn(move || {
                let name = format!("p{i}");
                p.name(&name);
                let (n, saved) = p.play();
                assert!(saved.starts_with(&format!("saved: best {n}, ")), "{saved}");
                (name, n)
            })
        })
        .collect();
    let results: Vec<(String, u32)> = handles
        .into_iter()
        .map(|h| h.join().expect("a player failed"))
        .collect();
    let (json, table) = json_scores(web_port);
    assert_eq!(json["games_played"].as_u64(), Some(PLAYERS as u64));
    // The table keeps the best 100; each listed player's best is what they saw.
    assert_eq!(table.len(), 100);
    for (name, best, games) in &table {
        let seen = results.iter().find(|r| &r.0 == name).unwrap().1;
        assert_eq!((*best, *games), (u64::from(seen), 1));
    }
    let worst_listed = table.last().unwrap().1;
    assert!(results
        .iter()
        .filter(|r| u64::from(r.1) < worst_listed)
        .all(|r| table.iter().any(|e| e.0 == r.0)));
}

#[test]
fn scores_on_postgresql_persist() {
    let Some(url) = support::pg::postgres_url() else {
        return;
    };
    // Names of this run only: the server may be a shared one (TORSION_PG_URL).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let (pat, html) = (
        format!("pat{}_{nanos}", std::process::id()),
        format!("<i>{nanos}</i>"),
    );
    let (server, game_port, web_port) = start_on(&url);
    let mut p = Player::connect(game_port);
    p.name(&pat);
    let (g1, saved) = p.play();
    assert!(saved.starts_with(&format!("saved: best {g1}, ")), "{saved}");
    let (g2, _) = p.play();
    let mut h = Player::connect(game_port);
    h.name(&html);
    let (g3, _) = h.play();
    let (json, table) = json_scores(web_port);
    assert_eq!(json["games_played"].as_u64(), Some(3));
    assert_eq!(entry(&table, &pat), &(pat.clone(), g1.min(g2).into(), 2));
    drop((p, h));
    drop(server);
    let (_server, _, web_port) = start_on(&url);
    let (_, table) = json_scores(web_port);
    assert_eq!(entry(&table, &pat), &(pat.clone(), g1.min(g2).into(), 2));
    assert_eq!(entry(&table, &html), &(html.clone(), g3.into(), 1));
    let (_, page) = get(web_port, "/");
    assert!(
        page.contains(&format!("&lt;i&gt;{nanos}&lt;/i&gt;")),
        "{page}"
    );
}

/// The table page as a player sees it: Chromium renders it, a name made of markup shows as
/// text (no element, no script ran), and the scores are in the table's rows.
#[test]
fn the_table_renders_in_a_browser() {
    let db = TempDb::new("browser");
    let (_server, game_port, web_port) = start(&db);
    let hostile = "<img src=x onerror=alert(1)>";
    let mut player = Player::connect(game_port);
    player.name(hostile);
    let (guesses, _) = player.play();
    player.name("bob");
    let (bob, _) = player.play();

    let Some(dom) = support::browser_dom(&format!("http://127.0.0.1:{web_port}/")) else {
        return;
    };
    assert!(dom.contains("<title>High scores</title>"), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
    assert!(
        dom.contains(&format!(
            "<td>&lt;img src=x onerror=alert(1)&gt;</td><td>{guesses}</td>"
        )),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("<td>bob</td><td>{bob}</td>")),
        "{dom}"
    );
}

/// Headless Chromium with a page open, driven over the DevTools protocol (JSON over a
/// WebSocket to the page; this plain-socket client uses Torsion's frame codec).
struct Browser {
    _child: Running,
    profile: PathBuf,
    ws: TcpStream,
    decoder: torsion::web::proto::websocket::Decoder,
    next_id: u64,
}

impl Browser {
    /// Opens `url` in Chromium; `None` after a loud skip when Chromium is missing.
    fn open(url: &str) -> Option<Browser> {
        use torsion::web::proto::websocket::{Decoder, Role, WsLimits};
        if !support::have_chromium() {
            return None;
        }
        let profile = support::temp_path("chromium-devtools", "d");
        let mut child = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox", // tests run as root on CI, where the sandbox cannot start
                "--disable-gpu",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium");
        let errors = support::lines(child.stderr.take().unwrap());
        let child = Running(child);
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let port: u16 = loop {
            let line = errors
                .recv_timeout(Duration::from_secs(60))
                .expect("chromium did not say where DevTools listens");
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                break rest.split('/').next().unwrap().parse().unwrap();
            }
        };
        thread::spawn(move || errors.iter().for_each(drop));
        // The page's own DevTools WebSocket, from the list of targets.
        let started = Instant::now();
        let path = loop {
            let list = http_get_json(port, "/json/list");
            let page = list.as_array().into_iter().flatten().find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
            });
            if let Some(ws) = page.and_then(|t| t["webSocketDebuggerUrl"].as_str()) {
                break ws.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
            }
            assert!(started.elapsed() < DEADLINE, "no page in {list}");
            thread::sleep(Duration::from_millis(50));
        };
        let mut ws = TcpStream::connect(("127.0.0.1", port)).unwrap();
        ws.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ws.read_exact(&mut byte)
                .expect("DevTools answered the upgrade");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Some(Browser {
            _child: child,
            profile,
            ws,
            decoder: Decoder::new(Role::Client, WsLimits::default()),
            next_id: 0,
        })
    }

    /// Evaluates `expression` in the page; its value.
    fn evaluate(&mut self, expression: &str) -> serde_json::Value {
        use torsion::web::proto::websocket::{encode_frame, Message, Opcode};
        self.next_id += 1;
        let id = self.next_id;
        let call = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true},
        });
        let mut frame = Vec::new();
        encode_frame(
            &mut frame,
            true,
            Opcode::Text,
            call.to_string().as_bytes(),
            Some([7, 7, 7, 7]),
        );
        self.ws.write_all(&frame).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            while let Some(m) = self.decoder.next_message().expect("DevTools frames") {
                let Message::Text(text) = m else { continue };
                let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
                if reply["id"] == id {
                    assert!(reply["result"]["exceptionDetails"].is_null(), "{reply}");
                    return reply["result"]["result"]["value"].clone();
                }
            }
            let n = self.ws.read(&mut buf).expect("read from DevTools");
            assert!(n > 0, "DevTools closed the connection");
            self.decoder.feed(&buf[..n]);
        }
    }

    /// Evaluates `expression` until `done` holds for its value (within `READ_TIMEOUT`).
    fn wait_for(
        &mut self,
        expression: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let value = self.evaluate(expression);
            if done(&value) {
                return value;
            }
            assert!(
                started.elapsed() < READ_TIMEOUT,
                "{expression} is still {value}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// GET `path` from a local HTTP server, as JSON.
fn http_get_json(port: u16, path: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    // HTTP/1.1: DevTools drops HTTP/1.0 requests.
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(usize::MAX);
            if body.len() >= length {
                return serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                let text = String::from_utf8_lossy(&got).into_owned();
                let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                return serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The live table: Chromium loads the page, which subscribes over WebSocket (`/live`); a
/// game played over the line protocol then shows in the page's table without a reload, a
/// hostile name as text.
#[test]
fn the_table_updates_live_in_a_browser() {
    let db = TempDb::new("live");
    let (_server, game_port, web_port) = start(&db);
    let mut early = Player::connect(game_port);
    early.name("early");
    early.play();
    let Some(mut browser) = Browser::open(&format!("http://127.0.0.1:{web_port}/")) else {
        return;
    };
    // The page's first update: the table as it was when it subscribed. (The page target
    // is listed before its document has a body.)
    browser.wait_for(
        "(document.body && document.body.dataset.updates) || '0'",
        |v| v == "1",
    );
    assert_eq!(browser.evaluate("document.body.dataset.live"), "open");
    // A mark in this document: it is still there if the page was never reloaded.
    browser.evaluate("window.seenBefore = 'yes'");

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("<b>live {nanos}</b>");
    let mut player = Player::connect(game_port);
    player.name(&name);
    let (guesses, saved) = player.play();
    assert!(saved.starts_with("saved: "), "{saved}");
    let rows = browser.wait_for(
        "Array.from(document.querySelectorAll('#scores tr')).map(r => Array.from(r.cells).map(c => c.textContent))",
        |rows| rows.to_string().contains("live "),
    );
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[1] == name.as_str())
        .unwrap_or_else(|| panic!("{name} is not in {rows}"));
    assert_eq!(row[2], guesses.to_string(), "{row}");
    assert_eq!(row[3], "1", "{row}");
    assert_eq!(
        browser.evaluate("window.seenBefore"),
        "yes",
        "the page reloaded"
    );
    assert_eq!(browser.evaluate("document.body.dataset.updates"), "2");
    assert_eq!(
        browser.evaluate("document.querySelectorAll('#scores b').length"),
        0,
        "a name made of markup became markup"
    );
    assert_eq!(
        browser.evaluate("document.getElementById('played').textContent"),
        "2"
    );
}

/// `--manhole PORT`: a telnet console on loopback shows the game's counters and its table,
/// after a game is played.
#[test]
fn the_manhole_shows_the_counters_and_the_table() {
    let db = TempDb::new("manhole");
    let mut child = support::example("highscore")
        .args(["--game-port", "0", "--web-port", "0", "--manhole", "0"])
        .args(["--db", &db.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start cargo run");
    let rx = support::lines(child.stdout.take().unwrap());
    let _running = Running(child);
    let port_after = |line: &str, prefix: &str| -> Option<u16> {
        line.strip_prefix(prefix)?.rsplit_once(':')?.1.parse().ok()
    };
    let (mut game, mut manhole) = (None, None);
    let started = Instant::now();
    while game.is_none() || manhole.is_none() {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .expect("highscore did not say where it listens");
        game = game.or(port_after(&line, "highscore game listening on tcp:"));
        manhole = manhole.or(port_after(&line, "highscore manhole listening on tcp:"));
    }
    let mut p = Player::connect(game.unwrap());
    p.name("mia");
    let (guesses, outcome) = p.play();
    assert!(outcome.starts_with("saved"), "{outcome}");

    // A plain TCP client: the telnet negotiation stays unanswered, the console in plain lines.
    let mut c = TcpStream::connect(("127.0.0.1", manhole.unwrap())).unwrap();
    c.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut until_prompt = move |send: &str| -> String {
        c.write_all(send.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b">>> ") {
            assert_eq!(c.read(&mut byte).unwrap(), 1, "the console closed");
            got.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&got[..got.len() - 4]).into_owned();
        text.trim_end_matches("\r\n").to_string()
    };
    until_prompt("");
    let mut ask = |line: &str| until_prompt(&format!("{line}\r\n"));
    assert_eq!(ask("online"), "1");
    assert_eq!(ask("games_started"), "2");
    let deadline = Instant::now() + READ_TIMEOUT;
    while ask("scores.len()") != "1" {
        assert!(Instant::now() < deadline, "the table never showed mia");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        ask("scores.top(5)"),
        format!("[#{{\"best\": {guesses}, \"games\": 1, \"name\": \"mia\"}}]")
    );
    assert_eq!(ask("scores"), "Scores(1 players)");
    assert!(ask("online = 0").contains("constant"));
}
