//! Services: the pieces of an application, started and stopped together (Twisted's
//! `twisted.application.service` and `internet.StreamServerEndpointService`).
//!
//! A [`Service`] is something that starts and stops: a listening port, a periodic task, a
//! client that keeps a connection up. Services form a tree: a [`MultiService`] starts its
//! children in the order they were added and stops them in reverse order, and its stop
//! [`Deferred`] fires once every child's has. [`StreamServerEndpointService`] listens on an
//! [endpoint](crate::endpoints) while it runs; [`ClientService`] keeps a connection up
//! through one, reconnecting with [backoff](backoff_policy); [`TimerService`] calls a function
//! every N seconds. [`run`] starts a tree when the reactor starts,
//! makes shutdown wait for it to stop, and runs the reactor — what `twistd` does with an
//! `application`.
//!
//! ```
//! use std::rc::Rc;
//! use torsion::application::{start_application, MultiService, Service, StreamServerEndpointService};
//! use torsion::endpoints::server_from_string;
//! use torsion::{factory, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! let r = Reactor::new();
//! let root = Rc::new(MultiService::new());
//! let endpoint = server_from_string(&r, "tcp:0:interface=127.0.0.1").unwrap();
//! let echo = Rc::new(StreamServerEndpointService::new(endpoint, factory(|| Echo)));
//! echo.set_name("echo");
//! root.add_service(echo.clone()).unwrap();
//!
//! // What `application::run(root)` does, with a reactor of our own that stops at once:
//! start_application(&r, root.clone());
//! let (root2, echo2) = (root.clone(), echo.clone());
//! r.call_when_running(move || {
//!     assert!(root2.running());
//!     assert!(echo2.listening_address().is_some());
//!     torsion::reactor().stop().unwrap();
//! });
//! r.run().unwrap();
//! assert!(!root.running());
//! assert!(echo.listening_address().is_none()); // shutdown stopped it
//! ```

mod client;
mod timer;

pub use client::{backoff_policy, default_backoff_policy, ClientService};
pub use timer::TimerService;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use crate::defer::{succeed, Deferred, DeferredList, Trigger};
use crate::endpoints::ServerEndpoint;
use crate::protocol::Factory;
use crate::reactor::{Event, Phase};
use crate::tcp::ListeningPort;
use crate::transport::Address;
use crate::{Failure, Reactor};

/// Something that starts and stops with the application (Twisted's `IService`).
///
/// Methods take `&self`, so services live in `Rc<dyn Service>` trees and keep their state in
/// `Cell`s and `RefCell`s.
pub trait Service {
    /// The service's name, for [`MultiService::get_service_named`].
    fn name(&self) -> Option<String> {
        None
    }

    /// True between [`start_service`](Self::start_service) and
    /// [`stop_service`](Self::stop_service).
    fn running(&self) -> bool;

    /// Work that needs privileges (binding low ports), done before any privileges are shed
    /// and before the reactor runs (Twisted's `privilegedStartService`). By default nothing.
    fn privileged_start_service(&self) {}

    /// Starts the service (Twisted's `startService`).
    fn start_service(&self);

    /// Stops the service (Twisted's `stopService`); the Deferred fires once it has stopped.
    fn stop_service(&self) -> Deferred<()>;
}

/// The state every service has: a name and a running flag (Twisted's `Service` base class),
/// for embedding in services of your own.
#[derive(Debug, Default)]
pub struct ServiceState {
    name: RefCell<Option<String>>,
    running: Cell<bool>,
}

impl ServiceState {
    /// A new, nameless, stopped state.
    pub fn new() -> ServiceState {
        ServiceState::default()
    }

    /// The name.
    pub fn name(&self) -> Option<String> {
        self.name.borrow().clone()
    }

    /// Sets the name (Twisted's `setName`); set it before adding the service to a parent.
    pub fn set_name(&self, name: impl Into<String>) {
        *self.name.borrow_mut() = Some(name.into());
    }

    /// The running flag.
    pub fn running(&self) -> bool {
        self.running.get()
    }

    /// Sets the running flag.
    pub fn set_running(&self, running: bool) {
        self.running.set(running);
    }
}

/// A child with the same name is already in a [`MultiService`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateServiceName(pub String);

