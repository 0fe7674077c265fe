//! The state machine without a socket: every reader command, posting's checks, the
//! current article, and the responses' exact bytes.

use torsion_news::{Config, Posting, Store};

use crate::support::{article, codes, core_with, talk, test_store};

/// A core over the test store with three articles posted in `local.test`.
fn with_three() -> torsion_news::ServerCore {
    let store = test_store();
    for (i, subject) in ["one", "two", "three"].iter().enumerate() {
        let mut a = article("local.test", subject, &format!("Body {i}\n.dotted\n"));
        let id = format!("Message-ID: <{subject}@example.org>\r\n");
        a.splice(0..0, id.bytes());
        store
            .post(&a, &["local.test".into()], 500 + i as i64)
            .unwrap();
    }
    core_with(Config::new("news.example"), store)
}

#[test]
fn greeting_says_whether_posting_is_allowed() {
    let mut core = torsion_news::ServerCore::new(Config::new("h"), Store::in_memory());
    assert_eq!(
        core.take_output(),
        b"200 h Torsion NNTP service ready, posting allowed\r\n"
    );
    let mut config = Config::new("h");
    config.posting = Posting::Closed;
    let mut core = torsion_news::ServerCore::new(config, Store::in_memory());
    assert!(core.take_output().starts_with(b"201 "));
    assert_eq!(
        talk(&mut core, b"MODE READER\r\nPOST\r\n"),
        "201 Reader mode, posting prohibited\r\n440 Posting not permitted\r\n"
    );
}

#[test]
fn capabilities_list_what_is_served() {
    let mut core = with_three();
    let out = talk(&mut core, b"CAPABILITIES\r\n");
    assert_eq!(
        out,
        "101 Capability list:\r\nVERSION 2\r\nREADER\r\nIMPLEMENTATION Torsion\r\nPOST\r\n\
         LIST ACTIVE NEWSGROUPS OVERVIEW.FMT HEADERS\r\nOVER MSGID\r\nHDR\r\n.\r\n"
    );
}

#[test]
fn list_variants() {
    let mut core = with_three();
    assert_eq!(
        talk(&mut core, b"LIST\r\n"),
        "215 List of newsgroups follows\r\nlocal.empty 0 1 y\r\nlocal.test 3 1 y\r\n.\r\n"
    );
    assert_eq!(
        talk(&mut core, b"list active local.t*\r\n"),
        "215 List of newsgroups follows\r\nlocal.test 3 1 y\r\n.\r\n"
    );
    assert_eq!(
        talk(&mut core, b"LIST NEWSGROUPS\r\n"),
        "215 List of newsgroups and descriptions follows\r\nlocal.empty\tNothing here\r\nlocal.test\tTesting\r\n.\r\n"
    );
    assert!(talk(&mut core, b"LIST OVERVIEW.FMT\r\n")
        .ends_with("References:\r\n:bytes\r\n:lines\r\n.\r\n"));
    assert_eq!(
        codes(&talk(&mut core, b"LIST HEADERS\r\nLIST BOGUS\r\n")),
        [215, 501]
    );
}

#[test]
fn group_and_listgroup_select_and_count() {
    let mut core = with_three();
    assert_eq!(
        talk(&mut core, b"GROUP local.test\r\n"),
        "211 3 1 3 local.test\r\n"
    );
    assert_eq!(
        talk(&mut core, b"GROUP local.empty\r\n"),
        "211 0 1 0 local.empty\r\n"
    );
    assert_eq!(
        talk(&mut core, b"GROUP nope\r\n"),
        "411 No such newsgroup\r\n"
    );
    assert_eq!(
        talk(&mut core, b"LISTGROUP local.test 2-\r\n"),
        "211 3 1 3 local.test list follows\r\n2\r\n3\r\n.\r\n"
    );
    let mut fresh = with_three();
    assert_eq!(
        talk(&mut fresh, b"LISTGROUP\r\n"),
        "412 No newsgroup selected\r\n"
    );
}

