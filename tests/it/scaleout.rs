//! Scale-out (issue 20): two `highscore` instances behind HAProxy, sharing one PostgreSQL
//! database, lose nothing when one of them is killed with SIGKILL under load.
//!
//! HAProxy runs the configuration shown in docs/deployment.md ("Several instances behind
//! HAProxy"), read from that file, with its frontends on sockets this test bound to port 0
//! and handed over (`bind fd@N`) and the instances' ephemeral ports put in; the test adds
//! only a runtime API socket. Players connect from 127.0.0.5 (HAProxy reaches the instances
//! from 127.0.0.1), so an instance can only log 127.0.0.5 if it read the PROXY header.
//!
//! The test checks that after the kill every new connection still gets a game, that HAProxy
//! marks the dead instance DOWN, that every game whose `saved:` the player saw is in the
//! `games` table exactly once (a game cut between `correct` and `saved` at most once), that
//! the surviving instance, a restarted one and HAProxy's table frontend all show the
//! database's table, and that `/health` turns 503 when the database goes away.

use crate::support::{self, Running};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an instance may take to start (on a loaded machine).
const START_DEADLINE: Duration = Duration::from_secs(300);
/// How long anything else may take: a reply, HAProxy noticing, a table catching up.
const DEADLINE: Duration = Duration::from_secs(30);
/// Players playing at once.
const PLAYERS: usize = 8;
/// Games saved before instance one is killed.
const KILL_AFTER: usize = 200;
/// Games saved after HAProxy marked instance one DOWN, before the load stops.
const AFTER_DOWN: usize = 300;
/// Games played one after another once instance one is back.
const AFTER_RESTART: usize = 12;
/// Where the players connect from.
const PLAYER_IP: &str = "127.0.0.5";

/// Polls `f` until it gives `Some`, failing after [`DEADLINE`].
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A highscore instance: the process, its ports, and its log (standard error) as it comes.
struct Instance {
    process: Running,
    game: u16,
    web: u16,
    log: Arc<Mutex<Vec<String>>>,
    /// Standard error reached its end (the process is gone).
    log_ended: Arc<AtomicBool>,
}

/// The highscore binary, built if needed. Started directly rather than through `cargo run`
/// (which waits on cargo's lock), so that instances started together really start together.
fn highscore_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--example", "highscore"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdin(Stdio::null())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --example highscore failed");
            // This test runs from target/PROFILE/deps; examples are in target/PROFILE/examples.
            let exe = std::env::current_exe().unwrap();
            let path = exe.parent().unwrap().parent().unwrap();
            let path = path.join("examples").join("highscore");
            assert!(path.exists(), "no {}", path.display());
            path
        })
        .clone()
}

impl Instance {
    fn start(label: &'static str, db: &str) -> Instance {
        let mut child = Command::new(highscore_binary())
            .args(["--game-port", "0", "--web-port", "0", "--proxy-protocol"])
            .args(["--db", db])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start highscore");
        let stdout = support::lines(child.stdout.take().unwrap());
        let stderr = support::lines(child.stderr.take().unwrap());
        let process = Running(child);
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let log_ended = Arc::new(AtomicBool::new(false));
        let (keep, ended) = (Arc::clone(&log), Arc::clone(&log_ended));
        thread::spawn(move || {
            for line in stderr {
                eprintln!("[{label}] {line}");
                keep.lock().unwrap().push(line);
            }
            ended.store(true, Ordering::SeqCst);
        });
        let port_after = |line: &str, prefix: &str| -> Option<u16> {
            line.strip_prefix(prefix)?.rsplit_once(':')?.1.parse().ok()
        };
        let (mut game, mut web) = (None, None);
        let started = Instant::now();
        while game.is_none() || web.is_none() {
            let left = START_DEADLINE.saturating_sub(started.elapsed());
            let line = stdout
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("highscore {label} did not say where it listens"));
            game = game.or(port_after(&line, "highscore game listening on tcp:"));
            web = web.or(port_after(&line, "highscore web listening on tcp:"));
        }
        Instance {
            process,
            game: game.unwrap(),
            web: web.unwrap(),
            log,
            log_ended,
        }
    }

    /// SIGKILL, and wait until the process is gone and its log read to the end.
    fn kill(&mut self) {
        self.process.0.kill().expect("SIGKILL the instance");
        self.process.0.wait().expect("reap the instance");
        poll("the killed instance's log to end", || {
            self.log_ended.load(Ordering::SeqCst).then_some(())
        });
    }

    /// The `saved a game` lines of the log: name -> the peers it was logged with.
    fn saves(&self) -> HashMap<String, Vec<String>> {
        let mut saves: HashMap<String, Vec<String>> = HashMap::new();
        for line in self.log.lock().unwrap().iter() {
            // INFO lines end with "tcp:IP:PORT: NAME saved a game in N guesses".
            let Some(rest) = line.split_once("tcp:").map(|(_, rest)| rest) else {
                continue;
            };
            let Some((peer_and_name, _)) = rest.split_once(" saved a game in ") else {
                continue;
            };
            let Some((peer, name)) = peer_and_name.split_once(": ") else {
                continue;
            };
            saves
                .entry(name.to_owned())
                .or_default()
                .push(format!("tcp:{peer}"));
        }
        saves
    }
}

