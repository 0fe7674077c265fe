//! The known_hosts parser and policy: hostile text never panics, every form OpenSSH writes
//! is read (hashed names made by `ssh-keygen -H` included), what the client appends is what
//! `ssh-keygen -F` finds, and a changed key is refused naming the file and line.

use std::process::Command;

use proptest::prelude::*;
use russh::keys::PublicKey;
use torsion_conch::known_hosts::{
    append_known_host, hash_host_name, verify_host_key, HostKeyAccepted, HostKeyError,
    HostKeyStatus, KnownHosts, UnknownHostPolicy,
};

use crate::support::{have_ssh, TempDir};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHz+8WCTTbnMkYyMS3imwOodA4vkaDyUmGRmqDFvUsSt";
const OTHER: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN+Wjn4+4Fcvl2JlKpggT+wCRxpSvtqqpVrQrKN1/A22";

fn key(line: &str) -> PublicKey {
    PublicKey::from_openssh(line).unwrap()
}

proptest! {
    #[test]
    fn any_text_parses_without_panicking(text in "(.{0,80}\n){0,8}") {
        let file = KnownHosts::parse(&text);
        prop_assert!(file.entries().len() + file.notes().len() <= text.lines().count());
        let _ = file.check("example.org", 22, &key(KEY));
    }

    #[test]
    fn hostile_host_fields_never_panic(
        marker in proptest::option::of("@[a-z-]{0,16}"),
        hosts in "[|!*?\\[\\]:,.a-z0-9=/+]{0,60}",
        host in "[*?a-z0-9.]{0,20}",
        port in 1u16..,
    ) {
        let line = match marker {
            Some(m) => format!("{m} {hosts} {KEY}"),
            None => format!("{hosts} {KEY}"),
        };
        let file = KnownHosts::parse(&line);
        let _ = file.check(&host, port, &key(KEY));
    }

    #[test]
    fn a_listed_host_is_known_and_a_listed_other_key_is_changed(
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,6}){0,2}",
        port in 1u16..,
        comment in "[ -~]{0,30}",
        hashed in any::<bool>(),
        salt in proptest::array::uniform20(any::<u8>()),
    ) {
        let name = if hashed {
            hash_host_name(&host, port, &salt)
        } else if port == 22 {
            host.clone()
        } else {
            format!("[{host}]:{port}")
        };
        let file = KnownHosts::parse(&format!("# c\n\n{name} {KEY} {comment}\n"));
        prop_assert_eq!(file.check(&host, port, &key(KEY)), HostKeyStatus::Known { line: 3 });
        prop_assert_eq!(file.check(&host, port, &key(OTHER)), HostKeyStatus::Changed { line: 3 });
        prop_assert_eq!(file.check(&format!("x{host}"), port, &key(KEY)), HostKeyStatus::Unknown);
    }
}

#[test]
fn revoked_keys_and_cert_authorities() {
    let file = KnownHosts::parse(&format!(
        "@revoked * {KEY}\n@cert-authority *.example.org {OTHER}\nexample.org {KEY}\n"
    ));
    assert_eq!(
        file.check("example.org", 22, &key(KEY)),
        HostKeyStatus::Revoked { line: 1 }
    );
    // The cert-authority line is skipped with a note, so OTHER is not trusted by it.
    assert_eq!(file.notes().len(), 1);
    assert_eq!(file.notes()[0].0, 2);
    assert!(file.notes()[0].1.contains("cert-authority"));
    assert_eq!(
        file.check("www.example.org", 22, &key(OTHER)),
        HostKeyStatus::Unknown
    );
}

#[test]
fn policies_refuse_append_and_name_the_changed_line() {
    let dir = TempDir::new("known-hosts-policy");
    let path = dir.join("known_hosts");
    let k = key(KEY);

    let refused = verify_host_key(Some(&path), "h.test", 2222, &k, UnknownHostPolicy::Refuse);
    assert!(
        matches!(refused, Err(HostKeyError::Unknown { ref host, .. }) if host == "[h.test]:2222"),
        "{refused:?}"
    );
    assert!(!path.exists(), "Refuse writes nothing");

    let added = verify_host_key(
        Some(&path),
        "h.test",
        2222,
        &k,
        UnknownHostPolicy::AcceptNew,
    );
    assert_eq!(added, Ok(HostKeyAccepted::Added));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("[h.test]:2222 {KEY}\n"));
    assert_eq!(
        verify_host_key(Some(&path), "h.test", 2222, &k, UnknownHostPolicy::Refuse),
        Ok(HostKeyAccepted::Known { line: 1 })
    );

    // A changed key is refused even with AcceptNew, naming the file and the line.
    let changed = verify_host_key(
        Some(&path),
        "h.test",
        2222,
        &key(OTHER),
        UnknownHostPolicy::AcceptNew,
    )
    .unwrap_err();
    assert!(matches!(changed, HostKeyError::Changed { line: 1, .. }));
    let message = changed.to_string();
    assert!(
        message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}:1", path.display())),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "nothing appended"
    );

    // AcceptAny trusts it and writes nothing.
    assert_eq!(
        verify_host_key(
            Some(&path),
            "h.test",
            2222,
            &key(OTHER),
            UnknownHostPolicy::AcceptAny
        ),
        Ok(HostKeyAccepted::Unchecked)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_file_without_a_final_newline_gets_one_before_the_new_line() {
    let dir = TempDir::new("known-hosts-newline");
    let path = dir.join("known_hosts");
    std::fs::write(&path, format!("a.test {OTHER}")).unwrap();
    append_known_host(&path, "b.test", 22, &key(KEY)).unwrap();
    let file = KnownHosts::load(&path).unwrap();
    assert_eq!(
        file.check("b.test", 22, &key(KEY)),
        HostKeyStatus::Known { line: 2 }
    );
    assert_eq!(
        file.check("a.test", 22, &key(OTHER)),
        HostKeyStatus::Known { line: 1 }
    );
}

/// OpenSSH's own tools agree: `ssh-keygen -F` finds what we append, and after
/// `ssh-keygen -H` hashes the file, we still find every host.
#[test]
fn ssh_keygen_reads_what_we_write_and_we_read_what_it_hashes() {
    if !have_ssh() {
        return;
    }
    let dir = TempDir::new("known-hosts-keygen");
    let path = dir.join("known_hosts");
    append_known_host(&path, "127.0.0.1", 2222, &key(KEY)).unwrap();
    append_known_host(&path, "Server.Example.org", 22, &key(OTHER)).unwrap();
    let found = Command::new("ssh-keygen")
        .args(["-F", "[127.0.0.1]:2222", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(found.status.success(), "{found:?}");
    assert!(String::from_utf8_lossy(&found.stdout).contains(KEY));

    let hashed = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(hashed.status.success(), "{hashed:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("127.0.0.1"), "hashed: {text}");
    assert!(text.starts_with("|1|"), "{text}");
    let file = KnownHosts::load(&path).unwrap();
    assert!(file.notes().is_empty(), "{:?}", file.notes());
    assert!(matches!(
        file.check("127.0.0.1", 2222, &key(KEY)),
        HostKeyStatus::Known { .. }
    ));
    assert!(matches!(
        file.check("server.example.org", 22, &key(OTHER)),
        HostKeyStatus::Known { .. }
    ));
    assert!(matches!(
        file.check("server.example.org", 22, &key(KEY)),
        HostKeyStatus::Changed { .. }
    ));
    assert_eq!(
        file.check("127.0.0.1", 22, &key(KEY)),
        HostKeyStatus::Unknown
    );
}
