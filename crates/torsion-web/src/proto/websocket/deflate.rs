//! # permessage-deflate (RFC 7692), without I/O
//!
//! The WebSocket compression extension, in three parts: the negotiation
//! ([`server_accept`] picks the first offer a server can honour and writes its answer;
//! [`client_offer`] and [`client_accept`] are the client's halves), the [`Compressor`] that
//! turns a message into the payload of a frame sent with RSV1 set, and the [`Inflater`] a
//! [`Decoder`](super::Decoder) uses for frames that arrive with RSV1 set.
//!
//! The parameters are seen from each end: *own* is what this end does when it compresses
//! (its window, whether it resets after each message), *peer* is what it asked of the other
//! end. Windows of 9 to 15 bits are honoured when compressing (zlib cannot make a stream
//! that keeps to an 8-bit window, so an offer that insists on 8 is declined); any window is
//! accepted when inflating, as the inflater always keeps 15 bits.
//!
//! The inflater never makes more than the message limit it is given: a small frame that
//! inflates past it is refused with 1009 as it inflates (no decompression bombs).
//!
//! ```
//! use torsion_web::proto::websocket::deflate::*;
//!
//! // A browser's offer, and a server that keeps to 12-bit windows.
//! let offer = "permessage-deflate; client_max_window_bits";
//! let server = DeflateOptions { max_window_bits: 12, ..DeflateOptions::default() };
//! let (answer, agreed) = server_accept(&server, &[offer]).unwrap();
//! assert_eq!(answer, "permessage-deflate; server_max_window_bits=12");
//! assert_eq!(agreed.own_window_bits, 12);
//!
//! // What the server compresses, the client inflates.
//! let client = client_accept(&DeflateOptions::default(), &[answer.as_str()]).unwrap().unwrap();
//! let mut c = agreed.compressor();
//! let wire = c.compress(&b"hello hello hello hello hello hello hello hello".repeat(4));
//! let wire = wire.unwrap();
//! let mut inflater = client.inflater();
//! let mut out = Vec::new();
//! inflater.inflate(&wire, &mut out, 1 << 20).unwrap();
//! inflater.end_message(&mut out, 1 << 20).unwrap();
//! assert_eq!(out, b"hello hello hello hello hello hello hello hello".repeat(4));
//! ```

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{close_code, ProtocolError};

/// The extension's token in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";

/// The four bytes a sync flush ends with, which RFC 7692 7.2.1 takes off each message.
const TAIL: [u8; 4] = [0, 0, 0xFF, 0xFF];

/// What one end wants from permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateOptions {
    /// The largest window this end compresses with, in bits (9 to 15; default 15). A server
    /// answers with `server_max_window_bits` when it is under 15; a client offers it as
    /// `client_max_window_bits`.
    pub max_window_bits: u8,
    /// This end resets its compressor after each message (it keeps no window between
    /// messages: less memory, a worse ratio).
    pub no_context_takeover: bool,
    /// Ask the peer to reset its compressor after each message.
    pub peer_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed (default 64): deflate
    /// cannot shrink them much and costs time.
    pub min_size: usize,
    /// The zlib level, 0 to 9 (default 6).
    pub level: u32,
}

impl Default for DeflateOptions {
    fn default() -> DeflateOptions {
        DeflateOptions {
            max_window_bits: 15,
            no_context_takeover: false,
            peer_no_context_takeover: false,
            min_size: 64,
            level: 6,
        }
    }
}

/// The parameters both ends agreed on, from this end's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The window this end compresses with, in bits (9 to 15).
    pub own_window_bits: u8,
    /// This end resets its compressor after each message.
    pub own_no_context_takeover: bool,
    /// The peer resets its compressor after each message.
    pub peer_no_context_takeover: bool,
    /// The window the peer compresses with, in bits (8 to 15; informative: the inflater
    /// keeps 15).
    pub peer_window_bits: u8,
    /// Messages shorter than this are sent uncompressed.
    pub min_size: usize,
    /// The zlib level.
    pub level: u32,
}

impl Agreed {
    /// A compressor for the messages this end sends.
    pub fn compressor(&self) -> Compressor {
        Compressor {
            deflate: Compress::new_with_window_bits(
                Compression::new(self.level.min(9)),
                false,
                self.own_window_bits.clamp(9, 15),
            ),
            reset: self.own_no_context_takeover,
            min_size: self.min_size,
        }
    }

