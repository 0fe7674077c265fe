//! `FileAuthority`: loading BIND zone files and answering from them.
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use torsion_names::authority::FileAuthority;
use torsion_names::error::{AuthoritativeDomainError, DomainError};
use torsion_names::proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SRV, TXT};
use torsion_names::{Name, Query, RData, Record, RecordType, Resolver};

/// A zone with every record type the server serves.
pub(crate) const ZONE: &str = "\
$ORIGIN example.test.
$TTL 3600
@       IN SOA ns1 hostmaster ( 2024010101 7200 3600 1209600 300 )
@       IN NS  ns1
@       IN NS  ns2.example.test.
@       IN MX  10 mail
@       IN TXT \"v=spf1 -all\"
ns1     IN A   192.0.2.1
ns2     IN A   192.0.2.2
mail    IN A   192.0.2.25
mail    IN AAAA 2001:db8::25
www     IN CNAME mail
_sip._tcp IN SRV 10 5 5060 mail
7.2.0.192.in-addr IN PTR mail.example.test.
sub     IN NS  ns.sub
ns.sub  IN A   192.0.2.53
a.b.c   IN A   192.0.2.99
";

fn zone() -> FileAuthority {
    FileAuthority::parse(ZONE, None, "example.test.zone").expect("the test zone loads")
}

fn ask(
    a: &FileAuthority,
    name: &str,
    t: RecordType,
) -> Result<torsion_names::Answer, torsion::Failure> {
    a.query(&Query::new(Name::from_ascii(name).unwrap(), t))
        .result()
        .expect("an authority answers at once")
}

fn types(records: &[Record]) -> Vec<RecordType> {
    records.iter().map(Record::record_type).collect()
}

#[test]
fn answers_each_type_with_ns_in_authority_and_glue_in_additional() {
    let a = zone();
    let mx = ask(&a, "example.test.", RecordType::MX).unwrap();
    assert_eq!(types(&mx.answers), [RecordType::MX]);
    assert_eq!(types(&mx.authority), [RecordType::NS, RecordType::NS]);
    // mail's A and AAAA, ns1's and ns2's A.
    let glue: Vec<String> = mx.additional.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(mx.additional.len(), 4, "{glue:?}");
    for (name, t) in [
        ("example.test.", RecordType::TXT),
        ("example.test.", RecordType::SOA),
        ("example.test.", RecordType::NS),
        ("ns1.example.test.", RecordType::A),
        ("mail.example.test.", RecordType::AAAA),
        ("_sip._tcp.example.test.", RecordType::SRV),
        ("7.2.0.192.in-addr.example.test.", RecordType::PTR),
    ] {
        let answer = ask(&a, name, t).unwrap();
        let mut got = types(&answer.answers);
        got.dedup();
        assert_eq!(got, [t], "{name} {t}");
    }
    let any = ask(&a, "mail.example.test.", RecordType::ANY).unwrap();
    assert_eq!(types(&any.answers), [RecordType::A, RecordType::AAAA]);
}

#[test]
fn a_cname_is_in_the_answer_and_followed() {
    let a = zone();
    let answer = ask(&a, "WWW.Example.Test.", RecordType::A).unwrap();
    assert_eq!(types(&answer.answers), [RecordType::CNAME, RecordType::A]);
    assert_eq!(
        answer.answers[1].data,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 25)))
    );
    let cname = ask(&a, "www.example.test.", RecordType::CNAME).unwrap();
    assert_eq!(types(&cname.answers), [RecordType::CNAME]);
}

#[test]
fn a_delegation_is_a_referral_with_glue() {
    let a = zone();
    let answer = ask(&a, "host.sub.example.test.", RecordType::A).unwrap();
    assert!(answer.answers.is_empty());
    assert_eq!(types(&answer.authority), [RecordType::NS]);
    assert_eq!(
        answer.additional[0].data,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 53)))
    );
}

#[test]
fn nodata_and_empty_non_terminals_carry_the_soa() {
    let a = zone();
    for (name, t) in [
        ("ns1.example.test.", RecordType::MX),
        ("b.c.example.test.", RecordType::A),
    ] {
        let answer = ask(&a, name, t).unwrap();
        assert!(answer.answers.is_empty(), "{name}");
        assert_eq!(types(&answer.authority), [RecordType::SOA], "{name}");
    }
}

#[test]
fn a_missing_name_is_authoritative_with_the_soa_and_a_foreign_one_is_not() {
    let a = zone();
    let missing = ask(&a, "nope.example.test.", RecordType::A).unwrap_err();
    let nx = missing
        .downcast_ref::<AuthoritativeDomainError>()
        .expect("NXDOMAIN");
    assert_eq!(
        nx.1.as_ref().map(Record::record_type),
        Some(RecordType::SOA)
    );
    let foreign = ask(&a, "example.org.", RecordType::A).unwrap_err();
    assert!(foreign.check::<DomainError>());
    let parent = ask(&a, "test.", RecordType::A).unwrap_err();
    assert!(parent.check::<DomainError>());
}

