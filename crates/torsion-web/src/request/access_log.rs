//! The access log: one line per finished request, in the combined log format.

use torsion::transport::Address;

use super::Request;
use crate::proto::http_date;

impl Request {
    pub(super) fn log_access(&self) {
        let Some(c) = self.inner.channel.upgrade() else {
            return;
        };
        c.request_finished(&|| {
            let r = self.inner.response.borrow();
            combined_log_line(self, r.code, r.body_bytes)
        });
    }
}

/// A line in the combined log format (Apache's, as Twisted's `combinedLogFormatter`).
fn combined_log_line(req: &Request, code: u16, bytes: u64) -> String {
    let client = match req.get_client_address() {
        Address::Tcp(a) => a.ip().to_string(),
        other => other.to_string(),
    };
    let quote = |s: Option<&str>| s.unwrap_or("-").replace('"', "\\\"");
    let version = req.version().as_str();
    format!(
        "{client} - - [{}] \"{} {} {version}\" {code} {} \"{}\" \"{}\"",
        // The time the line is written, as Twisted's access log has it.
        clf_date(std::time::SystemTime::now()),
        req.method(),
        req.uri().replace('"', "%22"),
        if bytes == 0 {
            "-".to_owned()
        } else {
            bytes.to_string()
        },
        quote(req.get_header("referer")),
        quote(req.get_header("user-agent")),
    )
}

/// `22/Nov/2026:04:50:12 +0000`, from the HTTP date form.
fn clf_date(t: std::time::SystemTime) -> String {
    let d = http_date(t); // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = d.split(' ').collect();
    match parts.as_slice() {
        [_, day, month, year, time, _] => format!("{day}/{month}/{year}:{time} +0000"),
        _ => d,
    }
}
