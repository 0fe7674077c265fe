//! Property tests for the HTTP/1.1 protocol layer: its decoders never panic, never claim more
//! bytes than they were given, and do not care how their input is split.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use torsion_web::proto::*;

/// Splits `bytes` at the given cut points (taken modulo the length, in any order).
fn pieces<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Feeds `pieces` to a decoder, as a connection would: whatever a call leaves unconsumed is
/// kept and offered again with the next piece. Returns the body, the bytes consumed in all,
/// and whether the decoder finished.
fn decode_pieces(pieces: &[&[u8]], max_body: u64) -> (Result<Vec<u8>, ParseError>, usize, bool) {
    let mut d = ChunkedDecoder::new(max_body);
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut used = 0;
    for piece in pieces {
        pending.extend_from_slice(piece);
        match d.decode(&pending, &mut out) {
            Ok(n) => {
                assert!(n <= pending.len());
                used += n;
                pending.drain(..n);
            }
            Err(e) => return (Err(e), used, false),
        }
        if d.is_done() {
            break;
        }
        // Until the body ends, every byte offered is taken.
        assert!(pending.is_empty());
    }
    assert!(out.len() as u64 <= max_body);
    (Ok(out), used, d.is_done())
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,15}"
}

/// A field value without leading or trailing whitespace (httparse trims those).
fn field_value() -> impl Strategy<Value = String> {
    "([!-~]([ -~]{0,30}[!-~])?)?"
}

