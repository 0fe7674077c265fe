//! Fuzzes the HTTP/1.1 request path of torsion-web's protocol layer: head parsing, body
//! framing, and chunked decoding of whatever follows the head. Any bytes, split anywhere,
//! never panic, never claim more bytes than given, never decode past the body limit, and give
//! the same result however the body bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion_web::proto::{
    parse_request_head, request_body_kind, ChunkedDecoder, Limits, ParseError,
};

const MAX_BODY: u64 = 256;

/// Decodes `input` as a chunked body in two calls split at `cut`, as a connection would
/// (unconsumed bytes are offered again). Returns the body, bytes consumed, and completion.
fn decode(input: &[u8], cut: usize) -> (Result<Vec<u8>, ParseError>, usize, bool) {
    let mut d = ChunkedDecoder::new(MAX_BODY);
    let mut out = Vec::new();
    let mut used = 0;
    for piece in [&input[..cut], input] {
        let pending = &input[used..piece.len()];
        match d.decode(pending, &mut out) {
            Ok(n) => {
                assert!(n <= pending.len());
                used += n;
            }
            Err(e) => return (Err(e), used, false),
        }
        if d.is_done() {
            break;
        }
        assert_eq!(used, piece.len(), "an unfinished decoder takes every byte");
    }
    assert!(used <= input.len());
    assert!(out.len() as u64 <= MAX_BODY);
    (Ok(out), used, d.is_done())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    for limits in [
        Limits::default(),
        Limits {
            max_uri: 64,
            max_head: 512,
            max_headers: 8,
        },
    ] {
        let rest = match parse_request_head(data, &limits) {
            Ok(Some((head, consumed))) => {
                assert!(consumed <= data.len());
                assert!(consumed <= limits.max_head);
                assert!(head.target.len() <= limits.max_uri);
                assert!(head.headers.len() <= limits.max_headers);
                // Every strict prefix of a head is incomplete or already refused.
                let cut = (split as usize).min(consumed.saturating_sub(1));
                assert!(!matches!(
                    parse_request_head(&data[..cut], &limits),
                    Ok(Some(_))
                ));
                let _ = request_body_kind(&head);
                &data[consumed..]
            }
            Ok(None) => {
                assert!(data.len() <= limits.max_head);
                data
            }
            Err(e) => {
                assert!([400, 414, 431, 505].contains(&e.status()));
                data
            }
        };
        // Exercise the chunked decoder on whatever follows, whatever the framing said.
        let whole = decode(rest, rest.len());
        let cut = (split as usize).min(rest.len());
        let parts = decode(rest, cut);
        match (&whole.0, &parts.0) {
            (Ok(_), Ok(_)) => assert_eq!(whole, parts),
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("splitting changed the outcome: {whole:?} vs {parts:?}"),
        }
    }
});