    /// An inflater for the messages the peer sends.
    pub fn inflater(&self) -> Inflater {
        Inflater {
            inflate: Decompress::new_with_window_bits(false, 15),
            reset: self.peer_no_context_takeover,
            ended: false,
            buf: vec![0; 16 << 10],
        }
    }
}

/// One extension of a `Sec-WebSocket-Extensions` header: its name and parameters.
type Extension<'a> = (&'a str, Vec<(&'a str, Option<&'a str>)>);

/// Splits `Sec-WebSocket-Extensions` values into extensions (RFC 6455 9.1); a quoted value
/// loses its quotes.
fn parse_extensions<'a>(values: &[&'a str]) -> Vec<Extension<'a>> {
    let mut out = Vec::new();
    for value in values {
        for element in value.split(',') {
            let mut parts = element.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            if name.is_empty() {
                continue;
            }
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => {
                        let v = v.trim();
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(v);
                        (k.trim(), Some(v))
                    }
                    None => (p, None),
                })
                .collect();
            out.push((name, params));
        }
    }
    out
}

/// A window size parameter's value: 8 to 15.
fn window_bits(value: Option<&str>) -> Option<u8> {
    let v = value?;
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|n| (8..=15).contains(n))
}

/// A server's answer to one offer: `None` declines it.
fn accept_offer(
    options: &DeflateOptions,
    params: &[(&str, Option<&str>)],
) -> Option<(String, Agreed)> {
    let mut seen: Vec<&str> = Vec::new();
    let (mut own_nct, mut server_bits, mut client_bits) = (false, None, None);
    for &(name, value) in params {
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        match name {
            "server_no_context_takeover" if value.is_none() => own_nct = true,
            "client_no_context_takeover" if value.is_none() => {}
            "server_max_window_bits" => server_bits = Some(window_bits(value)?),
            "client_max_window_bits" => {
                client_bits = Some(match value {
                    None => 15,
                    v => window_bits(v)?,
                })
            }
            _ => return None,
        }
    }
    let own_bits = options
        .max_window_bits
        .clamp(9, 15)
        .min(server_bits.unwrap_or(15));
    if own_bits < 9 {
        return None;
    }
    let own_nct = own_nct || options.no_context_takeover;
    let mut answer = NAME.to_owned();
    if own_nct {
        answer.push_str("; server_no_context_takeover");
    }
    if options.peer_no_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    if own_bits < 15 || server_bits.is_some() {
        answer.push_str(&format!("; server_max_window_bits={own_bits}"));
    }
    Some((
        answer,
        Agreed {
            own_window_bits: own_bits,
            own_no_context_takeover: own_nct,
            peer_no_context_takeover: options.peer_no_context_takeover,
            peer_window_bits: client_bits.unwrap_or(15),
            min_size: options.min_size,
            level: options.level,
        },
    ))
}

/// A server's choice among the client's `Sec-WebSocket-Extensions` values: the first
/// permessage-deflate offer it can honour, as the value to answer with and what it agreed;
/// `None` when there is none (the connection goes on uncompressed).
pub fn server_accept(options: &DeflateOptions, offers: &[&str]) -> Option<(String, Agreed)> {
    parse_extensions(offers)
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(NAME))
        .find_map(|(_, params)| accept_offer(options, params))
}

/// The `Sec-WebSocket-Extensions` value a client offers.
pub fn client_offer(options: &DeflateOptions) -> String {
    let mut offer = NAME.to_owned();
    match options.max_window_bits.clamp(9, 15) {
        15 => offer.push_str("; client_max_window_bits"),
        n => offer.push_str(&format!("; client_max_window_bits={n}")),
    }
    if options.no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if options.peer_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    offer
}

