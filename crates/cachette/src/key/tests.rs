use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::*;
use crate::error::ErrorKind;
use xxhash_rust::xxh3::xxh3_128;

/// The hex hash of the given arguments.
macro_rules! hx {
    ($($arg:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut h = ArgsHasher::new();
        $(h.arg($arg);)*
        h.finish_hex().unwrap()
    }};
}

fn hex_of_bytes(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

#[test]
fn streaming_equals_one_shot_of_the_documented_bytes() {
    // 42u64 → 03 + i128 LE
    let mut bytes = vec![0x03];
    bytes.extend_from_slice(&42i128.to_le_bytes());
    assert_eq!(hx!(&42u64), hex_of_bytes(&bytes));
    // "en" → 06 + len u64 LE + bytes
    let mut bytes = vec![0x06];
    bytes.extend_from_slice(&2u64.to_le_bytes());
    bytes.extend_from_slice(b"en");
    assert_eq!(hx!("en"), hex_of_bytes(&bytes));
    // (1, true) as a tuple → 0a 03.. 02 0b ; as two args → 03.. 02
    let mut tuple = vec![0x0a, 0x03];
    tuple.extend_from_slice(&1i128.to_le_bytes());
    tuple.extend_from_slice(&[0x02, 0x0b]);
    assert_eq!(hx!(&(1u8, true)), hex_of_bytes(&tuple));
    assert_eq!(hx!(), hex_of_bytes(b""));
    // Past the inline buffer, the stream continues: still the hash of the same bytes.
    let long = "x".repeat(1000);
    let mut bytes = vec![0x03];
    bytes.extend_from_slice(&7i128.to_le_bytes());
    bytes.push(0x06);
    bytes.extend_from_slice(&1000u64.to_le_bytes());
    bytes.extend_from_slice(long.as_bytes());
    assert_eq!(hx!(&7u8, long.as_str()), hex_of_bytes(&bytes));
    for len in [100, 110, 111, 112, 127, 128, 129, 300] {
        let s = "y".repeat(len);
        let mut bytes = vec![0x06];
        bytes.extend_from_slice(&(len as u64).to_le_bytes());
        bytes.extend_from_slice(s.as_bytes());
        assert_eq!(hx!(s.as_str()), hex_of_bytes(&bytes), "{len}");
    }
}

/// Golden values: these must never change within format version 1.
#[test]
fn golden_hashes() {
    assert_eq!(KEY_FORMAT_VERSION, 1);
    assert_eq!(hx!(), "99aa06d3014798d86001c324468d497f");
    assert_eq!(hx!(&42u64), "a81db0d4a908caac9ed4ed07560b0030");
    assert_eq!(hx!(&1u64, &false), "19c8af124f1a32f34ef566eb56a9fbc5");
    assert_eq!(hx!("ada@example.com"), "eb0e1e0632312a9f76b238a5fe4cd0f8");
    #[derive(Serialize)]
    struct Filter {
        page: u32,
        tags: Vec<&'static str>,
        min: Option<f64>,
    }
    assert_eq!(
        hx!(&Filter {
            page: 2,
            tags: vec!["a", "b"],
            min: Some(1.5)
        }),
        "e7484823d4423f1d7fc6305feace0707"
    );
}

#[test]
fn equal_values_hash_equally() {
    assert_eq!(hx!(&1u8), hx!(&1i64));
    assert_eq!(hx!(&1u128), hx!(&1i32));
    assert_eq!(hx!("x"), hx!(&'x'));
    assert_eq!(hx!(&String::from("x")), hx!(&"x"));
    assert_eq!(hx!(&0.0f64), hx!(&-0.0f64));
    assert_eq!(hx!(&f64::NAN), hx!(&-f64::NAN));
    assert_eq!(hx!(&1.5f32), hx!(&1.5f64));
    assert_eq!(hx!(&vec![1, 2]), hx!(&[1u8, 2]));
    // Newtypes are transparent.
    #[derive(Serialize)]
    struct UserId(u64);
    assert_eq!(hx!(&UserId(5)), hx!(&5u64));
}

#[test]
fn distinct_values_hash_differently() {
    let all = [
        hx!(),
        hx!(&()),
        hx!(&None::<u8>),
        hx!(&Some(())),
        hx!(&0u8),
        hx!(&u128::MAX),
        hx!(&-1i8),
        hx!(&false),
        hx!(""),
        hx!(&Vec::<u8>::new()),
        hx!(&vec![Vec::<u8>::new()]),
        hx!(&(1u8, 2u8)),
        hx!(&1u8, &2u8),
        hx!(&("ab", "c")),
        hx!(&("a", "bc")),
        hx!(&HashMap::<u8, u8>::new()),
        hx!(&BTreeMap::from([(1u8, 2u8)])),
        hx!(&BTreeMap::from([(2u8, 1u8)])),
        hx!(serde_bytes_like()),
    ];
    let mut unique = all.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "{all:#?}");
}

