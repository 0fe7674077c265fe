//! The manhole: a console into the running program, as Twisted's `twisted.conch.manhole`,
//! with [Rhai](rhai) as its language instead of Python.
//!
//! The program decides what the console may touch through a [`Registry`]: named values
//! (read-only, or read-write through a setter that checks the new value), functions (Rust
//! closures), and objects with methods. Nothing else is reachable: Rhai has no file, network
//! or process access unless the program registers it, its module system is compiled out
//! (`no_module`), and each command runs under limits (operations, string, array and map
//! sizes, call depth, expression depth) and a wall-clock time limit, so `loop {}` is
//! interrupted (see [`Registry::set_time_limit`]).
//!
//! Commands run on the reactor thread inside the connection's `data_received`, between
//! other events, so they see the program's state as it is between two events, never half
//! changed. The value of each command is printed as Twisted's manhole prints it, as the
//! value's representation (`"text"` with quotes, `[1, 2]`), and nothing for `()`.
//!
//! Two ways in:
//! - SSH ([`ssh_server`], [`ManholeSessions`]): logins with the keys of an `authorized_keys`
//!   file, through cred; a shell with a pty gets line editing, history and Tab completion of
//!   the exposed names, and `ssh host 'command'` runs one command and exits 0, or 1 with the
//!   error. Any interface may be served: the keys guard it.
//! - Telnet ([`ManholeFactory::listen_telnet`]): plain lines, no authentication, so only on
//!   a loopback address.
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! use rhai::Scope;
//! use torsion_conch::manhole::Registry;
//!
//! let hits = Rc::new(Cell::new(41_i64));
//! let reg = Registry::new();
//! let h = hits.clone();
//! reg.value_rw("hits", { let h = hits.clone(); move || h.get() }, move |v: i64| {
//!     if v < 0 { return Err("hits cannot be negative".into()) }
//!     h.set(v);
//!     Ok(())
//! });
//! reg.function("double", |x: i64| x * 2);
//!
//! let mut session = Scope::new();
//! assert_eq!(reg.eval(&mut session, "hits += 1; double(hits)").text, "84");
//! assert_eq!(hits.get(), 42);
//! assert!(reg.eval(&mut session, "hits = -1").error);
//! assert_eq!(hits.get(), 42);
//! assert_eq!(reg.eval(&mut session, "let name = \"x\"").text, "");
//! assert_eq!(reg.eval(&mut session, "name").text, "\"x\"");
//! ```

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::net::IpAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The script engine, re-exported so that programs name its types (`rhai::Map`, `rhai::Array`)
/// at the version the manhole uses.
pub use rhai;
use rhai::{Dynamic, Engine, EvalAltResult, RhaiNativeFunc, Scope};
use torsion::transport::Address;
use torsion::{ConnectionEnd, Factory, Protocol, Transport};
use torsion_cred::Portal;

use crate::keys::{AuthorizedKeysChecker, SshPublicKey};
use crate::recvline::{Edit, LineEditor, Mode};
use crate::ssh::{
    ExitStatus, HostKey, SessionFactory, SessionKind, SessionRequest, SshOptions, SshRealm,
    SshServer,
};
use crate::telnet::{TelnetTransport, TerminalEvents};

/// The default wall-clock limit of one command.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);

/// The hint added to syntax errors, since people reach for Python first.
pub const NOT_PYTHON: &str =
    "(the manhole speaks Rhai, not Python: `let x = 1;`, `fn f(a) { a + 1 }`, `help()`)";

type Getter = Box<dyn Fn() -> Dynamic>;
type Setter = Box<dyn Fn(Dynamic) -> Result<(), String>>;
type Repr = Box<dyn Fn(&Dynamic) -> Option<String>>;

struct ValueEntry {
    get: Getter,
    set: Option<Setter>,
}

/// What one command printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Everything it printed (its `print` calls, then its value's representation or the
    /// error), lines separated by `\n`, without a final newline.
    pub text: String,
    /// True when it failed: a syntax error, a run-time error, a setter's refusal, a limit.
    pub error: bool,
}