/// A client's reading of the server's `Sec-WebSocket-Extensions` values, after offering
/// [`client_offer`]`(options)`: `Ok(None)` when the server declined, or why the answer
/// breaks RFC 7692 (the client then fails the connection).
pub fn client_accept(options: &DeflateOptions, answers: &[&str]) -> Result<Option<Agreed>, String> {
    let mut agreed = None;
    for (name, params) in parse_extensions(answers) {
        if !name.eq_ignore_ascii_case(NAME) {
            return Err(format!(
                "the server chose extension {name:?}, which was not offered"
            ));
        }
        if agreed.is_some() {
            return Err("the server chose permessage-deflate twice".to_owned());
        }
        let mut own_bits = options.max_window_bits.clamp(9, 15);
        let (mut own_nct, mut peer_nct, mut peer_bits) = (options.no_context_takeover, false, 15);
        let mut seen: Vec<&str> = Vec::new();
        for (p, value) in params {
            if seen.contains(&p) {
                return Err(format!("permessage-deflate parameter {p} given twice"));
            }
            seen.push(p);
            let bad = || format!("permessage-deflate parameter {p}={value:?} is malformed");
            match p {
                "server_no_context_takeover" if value.is_none() => peer_nct = true,
                "client_no_context_takeover" if value.is_none() => own_nct = true,
                "server_max_window_bits" => peer_bits = window_bits(value).ok_or_else(bad)?,
                "client_max_window_bits" => {
                    let n = window_bits(value).ok_or_else(bad)?;
                    if n < 9 {
                        return Err(
                            "the server asks for an 8-bit window, which zlib cannot keep to"
                                .to_owned(),
                        );
                    }
                    own_bits = own_bits.min(n);
                }
                _ => return Err(format!("unknown permessage-deflate parameter {p}")),
            }
        }
        if options.peer_no_context_takeover && !peer_nct {
            return Err(
                "the server left out server_no_context_takeover, which was asked for".to_owned(),
            );
        }
        agreed = Some(Agreed {
            own_window_bits: own_bits,
            own_no_context_takeover: own_nct,
            peer_no_context_takeover: peer_nct,
            peer_window_bits: peer_bits,
            min_size: options.min_size,
            level: options.level,
        });
    }
    Ok(agreed)
}

/// Compresses the messages one end sends (RFC 7692 7.2.1).
pub struct Compressor {
    deflate: Compress,
    reset: bool,
    min_size: usize,
}

