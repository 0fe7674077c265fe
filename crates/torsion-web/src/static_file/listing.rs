//! The HTML page listing a folder (Twisted's `static.DirectoryLister`).

use std::fmt::Write;

use crate::proto::html_escape;

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The name as the file system has it.
    pub(super) name: Vec<u8>,
    /// A folder (listed first, with a trailing slash).
    pub(super) is_dir: bool,
    /// Size in bytes (files only).
    pub(super) size: u64,
    /// The content type it would be served as (files only).
    pub(super) content_type: String,
}

/// The listing page for the folder at URL path `title` (already decoded): folders first, then
/// files, each sorted by name; names HTML-escaped, links percent-encoded and relative.
pub(super) fn render_listing(title: &str, mut entries: Vec<Entry>) -> String {
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    let title = html_escape(&format!("Directory listing for {title}"));
    let mut out = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>\nth, .even td, .odd td {{ padding-right: 0.5em; font-family: monospace; }}\n\
         th {{ text-align: left; }}\n.even-dir {{ background-color: #efe0ef; }}\n\
         .even {{ background-color: #eee; }}\n.odd-dir {{ background-color: #f0d0ef; }}\n\
         .odd {{ background-color: #dedede; }}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
         <table>\n<thead>\n<tr><th>Filename</th><th>Size</th><th>Content type</th></tr>\n\
         </thead>\n<tbody>\n"
    );
    for (i, e) in entries.iter().enumerate() {
        let parity = if i % 2 == 0 { "odd" } else { "even" };
        let name = html_escape(&String::from_utf8_lossy(&e.name));
        let href = percent_encode(&e.name);
        if e.is_dir {
            let _ = writeln!(
                out,
                "<tr class=\"{parity}-dir\"><td><a href=\"{href}/\">{name}/</a></td><td></td><td>[Directory]</td></tr>"
            );
        } else {
            let _ = writeln!(
                out,
                "<tr class=\"{parity}\"><td><a href=\"{href}\">{name}</a></td><td>{}</td><td>[{}]</td></tr>",
                format_file_size(e.size),
                html_escape(&e.content_type)
            );
        }
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

/// Percent-encodes every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`), so a name is
/// one safe path segment whatever it holds.
pub(super) fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A size as Twisted's `formatFileSize` writes it: `512B`, `3K`, `12M`, `2G`.
pub(super) fn format_file_size(size: u64) -> String {
    const K: u64 = 1024;
    match size {
        s if s < K => format!("{s}B"),
        s if s < K * K => format!("{}K", s / K),
        s if s < K * K * K => format!("{}M", s / (K * K)),
        s => format!("{}G", s / (K * K * K)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            is_dir: false,
            size,
            content_type: "text/plain".into(),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(format_file_size(0), "0B");
        assert_eq!(format_file_size(1023), "1023B");
        assert_eq!(format_file_size(1024), "1K");
        assert_eq!(format_file_size(5 * 1024 * 1024 + 7), "5M");
        assert_eq!(format_file_size(3 << 30), "3G");
    }

    #[test]
    fn encoding() {
        assert_eq!(percent_encode(b"a b/c%d.txt"), "a%20b%2Fc%25d.txt");
        assert_eq!(percent_encode("é<".as_bytes()), "%C3%A9%3C");
    }

    #[test]
    fn folders_first_then_files_sorted_and_escaped() {
        let mut dir = file("zdir", 0);
        dir.is_dir = true;
        let page = render_listing(
            "/x&y/",
            vec![file("b.txt", 2048), file("<a>&\"q\".txt", 5), dir],
        );
        assert!(
            page.contains("<title>Directory listing for /x&amp;y/</title>"),
            "{page}"
        );
        let z = page.find("zdir/").unwrap();
        let a = page.find("&lt;a&gt;&amp;&quot;q&quot;.txt").unwrap();
        let b = page.find(">b.txt<").unwrap();
        assert!(z < a && a < b, "{page}");
        assert!(page.contains("href=\"%3Ca%3E%26%22q%22.txt\""), "{page}");
        assert!(page.contains("<td>2K</td>"), "{page}");
        assert!(!page.contains("<a>"), "{page}");
    }
}