struct Shared {
    engine: RefCell<Engine>,
    values: RefCell<BTreeMap<String, ValueEntry>>,
    constants: RefCell<BTreeMap<String, Dynamic>>,
    names: Rc<RefCell<BTreeSet<String>>>,
    methods: RefCell<BTreeSet<String>>,
    reprs: RefCell<HashMap<TypeId, Repr>>,
    deadline: Rc<Cell<Option<Instant>>>,
    interrupted: Rc<Cell<bool>>,
    time_limit: Cell<Duration>,
    printed: Rc<RefCell<String>>,
}

/// What the console exposes, and the engine that runs its commands; cheap to clone (an
/// `Rc`), one per program, shared by every console session.
#[derive(Clone)]
pub struct Registry {
    shared: Rc<Shared>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry with the default limits and `help()`.
    pub fn new() -> Registry {
        let mut engine = Engine::new();
        // Limits: a command cannot exhaust memory or the stack. No cap on operations (0):
        // the time limit below, looked at every 128 operations, ends a runaway loop. A cap
        // would end it first or not depending on the build and the machine (an optimised
        // build runs 500 million of Rhai's operations in under two seconds), with another
        // message.
        engine
            .set_max_operations(0)
            .set_max_string_size(1 << 20)
            .set_max_array_size(100_000)
            .set_max_map_size(100_000)
            .set_max_call_levels(32)
            .set_max_expr_depths(64, 32);
        // `eval` would run text built at run time: nothing it could reach is not reachable
        // otherwise, but it makes the console harder to read; off.
        engine.disable_symbol("eval");
        let deadline: Rc<Cell<Option<Instant>>> = Rc::default();
        let interrupted: Rc<Cell<bool>> = Rc::default();
        {
            let deadline = deadline.clone();
            let interrupted = interrupted.clone();
            engine.on_progress(move |ops| {
                if ops % 128 != 0 {
                    return None;
                }
                match deadline.get() {
                    Some(d) if Instant::now() >= d => {
                        interrupted.set(true);
                        Some(Dynamic::from("time limit"))
                    }
                    _ => None,
                }
            });
        }
        let printed: Rc<RefCell<String>> = Rc::default();
        {
            let p = printed.clone();
            engine.on_print(move |s| push_line(&mut p.borrow_mut(), s));
            let p = printed.clone();
            engine.on_debug(move |s, _, _| push_line(&mut p.borrow_mut(), s));
        }
        let names: Rc<RefCell<BTreeSet<String>>> = Rc::default();
        {
            let n = names.clone();
            let p = printed.clone();
            engine.register_fn("help", move || {
                let list: Vec<String> = n.borrow().iter().cloned().collect();
                push_line(
                    &mut p.borrow_mut(),
                    &format!(
                        "Rhai console into this program. Exposed: {}",
                        list.join(", ")
                    ),
                );
            });
        }
        names.borrow_mut().insert("help".into());
        Registry {
            shared: Rc::new(Shared {
                engine: RefCell::new(engine),
                values: RefCell::default(),
                constants: RefCell::default(),
                names,
                methods: RefCell::default(),
                reprs: RefCell::default(),
                deadline,
                interrupted,
                time_limit: Cell::new(DEFAULT_TIME_LIMIT),
                printed,
            }),
        }
    }

    /// Sets the wall-clock limit of one command (default [`DEFAULT_TIME_LIMIT`]).
    pub fn set_time_limit(&self, limit: Duration) {
        self.shared.time_limit.set(limit);
    }

    /// Sets a limit on the operations one command may run, besides its time limit (default:
    /// none, `0`). A command past it fails with Rhai's "Too many operations".
    pub fn set_max_operations(&self, ops: u64) {
        self.shared.engine.borrow_mut().set_max_operations(ops);
    }

