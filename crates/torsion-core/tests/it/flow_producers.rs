//! Producers registered with real TCP transports: a streaming producer paused at the high
//! watermark and resumed at the low one, a pull producer driven until it is done,
//! `stop_producing` when the connection ends, unregistering, refused registrations, a
//! protocol that registers itself and keeps its state borrowed while it writes, and a
//! producer that panics.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use tokio::io::AsyncReadExt;
use torsion::defer::DeferredQueue;
use torsion::error::{ConnectionAborted, ConnectionDone};
use torsion::producer::{Producer, ProducerError, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Transport};

const CHUNK: usize = 64 * 1024;

/// Events the server side reports, in order, for the test to wait on.
#[derive(Clone, Default)]
struct Events {
    log: Rc<RefCell<Vec<String>>>,
    queue: DeferredQueue<()>,
}

impl Events {
    fn push(&self, e: impl Into<String>) {
        self.log.borrow_mut().push(e.into());
        self.queue.put(()).expect("unbounded queue");
    }

    fn has(&self, prefix: &str) -> bool {
        self.log.borrow().iter().any(|e| e.starts_with(prefix))
    }

    fn all(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    /// Waits until `n` events have happened.
    async fn wait_count(&self, n: usize) {
        while self.log.borrow().len() < n {
            self.queue
                .get()
                .expect("one reader")
                .await
                .expect("an event");
        }
    }

    /// Waits until an event starting with `prefix` has happened.
    async fn wait_for(&self, prefix: &str) {
        while !self.has(prefix) {
            self.queue
                .get()
                .expect("one reader")
                .await
                .expect("an event");
        }
    }
}

/// A streaming producer writing one chunk per reactor turn while not paused, recording the
/// write buffer's size whenever it is paused or resumed.
struct Stream {
    t: Transport,
    left: Cell<usize>,
    paused: Cell<bool>,
    scheduled: Cell<bool>,
    max_buffered: Cell<usize>,
    events: Events,
    me: RefCell<Weak<Stream>>,
}

impl Stream {
    fn start(t: &Transport, total: usize, events: &Events) -> Rc<Stream> {
        let s = Rc::new(Stream {
            t: t.clone(),
            left: Cell::new(total),
            paused: Cell::new(false),
            scheduled: Cell::new(false),
            max_buffered: Cell::new(0),
            events: events.clone(),
            me: RefCell::new(Weak::new()),
        });
        *s.me.borrow_mut() = Rc::downgrade(&s);
        t.register_producer(s.clone(), true).unwrap();
        s.schedule();
        s
    }

    fn schedule(&self) {
        if self.scheduled.replace(true) {
            return;
        }
        let me = self.me.borrow().clone();
        reactor().call_later(0.0, move || {
            if let Some(s) = me.upgrade() {
                s.scheduled.set(false);
                s.step();
            }
        });
    }

    fn step(&self) {
        if self.paused.get() || self.left.get() == 0 {
            return;
        }
        let n = self.left.get().min(CHUNK);
        self.t.write(&vec![b's'; n]);
        self.left.set(self.left.get() - n);
        self.max_buffered
            .set(self.max_buffered.get().max(self.t.buffered_size()));
        if self.left.get() == 0 {
            self.t.unregister_producer();
            self.events.push("done");
            self.t.lose_connection();
            return;
        }
        self.schedule();
    }
}

impl Producer for Stream {
    fn pause_producing(&self) {
        self.paused.set(true);
        self.events
            .push(format!("pause {}", self.t.buffered_size()));
    }

    fn resume_producing(&self) {
        self.paused.set(false);
        self.events
            .push(format!("resume {}", self.t.buffered_size()));
        self.schedule();
    }