impl fmt::Display for DuplicateServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot have two services named '{}'", self.0)
    }
}

impl std::error::Error for DuplicateServiceName {}

fn same(a: &Rc<dyn Service>, b: &Rc<dyn Service>) -> bool {
    std::ptr::addr_eq(Rc::as_ptr(a), Rc::as_ptr(b))
}

/// A service made of services (Twisted's `MultiService`): starts its children in the order
/// they were added, stops them in reverse order, and its stop Deferred fires once every
/// child has stopped.
#[derive(Default)]
pub struct MultiService {
    state: ServiceState,
    children: RefCell<Vec<Rc<dyn Service>>>,
}

impl MultiService {
    /// An empty, nameless, stopped multi-service.
    pub fn new() -> MultiService {
        MultiService::default()
    }

    /// Sets the name (Twisted's `setName`).
    pub fn set_name(&self, name: impl Into<String>) {
        self.state.set_name(name);
    }

    /// Adds a child (Twisted's `addService`); if this service is running, the child starts
    /// at once.
    ///
    /// # Errors
    /// [`DuplicateServiceName`] when a child with the same name is already here.
    pub fn add_service(&self, service: Rc<dyn Service>) -> Result<(), DuplicateServiceName> {
        if let Some(name) = service.name() {
            if self.get_service_named(&name).is_some() {
                return Err(DuplicateServiceName(name));
            }
        }
        self.children.borrow_mut().push(service.clone());
        if self.running() {
            service.privileged_start_service();
            service.start_service();
        }
        Ok(())
    }

    /// Removes a child (Twisted's `removeService`), stopping it if this service is running;
    /// the Deferred fires once it has stopped (at once if it was not running or not a child).
    pub fn remove_service(&self, service: &Rc<dyn Service>) -> Deferred<()> {
        let removed = {
            let mut children = self.children.borrow_mut();
            let before = children.len();
            children.retain(|c| !same(c, service));
            children.len() != before
        };
        if removed && self.running() && service.running() {
            service.stop_service()
        } else {
            succeed(())
        }
    }

    /// The child named `name` (Twisted's `getServiceNamed`).
    pub fn get_service_named(&self, name: &str) -> Option<Rc<dyn Service>> {
        self.children
            .borrow()
            .iter()
            .find(|c| c.name().as_deref() == Some(name))
            .cloned()
    }

    /// The children, in the order they start.
    pub fn services(&self) -> Vec<Rc<dyn Service>> {
        self.children.borrow().clone()
    }
}

impl Service for MultiService {
    fn name(&self) -> Option<String> {
        self.state.name()
    }

    fn running(&self) -> bool {
        self.state.running()
    }

    fn privileged_start_service(&self) {
        for child in self.services() {
            child.privileged_start_service();
        }
    }

    fn start_service(&self) {
        self.state.set_running(true);
        for child in self.services() {
            child.start_service();
        }
    }

    /// Stops the children in reverse order, all at once; fires when all have stopped. A
    /// child's failure to stop is logged and does not fail the whole.
    fn stop_service(&self) -> Deferred<()> {
        self.state.set_running(false);
        let stops: Vec<Deferred<()>> = self
            .services()
            .into_iter()
            .rev()
            .filter(|c| c.running())
            .map(|c| c.stop_service())
            .collect();
        DeferredList::builder(stops)
            .consume_errors(true)
            .build()
            .add_callback(|results| {
                for r in results {
                    if let Err(f) = r {
                        crate::log::err(&f, "a service failed to stop:");
                    }
                }
            })
    }
}

impl fmt::Debug for MultiService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiService")
            .field("name", &self.name())
            .field("running", &self.running())
            .field("children", &self.children.borrow().len())
            .finish()
    }
}

/// Where a [`StreamServerEndpointService`] is with its port.
enum PortState {
    Stopped,
    Starting,
    Waiting(Deferred<()>),
    Listening(ListeningPort),
    Failed(Failure),
}

/// The service failed to listen; see [`StreamServerEndpointService::take_listen_failure`] for
/// the original failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenFailed {
    /// The endpoint, as a string.
    pub endpoint: String,
    /// The original failure's message.
    pub message: String,
}