#[test]
fn article_head_body_stat_by_number_and_by_id() {
    let mut core = with_three();
    assert_eq!(
        talk(&mut core, b"ARTICLE 1\r\n"),
        "412 No newsgroup selected\r\n"
    );
    talk(&mut core, b"GROUP local.test\r\n");
    let out = talk(&mut core, b"ARTICLE\r\n");
    assert_eq!(
        out,
        "220 1 <one@example.org>\r\nMessage-ID: <one@example.org>\r\nFrom: Alice <alice@example.org>\r\n\
         Newsgroups: local.test\r\nSubject: one\r\n\r\nBody 0\r\n..dotted\r\n.\r\n"
    );
    assert_eq!(
        talk(&mut core, b"HEAD 2\r\n"),
        "221 2 <two@example.org>\r\nMessage-ID: <two@example.org>\r\nFrom: Alice <alice@example.org>\r\n\
         Newsgroups: local.test\r\nSubject: two\r\n.\r\n"
    );
    // HEAD 2 made 2 current.
    assert_eq!(
        talk(&mut core, b"BODY\r\n"),
        "222 2 <two@example.org>\r\nBody 1\r\n..dotted\r\n.\r\n"
    );
    assert_eq!(
        talk(&mut core, b"STAT <three@example.org>\r\n"),
        "223 0 <three@example.org>\r\n"
    );
    // By message-id the current article stays.
    assert_eq!(talk(&mut core, b"STAT\r\n"), "223 2 <two@example.org>\r\n");
    assert_eq!(
        talk(&mut core, b"STAT 9\r\n"),
        "423 No article with that number\r\n"
    );
    assert_eq!(
        talk(&mut core, b"STAT <nope@x>\r\n"),
        "430 No article with that message-id\r\n"
    );
    assert_eq!(
        talk(&mut core, b"GROUP local.empty\r\nSTAT\r\n"),
        "211 0 1 0 local.empty\r\n420 Current article number is invalid\r\n"
    );
}

#[test]
fn next_and_last_walk_the_group() {
    let mut core = with_three();
    let out = talk(
        &mut core,
        b"GROUP local.test\r\nLAST\r\nNEXT\r\nNEXT\r\nNEXT\r\nLAST\r\n",
    );
    assert_eq!(
        out,
        "211 3 1 3 local.test\r\n422 No previous article in this group\r\n223 2 <two@example.org> retrieved\r\n\
         223 3 <three@example.org> retrieved\r\n421 No next article in this group\r\n223 2 <two@example.org> retrieved\r\n"
    );
}

#[test]
fn over_and_hdr() {
    let mut core = with_three();
    assert_eq!(
        talk(&mut core, b"OVER 1-2\r\n"),
        "412 No newsgroup selected\r\n"
    );
    talk(&mut core, b"GROUP local.test\r\n");
    let out = talk(&mut core, b"XOVER 2-\r\n");
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines[0], "224 Overview information follows");
    assert_eq!(
        lines[1],
        "2\ttwo\tAlice <alice@example.org>\t\t<two@example.org>\t\t121\t2"
    );
    assert!(lines[2].starts_with("3\tthree\t"));
    assert_eq!(lines[3], ".");
    assert_eq!(
        talk(&mut core, b"OVER 7-9\r\n"),
        "423 No articles in that range\r\n"
    );
    assert!(talk(&mut core, b"OVER <one@example.org>\r\n")
        .starts_with("224 Overview information follows\r\n0\tone\t"));
    assert_eq!(
        talk(&mut core, b"HDR Subject 1-3\r\n"),
        "225 Headers follow\r\n1 one\r\n2 two\r\n3 three\r\n.\r\n"
    );
    assert_eq!(
        talk(&mut core, b"XHDR newsgroups <two@example.org>\r\n"),
        "221 Header follows\r\n<two@example.org> local.test\r\n.\r\n"
    );
    assert_eq!(
        talk(&mut core, b"HDR :lines 1\r\n"),
        "225 Headers follow\r\n1 2\r\n.\r\n"
    );
}