fn serde_bytes_like() -> &'static str {
    "\u{0}"
}

#[test]
fn maps_are_order_independent() {
    let a: HashMap<String, Vec<u32>> = (0..50).map(|i| (format!("k{i}"), vec![i, i * 2])).collect();
    let b: HashMap<String, Vec<u32>> = (0..50)
        .rev()
        .map(|i| (format!("k{i}"), vec![i, i * 2]))
        .collect();
    let c: BTreeMap<String, Vec<u32>> = a.clone().into_iter().collect();
    let ha = hx!(&a);
    assert_eq!(ha, hx!(&b));
    assert_eq!(ha, hx!(&c));
    // The value still matters.
    let mut d = a.clone();
    d.insert("k0".into(), vec![9]);
    assert_ne!(ha, hx!(&d));
}

#[test]
fn enums_and_structs() {
    #[derive(Serialize)]
    enum Role {
        Admin,
        Scoped(u32),
        Pair(u8, u8),
        Named { level: u8 },
    }
    let variants = [
        hx!(&Role::Admin),
        hx!(&Role::Scoped(1)),
        hx!(&Role::Pair(1, 2)),
        hx!(&Role::Named { level: 1 }),
    ];
    let mut unique = variants.to_vec();
    unique.dedup();
    assert_eq!(unique.len(), 4);

    #[derive(Serialize)]
    struct A {
        x: u8,
    }
    #[derive(Serialize)]
    struct B {
        y: u8,
    }
    assert_ne!(hx!(&A { x: 1 }), hx!(&B { y: 1 }));
}

#[test]
fn failing_serialize_is_an_encode_error() {
    struct Bad;
    impl Serialize for Bad {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("nope"))
        }
    }
    let mut h = ArgsHasher::new();
    h.arg(&1u8).arg(&Bad).arg(&2u8);
    let e = h.finish().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Encode);
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn golden_default_keys() {
    assert_eq!(
        DefaultKey::function("my_app::users", "get_user")
            .arg(&42u64)
            .build()
            .unwrap(),
        "my_app.users:get_user:a81db0d4a908caac9ed4ed07560b0030"
    );
    assert_eq!(
        DefaultKey::method("my_app::users", "UserService", "count")
            .build()
            .unwrap(),
        "my_app.users:UserService.count:99aa06d3014798d86001c324468d497f"
    );
    assert_eq!(
        default_key("top", None, "f", 0xff),
        "top:f:000000000000000000000000000000ff"
    );
}

#[test]
fn type_labels() {
    struct Svc<T>(T);
    assert_eq!(type_label::<Svc<HashMap<u8, u8>>>(), "Svc");
    assert_eq!(type_label::<u64>(), "u64");
    assert_eq!(type_label::<&mut String>(), "String");
    assert_eq!(label_of("a::b::C<d::E>"), "C");
    assert_eq!(label_of("&a::C"), "C");
}

#[test]
fn template_escaping() {
    let mut k = KeyTemplate::key(0);
    k.lit("u:{x}:").value(&"%:*").value(&7);
    assert_eq!(k.finish(), "u:{x}:%25%3A*7");
    let mut p = KeyTemplate::pattern(0);
    p.lit("u:*:").value(&r"a*b?[c]\d%:");
    let p = p.finish();
    assert_eq!(p, r"u:*:a\*b\?\[c\]\\d%25%3A");
    assert!(crate::glob::matches(&p, r"u:x:a*b?[c]\d%25%3A"));
    assert!(!crate::glob::matches(&p, r"u:x:aXb?[c]\d%25%3A"));
}

fn unescape(part: &str) -> String {
    part.replace("%3A", ":")
        .replace("%7B", "{")
        .replace("%7D", "}")
        .replace("%25", "%")
}

