//! [`HttpConnectionPool`]: keep-alive connections kept for the next request (Twisted's
//! `HTTPConnectionPool`).
//!
//! A persistent pool keeps connections whose response was read to the end and which both
//! sides allow to go on, at most [`max_persistent_per_host`](HttpConnectionPool::max_persistent_per_host)
//! per host and port (2 by default), each for at most
//! [`cached_connection_timeout`](HttpConnectionPool::cached_connection_timeout) seconds (240).
//! A connection the server closes while idle leaves the pool at once. When a reused
//! connection turns out to be dead (the server closed it as the request went out), an
//! idempotent request is retried once on a new connection
//! ([`retry_automatically`](HttpConnectionPool::retry_automatically)).
//!
//! ```
//! use torsion_web::client::{Agent, HttpConnectionPool};
//!
//! let pool = HttpConnectionPool::new(true);
//! pool.set_max_persistent_per_host(4);
//! pool.set_cached_connection_timeout(30.0);
//! let agent = Agent::new().with_pool(pool.clone());
//! assert_eq!(agent.pool().max_persistent_per_host(), 4);
//! assert_eq!(pool.idle_connections(), 0);
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};

use torsion::defer::{gather_results, succeed, Deferred};
use torsion::reactor::DelayedCall;
use torsion::tcp::Connector;
use torsion::{reactor, Reactor};

use super::connection::{ClientConn, Pool, PoolKey};
use super::protocol::HttpClientFactory;

struct IdleEntry {
    conn: ClientConn,
    timer: DelayedCall,
}

pub(crate) struct PoolInner {
    reactor: Reactor,
    persistent: bool,
    max_persistent_per_host: Cell<usize>,
    cached_connection_timeout: Cell<f64>,
    retry_automatically: Cell<bool>,
    idle: RefCell<HashMap<PoolKey, Vec<IdleEntry>>>,
    connections_made: Cell<u64>,
}

/// Connections kept open between requests (Twisted's `HTTPConnectionPool`). Cheap to clone:
/// clones share the same connections, so several agents can share one pool.
///
/// A non-persistent pool (`new(false)`) asks servers to close each connection after its
/// response (`Connection: close`), as Twisted's default agent does.
#[derive(Clone)]
pub struct HttpConnectionPool {
    inner: Rc<PoolInner>,
}

impl HttpConnectionPool {
    /// A pool on the current thread's reactor; `persistent` keeps connections for reuse.
    pub fn new(persistent: bool) -> HttpConnectionPool {
        HttpConnectionPool::with_reactor(reactor(), persistent)
    }

    /// A pool on a given reactor.
    pub fn with_reactor(reactor: Reactor, persistent: bool) -> HttpConnectionPool {
        HttpConnectionPool {
            inner: Rc::new(PoolInner {
                reactor,
                persistent,
                max_persistent_per_host: Cell::new(2),
                cached_connection_timeout: Cell::new(240.0),
                retry_automatically: Cell::new(true),
                idle: RefCell::default(),
                connections_made: Cell::new(0),
            }),
        }
    }

    /// Whether connections are kept for reuse.
    pub fn persistent(&self) -> bool {
        self.inner.persistent
    }

    /// The most idle connections kept per scheme, host and port (Twisted's
    /// `maxPersistentPerHost`, default 2).
    pub fn max_persistent_per_host(&self) -> usize {
        self.inner.max_persistent_per_host.get()
    }

    /// Sets [`max_persistent_per_host`](Self::max_persistent_per_host); when a host has that
    /// many idle connections, the oldest is closed to keep the newest.
    pub fn set_max_persistent_per_host(&self, n: usize) {
        self.inner.max_persistent_per_host.set(n);
    }

    /// Seconds an idle connection is kept before it is closed (Twisted's
    /// `cachedConnectionTimeout`, default 240).
    pub fn cached_connection_timeout(&self) -> f64 {
        self.inner.cached_connection_timeout.get()
    }

    /// Sets [`cached_connection_timeout`](Self::cached_connection_timeout), for connections
    /// that become idle from now on.
    pub fn set_cached_connection_timeout(&self, seconds: f64) {
        self.inner.cached_connection_timeout.set(seconds);
    }

    /// Whether an idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) that fails on a
    /// reused connection before any response byte arrives is retried once on a new
    /// connection (Twisted's `retryAutomatically`, default true).
    pub fn retry_automatically(&self) -> bool {
        self.inner.retry_automatically.get()
    }

    /// Sets [`retry_automatically`](Self::retry_automatically).
    pub fn set_retry_automatically(&self, retry: bool) {
        self.inner.retry_automatically.set(retry);
    }