#[test]
fn post_checks_headers_adds_id_and_date_and_unstuffs() {
    let mut core = with_three();
    let out = talk(&mut core, b"POST\r\nFrom: b@example.net\r\nNewsgroups: local.test\r\nSubject: new\r\n\r\n..leading dot\r\n.\r\n");
    assert_eq!(
        out,
        "340 Send article to be posted. End with <CR-LF>.<CR-LF>\r\n240 Article received OK\r\n"
    );
    let out = talk(&mut core, b"GROUP local.test\r\nARTICLE 4\r\n");
    assert!(out.contains("220 4 <1000000."), "{out}");
    assert!(
        out.contains("\r\nPath: news.example!not-for-mail\r\nFrom: b@example.net\r\n"),
        "{out}"
    );
    assert!(
        out.contains("\r\nDate: Mon, 12 Jan 1970 13:46:40 +0000\r\n\r\n..leading dot\r\n.\r\n"),
        "{out}"
    );

    for (article, why) in [
        ("Newsgroups: local.test\r\nSubject: s\r\n\r\nx\r\n", "441 Missing From header"),
        ("From: a@b\r\nSubject: s\r\n\r\nx\r\n", "441 Missing Newsgroups header"),
        ("From: a@b\r\nNewsgroups: local.test\r\n\r\nx\r\n", "441 Missing Subject header"),
        ("From: a@b\r\nNewsgroups: nowhere\r\nSubject: s\r\n\r\nx\r\n", "441 No such newsgroup here"),
        ("From: a@b\r\nNewsgroups: local.test\r\nSubject: s\r\nMessage-ID: <one@example.org>\r\n\r\nx\r\n", "441 Duplicate article"),
        ("From: a@b\r\nNewsgroups: local.test\r\nSubject: s\r\nMessage-ID: nope\r\n\r\nx\r\n", "441 Malformed Message-ID"),
        ("not a header\r\n\r\nx\r\n", "441 Malformed header line"),
    ] {
        let out = talk(&mut core, format!("POST\r\n{article}.\r\n").as_bytes());
        assert!(out.contains(why), "{article:?}: {out}");
    }
    // Nothing of those was stored.
    assert_eq!(
        talk(&mut core, b"GROUP local.test\r\n"),
        "211 4 1 4 local.test\r\n"
    );
}

#[test]
fn crossposts_land_in_every_group_carried() {
    let mut core = with_three();
    let out = talk(
        &mut core,
        b"POST\r\nFrom: a@b\r\nNewsgroups: local.test, local.empty,elsewhere\r\nSubject: x\r\nMessage-ID: <x@b>\r\n\r\nx\r\n.\r\n",
    );
    assert!(out.ends_with("240 Article received OK\r\n"));
    assert_eq!(
        talk(&mut core, b"GROUP local.empty\r\nSTAT\r\n"),
        "211 1 1 1 local.empty\r\n223 1 <x@b>\r\n"
    );
    assert_eq!(
        talk(&mut core, b"GROUP local.test\r\n"),
        "211 4 1 4 local.test\r\n"
    );
}

#[test]
fn newgroups_date_help_quit() {
    let mut core = with_three();
    assert_eq!(
        talk(&mut core, b"NEWGROUPS 19700101 000300 GMT\r\n"),
        "231 List of new newsgroups follows\r\nlocal.empty 0 1 y\r\n.\r\n"
    );
    assert_eq!(talk(&mut core, b"DATE\r\n"), "111 19700112134640\r\n");
    let help = talk(&mut core, b"HELP\r\n");
    assert!(
        help.starts_with("100 Help text follows\r\nARTICLE")
            && help.ends_with("XOVER [range]\r\n.\r\n")
    );
    core.receive(b"QUIT\r\nDATE\r\n");
    assert_eq!(core.poll(), Some(torsion_news::Event::Close));
    assert_eq!(core.take_output(), b"205 Connection closing\r\n");
    assert_eq!(core.poll(), None);
    assert!(core.closed());
}

/// Twisted's NNTPServer answers NEWNEWS; here it is refused unless turned on.
#[test]
fn newnews_is_off_by_default() {
    let mut core = with_three();
    assert_eq!(
        talk(&mut core, b"NEWNEWS * 19700101 000000\r\n"),
        "503 NEWNEWS is disabled on this server\r\n"
    );
    let mut config = Config::new("h");
    config.newnews = true;
    let store = test_store();
    store
        .post(
            &article("local.test", "old", "x\n"),
            &["local.test".into()],
            10,
        )
        .unwrap();
    let mut a = article("local.test", "new", "x\n");
    a.splice(0..0, b"Message-ID: <new@b>\r\n".iter().copied());
    store.post(&a, &["local.test".into()], 5000).unwrap();
    let mut core = core_with(config, store);
    assert!(talk(&mut core, b"CAPABILITIES\r\n").contains("\r\nNEWNEWS\r\n"));
    assert_eq!(
        talk(&mut core, b"NEWNEWS local.* 19700101 010000\r\n"),
        "230 List of new articles follows\r\n<new@b>\r\n.\r\n"
    );
}

