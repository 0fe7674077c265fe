//! The facade reaches every battery by the paths its docs and the README give, so a user who
//! depends on `torsion` alone finds Site, Agent, ConnectionPool and IrcClient there.

#[test]
fn the_core_is_at_the_root() {
    let d = torsion::defer::succeed(2);
    assert_eq!(d.result().and_then(|r| r.ok()), Some(2));
    let _: fn() -> torsion::testing::Clock = torsion::testing::Clock::new;
}

#[cfg(feature = "web")]
#[test]
fn the_web_is_torsion_web() {
    let name = std::any::type_name::<torsion::web::Site>();
    assert!(name.starts_with("torsion_web::"), "{name}");
    let _ = std::any::type_name::<torsion::web::static_file::File>();
    let _ = std::any::type_name::<torsion::web::client::Agent>();
}

#[cfg(feature = "db")]
#[test]
fn databases_are_torsion_db() {
    let name = std::any::type_name::<torsion::db::ConnectionPool>();
    assert!(name.starts_with("torsion_db::"), "{name}");
}

#[cfg(feature = "words")]
#[test]
fn chat_is_torsion_words() {
    struct Bot;
    let name = std::any::type_name::<torsion::words::irc::IrcClient<Bot>>();
    assert!(name.starts_with("torsion_words::"), "{name}");
}