    /// Changes the engine directly, for what this API does not cover (registering a type's
    /// getters, say). Not while a command runs.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        f(&mut self.shared.engine.borrow_mut())
    }

    /// Exposes a read-only value: the console reads `name` and gets `get()` as it is when
    /// each command starts; assigning to it is an error.
    pub fn value<T: Clone + 'static>(&self, name: &str, get: impl Fn() -> T + 'static) {
        self.shared.values.borrow_mut().insert(
            name.to_string(),
            ValueEntry {
                get: Box::new(move || Dynamic::from(get())),
                set: None,
            },
        );
        self.shared.names.borrow_mut().insert(name.to_string());
    }

    /// Exposes a value the console may change: `name = v` calls `set(v)` once the command
    /// has run, if `v` is a `T` (otherwise, or if `set` refuses, the command fails with the
    /// reason and the value stays).
    pub fn value_rw<T: Clone + 'static>(
        &self,
        name: &str,
        get: impl Fn() -> T + 'static,
        set: impl Fn(T) -> Result<(), String> + 'static,
    ) {
        let owned = name.to_string();
        let setter: Setter = Box::new(move |v: Dynamic| {
            let got = v.type_name().to_string();
            match v.try_cast::<T>() {
                Some(t) => set(t),
                None => Err(format!(
                    "{owned} takes {}, not {got}",
                    short_type_name::<T>()
                )),
            }
        });
        self.shared.values.borrow_mut().insert(
            name.to_string(),
            ValueEntry {
                get: Box::new(move || Dynamic::from(get())),
                set: Some(setter),
            },
        );
        self.shared.names.borrow_mut().insert(name.to_string());
    }

    /// Exposes a function (a Rust closure), called as `name(args)`; any closure Rhai's
    /// `register_fn` takes (arguments of Rhai's types or registered ones).
    pub fn function<
        A: 'static,
        const N: usize,
        const X: bool,
        R: Clone + 'static,
        const F: bool,
    >(
        &self,
        name: &str,
        f: impl RhaiNativeFunc<A, N, X, R, F> + 'static,
    ) {
        self.shared.engine.borrow_mut().register_fn(name, f);
        self.shared.names.borrow_mut().insert(name.to_string());
    }

    /// Exposes an object under `name` (a constant): `T` is usually a handle (`Rc` inside),
    /// so that its [methods](Registry::method) act on the program's own state. The console
    /// shows it with its `Debug` form.
    pub fn object<T: Clone + Debug + 'static>(&self, name: &str, object: T) {
        let type_name = short_type_name::<T>();
        self.shared
            .engine
            .borrow_mut()
            .register_type_with_name::<T>(&type_name);
        self.shared.reprs.borrow_mut().insert(
            TypeId::of::<T>(),
            Box::new(|d: &Dynamic| d.read_lock::<T>().map(|t| format!("{:?}", &*t))),
        );
        self.shared
            .constants
            .borrow_mut()
            .insert(name.to_string(), Dynamic::from(object));
        self.shared.names.borrow_mut().insert(name.to_string());
    }

    /// Exposes a method, called as `object.name(args)`: `f` takes `&mut T` first.
    pub fn method<A: 'static, const N: usize, const X: bool, R: Clone + 'static, const F: bool>(
        &self,
        name: &str,
        f: impl RhaiNativeFunc<A, N, X, R, F> + 'static,
    ) {
        self.shared.engine.borrow_mut().register_fn(name, f);
        self.shared.methods.borrow_mut().insert(name.to_string());
    }

    /// The names a console can complete: exposed values, functions and objects, or (after
    /// `something.`) method names.
    pub fn completions(&self, before_cursor: &str) -> Vec<String> {
        let word_start = before_cursor
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'));
        match word_start {
            Some((_, '.')) => self.shared.methods.borrow().iter().cloned().collect(),
            _ => self.shared.names.borrow().iter().cloned().collect(),
        }
    }

    /// Runs one command in `session` (the console's own variables, kept between commands)
    /// and returns what it printed. Must not be called from inside a command.
    pub fn eval(&self, session: &mut Scope<'static>, line: &str) -> Outcome {
        let s = &self.shared;
        // The session's variables, then the exposed values as they are now (read-only ones
        // as constants), then the objects.
        let mut scope = session.clone();
        let mut before = BTreeMap::new();
        for (name, entry) in s.values.borrow().iter() {
            let v = (entry.get)();
            if entry.set.is_some() {
                before.insert(name.clone(), repr_key(&v));
                scope.push_dynamic(name.clone(), v);
            } else {
                scope.push_constant_dynamic(name.clone(), v);
            }
        }
        for (name, v) in s.constants.borrow().iter() {
            scope.push_constant_dynamic(name.clone(), v.clone());
        }
        s.printed.borrow_mut().clear();
        s.interrupted.set(false);
        s.deadline.set(Some(Instant::now() + s.time_limit.get()));
        let result = s
            .engine
            .borrow()
            .eval_with_scope::<Dynamic>(&mut scope, line);
        s.deadline.set(None);
        let mut text = std::mem::take(&mut *s.printed.borrow_mut());
        let mut error = false;
        // Changes to exposed values go to their setters; the rest is the session's.
        let mut last: BTreeMap<String, (bool, Dynamic)> = BTreeMap::new();
        for (name, constant, v) in scope.iter() {
            last.insert(name.to_string(), (constant, v));
        }
        let mut kept = Scope::new();
        let values = s.values.borrow();
        let constants = s.constants.borrow();
        let mut refusals = Vec::new();
        for (name, (constant, v)) in last {
            if let Some(entry) = values.get(&name) {
                if let (Some(set), Some(old)) = (&entry.set, before.get(&name)) {
                    if result.is_ok() && repr_key(&v) != *old {
                        if let Err(e) = set(v) {
                            refusals.push(e);
                        }
                    }
                }
                continue;
            }
            if constants.contains_key(&name) {
                continue;
            }
            if constant {
                kept.push_constant_dynamic(name, v);
            } else {
                kept.push_dynamic(name, v);
            }
        }
        *session = kept;
        match result {
            Ok(v) => {
                if !v.is_unit() {
                    push_line(&mut text, &self.repr(&v));
                }
            }
            Err(e) => {
                error = true;
                push_line(&mut text, &self.describe(&e));
            }
        }
        for r in refusals {
            error = true;
            push_line(&mut text, &r);
        }
        Outcome { text, error }
    }

    /// The console's representation of a value (Twisted's manhole prints `repr`).
    pub fn repr(&self, v: &Dynamic) -> String {
        if let Some(r) = self.shared.reprs.borrow().get(&v.type_id()) {
            if let Some(s) = r(v) {
                return s;
            }
        }
        format!("{v:?}")
    }

    fn describe(&self, e: &EvalAltResult) -> String {
        if self.shared.interrupted.get() {
            return format!(
                "interrupted: the command ran past its time limit of {:?}",
                self.shared.time_limit.get()
            );
        }
        match e {
            EvalAltResult::ErrorParsing(..) => format!("{e} {NOT_PYTHON}"),
            _ => e.to_string(),
        }
    }
}

