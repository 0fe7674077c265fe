//! # WebSocket framing (RFC 6455), without I/O
//!
//! The frame layer under [`crate::websocket`]: bytes in, messages out, in the manner of the
//! rest of [`proto`](crate::proto). A [`Decoder`] is fed what the connection read and yields
//! whole [`Message`]s — fragments joined, masks removed, text checked as UTF-8, control frames
//! checked — or the [`ProtocolError`] to close with (its [`code`](ProtocolError::code): 1002
//! for a protocol breach, 1007 for text that is not UTF-8, 1009 for a frame or message over
//! the [`WsLimits`]). [`encode_frame`] writes a frame, masked when a client sends it.
//!
//! Memory is bounded: a frame is held until it is whole, and a frame or a message longer than
//! its limit is refused from its header, before its payload arrives. With permessage-deflate
//! ([`deflate`], set with [`Decoder::set_inflater`]) a message whose first frame has RSV1 set
//! is inflated frame by frame, and refused with 1009 as soon as what it inflates to passes
//! the message limit.
//!
//! ```
//! use torsion_web::proto::websocket::*;
//!
//! // A client sends "Hello" in two fragments, masked, with a ping between them.
//! let mut wire = Vec::new();
//! encode_frame(&mut wire, false, Opcode::Text, b"Hel", Some([1, 2, 3, 4]));
//! encode_frame(&mut wire, true, Opcode::Ping, b"?", Some([5, 6, 7, 8]));
//! encode_frame(&mut wire, true, Opcode::Continuation, b"lo", Some([9, 9, 9, 9]));
//!
//! let mut server = Decoder::new(Role::Server, WsLimits::default());
//! server.feed(&wire);
//! assert_eq!(server.next_message(), Ok(Some(Message::Ping(b"?".to_vec()))));
//! assert_eq!(server.next_message(), Ok(Some(Message::Text("Hello".into()))));
//! assert_eq!(server.next_message(), Ok(None));
//!
//! // An unmasked frame from a client is a protocol error: close 1002.
//! let mut bad = Vec::new();
//! encode_frame(&mut bad, true, Opcode::Text, b"hi", None);
//! let mut server = Decoder::new(Role::Server, WsLimits::default());
//! server.feed(&bad);
//! assert_eq!(server.next_message().unwrap_err().code(), 1002);
//! ```

use std::fmt;

pub mod deflate;

/// The GUID of RFC 6455 section 1.3, appended to the client's key for the accept value.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Close codes of RFC 6455 section 7.4.1.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (a server shutting down, a page left).
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// No code was in the close frame (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// The connection ended without a close frame (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// A text message was not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message breaks the endpoint's policy.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame or message too big to process.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server met an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;

    /// True for a code an endpoint may send in a close frame (RFC 6455 7.4): 1000–1003,
    /// 1007–1014 and the application ranges 3000–4999.
    pub fn is_sendable(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// The next fragment of a message (0x0).
    Continuation,
    /// A text message, or its first fragment (0x1).
    Text,
    /// A binary message, or its first fragment (0x2).
    Binary,
    /// Close (0x8).
    Close,
    /// Ping (0x9).
    Ping,
    /// Pong (0xA).
    Pong,
}

impl Opcode {
    /// The opcode's four bits.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// The opcode for four bits; `None` for the reserved ones.
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// True for close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Which end of the connection decodes: a server expects masked frames, a client unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The accepting end: every frame it reads must be masked.
    Server,
    /// The connecting end: no frame it reads may be masked.
    Client,
}

/// Limits on what a [`Decoder`] accepts; past either, close 1009.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsLimits {
    /// The longest frame payload, in bytes (default 16 MiB).
    pub max_frame: usize,
    /// The longest message, all its fragments together, in bytes (default 16 MiB).
    pub max_message: usize,
}

impl Default for WsLimits {
    fn default() -> WsLimits {
        WsLimits {
            max_frame: 16 << 20,
            max_message: 16 << 20,
        }
    }
}

/// A message read from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A whole text message (checked UTF-8).
    Text(String),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A ping, with its payload (at most 125 bytes).
    Ping(Vec<u8>),
    /// A pong, with its payload.
    Pong(Vec<u8>),
    /// The peer's close frame: its code (`None` when it sent none) and reason.
    Close(Option<u16>, String),
}

/// Why the peer's bytes were refused: the close code to send and what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError {
    code: u16,
    why: &'static str,
}

