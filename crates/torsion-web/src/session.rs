//! Cookie sessions with expiry (Twisted's `twisted.web.server.Session`).
//!
//! [`Request::get_session`](crate::Request::get_session) finds the session named by the
//! request's `TORSION_SESSION` cookie, or starts one and sets the cookie. A session expires
//! after [`SiteConfig::session_timeout`](crate::site::SiteConfig::session_timeout) seconds
//! without a request (default 900, as Twisted's); values stored in it are dropped then, and
//! [`notify_on_expire`](Session::notify_on_expire) callbacks run.
//!
//! Session ids are 128 bits from the operating system's random source (`/dev/urandom`),
//! hex-encoded, so they cannot be guessed from one another.
//!
//! ```
//! use torsion_web::{Render, Request, Resource};
//!
//! struct Visits;
//! impl Resource for Visits {
//!     fn is_leaf(&self) -> bool { true }
//!     fn render_get(&self, request: &Request) -> Render {
//!         let session = request.get_session();
//!         let n = session.get::<u32>().unwrap_or(0) + 1;
//!         session.set(n);
//!         format!("visit number {n} in this session").into()
//!     }
//! }
//! ```

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};

use torsion::reactor::{DelayedCall, ReactorTime};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "TORSION_SESSION";

/// What a session needs from the site that keeps it: the clock its expiry is timed with,
/// the session time-out, and the table of live sessions it leaves when it expires. The
/// site holds its sessions, so a session reaches it only through this trait (and a weak
/// reference: a session does not keep its site alive).
pub(crate) trait SessionSite {
    /// The clock for the expiry timers.
    fn clock(&self) -> Rc<dyn ReactorTime>;

    /// Seconds a session lives without a request.
    fn session_timeout(&self) -> f64;

    /// The live sessions, by id.
    fn sessions(&self) -> &RefCell<HashMap<String, Session>>;
}

struct Inner {
    uid: String,
    site: Weak<dyn SessionSite>,
    last_access: Cell<f64>,
    values: RefCell<HashMap<TypeId, Box<dyn Any>>>,
    on_expire: RefCell<Vec<Box<dyn FnOnce()>>>,
    timer: RefCell<Option<DelayedCall>>,
    expired: Cell<bool>,
}

/// A user's session: values kept between requests, until it expires. Cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Rc<Inner>,
}

impl Session {
    /// Starts a session on `site` and arms its expiry.
    pub(crate) fn start(site: &Rc<dyn SessionSite>) -> Session {
        let session = Session {
            inner: Rc::new(Inner {
                uid: new_uid(),
                site: Rc::downgrade(site),
                last_access: Cell::new(site.clock().seconds()),
                values: RefCell::default(),
                on_expire: RefCell::default(),
                timer: RefCell::new(None),
                expired: Cell::new(false),
            }),
        };
        session.arm(site.session_timeout());
        session
    }

    /// The session id (the cookie's value).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// Notes activity: the session lives `session_timeout` seconds from now.
    pub fn touch(&self) {
        if let Some(site) = self.inner.site.upgrade() {
            self.inner.last_access.set(site.clock().seconds());
        }
    }

    /// Stores a value of type `T`, replacing the one stored before (Twisted's components).
    pub fn set<T: 'static>(&self, value: T) {
        self.inner
            .values
            .borrow_mut()
            .insert(TypeId::of::<T>(), Box::new(value));
    }

    /// A copy of the stored value of type `T`.
    pub fn get<T: Clone + 'static>(&self) -> Option<T> {
        self.inner
            .values
            .borrow()
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Removes the stored value of type `T`.
    pub fn remove<T: 'static>(&self) -> Option<T> {
        self.inner
            .values
            .borrow_mut()
            .remove(&TypeId::of::<T>())
            .and_then(|v| v.downcast::<T>().ok())
            .map(|b| *b)
    }

    /// Runs `f` when the session expires.
    pub fn notify_on_expire(&self, f: impl FnOnce() + 'static) {
        if self.inner.expired.get() {
            f();
        } else {
            self.inner.on_expire.borrow_mut().push(Box::new(f));
        }
    }

    /// True once the session has expired.
    pub fn expired(&self) -> bool {
        self.inner.expired.get()
    }

    /// Ends the session now: forgets it, drops its values, runs the expiry callbacks.
    pub fn expire(&self) {
        if self.inner.expired.replace(true) {
            return;
        }
        if let Some(t) = self.inner.timer.borrow_mut().take() {
            let _ = t.cancel();
        }
        if let Some(site) = self.inner.site.upgrade() {
            site.sessions().borrow_mut().remove(&self.inner.uid);
        }
        let values = std::mem::take(&mut *self.inner.values.borrow_mut());
        drop(values);
        let callbacks = std::mem::take(&mut *self.inner.on_expire.borrow_mut());
        for f in callbacks {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                torsion::log::err(
                    &torsion::Failure::from_panic(p),
                    "a session expiry callback panicked",
                );
            }
        }
    }

    /// Schedules the expiry check `after` seconds from now. Activity only notes the time; when
    /// the timer comes due early it re-arms for the rest, so busy sessions cost no timer work
    /// per request.
    fn arm(&self, after: f64) {
        let Some(site) = self.inner.site.upgrade() else {
            return;
        };
        let weak = Rc::downgrade(&self.inner);
        let call = site.clock().call_later_boxed(
            after,
            Box::new(move || {
                let Some(inner) = weak.upgrade() else { return };
                let session = Session { inner };
                session.inner.timer.borrow_mut().take();
                let Some(site) = session.inner.site.upgrade() else {
                    return;
                };
                let timeout = site.session_timeout();
                let idle = site.clock().seconds() - session.inner.last_access.get();
                if idle >= timeout - 1e-9 {
                    session.expire();
                } else {
                    session.arm(timeout - idle);
                }
            }),
        );
        *self.inner.timer.borrow_mut() = Some(call);
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("uid", &self.inner.uid)
            .field("expired", &self.inner.expired.get())
            .finish()
    }
}

/// 128 random bits, hex-encoded: from `/dev/urandom`, or (where that is missing) from the
/// standard library's randomly keyed SipHash over a counter and the time.
fn new_uid() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !from_os {
        use std::hash::{BuildHasher, Hasher};
        thread_local! {
            static COUNTER: Cell<u64> = const { Cell::new(0) };
        }
        let state = std::collections::hash_map::RandomState::new();
        for half in bytes.chunks_mut(8) {
            let mut h = state.build_hasher();
            COUNTER.set(COUNTER.get() + 1);
            h.write_u64(COUNTER.get());
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