fn repr_key(v: &Dynamic) -> (TypeId, String) {
    (v.type_id(), format!("{v:?}"))
}

fn push_line(buf: &mut String, s: &str) {
    if !buf.is_empty() {
        buf.push('\n');
    }
    buf.push_str(s);
}

fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    match short {
        "ImmutableString" | "String" => "a string".into(),
        "i64" => "an integer".into(),
        "f64" => "a float".into(),
        "bool" => "a boolean".into(),
        other => other.to_string(),
    }
}

/// One console session over a terminal: a line editor feeding commands to a [`Registry`]
/// (Twisted's `Manhole` over `ColoredManhole`'s line handling, without the colours).
///
/// It is an ordinary [`Protocol`] over a byte stream. Over telnet, [`ManholeFactory`]
/// wraps it in a [`TelnetTransport`]; it starts in plain-line mode and switches to VT100
/// line editing when the client lets this end echo. Over SSH, [`ManholeSessions`] makes
/// one in [`Mode::Vt100`] for a session with a pty (plain without) and keeps its
/// [terminal size](ManholeProtocol::terminal_size) in step with window changes.
pub struct ManholeProtocol {
    registry: Registry,
    editor: LineEditor,
    session: Scope<'static>,
    size: Option<(u16, u16)>,
}

