//! The argument types write what Twisted writes and read what it reads.

use proptest::prelude::*;
use torsion_amp::types::{python_float_repr, AmpList, Argument, Record};
use torsion_amp::{record, AmpBox, AmpError, DateTime, Decimal};

#[test]
fn floats_are_written_as_python_repr() {
    for (x, s) in [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (-0.0, "-0.0"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "nan"),
        (1234.0 / 3.0, "411.3333333333333"),
    ] {
        assert_eq!(python_float_repr(x), s, "{x}");
    }
    assert!(f64::from_wire(b"nan").unwrap().is_nan());
    assert_eq!(f64::from_wire(b"-inf").unwrap(), f64::NEG_INFINITY);
    assert_eq!(f64::from_wire(b" 2.5\n").unwrap(), 2.5);
    assert!(f64::from_wire(b"2.5x").is_err());
}

#[test]
fn integers_booleans_and_text() {
    assert_eq!(i64::from_wire(b"-42").unwrap(), -42);
    assert_eq!(i64::from_wire(b" +1_000 ").unwrap(), 1000);
    assert!(i64::from_wire(b"1__0").is_err());
    assert!(i64::from_wire(b"99999999999999999999").is_err());
    assert_eq!(
        i128::from_wire(b"99999999999999999999").unwrap(),
        99999999999999999999
    );
    // The extremes, written without a String and read by the fast path or Python's rules.
    assert_eq!(i64::MIN.to_wire().unwrap(), b"-9223372036854775808");
    assert_eq!(i64::from_wire(b"-9223372036854775808").unwrap(), i64::MIN);
    assert_eq!(u64::MAX.to_wire().unwrap(), b"18446744073709551615");
    assert_eq!(u64::from_wire(b"18446744073709551615").unwrap(), u64::MAX);
    assert_eq!(i32::MIN.to_wire().unwrap(), b"-2147483648");
    assert!(u32::from_wire(b"-1").is_err());
    assert!(i32::from_wire(b"2147483648").is_err());
    assert_eq!(i64::from_wire(b"-0").unwrap(), 0);
    assert_eq!(i64::from_wire(b"007").unwrap(), 7);
    assert!(i64::from_wire(b"-").is_err() && i64::from_wire(b"").is_err());
    let mut b = AmpBox::new();
    (-5i32).to_box("n", &mut b).unwrap();
    assert_eq!(b.get("n"), Some(&b"-5"[..]));
    assert_eq!(true.to_wire().unwrap(), b"True");
    assert!(bool::from_wire(b"true").is_err());
    assert_eq!(String::from_wire("é".as_bytes()).unwrap(), "é");
    assert!(String::from_wire(b"\xff").is_err());
    assert_eq!(Vec::<u8>::from_wire(b"\x00\xff").unwrap(), vec![0, 255]);
}

#[test]
fn decimals_past_pythons_exponent_limits_are_refused_as_python_refuses_them() {
    // Found by the amp_boxes fuzz target: `000E0000000009223372036854775807` parsed, and
    // writing it back overflowed (a panic in a debug build). Python's Decimal refuses these
    // with InvalidOperation, so Torsion does too.
    for input in [
        "000E0000000009223372036854775807",
        "12E9223372036854775807",
        "1E-9223372036854775807",
        "1E1000000000000000000",
        "12E999999999999999999",
        "1E-1999999999999999998",
    ] {
        assert!(input.parse::<Decimal>().is_err(), "{input}");
        assert!(Decimal::from_wire(input.as_bytes()).is_err(), "{input}");
    }
    assert!(Decimal::new(false, "12", 999_999_999_999_999_999).is_err());
    assert!(Decimal::new(false, "1", 999_999_999_999_999_999).is_ok());
}

