//! Escaping text for HTML.

/// Escapes `&`, `<`, `>`, `"` and `'` so that text can go into HTML content or a quoted
/// attribute, as Python's `html.escape` does.
///
/// ```
/// use torsion_web::proto::html_escape;
///
/// assert_eq!(
///     html_escape(r#"<a href="x">Tom & Jerry's</a>"#),
///     "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#x27;s&lt;/a&gt;"
/// );
/// ```
pub fn html_escape(s: &str) -> String {
    let needs = |b: &u8| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'');
    let Some(first) = s.bytes().position(|b| needs(&b)) else {
        return s.to_owned();
    };
    let mut out = String::with_capacity(s.len() + s.len() / 8 + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(html_escape(""), "");
        assert_eq!(html_escape("plain text, é ✓"), "plain text, é ✓");
        assert_eq!(html_escape("&"), "&amp;");
        assert_eq!(
            html_escape("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
        );
        assert_eq!(html_escape("a\"b"), "a&quot;b");
        assert_eq!(html_escape("&amp;"), "&amp;amp;");
        assert_eq!(html_escape("é<ü>"), "é&lt;ü&gt;");
    }
}
