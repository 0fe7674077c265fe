//! [`Site`]: serves a resource tree over HTTP (Twisted's `twisted.web.server.Site`).
//!
//! A `Site` is a [`Factory`]: listen with it like with any protocol.
//!
//! ```no_run
//! use torsion::reactor;
//! use torsion_web::resource::{Render, Resource};
//! use torsion_web::{request::Request, site::Site};
//!
//! struct HelloPage;
//! impl Resource for HelloPage {
//!     fn is_leaf(&self) -> bool { true }
//!     fn render_get(&self, _: &Request) -> Render {
//!         "<html><body>Hello Twisted</body></html>".into()
//!     }
//! }
//!
//! reactor().listen_tcp(8880, Site::new(HelloPage)).unwrap();
//! reactor().run().unwrap();
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use torsion::reactor::ReactorTime;
use torsion::transport::Address;
use torsion::Factory;

use crate::channel::HttpChannel;
use crate::proto::Limits;
use crate::resource::Resource;
use crate::session::{Session, SessionSite};

/// A site's limits and time-outs.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Request head limits (URI 414, head size and header count 431).
    pub limits: Limits,
    /// The largest request body accepted, in bytes (413 past it). Default 10 MiB.
    pub max_body: u64,
    /// Seconds a client has to send a request head once it started (408 after). Default 30.
    pub header_timeout: Option<f64>,
    /// Seconds an idle keep-alive connection stays open. Default 60.
    pub idle_timeout: Option<f64>,
    /// Pipelined requests in flight before reading pauses. Default 16.
    pub max_pipeline: usize,
    /// The `Server` header. Default `Torsion`.
    pub server_name: String,
    /// Seconds a session lives without a request (Twisted's `sessionTimeout`). Default 900.
    pub session_timeout: f64,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            limits: Limits::default(),
            max_body: 10 * 1024 * 1024,
            header_timeout: Some(30.0),
            idle_timeout: Some(60.0),
            max_pipeline: 16,
            server_name: "Torsion".to_owned(),
            session_timeout: 900.0,
        }
    }
}

type AccessLog = Box<dyn Fn(&str)>;

pub(crate) struct SiteInner {
    pub(crate) root: Rc<dyn Resource>,
    pub(crate) sessions: RefCell<HashMap<String, Session>>,
    pub(crate) config: SiteConfig,
    pub(crate) access_log: RefCell<Option<AccessLog>>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
}

impl SiteInner {
    pub(crate) fn clock(&self) -> Rc<dyn ReactorTime> {
        self.clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(torsion::reactor()))
            .clone()
    }
}

impl SessionSite for SiteInner {
    fn clock(&self) -> Rc<dyn ReactorTime> {
        SiteInner::clock(self)
    }

    fn session_timeout(&self) -> f64 {
        self.config.session_timeout
    }

    fn sessions(&self) -> &RefCell<HashMap<String, Session>> {
        &self.sessions
    }
}

/// Serves a resource tree (Twisted's `Site`). Cheap to clone.
#[derive(Clone)]
pub struct Site {
    inner: Rc<SiteInner>,
}

impl Site {
    /// A site serving `root`, with the default limits.
    pub fn new(root: impl Resource) -> Site {
        Site::with_config(Rc::new(root), SiteConfig::default())
    }

    /// A site serving a shared root resource, with given limits.
    pub fn with_config(root: Rc<dyn Resource>, config: SiteConfig) -> Site {
        Site {
            inner: Rc::new(SiteInner {
                root,
                sessions: RefCell::default(),
                config,
                access_log: RefCell::new(None),
                clock: RefCell::new(None),
            }),
        }
    }

    /// Sends one combined-log-format line per finished request to `log`.
    pub fn set_access_log(&self, log: impl Fn(&str) + 'static) {
        *self.inner.access_log.borrow_mut() = Some(Box::new(log));
    }

    /// Uses `clock` for time-outs (the test `Clock`) instead of the reactor.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.inner.clock.borrow_mut() = Some(Rc::new(clock));
    }

    /// The root resource.
    pub fn root(&self) -> Rc<dyn Resource> {
        self.inner.root.clone()
    }

    /// The limits and time-outs.
    pub fn config(&self) -> &SiteConfig {
        &self.inner.config
    }

    /// The live session with id `uid` (Twisted's `getSession`).
    pub fn get_session(&self, uid: &str) -> Option<Session> {
        self.inner.sessions.borrow().get(uid).cloned()
    }

    /// How many sessions are live.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.borrow().len()
    }

    /// Expires every live session (for shutdown, and tests).
    pub fn expire_sessions(&self) {
        let all: Vec<Session> = self.inner.sessions.borrow().values().cloned().collect();
        for s in all {
            s.expire();
        }
    }
}

impl Factory for Site {
    type Protocol = HttpChannel;

    fn build_protocol(&self, _addr: &Address) -> Option<HttpChannel> {
        Some(HttpChannel::new(self.inner.clone()))
    }
}
