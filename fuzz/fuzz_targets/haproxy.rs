//! Fuzzes the PROXY protocol header reader: any bytes, in any two chunks, never panic, give
//! the same answer as `parse_header` on the whole, and never pass on more or less than what
//! followed the header.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use torsion::protocols::haproxy::{parse_header, HAProxyWrappingFactory, DEFAULT_MAX_V2_LENGTH};
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::{factory, Factory, Protocol, Transport};

struct Collect(Rc<RefCell<Vec<u8>>>);

impl Protocol for Collect {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
}

fuzz_target!(|data: &[u8]| {
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