impl fmt::Display for ListenFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to listen on {}: {}", self.endpoint, self.message)
    }
}

impl std::error::Error for ListenFailed {}

struct StreamInner {
    state: RefCell<PortState>,
    waiters: RefCell<Vec<Trigger<Address>>>,
}

impl StreamInner {
    fn settle(&self, endpoint: &str, outcome: Result<ListeningPort, Failure>) {
        let wanted = matches!(
            *self.state.borrow(),
            PortState::Starting | PortState::Waiting(_)
        );
        if !wanted {
            // Stopped while the listen was in progress: close what arrived late.
            if let Ok(port) = outcome {
                drop(port.stop_listening());
            }
            for w in std::mem::take(&mut *self.waiters.borrow_mut()) {
                let _ = w.try_errback(ListenFailed {
                    endpoint: endpoint.to_owned(),
                    message: "the service stopped before it listened".to_owned(),
                });
            }
            return;
        }
        let result = match outcome {
            Ok(port) => {
                let host = port.get_host();
                *self.state.borrow_mut() = PortState::Listening(port);
                Ok(host)
            }
            Err(f) => {
                crate::log::err(&f, &format!("failed to listen on {endpoint}:"));
                let err = ListenFailed {
                    endpoint: endpoint.to_owned(),
                    message: f.error_message(),
                };
                *self.state.borrow_mut() = PortState::Failed(f);
                Err(err)
            }
        };
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            let _ = match &result {
                Ok(a) => w.try_callback(a.clone()),
                Err(e) => w.try_errback(e.clone()),
            };
        }
    }
}

/// A service that listens on an endpoint while it runs (Twisted's
/// `StreamServerEndpointService`): it listens with its factory when started and stops
/// listening when stopped. A failure to listen is logged and kept: see
/// [`when_listening`](Self::when_listening) and [`take_listen_failure`](Self::take_listen_failure).
pub struct StreamServerEndpointService<F: Factory> {
    endpoint: ServerEndpoint,
    factory: Rc<F>,
    service: ServiceState,
    inner: Rc<StreamInner>,
    drain_timeout: Cell<Option<f64>>,
}

impl<F: Factory> StreamServerEndpointService<F> {
    /// A stopped service that will listen on `endpoint` with `factory`.
    pub fn new(endpoint: ServerEndpoint, factory: F) -> StreamServerEndpointService<F> {
        StreamServerEndpointService {
            endpoint,
            factory: Rc::new(factory),
            service: ServiceState::new(),
            inner: Rc::new(StreamInner {
                state: RefCell::new(PortState::Stopped),
                waiters: RefCell::default(),
            }),
            drain_timeout: Cell::new(None),
        }
    }

    /// Makes [`stop_service`](Service::stop_service) graceful: besides closing the port, it
    /// drains the connections the port accepted ([`ListeningPort::drain`]) and fires once
    /// they have closed, or after `seconds`, when the rest are aborted. `None` (the default,
    /// as Twisted) stops listening only, and leaves the connections to reactor shutdown.
    pub fn set_drain_timeout(&self, seconds: Option<f64>) {
        self.drain_timeout.set(seconds);
    }

    /// The drain time-out set with [`set_drain_timeout`](Self::set_drain_timeout).
    pub fn drain_timeout(&self) -> Option<f64> {
        self.drain_timeout.get()
    }

    /// Sets the name (Twisted's `setName`).
    pub fn set_name(&self, name: impl Into<String>) {
        self.service.set_name(name);
    }

    /// The endpoint this service listens on.
    pub fn endpoint(&self) -> &ServerEndpoint {
        &self.endpoint
    }

    /// The factory.
    pub fn factory(&self) -> &Rc<F> {
        &self.factory
    }

    /// The address the port listens on, while it listens (with port 0, the port chosen).
    pub fn listening_address(&self) -> Option<Address> {
        match &*self.inner.state.borrow() {
            PortState::Listening(p) if p.listening() => Some(p.get_host()),
            _ => None,
        }
    }