impl Compressor {
    /// The payload of a compressed frame (to send with RSV1 set) for `message`, or `None`
    /// when it is to be sent as it is (shorter than the minimum size).
    pub fn compress(&mut self, message: &[u8]) -> Option<Vec<u8>> {
        if message.len() < self.min_size {
            return None;
        }
        let start = self.deflate.total_in();
        let mut out = Vec::with_capacity(message.len() / 2 + 64);
        loop {
            let done = (self.deflate.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            if self
                .deflate
                .compress_vec(&message[done..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                // Not expected from a raw deflate stream; the context is dropped and this
                // message goes uncompressed.
                self.deflate.reset();
                return None;
            }
            // A sync flush is complete once all input is taken and the output has room left.
            if (self.deflate.total_in() - start) as usize == message.len()
                && out.len() < out.capacity()
            {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.reset {
            self.deflate.reset();
        }
        Some(out)
    }
}

/// Inflates the messages the peer sends, never past a given size.
pub struct Inflater {
    inflate: Decompress,
    reset: bool,
    /// The peer ended its stream (a final block): what follows in the message is ignored,
    /// and the next message starts a new stream.
    ended: bool,
    buf: Vec<u8>,
}

impl Inflater {
    /// Inflates one frame's payload onto `out`; 1009 when `out` would pass `max` bytes,
    /// 1007 when the data is not deflate.
    pub fn inflate(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), ProtocolError> {
        let mut pos = 0;
        while !self.ended {
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(&data[pos..], &mut self.buf, FlushDecompress::Sync)
                .map_err(|_| {
                    ProtocolError::new(
                        close_code::INVALID_PAYLOAD,
                        "compressed data is not deflate",
                    )
                })?;
            let used = (self.inflate.total_in() - in0) as usize;
            let made = (self.inflate.total_out() - out0) as usize;
            pos += used;
            if out.len() + made > max {
                return Err(ProtocolError::new(
                    close_code::MESSAGE_TOO_BIG,
                    "message too big",
                ));
            }
            out.extend_from_slice(&self.buf[..made]);
            if status == Status::StreamEnd {
                self.ended = true;
            } else if (pos == data.len() && made < self.buf.len()) || (used == 0 && made == 0) {
                break;
            }
        }
        Ok(())
    }

    /// Ends a message: inflates the tail RFC 7692 took off, and resets when the peer keeps no
    /// context (or ended its stream).
    pub fn end_message(&mut self, out: &mut Vec<u8>, max: usize) -> Result<(), ProtocolError> {
        self.inflate(&TAIL, out, max)?;
        if self.reset || self.ended {
            self.inflate.reset(false);
            self.ended = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(own_nct: bool, peer_nct: bool) -> Agreed {
        Agreed {
            own_window_bits: 15,
            own_no_context_takeover: own_nct,
            peer_no_context_takeover: peer_nct,
            peer_window_bits: 15,
            min_size: 0,
            level: 6,
        }
    }

    fn round_trip(c: &mut Compressor, i: &mut Inflater, msg: &[u8]) -> usize {
        let wire = c.compress(msg).unwrap();
        let mut out = Vec::new();
        i.inflate(&wire, &mut out, 1 << 20).unwrap();
        i.end_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, msg);
        wire.len()
    }

    #[test]
    fn context_takeover_makes_a_repeated_message_small() {
        let msg = b"{\"player\": \"alice\", \"score\": 12345, \"games\": 7}".repeat(3);
        let (mut c, mut i) = (
            agreed(false, false).compressor(),
            agreed(false, false).inflater(),
        );
        let first = round_trip(&mut c, &mut i, &msg);
        let second = round_trip(&mut c, &mut i, &msg);
        assert!(second < first / 3, "{second} vs {first}");
        // Without context takeover, the second costs as much as the first.
        let (mut c, mut i) = (
            agreed(true, true).compressor(),
            agreed(true, true).inflater(),
        );
        let first = round_trip(&mut c, &mut i, &msg);
        let second = round_trip(&mut c, &mut i, &msg);
        assert_eq!(first, second);
        assert_eq!(
            round_trip(&mut c, &mut i, b""),
            1,
            "an empty message is one byte"
        );
    }

    #[test]
    fn a_bomb_is_refused_with_1009_as_it_inflates() {
        let mut c = agreed(false, false).compressor();
        let wire = c.compress(&vec![0u8; 10 << 20]).unwrap();
        assert!(wire.len() < 20_000, "{}", wire.len());
        let mut i = agreed(false, false).inflater();
        let mut out = Vec::new();
        let e = i.inflate(&wire, &mut out, 1 << 20).unwrap_err();
        assert_eq!(e.code(), 1009);
        assert!(out.len() <= 1 << 20);
        let mut garbage = agreed(false, false).inflater();
        let e = garbage
            .inflate(&[0xFF; 64], &mut Vec::new(), 1 << 20)
            .unwrap_err();
        assert_eq!(e.code(), 1007);
    }

    #[test]
    fn a_peer_that_ends_its_stream_starts_a_new_one_next_message() {
        // A final block each message, as a peer with a fresh compressor per message may send.
        let mut i = agreed(false, false).inflater();
        for msg in [b"first message".as_slice(), b"second message"] {
            let mut d = flate2::Compress::new(Compression::new(6), false);
            let mut wire = Vec::with_capacity(256);
            d.compress_vec(msg, &mut wire, FlushCompress::Finish)
                .unwrap();
            let mut out = Vec::new();
            i.inflate(&wire, &mut out, 1 << 20).unwrap();
            i.end_message(&mut out, 1 << 20).unwrap();
            assert_eq!(out, msg);
        }
    }

    #[test]
    fn server_negotiation_honours_what_it_can_and_declines_the_rest() {
        let o = DeflateOptions::default();
        let accept = |offers: &[&str]| server_accept(&o, offers).map(|(a, _)| a);
        assert_eq!(
            accept(&["permessage-deflate"]).as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            accept(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover"])
                .as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(
            accept(&["permessage-deflate; server_max_window_bits=\"10\""]).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        // 8 bits cannot be kept to: that offer is declined, the next one taken.
        assert_eq!(
            accept(&["permessage-deflate; server_max_window_bits=8, permessage-deflate"])
                .as_deref(),
            Some("permessage-deflate")
        );
        for bad in [
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
            "x-webkit-deflate-frame",
            "",
        ] {
            assert_eq!(accept(&[bad]), None, "{bad}");
        }
        let strict = DeflateOptions {
            no_context_takeover: true,
            peer_no_context_takeover: true,
            max_window_bits: 11,
            ..o
        };
        let (answer, a) = server_accept(&strict, &["permessage-deflate"]).unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11"
        );
        assert_eq!(
            (
                a.own_window_bits,
                a.own_no_context_takeover,
                a.peer_no_context_takeover
            ),
            (11, true, true)
        );
    }

    #[test]
    fn client_negotiation_checks_the_answer() {
        let o = DeflateOptions::default();
        assert_eq!(
            client_offer(&o),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(client_accept(&o, &[]), Ok(None));
        let a = client_accept(
            &o,
            &["permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"],
        )
        .unwrap()
        .unwrap();
        assert_eq!((a.own_window_bits, a.peer_window_bits), (12, 12));
        for bad in [
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; bogus",
            "something-else",
        ] {
            assert!(client_accept(&o, &[bad]).is_err(), "{bad}");
        }
        let asks = DeflateOptions {
            peer_no_context_takeover: true,
            ..o
        };
        assert!(client_accept(&asks, &["permessage-deflate"]).is_err());
    }
}
