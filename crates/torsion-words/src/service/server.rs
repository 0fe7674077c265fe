//! [`IrcServerFactory`]: the [`ChatCore`] behind real connections.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use torsion::defer::Deferred;
use torsion::reactor::{DelayedCall, ReactorTime};
use torsion::transport::Address;
use torsion::{ConnectionEnd, Factory, Protocol, Transport};
use torsion_cred::{AvatarId, Login, Logout, Portal, Realm, UsernamePassword};

use super::core::{ChatCore, ClientId, Output, ServerConfig};

/// The most bytes queued for one client before it is dropped (its `SendQ`): a client that
/// stops reading while a channel floods costs at most this much memory.
pub const DEFAULT_MAX_SENDQ: usize = 1 << 20;

/// What a user who logs in with `PASS` is: its name (the avatar of [`ChatRealm`]).
#[derive(Debug, Clone)]
pub struct ChatUser {
    /// The user name the checker proved (the nickname).
    pub name: String,
}

/// The realm of the chat service: every user a checker lets in is a [`ChatUser`] (Twisted's
/// `InMemoryWordsRealm`, which makes a user on first login).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatRealm;

impl Realm<ChatUser> for ChatRealm {
    fn request_avatar(&self, id: &AvatarId, _mind: ()) -> Deferred<(ChatUser, Logout)> {
        let name = id.user().unwrap_or_default().to_owned();
        torsion::defer::succeed((ChatUser { name }, Logout::none()))
    }
}

type Checker = Rc<dyn Fn(UsernamePassword) -> Deferred<Login<ChatUser>>>;

struct State {
    core: ChatCore,
    transports: HashMap<ClientId, Transport>,
    next_id: ClientId,
    max_sendq: usize,
    login: Option<Checker>,
    clock: Rc<dyn ReactorTime>,
    ticker: Option<DelayedCall>,
}

/// Makes [`IrcServer`] connections sharing one [`ChatCore`] (Twisted's `IRCFactory` with
/// its words service). Clone it to listen on several endpoints with the same service.
///
/// ```
/// use torsion::testing::StringTransport;
/// use torsion::transport::Address;
/// use torsion::{Factory, Protocol};
/// use torsion_words::service::{IrcServerFactory, ServerConfig};
///
/// let factory = IrcServerFactory::new(ServerConfig::default());
/// let st = StringTransport::new();
/// let mut p = factory.build_protocol(&Address::Named("test".into())).unwrap();
/// p.connection_made(&st.transport());
/// p.data_received(&st.transport(), b"NICK alice\r\nUSER a 0 * :Alice\r\n");
/// let out = String::from_utf8(st.take()).unwrap();
/// assert!(out.starts_with(":torsion.irc 001 alice :Welcome"));
/// assert!(out.contains(" 005 alice "));
/// ```
#[derive(Clone)]
pub struct IrcServerFactory {
    state: Rc<RefCell<State>>,
}

impl IrcServerFactory {
    /// A server for `config`, on the reactor's clock, open to anyone unless `config`
    /// requires a password (then give it [`portal`](Self::portal)).
    pub fn new(config: ServerConfig) -> IrcServerFactory {
        IrcServerFactory {
            state: Rc::new(RefCell::new(State {
                core: ChatCore::new(config),
                transports: HashMap::new(),
                next_id: 1,
                max_sendq: DEFAULT_MAX_SENDQ,
                login: None,
                clock: Rc::new(torsion::reactor()),
                ticker: None,
            })),
        }
    }

    /// Checks `PASS` (the nickname as user name) through `portal`, and makes registration
    /// need it.
    pub fn portal<R: Realm<ChatUser> + 'static>(self, portal: Portal<R>) -> IrcServerFactory {
        {
            let mut s = self.state.borrow_mut();
            s.login = Some(Rc::new(move |c| portal.login(c, ())));
            let mut config = s.core.config().clone();
            config.require_password = true;
            let old = std::mem::replace(&mut s.core, ChatCore::new(config));
            drop(old);
        }
        self
    }

    /// Drops a client once this many bytes wait to be sent to it (default
    /// [`DEFAULT_MAX_SENDQ`]).
    pub fn max_sendq(self, bytes: usize) -> IrcServerFactory {
        self.state.borrow_mut().max_sendq = bytes;
        self
    }

    /// Times flood control, pings and timeouts with `clock` instead of the reactor (tests).
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        self.state.borrow_mut().clock = Rc::new(clock);
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.state.borrow().core.client_count()
    }

    /// How many channels exist.
    pub fn channel_count(&self) -> usize {
        self.state.borrow().core.channel_count()
    }

    /// The nicknames in `channel`, if it exists.
    pub fn members(&self, channel: &str) -> Option<Vec<String>> {
        self.state.borrow().core.members(channel)
    }
}