/// HAProxy with the configuration of docs/deployment.md, killed when dropped.
struct HAProxy {
    process: Running,
    game: u16,
    web: u16,
    admin: std::path::PathBuf,
    _config: support::TempFile,
}

impl Drop for HAProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.admin);
    }
}

/// The `haproxy.cfg` block of docs/deployment.md.
fn documented_config() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deployment.md"))
        .expect("read docs/deployment.md");
    let section = doc
        .split_once("## Several instances behind HAProxy\n")
        .expect("docs/deployment.md has the HAProxy recipe")
        .1;
    let block = section
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .expect("the recipe shows haproxy.cfg")
        .0;
    assert!(block.starts_with("global\n"), "{block}");
    block.to_owned()
}

impl HAProxy {
    fn start(one: &Instance, two: &Instance) -> HAProxy {
        let game = TcpListener::bind("127.0.0.1:0").unwrap();
        let web = TcpListener::bind("127.0.0.1:0").unwrap();
        let (game_port, web_port) = (
            game.local_addr().unwrap().port(),
            web.local_addr().unwrap().port(),
        );
        let admin = support::temp_path("haproxy-admin", ".sock");
        let mut config = documented_config();
        for (from, to) in [
            ("bind 127.0.0.1:1079\n", "bind fd@3\n".to_owned()),
            ("bind 127.0.0.1:1080\n", "bind fd@4\n".to_owned()),
            ("127.0.0.1:11079 ", format!("127.0.0.1:{} ", one.game)),
            ("port 11080\n", format!("port {}\n", one.web)),
            ("127.0.0.1:11080\n", format!("127.0.0.1:{}\n", one.web)),
            ("127.0.0.1:12079 ", format!("127.0.0.1:{} ", two.game)),
            ("port 12080\n", format!("port {}\n", two.web)),
            ("127.0.0.1:12080\n", format!("127.0.0.1:{}\n", two.web)),
        ] {
            assert_eq!(config.matches(from).count(), 1, "{from:?} in {config}");
            config = config.replace(from, &to);
        }
        let config = format!(
            "global\n    stats socket {} level admin\n{}",
            admin.display(),
            config.strip_prefix("global\n").unwrap()
        );
        let cfg = support::TempFile::new("haproxy", ".cfg", config.as_bytes());
        let mut command = Command::new("haproxy");
        command
            .args(["-db", "-f", cfg.path()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        use command_fds::{CommandFdExt, FdMapping};
        command
            .fd_mappings(vec![
                FdMapping {
                    parent_fd: game.into(),
                    child_fd: 3,
                },
                FdMapping {
                    parent_fd: web.into(),
                    child_fd: 4,
                },
            ])
            .unwrap();
        let mut child = command.spawn().expect("start haproxy");
        let stderr = support::lines(child.stderr.take().unwrap());
        thread::spawn(move || {
            for line in stderr {
                eprintln!("[haproxy] {line}");
            }
        });
        let mut haproxy = HAProxy {
            process: Running(child),
            game: game_port,
            web: web_port,
            admin,
            _config: cfg,
        };
        poll("haproxy to answer on its runtime API", || {
            if let Some(status) = haproxy.process.0.try_wait().unwrap() {
                panic!("haproxy exited at start: {status}");
            }
            haproxy.try_command("show info").ok()
        });
        haproxy
    }

    /// Sends a runtime API command; returns the answer.
    fn try_command(&self, command: &str) -> std::io::Result<String> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.admin)?;
        s.set_read_timeout(Some(DEADLINE))?;
        s.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    }

