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

use std::rc::Rc;

use torsion::reactor::ReactorTime;
use torsion::transport::Address;
use torsion::Factory;

use crate::channel::HttpChannel;
use crate::resource::Resource;
use crate::session::Session;
use crate::site_state::SiteInner;

pub use crate::site_state::SiteConfig;

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
            inner: Rc::new(SiteInner::new(root, config)),
        }
    }

    /// Sends one combined-log-format line per finished request to `log`.
    pub fn set_access_log(&self, log: impl Fn(&str) + 'static) {
        *self.inner.access_log.borrow_mut() = Some(Box::new(log));
    }

    /// Calls `hook` once per finished request, as the access log is called but without a
    /// line: for counting requests without paying for a log line nobody reads.
    pub fn on_request_finished(&self, hook: impl Fn() + 'static) {
        *self.inner.request_finished.borrow_mut() = Some(Box::new(hook));
    }

    /// Uses `clock` for time-outs (the test `Clock`) instead of the reactor.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        self.inner.set_clock(Rc::new(clock));
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