/// Carries out what the core asked for, without holding the state while writing or
/// logging in (a checker may answer at once and come back in).
fn pump(state: &Rc<RefCell<State>>) {
    loop {
        let (out, max_sendq, login) = {
            let mut s = state.borrow_mut();
            let out = s.core.take_output();
            if out.is_empty() {
                return;
            }
            (out, s.max_sendq, s.login.clone())
        };
        let mut over = Vec::new();
        for o in out {
            match o {
                Output::Line(id, line) => {
                    let t = state.borrow().transports.get(&id).cloned();
                    if let Some(t) = t {
                        if over.contains(&id) {
                            continue;
                        }
                        t.write_sequence(&[line.as_bytes(), b"\r\n"]);
                        if t.buffered_size() > max_sendq {
                            over.push(id);
                        }
                    }
                }
                Output::Close(id, reason) => {
                    let t = state.borrow_mut().transports.remove(&id);
                    if let Some(t) = t {
                        tracing::info!(
                            target: "torsion_words::service",
                            "IRC client {} closed: {reason}",
                            t.get_peer()
                        );
                        t.lose_connection();
                    }
                }
                Output::Login {
                    client,
                    nick,
                    password,
                } => {
                    let Some(login) = &login else {
                        state.borrow_mut().core.login_result(client, true, 0.0);
                        continue;
                    };
                    let weak = Rc::downgrade(state);
                    login(UsernamePassword::new(nick, password)).add_both(move |r| {
                        if let Some(state) = weak.upgrade() {
                            let now = state.borrow().clock.seconds();
                            state.borrow_mut().core.login_result(client, r.is_ok(), now);
                            pump(&state);
                        }
                        Ok::<(), torsion::Failure>(())
                    });
                }
            }
        }
        for id in over {
            let t = state.borrow_mut().transports.remove(&id);
            if let Some(t) = t {
                tracing::warn!(
                    target: "torsion_words::service",
                    "IRC client {} does not read: over {max_sendq} bytes wait for it; dropping it",
                    t.get_peer()
                );
                t.abort_connection();
            }
            state.borrow_mut().core.drop_client(id, "SendQ exceeded");
        }
    }
}

/// Schedules the next second's [`ChatCore::tick`] while clients are connected.
fn schedule_tick(state: &Rc<RefCell<State>>) {
    let mut s = state.borrow_mut();
    if s.ticker.is_some() || s.core.client_count() == 0 {
        return;
    }
    let weak = Rc::downgrade(state);
    let call = s.clock.call_later_boxed(
        1.0,
        Box::new(move || {
            let Some(state) = weak.upgrade() else {
                return;
            };
            {
                let mut s = state.borrow_mut();
                s.ticker = None;
                let now = s.clock.seconds();
                s.core.tick(now);
            }
            pump(&state);
            schedule_tick(&state);
        }),
    );
    s.ticker = Some(call);
}

impl Factory for IrcServerFactory {
    type Protocol = IrcServer;

    fn build_protocol(&self, _addr: &Address) -> Option<IrcServer> {
        Some(IrcServer {
            state: self.state.clone(),
            id: None,
        })
    }

    fn stop_factory(&self) {
        if let Some(t) = self.state.borrow_mut().ticker.take() {
            let _ = t.cancel();
        }
    }
}

/// One client's connection to an [`IrcServerFactory`]'s service (Twisted's `IRCUser`).
pub struct IrcServer {
    state: Rc<RefCell<State>>,
    id: Option<ClientId>,
}

impl Protocol for IrcServer {
    fn connection_made(&mut self, transport: &Transport) {
        let host = match transport.get_peer() {
            Address::Tcp(a) => a.ip().to_string(),
            _ => "localhost".to_owned(),
        };
        {
            let mut s = self.state.borrow_mut();
            let id = s.next_id;
            s.next_id += 1;
            let now = s.clock.seconds();
            s.transports.insert(id, transport.clone());
            s.core.connect(id, &host, now);
            self.id = Some(id);
        }
        pump(&self.state);
        schedule_tick(&self.state);
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        let Some(id) = self.id else {
            return;
        };
        {
            let mut s = self.state.borrow_mut();
            let now = s.clock.seconds();
            s.core.data_received(id, data, now);
        }
        pump(&self.state);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        let Some(id) = self.id.take() else {
            return;
        };
        {
            let mut s = self.state.borrow_mut();
            s.transports.remove(&id);
            s.core.disconnected(id, "Connection closed");
        }
        pump(&self.state);
        // No clients, no tick: an idle server leaves the reactor without timers.
        let mut s = self.state.borrow_mut();
        if s.core.client_count() == 0 {
            if let Some(t) = s.ticker.take() {
                let _ = t.cancel();
            }
        }
    }
}