    /// How many connections wait in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.inner.idle.borrow().values().map(Vec::len).sum()
    }

    /// How many connections this pool has opened so far (attempts that succeeded).
    pub fn connections_made(&self) -> u64 {
        self.inner.connections_made.get()
    }

    /// Closes every idle connection (Twisted's `closeCachedConnections`); the Deferred fires
    /// once they are all closed. Connections in use are not touched.
    pub fn close_cached_connections(&self) -> Deferred<()> {
        let entries: Vec<IdleEntry> = self
            .inner
            .idle
            .borrow_mut()
            .drain()
            .flat_map(|(_, list)| list)
            .collect();
        if entries.is_empty() {
            return succeed(());
        }
        let closed = entries
            .into_iter()
            .map(|e| {
                if e.timer.active() {
                    let _ = e.timer.cancel();
                }
                let d = e.conn.when_closed();
                e.conn.lose();
                d
            })
            .collect();
        gather_results(closed).add_callback(|_| ())
    }

    pub(crate) fn reactor(&self) -> &Reactor {
        &self.inner.reactor
    }

    /// An idle connection for `key` (`(conn, true)`), or a new one opened with `connect`
    /// (`(conn, false)`).
    pub(crate) fn get_connection(
        &self,
        key: &PoolKey,
        connect: impl FnOnce(HttpClientFactory) -> Connector,
    ) -> Deferred<(ClientConn, bool)> {
        loop {
            let entry = self.inner.idle.borrow_mut().get_mut(key).and_then(Vec::pop);
            let Some(entry) = entry else { break };
            if entry.timer.active() {
                let _ = entry.timer.cancel();
            }
            if entry.conn.is_idle() {
                return succeed((entry.conn, true));
            }
            entry.conn.lose();
        }
        self.new_connection(key, connect)
    }

    /// Opens a new connection for `key` with `connect`. Cancelling the Deferred stops the
    /// attempt.
    pub(crate) fn new_connection(
        &self,
        key: &PoolKey,
        connect: impl FnOnce(HttpClientFactory) -> Connector,
    ) -> Deferred<(ClientConn, bool)> {
        let pool: Weak<PoolInner> = Rc::downgrade(&self.inner);
        let conn = ClientConn::new(key.clone(), pool);
        let attempt: Rc<RefCell<Option<Connector>>> = Rc::default();
        let to_stop = attempt.clone();
        let connected = Deferred::with_canceller(move |_| {
            if let Some(c) = to_stop.borrow_mut().take() {
                c.stop_connecting();
            }
        });
        let connector = connect(HttpClientFactory::new(conn, connected.trigger()));
        if !connected.called() {
            *attempt.borrow_mut() = Some(connector);
        }
        let pool = Rc::downgrade(&self.inner);
        connected.add_callback(move |conn| {
            if let Some(p) = pool.upgrade() {
                p.connections_made.set(p.connections_made.get() + 1);
            }
            (conn, false)
        })
    }
}

impl Pool for PoolInner {
    /// Takes back a connection whose response is complete: keeps it if the pool is
    /// persistent, else closes it.
    fn put_connection(self: Rc<Self>, conn: ClientConn) {
        let max = self.max_persistent_per_host.get();
        if !self.persistent || max == 0 || !conn.is_idle() {
            conn.lose();
            return;
        }
        let weak_pool: Weak<PoolInner> = Rc::downgrade(&self);
        let expiring = conn.clone();
        let timer =
            self.reactor
                .call_later(self.cached_connection_timeout.get().max(0.0), move || {
                    if let Some(p) = weak_pool.upgrade() {
                        p.remove(&expiring);
                    }
                    expiring.lose();
                });
        let evicted = {
            let mut idle = self.idle.borrow_mut();
            let list = idle.entry(conn.key().clone()).or_default();
            let evicted = if list.len() >= max {
                Some(list.remove(0))
            } else {
                None
            };
            list.push(IdleEntry { conn, timer });
            evicted
        };
        if let Some(old) = evicted {
            if old.timer.active() {
                let _ = old.timer.cancel();
            }
            old.conn.lose();
        }
    }

    /// Forgets an idle connection (it closed, or its time is up).
    fn remove(&self, conn: &ClientConn) {
        let removed = {
            let mut idle = self.idle.borrow_mut();
            let Some(list) = idle.get_mut(conn.key()) else {
                return;
            };
            let removed = list
                .iter()
                .position(|e| e.conn.same(conn))
                .map(|i| list.remove(i));
            if list.is_empty() {
                idle.remove(conn.key());
            }
            removed
        };
        if let Some(e) = removed {
            if e.timer.active() {
                let _ = e.timer.cancel();
            }
        }
    }
}

impl fmt::Debug for HttpConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnectionPool")
            .field("persistent", &self.persistent())
            .field("idle", &self.idle_connections())
            .field("max_persistent_per_host", &self.max_persistent_per_host())
            .field(
                "cached_connection_timeout",
                &self.cached_connection_timeout(),
            )
            .finish()
    }
}