#[test]
fn authinfo_gates_posting_when_required() {
    let mut config = Config::new("h");
    config.auth = true;
    config.posting = Posting::AuthRequired;
    let mut core = core_with(config, test_store());
    let caps = talk(&mut core, b"CAPABILITIES\r\n");
    assert!(
        caps.contains("AUTHINFO USER\r\n") && !caps.contains("\r\nPOST\r\n"),
        "{caps}"
    );
    assert_eq!(
        talk(&mut core, b"POST\r\n"),
        "480 Authentication required to post\r\n"
    );
    assert_eq!(
        talk(&mut core, b"AUTHINFO PASS x\r\n"),
        "482 Authentication commands issued out of sequence\r\n"
    );
    assert_eq!(
        talk(&mut core, b"AUTHINFO USER alice\r\nAUTHINFO PASS wrong\r\n"),
        "381 Password required\r\n481 Authentication failed\r\n"
    );
    assert_eq!(
        talk(&mut core, b"AUTHINFO USER alice\r\nAUTHINFO PASS secret\r\nPOST\r\n"),
        "381 Password required\r\n281 Authentication accepted\r\n340 Send article to be posted. End with <CR-LF>.<CR-LF>\r\n"
    );
    assert_eq!(core.user(), Some("alice"));
    assert_eq!(
        talk(&mut core, b".\r\nAUTHINFO USER bob\r\n"),
        "441 Article has no header section\r\n502 Already authenticated\r\n"
    );
}

#[test]
fn a_pending_login_holds_further_commands() {
    let mut config = Config::new("h");
    config.auth = true;
    let mut core = core_with(config, test_store());
    core.receive(b"AUTHINFO USER u\r\nAUTHINFO PASS p w\r\nDATE\r\n");
    assert_eq!(
        core.poll(),
        Some(torsion_news::Event::Auth {
            user: "u".into(),
            password: "p w".into()
        })
    );
    assert_eq!(core.poll(), None);
    assert_eq!(core.take_output(), b"381 Password required\r\n");
    assert!(!core.auth_failed());
    assert_eq!(core.poll(), None);
    assert_eq!(
        core.take_output(),
        b"481 Authentication failed\r\n111 19700112134640\r\n"
    );
}

#[test]
fn three_failed_logins_close() {
    let mut config = Config::new("h");
    config.auth = true;
    let mut core = core_with(config, test_store());
    let out = talk(
        &mut core,
        &b"AUTHINFO USER a\r\nAUTHINFO PASS b\r\n".repeat(3),
    );
    assert!(
        out.ends_with(
            "481 Authentication failed\r\n400 Too many failed logins, closing connection\r\n"
        ),
        "{out}"
    );
    assert!(core.closed());
}

#[test]
fn unknown_and_malformed_commands() {
    let mut core = with_three();
    assert_eq!(
        talk(&mut core, b"FROB\r\nGROUP\r\nARTICLE x\r\nOVER 1-x\r\nNEWGROUPS 2026 0\r\n\r\n"),
        "500 Unknown command\r\n501 Syntax error\r\n501 Syntax error\r\n501 Syntax error\r\n501 Syntax error\r\n500 Unknown command\r\n"
    );
    // Bare LF ends a line as well.
    assert_eq!(talk(&mut core, b"DATE\n"), "111 19700112134640\r\n");
}

/// Twisted's NNTPServer takes IHAVE, CHECK, TAKETHIS and SLAVE; a reader server does not.
#[test]
fn transit_commands_are_not_served() {
    let mut core = with_three();
    assert_eq!(
        codes(&talk(
            &mut core,
            b"IHAVE <a@b>\r\nCHECK <a@b>\r\nTAKETHIS <a@b>\r\nSLAVE\r\nMODE STREAM\r\n"
        )),
        [500, 500, 500, 500, 501]
    );
    // The RFC 3977 commands Twisted lacks are answered.
    assert_eq!(
        codes(&talk(
            &mut core,
            b"GROUP local.test\r\nOVER 1\r\nHDR subject 1\r\nDATE\r\n"
        )),
        [211, 224, 225, 111]
    );
}
