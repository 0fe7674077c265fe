//! Shared helpers: scratch folders, a core with a test group, status codes of responses, a
//! protocol on a `StringTransport`, and a server with a peer program run while the reactor
//! runs.

use torsion::testing::StringTransport;
use torsion::{Factory, Protocol, Reactor, Transport};
use torsion_news::{Config, Nntp, NntpFactory, ServerCore, Store};

pub(crate) use torsion::testing::TempDir;

/// An article for `local.test` (and `groups`), LF lines turned to CRLF.
pub(crate) fn article(groups: &str, subject: &str, body: &str) -> Vec<u8> {
    format!("From: Alice <alice@example.org>\nNewsgroups: {groups}\nSubject: {subject}\n\n{body}")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// A store in memory with `local.test` (made at time 100) and `local.empty` (at 200).
pub(crate) fn test_store() -> Store {
    let store = Store::in_memory();
    store.create_group("local.test", "Testing", 100).unwrap();
    store
        .create_group("local.empty", "Nothing here", 200)
        .unwrap();
    store
}

/// A core on `store` at time 1_000_000, with the greeting taken.
pub(crate) fn core_with(config: Config, store: Store) -> ServerCore {
    let mut core = ServerCore::new(config, store);
    core.set_now(1_000_000);
    core.take_output();
    core
}

/// Sends `data` to the core, answering every login with success for "alice"/"secret";
/// returns the output.
pub(crate) fn talk(core: &mut ServerCore, data: &[u8]) -> String {
    core.receive(data);
    let mut out = Vec::new();
    loop {
        match core.poll() {
            Some(torsion_news::Event::Auth { user, password }) => {
                if user == "alice" && password == "secret" {
                    core.auth_succeeded(&user);
                } else {
                    core.auth_failed();
                }
            }
            Some(_) => {}
            None => {
                let full = core.output_full();
                out.extend_from_slice(&core.take_output());
                if !full {
                    break;
                }
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The status codes of responses (lines starting with three digits and a space), skipping
/// block lines only as well as a heuristic can: callers use it on single-line answers.
pub(crate) fn codes(out: &str) -> Vec<u16> {
    out.lines()
        .filter(|l| {
            l.len() >= 4 && l.as_bytes()[3] == b' ' && l[..3].bytes().all(|b| b.is_ascii_digit())
        })
        .map(|l| l[..3].parse().unwrap())
        .collect()
}

/// An NNTP protocol on a `StringTransport`.
pub(crate) struct Wire {
    pub(crate) st: StringTransport,
    pub(crate) t: Transport,
    pub(crate) nntp: Nntp,
    pub(crate) greeting: String,
}

impl Wire {
    pub(crate) fn new(factory: &NntpFactory) -> Wire {
        let st = StringTransport::new();
        let t = st.transport();
        let mut nntp = factory.build_protocol(&t.get_peer()).unwrap();
        nntp.connection_made(&t);
        let greeting = String::from_utf8(st.take()).unwrap();
        Wire {
            st,
            t,
            nntp,
            greeting,
        }
    }

    /// Sends `data`; returns what was written since the last call.
    pub(crate) fn send(&mut self, data: &[u8]) -> String {
        self.nntp.data_received(&self.t, data);
        String::from_utf8(self.st.take()).unwrap()
    }
}

/// Listens on 127.0.0.1 with `factory`, runs `peer(port)` in a thread while the reactor
/// runs, and returns what it returned.
pub(crate) fn with_server<T: Send + 'static>(
    factory: NntpFactory,
    peer: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let r = Reactor::new();
    let port = r.listen_tcp_on(0, factory, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    let out = torsion::testing::run_with_peer(&r, 120.0, move || peer(number));
    drop(port);
    out
}
