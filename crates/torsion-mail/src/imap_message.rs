//! What FETCH and SEARCH read of a message: header fields, sections (`BODY[1.2]`,
//! `HEADER.FIELDS`, ...), ENVELOPE and BODYSTRUCTURE, parsed with `mail-parser`.
//!
//! ```
//! use torsion_mail::imap_message::{envelope, header_block, section};
//! use torsion_mail::imap_parse::{Section, SectionText};
//!
//! let m = b"From: Bob <bob@example.net>\r\nSubject: hi\r\n\r\nbody\r\n";
//! assert_eq!(header_block(m), b"From: Bob <bob@example.net>\r\nSubject: hi\r\n\r\n");
//! let text = Section { part: vec![], text: Some(SectionText::Text) };
//! assert_eq!(section(m, &text).unwrap(), b"body\r\n");
//! let env = String::from_utf8(envelope(m)).unwrap();
//! assert!(env.contains(r#"(("Bob" NIL "bob" "example.net"))"#), "{env}");
//! ```
use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};

use crate::imap_parse::{nstring, quoted_or_literal, Section, SectionText};

/// The header block, its blank line included (the whole message if it has no body).
pub fn header_block(m: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < m.len() {
        let end = memchr::memchr(b'\n', &m[i..]).map_or(m.len(), |e| i + e + 1);
        let line = &m[i..end];
        if line == b"\r\n" || line == b"\n" {
            return &m[..end];
        }
        i = end;
    }
    m
}

/// The header fields: name and the whole field (continuation lines and CRLF included).
pub fn fields(header: &[u8]) -> Vec<(String, &[u8])> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut start = None::<usize>;
    let mut i = 0;
    while i < header.len() {
        let end = memchr::memchr(b'\n', &header[i..]).map_or(header.len(), |e| i + e + 1);
        let line = &header[i..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            if let Some(s) = start {
                spans.push((s, i));
            }
            start = Some(i);
        }
        i = end;
    }
    if let Some(s) = start {
        spans.push((s, i));
    }
    spans
        .into_iter()
        .map(|(s, e)| {
            let f = &header[s..e];
            let name = f.split(|&b| b == b':').next().unwrap_or_default();
            (String::from_utf8_lossy(name).trim().to_ascii_lowercase(), f)
        })
        .collect()
}

/// The unfolded value of the first field `name` (lower case).
pub fn field_value(header: &[u8], name: &str) -> Option<String> {
    fields(header)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, f)| {
            let v = &f[f.iter().position(|&b| b == b':').map_or(f.len(), |p| p + 1)..];
            String::from_utf8_lossy(v)
                .replace("\r\n", "")
                .replace('\n', "")
                .trim()
                .to_owned()
        })
}

fn parse(m: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(m)
}

/// The bytes of `section` of message `m`, or `None` if it has no such part.
pub fn section(m: &[u8], section: &Section) -> Option<Vec<u8>> {
    if section.part.is_empty() {
        let header = header_block(m);
        return Some(match &section.text {
            None => m.to_vec(),
            Some(t) => text_of(m, header, t),
        });
    }
    let msg = parse(m)?;
    let (raw, part) = find_part(&msg, m, &section.part)?;
    let (hs, bs, es) = (
        part.offset_header as usize,
        part.offset_body as usize,
        part.offset_end as usize,
    );
    let (hs, bs, es) = (hs.min(raw.len()), bs.min(raw.len()), es.min(raw.len()));
    let header = &raw[hs.min(bs)..bs];
    Some(match &section.text {
        None => raw[bs..es.max(bs)].to_vec(),
        Some(SectionText::Mime) => header.to_vec(),
        Some(t) => {
            // HEADER/TEXT of a message/rfc822 part: of the message inside.
            let body = &raw[bs..es.max(bs)];
            match &part.body {
                PartType::Message(_) => text_of(body, header_block(body), t),
                _ => return None,
            }
        }
    })
}