    fn command(&self, command: &str) -> String {
        let answer = self.try_command(command).expect("haproxy's runtime API");
        let trimmed = answer.trim();
        assert!(
            !trimmed.contains("Unknown") && !trimmed.contains("No such"),
            "{command}: {answer}"
        );
        answer
    }

    /// The status of `backend/server` (`UP`, `DOWN`, ...), as `show stat` says.
    fn status(&self, backend: &str, server: &str) -> String {
        let stat = self.command("show stat");
        let mut lines = stat.lines();
        let header: Vec<&str> = lines
            .next()
            .expect("a header")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (px, sv, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() > status && f[px] == backend && f[sv] == server)
            .map(|f| f[status].to_owned())
            .unwrap_or_else(|| panic!("no {backend}/{server} in {stat}"))
    }

    /// Waits until every named server of both backends has `status` (e.g. `UP`).
    fn wait_for(&self, servers: &[&str], status: &str) {
        for server in servers {
            for backend in ["players", "tables"] {
                poll(&format!("{backend}/{server} to be {status}"), || {
                    self.status(backend, server)
                        .starts_with(status)
                        .then_some(())
                });
            }
        }
    }
}

/// A player's connection through HAProxy, from [`PLAYER_IP`].
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    me: SocketAddr,
}

impl Conn {
    /// Connects and reads the welcome line.
    fn open(port: u16) -> std::io::Result<Conn> {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        let from: std::net::IpAddr = PLAYER_IP.parse().unwrap();
        s.bind(&SocketAddr::from((from, 0)).into())?;
        s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(DEADLINE))?;
        let mut c = Conn {
            me: s.local_addr()?,
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        };
        let welcome = c.line()?;
        assert!(welcome.starts_with("welcome to highscore"), "{welcome}");
        Ok(c)
    }

    /// The next line; an error at end of stream.
    fn line(&mut self) -> std::io::Result<String> {
        let mut buf = String::new();
        if self.reader.read_line(&mut buf)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(buf.trim_end().to_owned())
    }

    fn ask(&mut self, line: &str) -> std::io::Result<String> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.line()
    }
}

/// How a game ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// The player saw `saved: ...`.
    Saved,
    /// The connection was cut after `correct in N`, before `saved: ...`.
    CutWhileSaving,
    /// The connection was cut before the number was found.
    CutMidGame,
}

/// One game, as its player saw it.
#[derive(Debug, Clone)]
struct Game {
    name: String,
    guesses: u32,
    outcome: Outcome,
    /// The player's end of the connection.
    from: SocketAddr,
    /// The connection was opened after the killed instance was reaped.
    after_kill: bool,
}

/// Plays one game under `name` by binary search.
fn play(c: &mut Conn, name: &str) -> (u32, Outcome) {
    let mut guesses = 0;
    let result = (|| -> std::io::Result<Outcome> {
        let hello = c.ask(&format!("NAME {name}"))?;
        assert!(hello.starts_with(&format!("hello {name}:")), "{hello}");
        let (mut low, mut high) = (1, 100);
        loop {
            assert!(guesses < 7, "binary search takes at most 7 guesses");
            let guess = (low + high) / 2;
            guesses += 1;
            match c.ask(&guess.to_string())?.as_str() {
                "higher" => low = guess + 1,
                "lower" => high = guess - 1,
                reply => {
                    assert_eq!(reply, format!("correct in {guesses}"));
                    break;
                }
            }
        }
        let Ok(saved) = c.line() else {
            return Ok(Outcome::CutWhileSaving);
        };
        assert!(saved.starts_with("saved: best "), "{saved}");
        // The next game's line may be lost to a cut: the game is saved all the same.
        let _ = c.line();
        Ok(Outcome::Saved)
    })();
    (guesses, result.unwrap_or(Outcome::CutMidGame))
}