    fn stop_producing(&self) {
        self.left.set(0);
        self.events.push("stop");
    }
}

/// The number after `prefix` in each matching event.
fn figures(events: &Events, prefix: &str) -> Vec<usize> {
    events
        .all()
        .iter()
        .filter_map(|e| e.strip_prefix(prefix)?.trim().parse().ok())
        .collect()
}

/// A server protocol that runs `on_made` and reports its end.
struct Server {
    on_made: Rc<dyn Fn(&Transport)>,
    events: Events,
}

impl Protocol for Server {
    fn connection_made(&mut self, t: &Transport) {
        (self.on_made)(t);
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let kind = if reason.check::<ConnectionDone>() {
            "done"
        } else if reason.check::<ConnectionAborted>() {
            "aborted"
        } else {
            "lost"
        };
        self.events.push(format!("connection_lost {kind}"));
    }
}

fn listen(
    events: &Events,
    on_made: impl Fn(&Transport) + 'static,
) -> Result<torsion::tcp::ListeningPort, Failure> {
    let on_made: Rc<dyn Fn(&Transport)> = Rc::new(on_made);
    let ev = events.clone();
    reactor().listen_tcp_on(
        0,
        factory(move || Server {
            on_made: on_made.clone(),
            events: ev.clone(),
        }),
        "127.0.0.1",
    )
}

/// A client socket with a small receive buffer.
async fn small_client(
    port: &torsion::tcp::ListeningPort,
) -> std::io::Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_recv_buffer_size(16 * 1024)?;
    sock.connect(port.get_host().socket_addr().unwrap()).await
}