fn request_wire() -> impl Strategy<Value = (String, String, Version, Vec<(String, String)>)> {
    (
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "M-SEARCH",
        ]),
        "/[A-Za-z0-9/._~%!$&'()*+,;=:@?-]{0,60}",
        prop::bool::ANY.prop_map(|b| if b { Version::Http11 } else { Version::Http10 }),
        prop::collection::vec((token(), field_value()), 0..12),
    )
        .prop_map(|(m, t, v, h)| (m.to_owned(), t, v, h))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunked_round_trip_any_split(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        next in prop::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            encode_chunk(&mut wire, c);
        }
        encode_last_chunk(&mut wire);
        let body_end = wire.len();
        wire.extend_from_slice(&next);
        let expected: Vec<u8> = chunks.concat();

        let (body, used, done) = decode_pieces(&pieces(&wire, &cuts), expected.len() as u64);
        prop_assert_eq!(body, Ok(expected));
        prop_assert!(done);
        prop_assert_eq!(used, body_end);
    }

    #[test]
    fn chunked_decoder_on_any_bytes(
        data in prop::collection::vec(any::<u8>(), 0..600),
        prefix in prop::sample::select(vec![&b""[..], b"5\r\n", b"0\r\n", b"3;x\r\nabc\r\n"]),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let input = [prefix, &data[..]].concat();
        let whole = decode_pieces(&[&input[..]], 64);
        prop_assert!(whole.1 <= input.len());
        // However the bytes are split, the outcome is the same.
        let split = decode_pieces(&pieces(&input, &cuts), 64);
        prop_assert_eq!(&split.0.is_ok(), &whole.0.is_ok());
        if whole.0.is_ok() {
            prop_assert_eq!(split, whole);
        } else {
            prop_assert_eq!(split.0, whole.0);
        }
    }

    #[test]
    fn request_head_parser_never_panics_on_bytes(
        data in prop::collection::vec(any::<u8>(), 0..400),
        prefix in prop::sample::select(vec![
            &b""[..], b"GET / HTTP/1.1\r\n", b"\r\n", b"POST /x?y HTTP/1.0\r\nA: b\r\n", b"GET /",
        ]),
        max_uri in 0usize..64,
        max_head in 0usize..256,
        max_headers in 0usize..8,
    ) {
        let buf = [prefix, &data[..]].concat();
        for limits in [Limits::default(), Limits { max_uri, max_head, max_headers }] {
            match parse_request_head(&buf, &limits) {
                Ok(Some((head, used))) => {
                    prop_assert!(used <= buf.len());
                    prop_assert!(used <= limits.max_head);
                    prop_assert!(head.target.len() <= limits.max_uri);
                    prop_assert!(head.headers.len() <= limits.max_headers);
                    let _ = request_body_kind(&head);
                }
                Ok(None) => prop_assert!(buf.len() <= limits.max_head),
                Err(e) => prop_assert!([400, 414, 431, 505].contains(&e.status())),
            }
        }
    }

    #[test]
    fn response_head_parser_never_panics_on_bytes(
        data in prop::collection::vec(any::<u8>(), 0..400),
        prefix in prop::sample::select(vec![&b""[..], b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 1"]),
    ) {
        let buf = [prefix, &data[..]].concat();
        if let Ok(Some((head, used))) = parse_response_head(&buf, &Limits::default()) {
            prop_assert!(used <= buf.len());
            prop_assert!((100..=999).contains(&head.status));
            let _ = response_body_kind("GET", &head);
        }
    }

    #[test]
    fn request_head_split_anywhere(
        (method, target, version, fields) in request_wire(),
        leading_empty_lines in 0usize..3,
        body in prop::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut wire = "\r\n".repeat(leading_empty_lines);
        wire.push_str(&format!("{method} {target} {version}\r\n"));
        for (name, value) in &fields {
            wire.push_str(&format!("{name}: {value}\r\n"));
        }
        wire.push_str("\r\n");
        let head_len = wire.len();
        let mut bytes = wire.into_bytes();
        for cut in 0..head_len {
            prop_assert_eq!(parse_request_head(&bytes[..cut], &Limits::default()), Ok(None));
        }
        let whole = parse_request_head(&bytes, &Limits::default());
        bytes.extend_from_slice(&body);
        let with_body = parse_request_head(&bytes, &Limits::default());
        prop_assert_eq!(&whole, &with_body);

        let (head, used) = whole.unwrap().unwrap();
        prop_assert_eq!(used, head_len);
        prop_assert_eq!(head.method, method);
        prop_assert_eq!(head.target, target);
        prop_assert_eq!(head.version, version);
        let got: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|(n, v)| (n.to_owned(), String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(got, fields);
    }

    #[test]
    fn response_heads_written_cannot_be_split(
        fields in prop::collection::vec((token(), "[ -~\r\n]{0,30}"), 0..8),
        reason in "[ -~\r\n]{0,20}",
        status in 100u16..=999,
    ) {
        let headers: Headers = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut out = Vec::new();
        write_response_head(&mut out, Version::Http11, status, &reason, &headers);
        // The only CRLFs are the line ends: one head, with exactly the fields written.
        let (back, used) = parse_response_head(&out, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(back.status, status);
        prop_assert_eq!(back.headers.len(), fields.len());
        for ((_, sent), (_, got)) in fields.iter().zip(back.headers.iter()) {
            let clean = sent.replace(['\r', '\n'], " ");
            prop_assert_eq!(clean.trim_matches(' ').as_bytes(), got);
        }
    }

    #[test]
    fn dates_round_trip(secs in -62_135_596_800i64..253_402_300_800) {
        // From 0001-01-01 to 9999-12-31.
        let t = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        let text = http_date(t);
        prop_assert_eq!(text.len(), 29);
        prop_assert_eq!(parse_http_date(&text), Some(t));
    }

    #[test]
    fn date_parser_never_panics(s in "\\PC{0,40}") {
        let _ = parse_http_date(&s);
    }

    #[test]
    fn percent_decoding_inverts_encoding(data in prop::collection::vec(any::<u8>(), 0..100)) {
        let encoded: String = data.iter().map(|b| format!("%{b:02X}")).collect();
        prop_assert_eq!(percent_decode(encoded.as_bytes()), data.clone());
        let query = format!("k={encoded}&{encoded}=v");
        let pairs = parse_query(query.as_bytes());
        prop_assert_eq!(pairs, vec![(b"k".to_vec(), data.clone()), (data, b"v".to_vec())]);
    }
}

// ---------------------------------------------------------------------------------------
// WebSocket framing

mod ws {
    use proptest::prelude::*;
    use torsion_web::proto::websocket::*;

    fn opcode() -> impl Strategy<Value = bool> {
        any::<bool>()
    }

    proptest! {
        /// Messages written as frames (fragmented, masked as a client's, pings between the
        /// fragments) parse back to the same messages however the bytes are split.
        #[test]
        fn frames_written_parse_back(
            messages in proptest::collection::vec((opcode(), proptest::collection::vec(any::<u8>(), 0..300), 1usize..4), 1..6),
            masks in proptest::collection::vec(any::<[u8; 4]>(), 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            let mut m = 0;
            for (text, data, parts) in &messages {
                let data = if *text { String::from_utf8_lossy(data).into_owned().into_bytes() } else { data.clone() };
                let step = data.len().div_ceil(*parts).max(1);
                let chunks: Vec<&[u8]> = if data.is_empty() { vec![&data[..]] } else { data.chunks(step).collect() };
                for (i, c) in chunks.iter().enumerate() {
                    let op = if i > 0 { Opcode::Continuation } else if *text { Opcode::Text } else { Opcode::Binary };
                    encode_frame(&mut wire, i + 1 == chunks.len(), op, c, Some(masks[m % masks.len()]));
                    m += 1;
                    if i == 0 && chunks.len() > 1 {
                        encode_frame(&mut wire, true, Opcode::Ping, b"x", Some(masks[m % masks.len()]));
                        want.push(Message::Ping(b"x".to_vec()));
                    }
                }
                want.push(if *text { Message::Text(String::from_utf8(data).unwrap()) } else { Message::Binary(data) });
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut d = Decoder::new(Role::Server, WsLimits::default());
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                d.feed(&wire[w[0]..w[1]]);
                while let Some(msg) = d.next_message().unwrap() {
                    got.push(msg);
                }
            }
            prop_assert_eq!(got, want);
        }

        /// Any bytes at all: the decoder never panics, holds no more than it was given
        /// (plus nothing past the limits), and stops at its first error.
        #[test]
        fn the_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000), server in any::<bool>()) {
            let role = if server { Role::Server } else { Role::Client };
            let limits = WsLimits { max_frame: 512, max_message: 1024 };
            let mut d = Decoder::new(role, limits);
            for piece in bytes.chunks(37) {
                d.feed(piece);
                loop {
                    match d.next_message() {
                        Ok(Some(Message::Text(t))) => prop_assert!(t.len() <= 1024),
                        Ok(Some(Message::Binary(b))) => prop_assert!(b.len() <= 1024),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            prop_assert!([1002, 1007, 1009].contains(&e.code()));
                            prop_assert_eq!(d.next_message(), Ok(None));
                            break;
                        }
                    }
                }
                prop_assert!(d.buffered() <= bytes.len() + 1024);
            }
        }
    }
}

/// A multipart body of `parts` (name, is a file, content) delimited by `boundary`.
fn multipart_body(boundary: &[u8], parts: &[(String, bool, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, content) in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary);
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\"");
        if *file {
            out.extend_from_slice(b"; filename=\"f.bin\"");
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"--\r\n");
    out
}