fn text_of(m: &[u8], header: &[u8], t: &SectionText) -> Vec<u8> {
    match t {
        SectionText::Header | SectionText::Mime => header.to_vec(),
        SectionText::Text => m[header.len()..].to_vec(),
        SectionText::HeaderFields(names) | SectionText::HeaderFieldsNot(names) => {
            let not = matches!(t, SectionText::HeaderFieldsNot(_));
            let mut out: Vec<u8> = fields(header)
                .into_iter()
                .filter(|(n, _)| names.contains(n) != not)
                .flat_map(|(_, f)| f.iter().copied())
                .collect();
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// Part `path` (1-based numbers) of `msg`, and the bytes its offsets are in.
fn find_part<'a>(
    msg: &'a Message<'a>,
    raw: &'a [u8],
    path: &[u32],
) -> Option<(&'a [u8], &'a mail_parser::MessagePart<'a>)> {
    let (&first, rest) = path.split_first()?;
    let root = msg.parts.first()?;
    let part = match &root.body {
        PartType::Multipart(children) => {
            msg.parts.get(*children.get(first as usize - 1)? as usize)?
        }
        _ if first == 1 => root,
        _ => return None,
    };
    if rest.is_empty() {
        return Some((raw, part));
    }
    match &part.body {
        PartType::Multipart(children) => {
            // A multipart within: its own children, numbered on.
            let mut r = rest;
            let mut kids = children;
            loop {
                let (&n, more) = r.split_first()?;
                let p = msg.parts.get(*kids.get(n as usize - 1)? as usize)?;
                if more.is_empty() {
                    return Some((raw, p));
                }
                match &p.body {
                    PartType::Multipart(k) => {
                        kids = k;
                        r = more;
                    }
                    PartType::Message(inner) => {
                        return find_part(inner, inner.raw_message.as_ref(), more)
                    }
                    _ => return None,
                }
            }
        }
        PartType::Message(inner) => find_part(inner, inner.raw_message.as_ref(), rest),
        _ => None,
    }
}

fn addr_list(a: Option<&Address<'_>>) -> Vec<u8> {
    let Some(a) = a else {
        return b"NIL".to_vec();
    };
    let mut out = b"(".to_vec();
    let mut any = false;
    for addr in a.iter() {
        let Some(email) = addr.address.as_deref() else {
            continue;
        };
        any = true;
        let (local, host) = email.rsplit_once('@').unwrap_or((email, ""));
        out.push(b'(');
        out.extend(nstring(addr.name.as_deref().map(str::as_bytes)));
        out.extend_from_slice(b" NIL ");
        out.extend(quoted_or_literal(local.as_bytes()));
        out.push(b' ');
        out.extend(if host.is_empty() {
            b"NIL".to_vec()
        } else {
            quoted_or_literal(host.as_bytes())
        });
        out.push(b')');
    }
    if !any {
        return b"NIL".to_vec();
    }
    out.push(b')');
    out
}

/// ENVELOPE of message `m` (RFC 3501 section 7.4.2).
pub fn envelope(m: &[u8]) -> Vec<u8> {
    let header = header_block(m);
    let msg = parse(header);
    envelope_of(header, msg.as_ref())
}

fn envelope_of(header: &[u8], msg: Option<&Message<'_>>) -> Vec<u8> {
    let v = |n: &str| {
        nstring(
            field_value(header, n)
                .as_deref()
                .map(str::as_bytes)
                .filter(|s| !s.is_empty()),
        )
    };
    let from = addr_list(msg.and_then(|m| m.from()));
    let or_from = |a: Vec<u8>| if a == b"NIL" { from.clone() } else { a };
    let mut out = b"(".to_vec();
    for (i, item) in [
        v("date"),
        v("subject"),
        from.clone(),
        or_from(addr_list(msg.and_then(|m| m.sender()))),
        or_from(addr_list(msg.and_then(|m| m.reply_to()))),
        addr_list(msg.and_then(|m| m.to())),
        addr_list(msg.and_then(|m| m.cc())),
        addr_list(msg.and_then(|m| m.bcc())),
        v("in-reply-to"),
        v("message-id"),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(item);
    }
    out.push(b')');
    out
}

/// BODYSTRUCTURE (`extensible`) or BODY of message `m` (RFC 3501 section 7.4.2).
pub fn body_structure(m: &[u8], extensible: bool) -> Vec<u8> {
    match parse(m) {
        Some(msg) if !msg.parts.is_empty() => part_structure(&msg, 0, extensible, 0),
        _ => format!(
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" {} {})",
            m.len().saturating_sub(header_block(m).len()),
            m.iter().filter(|&&b| b == b'\n').count()
        )
        .into_bytes(),
    }
}

fn upper(s: &str) -> Vec<u8> {
    quoted_or_literal(s.to_ascii_uppercase().as_bytes())
}

fn part_structure(msg: &Message<'_>, id: usize, ext: bool, depth: usize) -> Vec<u8> {
    let Some(part) = msg.parts.get(id) else {
        return b"NIL".to_vec();
    };
    let ct = part.content_type();
    let params = |out: &mut Vec<u8>| {
        let attrs: Vec<_> = ct
            .and_then(|c| c.attributes.as_ref())
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if attrs.is_empty() {
            if ct.is_none() || ct.is_some_and(|c| c.c_type.eq_ignore_ascii_case("text")) {
                out.extend_from_slice(b"(\"CHARSET\" \"US-ASCII\")");
            } else {
                out.extend_from_slice(b"NIL");
            }
            return;
        }
        out.push(b'(');
        for (i, a) in attrs.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend(upper(&a.name));
            out.push(b' ');
            out.extend(quoted_or_literal(a.value.as_bytes()));
        }
        out.push(b')');
    };
    let mut out = b"(".to_vec();
    if let PartType::Multipart(children) = &part.body {
        if depth > 16 || children.is_empty() {
            return b"NIL".to_vec();
        }
        for &c in children {
            out.extend(part_structure(msg, c as usize, ext, depth + 1));
        }
        out.push(b' ');
        out.extend(upper(
            ct.and_then(|c| c.c_subtype.as_deref()).unwrap_or("MIXED"),
        ));
        if ext {
            out.push(b' ');
            params(&mut out);
            out.extend_from_slice(b" NIL NIL NIL");
        }
        out.push(b')');
        return out;
    }
    let (t, st) = match ct {
        Some(c) => (
            c.c_type.to_string(),
            c.c_subtype.as_deref().unwrap_or("PLAIN").to_owned(),
        ),
        None => ("TEXT".to_owned(), "PLAIN".to_owned()),
    };
    let raw = msg.raw_message.as_ref();
    let (bs, es) = (
        (part.offset_body as usize).min(raw.len()),
        (part.offset_end as usize).min(raw.len()),
    );
    let body = &raw[bs..es.max(bs)];
    out.extend(upper(&t));
    out.push(b' ');
    out.extend(upper(&st));
    out.push(b' ');
    params(&mut out);
    out.push(b' ');
    out.extend(nstring(part.content_id().map(str::as_bytes)));
    out.push(b' ');
    out.extend(nstring(part.content_description().map(str::as_bytes)));
    out.push(b' ');
    out.extend(upper(part.content_transfer_encoding().unwrap_or("7BIT")));
    out.extend(format!(" {}", body.len()).into_bytes());
    // Text lines, the last one counted even without its line ending (a part's final CRLF
    // belongs to the boundary after it).
    let lines = body.iter().filter(|&&b| b == b'\n').count()
        + usize::from(!body.is_empty() && !body.ends_with(b"\n"));
    if let PartType::Message(inner) = &part.body {
        if depth < 16 {
            let ih = header_block(inner.raw_message.as_ref());
            out.push(b' ');
            out.extend(envelope_of(ih, Some(inner)));
            out.push(b' ');
            out.extend(if inner.parts.is_empty() {
                b"NIL".to_vec()
            } else {
                part_structure(inner, 0, ext, depth + 1)
            });
            out.extend(format!(" {lines}").into_bytes());
        }
    } else if t.eq_ignore_ascii_case("text") {
        out.extend(format!(" {lines}").into_bytes());
    }
    if ext {
        out.extend_from_slice(b" NIL NIL NIL NIL");
    }
    out.push(b')');
    out
}

/// The `Date:` header as a Unix time, if it parses.
pub fn sent_date(m: &[u8]) -> Option<i64> {
    parse(header_block(m))?.date().map(|d| d.to_timestamp())
}

/// Whether `haystack` contains `needle`, ASCII case-insensitively (in linear time).
pub fn contains_ci(haystack: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let hay = haystack.to_ascii_lowercase();
    let needle = needle.as_bytes().to_ascii_lowercase();
    memchr::memmem::find(&hay, &needle).is_some()
}
