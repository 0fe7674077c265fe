//! The runner's log (Twisted's `twistd --logfile` and `twisted.logger`'s JSON output), on
//! [`tracing`]: every event at or above the chosen level becomes one line, as text or as a
//! JSON object, written to standard output, to a file that rotates by size, by day, or
//! both, keeping a number of rotated files, or to the local syslog daemon ([`Syslog`],
//! twistd's `--syslog`).
//!
//! Text lines read `TIMESTAMP LEVEL [worker N] TARGET: MESSAGE key=value...`; JSON lines
//! are objects with `timestamp`, `level`, `target`, `message`, `fields` (the event's other
//! fields) and, with several workers, `worker`. Rotated files are named as Twisted's
//! `LogFile` names them: `torsiond.log.1` is the newest, `torsiond.log.2` the one before.
//!
//! Colour: text lines written to standard output get a coloured level only when standard
//! output is a terminal (and `NO_COLOR` is not set); a log redirected to a file or a pipe, a
//! `--logfile`, and JSON lines never hold ANSI escape codes. Control characters that come
//! from outside (a file name, a peer's input) are written escaped (`\u{1b}`), so they
//! cannot colour or rewrite a terminal either; newlines and tabs are kept.
//!
//! ```
//! use torsiond::logging::RotatingFile;
//!
//! let dir = std::env::temp_dir().join(format!("torsiond-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("app.log");
//! // Rotate past 64 bytes, keep 2 old files, no daily rotation.
//! let mut log = RotatingFile::open(&path, 64, false, 2).unwrap();
//! for i in 0..10 {
//!     log.write_line(format!("line {i} of a log that rotates by size\n").as_bytes()).unwrap();
//! }
//! assert!(path.exists());
//! assert!(dir.join("app.log.1").exists());
//! assert!(dir.join("app.log.2").exists());
//! assert!(!dir.join("app.log.3").exists()); // only 2 kept
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ArgMatches;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::{Context, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// A log file that rotates: when a line would take it past `max_size` bytes, or when the
/// day (UTC) changed since its last line, the file is renamed to `NAME.1` (older ones move
/// up to `NAME.2`, ... and the oldest past `keep` is deleted) and a new one is started.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    daily: bool,
    day: u64,
    keep: usize,
}

/// Days since the Unix epoch, UTC.
fn day_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

impl RotatingFile {
    /// Opens (appending to) or creates `path`. `max_size` 0 never rotates by size; `daily`
    /// rotates at the first line of a new day; `keep` is how many rotated files are kept (0:
    /// the file is emptied instead of rotated).
    ///
    /// # Errors
    /// The file cannot be opened or created.
    pub fn open(path: &Path, max_size: u64, daily: bool, keep: usize) -> io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        let day = meta
            .modified()
            .ok()
            .filter(|_| meta.len() > 0)
            .map_or_else(|| day_of(SystemTime::now()), day_of);
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size: meta.len(),
            max_size,
            daily,
            day,
            keep,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (which should end with a newline), rotating first if it is due.
    ///
    /// # Errors
    /// Writing, renaming or creating the file failed.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_line_at(line, SystemTime::now())
    }

    /// [`write_line`](Self::write_line) as if the time were `now`.
    fn write_line_at(&mut self, line: &[u8], now: SystemTime) -> io::Result<()> {
        let today = day_of(now);
        let len = line.len() as u64;
        let too_big = self.max_size > 0 && self.size > 0 && self.size + len > self.max_size;
        let new_day = self.daily && self.size > 0 && today != self.day;
        if too_big || new_day {
            self.rotate()?;
        }
        self.day = today;
        self.file.write_all(line)?;
        self.size += len;
        Ok(())
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Moves the current file to `NAME.1` (and the older ones up), and starts a new one.
    fn rotate(&mut self) -> io::Result<()> {
        if self.keep > 0 {
            match fs::remove_file(self.numbered(self.keep)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..self.keep).rev() {
                match fs::rename(self.numbered(n), self.numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The syslog facilities `--facility` takes, and their codes (RFC 5424, section 6.2.1).
const FACILITY_CODES: [(&str, u8); 10] = [
    ("user", 1),
    ("daemon", 3),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The names `--facility` takes.
pub(crate) const FACILITIES: [&str; 10] = [
    "user", "daemon", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];

/// The code of a facility named in [`FACILITIES`] (`user` for any other name).
pub(crate) fn facility_code(name: &str) -> u8 {
    FACILITY_CODES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |(_, code)| *code)
}

/// Parses `--prefix`: 1 to 64 printable ASCII characters other than space, `:`, `[` and
/// `]`, which would end the syslog tag early.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_graphic() && !matches!(c, ':' | '[' | ']');
    if !s.is_empty() && s.len() <= 64 && s.chars().all(ok) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a syslog prefix (1 to 64 printable characters, without spaces, ':', '[' or ']')"
        ))
    }
}

/// The syslog socket `--syslog` writes to: `/dev/log`, or the path in the environment
/// variable `TORSION_SYSLOG_SOCKET` (for tests, which listen on a socket of their own).
pub fn syslog_socket_path() -> PathBuf {
    std::env::var_os("TORSION_SYSLOG_SOCKET")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from)
}