async fn read_all(mut sock: tokio::net::TcpStream) -> std::io::Result<usize> {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        match sock.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

#[torsion::test(timeout = 30)]
async fn a_streaming_producer_pauses_at_the_high_watermark_and_resumes_at_the_low(
) -> Result<(), Failure> {
    const TOTAL: usize = 32 << 20;
    let events = Events::default();
    let stream: Rc<RefCell<Option<Rc<Stream>>>> = Rc::default();
    let (ev, st) = (events.clone(), stream.clone());
    let port = listen(&events, move |t| {
        assert_eq!(
            t.write_buffer_limits(),
            (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER)
        );
        *st.borrow_mut() = Some(Stream::start(t, TOTAL, &ev));
    })?;
    let client = small_client(&port).await?;
    // The client reads nothing until the server has had to pause.
    events.wait_for("pause").await;
    let read = read_all(client).await?;
    events.wait_for("connection_lost").await;
    port.stop_listening().await?;
    assert_eq!(read, TOTAL);
    let pauses = figures(&events, "pause");
    let resumes = figures(&events, "resume");
    assert!(
        !pauses.is_empty() && !resumes.is_empty(),
        "{:?}",
        events.all()
    );
    for p in &pauses {
        assert!(
            *p > DEFAULT_HIGH_WATER && *p <= DEFAULT_HIGH_WATER + CHUNK,
            "paused with {p} bytes buffered"
        );
    }
    for r in &resumes {
        assert!(*r <= DEFAULT_LOW_WATER, "resumed with {r} bytes buffered");
    }
    let s = stream.borrow_mut().take().unwrap();
    assert!(s.max_buffered.get() <= DEFAULT_HIGH_WATER + CHUNK);
    // It unregistered when done, so the end of the connection did not stop it.
    assert!(!events.has("stop"), "{:?}", events.all());
    assert_eq!(events.all().last().unwrap(), "connection_lost done");
    Ok(())
}

#[torsion::test(timeout = 30)]
async fn watermarks_are_set_per_transport() -> Result<(), Failure> {
    const TOTAL: usize = 16 << 20;
    let events = Events::default();
    let ev = events.clone();
    let port = listen(&events, move |t| {
        t.set_write_buffer_limits(512 * 1024, 4 * 1024 * 1024); // low is capped at high
        assert_eq!(t.write_buffer_limits(), (512 * 1024, 512 * 1024));
        t.set_write_buffer_limits(512 * 1024, 128 * 1024);
        Stream::start(t, TOTAL, &ev);
    })?;
    let client = small_client(&port).await?;
    events.wait_for("pause").await;
    let read = read_all(client).await?;
    events.wait_for("connection_lost").await;
    port.stop_listening().await?;
    assert_eq!(read, TOTAL);
    for p in figures(&events, "pause") {
        assert!(p > 512 * 1024 && p <= 512 * 1024 + CHUNK, "paused at {p}");
    }
    for r in figures(&events, "resume") {
        assert!(r <= 128 * 1024, "resumed at {r}");
    }
    Ok(())
}

/// A pull producer writing `sizes` one per call, then unregistering and closing.
struct Pull {
    t: Transport,
    sizes: RefCell<Vec<usize>>,
    calls: Cell<usize>,
    buffered_at_call: RefCell<Vec<usize>>,
    events: Events,
}

impl Producer for Pull {
    fn resume_producing(&self) {
        self.calls.set(self.calls.get() + 1);
        self.buffered_at_call
            .borrow_mut()
            .push(self.t.buffered_size());
        let next = self.sizes.borrow_mut().pop();
        match next {
            Some(n) => self.t.write(&vec![b'p'; n]),
            None => {
                self.t.unregister_producer();
                self.events.push("done");
                self.t.lose_connection();
            }
        }
    }

    fn stop_producing(&self) {
        self.events.push("stop");
    }
}

#[torsion::test(timeout = 30)]
async fn a_pull_producer_is_asked_for_each_chunk_until_it_is_done() -> Result<(), Failure> {
    let sizes: Vec<usize> = (0..200).map(|i| 1 + (i * 7919) % (3 * CHUNK)).collect();
    let total: usize = sizes.iter().sum();
    let events = Events::default();
    let pull: Rc<RefCell<Option<Rc<Pull>>>> = Rc::default();
    let (ev, p, sz) = (events.clone(), pull.clone(), sizes.clone());
    let port = listen(&events, move |t| {
        let producer = Rc::new(Pull {
            t: t.clone(),
            sizes: RefCell::new(sz.clone()),
            calls: Cell::new(0),
            buffered_at_call: RefCell::default(),
            events: ev.clone(),
        });
        // Registered from inside connection_made: the first call comes after it returns.
        t.register_producer(producer.clone(), false).unwrap();
        assert_eq!(producer.calls.get(), 0);
        *p.borrow_mut() = Some(producer);
    })?;
    let client = small_client(&port).await?;
    let read = read_all(client).await?;
    events.wait_for("connection_lost").await;
    port.stop_listening().await?;
    assert_eq!(read, total);
    let p = pull.borrow_mut().take().unwrap();
    assert_eq!(
        p.calls.get(),
        sizes.len() + 1,
        "one call per chunk, and one to end"
    );
    assert!(
        p.buffered_at_call.borrow().iter().all(|&b| b == 0),
        "a pull producer is only asked when the buffer is empty"
    );
    assert_eq!(events.all(), ["done", "connection_lost done"]);
    Ok(())
}

#[torsion::test(timeout = 30)]
async fn the_producer_is_stopped_when_the_connection_ends_before_connection_lost(
) -> Result<(), Failure> {
    let events = Events::default();
    let ev = events.clone();
    let port = listen(&events, move |t| {
        Stream::start(t, usize::MAX, &ev);
    })?;
    let client = small_client(&port).await?;
    events.wait_for("pause").await;
    drop(client); // with unread data: the server sees a reset
    events.wait_for("connection_lost").await;
    port.stop_listening().await?;
    let all = events.all();
    let stop = all
        .iter()
        .position(|e| e == "stop")
        .expect("stop_producing");
    let lost = all
        .iter()
        .position(|e| e.starts_with("connection_lost"))
        .unwrap();
    assert!(stop < lost, "{all:?}");
    assert_eq!(all.iter().filter(|e| *e == "stop").count(), 1);
    Ok(())
}

/// Counts calls; writes nothing.
#[derive(Default)]
struct Counter {
    pauses: Cell<u32>,
    resumes: Cell<u32>,
    stops: Cell<u32>,
}

impl Producer for Counter {
    fn pause_producing(&self) {
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_producing(&self) {
        self.resumes.set(self.resumes.get() + 1);
    }
    fn stop_producing(&self) {
        self.stops.set(self.stops.get() + 1);
    }
}

#[torsion::test(timeout = 30)]
async fn registration_is_refused_twice_and_after_closing_and_unregistering_silences_it(
) -> Result<(), Failure> {
    let events = Events::default();
    let first = Rc::new(Counter::default());
    let second = Rc::new(Counter::default());
    let (ev, a, b) = (events.clone(), first.clone(), second.clone());
    let port = listen(&events, move |t| {
        t.set_write_buffer_limits(1024, 0);
        t.register_producer(a.clone(), true).unwrap();
        assert_eq!(
            t.register_producer(b.clone(), true),
            Err(ProducerError::AlreadyRegistered)
        );
        t.unregister_producer();
        // Past the high watermark with nobody registered: nothing to pause.
        t.write(&vec![b'x'; 8 * 1024 * 1024]);
        t.register_producer(b.clone(), true).unwrap();
        t.unregister_producer();
        t.lose_connection();
        assert_eq!(
            t.register_producer(b.clone(), true),
            Err(ProducerError::Disconnected)
        );
        ev.push("registered");
    })?;
    let client = small_client(&port).await?;
    let read = read_all(client).await?;
    events.wait_for("connection_lost").await;
    port.stop_listening().await?;
    assert_eq!(read, 8 * 1024 * 1024);
    for c in [&first, &second] {
        assert_eq!((c.pauses.get(), c.resumes.get(), c.stops.get()), (0, 0, 0));
    }
    Ok(())
}

/// A protocol that registers its own shared state as the producer and writes while it
/// keeps that state borrowed: a transport that called the producer from inside `write`
/// would panic on the second borrow.
struct SelfProducer {
    state: Rc<RefCell<SelfState>>,
}

struct SelfState {
    t: Option<Transport>,
    paused: bool,
    pauses: u32,
    written: usize,
    events: Events,
}

struct SelfHandle(Rc<RefCell<SelfState>>);

impl SelfHandle {
    /// Writes 16 chunks with the state borrowed throughout, unless paused or done, and
    /// comes back on the next reactor turn.
    fn burst(&self) {
        let mut s = self.0.borrow_mut();
        if s.paused || s.written >= 8 << 20 {
            return;
        }
        let t = s.t.clone().unwrap();
        for _ in 0..16 {
            t.write(&[b'b'; CHUNK]);
            s.written += CHUNK;
        }
        if s.written >= 8 << 20 {
            t.unregister_producer();
            t.lose_connection();
            s.events.push("done");
            return;
        }
        let again = SelfHandle(self.0.clone());
        reactor().call_later(0.0, move || again.burst());
    }
}

impl Producer for SelfHandle {
    fn pause_producing(&self) {
        let mut s = self.0.borrow_mut();
        s.paused = true;
        s.pauses += 1;
    }
    fn resume_producing(&self) {
        self.0.borrow_mut().paused = false;
        self.burst();
    }
    fn stop_producing(&self) {}
}

impl Protocol for SelfProducer {
    fn connection_made(&mut self, t: &Transport) {
        self.state.borrow_mut().t = Some(t.clone());
        t.register_producer(Rc::new(SelfHandle(self.state.clone())), true)
            .unwrap();
        SelfHandle(self.state.clone()).burst();
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        let s = self.state.borrow();
        s.events.push("connection_lost");
    }
}

#[torsion::test(timeout = 30)]
async fn a_protocol_can_register_itself_and_write_with_its_state_borrowed() -> Result<(), Failure> {
    let events = Events::default();
    let state = Rc::new(RefCell::new(SelfState {
        t: None,
        paused: false,
        pauses: 0,
        written: 0,
        events: events.clone(),
    }));
    let st = state.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || SelfProducer { state: st.clone() }),
        "127.0.0.1",
    )?;
    let client = small_client(&port).await?;
    let read = read_all(client).await?;
    events.wait_for("connection_lost").await;
    port.stop_listening().await?;
    let s = state.borrow();
    assert_eq!(read, s.written);
    assert!(s.written >= 8 << 20);
    assert!(s.pauses > 0, "a burst passes the high watermark");
    Ok(())
}