/// What the players share.
struct Load {
    prefix: String,
    port: u16,
    stop: AtomicBool,
    saved: AtomicUsize,
    next: AtomicUsize,
    kill_done: Mutex<Option<Instant>>,
    games: Mutex<Vec<Game>>,
    /// Connections opened after the kill that got no welcome.
    failed_after_kill: Mutex<Vec<String>>,
}

/// One player: connects, plays a few games, reconnects, until told to stop.
fn player(load: Arc<Load>) {
    while !load.stop.load(Ordering::SeqCst) {
        let opened = Instant::now();
        let after_kill = load.kill_done.lock().unwrap().is_some_and(|k| opened > k);
        let mut c = match Conn::open(load.port) {
            Ok(c) => c,
            Err(e) => {
                if after_kill {
                    load.failed_after_kill.lock().unwrap().push(e.to_string());
                }
                // Not a busy loop while HAProxy cannot be reached.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for _ in 0..5 {
            if load.stop.load(Ordering::SeqCst) {
                break;
            }
            let name = format!(
                "{}_{}",
                load.prefix,
                load.next.fetch_add(1, Ordering::SeqCst)
            );
            let (guesses, outcome) = play(&mut c, &name);
            if outcome == Outcome::Saved {
                load.saved.fetch_add(1, Ordering::SeqCst);
            }
            let cut = outcome != Outcome::Saved;
            load.games.lock().unwrap().push(Game {
                name,
                guesses,
                outcome,
                from: c.me,
                after_kill,
            });
            if cut {
                break;
            }
        }
    }
}

/// GET `path` from `port`; returns the status code and body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to a web port");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_owned())
}

