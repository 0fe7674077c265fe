//! Services: a `MultiService` starts its children in order and stops them in reverse order,
//! its stop waits for a child whose stop finishes later, `StreamServerEndpointService`
//! listens on an endpoint while it runs (a plain tokio client connects) and stops listening
//! when stopped, a port already in use is reported rather than panicking, endpoints that
//! cannot listen yet fail clearly, and `start_application` makes shutdown wait for the tree.
//!
//! Reactor tests are `#[torsion::test]`s on ephemeral loopback ports; each waits for its
//! connections to end and its ports to close, so the reactor is left clean.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::io::AsyncReadExt;
use torsion::application::{
    start_application, DuplicateServiceName, ListenFailed, MultiService, Service, ServiceState,
    StreamServerEndpointService,
};
use torsion::defer::{succeed, Deferred, DeferredQueue};
use torsion::endpoints::{client_from_string, server_from_string};
use torsion::error::{CannotListenError, ConnectError};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Reactor, Transport};

type Journal = Rc<RefCell<Vec<String>>>;

/// Records its starts and stops; its stop finishes after `stop_delay` seconds when set.
struct Recorder {
    state: ServiceState,
    journal: Journal,
    stop_delay: Option<f64>,
}

impl Recorder {
    fn new(name: &str, journal: &Journal, stop_delay: Option<f64>) -> Rc<Recorder> {
        let state = ServiceState::new();
        state.set_name(name);
        Rc::new(Recorder {
            state,
            journal: journal.clone(),
            stop_delay,
        })
    }

    fn log(&self, what: &str) {
        let name = self.state.name().unwrap_or_default();
        self.journal.borrow_mut().push(format!("{what} {name}"));
    }
}

impl Service for Recorder {
    fn name(&self) -> Option<String> {
        self.state.name()
    }
    fn running(&self) -> bool {
        self.state.running()
    }
    fn privileged_start_service(&self) {
        self.log("privileged");
    }
    fn start_service(&self) {
        self.state.set_running(true);
        self.log("start");
    }
    fn stop_service(&self) -> Deferred<()> {
        self.state.set_running(false);
        self.log("stop");
        match self.stop_delay {
            None => succeed(()),
            Some(delay) => {
                let d = Deferred::new();
                let fire = d.trigger();
                let journal = self.journal.clone();
                let name = self.state.name().unwrap_or_default();
                reactor().call_later(delay, move || {
                    journal.borrow_mut().push(format!("stopped {name}"));
                    fire.callback(());
                });
                d
            }
        }
    }
}

fn entries(journal: &Journal) -> Vec<String> {
    std::mem::take(&mut *journal.borrow_mut())
}

#[test]
fn multi_service_starts_in_order_and_stops_in_reverse() {
    let journal: Journal = Rc::default();
    let root = MultiService::new();
    for name in ["a", "b", "c"] {
        root.add_service(Recorder::new(name, &journal, None))
            .unwrap();
    }
    let dup = root.add_service(Recorder::new("b", &journal, None));
    assert_eq!(dup, Err(DuplicateServiceName("b".into())));
    assert_eq!(root.services().len(), 3);

    root.privileged_start_service();
    root.start_service();
    assert!(root.running());
    assert_eq!(
        entries(&journal),
        [
            "privileged a",
            "privileged b",
            "privileged c",
            "start a",
            "start b",
            "start c"
        ]
    );

    // A child added while running starts at once; a child removed while running stops.
    root.add_service(Recorder::new("d", &journal, None))
        .unwrap();
    assert_eq!(entries(&journal), ["privileged d", "start d"]);
    let d = root.get_service_named("d").expect("d is a child");
    assert!(root.remove_service(&d).called());
    assert!(root.get_service_named("d").is_none());
    assert_eq!(entries(&journal), ["stop d"]);

    let stopped = root.stop_service();
    assert!(stopped.called());
    assert!(!root.running());
    assert_eq!(entries(&journal), ["stop c", "stop b", "stop a"]);
    assert!(root.services().iter().all(|s| !s.running()));
}

#[torsion::test(timeout = 10)]
async fn stop_waits_for_a_child_that_stops_later() -> Result<(), Failure> {
    let journal: Journal = Rc::default();
    let root = MultiService::new();
    root.add_service(Recorder::new("quick", &journal, None))
        .unwrap();
    root.add_service(Recorder::new("slow", &journal, Some(0.05)))
        .unwrap();
    root.start_service();
    entries(&journal);

    let stopped = root.stop_service();
    assert!(
        !stopped.called(),
        "stop fired before the slow child stopped"
    );
    assert_eq!(entries(&journal), ["stop slow", "stop quick"]);
    stopped.await?;
    assert_eq!(entries(&journal), ["stopped slow"]);
    Ok(())
}

/// Greets each connection and reports when it ends.
struct Greeter {
    ended: DeferredQueue<()>,
}

impl Protocol for Greeter {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hello\n");
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.ended.put(()).unwrap();
    }
}

