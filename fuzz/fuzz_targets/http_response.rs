//! Fuzzes the HTTP/1.1 response path the client (`Agent`) and the reverse proxy read from a
//! server: response head parsing, response framing for each request method, and the chunked
//! decoding of whatever follows the head. Any bytes, split anywhere, never panic, never claim
//! more bytes than given, never decode past the body limit, give the same result however the
//! body bytes are split, and a parsed head written back out (as the proxy relays it) parses
//! to the same head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion_web::proto::{
    parse_response_head, response_body_kind, write_response_head, BodyKind, ChunkedDecoder, Limits,
    ParseError,
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
    assert_eq!(d.body_len(), out.len() as u64);
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
        let rest = match parse_response_head(data, &limits) {
            Ok(Some((head, consumed))) => {
                assert!(consumed <= data.len());
                assert!(consumed <= limits.max_head);
                assert!((100..=999).contains(&head.status));
                assert!(head.headers.len() <= limits.max_headers);
                // Every strict prefix of a head is incomplete or already refused.
                let cut = (split as usize).min(consumed.saturating_sub(1));
                assert!(!matches!(
                    parse_response_head(&data[..cut], &limits),
                    Ok(Some(_))
                ));
                // Relayed as the reverse proxy does, the head reads back the same.
                let mut out = Vec::new();
                write_response_head(
                    &mut out,
                    head.version,
                    head.status,
                    &head.reason,
                    &head.headers,
                );
                let roomy = Limits {
                    max_head: out.len(),
                    ..limits
                };
                let (again, n) = parse_response_head(&out, &roomy)
                    .expect("a written head parses")
                    .expect("a written head is complete");
                assert_eq!(n, out.len());
                assert_eq!(
                    (again.version, again.status, &again.headers),
                    (head.version, head.status, &head.headers)
                );
                for method in ["GET", "HEAD", "CONNECT", "POST"] {
                    match response_body_kind(method, &head) {
                        Ok(BodyKind::Length(_) | BodyKind::Chunked | BodyKind::UntilClose) => {
                            assert!(method != "HEAD" && !(100..200).contains(&head.status));
                        }
                        Ok(BodyKind::Empty) => {}
                        Err(e) => assert_eq!(e.status(), 400),
                    }
                }
                &data[consumed..]
            }
            Ok(None) => {
                assert!(data.len() <= limits.max_head);
                data
            }
            Err(e) => {
                assert!([400, 431, 505].contains(&e.status()), "{e:?}");
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
