//! Fuzzes the AMP box decoder: any bytes, in any two chunks, never panic and give the same
//! boxes as in one chunk; every box read writes back to bytes that read as the same box; the
//! argument readers never panic on a value; an `Amp` connection fed the bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::testing::StringTransport;
use torsion::Protocol;
use torsion_amp::types::{AmpList, Argument};
use torsion_amp::wire::BoxParser;
use torsion_amp::{command, Amp, AmpBox, DateTime, Decimal, Locator, RemoteError};

command! {
    /// Echoes.
    pub struct Echo { v: Vec<u8> }
    response EchoResult { v: Vec<u8> }
}

fn all_boxes(chunks: &[&[u8]]) -> (Vec<AmpBox>, bool) {
    let mut p = BoxParser::new(1 << 16);
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        loop {
            match p.next_box() {
                Ok(Some(b)) => out.push(b),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let whole = all_boxes(&[rest]);
    assert_eq!(whole, all_boxes(&[&rest[..at], &rest[at..]]));
    for b in &whole.0 {
        let bytes = b.to_bytes().expect("a box read is within the limits");
        let mut p = BoxParser::new(usize::MAX);
        p.push(&bytes);
        assert_eq!(p.next_box().unwrap().as_ref(), Some(b));
    }
    let _ = f64::from_wire(rest);
    let _ = i64::from_wire(rest);
    let _ = Decimal::from_wire(rest).map(|d| d.to_string());
    let _ = DateTime::from_wire(rest);
    let _ = Vec::<String>::from_wire(rest);
    let _ = AmpList::<EchoResult>::from_wire(rest);
    let mut amp = Amp::new(Locator::new().responder(|e: Echo, _| {
        Ok::<_, RemoteError>(EchoResult { v: e.v })
    }));
    let st = StringTransport::new();
    let t = st.transport();
    amp.connection_made(&t);
    amp.data_received(&t, &rest[..at]);
    amp.data_received(&t, &rest[at..]);
});
