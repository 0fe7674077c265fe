//! resolv.conf's search list and `ndots`, applied as glibc's `res_search`: the names tried
//! and their order (from a fake resolv.conf), and lookups against a Torsion authority.

use std::net::Ipv4Addr;

use torsion::Failure;
use torsion::Reactor;
use torsion_names::client::ClientResolver;
use torsion_names::error::{DnsNameError, DnsQueryRefusedError};
use torsion_names::{Name, RData, Resolver};

use super::{serve_zone, TempFile};
use crate::authority::ZONE;

fn names(client: &ClientResolver, name: &str) -> Vec<String> {
    client
        .search_names(&Name::from_utf8(name).unwrap())
        .iter()
        .map(Name::to_string)
        .collect()
}

#[test]
fn the_search_list_and_ndots_come_from_resolv_conf() {
    let reactor = Reactor::new();
    let file = TempFile::new(
        "resolv.conf",
        "nameserver 192.0.2.1\nsearch a.test b.test.\noptions ndots:2\n",
    );
    let client = ClientResolver::from_resolv_conf(&reactor, &file.path);
    // Fewer dots than ndots: the search list first, the name as it is last.
    assert_eq!(names(&client, "db"), ["db.a.test.", "db.b.test.", "db."]);
    assert_eq!(
        names(&client, "db.eu"),
        ["db.eu.a.test.", "db.eu.b.test.", "db.eu."]
    );
    // As many dots or more: as it is first.
    assert_eq!(
        names(&client, "db.eu.west"),
        ["db.eu.west.", "db.eu.west.a.test.", "db.eu.west.b.test."]
    );
    // A trailing dot: absolute, no search.
    assert_eq!(names(&client, "db.eu."), ["db.eu."]);

    // `domain` is a one-domain search list; without options, ndots is 1.
    let file = TempFile::new("resolv.conf", "nameserver 192.0.2.1\ndomain lab.test\n");
    let client = ClientResolver::from_resolv_conf(&reactor, &file.path);
    assert_eq!(names(&client, "db"), ["db.lab.test.", "db."]);
    assert_eq!(names(&client, "db.eu"), ["db.eu.", "db.eu.lab.test."]);

    // No search list: the name alone.
    let client = ClientResolver::new(&reactor, vec![]);
    assert_eq!(names(&client, "db"), ["db."]);
}

fn first_a(answer: &torsion_names::Answer) -> (String, Ipv4Addr) {
    let r = answer
        .answers
        .iter()
        .find(|r| matches!(r.data, RData::A(_)))
        .expect("an A record");
    let RData::A(a) = &r.data else { unreachable!() };
    (r.name.to_string(), a.0)
}

#[torsion::test(timeout = 20)]
async fn lookups_go_through_the_search_list_against_a_torsion_authority() -> Result<(), Failure> {
    let r = torsion::reactor();
    let (port, addr) = serve_zone(&r, ZONE);
    let client = ClientResolver::new(&r, vec![addr]);
    // "nowhere.example.test" is in the zone and does not exist: NXDOMAIN, so the search
    // moves on to the next domain.
    client.set_search(&["nowhere.example.test", "example.test"], 1);

    // No dot: the search list, the first domain NXDOMAIN, the second answers.
    let answer = client.lookup_address("mail").await?;
    assert_eq!(
        first_a(&answer),
        (
            "mail.example.test.".to_owned(),
            Ipv4Addr::new(192, 0, 2, 25)
        )
    );

    // get_host_by_name follows the name the search found.
    assert_eq!(
        client.get_host_by_name("mail").await?,
        std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25))
    );

    // Two dots, ndots 1: asked as it is first; this server refuses names it does not serve,
    // and a refusal ends the search, as in glibc.
    let failure = client.lookup_address("a.b.c").await.unwrap_err();
    assert!(failure.check::<DnsQueryRefusedError>(), "{failure:?}");
    // With ndots 3 the same name goes through the search list first.
    client.set_search(&["nowhere.example.test", "example.test"], 3);
    let answer = client.lookup_address("a.b.c").await?;
    assert_eq!(
        first_a(&answer),
        (
            "a.b.c.example.test.".to_owned(),
            Ipv4Addr::new(192, 0, 2, 99)
        )
    );

    // A trailing dot is absolute: no search.
    let failure = client.lookup_address("mail.").await.unwrap_err();
    assert!(failure.check::<DnsQueryRefusedError>(), "{failure:?}");
    // A name found under no domain: the NXDOMAIN of the last name asked.
    client.set_search(&["nowhere.example.test"], 1);
    let failure = client
        .lookup_address("nope.example.test")
        .await
        .unwrap_err();
    assert!(failure.check::<DnsNameError>(), "{failure:?}");
    port.stop_listening();
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn create_resolvers_chain_and_the_reactor_search_too() -> Result<(), Failure> {
    use std::net::IpAddr;
    use torsion_names::client::{create_resolver, NameResolver};

    let r = torsion::reactor();
    let (port, addr) = serve_zone(&r, ZONE);
    let conf = TempFile::new(
        "resolv.conf",
        "nameserver 192.0.2.1\nsearch nowhere.example.test example.test\n",
    );
    // "mail" is also in the hosts file under another name only: the file does not have it.
    let hosts = TempFile::new("hosts", "192.0.2.80 local\n192.0.2.81 mail.elsewhere\n");
    let resolver = create_resolver(&r, Some(vec![addr]), Some(&conf.path), Some(&hosts.path));
    // Through the chain (hosts, cache, client): the search list finds mail.example.test.
    assert_eq!(
        resolver.get_host_by_name("mail").await?,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25))
    );
    // A name the hosts file has as given is answered from it, not searched.
    assert_eq!(
        resolver.get_host_by_name("local").await?,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80))
    );
    // A trailing dot is absolute: this server refuses `mail.`, the chain gives up.
    assert!(resolver.get_host_by_name("mail.").await.is_err());

    // The chain as the reactor's resolver: a connect to "mail" finds mail.example.test
    // (its AAAA first, as getaddrinfo orders them).
    r.install_name_resolver(NameResolver::new(resolver));
    assert_eq!(r.resolve("mail").await?, "2001:db8::25".parse::<IpAddr>()?);
    port.stop_listening();
    Ok(())
}