/// Panics on its second call.
struct Panicky {
    t: Transport,
    calls: Cell<u32>,
}

impl Producer for Panicky {
    fn resume_producing(&self) {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == 2 {
            panic!("producer bug");
        }
        self.t.write(b"first chunk");
    }
    fn stop_producing(&self) {
        panic!("never called: a producer that panicked is dropped");
    }
}

#[torsion::test(timeout = 30)]
async fn a_producer_that_panics_aborts_only_its_connection() -> Result<(), Failure> {
    let events = Events::default();
    let port = listen(&events, move |t| {
        let p = Rc::new(Panicky {
            t: t.clone(),
            calls: Cell::new(0),
        });
        t.register_producer(p, false).unwrap();
    })?;
    let first = small_client(&port).await?;
    let (read, _) = (read_all(first).await, ());
    events.wait_for("connection_lost").await;
    // The reactor and the port go on: another connection works the same way.
    let second = small_client(&port).await?;
    let _ = read_all(second).await;
    events.wait_count(2).await;
    port.stop_listening().await?;
    assert_eq!(
        events.all(),
        ["connection_lost aborted", "connection_lost aborted"]
    );
    // The first chunk may or may not have been sent before the abort reset the connection.
    if let Ok(n) = read {
        assert!(n == 0 || n == b"first chunk".len());
    }
    Ok(())
}