/// The console's prompt.
pub const PROMPT: &str = ">>> ";

impl ManholeProtocol {
    /// A session on `registry`, its terminal driven in `mode`.
    pub fn new(registry: Registry, mode: Mode) -> ManholeProtocol {
        let mut editor = LineEditor::new(mode, PROMPT);
        let r = registry.clone();
        editor.set_completer(Box::new(move |before| r.completions(before)));
        ManholeProtocol {
            registry,
            editor,
            session: Scope::new(),
            size: None,
        }
    }

    /// The terminal's size, `(cols, rows)`, once known.
    pub fn terminal_size(&self) -> Option<(u16, u16)> {
        self.size
    }

    /// Records the terminal's size (telnet NAWS; an SSH pty request or window change).
    pub fn set_terminal_size(&mut self, cols: u16, rows: u16) {
        self.size = Some((cols, rows));
        self.editor.set_width(Some(cols));
    }

    /// Switches between VT100 line editing and plain lines, keeping the history.
    pub fn set_mode(&mut self, mode: Mode) {
        if self.editor.mode() != mode {
            let history: Vec<String> = self.editor.history().to_vec();
            let mut editor = LineEditor::new(mode, PROMPT);
            let r = self.registry.clone();
            editor.set_completer(Box::new(move |before| r.completions(before)));
            let mut sink = Vec::new();
            for h in history {
                editor.feed(h.as_bytes(), &mut sink);
                editor.feed(b"\r", &mut sink);
            }
            editor.set_width(self.size.map(|(cols, _)| cols));
            self.editor = editor;
        }
    }

    fn prompt(&self, t: &Transport) {
        let mut out = Vec::new();
        self.editor.prompt(&mut out);
        t.write(&out);
    }
}

fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    for line in text.split('\n') {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Protocol for ManholeProtocol {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"Torsion manhole (Rhai). help() lists what this program exposes.\r\n");
        self.prompt(t);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut out = Vec::new();
        let events = self.editor.feed(data, &mut out);
        t.write(&out);
        for e in events {
            if t.disconnecting() {
                return;
            }
            match e {
                Edit::Line(line) => {
                    if !line.trim().is_empty() {
                        let outcome = self.registry.eval(&mut self.session, &line);
                        if !outcome.text.is_empty() {
                            t.write(&crlf(&outcome.text));
                        }
                    }
                    self.prompt(t);
                }
                Edit::Cancel => self.prompt(t),
                Edit::Eof => {
                    t.write(b"\r\n");
                    t.lose_connection();
                }
            }
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {}
}

impl TerminalEvents for ManholeProtocol {
    fn terminal_size(&mut self, _t: &Transport, cols: u16, rows: u16) {
        self.set_terminal_size(cols, rows);
    }

    fn interrupt(&mut self, t: &Transport) {
        self.data_received(t, b"\x03");
    }

    fn server_echo(&mut self, _t: &Transport, enabled: bool) {
        self.set_mode(if enabled { Mode::Vt100 } else { Mode::Plain });
    }
}

/// Why a manhole was not started.
#[derive(Debug)]
pub enum ManholeError {
    /// Telnet has no authentication and no encryption: it is served only on a loopback
    /// address.
    NotLoopback(String),
    /// Listening failed.
    Listen(torsion::Failure),
}

impl std::fmt::Display for ManholeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManholeError::NotLoopback(host) => write!(
                f,
                "refusing a telnet manhole on {host:?}: telnet has no authentication or \
                 encryption, so it is served only on a loopback address (127.0.0.1 or ::1)"
            ),
            ManholeError::Listen(e) => write!(f, "the manhole could not listen: {e}"),
        }
    }
}

impl std::error::Error for ManholeError {}