/// The longest message part of a syslog datagram; longer lines are cut (syslog daemons
/// cut them too, rsyslog at 8 KiB by default).
const SYSLOG_MAX_LINE: usize = 8000;

/// Log lines sent to the local syslog daemon over its datagram socket (`/dev/log`), framed
/// as the C library's `syslog(3)` frames them (RFC 3164 without the timestamp, which the
/// daemon adds): `<PRI>PREFIX[PID]: MESSAGE`. PRI is the facility times 8 plus the
/// severity: error 3, warn 4, info 6, debug and trace 7. A message of several lines is sent
/// as one datagram per line, the lines after the first starting with a tab (as Twisted's
/// `SyslogObserver` does).
///
/// ```
/// use std::os::unix::net::UnixDatagram;
/// use torsiond::logging::Syslog;
///
/// let path = std::env::temp_dir().join(format!("torsiond-doc-syslog-{}", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let daemon = UnixDatagram::bind(&path).unwrap();
/// let mut log = Syslog::connect(&path, "myapp", 3).unwrap(); // facility 3: daemon
/// log.send(tracing::Level::WARN, "disk almost full").unwrap();
/// let mut buf = [0; 256];
/// let n = daemon.recv(&mut buf).unwrap();
/// let expected = format!("<28>myapp[{}]: disk almost full", std::process::id());
/// assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), expected);
/// std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug)]
pub struct Syslog {
    socket: std::os::unix::net::UnixDatagram,
    path: PathBuf,
    prefix: String,
    facility: u8,
}

impl Syslog {
    /// Connects to the syslog datagram socket at `path`; lines will be tagged `prefix` and
    /// sent with `facility` (1: user, 3: daemon, 16 to 23: local0 to local7).
    ///
    /// # Errors
    /// The socket does not exist or refuses the connection (no syslog daemon runs).
    pub fn connect(path: &Path, prefix: &str, facility: u8) -> io::Result<Syslog> {
        Ok(Syslog {
            socket: Self::open(path)?,
            path: path.to_owned(),
            prefix: prefix.to_owned(),
            facility,
        })
    }

