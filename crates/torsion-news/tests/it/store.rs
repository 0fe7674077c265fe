//! The folder store: one folder per group, one file per article, atomic writes, and the
//! index rebuilt from the files when opened again.

use torsion_news::Store;

use crate::support::{article, TempDir};

#[test]
fn articles_are_files_named_by_number_and_survive_a_reopen() {
    let dir = TempDir::new("store");
    let store = Store::open(dir.path()).unwrap();
    store.create_group("local.test", "Testing", 100).unwrap();
    store.create_group("local.other", "", 100).unwrap();
    let a = article("local.test,local.other", "hello", "one\n");
    let mut a1 = b"Message-ID: <1@x>\r\n".to_vec();
    a1.extend_from_slice(&a);
    assert_eq!(
        store
            .post(&a1, &["local.test".into(), "local.other".into()], 5)
            .unwrap(),
        vec![
            ("local.test".to_string(), 1),
            ("local.other".to_string(), 1)
        ]
    );
    assert_eq!(std::fs::read(dir.path().join("local.test/1")).unwrap(), a1);
    assert_eq!(std::fs::read(dir.path().join("local.other/1")).unwrap(), a1);
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");

    let again = Store::open(dir.path()).unwrap();
    let g = again.group("local.test").unwrap();
    assert_eq!(
        (g.count, g.low, g.high, g.description.as_str(), g.created),
        (1, 1, 1, "Testing", 100)
    );
    // The index names the crossposted article's first group in name order.
    assert_eq!(again.locate("<1@x>"), Some(("local.other".into(), 1)));
    assert_eq!(again.overview("local.test", 1).unwrap().subject, "hello");
    assert_eq!(again.article("local.test", 1).unwrap().unwrap(), a1);
}

#[test]
fn a_number_taken_on_disk_by_another_writer_is_skipped() {
    let dir = TempDir::new("store-race");
    let store = Store::open(dir.path()).unwrap();
    store.create_group("local.test", "", 0).unwrap();
    // Another process wrote article 1 after this store was opened.
    std::fs::write(dir.path().join("local.test/1"), b"From: x\r\n\r\nother\r\n").unwrap();
    let placed = store
        .post(
            &article("local.test", "mine", "x\n"),
            &["local.test".into()],
            0,
        )
        .unwrap();
    assert_eq!(placed, vec![("local.test".to_string(), 2)]);
    assert_eq!(
        std::fs::read(dir.path().join("local.test/1")).unwrap(),
        b"From: x\r\n\r\nother\r\n"
    );
}

#[test]
fn group_names_that_are_not_safe_folder_names_are_refused() {
    let dir = TempDir::new("store-names");
    let store = Store::open(dir.path()).unwrap();
    for bad in ["", "../up", "a/b", ".hidden", "a..b", "sp ace"] {
        assert!(store.create_group(bad, "", 0).is_err(), "{bad:?}");
    }
    // Folders with such names, and files not named by numbers, are not read as groups or articles.
    std::fs::create_dir_all(dir.path().join("ok.group")).unwrap();
    std::fs::write(dir.path().join("ok.group/notes.txt"), b"x").unwrap();
    std::fs::write(dir.path().join("ok.group/0"), b"x").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.group("ok.group").unwrap().count, 0);
}