/// True for an interface that only this machine reaches: a loopback address or
/// `localhost`.
pub fn is_loopback(interface: &str) -> bool {
    let bare = interface.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Serves the console over telnet (Twisted's `manhole_tap` with `telnetPort`): each
/// connection gets a [`ManholeProtocol`] under a [`TelnetTransport`]. Refuses connections
/// from addresses other than loopback ones, as a second guard behind
/// [`ManholeFactory::listen_telnet`]'s check of the interface.
pub struct ManholeFactory {
    registry: Registry,
}

impl ManholeFactory {
    /// A factory of consoles on `registry`.
    pub fn new(registry: Registry) -> ManholeFactory {
        ManholeFactory { registry }
    }

    /// Listens for telnet consoles on `interface` (a loopback address, or the call fails
    /// with [`ManholeError::NotLoopback`]) and `port` (0 for any).
    pub fn listen_telnet(
        reactor: &torsion::Reactor,
        port: u16,
        interface: &str,
        registry: Registry,
    ) -> Result<torsion::tcp::ListeningPort, ManholeError> {
        if !is_loopback(interface) {
            return Err(ManholeError::NotLoopback(interface.to_string()));
        }
        reactor
            .listen_tcp_on(port, ManholeFactory::new(registry), interface)
            .map_err(ManholeError::Listen)
    }
}

impl Factory for ManholeFactory {
    type Protocol = TelnetTransport<ManholeProtocol>;

    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        let local = match addr {
            Address::Tcp(sa) => sa.ip().is_loopback(),
            _ => false,
        };
        if !local {
            return None;
        }
        Some(TelnetTransport::new(
            ManholeProtocol::new(self.registry.clone(), Mode::Plain),
            true,
        ))
    }
}

/// Serves the console over SSH (Twisted's `manhole_ssh`): the session factory of an
/// [`SshServer`] whose channels get the manhole.
///
/// - A `shell` request with a pty gets [`ManholeProtocol`] in [`Mode::Vt100`]: line
///   editing, history and Tab completion of the registry's names, sized from the pty
///   request and kept in step with `window-change`. Without a pty (`ssh -T`, or input from
///   a pipe) it gets plain lines, one command per line.
/// - An `exec` request (`ssh host 'connections()'`) runs its command once, in a session of
///   its own, writes what it printed followed by a newline, and exits with status 0, or 1
///   when the command failed (the error is the output).
///
/// Every command runs on the reactor thread between events, as over telnet.
pub struct ManholeSessions {
    registry: Registry,
}

impl ManholeSessions {
    /// Sessions on `registry`.
    pub fn new(registry: Registry) -> ManholeSessions {
        ManholeSessions { registry }
    }
}

impl SessionFactory for ManholeSessions {
    fn build(&self, request: &SessionRequest) -> Option<Box<dyn Protocol>> {
        match &request.kind {
            SessionKind::Exec(command) => Some(Box::new(ManholeExec {
                registry: self.registry.clone(),
                command: String::from_utf8_lossy(command).into_owned(),
                exit: request.exit.clone(),
            })),
            SessionKind::Shell => {
                let mode = if request.pty().is_some() {
                    Mode::Vt100
                } else {
                    Mode::Plain
                };
                Some(Box::new(ManholeShell {
                    console: ManholeProtocol::new(self.registry.clone(), mode),
                    request: request.clone(),
                }))
            }
        }
    }
}

/// An SSH server serving the console on `registry` to the keys listed in the OpenSSH
/// `authorized_keys` file at `authorized_keys` (read at every login, so edits apply to the
/// next one; any user name is accepted with a listed key), with `host_keys`, through a cred
/// [`Portal`] with an [`AuthorizedKeysChecker`]. Listen with [`SshServer::listen`]: any
/// interface may be served, since the keys guard it.
///
/// ```no_run
/// use torsion::reactor;
/// use torsion_conch::manhole::{ssh_server, Registry};
/// use torsion_conch::ssh::{HostKey, SshOptions};
///
/// let registry = Registry::new();
/// registry.value("answer", || 42_i64);
/// let host_key = HostKey::load_or_generate("manhole_host_key").unwrap();
/// let server = ssh_server(registry, "authorized_keys", vec![host_key], SshOptions::default());
/// let port = server.listen("0.0.0.0:2222".parse().unwrap()).unwrap();
/// // ssh -p 2222 -i key localhost 'answer'  prints 42
/// reactor().run().unwrap();
/// ```
pub fn ssh_server(
    registry: Registry,
    authorized_keys: impl AsRef<Path>,
    host_keys: Vec<HostKey>,
    options: SshOptions,
) -> SshServer {
    let portal = Portal::new(SshRealm);
    portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file(authorized_keys, &[]));
    SshServer::with_options(portal, host_keys, ManholeSessions::new(registry), options)
}

