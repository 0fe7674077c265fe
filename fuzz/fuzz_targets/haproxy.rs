//! Fuzzes the PROXY protocol header reader: any bytes, in any two chunks, never panic, give
//! the same answer as `parse_header` on the whole, and never pass on more or less than what
//! followed the header.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use torsion::protocols::haproxy::{parse_header, HAProxyWrappingFactory, DEFAULT_MAX_V2_LENGTH};
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::{factory, Factory, Protocol, Transport};

struct Collect(Rc<RefCell<Vec<u8>>>);

/// A subscriber that wants nothing. Without any subscriber, a refused header's log line goes
/// to standard error: a line per run, a gigabyte of log per 10 million runs.
struct Quiet;

impl tracing::Subscriber for Quiet {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::never()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

static QUIET: Once = Once::new();

impl Protocol for Collect {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
}

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Quiet);
    });
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let whole = parse_header(rest, DEFAULT_MAX_V2_LENGTH);
    if let Ok(Some((_, n))) = &whole {
        assert!(*n <= rest.len());
    }

    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let f = HAProxyWrappingFactory::new(factory(move || Collect(g.clone())));
    f.set_clock(Clock::new());
    let mut p = f.build_protocol(&Address::Named("fuzz".into())).unwrap();
    let st = StringTransport::new();
    let t = st.transport();
    p.connection_made(&t);
    let cut = (split as usize).min(rest.len());
    p.data_received(&t, &rest[..cut]);
    p.data_received(&t, &rest[cut..]);
    match whole {
        Ok(Some((_, n))) => assert_eq!(&got.borrow()[..], &rest[n..]),
        Ok(None) => assert!(got.borrow().is_empty() && !st.aborted()),
        Err(_) => assert!(got.borrow().is_empty() && st.aborted()),
    }
});