/// A value made of the characters escaping cares about, and any other.
fn value() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::prop_oneof![r"[:%*?{}\\\[\]^a3-]{0,6}", ".{0,6}"]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// `user:{a}:{b}`: the key splits on `:` into exactly its three parts and each value
    /// comes back unescaped, so distinct values never share a key.
    #[test]
    fn template_values_are_recoverable(a in value(), b in value()) {
        let mut key = KeyTemplate::key(8);
        key.lit("user:").value(&a).lit(":").value(&b);
        let key = key.finish();
        let parts: Vec<&str> = key.split(':').collect();
        proptest::prop_assert_eq!(parts.len(), 3, "{}", key);
        // No value can make a hash tag: the key has no brace at all.
        proptest::prop_assert!(!key.contains(['{', '}']), "{}", key);
        proptest::prop_assert_eq!(unescape(parts[1]), a);
        proptest::prop_assert_eq!(unescape(parts[2]), b);
    }

    /// The eviction pattern of `user:{a}:*` matches the keys of `user:{a}:{anything}` and
    /// no key built from another value; checked with the Redis-faithful matcher.
    #[test]
    fn template_patterns_match_their_own_values_only(
        a in value(), other in value(), rest in value(),
    ) {
        let mut pattern = KeyTemplate::pattern(8);
        pattern.lit("user:").value(&a).lit(":*");
        let pattern = pattern.finish();
        let key_of = |v: &str| {
            let mut k = KeyTemplate::key(8);
            k.lit("user:").value(v).lit(":").value(&rest);
            k.finish()
        };
        proptest::prop_assert!(crate::glob::matches(&pattern, &key_of(&a)), "{}", pattern);
        proptest::prop_assert_eq!(
            crate::glob::matches(&pattern, &key_of(&other)),
            a == other,
            "{} vs {}", pattern, key_of(&other)
        );
    }
}

/// Keys shared with Python: the same strings are pinned by the Python package's golden tests
/// (crates/cachette-py/tests/test_keys.py), where the arguments are the JSON-equal Python
/// values `(42,)`, `(7, "en")`, `(1.5, True, None)`, `([1, 2, 3], {"b": [2], "a": [3]})`, `()`.
#[test]
fn cross_language_golden_keys() {
    let key = |b: DefaultKey<'_>| b.build().unwrap_or_default();
    let f = || DefaultKey::function("services::user", "get_user");
    assert_eq!(
        key(f().arg(&42u64)),
        "services.user:get_user:a81db0d4a908caac9ed4ed07560b0030"
    );
    assert_eq!(
        key(f().arg(&7i32).arg("en")),
        "services.user:get_user:8e150c39c281fc25df1d57afb54edfab"
    );
    assert_eq!(
        key(f().arg(&1.5f64).arg(&true).arg(&None::<u32>)),
        "services.user:get_user:f60d2e47f46c7e5f24485d974150eed9"
    );
    let map: HashMap<String, Vec<u8>> = [("b".to_owned(), vec![2]), ("a".to_owned(), vec![3])]
        .into_iter()
        .collect();
    assert_eq!(
        key(f().arg(&vec![1u16, 2, 3]).arg(&map)),
        "services.user:get_user:97f201630a2d382c73abb759c26cf2a8"
    );
    assert_eq!(
        key(DefaultKey::method("services::user", "UserService", "count")),
        "services.user:UserService.count:99aa06d3014798d86001c324468d497f"
    );
}

#[test]
fn hex_digits_match_the_formatter() {
    let samples = [
        0u128,
        u128::MAX,
        1,
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        0xa0a0_a0a0_0909_0909_f0f0_0f0f_9a9a_a9a9,
        1 << 127,
        (1 << 64) - 1,
    ];
    // And a spread of pseudo-random values (every nibble at every position, many times).
    let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
    let mixed = (0..2000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    });
    for value in samples.into_iter().chain(mixed) {
        let mut out = String::from("k:");
        push_hex(&mut out, value);
        assert_eq!(out, format!("k:{value:032x}"));
    }
}

#[test]
fn stem_keys_equal_default_keys() {
    for module in ["app", "app::users::repo", "a::b", "x"] {
        for owner in [None, Some("UserService")] {
            let mut h = ArgsHasher::new();
            h.arg(&42u64).arg("en");
            let stem = key_stem(module);
            let keys = [
                h.prefixed_stem_key("svc:", &stem, owner, "get_user")
                    .unwrap(),
                h.prefixed_default_key("svc:", module, owner, "get_user")
                    .unwrap(),
                h.prefixed_stem_key("", &stem, owner, "f").unwrap(),
                h.default_key(module, owner, "f").unwrap(),
            ];
            assert_eq!(keys[0], keys[1]);
            assert_eq!(keys[2], keys[3]);
            for key in &keys {
                // Built in one allocation of its exact size.
                assert_eq!(key.capacity(), key.len(), "{key}");
            }
        }
    }
    // Only `::` is a separator (a lone `:` stays, at the end too).
    assert_eq!(key_stem("a:b"), "a:b:");
    assert_eq!(key_stem("ab:"), "ab::");
    assert_eq!(key_stem("a::b::"), "a.b.:");
    let stem = key_stem("app::users::repo");
    assert_eq!(
        (stem.as_str(), stem.capacity()),
        ("app.users.repo:", stem.len())
    );
}