    /// Fires with the listening address once the service listens, or fails with
    /// [`ListenFailed`] if listening failed. Fails at once with [`ListenFailed`] when the
    /// service is not started.
    pub fn when_listening(&self) -> Deferred<Address> {
        let not_started = |message: &str| {
            crate::defer::fail(ListenFailed {
                endpoint: self.endpoint.to_string(),
                message: message.to_owned(),
            })
        };
        match &*self.inner.state.borrow() {
            PortState::Listening(p) => succeed(p.get_host()),
            PortState::Failed(f) => not_started(&f.error_message()),
            PortState::Stopped => not_started("the service is not running"),
            PortState::Starting | PortState::Waiting(_) => {
                let d = Deferred::new();
                self.inner.waiters.borrow_mut().push(d.trigger());
                d
            }
        }
    }

    /// True if the last attempt to listen failed.
    pub fn listen_failed(&self) -> bool {
        matches!(&*self.inner.state.borrow(), PortState::Failed(_))
    }

    /// Takes the failure of the last attempt to listen, if it failed (the service then
    /// counts as not listening, and a later stop fires at once).
    pub fn take_listen_failure(&self) -> Option<Failure> {
        let mut state = self.inner.state.borrow_mut();
        match std::mem::replace(&mut *state, PortState::Stopped) {
            PortState::Failed(f) => Some(f),
            other => {
                *state = other;
                None
            }
        }
    }
}

impl<F: Factory> Service for StreamServerEndpointService<F> {
    fn name(&self) -> Option<String> {
        self.service.name()
    }

    fn running(&self) -> bool {
        self.service.running()
    }

    fn start_service(&self) {
        self.service.set_running(true);
        *self.inner.state.borrow_mut() = PortState::Starting;
        let inner = self.inner.clone();
        let endpoint = self.endpoint.to_string();
        let d = self
            .endpoint
            .listen(self.factory.clone())
            .add_both(move |outcome| {
                inner.settle(&endpoint, outcome);
                Ok(())
            });
        let mut state = self.inner.state.borrow_mut();
        if matches!(*state, PortState::Starting) {
            *state = PortState::Waiting(d);
        }
    }

    /// Stops listening; the Deferred fires once the port has closed (and, with a
    /// [drain time-out](Self::set_drain_timeout), once its connections have). Stopping while
    /// the listen is in progress cancels it.
    fn stop_service(&self) -> Deferred<()> {
        self.service.set_running(false);
        let state = std::mem::replace(&mut *self.inner.state.borrow_mut(), PortState::Stopped);
        match state {
            PortState::Listening(port) => match self.drain_timeout.get() {
                Some(seconds) => port.drain(seconds),
                None => port.stop_listening(),
            },
            PortState::Waiting(d) => {
                d.cancel();
                succeed(())
            }
            PortState::Stopped | PortState::Starting | PortState::Failed(_) => succeed(()),
        }
    }
}

impl<F: Factory> fmt::Debug for StreamServerEndpointService<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServerEndpointService")
            .field("name", &self.name())
            .field("endpoint", &self.endpoint.to_string())
            .field("running", &self.running())
            .field("listening", &self.listening_address())
            .finish()
    }
}

/// Hooks `root` into `reactor` as Twisted's `startApplication` does: privileged start now,
/// [`start_service`](Service::start_service) when the reactor runs, and
/// [`stop_service`](Service::stop_service) as a before-shutdown trigger, so shutdown waits
/// for the services to stop.
pub fn start_application(reactor: &Reactor, root: Rc<dyn Service>) {
    root.privileged_start_service();
    let starting = root.clone();
    reactor.call_when_running(move || starting.start_service());
    reactor.add_system_event_trigger(Phase::Before, Event::Shutdown, move || {
        if root.running() {
            root.stop_service()
        } else {
            succeed(())
        }
    });
}

/// Runs an application on this thread's [reactor](crate::reactor()): [`start_application`],
/// then [`Reactor::run`] until the reactor stops (a signal, or `reactor().stop()`).
///
/// ```no_run
/// use std::rc::Rc;
/// use torsion::application::{run, MultiService};
///
/// let root = Rc::new(MultiService::new());
/// // root.add_service(...) for each part of the application
/// run(root).unwrap();
/// ```
///
/// # Errors
/// What [`Reactor::run`] returns.
pub fn run(root: Rc<dyn Service>) -> Result<(), Failure> {
    let r = crate::reactor();
    start_application(&r, root);
    r.run()
}
