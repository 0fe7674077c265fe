//! resolv.conf: parsing, defaults, and when it is read again.

use std::net::SocketAddr;
use std::rc::Rc;

use proptest::prelude::*;
use torsion::testing::Clock;
use torsion::Reactor;
use torsion_names::client::ClientResolver;
use torsion_names::resolv_conf::{ResolvConf, ResolvConfFile, RELOAD_INTERVAL};

use super::TempFile;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn without_a_nameserver_line_the_server_is_localhost_as_glibc() {
    for text in [
        "",
        "# nothing\n",
        "nameserver not-an-address\n",
        "search example.com\n",
    ] {
        assert_eq!(ResolvConf::parse(text).nameservers, [addr("127.0.0.1:53")]);
    }
}

#[test]
fn reads_servers_search_and_options() {
    let conf = ResolvConf::parse(
        "; comment\nnameserver 192.0.2.1 # first\nnameserver fe80::53%eth0\n\
         nameserver 192.0.2.3\nnameserver 192.0.2.4\ndomain first.example\n\
         search a.example b.example.\noptions ndots:2 timeout:0 attempts:9 rotate\n",
    );
    assert_eq!(
        conf.nameservers,
        [
            addr("192.0.2.1:53"),
            addr("[fe80::53]:53"),
            addr("192.0.2.3:53")
        ],
        "at most three servers, as glibc"
    );
    assert_eq!(conf.search, ["a.example", "b.example"]);
    assert_eq!(conf.ndots, 2);
    assert_eq!(
        (conf.timeout, conf.attempts),
        (Some(1), Some(5)),
        "glibc's bounds"
    );
    assert_eq!(conf.timeouts(), Some(vec![1.0; 5]));
    assert_eq!(
        ResolvConf::parse("domain x.example\n").search,
        ["x.example"]
    );
    assert_eq!(ResolvConf::parse("nameserver 192.0.2.1\n").timeouts(), None);
}

#[test]
fn the_file_is_looked_at_again_once_the_interval_has_passed() {
    let file = TempFile::new("resolv.conf", "nameserver 192.0.2.1\n");
    let mut conf = ResolvConfFile::open(&file.path, 0.0);
    assert_eq!(conf.current(0.0).nameservers, [addr("192.0.2.1:53")]);
    file.rewrite("nameserver 192.0.2.2\n");
    assert_eq!(
        conf.current(RELOAD_INTERVAL - 1.0).nameservers,
        [addr("192.0.2.1:53")],
        "not looked at before the interval"
    );
    assert_eq!(
        conf.current(RELOAD_INTERVAL).nameservers,
        [addr("192.0.2.2:53")]
    );
    std::fs::remove_file(&file.path).unwrap();
    assert_eq!(
        conf.current(2.0 * RELOAD_INTERVAL).nameservers,
        [addr("127.0.0.1:53")],
        "a missing file reads as an empty one, as in Twisted"
    );
}

#[test]
fn the_client_follows_the_file_by_its_clock() {
    let reactor = Reactor::new();
    let file = TempFile::new(
        "resolv.conf",
        "nameserver 192.0.2.1\noptions timeout:2 attempts:3\n",
    );
    let client = ClientResolver::from_resolv_conf(&reactor, &file.path);
    let clock = Rc::new(Clock::new());
    client.set_clock(clock.clone());
    assert_eq!(client.servers(), [addr("192.0.2.1:53")]);
    assert_eq!(client.timeouts(), [2.0, 2.0, 2.0]);
    file.rewrite("nameserver 2001:db8::1\n");
    clock.advance(RELOAD_INTERVAL);
    assert_eq!(client.servers(), [addr("[2001:db8::1]:53")]);
    assert_eq!(
        client.timeouts(),
        [1.0, 3.0, 11.0, 45.0],
        "Twisted's, with no options"
    );
}

proptest! {
    #[test]
    fn the_parser_never_panics(text in "\\PC*") {
        let conf = ResolvConf::parse(&text);
        prop_assert!(!conf.nameservers.is_empty() && conf.nameservers.len() <= 3);
    }

    #[test]
    fn the_parser_never_panics_on_option_lines(text in "(options|nameserver|search) [a-z0-9:.%]{0,40}") {
        let _ = ResolvConf::parse(&text);
    }
}