/// An interactive console on an SSH `shell` channel: a [`ManholeProtocol`] that follows
/// the channel's pty size.
struct ManholeShell {
    console: ManholeProtocol,
    request: SessionRequest,
}

impl ManholeShell {
    /// The pty's size as the last `pty-req` or `window-change` left it (the SSH server
    /// keeps it in the request).
    fn follow_size(&mut self) {
        if let Some(pty) = self.request.pty() {
            let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
            let size = (clamp(pty.cols), clamp(pty.rows));
            if self.console.terminal_size() != Some(size) {
                self.console.set_terminal_size(size.0, size.1);
            }
        }
    }
}

impl Protocol for ManholeShell {
    fn connection_made(&mut self, t: &Transport) {
        self.follow_size();
        self.console.connection_made(t);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.follow_size();
        self.console.data_received(t, data);
    }

    fn read_connection_lost(&mut self, t: &Transport) {
        // The client's input ended (`ssh -T host < commands`): the session is over.
        t.lose_connection();
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.console.connection_lost(reason);
    }
}

/// One command on an SSH `exec` channel.
struct ManholeExec {
    registry: Registry,
    command: String,
    exit: ExitStatus,
}

impl Protocol for ManholeExec {
    fn connection_made(&mut self, t: &Transport) {
        let outcome = self.registry.eval(&mut Scope::new(), &self.command);
        if !outcome.text.is_empty() {
            t.write(outcome.text.as_bytes());
            t.write(b"\n");
        }
        self.exit.set(u32::from(outcome.error));
        t.lose_connection();
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_syntax_gets_a_clear_error() {
        let reg = Registry::new();
        let mut s = Scope::new();
        for py in [
            "import os",
            "def f(x): return x",
            "print 'hi'",
            "lambda x: x",
        ] {
            let o = reg.eval(&mut s, py);
            assert!(o.error, "{py}: {o:?}");
            assert!(o.text.contains("Rhai, not Python"), "{py}: {}", o.text);
        }
    }

    #[test]
    fn runaway_loop_is_interrupted_by_the_time_limit() {
        let reg = Registry::new();
        reg.set_time_limit(Duration::from_millis(100));
        let mut s = Scope::new();
        let start = Instant::now();
        let o = reg.eval(&mut s, "loop {}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(o.error);
        assert!(o.text.starts_with("interrupted"), "{}", o.text);
        // The next command runs normally.
        assert_eq!(reg.eval(&mut s, "1 + 1").text, "2");
    }

    #[test]
    fn limits_hold() {
        let reg = Registry::new();
        let mut s = Scope::new();
        let o = reg.eval(&mut s, "let s = \"x\"; loop { s += s; }");
        assert!(o.error && o.text.contains("too large"), "{}", o.text);
        let o = reg.eval(&mut s, "fn f(n) { f(n + 1) } f(0)");
        assert!(o.error && o.text.contains("Stack overflow"), "{}", o.text);
        let o = reg.eval(&mut s, "eval(\"1\")");
        assert!(o.error, "{}", o.text);
    }

    #[derive(Clone, Debug)]
    struct Table(Rc<RefCell<Vec<(String, i64)>>>);

    #[test]
    fn values_functions_objects_and_repr() {
        let reg = Registry::new();
        let level = Rc::new(RefCell::new(String::from("info")));
        let l = level.clone();
        let l2 = level.clone();
        reg.value_rw(
            "log_level",
            move || l.borrow().clone(),
            move |v: String| match v.as_str() {
                "debug" | "info" | "warn" => {
                    *l2.borrow_mut() = v;
                    Ok(())
                }
                _ => Err(format!("log_level: no level {v:?}")),
            },
        );
        reg.value("version", || 3_i64);
        let table = Table(Rc::new(RefCell::new(vec![("ann".into(), 10)])));
        reg.object("scores", table.clone());
        reg.method("top", |t: &mut Table| t.0.borrow()[0].1);
        reg.method("add", |t: &mut Table, name: &str, n: i64| {
            t.0.borrow_mut().push((name.to_string(), n))
        });
        let mut s = Scope::new();
        assert_eq!(reg.eval(&mut s, "log_level").text, "\"info\"");
        assert_eq!(reg.eval(&mut s, "log_level = \"debug\"").text, "");
        assert_eq!(*level.borrow(), "debug");
        let o = reg.eval(&mut s, "log_level = \"loud\"");
        assert!(o.error && o.text.contains("no level"), "{o:?}");
        let o = reg.eval(&mut s, "log_level = 5");
        assert!(o.error && o.text.contains("takes a string"), "{o:?}");
        assert_eq!(*level.borrow(), "debug");
        let o = reg.eval(&mut s, "version = 4");
        assert!(o.error, "{o:?}");
        assert_eq!(
            reg.eval(&mut s, "scores.add(\"bob\", 7); scores.top()")
                .text,
            "10"
        );
        assert_eq!(table.0.borrow().len(), 2);
        assert!(reg.eval(&mut s, "scores").text.starts_with("Table("));
        assert_eq!(reg.eval(&mut s, "[1, \"a\"]").text, "[1, \"a\"]");
        assert_eq!(reg.eval(&mut s, "print(\"hi\"); ()").text, "hi");
        let help = reg.eval(&mut s, "help()").text;
        assert!(
            help.contains("log_level") && help.contains("scores"),
            "{help}"
        );
        assert!(reg.completions("x = sc").contains(&"scores".to_string()));
        assert!(reg.completions("scores.t").contains(&"top".to_string()));
    }

    #[test]
    fn the_terminal_width_lays_out_completions() {
        let reg = Registry::new();
        for name in ["stats_a", "stats_b", "stats_c"] {
            reg.value(name, || 0_i64);
        }
        let st = torsion::testing::StringTransport::new();
        let t = st.transport();
        let mut console = ManholeProtocol::new(reg, Mode::Vt100);
        console.connection_made(&t);
        // 7 characters and 2 spaces a column: two fit in 20 columns.
        console.set_terminal_size(20, 24);
        assert_eq!(console.terminal_size(), Some((20, 24)));
        st.take();
        console.data_received(&t, b"st\t\t");
        let shown = String::from_utf8(st.take()).unwrap();
        assert!(
            shown.contains("\r\nstats_a  stats_c\r\nstats_b\r\n"),
            "{shown:?}"
        );
        // Wider, after a window change: one row.
        console.set_terminal_size(80, 24);
        console.data_received(&t, b"\t");
        let shown = String::from_utf8(st.take()).unwrap();
        assert!(
            shown.contains("\r\nstats_a  stats_b  stats_c\r\n"),
            "{shown:?}"
        );
    }

    #[test]
    fn loopback_only() {
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("[::1]"));
        assert!(is_loopback("localhost") && is_loopback("127.1.2.3"));
        assert!(!is_loopback("0.0.0.0") && !is_loopback("::") && !is_loopback("10.0.0.1"));
        let r = torsion::Reactor::new();
        let e = ManholeFactory::listen_telnet(&r, 0, "0.0.0.0", Registry::new()).unwrap_err();
        assert!(e.to_string().contains("only on a loopback address"), "{e}");
    }
}