#[torsion::test(timeout = 30)]
async fn a_transport_is_a_producer_for_another() -> Result<(), Failure> {
    // Connection A's transport registered as the producer for connection B: when B's
    // buffer fills, A stops reading; B ending stops (closes) A.
    let events = Events::default();
    let transports: Rc<RefCell<Vec<Transport>>> = Rc::default();
    let (tr, ev) = (transports.clone(), events.clone());
    let port = listen(&events, move |t| {
        tr.borrow_mut().push(t.clone());
        ev.push("made");
    })?;
    let a = small_client(&port).await?;
    events.wait_for("made").await;
    let b = small_client(&port).await?;
    events.wait_count(2).await;
    let (ta, tb) = {
        let v = transports.borrow();
        (v[0].clone(), v[1].clone())
    };
    tb.register_producer(Rc::new(ta.clone()), true).unwrap();
    drop(b);
    events.wait_for("connection_lost").await;
    // B is gone, so A was stopped: it closes, and its client reads the end.
    assert_eq!(read_all(a).await?, 0);
    events.wait_count(4).await; // two made, two lost
    port.stop_listening().await?;
    assert!(!ta.is_connected() && !tb.is_connected());
    Ok(())
}

#[torsion::test(timeout = 30)]
async fn an_async_writer_awaits_a_backpressure_gate() -> Result<(), Failure> {
    // Data that is always ready, written in a loop that awaits the gate before each chunk:
    // the loop never runs ahead of the transport's high watermark.
    const CHUNKS: usize = 256; // 16 MiB
    let events = Events::default();
    let max = Rc::new(Cell::new(0usize));
    let (ev, m) = (events.clone(), max.clone());
    let port = listen(&events, move |t| {
        let gate = torsion::producer::Backpressure::register(t).unwrap();
        let (t, ev, m) = (t.clone(), ev.clone(), m.clone());
        reactor().spawn(async move {
            for _ in 0..CHUNKS {
                if !gate.ready().await? {
                    ev.push("stopped");
                    return Ok::<(), Failure>(());
                }
                t.write(&[b'g'; CHUNK]);
                m.set(m.get().max(t.buffered_size()));
            }
            t.unregister_producer();
            t.lose_connection();
            ev.push("done");
            Ok(())
        });
    })?;
    let client = small_client(&port).await?;
    let read = read_all(client).await?;
    events.wait_for("connection_lost").await;
    port.stop_listening().await?;
    assert_eq!(read, CHUNKS * CHUNK);
    assert!(events.has("done"), "{:?}", events.all());
    assert!(
        max.get() <= DEFAULT_HIGH_WATER + CHUNK,
        "the writer ran ahead: {} bytes buffered",
        max.get()
    );
    Ok(())
}
