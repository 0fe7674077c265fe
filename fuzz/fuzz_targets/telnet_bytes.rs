//! Fuzzes the telnet parser and negotiator (`torsion_conch::telnet`) and the line editor
//! behind it: any bytes, in any chunks, never panic; the application bytes are the same
//! however the input is split; answers never outgrow what was received; the line editor's
//! line stays within its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion_conch::recvline::{LineEditor, Mode, MAX_LINE};
use torsion_conch::telnet::{Event, Telnet};

fn app_bytes(t: &mut Telnet, chunks: &[&[u8]], out: &mut Vec<u8>) -> Vec<u8> {
    let mut data = Vec::new();
    for c in chunks {
        for e in t.feed(c, out) {
            if let Event::Data(d) = e {
                data.extend(d);
            }
        }
    }
    data
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let cut = (split as usize).min(rest.len());
    let mut whole_out = Vec::new();
    let whole = app_bytes(&mut Telnet::new(), &[rest], &mut whole_out);
    let mut split_out = Vec::new();
    let parts = app_bytes(&mut Telnet::new(), &[&rest[..cut], &rest[cut..]], &mut split_out);
    assert_eq!(whole, parts);
    assert_eq!(whole_out, split_out);
    assert!(whole_out.len() <= rest.len());
    for mode in [Mode::Vt100, Mode::Plain] {
        let mut ed = LineEditor::new(mode, "> ");
        ed.set_completer(Box::new(|_| vec!["alpha".into(), "alpine".into()]));
        let mut out = Vec::new();
        ed.feed(&whole[..cut.min(whole.len())], &mut out);
        ed.feed(&whole[cut.min(whole.len())..], &mut out);
        assert!(ed.line().chars().count() <= MAX_LINE);
    }
});
