//! Absolute URLs as the client needs them (Twisted's `twisted.web.client.URI`): scheme, host,
//! port, and the path with its query, plus RFC 3986 resolution of relative references for
//! redirects.

use std::fmt;
use std::net::Ipv6Addr;

use super::error::InvalidUrl;

/// An absolute URL, split into what a request needs (Twisted's `URI`).
///
/// The host is kept without brackets and in lower case; IPv6 literals are written in brackets
/// (`http://[::1]:8080/`). The path always starts with `/` and keeps its query; the fragment
/// is dropped, since it is never sent.
///
/// ```
/// use torsion_web::client::Url;
///
/// let u = Url::parse("http://[::1]:8080/a/b?q=1#top")?;
/// assert_eq!((u.scheme(), u.host(), u.port(), u.path()), ("http", "::1", 8080, "/a/b?q=1"));
/// assert_eq!(u.host_header(), "[::1]:8080");
/// assert_eq!(u.join("../c")?.to_string(), "http://[::1]:8080/c");
/// # Ok::<(), torsion_web::client::InvalidUrl>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

/// The port a scheme uses when the URL names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// The scheme of a reference, if it has one (`http:` in `http://x/`).
fn scheme_of(reference: &str) -> Option<&str> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    is_scheme(scheme).then_some(scheme)
}

impl Url {
    /// Parses an absolute URL such as `http://example.com:8080/path?query`.
    ///
    /// User information (`user:pass@`) is accepted and ignored. Characters that may not
    /// appear in a request line (spaces, controls, non-ASCII) may be left in the path: they
    /// are percent-encoded when the request is written.
    pub fn parse(url: &str) -> Result<Url, InvalidUrl> {
        let bad = |why| Err(InvalidUrl::new(url, why));
        let text = url.trim_matches(|c: char| c.is_ascii_whitespace());
        let Some(scheme) = scheme_of(text) else {
            return bad("no scheme: expected an absolute URL such as http://host/path");
        };
        let rest = &text[scheme.len() + 1..];
        let Some(rest) = rest.strip_prefix("//") else {
            return bad("no host: expected // after the scheme");
        };
        let scheme = scheme.to_ascii_lowercase();
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((literal, after)) = v6.split_once(']') else {
                return bad("an IPv6 address without its closing bracket");
            };
            if literal.parse::<Ipv6Addr>().is_err() {
                return bad("not an IPv6 address between the brackets");
            }
            match after {
                "" => (literal, None),
                p if p.starts_with(':') => (literal, Some(&p[1..])),
                _ => return bad("unexpected characters after the IPv6 address"),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return bad("empty host");
        }
        if host
            .bytes()
            .any(|b| b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}[]".contains(&b))
        {
            return bad("invalid character in the host");
        }
        let port = match port {
            None | Some("") => default_port(&scheme).unwrap_or(0),
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return bad("the port is not between 1 and 65535"),
            },
            Some(_) => return bad("the port is not a number"),
        };
        let path = rest.split('#').next().unwrap_or_default();
        let path = match path.as_bytes().first() {
            None => "/".to_owned(),
            Some(b'?') => format!("/{path}"),
            Some(_) => path.to_owned(),
        };
        Ok(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// The scheme, in lower case (`http`, `https`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host name or address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the one in the URL, or the scheme's default (80, 443).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query, as sent in the request line (at least `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The value of the `Host` header: the host (IPv6 in brackets), with the port unless it
    /// is the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if default_port(&self.scheme) == Some(self.port) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// True when both URLs have the same scheme, host and port (the same origin).
    pub fn same_origin(&self, other: &Url) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }

    /// Resolves a reference, such as a redirect's `Location`, against this URL (RFC 3986
    /// section 5.2): absolute URLs stand alone, `//host/x` keeps the scheme, `/x` keeps the
    /// origin, `?q` keeps the path, and `x` or `../x` is relative to this path's directory.
    pub fn join(&self, reference: &str) -> Result<Url, InvalidUrl> {
        let reference = reference.trim_matches(|c: char| c.is_ascii_whitespace());
        let reference = reference.split('#').next().unwrap_or_default();
        if scheme_of(reference).is_some() {
            return Url::parse(reference);
        }
        if reference.starts_with("//") {
            return Url::parse(&format!("{}:{reference}", self.scheme));
        }
        let base_path = self.path.split('?').next().unwrap_or("/");
        let path = if reference.is_empty() {
            self.path.clone()
        } else if reference.starts_with('?') {
            format!("{base_path}{reference}")
        } else {
            let (ref_path, query) = match reference.find('?') {
                Some(q) => reference.split_at(q),
                None => (reference, ""),
            };
            let merged = if ref_path.starts_with('/') {
                remove_dot_segments(ref_path)
            } else {
                let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
                remove_dot_segments(&format!("{dir}{ref_path}"))
            };
            format!("{merged}{query}")
        };
        Ok(Url {
            path,
            ..self.clone()
        })
    }