    fn open(path: &Path) -> io::Result<std::os::unix::net::UnixDatagram> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        socket.connect(path)?;
        // A daemon that stops reading must not stop the server for long: a line that
        // cannot be sent within a second is dropped (and reported once).
        socket.set_write_timeout(Some(std::time::Duration::from_secs(1)))?;
        Ok(socket)
    }

    /// The datagram for one line of a message at `level`.
    fn frame(&self, level: Level, line: &str) -> Vec<u8> {
        let severity = match level {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        let mut cut = line.len().min(SYSLOG_MAX_LINE);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(
            "<{}>{}[{}]: {}",
            u32::from(self.facility) * 8 + severity,
            self.prefix,
            std::process::id(),
            &line[..cut]
        )
        .into_bytes()
    }

    /// Sends `message` (at `level`), one datagram per line. When the daemon went away (it
    /// restarted), connects again once and resends.
    ///
    /// # Errors
    /// The datagram could not be sent, even after connecting again.
    pub fn send(&mut self, level: Level, message: &str) -> io::Result<()> {
        let mut lines = message.trim_end_matches('\n').split('\n');
        let first = lines.next().unwrap_or_default();
        self.send_one(&self.frame(level, first))?;
        for line in lines {
            self.send_one(&self.frame(level, &format!("\t{line}")))?;
        }
        Ok(())
    }

    fn send_one(&mut self, datagram: &[u8]) -> io::Result<()> {
        match self.socket.send(datagram) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::NotConnected
                        | io::ErrorKind::NotFound
                ) =>
            {
                self.socket = Self::open(&self.path)?;
                self.socket.send(datagram).map(drop)
            }
            Err(e) => Err(e),
        }
    }
}

/// Where log lines go.
#[derive(Debug)]
pub enum LogSink {
    /// Standard output.
    Stdout,
    /// A rotating file.
    File(RotatingFile),
    /// The local syslog daemon.
    Syslog(Syslog),
}

impl LogSink {
    /// Writes one formatted line (an event at `level`).
    fn write_line(&mut self, level: Level, line: &[u8]) -> io::Result<()> {
        match self {
            LogSink::Syslog(s) => s.send(level, &String::from_utf8_lossy(line)),
            LogSink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            LogSink::File(f) => f.write_line(line),
        }
    }
}

/// The `tracing` layer that writes the runner's log lines. Lines from every worker thread
/// go through one lock, so they never interleave.
#[derive(Debug)]
pub struct LogLayer {
    format: LogFormat,
    colour: bool,
    /// Lines go to syslog, which stamps them with the time and carries the level itself.
    syslog: bool,
    sink: Mutex<LogSink>,
    /// Whether a failed write was reported already (once, on standard error).
    reported: std::sync::atomic::AtomicBool,
}

impl LogLayer {
    /// A layer writing `format` lines to `sink`, without colour.
    pub fn new(format: LogFormat, sink: LogSink) -> LogLayer {
        LogLayer {
            format,
            colour: false,
            syslog: matches!(sink, LogSink::Syslog(_)),
            sink: Mutex::new(sink),
            reported: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Colours the level of text lines with ANSI escape codes (JSON lines never are). The
    /// runner turns this on only when the lines go to a terminal: see [`colour_wanted`].
    pub fn colour(mut self, on: bool) -> LogLayer {
        self.colour = on;
        self
    }

    /// Formats one event as a line (with its newline; for syslog, text lines have neither
    /// timestamp, level nor newline).
    fn line(&self, event: &Event<'_>, worker: Option<usize>) -> String {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut timestamp = String::with_capacity(32);
        let _ =
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp));
        match self.format {
            LogFormat::Text => {
                let mut line = if self.syslog {
                    String::new()
                } else if self.colour {
                    let colour = match *meta.level() {
                        Level::ERROR => "31",
                        Level::WARN => "33",
                        Level::INFO => "32",
                        Level::DEBUG => "34",
                        Level::TRACE => "35",
                    };
                    format!("{timestamp} \x1b[{colour}m{:>5}\x1b[0m ", meta.level())
                } else {
                    format!("{timestamp} {:>5} ", meta.level())
                };
                if let Some(w) = worker {
                    let _ = write!(line, "[worker {w}] ");
                }
                let _ = write!(line, "{}: ", meta.target());
                push_escaped(&mut line, &fields.message);
                for (name, value) in &fields.rest {
                    match value {
                        Value::String(s) => {
                            let _ = write!(line, " {name}=");
                            push_escaped(&mut line, s);
                        }
                        other => {
                            let _ = write!(line, " {name}={other}");
                        }
                    }
                }
                if !self.syslog {
                    line.push('\n');
                }
                line
            }
            LogFormat::Json => {
                // Written by hand so the keys come in this order; values escaped by serde_json.
                let text = |v: &str| Value::String(v.to_owned()).to_string();
                let mut line = format!(
                    "{{\"timestamp\":{},\"level\":{},\"target\":{},\"message\":{},\"fields\":{}",
                    text(&timestamp),
                    text(meta.level().as_str()),
                    text(meta.target()),
                    Value::String(fields.message),
                    Value::Object(fields.rest),
                );
                if let Some(w) = worker {
                    let _ = write!(line, ",\"worker\":{w}");
                }
                line.push('}');
                if !self.syslog {
                    line.push('\n');
                }
                line
            }
        }
    }
}

