//! Fuzzes the Int32/Int16/Int8 prefix decoders: any bytes never panic, frames split anywhere
//! decode the same as frames received whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::protocols::basic::{Framing, Int16, Int32, Int8, StringReceiver, StringSender, Strings};
use torsion::testing::StringTransport;
use torsion::Protocol;

struct Collect<F>(Vec<Vec<u8>>, bool, std::marker::PhantomData<F>);

impl<F: Framing> StringReceiver for Collect<F> {
    type Framing = F;
    fn max_length(&self) -> usize {
        1000
    }
    fn string_received(&mut self, _: &StringSender<'_, F>, data: &[u8]) {
        self.0.push(data.to_vec());
    }
    fn frame_error(&mut self, t: &StringSender<'_, F>, _: torsion::protocols::basic::FrameError) {
        self.1 = true;
        t.lose_connection();
    }
}

fn check<F: Framing>(split: u8, data: &[u8]) {
    let run = |chunks: &[&[u8]]| {
        let st = StringTransport::new();
        let mut p = Strings::new(Collect::<F>(Vec::new(), false, Default::default()));
        for c in chunks {
            p.data_received(&st.transport(), c);
        }
        (p.handler().0.clone(), p.handler().1)
    };
    let cut = (split as usize).min(data.len());
    assert_eq!(run(&[data]), run(&[&data[..cut], &data[cut..]]));
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    check::<Int32>(split, rest);
    check::<Int16>(split, rest);
    check::<Int8>(split, rest);
});