/// The `/scores.json` table at `port`, as (name, best, games) by rank.
fn table(port: u16) -> Vec<(String, u64, u64)> {
    let (code, body) = get(port, "/scores.json");
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    json["scores"]
        .as_array()
        .expect("a scores array")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["best"].as_u64().unwrap(),
                e["games"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A database of its own on the test's PostgreSQL server (other tests use its default
/// database); returns the client and the URL.
fn own_database(url: &str, name: &str) -> (postgres::Client, String) {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("connect to PostgreSQL");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create the test's database");
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let url = format!("{base}/{name}");
    let client = postgres::Client::connect(&url, postgres::NoTls).expect("connect to it");
    (client, url)
}

#[test]
fn two_instances_behind_haproxy_lose_nothing_when_one_is_killed() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "haproxy is not installed (scripts/test installs Debian's haproxy)",
        );
        return;
    }
    let Some(server) = support::pg::postgres_url() else {
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let db_name = format!("scaleout_{}_{nanos}", std::process::id());
    let (mut pg, url) = own_database(&server, &db_name);

    // Both at once on the new database, as a deployment starts them: both create the games
    // table, which PostgreSQL does not serialise (the example retries).
    highscore_binary();
    let (mut first, two) = thread::scope(|s| {
        let one = s.spawn(|| Instance::start("one", &url));
        let two = s.spawn(|| Instance::start("two", &url));
        (one.join().unwrap(), two.join().unwrap())
    });
    let haproxy = HAProxy::start(&first, &two);
    haproxy.wait_for(&["one", "two"], "UP");

    // The load: PLAYERS players through HAProxy, until told to stop.
    let load = Arc::new(Load {
        prefix: format!("p{nanos}"),
        port: haproxy.game,
        stop: AtomicBool::new(false),
        saved: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        kill_done: Mutex::new(None),
        games: Mutex::default(),
        failed_after_kill: Mutex::default(),
    });
    // Stops the players however the test ends (a failed poll included), so that it cannot
    // hang on them.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let stopper = {
        let load = Arc::clone(&load);
        thread::spawn(move || {
            let _ = stop_rx.recv_timeout(Duration::from_secs(180));
            load.stop.store(true, Ordering::SeqCst);
        })
    };
    let started = Instant::now();
    let players: Vec<_> = (0..PLAYERS)
        .map(|_| {
            let load = Arc::clone(&load);
            thread::spawn(move || player(load))
        })
        .collect();

    poll("games before the kill", || {
        (load.saved.load(Ordering::SeqCst) >= KILL_AFTER).then_some(())
    });
    let saved_at_kill = load.saved.load(Ordering::SeqCst);
    let killed_at = started.elapsed();
    first.kill();
    *load.kill_done.lock().unwrap() = Some(Instant::now());
    let kill_time = Instant::now();
    poll("HAProxy to mark instance one DOWN", || {
        haproxy
            .status("players", "one")
            .starts_with("DOWN")
            .then_some(())
    });
    let down_after = kill_time.elapsed();
    let saved_at_down = load.saved.load(Ordering::SeqCst);
    poll("games after instance one went DOWN", || {
        (load.saved.load(Ordering::SeqCst) >= saved_at_down + AFTER_DOWN).then_some(())
    });
    stop_tx.send(()).unwrap();
    stopper.join().unwrap();
    for p in players {
        p.join().expect("a player failed");
    }
    let load_time = started.elapsed();
    let mut games = load.games.lock().unwrap().clone();

    // Instance one again, on new ports: HAProxy learns them through its runtime API and
    // its health check puts it back.
    let again = Instance::start("one again", &url);
    haproxy.command(&format!(
        "set server players/one addr 127.0.0.1 port {}",
        again.game
    ));
    haproxy.command(&format!("set server players/one check-port {}", again.web));
    haproxy.command(&format!(
        "set server tables/one addr 127.0.0.1 port {}",
        again.web
    ));
    haproxy.wait_for(&["one"], "UP");
    for i in 0..AFTER_RESTART {
        let mut c = Conn::open(haproxy.game).expect("a connection once one is back");
        let name = format!("{}_r{i}", load.prefix);
        let (guesses, outcome) = play(&mut c, &name);
        assert_eq!(outcome, Outcome::Saved, "{name}");
        games.push(Game {
            name,
            guesses,
            outcome,
            from: c.me,
            after_kill: true,
        });
    }

    // After the kill, every new connection got a game, and every game on one was saved.
    let failed = load.failed_after_kill.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "connections failed after the kill: {failed:?}"
    );
    let lost: Vec<&Game> = games
        .iter()
        .filter(|g| g.after_kill && g.outcome != Outcome::Saved)
        .collect();
    assert!(lost.is_empty(), "games lost after the kill: {lost:?}");
    // The kill cut players mid-game: it did happen under load.
    let cut = games.iter().filter(|g| g.outcome != Outcome::Saved).count();
    assert!(cut > 0, "no game was cut by the kill");

    // The database: every game seen saved is there exactly once, with its guesses; a game
    // cut while saving at most once; nothing else.
    let rows = pg
        .query(
            "SELECT name, count(*), min(guesses) FROM games GROUP BY name",
            &[],
        )
        .expect("query the games table");
    drop(pg);
    let stored: HashMap<String, (i64, i32)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let played: HashMap<&str, &Game> = games.iter().map(|g| (g.name.as_str(), g)).collect();
    let mut recorded: Vec<&Game> = Vec::new();
    for g in &games {
        match (&g.outcome, stored.get(&g.name)) {
            (Outcome::Saved, Some(&(1, guesses))) => {
                assert_eq!(guesses, g.guesses as i32, "{}", g.name);
                recorded.push(g);
            }
            (Outcome::CutWhileSaving, Some(&(1, guesses))) => {
                assert_eq!(guesses, g.guesses as i32, "{}", g.name);
                recorded.push(g);
            }
            (Outcome::CutWhileSaving | Outcome::CutMidGame, None) => {}
            (outcome, row) => panic!("{}: {outcome:?}, stored as {row:?}", g.name),
        }
    }
    for name in stored.keys() {
        assert!(
            played.contains_key(name.as_str()),
            "{name} stored, never played"
        );
    }
    assert_eq!(stored.len(), recorded.len());
    let seen_saved = games.iter().filter(|g| g.outcome == Outcome::Saved).count();

    // The logs: each recorded game logged once, by whichever instance saved it, with the
    // player's own address (from the PROXY header: HAProxy connects from 127.0.0.1).
    let per_instance = [first.saves(), two.saves(), again.saves()];
    for (label, saves) in ["one", "two", "one again"].iter().zip(&per_instance) {
        assert!(!saves.is_empty(), "instance {label} saved no game");
    }
    let mut logged: HashMap<&str, Vec<&str>> = HashMap::new();
    for saves in &per_instance {
        for (name, peers) in saves {
            assert!(
                played.contains_key(name.as_str()),
                "{name} logged, never played"
            );
            logged
                .entry(name)
                .or_default()
                .extend(peers.iter().map(String::as_str));
        }
    }
    for g in &recorded {
        let peers = logged.get(g.name.as_str()).cloned().unwrap_or_default();
        let from = format!("tcp:{}", g.from);
        match g.outcome {
            Outcome::Saved => assert_eq!(peers, [from.as_str()], "{}", g.name),
            // Killed between the commit and the log line, or after it.
            _ => assert!(peers.is_empty() || peers == [from.as_str()], "{}", g.name),
        }
    }
    assert_peers_are_players(&logged);

    // The tables: the surviving instance, the restarted one and HAProxy's table frontend
    // all show the database's top 100 (each game under a name of its own).
    let mut expected: Vec<(String, u64, u64)> = recorded
        .iter()
        .map(|g| (g.name.clone(), u64::from(g.guesses), 1))
        .collect();
    expected.sort_by(|a, b| {
        (a.1, std::cmp::Reverse(a.2), &a.0).cmp(&(b.1, std::cmp::Reverse(b.2), &b.0))
    });
    expected.truncate(100);
    for (label, port) in [
        ("two", two.web),
        ("one again", again.web),
        ("haproxy", haproxy.web),
    ] {
        poll(&format!("the table on {label}"), || {
            (table(port) == expected).then_some(())
        });
    }
    let (code, page) = get(two.web, "/");
    assert_eq!(code, 200);
    assert!(
        page.contains(&format!("<td>{}</td>", expected[0].0)),
        "{page}"
    );

    let retried = [&first, &two]
        .iter()
        .map(|i| {
            let log = i.log.lock().unwrap();
            log.iter().filter(|l| l.contains("trying again")).count()
        })
        .sum::<usize>();
    println!(
        "scale-out: {PLAYERS} players; creating the table retried {retried} time(s) at start; \
         instance one SIGKILLed {:.1} s in, after {saved_at_kill} \
         saved games; HAProxy marked it DOWN {} ms later; load ran {:.1} s; {} games played \
         ({seen_saved} seen saved, {} cut mid-game, {} cut while saving of which {} stored); \
         {} more after the restart; {} rows in games; saves logged by one/two/one again: \
         {}/{}/{}",
        killed_at.as_secs_f64(),
        down_after.as_millis(),
        load_time.as_secs_f64(),
        games.len(),
        games
            .iter()
            .filter(|g| g.outcome == Outcome::CutMidGame)
            .count(),
        games
            .iter()
            .filter(|g| g.outcome == Outcome::CutWhileSaving)
            .count(),
        recorded
            .iter()
            .filter(|g| g.outcome == Outcome::CutWhileSaving)
            .count(),
        AFTER_RESTART,
        stored.len(),
        per_instance[0].len(),
        per_instance[1].len(),
        per_instance[2].len(),
    );

    // The health check: 200 while the database answers, 503 once it is gone, and then
    // HAProxy takes the instances out.
    assert_eq!(get(two.web, "/health"), (200, "ok\n".to_owned()));
    let mut admin = postgres::Client::connect(&server, postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .expect("drop the test's database");
    let body = poll("/health to say 503", || {
        let (code, body) = get(two.web, "/health");
        (code == 503).then_some(body)
    });
    assert!(body.starts_with("database unavailable: "), "{body}");
    haproxy.wait_for(&["two"], "DOWN");
}

/// Every logged address is a player's ([`PLAYER_IP`]), none HAProxy's.
fn assert_peers_are_players(logged: &HashMap<&str, Vec<&str>>) {
    let prefix = format!("tcp:{PLAYER_IP}:");
    for (name, peers) in logged {
        for peer in peers {
            assert!(peer.starts_with(&prefix), "{name} logged from {peer}");
        }
    }
}