#[torsion::test(timeout = 10)]
async fn stream_server_endpoint_service_listens_while_running() -> Result<(), Failure> {
    let r = reactor();
    let ended: DeferredQueue<()> = DeferredQueue::new();
    let e = ended.clone();
    let endpoint = server_from_string(&r, "tcp:0:interface=127.0.0.1")?;
    let service = Rc::new(StreamServerEndpointService::new(
        endpoint,
        factory(move || Greeter { ended: e.clone() }),
    ));
    service.set_name("greeter");
    let root = MultiService::new();
    root.add_service(service.clone()).unwrap();
    assert!(service.listening_address().is_none());

    root.start_service();
    let addr = service.when_listening().await?;
    let addr = addr.socket_addr().expect("a TCP address");
    assert_eq!(
        Some(addr),
        service.listening_address().and_then(|a| a.socket_addr())
    );
    assert_ne!(addr.port(), 0);

    let mut client = tokio::net::TcpStream::connect(addr).await?;
    let mut greeting = Vec::new();
    client.read_to_end(&mut greeting).await?;
    assert_eq!(greeting, b"hello\n");
    drop(client);
    ended.get().unwrap().await?;

    root.stop_service().await?;
    assert!(!service.running());
    assert!(service.listening_address().is_none());
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "still accepting after stop");

    // A stopped service can start again.
    root.start_service();
    assert!(service.when_listening().await.is_ok());
    root.stop_service().await?;
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_port_in_use_is_reported_not_panicked() -> Result<(), Failure> {
    let r = reactor();
    let taken = r.listen_tcp_on(
        0,
        factory(|| Greeter {
            ended: DeferredQueue::new(),
        }),
        "127.0.0.1",
    )?;
    let port = taken.get_host().port().unwrap();

    let endpoint = server_from_string(&r, &format!("tcp:{port}:interface=127.0.0.1"))?;
    let service = StreamServerEndpointService::new(
        endpoint,
        factory(|| Greeter {
            ended: DeferredQueue::new(),
        }),
    );
    service.start_service();
    assert!(service.running());
    assert!(service.listen_failed());
    assert!(service.listening_address().is_none());
    let err = service
        .when_listening()
        .await
        .expect_err("listening on a port in use");
    let listen_failed = err.downcast_ref::<ListenFailed>().expect("a ListenFailed");
    assert_eq!(
        listen_failed.endpoint,
        format!("tcp:{port}:interface=127.0.0.1")
    );
    assert!(
        listen_failed.message.contains("Couldn't listen"),
        "{listen_failed}"
    );
    let original = service.take_listen_failure().expect("the failure is kept");
    assert!(original.check::<CannotListenError>(), "{original:?}");

    service.stop_service().await?; // fires at once: nothing to close
    assert!(!service.running());
    taken.stop_listening().await?;
    Ok(())
}

#[test]
fn endpoints_that_cannot_listen_yet_fail_clearly() {
    let r = Reactor::new();
    let f = || {
        factory(|| Greeter {
            ended: DeferredQueue::new(),
        })
    };
    let message = |s: &str| {
        let failure = server_from_string(&r, s)
            .unwrap()
            .listen(f())
            .result()
            .expect("listen fires at once")
            .expect_err("cannot listen yet");
        assert!(failure.check::<CannotListenError>(), "{failure:?}");
        failure.error_message()
    };
    // Unix endpoints listen now (tests/endpoints_listen.rs); a folder that is not there
    // still fails clearly.
    let unix = message("unix:/nonexistent-torsion-dir/endpoint-test.sock");
    assert!(unix.contains("nonexistent-torsion-dir"), "{unix}");
    let tls = message("tls:0:privateKey=key.pem");
    assert!(tls.contains("cannot read key.pem"), "{tls}");
    let systemd = message("systemd:domain=INET:index=0");
    assert!(
        systemd.contains("systemd") || systemd.contains("LISTEN_PID"),
        "{systemd}"
    );
    let bad_interface = message("tcp:0:interface=localhost");
    assert!(
        bad_interface.contains("not an IP address"),
        "{bad_interface}"
    );

    let connect = |s: &str| {
        client_from_string(&r, s)
            .unwrap()
            .connect(f())
            .expect_err("cannot connect yet")
    };
    let bind = connect("tcp:127.0.0.1:1:bindAddress=nowhere");
    assert!(bind.check::<ConnectError>());
    assert!(bind.error_message().contains("bindAddress"));
    assert!(
        connect("tls:example.com:443:trustRoots=/nonexistent/roots.pem")
            .error_message()
            .contains("cannot read /nonexistent/roots.pem")
    );
}

#[test]
fn shutdown_waits_for_the_application_to_stop() {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    let journal: Journal = Rc::default();
    let root = Rc::new(MultiService::new());
    root.add_service(Recorder::new("slow", &journal, Some(0.05)))
        .unwrap();
    start_application(&r, root.clone());
    assert_eq!(entries(&journal), ["privileged slow"]);
    r.call_when_running(|| reactor().stop());
    r.run().unwrap();
    assert_eq!(
        entries(&journal),
        ["start slow", "stop slow", "stopped slow"]
    );
    assert!(!root.running());
}