/// NXDOMAIN and "not my zone" are ordinary answers, one per query: their failures never
/// capture a backtrace, even with `RUST_BACKTRACE=1` (which made torsiond dns spend most of
/// an NXDOMAIN query unwinding the stack). Checked in a child process of this test binary
/// with the variable set, since std reads it once per process.
#[test]
fn missing_and_foreign_names_capture_no_backtrace() {
    const VAR: &str = "TORSION_AUTHORITY_BACKTRACE_CHILD";
    if std::env::var_os(VAR).is_some() {
        let a = zone();
        assert!(torsion::Failure::new(std::io::Error::other("x")).has_backtrace());
        assert!(!ask(&a, "nope.example.test.", RecordType::A)
            .unwrap_err()
            .has_backtrace());
        assert!(!ask(&a, "example.org.", RecordType::A)
            .unwrap_err()
            .has_backtrace());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "authority::missing_and_foreign_names_capture_no_backtrace",
            "--exact",
            "--test-threads=1",
        ])
        .env(VAR, "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("cannot re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn load_errors_name_the_file_and_line() {
    let text = "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns1 hm 1 2 3 4 5\nok IN A 192.0.2.1\nbad IN A 300.1.2.3\n";
    let e = FileAuthority::parse(text, None, "z.zone").unwrap_err();
    assert_eq!((e.source.as_str(), e.line), ("z.zone", Some(5)), "{e}");
    assert!(e.to_string().starts_with("z.zone:5: "), "{e}");
    let no_soa = FileAuthority::parse("$ORIGIN example.test.\nx 60 IN A 192.0.2.1\n", None, "z")
        .unwrap_err();
    assert!(no_soa.message.contains("no SOA"), "{no_soa}");
    let dir = std::env::temp_dir().join(format!("torsion-names-zone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = FileAuthority::load(dir.join("absent.zone")).unwrap_err();
    assert!(missing.to_string().contains("absent.zone"), "{missing}");
}

#[test]
fn a_file_without_origin_is_named_after_the_file_as_twisted_does() {
    let dir = std::env::temp_dir().join(format!("torsion-names-origin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("example.net");
    std::fs::write(
        &path,
        "@ 60 IN SOA ns hm 1 2 3 4 5\nwww 60 IN A 192.0.2.80\n",
    )
    .unwrap();
    let a = FileAuthority::load(&path).unwrap();
    assert_eq!(a.origin().to_string(), "example.net.");
    assert_eq!(
        ask(&a, "www.example.net.", RecordType::A)
            .unwrap()
            .answers
            .len(),
        1
    );
}

#[test]
fn the_transfer_starts_and_ends_with_the_soa() {
    let records = zone().transfer();
    assert_eq!(
        records.first().map(Record::record_type),
        Some(RecordType::SOA)
    );
    assert_eq!(
        records.last().map(Record::record_type),
        Some(RecordType::SOA)
    );
    assert_eq!(records.len(), 16);
}

/// Makes generated records a valid zone: one TTL per name and type (an RRset has one), no
/// repeated data, and a CNAME alone at its name and never at the apex (RFC 1034 3.6.2).
fn valid_zone(records: Vec<Record>) -> Vec<Record> {
    let apex = Name::from_ascii("zone.test.").unwrap();
    let mut out: Vec<Record> = Vec::new();
    for mut r in records {
        let is_cname = r.record_type() == RecordType::CNAME;
        let clash = out.iter().any(|o| {
            o.name == r.name && (is_cname || o.record_type() == RecordType::CNAME) || o == &r
        });
        if clash || (is_cname && r.name == apex) {
            continue;
        }
        if let Some(o) = out
            .iter()
            .find(|o| o.name == r.name && o.record_type() == r.record_type())
        {
            r.ttl = o.ttl;
        }
        out.push(r);
    }
    out
}

fn label() -> impl Strategy<Value = String> + Clone {
    "[a-z0-9][a-z0-9-]{0,10}"
}

fn record() -> impl Strategy<Value = Record> {
    let origin = Name::from_ascii("zone.test.").unwrap();
    let name = prop::collection::vec(label(), 0..3).prop_map(move |labels| {
        let mut n = origin.clone();
        for l in labels {
            n = Name::from_ascii(&l).unwrap().append_domain(&n).unwrap();
        }
        n
    });
    let target = label().prop_map(|l| Name::from_ascii(format!("{l}.zone.test.")).unwrap());
    let data = prop_oneof![
        any::<u32>().prop_map(|a| RData::A(A(Ipv4Addr::from(a)))),
        any::<u128>().prop_map(|a| RData::AAAA(AAAA(Ipv6Addr::from(a)))),
        (any::<u16>(), target.clone()).prop_map(|(p, t)| RData::MX(MX::new(p, t))),
        prop::collection::vec("[ -~]{0,40}", 1..3).prop_map(|t| RData::TXT(TXT::new(t))),
        target.clone().prop_map(|t| RData::NS(NS(t))),
        target.clone().prop_map(|t| RData::CNAME(CNAME(t))),
        target.clone().prop_map(|t| RData::PTR(PTR(t))),
        (any::<u16>(), any::<u16>(), any::<u16>(), target)
            .prop_map(|(p, w, port, t)| RData::SRV(SRV::new(p, w, port, t))),
    ];
    (name, 0u32..=0x7fff_ffff, data).prop_map(|(n, ttl, d)| Record::from_rdata(n, ttl, d))
}

proptest! {
    #[test]
    fn the_loader_never_panics(text in "[ -~\n\t();$@\"\\\\]{0,300}") {
        let _ = FileAuthority::parse(&text, None, "fuzz");
        let origin = Name::from_ascii("example.test.").ok();
        let _ = FileAuthority::parse(&text, origin, "fuzz");
    }

    #[test]
    fn records_written_as_zone_text_load_back_equal(records in prop::collection::vec(record(), 0..12)) {
        let origin = Name::from_ascii("zone.test.").unwrap();
        let soa = FileAuthority::parse(
            "$ORIGIN zone.test.\n@ 300 IN SOA ns hostmaster 7 3600 600 86400 60\n", None, "soa",
        ).unwrap().soa().clone();
        let mut all = vec![soa];
        all.extend(valid_zone(records));
        let a = FileAuthority::from_records(origin, all).unwrap();
        let text = a.to_zone_text();
        let back = FileAuthority::parse(&text, None, "written").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let mut want: Vec<(String, u32)> = a.records().map(|r| (r.to_string(), r.ttl)).collect();
        let mut got: Vec<(String, u32)> = back.records().map(|r| (r.to_string(), r.ttl)).collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want, "{}", text);
    }
}

/// A zone with wildcards (RFC 4592's section 2.2.1 example, abridged).
pub(crate) const WILD_ZONE: &str = "\
$ORIGIN example.test.
$TTL 3600
@       IN SOA ns1 hostmaster ( 1 7200 3600 1209600 300 )
@       IN NS  ns1
ns1     IN A   192.0.2.1
*       IN TXT \"this is a wildcard\"
*       IN MX  10 host1
host1   IN A   192.0.2.10
_ssh._tcp.host1 IN SRV 0 0 22 host1
sub.*   IN TXT \"below a wildcard\"
subdel  IN NS  ns.subdel
ns.subdel IN A 192.0.2.53
";

fn wild() -> FileAuthority {
    FileAuthority::parse(WILD_ZONE, None, "wild.zone").expect("the wildcard zone loads")
}

#[test]
fn a_wildcard_answers_for_names_that_do_not_exist_with_their_name_as_owner() {
    let z = wild();
    for name in [
        "host3.example.test.",
        "foo.bar.example.test.",
        "Mixed.Example.TEST.",
    ] {
        let answer = ask(&z, name, RecordType::MX).unwrap();
        assert_eq!(answer.answers.len(), 1, "{name}");
        assert_eq!(
            answer.answers[0].name.to_string(),
            name,
            "the owner is the name asked"
        );
        assert!(matches!(answer.answers[0].data, RData::MX(_)));
        // The MX target's address comes along, as for any MX.
        assert!(
            answer
                .additional
                .iter()
                .any(|r| r.name.to_string() == "host1.example.test."),
            "{name}: {answer:?}"
        );
        // A type the wildcard does not have: NODATA, not NXDOMAIN.
        let answer = ask(&z, name, RecordType::A).unwrap();
        assert!(answer.answers.is_empty(), "{name}");
        assert!(matches!(answer.authority[0].data, RData::SOA(_)), "{name}");
    }
}

#[test]
fn a_wildcard_does_not_answer_for_names_that_exist_or_below_them() {
    let z = wild();
    // host1 exists: its own records, never the wildcard's.
    let answer = ask(&z, "host1.example.test.", RecordType::MX).unwrap();
    assert!(answer.answers.is_empty(), "NODATA for an existing name");
    // _tcp.host1 is an empty non-terminal: it exists too.
    let answer = ask(&z, "_tcp.host1.example.test.", RecordType::TXT).unwrap();
    assert!(
        answer.answers.is_empty(),
        "NODATA for an empty non-terminal"
    );
    // Below an existing name with no wildcard of its own: NXDOMAIN (the closest encloser,
    // host1, has no `*`).
    let failure = ask(&z, "_telnet._tcp.host1.example.test.", RecordType::A).unwrap_err();
    assert!(failure.check::<AuthoritativeDomainError>());
    let failure = ask(&z, "nope.host1.example.test.", RecordType::TXT).unwrap_err();
    assert!(failure.check::<AuthoritativeDomainError>());
    // The wildcard itself asked by name: its records, owner `*`.
    let answer = ask(&z, "*.example.test.", RecordType::TXT).unwrap();
    assert_eq!(answer.answers[0].name.to_string(), "*.example.test.");
    // Below a delegation: a referral, not the wildcard.
    let answer = ask(&z, "foo.subdel.example.test.", RecordType::TXT).unwrap();
    assert!(answer.answers.is_empty() && matches!(answer.authority[0].data, RData::NS(_)));
}
