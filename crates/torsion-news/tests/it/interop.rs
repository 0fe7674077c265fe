//! Interop with an NNTP client nobody here wrote: Python 3.11's `nntplib` (deprecated, but in
//! the standard library until 3.13) against the server over a folder store: LIST, LIST
//! NEWSGROUPS, GROUP, OVER, ARTICLE/HEAD/BODY/STAT by number and message-id, NEXT, XHDR,
//! DATE, NEWNEWS refused, POST (with AUTHINFO through a portal), each article compared byte
//! for byte with the file the store wrote.
//!
//! A Debian newsreader, slrn, is driven under tmux against `torsiond news` in
//! `crates/torsiond/tests/it/news_plugin.rs`.

use std::process::{Command, Stdio};

use torsion::testing::{skip, Missing};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_news::{NewsRealm, NntpFactory, Store};

use crate::support::{with_server, TempDir};

const NNTPLIB: &str = r#"
import nntplib, sys, datetime
port, mode, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
kw = dict(user="alice", password="wonderland", usenetrc=False) if mode == "auth" else {}
s = nntplib.NNTP("127.0.0.1", port, timeout=30, **kw)
print("welcome", s.getwelcome()[:3])
caps = s.getcapabilities()
print("caps", " ".join(sorted(caps)))
if mode == "auth":
    assert "POST" in caps and "AUTHINFO" not in caps, caps
resp, groups = s.list()
print("list", ";".join(f"{g.group} {g.last} {g.first} {g.flag}" for g in groups))
resp, descs = s.descriptions("local.*")
print("descriptions", ";".join(f"{k}={v}" for k, v in sorted(descs.items())))
art = sys.stdin.buffer.read()
print("post", s.post(art))
# A second article without Message-ID or Date: the server adds both.
print("post2", s.post(b"From: bob@example.net\nNewsgroups: local.test\nSubject: second\n\nHi\n"))
resp, count, first, last, name = s.group("local.test")
print("group", resp[:3], count, first, last, name)
resp, overviews = s.over((first, last))
for n, o in overviews:
    print("over", n, o["subject"], o["from"], o["message-id"], o[":bytes"], o[":lines"])
resp, info = s.article("<interop@example.org>")
on_disk = open(f"{root}/local.test/{first}", "rb").read()
print("article-by-id", resp[:3], info.number, info.message_id, b"".join(l + b"\r\n" for l in info.lines) == on_disk)
resp, info = s.article(last)
on_disk = open(f"{root}/local.test/{last}", "rb").read()
print("article-by-number", info.number, b"".join(l + b"\r\n" for l in info.lines) == on_disk)
print("has-date-and-id", any(l.startswith(b"Date: ") for l in info.lines), any(l.startswith(b"Message-ID: <") for l in info.lines))
resp, info = s.head(first)
print("head", info.lines[-1].decode())
resp, info = s.body("<interop@example.org>")
print("body", repr(b"\n".join(info.lines)))
print("stat", s.stat(first))
print("next", s.next()[:2])
resp, hdrs = s.xhdr("subject", f"{first}-{last}")
print("xhdr", hdrs)
print("date", s.date()[1].year >= 2026)
try:
    s.newnews("local.test", datetime.datetime(2000, 1, 1))
    print("newnews answered")
except nntplib.NNTPError as e:
    print("newnews", str(e)[:3])
try:
    s.group("no.such.group")
except nntplib.NNTPTemporaryError as e:
    print("missing", str(e)[:3])
print("quit", s.quit()[:3])
"#;

const ARTICLE: &[u8] = b"From: Alice <alice@example.org>\nNewsgroups: local.test\nSubject: interop\n\
Message-ID: <interop@example.org>\n\nHello,\n.a line starting with a dot\n..and two\n\nbytes: \xc3\xa9t\xc3\xa9\n";

fn python_has_nntplib() -> bool {
    Command::new("python3")
        .args(["-W", "ignore", "-c", "import nntplib"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(factory: NntpFactory, mode: &'static str, root: String) -> String {
    with_server(factory, move |port| {
        use std::io::Write;
        let mut child = Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-c",
                NNTPLIB,
                &port.to_string(),
                mode,
                &root,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(ARTICLE).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nntplib failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
}

fn check(out: &str) {
    let expected = [
        "caps HDR IMPLEMENTATION LIST OVER POST READER VERSION",
        "list local.empty 0 1 y;local.test 0 1 y",
        "descriptions local.empty=Nothing here;local.test=Testing",
        "post 240 Article received OK",
        "post2 240 Article received OK",
        "group 211 2 1 2 local.test",
        "over 1 interop Alice <alice@example.org> <interop@example.org> 248 5",
        "article-by-id 220 0 <interop@example.org> True",
        "article-by-number 2 True",
        "has-date-and-id True True",
        "body b'Hello,\\n.a line starting with a dot\\n..and two\\n\\nbytes: \\xc3\\xa9t\\xc3\\xa9'",
        "stat ('223 1 <interop@example.org>', 1, '<interop@example.org>')",
        "xhdr [('1', 'interop'), ('2', 'second')]",
        "date True",
        "newnews 503",
        "missing 411",
        "quit 205",
    ];
    for line in expected {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("over 2 second bob@example.net <")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("next ('223 2 <")),
        "{out}"
    );
    // The Date header the server added is the last of the headers.
    assert!(
        out.lines()
            .any(|l| l.starts_with("head Date: ") && l.ends_with(" +0000")),
        "{out}"
    );
}

fn store(root: &std::path::Path) -> Store {
    let store = Store::open(root).unwrap();
    store.create_group("local.test", "Testing", 0).unwrap();
    store
        .create_group("local.empty", "Nothing here", 0)
        .unwrap();
    store
}

#[test]
fn nntplib_reads_and_posts() {
    if !python_has_nntplib() {
        return skip(
            Missing::Peer,
            "python3 with nntplib (3.12 or older) is not installed",
        );
    }
    let dir = TempDir::new("nntplib");
    let factory = NntpFactory::new("news.example", store(dir.path()));
    let out = run(factory, "open", dir.path().display().to_string());
    assert!(out.starts_with("welcome 200\n"), "{out}");
    check(&out);
}

#[test]
fn nntplib_logs_in_with_authinfo_to_post() {
    if !python_has_nntplib() {
        return skip(
            Missing::Peer,
            "python3 with nntplib (3.12 or older) is not installed",
        );
    }
    let dir = TempDir::new("nntplib-auth");
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "wonderland");
    let portal = Portal::new(NewsRealm);
    portal.register_checker(users);
    let factory = NntpFactory::new("news.example", store(dir.path())).portal(portal);
    let out = run(factory, "auth", dir.path().display().to_string());
    assert!(out.starts_with("welcome 201\n"), "{out}");
    check(&out);
}