    /// Writes the request-target (the path and query) into `out`, percent-encoding every
    /// byte that may not appear in a request line.
    pub(crate) fn write_target(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let bytes = self.path.as_bytes();
        let allowed = |b: u8| b > b' ' && b < 0x7f && !b"\"<>\\^`{|}".contains(&b);
        if bytes.iter().all(|&b| allowed(b)) {
            out.extend_from_slice(bytes);
            return;
        }
        for &b in bytes {
            if allowed(b) {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.host_header(), self.path)
    }
}

impl std::str::FromStr for Url {
    type Err = InvalidUrl;

    fn from_str(s: &str) -> Result<Url, InvalidUrl> {
        Url::parse(s)
    }
}

/// Removes `.` and `..` segments from an absolute path (RFC 3986 section 5.2.4).
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
        trailing_slash = false;
        match segment {
            "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(path.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn parses_the_parts() {
        let u = parse("HTTP://Example.COM/a?b=c#frag");
        assert_eq!(
            (u.scheme(), u.host(), u.port(), u.path()),
            ("http", "example.com", 80, "/a?b=c")
        );
        assert_eq!(u.host_header(), "example.com");
        assert_eq!(u.to_string(), "http://example.com/a?b=c");
        let u = parse("https://user:pw@h:8443");
        assert_eq!((u.host(), u.port(), u.path()), ("h", 8443, "/"));
        assert_eq!(u.host_header(), "h:8443");
        assert_eq!(parse("http://h?x").path(), "/?x");
        assert_eq!(parse("http://h:/").port(), 80);
        assert_eq!(parse(" http://h/ ").host(), "h");
        let u = parse("http://[2001:DB8::1]/");
        assert_eq!((u.host(), u.port()), ("2001:db8::1", 80));
        assert_eq!(u.host_header(), "[2001:db8::1]");
    }

    #[test]
    fn refuses_what_is_not_a_url() {
        for bad in [
            "",
            "example.com/x",
            "/relative",
            "http:/x",
            "http://",
            "http://:80/",
            "http://h:x/",
            "http://h:0/",
            "http://h:65536/",
            "http://[::1/",
            "http://[nope]/",
            "http://[::1]x/",
            "http://a b/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad:?}");
        }
        let e = Url::parse("example.com").unwrap_err();
        assert!(e.to_string().contains("example.com"), "{e}");
    }

    #[test]
    fn joins_references_as_rfc_3986_says() {
        // RFC 3986 section 5.4.1, normal examples.
        let base = parse("http://a/b/c/d;p?q");
        for (reference, expected) in [
            ("g:h", None),
            ("g", Some("http://a/b/c/g")),
            ("./g", Some("http://a/b/c/g")),
            ("g/", Some("http://a/b/c/g/")),
            ("/g", Some("http://a/g")),
            ("//g", Some("http://g/")),
            ("?y", Some("http://a/b/c/d;p?y")),
            ("g?y", Some("http://a/b/c/g?y")),
            ("#s", Some("http://a/b/c/d;p?q")),
            ("g#s", Some("http://a/b/c/g")),
            (";x", Some("http://a/b/c/;x")),
            ("", Some("http://a/b/c/d;p?q")),
            (".", Some("http://a/b/c/")),
            ("./", Some("http://a/b/c/")),
            ("..", Some("http://a/b/")),
            ("../", Some("http://a/b/")),
            ("../g", Some("http://a/b/g")),
            ("../..", Some("http://a/")),
            ("../../", Some("http://a/")),
            ("../../g", Some("http://a/g")),
            ("../../../g", Some("http://a/g")),
            ("/./g", Some("http://a/g")),
            ("/../g", Some("http://a/g")),
            ("g.", Some("http://a/b/c/g.")),
            ("..g", Some("http://a/b/c/..g")),
            ("./g/.", Some("http://a/b/c/g/")),
            ("g/./h", Some("http://a/b/c/g/h")),
            ("g/../h", Some("http://a/b/c/h")),
            ("http://other:81/x", Some("http://other:81/x")),
        ] {
            let joined = base.join(reference);
            match expected {
                Some(e) => assert_eq!(joined.unwrap().to_string(), e, "{reference:?}"),
                None => assert!(joined.is_err(), "{reference:?}"),
            }
        }
    }

    #[test]
    fn request_targets_are_percent_encoded() {
        let mut out = Vec::new();
        parse("http://h/a b/\u{e9}?q=\"x\"").write_target(&mut out);
        assert_eq!(out, b"/a%20b/%C3%A9?q=%22x%22");
        out.clear();
        parse("http://h/plain?x=1&y=%20").write_target(&mut out);
        assert_eq!(out, b"/plain?x=1&y=%20");
    }
}