impl ProtocolError {
    fn new(code: u16, why: &'static str) -> ProtocolError {
        ProtocolError { code, why }
    }

    /// The close code to send: 1002, 1007 or 1009.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// What went wrong, short enough for a close frame's reason.
    pub fn reason(&self) -> &'static str {
        self.why
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (close {})", self.why, self.code)
    }
}

impl std::error::Error for ProtocolError {}

/// Writes one frame to `out`: masked with `mask` when given (a client's frames), unmasked
/// otherwise (a server's). Control frames must be final and carry at most 125 bytes; this is
/// the caller's to keep.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode_frame_bits(out, u8::from(fin) << 7 | opcode.bits(), payload, mask);
}

/// Writes one whole message compressed by permessage-deflate: a final frame with RSV1 set,
/// `payload` being what [`deflate::Compressor::compress`] made.
pub fn encode_compressed_frame(
    out: &mut Vec<u8>,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode_frame_bits(out, 0x80 | 0x40 | opcode.bits(), payload, mask);
}

fn encode_frame_bits(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let (head, n) = frame_head(first, payload.len(), mask);
    out.reserve(n + payload.len());
    out.extend_from_slice(&head[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// A frame's head (at most 14 bytes: the two first bytes, the extended length, the masking
/// key) for a payload of `len` bytes, and how many of the bytes are used.
fn frame_head(first: u8, len: usize, mask: Option<[u8; 4]>) -> ([u8; 14], usize) {
    let mut head = [0u8; 14];
    head[0] = first;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = if len < 126 {
        head[1] = mask_bit | len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        head[1] = mask_bit | 126;
        head[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        head[1] = mask_bit | 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    if let Some(key) = mask {
        head[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    (head, n)
}

/// The head of an unmasked final frame carrying a whole message of `len` bytes (what a
/// server sends), with RSV1 set when the payload is compressed by permessage-deflate:
/// written before the payload, it saves copying the payload into a frame.
pub fn unmasked_head(opcode: Opcode, compressed: bool, len: usize) -> ([u8; 14], usize) {
    frame_head(0x80 | u8::from(compressed) << 6 | opcode.bits(), len, None)
}

/// Writes a close frame with `code` and `reason` (cut to fit 125 bytes at a character
/// boundary).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str, mask: Option<[u8; 4]>) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(out, true, Opcode::Close, &payload, mask);
}

/// XORs `data` with the masking key, `offset` bytes into the payload.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    // The key turned so that it starts at `offset`, then eight bytes at a time.
    let key = [0, 1, 2, 3].map(|i| key[(offset + i) & 3]);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(b) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key` (RFC 6455 4.2.2).
///
/// ```
/// // The example of RFC 6455 section 1.3.
/// assert_eq!(
///     torsion_web::proto::websocket::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim().as_bytes());
    ctx.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// A message being assembled from fragments.
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// How much of `data` is known to be UTF-8 (text only).
    checked: usize,
    /// The message is compressed (RSV1 on its first frame): `data` is what it inflated to.
    compressed: bool,
}

/// Turns the bytes read from a WebSocket connection into [`Message`]s.
pub struct Decoder {
    role: Role,
    limits: WsLimits,
    /// Bytes read and not yet parsed, from `pos`.
    buf: Vec<u8>,
    pos: usize,
    partial: Option<Partial>,
    /// An error was returned: nothing more is read.
    failed: bool,
    /// permessage-deflate was agreed: RSV1 marks a compressed message.
    inflater: Option<deflate::Inflater>,
}

impl Decoder {
    /// A decoder for `role`'s end of a connection.
    pub fn new(role: Role, limits: WsLimits) -> Decoder {
        Decoder {
            role,
            limits,
            buf: Vec::new(),
            pos: 0,
            partial: None,
            failed: false,
            inflater: None,
        }
    }

    /// Inflates messages whose first frame has RSV1 set (permessage-deflate was agreed);
    /// without an inflater RSV1 is a protocol error.
    pub fn set_inflater(&mut self, inflater: Option<deflate::Inflater>) {
        self.inflater = inflater;
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, data: &[u8]) {
        if self.failed {
            return;
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held, parsed or not (for tests of the memory bound).
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.partial.as_ref().map_or(0, |p| p.data.len())
    }

    /// The next whole message, `Ok(None)` when more bytes are needed, or the error to close
    /// with (after which the decoder yields nothing more).
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        if self.failed {
            return Ok(None);
        }
        let r = self.next_inner();
        if r.is_err() {
            self.failed = true;
            self.buf = Vec::new();
            self.pos = 0;
            self.partial = None;
        }
        r
    }

    fn next_inner(&mut self) -> Result<Option<Message>, ProtocolError> {
        use close_code::*;
        loop {
            let rest = &self.buf[self.pos..];
            if rest.len() < 2 {
                return Ok(None);
            }
            let (b0, b1) = (rest[0], rest[1]);
            let fin = b0 & 0x80 != 0;
            let rsv1 = b0 & 0x40 != 0;
            if b0 & 0x30 != 0 || (rsv1 && self.inflater.is_none()) {
                return Err(ProtocolError::new(PROTOCOL_ERROR, "reserved bits set"));
            }
            let Some(opcode) = Opcode::from_bits(b0 & 0x0F) else {
                return Err(ProtocolError::new(PROTOCOL_ERROR, "reserved opcode"));
            };
            if rsv1 && !matches!(opcode, Opcode::Text | Opcode::Binary) {
                return Err(ProtocolError::new(
                    PROTOCOL_ERROR,
                    "RSV1 on a control or continuation frame",
                ));
            }
            let masked = b1 & 0x80 != 0;
            match (self.role, masked) {
                (Role::Server, false) => {
                    return Err(ProtocolError::new(PROTOCOL_ERROR, "unmasked client frame"))
                }
                (Role::Client, true) => {
                    return Err(ProtocolError::new(PROTOCOL_ERROR, "masked server frame"))
                }
                _ => {}
            }
            let (len, mut at) = match b1 & 0x7F {
                126 => {
                    if rest.len() < 4 {
                        return Ok(None);
                    }
                    (u64::from(u16::from_be_bytes([rest[2], rest[3]])), 4)
                }
                127 => {
                    if rest.len() < 10 {
                        return Ok(None);
                    }
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&rest[2..10]);
                    let n = u64::from_be_bytes(b);
                    if n >> 63 != 0 {
                        return Err(ProtocolError::new(
                            PROTOCOL_ERROR,
                            "frame length's top bit set",
                        ));
                    }
                    (n, 10)
                }
                n => (u64::from(n), 2),
            };
            if opcode.is_control() {
                if !fin {
                    return Err(ProtocolError::new(
                        PROTOCOL_ERROR,
                        "fragmented control frame",
                    ));
                }
                if len > 125 {
                    return Err(ProtocolError::new(
                        PROTOCOL_ERROR,
                        "control frame over 125 bytes",
                    ));
                }
            } else {
                if len > self.limits.max_frame as u64 {
                    return Err(ProtocolError::new(MESSAGE_TOO_BIG, "frame too big"));
                }
                match (&self.partial, opcode) {
                    (None, Opcode::Continuation) => {
                        return Err(ProtocolError::new(
                            PROTOCOL_ERROR,
                            "continuation without a message",
                        ))
                    }
                    (Some(_), Opcode::Text | Opcode::Binary) => {
                        return Err(ProtocolError::new(
                            PROTOCOL_ERROR,
                            "new message inside a fragmented one",
                        ))
                    }
                    _ => {}
                }
                // A compressed message is held to the limit as it inflates, below.
                let compressed = rsv1 || self.partial.as_ref().is_some_and(|p| p.compressed);
                let so_far = self.partial.as_ref().map_or(0, |p| p.data.len()) as u64;
                if !compressed && so_far + len > self.limits.max_message as u64 {
                    return Err(ProtocolError::new(MESSAGE_TOO_BIG, "message too big"));
                }
            }
            let key = if masked {
                if rest.len() < at + 4 {
                    return Ok(None);
                }
                let k = [rest[at], rest[at + 1], rest[at + 2], rest[at + 3]];
                at += 4;
                Some(k)
            } else {
                None
            };
            // `len` is within a limit that fits in usize.
            let len = len as usize;
            if rest.len() < at + len {
                return Ok(None);
            }
            let start = self.pos + at;
            self.pos = start + len;
            let payload = &mut self.buf[start..start + len];
            if let Some(k) = key {
                apply_mask(payload, k, 0);
            }
            let payload = &self.buf[start..start + len];
            match opcode {
                Opcode::Ping => return Ok(Some(Message::Ping(payload.to_vec()))),
                Opcode::Pong => return Ok(Some(Message::Pong(payload.to_vec()))),
                Opcode::Close => return parse_close(payload).map(Some),
                // A whole message in one uncompressed frame, the common case: straight from
                // the frame, checked once, one allocation.
                Opcode::Text | Opcode::Binary if fin && !rsv1 => {
                    return match opcode {
                        Opcode::Binary => Ok(Some(Message::Binary(payload.to_vec()))),
                        _ => match std::str::from_utf8(payload) {
                            Ok(text) => Ok(Some(Message::Text(text.to_owned()))),
                            Err(_) => Err(ProtocolError::new(INVALID_PAYLOAD, "text is not UTF-8")),
                        },
                    };
                }
                Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                    let partial = self.partial.get_or_insert_with(|| Partial {
                        text: opcode == Opcode::Text,
                        data: Vec::new(),
                        checked: 0,
                        compressed: rsv1,
                    });
                    match (&mut self.inflater, partial.compressed) {
                        (Some(inflater), true) => {
                            let max = self.limits.max_message;
                            inflater.inflate(payload, &mut partial.data, max)?;
                            if fin {
                                inflater.end_message(&mut partial.data, max)?;
                            }
                        }
                        _ => partial.data.extend_from_slice(payload),
                    }
                    if partial.text {
                        match std::str::from_utf8(&partial.data[partial.checked..]) {
                            Ok(_) => partial.checked = partial.data.len(),
                            Err(e) if e.error_len().is_some() => {
                                return Err(ProtocolError::new(
                                    INVALID_PAYLOAD,
                                    "text is not UTF-8",
                                ))
                            }
                            // A character cut between two fragments: checked with the next.
                            Err(e) => partial.checked += e.valid_up_to(),
                        }
                    }
                    if !fin {
                        continue;
                    }
                    let Some(done) = self.partial.take() else {
                        continue;
                    };
                    if !done.text {
                        return Ok(Some(Message::Binary(done.data)));
                    }
                    return match String::from_utf8(done.data) {
                        Ok(s) => Ok(Some(Message::Text(s))),
                        Err(_) => Err(ProtocolError::new(INVALID_PAYLOAD, "text is not UTF-8")),
                    };
                }
            }
        }
    }
}

/// A close frame's payload: nothing, or a code and a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Message, ProtocolError> {
    use close_code::*;
    match payload {
        [] => Ok(Message::Close(None, String::new())),
        [_] => Err(ProtocolError::new(PROTOCOL_ERROR, "one-byte close payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_sendable(code) {
                return Err(ProtocolError::new(PROTOCOL_ERROR, "invalid close code"));
            }
            match std::str::from_utf8(reason) {
                Ok(r) => Ok(Message::Close(Some(code), r.to_owned())),
                Err(_) => Err(ProtocolError::new(
                    INVALID_PAYLOAD,
                    "close reason is not UTF-8",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        role: Role,
        limits: WsLimits,
        wire: &[u8],
    ) -> Result<Vec<Message>, ProtocolError> {
        let mut d = Decoder::new(role, limits);
        d.feed(wire);
        let mut out = Vec::new();
        while let Some(m) = d.next_message()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn masking_by_words_is_masking_by_bytes() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
                let mut by_words = data.clone();
                apply_mask(&mut by_words, key, offset);
                let by_bytes: Vec<u8> = data
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[(offset + i) & 3])
                    .collect();
                assert_eq!(by_words, by_bytes, "len {len}, offset {offset}");
            }
        }
    }

    #[test]
    fn unmasked_heads_are_the_encoded_frames_heads() {
        for n in [0, 125, 126, 65535, 65536] {
            let payload = vec![b'a'; n];
            let mut wire = Vec::new();
            encode_frame(&mut wire, true, Opcode::Text, &payload, None);
            let (head, used) = unmasked_head(Opcode::Text, false, n);
            assert_eq!(&wire[..used], &head[..used]);
            assert_eq!(wire.len(), used + n);
        }
    }

    #[test]
    fn masked_frames_of_each_size_class_round_trip() {
        for n in [0, 1, 7, 8, 9, 125, 126, 1000, 65536] {
            let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut wire = Vec::new();
            encode_frame(
                &mut wire,
                true,
                Opcode::Text,
                text.as_bytes(),
                Some([9, 8, 7, 6]),
            );
            let got = decode_all(Role::Server, WsLimits::default(), &wire).unwrap();
            assert_eq!(got, vec![Message::Text(text)]);
        }
    }

    #[test]
    fn lengths_of_each_size_class_round_trip() {
        for n in [0, 1, 125, 126, 65535, 65536, 70000] {
            let payload = vec![7u8; n];
            let mut wire = Vec::new();
            encode_frame(&mut wire, true, Opcode::Binary, &payload, None);
            let got = decode_all(Role::Client, WsLimits::default(), &wire).unwrap();
            assert_eq!(got, vec![Message::Binary(payload)]);
        }
    }

    #[test]
    fn byte_at_a_time_parses_as_whole() {
        let mut wire = Vec::new();
        encode_frame(
            &mut wire,
            false,
            Opcode::Text,
            "héllo".as_bytes()[..2].as_ref(),
            Some([1, 2, 3, 4]),
        );
        encode_frame(
            &mut wire,
            true,
            Opcode::Continuation,
            &"héllo".as_bytes()[2..],
            Some([4, 3, 2, 1]),
        );
        let mut d = Decoder::new(Role::Server, WsLimits::default());
        let mut got = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![Message::Text("héllo".into())]);
    }

    #[test]
    fn protocol_breaches_have_their_codes() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (vec![0x81 | 0x40, 0x80, 0, 0, 0, 0], 1002), // rsv1 without an extension
            (vec![0x83, 0x80, 0, 0, 0, 0], 1002),        // reserved opcode
            (vec![0x09, 0x80, 0, 0, 0, 0], 1002),        // fragmented ping
            (vec![0x80, 0x80, 0, 0, 0, 0], 1002),        // continuation alone
            (vec![0x89, 0xFE, 0, 126], 1002),            // ping over 125
            (vec![0x88, 0x81, 0, 0, 0, 0, 3], 1002),     // one-byte close
            (vec![0x88, 0x82, 0, 0, 0, 0, 0x03, 0xED], 1002), // close 1005 sent
            (vec![0x81, 0x81, 0, 0, 0, 0, 0xFF], 1007),  // not UTF-8
            (vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], 1002), // top length bit
        ];
        for (wire, code) in cases {
            let e = decode_all(Role::Server, WsLimits::default(), &wire).unwrap_err();
            assert_eq!(e.code(), code, "{wire:?}: {e}");
        }
        let mut two = Vec::new();
        encode_frame(&mut two, false, Opcode::Text, b"a", Some([0; 4]));
        encode_frame(&mut two, true, Opcode::Text, b"b", Some([0; 4]));
        assert_eq!(
            decode_all(Role::Server, WsLimits::default(), &two)
                .unwrap_err()
                .code(),
            1002
        );
    }

    #[test]
    fn limits_refuse_from_the_header() {
        let limits = WsLimits {
            max_frame: 100,
            max_message: 150,
        };
        // A frame announcing 1 GiB is refused before any payload arrives.
        let mut d = Decoder::new(Role::Client, limits);
        d.feed(&[0x82, 127, 0, 0, 0, 0, 0x40, 0, 0, 0]);
        assert_eq!(d.next_message().unwrap_err().code(), 1009);
        // Two fragments under the frame limit but over the message limit.
        let mut wire = Vec::new();
        encode_frame(&mut wire, false, Opcode::Binary, &[0; 100], None);
        encode_frame(&mut wire, true, Opcode::Continuation, &[0; 100], None);
        assert_eq!(
            decode_all(Role::Client, limits, &wire).unwrap_err().code(),
            1009
        );
    }

    #[test]
    fn masked_frame_to_client_is_refused() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, true, Opcode::Text, b"x", Some([1, 1, 1, 1]));
        assert_eq!(
            decode_all(Role::Client, WsLimits::default(), &wire)
                .unwrap_err()
                .code(),
            1002
        );
    }

    #[test]
    fn close_frames_parse_and_cut_long_reasons() {
        let mut wire = Vec::new();
        encode_close(&mut wire, 4000, &"é".repeat(100), None);
        let got = decode_all(Role::Client, WsLimits::default(), &wire).unwrap();
        let [Message::Close(Some(4000), reason)] = got.as_slice() else {
            panic!("{got:?}")
        };
        assert!(reason.len() <= 123 && reason.chars().all(|c| c == 'é'));
    }
}
