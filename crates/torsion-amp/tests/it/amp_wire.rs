//! The box encoding: Twisted's bytes, its limits, and properties (any box written parses
//! back; the parser never panics and does not care how bytes are cut).

use proptest::prelude::*;
use torsion_amp::wire::{parse_boxes, AmpBox, BoxParser, MAX_KEY_LENGTH, MAX_VALUE_LENGTH};
use torsion_amp::AmpError;

#[test]
fn a_box_is_written_as_twisted_writes_it() {
    // Twisted: AmpBox(_ask=b"1", _command=b"Sum", a=b"13", b=b"81").serialize()
    let b: AmpBox = [("_command", "Sum"), ("a", "13"), ("b", "81"), ("_ask", "1")]
        .into_iter()
        .collect();
    assert_eq!(
        b.to_bytes().unwrap(),
        b"\x00\x04_ask\x00\x011\x00\x08_command\x00\x03Sum\x00\x01a\x00\x0213\x00\x01b\x00\x0281\x00\x00"
    );
}

#[test]
fn keys_and_values_at_the_limits_are_written_and_over_them_refused() {
    let mut b = AmpBox::new();
    b.insert(vec![b'k'; MAX_KEY_LENGTH], vec![b'v'; MAX_VALUE_LENGTH]);
    let bytes = b.to_bytes().unwrap();
    assert_eq!(parse_boxes(&bytes).unwrap(), vec![b.clone()]);

    let mut long_value = AmpBox::new();
    long_value.insert("k", vec![0; MAX_VALUE_LENGTH + 1]);
    let e = long_value.to_bytes().unwrap_err();
    assert!(!e.is_key && e.is_local && e.length == 65_536);
    assert_eq!(e.key.as_deref(), Some(&b"k"[..]));

    let mut long_key = AmpBox::new();
    long_key.insert(vec![b'k'; 256], "v");
    assert!(long_key.to_bytes().unwrap_err().is_key);
}

#[test]
fn a_box_received_in_any_order_reads_sorted_and_a_key_given_twice_keeps_its_last_value() {
    let mut p = BoxParser::new(1 << 20);
    p.push(b"\x00\x01b\x00\x012\x00\x01a\x00\x011\x00\x01b\x00\x013\x00\x00");
    let b = p.next_box().unwrap().unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b.get("b"), Some(&b"3"[..]));
    assert_eq!(
        b.to_bytes().unwrap(),
        b"\x00\x01a\x00\x011\x00\x01b\x00\x013\x00\x00"
    );
    assert_eq!(b, [("a", "1"), ("b", "3")].into_iter().collect());
}

#[test]
fn a_box_keeps_keys_sorted_whatever_is_inserted_replaced_or_removed() {
    let mut b = AmpBox::new();
    assert_eq!(b.insert("b", "1"), None);
    assert_eq!(b.insert("_ask", "a"), None);
    assert_eq!(b.insert("b", "22"), Some(b"1".to_vec()));
    assert_eq!(b.insert("A", ""), None);
    assert_eq!(b.remove("_ask"), Some(b"a".to_vec()));
    assert_eq!(b.remove("_ask"), None);
    let keys: Vec<&[u8]> = b.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&b"A"[..], b"b"]);
    assert_eq!(b.get("b"), Some(&b"22"[..]));
    assert_eq!(format!("{b:?}"), r#"{b"A": b"", b"b": b"22"}"#);
    b.clear();
    assert!(b.is_empty() && b.get("b").is_none());
}

#[test]
fn a_key_length_over_255_ends_the_stream() {
    let mut p = BoxParser::new(1 << 20);
    p.push(b"\x01\x00");
    match p.next_box() {
        Err(AmpError::TooLong(t)) => assert!(t.is_key && !t.is_local && t.length == 256),
        other => panic!("{other:?}"),
    }
    p.push(b"\x00\x00");
    assert!(p.next_box().is_err(), "errors are final");
}

#[test]
fn a_box_that_never_ends_is_cut_at_the_limit() {
    let mut p = BoxParser::new(10_000);
    let mut pair = Vec::new();
    pair.extend_from_slice(b"\x00\x01k\x03\xe8");
    pair.extend_from_slice(&[b'x'; 1000]);
    let mut result = Ok(None);
    for _ in 0..100 {
        p.push(&pair);
        result = p.next_box();
        if result.is_err() {
            break;
        }
        assert!(p.buffered() <= 10_000 + pair.len());
    }
    assert_eq!(result, Err(AmpError::BoxTooLarge { limit: 10_000 }));
}

#[test]
fn nested_boxes_must_end_where_a_box_ends() {
    assert_eq!(parse_boxes(b"").unwrap(), vec![]);
    assert_eq!(parse_boxes(b"\x00\x00\x00\x00").unwrap().len(), 2);
    assert_eq!(parse_boxes(b"\x00\x01a"), Err(AmpError::Truncated));
}

fn any_box() -> impl Strategy<Value = AmpBox> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 1..=MAX_KEY_LENGTH),
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        0..8,
    )
    .prop_map(|pairs| pairs.into_iter().collect())
}

proptest! {
    #[test]
    fn any_box_written_parses_back(boxes in prop::collection::vec(any_box(), 0..5), cut in any::<usize>()) {
        let mut bytes = Vec::new();
        for b in &boxes {
            b.write_to(&mut bytes).unwrap();
        }
        prop_assert_eq!(parse_boxes(&bytes).unwrap(), boxes.clone());
        let cut = cut % (bytes.len() + 1);
        let mut p = BoxParser::new(1 << 20);
        let mut got = Vec::new();
        for chunk in [&bytes[..cut], &bytes[cut..]] {
            p.push(chunk);
            while let Some(b) = p.next_box().unwrap() {
                got.push(b);
            }
        }
        prop_assert_eq!(got, boxes);
    }

    #[test]
    fn the_parser_never_panics(data in prop::collection::vec(any::<u8>(), 0..2000), cut in any::<usize>()) {
        let mut p = BoxParser::new(1500);
        let cut = cut % (data.len() + 1);
        for chunk in [&data[..cut], &data[cut..]] {
            p.push(chunk);
            while let Ok(Some(b)) = p.next_box() {
                prop_assert!(b.to_bytes().is_ok());
            }
        }
        let _ = parse_boxes(&data);
    }
}