/// Feeds `pieces` to a multipart parser; the parts it reported, or its error.
fn parse_multipart(
    boundary: &[u8],
    pieces: &[&[u8]],
) -> Result<Vec<(String, bool, Vec<u8>)>, multipart::FormError> {
    use multipart::{MultipartEvent, MultipartLimits, MultipartParser};
    let mut parser = MultipartParser::new(boundary, MultipartLimits::default());
    let mut parts: Vec<(String, bool, Vec<u8>)> = Vec::new();
    for piece in pieces {
        parser.feed(piece, &mut |e| {
            match e {
                MultipartEvent::Part(h) => parts.push((h.name, h.filename.is_some(), Vec::new())),
                MultipartEvent::Data(d) => parts.last_mut().unwrap().2.extend_from_slice(d),
                MultipartEvent::PartEnd | MultipartEvent::End => {}
            }
            Ok(())
        })?;
    }
    parser.finish()?;
    Ok(parts)
}

proptest! {
    /// Any bytes, split anywhere: the multipart parser answers or refuses, never panics.
    #[test]
    fn multipart_never_panics(body in proptest::collection::vec(any::<u8>(), 0..600),
                              cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let _ = parse_multipart(b"xx", &pieces(&body, &cuts));
        let _ = parse_multipart(b"xx", &[&[b"--xx\r\n".as_slice(), &body].concat()]);
    }

    /// A well-formed form comes back part for part, whatever the split, even when the
    /// contents hold CR, LF, dashes and most of the boundary.
    #[test]
    fn multipart_parts_survive_any_split(
        parts in proptest::collection::vec(
            ("[a-z]{1,8}", any::<bool>(),
             proptest::collection::vec(prop_oneof![
                 Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'b'), Just(b'n'), any::<u8>()
             ], 0..200)),
            0..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let boundary = b"bnd";
        // A content holding the whole delimiter would end its part early: not a valid form.
        prop_assume!(parts.iter().all(|(_, _, c)| !c.windows(7).any(|w| w == b"\r\n--bnd")));
        let body = multipart_body(boundary, &parts);
        let got = parse_multipart(boundary, &pieces(&body, &cuts)).unwrap();
        prop_assert_eq!(got, parts);
    }
}