#[test]
fn decimals_keep_python_str_form() {
    for (input, out) in [
        ("1.50", "1.50"),
        ("1E+2", "1E+2"),
        ("100", "100"),
        ("-0", "-0"),
        ("0.000001", "0.000001"),
        ("0.0000001", "1E-7"),
        ("1.5e3", "1.5E+3"),
        ("12345e-2", "123.45"),
        (" 1_000.5 ", "1000.5"),
        ("inf", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("nan", "NaN"),
        ("-sNaN007", "-sNaN7"),
        (".5", "0.5"),
        ("5.", "5"),
        ("0E-10", "0E-10"),
        // Python's extremes (MAX_EMAX, MIN_ETINY on 64-bit).
        ("1E999999999999999999", "1E+999999999999999999"),
        ("1E-1999999999999999997", "1E-1999999999999999997"),
    ] {
        let d: Decimal = input.parse().unwrap();
        assert_eq!(d.to_string(), out, "{input}");
        assert_eq!(Decimal::from_wire(out.as_bytes()).unwrap(), d);
    }
    for bad in ["", ".", "1e", "1.2.3", "abc", "nanx", "1e+", "--1"] {
        assert!(bad.parse::<Decimal>().is_err(), "{bad:?}");
    }
}

#[test]
fn date_times_are_32_characters_with_the_offset() {
    let dt = DateTime {
        year: 2012,
        month: 1,
        day: 23,
        hour: 12,
        minute: 34,
        second: 56,
        microsecond: 54321,
        offset_minutes: -330,
    };
    assert_eq!(dt.to_wire().unwrap(), b"2012-01-23T12:34:56.054321-05:30");
    assert_eq!(
        DateTime::from_wire(b"2012-01-23T12:34:56.054321-05:30").unwrap(),
        dt
    );
    let utc = DateTime {
        offset_minutes: 0,
        ..dt
    };
    assert_eq!(utc.to_wire().unwrap(), b"2012-01-23T12:34:56.054321-00:00");
    assert!(DateTime::from_wire(b"2012-02-30T12:34:56.054321+00:00").is_err());
    assert!(DateTime::from_wire(b"2012-01-23T12:34:56.054321+24:00").is_err());
    assert!(DateTime::from_wire(b"2012-01-23T12:34:56.054321*00:00").is_err());
    assert!(DateTime { month: 13, ..dt }.to_wire().is_err());
}

record! {
    /// An AmpList element with an optional field.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Item { a: i64, b: Option<String> }
}

#[test]
fn lists_and_nested_boxes() {
    let l = vec![3i64, 7, 9, 15];
    assert_eq!(
        l.to_wire().unwrap(),
        b"\x00\x013\x00\x017\x00\x019\x00\x0215"
    );
    assert_eq!(Vec::<i64>::from_wire(&l.to_wire().unwrap()).unwrap(), l);
    assert_eq!(
        Vec::<i64>::from_wire(b"\x00\x05ab"),
        Err(AmpError::Truncated)
    );

    let items = AmpList(vec![
        Item {
            a: 7,
            b: Some("hello".into()),
        },
        Item { a: 9, b: None },
    ]);
    let wire = items.to_wire().unwrap();
    // Twisted: AmpList([(b'a', Integer()), (b'b', Unicode(optional=True))])
    assert_eq!(
        wire,
        b"\x00\x01a\x00\x017\x00\x01b\x00\x05hello\x00\x00\x00\x01a\x00\x019\x00\x00"
    );
    assert_eq!(AmpList::<Item>::from_wire(&wire).unwrap(), items);

    let mut b = AmpBox::new();
    Item { a: 1, b: None }.to_box(&mut b).unwrap();
    assert!(!b.contains_key("b"), "None is left out");
    b.remove("a");
    assert_eq!(
        Item::from_box(&b),
        Err(AmpError::Missing { key: "a".into() })
    );
}

proptest! {
    #[test]
    fn floats_round_trip(x in any::<f64>()) {
        let back = f64::from_wire(&x.to_wire().unwrap()).unwrap();
        prop_assert!(back == x || (x.is_nan() && back.is_nan()));
    }

    #[test]
    fn integers_round_trip(n in any::<i64>(), u in any::<u64>()) {
        prop_assert_eq!(n.to_wire().unwrap(), n.to_string().into_bytes());
        prop_assert_eq!(i64::from_wire(&n.to_wire().unwrap()).unwrap(), n);
        prop_assert_eq!(u64::from_wire(&u.to_wire().unwrap()).unwrap(), u);
    }

    #[test]
    fn decimals_round_trip(neg in any::<bool>(), digits in "[0-9]{1,30}", exp in -40i64..40) {
        let d = Decimal::new(neg, &digits, exp).unwrap();
        let back = Decimal::from_wire(&d.to_wire().unwrap()).unwrap();
        prop_assert_eq!(back, d);
    }

    #[test]
    fn readers_never_panic(data in prop::collection::vec(any::<u8>(), 0..100)) {
        let _ = Decimal::from_wire(&data);
        let _ = DateTime::from_wire(&data);
        let _ = f64::from_wire(&data);
        let _ = Vec::<String>::from_wire(&data);
        let _ = AmpList::<Item>::from_wire(&data);
    }
}