/// Appends `text`, with control characters other than newline and tab escaped (`\u{1b}`):
/// an escape sequence from a file name or a peer must not reach a terminal or a log file.
fn push_escaped(line: &mut String, text: &str) {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        line.push_str(text);
        return;
    }
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            let _ = write!(line, "{}", c.escape_default());
        } else {
            line.push(c);
        }
    }
}

/// Whether text log lines written to `sink` should be coloured: only on standard output,
/// only when it is a terminal, and not when `NO_COLOR` is set (<https://no-color.org>).
pub fn colour_wanted(sink: &LogSink) -> bool {
    use std::io::IsTerminal;
    matches!(sink, LogSink::Stdout)
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = self.line(event, crate::current_worker());
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = sink.write_line(*event.metadata().level(), line.as_bytes()) {
            if !self
                .reported
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                let _ = writeln!(io::stderr(), "torsiond: cannot write the log: {e}");
            }
        }
    }
}

/// An event's message and other fields.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            match value {
                Value::String(s) => self.message = s,
                other => self.message = other.to_string(),
            }
        } else {
            self.rest.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
}

/// Parses a size: a number of bytes, optionally with a `K`, `M` or `G` suffix (powers of
/// 1024). `0` means never.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => {
            return Err(format!(
                "'{s}' is not a size (bytes, or a number with K, M or G)"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (bytes, or a number with K, M or G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// The level a `--log-level` value names.
pub(crate) fn level_of(name: &str) -> Level {
    match name {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        _ => Level::INFO,
    }
}

/// The least severe level logged now, as an index into [`LEVELS`]: process-wide, as the
/// subscriber is, and changeable while the runner runs (the manhole's `log_level`).
static LEVEL: AtomicUsize = AtomicUsize::new(2);

/// The levels by name, most severe first.
const LEVELS: [(&str, Level); 5] = [
    ("error", Level::ERROR),
    ("warn", Level::WARN),
    ("info", Level::INFO),
    ("debug", Level::DEBUG),
    ("trace", Level::TRACE),
];

fn current_level() -> Level {
    LEVELS[LEVEL.load(Ordering::Relaxed).min(LEVELS.len() - 1)].1
}

fn set_level(level: Level) {
    let i = LEVELS.iter().position(|(_, l)| *l == level).unwrap_or(2);
    LEVEL.store(i, Ordering::Relaxed);
    // Callsites cached as never enabled, and the global maximum level, are worked out again.
    tracing::callsite::rebuild_interest_cache();
}

/// The least severe level logged now: `error`, `warn`, `info`, `debug` or `trace`.
pub fn log_level() -> &'static str {
    LEVELS[LEVEL.load(Ordering::Relaxed).min(LEVELS.len() - 1)].0
}

/// Changes the least severe level logged, while the runner runs (the manhole's
/// `log_level = "debug"`).
///
/// # Errors
/// When `name` names no level.
pub fn set_log_level(name: &str) -> Result<(), String> {
    match LEVELS.iter().find(|(n, _)| *n == name) {
        Some((_, level)) => {
            set_level(*level);
            tracing::info!(target: "torsiond", "log level set to {name}");
            Ok(())
        }
        None => Err(format!(
            "no log level {name:?}: one of error, warn, info, debug, trace"
        )),
    }
}

/// The runner's filter: events at the current level or more severe (read at each event, so
/// a change applies at once), without the framework's multi-line report of a failure to
/// listen below debug level.
struct RunnerFilter;

impl<S> tracing_subscriber::layer::Filter<S> for RunnerFilter {
    fn enabled(
        &self,
        m: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let level = current_level();
        *m.level() <= level
            && (level >= Level::DEBUG
                || !(m.target() == "torsion"
                    && *m.level() == Level::ERROR
                    && QUIET_LISTEN.with(Cell::get)))
    }

    fn callsite_enabled(
        &self,
        m: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if *m.level() <= current_level() {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing_subscriber::filter::LevelFilter> {
        Some(tracing_subscriber::filter::LevelFilter::from_level(
            current_level(),
        ))
    }
}

thread_local! {
    /// Set while a [`ListenService`](crate::ListenService) starts listening: the framework's
    /// multi-line report of a failure to listen is then left out below debug level, as
    /// [`fail`](crate::fail) prints it in one line.
    pub(crate) static QUIET_LISTEN: Cell<bool> = const { Cell::new(false) };
}

/// Sends log events to standard output, a rotating file or syslog, as text or JSON lines.
pub(crate) fn init(matches: &ArgMatches) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer as _;
    let level = level_of(
        matches
            .get_one::<String>("log-level")
            .map_or("info", String::as_str),
    );
    let format = match matches.get_one::<String>("log-format").map(String::as_str) {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let sink = if matches.get_flag("syslog") {
        let path = syslog_socket_path();
        let prefix = matches
            .get_one::<String>("prefix")
            .map_or("torsiond", String::as_str);
        let facility = facility_code(
            matches
                .get_one::<String>("facility")
                .map_or("user", String::as_str),
        );
        match Syslog::connect(&path, prefix, facility) {
            Ok(syslog) => LogSink::Syslog(syslog),
            Err(e) => {
                crate::exit::say(format_args!(
                    "torsiond: cannot log to syslog through {}: {e} (is a syslog daemon running?); logging to standard output instead",
                    path.display()
                ));
                LogSink::Stdout
            }
        }
    } else {
        match matches.get_one::<PathBuf>("logfile") {
            Some(path) if path.as_os_str() != "-" => {
                let size = *matches.get_one::<u64>("log-rotate-size").unwrap_or(&0);
                let daily = matches.get_flag("log-rotate-daily");
                let keep = usize::from(*matches.get_one::<u16>("log-rotate-keep").unwrap_or(&10));
                let file = RotatingFile::open(path, size, daily, keep)
                    .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
                LogSink::File(file)
            }
            _ => LogSink::Stdout,
        }
    };
    set_level(level);
    let filter = RunnerFilter;
    let colour = format == LogFormat::Text && colour_wanted(&sink);
    let layer = LogLayer::new(format, sink).colour(colour);
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use torsion::testing::TempDir;

    /// The lines a text layer (coloured or not) writes to a file for two events holding an
    /// escape sequence, one in the message and one in a field.
    fn text_lines(colour: bool) -> String {
        use tracing_subscriber::layer::SubscriberExt;
        let tmp = TempDir::new(if colour { "colour" } else { "plain" });
        let path = tmp.join("x.log");
        let file = RotatingFile::open(&path, 0, false, 1).unwrap();
        let layer = LogLayer::new(LogFormat::Text, LogSink::File(file)).colour(colour);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "t", "serving /srv/\x1b[31mred\tfolder");
            tracing::warn!(target: "t", path = "a\x1b]0;title\x07b", "refused");
        });
        fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn plain_text_lines_hold_no_escape_codes() {
        let text = text_lines(false);
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(!text.contains('\x07'), "{text:?}");
        assert!(
            text.contains("INFO t: serving /srv/\\u{1b}[31mred\tfolder\n"),
            "{text:?}"
        );
        assert!(
            text.contains("WARN t: refused path=a\\u{1b}]0;title\\u{7}b\n"),
            "{text:?}"
        );
    }

    #[test]
    fn coloured_text_lines_colour_only_the_level() {
        let text = text_lines(true);
        assert!(text.contains("\x1b[32m INFO\x1b[0m t: serving"), "{text:?}");
        assert!(text.contains("\x1b[33m WARN\x1b[0m t: refused"), "{text:?}");
        // What came from outside is still escaped.
        assert_eq!(text.matches('\x1b').count(), 4, "{text:?}");
    }

    #[test]
    fn a_log_file_is_never_coloured() {
        let tmp = TempDir::new("sink");
        let file = RotatingFile::open(&tmp.join("x.log"), 0, false, 1).unwrap();
        assert!(!colour_wanted(&LogSink::File(file)));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5T").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn keep_zero_empties_instead_of_rotating() {
        let tmp = TempDir::new("k0");
        let dir = tmp.path().to_path_buf();
        let path = dir.join("x.log");
        let mut f = RotatingFile::open(&path, 10, false, 0).unwrap();
        f.write_line(b"0123456789\n").unwrap();
        f.write_line(b"abc\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "abc\n");
        assert!(!dir.join("x.log.1").exists());
    }

    #[test]
    fn a_new_day_rotates_when_daily() {
        let tmp = TempDir::new("day");
        let dir = tmp.path().to_path_buf();
        let path = dir.join("x.log");
        let day = std::time::Duration::from_secs(86_400);
        let monday = UNIX_EPOCH + day * 20_000 + std::time::Duration::from_secs(3600);
        let mut f = RotatingFile::open(&path, 0, true, 5).unwrap();
        f.write_line_at(b"monday 1\n", monday).unwrap();
        f.write_line_at(b"monday 2\n", monday + std::time::Duration::from_secs(7200))
            .unwrap();
        f.write_line_at(b"tuesday\n", monday + day).unwrap();
        f.write_line_at(b"thursday\n", monday + day * 3).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "thursday\n");
        assert_eq!(
            fs::read_to_string(dir.join("x.log.1")).unwrap(),
            "tuesday\n"
        );
        assert_eq!(
            fs::read_to_string(dir.join("x.log.2")).unwrap(),
            "monday 1\nmonday 2\n"
        );
        // Without `daily`, days do not matter.
        let other = dir.join("y.log");
        let mut g = RotatingFile::open(&other, 0, false, 5).unwrap();
        g.write_line_at(b"a\n", monday).unwrap();
        g.write_line_at(b"b\n", monday + day).unwrap();
        assert_eq!(fs::read_to_string(&other).unwrap(), "a\nb\n");
    }

    #[test]
    fn reopening_appends_and_counts_the_size() {
        let tmp = TempDir::new("re");
        let dir = tmp.path().to_path_buf();
        let path = dir.join("x.log");
        RotatingFile::open(&path, 0, false, 3)
            .unwrap()
            .write_line(b"first\n")
            .unwrap();
        let mut f = RotatingFile::open(&path, 8, false, 3).unwrap();
        f.write_line(b"second\n").unwrap(); // 6 + 7 > 8: rotates first
        assert_eq!(fs::read_to_string(&path).unwrap(), "second\n");
        assert_eq!(fs::read_to_string(dir.join("x.log.1")).unwrap(), "first\n");
    }
}
