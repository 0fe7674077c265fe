//! The hosts-file resolver (Twisted's `names.hosts.Resolver`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use torsion_names::error::DomainError;
use torsion_names::hosts::{HostsResolver, HostsTable};
use torsion_names::{RData, Resolver};

use super::TempFile;

const HOSTS: &str = "\
# comment line
127.0.0.1   localhost
192.0.2.10  Web.Example.test web   # trailing comment
2001:db8::10 web.example.test
fe80::1%eth0 linklocal.test
not-an-ip   ignored.test
192.0.2.11
";

fn ips(answer: &torsion_names::Answer) -> Vec<IpAddr> {
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn answers_a_and_aaaa_from_the_file_case_insensitively() {
    let file = TempFile::new("hosts", HOSTS);
    let hosts = HostsResolver::new(&file.path);
    let a = hosts
        .lookup_address("WEB.example.test.")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(ips(&a), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
    assert_eq!(a.answers[0].ttl, 3600);
    let aaaa = hosts
        .lookup_ipv6_address("web.example.test")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(ips(&aaaa), ["2001:db8::10".parse::<IpAddr>().unwrap()]);
    let alias = hosts.lookup_address("web").result().unwrap().unwrap();
    assert_eq!(ips(&alias), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
    let zone = hosts
        .lookup_ipv6_address("linklocal.test")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(
        ips(&zone),
        [IpAddr::V6("fe80::1".parse::<Ipv6Addr>().unwrap())]
    );
    let both = hosts
        .lookup_all_records("web.example.test")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(both.answers.len(), 2);
}

#[test]
fn names_it_does_not_list_fail_with_domain_error_so_a_chain_moves_on() {
    let file = TempFile::new("hosts", HOSTS);
    let hosts = HostsResolver::new(&file.path);
    for d in [
        hosts.lookup_address("elsewhere.test"),
        hosts.lookup_address("ignored.test"),
        hosts.lookup_ipv6_address("localhost"),
        hosts.lookup_mail_exchange("web.example.test"),
    ] {
        assert!(d.result().unwrap().unwrap_err().check::<DomainError>());
    }
    let missing = HostsResolver::new(file.path.with_file_name("no-such-file"));
    assert!(missing
        .lookup_address("localhost")
        .result()
        .unwrap()
        .unwrap_err()
        .check::<DomainError>());
}

#[test]
fn answers_pointer_queries_with_the_first_name() {
    let file = TempFile::new("hosts", HOSTS);
    let hosts = HostsResolver::new(&file.path);
    let ptr = hosts
        .lookup_pointer("10.2.0.192.in-addr.arpa")
        .result()
        .unwrap()
        .unwrap();
    match &ptr.answers[0].data {
        RData::PTR(name) => assert_eq!(name.0.to_string(), "web.example.test."),
        other => panic!("not a PTR: {other:?}"),
    }
    assert!(hosts
        .lookup_pointer("99.2.0.192.in-addr.arpa")
        .result()
        .unwrap()
        .unwrap_err()
        .check::<DomainError>());
}

#[test]
fn reads_the_file_again_when_it_changes() {
    let file = TempFile::new("hosts", "192.0.2.1 moving.test\n");
    let hosts = HostsResolver::new(&file.path);
    let first = hosts
        .lookup_address("moving.test")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(ips(&first), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
    file.rewrite("192.0.2.2 moving.test\n192.0.2.3 new.test\n");
    let second = hosts
        .lookup_address("moving.test")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(ips(&second), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))]);
    assert!(hosts.lookup_address("new.test").result().unwrap().is_ok());
    std::fs::remove_file(&file.path).unwrap();
    assert!(hosts.lookup_address("new.test").result().unwrap().is_err());
}

proptest! {
    #[test]
    fn the_parser_never_panics(text in "\\PC*") {
        let _ = HostsTable::parse(&text);
    }

    #[test]
    fn the_parser_never_panics_on_hostslike_lines(
        lines in proptest::collection::vec("[0-9a-f.:%# \t]{0,30}[ \t][a-zA-Z0-9.#-]{0,20}", 0..20)
    ) {
        let _ = HostsTable::parse(&lines.join("\n"));
    }

    #[test]
    fn every_well_formed_line_is_found(
        entries in proptest::collection::vec((any::<[u8; 4]>(), "[a-z][a-z0-9-]{0,10}(\\.[a-z]{1,5}){0,2}"), 1..10)
    ) {
        let text: String = entries
            .iter()
            .map(|(ip, name)| format!("{} {name}\n", Ipv4Addr::from(*ip)))
            .collect();
        let table = HostsTable::parse(&text);
        for (ip, name) in &entries {
            prop_assert!(table.addresses(name).contains(&IpAddr::V4(Ipv4Addr::from(*ip))));
        }
    }
}
