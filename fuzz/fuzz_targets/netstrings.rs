//! Fuzzes the netstring decoder: any bytes never panic, and frames split anywhere decode the
//! same as frames received whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::protocols::basic::{Netstring, StringReceiver, StringSender, Strings};
use torsion::testing::StringTransport;
use torsion::Protocol;

#[derive(Default)]
struct Collect(Vec<Vec<u8>>, bool);

impl StringReceiver for Collect {
    type Framing = Netstring;
    fn max_length(&self) -> usize {
        1000
    }
    fn string_received(&mut self, _: &StringSender<'_, Netstring>, data: &[u8]) {
        self.0.push(data.to_vec());
    }
    fn frame_error(&mut self, t: &StringSender<'_, Netstring>, _: torsion::protocols::basic::FrameError) {
        self.1 = true;
        t.lose_connection();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let whole = {
        let st = StringTransport::new();
        let mut p = Strings::new(Collect::default());
        p.data_received(&st.transport(), rest);
        (p.handler().0.clone(), p.handler().1)
    };
    let st = StringTransport::new();
    let mut p = Strings::new(Collect::default());
    let cut = (split as usize).min(rest.len());
    p.data_received(&st.transport(), &rest[..cut]);
    p.data_received(&st.transport(), &rest[cut..]);
    assert_eq!((p.handler().0.clone(), p.handler().1), whole);
});
