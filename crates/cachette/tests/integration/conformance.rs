//! The behaviour of `CacheManager`, written once and run against every backend.
//!
//! Each behaviour is an `async fn(&Fixture)`; the `conformance!` macro at the bottom
//! instantiates every one of them as a test per backend.

use std::collections::HashMap;
use std::time::Duration;

use cachette::{CacheManager, ErrorKind, KeyTtl, Ttl};
use serde::{Deserialize, Serialize};

use crate::support::{unique_prefix, Fixture};

// The tag scenarios, listed in `with_conformance_scenarios!` with the others.
use crate::conformance_tags::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn user(id: u64) -> User {
    User {
        id,
        name: format!("user {id}"),
        tags: vec!["a".into(), "b".into()],
    }
}

const SHORT: Duration = Duration::from_millis(300);

async fn sleep_past(ttl: Duration) {
    tokio::time::sleep(ttl + Duration::from_millis(250)).await;
}

// ---- basic get/set -------------------------------------------------------------------------

pub(crate) async fn set_then_get_roundtrips_a_struct(fx: &Fixture) {
    let c = fx.fresh();
    c.set("user:1", &user(1), Ttl::Default).await.unwrap();
    assert_eq!(c.get::<User>("user:1").await.unwrap(), Some(user(1)));
}

pub(crate) async fn get_of_missing_key_is_none(fx: &Fixture) {
    let c = fx.fresh();
    assert_eq!(c.get::<User>("nope").await.unwrap(), None);
}

pub(crate) async fn set_overwrites_value(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1u32, Ttl::Default).await.unwrap();
    c.set("k", &2u32, Ttl::Default).await.unwrap();
    assert_eq!(c.get::<u32>("k").await.unwrap(), Some(2));
}

pub(crate) async fn overwrite_with_another_type(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &"text", Ttl::Default).await.unwrap();
    c.set("k", &vec![1, 2, 3], Ttl::Default).await.unwrap();
    assert_eq!(c.get::<Vec<i32>>("k").await.unwrap(), Some(vec![1, 2, 3]));
}

pub(crate) async fn values_are_exactly_serde_json(fx: &Fixture) {
    let c = fx.fresh();
    c.set("user:1", &user(1), Ttl::Default).await.unwrap();
    let raw = c.get_raw("user:1").await.unwrap().unwrap();
    assert_eq!(
        raw.as_ref(),
        serde_json::to_vec(&user(1)).unwrap().as_slice()
    );
}

pub(crate) async fn empty_values_roundtrip(fx: &Fixture) {
    let c = fx.fresh();
    c.set("s", &"", Ttl::Default).await.unwrap();
    assert_eq!(c.get::<String>("s").await.unwrap(), Some(String::new()));
    c.set("v", &Vec::<u8>::new(), Ttl::Default).await.unwrap();
    assert_eq!(c.get::<Vec<u8>>("v").await.unwrap(), Some(vec![]));
    c.set_raw("raw", Vec::<u8>::new(), Ttl::Default)
        .await
        .unwrap();
    assert_eq!(c.get_raw("raw").await.unwrap().as_deref(), Some(&b""[..]));
    assert!(c.exists("raw").await.unwrap());
}

pub(crate) async fn one_mib_value_roundtrips(fx: &Fixture) {
    let c = fx.fresh();
    let big: String = (0..1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    c.set("big", &big, Ttl::Default).await.unwrap();
    assert_eq!(
        c.get::<String>("big").await.unwrap().as_deref(),
        Some(big.as_str())
    );
}

pub(crate) async fn unicode_keys_work_everywhere(fx: &Fixture) {
    let c = fx.fresh();
    let keys = ["ключ:1", "日本:語", "emoji:🎉", "mixed:é?"];
    for (i, k) in keys.iter().enumerate() {
        c.set(k, &i, Ttl::Default).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.get::<usize>(k).await.unwrap(), Some(i));
    }
    assert_eq!(c.keys("日本:*").await.unwrap(), vec!["日本:語".to_string()]);
    // Redis globs are byte-based: `?` is one byte, so a 4-byte emoji needs four.
    assert!(c.keys("emoji:?").await.unwrap().is_empty());
    assert_eq!(
        c.keys("emoji:????").await.unwrap(),
        vec!["emoji:🎉".to_string()]
    );
    assert_eq!(c.delete_pattern("ключ:*").await.unwrap(), 1);
    assert!(!c.exists("ключ:1").await.unwrap());
}

pub(crate) async fn empty_key_is_rejected(fx: &Fixture) {
    let c = fx.fresh();
    let e = c.set("", &1, Ttl::Default).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        c.get::<u8>("").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

pub(crate) async fn zero_ttl_is_rejected(fx: &Fixture) {
    let c = fx.fresh();
    let e = c.set("k", &1, Duration::ZERO).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!c.exists("k").await.unwrap());
}

// ---- TTL -----------------------------------------------------------------------------------

pub(crate) async fn ttl_expires_value(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1, SHORT).await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), Some(1));
    sleep_past(SHORT).await;
    assert_eq!(c.get::<i32>("k").await.unwrap(), None);
    assert!(!c.exists("k").await.unwrap());
    assert_eq!(c.ttl("k").await.unwrap(), KeyTtl::Missing);
}

pub(crate) async fn never_ttl_is_persistent(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1, Ttl::Never).await.unwrap();
    assert_eq!(c.ttl("k").await.unwrap(), KeyTtl::Persistent);
    c.set("o", &1, None::<Duration>).await.unwrap();
    assert_eq!(c.ttl("o").await.unwrap(), KeyTtl::Persistent);
}

pub(crate) async fn default_ttl_is_one_hour(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1, Ttl::Default).await.unwrap();
    let left = c.ttl("k").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_secs(3590) && left <= Duration::from_secs(3600),
        "{left:?}"
    );
}

pub(crate) async fn configured_default_ttl_applies(fx: &Fixture) {
    let c = fx.manager_with(&unique_prefix("d"), |mut cfg| {
        cfg.default_ttl = Some(Duration::from_secs(60));
        cfg
    });
    c.set("k", &1, Ttl::Default).await.unwrap();
    let left = c.ttl("k").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_secs(55) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    let p = fx.manager_with(&unique_prefix("p"), |mut cfg| {
        cfg.default_ttl = None;
        cfg
    });
    p.set("k", &1, Ttl::Default).await.unwrap();
    assert_eq!(p.ttl("k").await.unwrap(), KeyTtl::Persistent);
}

pub(crate) async fn ttl_reports_three_states(fx: &Fixture) {
    let c = fx.fresh();
    assert_eq!(c.ttl("missing").await.unwrap(), KeyTtl::Missing);
    c.set("persistent", &1, Ttl::Never).await.unwrap();
    assert_eq!(c.ttl("persistent").await.unwrap(), KeyTtl::Persistent);
    c.set("expiring", &1, Duration::from_secs(100))
        .await
        .unwrap();
    let left = c.ttl("expiring").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_secs(98) && left <= Duration::from_secs(100),
        "{left:?}"
    );
}

pub(crate) async fn set_replaces_ttl(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1, Duration::from_secs(100)).await.unwrap();
    c.set("k", &2, Ttl::Never).await.unwrap();
    assert_eq!(c.ttl("k").await.unwrap(), KeyTtl::Persistent);
}

pub(crate) async fn sub_millisecond_ttl_is_not_zero(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1, Duration::from_micros(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.get::<i32>("k").await.unwrap(), None);
}

/// One TTL range and one rounding rule on every backend (`cachette::ttl::check`): 1 ns,
/// 999 µs and 1 ms all live 1 ms; 100 years is stored as such; anything longer is refused
/// by every call taking a TTL, naming the key, and changes nothing.
pub(crate) async fn ttl_range_edges_agree(fx: &Fixture) {
    use cachette::ttl::MAX_TTL;
    let c = fx.fresh();
    let one_ms = Duration::from_millis(1);
    for (i, tiny) in [Duration::from_nanos(1), Duration::from_micros(999), one_ms]
        .into_iter()
        .enumerate()
    {
        assert_eq!(c.resolve_ttl(tiny).unwrap(), Some(one_ms));
        let key = format!("tiny:{i}");
        c.set(&key, &1, tiny).await.unwrap();
        match c.ttl(&key).await.unwrap() {
            KeyTtl::Expires(left) => assert!(left <= one_ms, "{tiny:?} -> {left:?}"),
            KeyTtl::Missing => {}
            KeyTtl::Persistent => panic!("{tiny:?} made {key} persistent"),
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!c.exists(&key).await.unwrap(), "{tiny:?} outlived 1 ms");
    }
    assert_eq!(
        c.resolve_ttl(Duration::from_micros(1500)).unwrap(),
        Some(Duration::from_millis(2))
    );

    let near = |left: Duration| left <= MAX_TTL && left > MAX_TTL - Duration::from_secs(10);
    c.set("max", &1, MAX_TTL).await.unwrap();
    assert!(near(c.ttl("max").await.unwrap().remaining().unwrap()));
    c.set_raw("max_raw", &b"1"[..], MAX_TTL).await.unwrap();
    assert!(c.set_nx("max_nx", &1, MAX_TTL).await.unwrap());
    c.set_many([("max_many", 1)], MAX_TTL).await.unwrap();
    assert!(c.expire("max_nx", MAX_TTL).await.unwrap());
    for key in ["max_raw", "max_nx", "max_many"] {
        assert!(
            near(c.ttl(key).await.unwrap().remaining().unwrap()),
            "{key}"
        );
    }

    for huge in [
        MAX_TTL + Duration::from_nanos(1),
        MAX_TTL + one_ms,
        Duration::from_secs(300 * 365 * 86_400),
        Duration::MAX,
    ] {
        let e = c.set("over", &1, huge).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{huge:?}: {e}");
        assert!(e.to_string().contains("over"), "names the key: {e}");
        assert!(e.to_string().contains("100 years"), "says the bound: {e}");
        let errors = [
            c.set_raw("over", &b"1"[..], huge).await.unwrap_err(),
            c.set_nx("over", &1, huge).await.map(|_| ()).unwrap_err(),
            c.set_many([("over", 1)], huge).await.unwrap_err(),
            c.expire("max", huge).await.map(|_| ()).unwrap_err(),
            c.get_or_load(
                "over",
                &cachette::LoadOptions::ttl(huge).fallback_on_error(false),
                || async { Ok::<_, std::io::Error>(1) },
            )
            .await
            .map(|_: i32| ())
            .map_err(|e| match e {
                cachette::LoadError::Cache(e) => e,
                other => panic!("{other:?}"),
            })
            .unwrap_err(),
        ];
        for e in errors {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{huge:?}: {e}");
        }
        // Failing open (the default), the loader's value is returned and not stored.
        let v: i32 = c
            .get_or_load("over", &cachette::LoadOptions::ttl(huge), || async {
                Ok::<_, std::io::Error>(7)
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
    }
    assert!(!c.exists("over").await.unwrap());
    assert!(
        near(c.ttl("max").await.unwrap().remaining().unwrap()),
        "refused expire left it"
    );
}

pub(crate) async fn non_finite_floats_are_refused(fx: &Fixture) {
    let c = fx.fresh();
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = c.set("f", &vec![1.0, v], Ttl::Default).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("f"), "{e}");
        let e = c.set_many([("g", v)], Ttl::Default).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    assert!(!c.exists("f").await.unwrap());
    assert!(!c.exists("g").await.unwrap());
}

pub(crate) async fn expire_on_missing_key_is_false(fx: &Fixture) {
    let c = fx.fresh();
    assert!(!c.expire("missing", Duration::from_secs(10)).await.unwrap());
    assert!(!c.expire("missing", Ttl::Never).await.unwrap());
    assert!(!c.exists("missing").await.unwrap());
}

pub(crate) async fn expire_sets_ttl_and_expires(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1, Ttl::Never).await.unwrap();
    assert!(c.expire("k", SHORT).await.unwrap());
    assert!(c.ttl("k").await.unwrap().remaining().unwrap() <= SHORT);
    sleep_past(SHORT).await;
    assert!(!c.exists("k").await.unwrap());
}

pub(crate) async fn expire_never_makes_key_persistent(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &1, Duration::from_secs(100)).await.unwrap();
    assert!(c.expire("k", Ttl::Never).await.unwrap());
    assert_eq!(c.ttl("k").await.unwrap(), KeyTtl::Persistent);
    // Already persistent: still reported as existing.
    assert!(c.expire("k", Ttl::Never).await.unwrap());
}

// ---- exists / delete -------------------------------------------------------------------------

pub(crate) async fn exists_and_delete(fx: &Fixture) {
    let c = fx.fresh();
    assert!(!c.exists("k").await.unwrap());
    c.set("k", &1, Ttl::Default).await.unwrap();
    assert!(c.exists("k").await.unwrap());
    assert!(c.delete("k").await.unwrap());
    assert!(!c.delete("k").await.unwrap());
    assert!(!c.exists("k").await.unwrap());
}

pub(crate) async fn delete_many_counts_existing(fx: &Fixture) {
    let c = fx.fresh();
    c.set("a", &1, Ttl::Default).await.unwrap();
    c.set("b", &1, Ttl::Default).await.unwrap();
    assert_eq!(c.delete_many(&["a", "b", "c"]).await.unwrap(), 2);
    assert_eq!(c.delete_many::<&str>(&[]).await.unwrap(), 0);
}

pub(crate) async fn set_nx_only_when_absent(fx: &Fixture) {
    let c = fx.fresh();
    assert!(c.set_nx("k", &1, Ttl::Default).await.unwrap());
    assert!(!c.set_nx("k", &2, Ttl::Default).await.unwrap());
    assert_eq!(c.get::<i32>("k").await.unwrap(), Some(1));
}

pub(crate) async fn delete_if_equals_compares(fx: &Fixture) {
    let c = fx.fresh();
    c.set_raw("lock", &b"token-1"[..], Ttl::Default)
        .await
        .unwrap();
    let full = c.full_key("lock");
    assert!(!c
        .backend()
        .delete_if_equals(&full, b"token-2")
        .await
        .unwrap());
    assert!(c.exists("lock").await.unwrap());
    assert!(c
        .backend()
        .delete_if_equals(&full, b"token-1")
        .await
        .unwrap());
    assert!(!c.exists("lock").await.unwrap());
}

// ---- decoding ------------------------------------------------------------------------------

pub(crate) async fn decode_failure_is_typed_and_names_key(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &"not a number", Ttl::Default).await.unwrap();
    let e = c.get::<u64>("k").await.unwrap_err();
    assert!(e.is_decode(), "{e}");
    assert_eq!(e.key(), Some(c.full_key("k").as_str()));
    assert!(e.to_string().contains(&c.full_key("k")), "{e}");
    // The value is left alone.
    assert_eq!(
        c.get::<String>("k").await.unwrap().as_deref(),
        Some("not a number")
    );
    assert_eq!(c.stats().decode_errors, 1);
}

pub(crate) async fn garbage_bytes_are_a_decode_error(fx: &Fixture) {
    let c = fx.fresh();
    c.set_raw("k", &b"\xff\x00{not json"[..], Ttl::Default)
        .await
        .unwrap();
    assert!(c
        .get::<serde_json::Value>("k")
        .await
        .unwrap_err()
        .is_decode());
}

// ---- patterns ------------------------------------------------------------------------------

async fn seed(c: &CacheManager, keys: &[&str]) {
    c.set_many(keys.iter().map(|k| (*k, 1)), Ttl::Default)
        .await
        .unwrap();
}

pub(crate) async fn keys_star_strips_prefix_and_sorts(fx: &Fixture) {
    let c = fx.fresh();
    seed(&c, &["user:2", "user:1", "post:1"]).await;
    assert_eq!(c.keys("user:*").await.unwrap(), vec!["user:1", "user:2"]);
    assert_eq!(
        c.keys("*").await.unwrap(),
        vec!["post:1", "user:1", "user:2"]
    );
}

pub(crate) async fn keys_question_mark_matches_one_char(fx: &Fixture) {
    let c = fx.fresh();
    seed(&c, &["id:1", "id:22", "id:3"]).await;
    assert_eq!(c.keys("id:?").await.unwrap(), vec!["id:1", "id:3"]);
}

pub(crate) async fn keys_character_classes(fx: &Fixture) {
    let c = fx.fresh();
    seed(&c, &["v:a", "v:b", "v:c", "v:x", "v:5"]).await;
    assert_eq!(c.keys("v:[ab]").await.unwrap(), vec!["v:a", "v:b"]);
    assert_eq!(c.keys("v:[a-c]").await.unwrap(), vec!["v:a", "v:b", "v:c"]);
    assert_eq!(c.keys("v:[^a-c]").await.unwrap(), vec!["v:5", "v:x"]);
    assert_eq!(c.keys("v:[0-9]").await.unwrap(), vec!["v:5"]);
}

pub(crate) async fn patterns_escape_special_characters(fx: &Fixture) {
    let c = fx.fresh();
    seed(&c, &["a*b", "axb", "q?", "qq", "[x]", "x", "back\\slash"]).await;
    assert_eq!(c.keys("a\\*b").await.unwrap(), vec!["a*b"]);
    assert_eq!(c.keys("q\\?").await.unwrap(), vec!["q?"]);
    assert_eq!(c.keys("\\[x\\]").await.unwrap(), vec!["[x]"]);
    assert_eq!(c.keys("back\\\\slash").await.unwrap(), vec!["back\\slash"]);
    let escaped = cachette::glob::escape("a*b");
    assert_eq!(c.delete_pattern(&escaped).await.unwrap(), 1);
    assert!(c.exists("axb").await.unwrap());
}

pub(crate) async fn keys_with_no_match_is_empty(fx: &Fixture) {
    let c = fx.fresh();
    seed(&c, &["a"]).await;
    assert!(c.keys("zzz*").await.unwrap().is_empty());
    assert_eq!(c.delete_pattern("zzz*").await.unwrap(), 0);
}

pub(crate) async fn delete_pattern_counts_and_spares_others(fx: &Fixture) {
    let c = fx.fresh();
    seed(&c, &["user:1", "user:2", "user:1:posts", "users", "post:1"]).await;
    assert_eq!(c.delete_pattern("user:*").await.unwrap(), 3);
    assert_eq!(c.keys("*").await.unwrap(), vec!["post:1", "users"]);
}

pub(crate) async fn delete_pattern_over_100k_keys(fx: &Fixture) {
    let c = fx.fresh();
    for chunk in 0..10 {
        let items: Vec<(String, u32)> = (0..10_000)
            .map(|i| (format!("bulk:{chunk}:{i}"), i))
            .collect();
        c.set_many(items, Ttl::Default).await.unwrap();
    }
    c.set("keep", &1, Ttl::Default).await.unwrap();
    assert_eq!(c.delete_pattern("bulk:*").await.unwrap(), 100_000);
    assert_eq!(c.keys("*").await.unwrap(), vec!["keep"]);
}

pub(crate) async fn keys_sees_every_key_of_a_large_set(fx: &Fixture) {
    let c = fx.fresh();
    let items: Vec<(String, u32)> = (0..5000).map(|i| (format!("many:{i}"), i)).collect();
    c.set_many(items, Ttl::Default).await.unwrap();
    assert_eq!(c.keys("many:*").await.unwrap().len(), 5000);
}

pub(crate) async fn expired_keys_are_not_listed(fx: &Fixture) {
    let c = fx.fresh();
    c.set("short", &1, SHORT).await.unwrap();
    c.set("long", &1, Ttl::Default).await.unwrap();
    sleep_past(SHORT).await;
    assert_eq!(c.keys("*").await.unwrap(), vec!["long"]);
}

// ---- prefixes ------------------------------------------------------------------------------

pub(crate) async fn prefixes_isolate_managers(fx: &Fixture) {
    let a = fx.manager(&unique_prefix("a"));
    let b = fx.manager(&unique_prefix("b"));
    a.set("k", &"from a", Ttl::Default).await.unwrap();
    b.set("k", &"from b", Ttl::Default).await.unwrap();
    assert_eq!(
        a.get::<String>("k").await.unwrap().as_deref(),
        Some("from a")
    );
    assert_eq!(
        b.get::<String>("k").await.unwrap().as_deref(),
        Some("from b")
    );
    assert_eq!(a.keys("*").await.unwrap(), vec!["k"]);
    assert_eq!(a.delete_pattern("*").await.unwrap(), 1);
    assert_eq!(
        b.get::<String>("k").await.unwrap().as_deref(),
        Some("from b")
    );
}

pub(crate) async fn clear_removes_only_own_prefix(fx: &Fixture) {
    let base = unique_prefix("clear");
    let own = fx.manager(&base);
    // A prefix that merely starts like ours (no separator) must be spared.
    let sibling = fx.manager(&format!("{}other:", base.trim_end_matches(':')));
    let unprefixed = fx.manager("");
    seed(&own, &["a", "b", "c"]).await;
    seed(&sibling, &["a"]).await;
    // Outside `base` (but under the process prefix, which the ACL fixture's user may touch).
    let foreign = format!("{}-foreign", base.trim_end_matches(':'));
    unprefixed.set(&foreign, &1, Ttl::Default).await.unwrap();
    assert_eq!(own.clear().await.unwrap(), 3);
    assert!(own.keys("*").await.unwrap().is_empty());
    assert_eq!(sibling.keys("*").await.unwrap(), vec!["a"]);
    assert!(unprefixed.exists(&foreign).await.unwrap());
}

pub(crate) async fn prefix_with_glob_characters_is_literal(fx: &Fixture) {
    let tricky = fx.manager(&format!("{}[a*]?:", unique_prefix("g")));
    let lookalike_prefix = tricky.prefix().replace("[a*]?", "a-x");
    let lookalike = fx.manager(&lookalike_prefix);
    seed(&tricky, &["k1", "k2"]).await;
    seed(&lookalike, &["k1"]).await;
    assert_eq!(tricky.keys("*").await.unwrap(), vec!["k1", "k2"]);
    assert_eq!(tricky.clear().await.unwrap(), 2);
    assert_eq!(lookalike.keys("*").await.unwrap(), vec!["k1"]);
}

// ---- batches -------------------------------------------------------------------------------

pub(crate) async fn get_many_keeps_order_and_reports_missing(fx: &Fixture) {
    let c = fx.fresh();
    c.set("user:1", &user(1), Ttl::Default).await.unwrap();
    c.set("user:3", &user(3), Ttl::Default).await.unwrap();
    let got: Vec<Option<User>> = c.get_many(&["user:1", "user:2", "user:3"]).await.unwrap();
    assert_eq!(got, vec![Some(user(1)), None, Some(user(3))]);
}

pub(crate) async fn get_many_with_duplicates(fx: &Fixture) {
    let c = fx.fresh();
    c.set("k", &7, Ttl::Default).await.unwrap();
    let got: Vec<Option<i32>> = c.get_many(&["k", "k", "x", "k"]).await.unwrap();
    assert_eq!(got, vec![Some(7), Some(7), None, Some(7)]);
}

pub(crate) async fn get_many_of_nothing(fx: &Fixture) {
    let c = fx.fresh();
    let got: Vec<Option<i32>> = c.get_many::<i32, &str>(&[]).await.unwrap();
    assert!(got.is_empty());
}

pub(crate) async fn get_many_decode_error_names_key(fx: &Fixture) {
    let c = fx.fresh();
    c.set("good", &1, Ttl::Default).await.unwrap();
    c.set("bad", &"x", Ttl::Default).await.unwrap();
    let e = c.get_many::<i32, _>(&["good", "bad"]).await.unwrap_err();
    assert!(e.is_decode());
    assert_eq!(e.key(), Some(c.full_key("bad").as_str()));
}

pub(crate) async fn set_many_applies_ttl_to_every_key(fx: &Fixture) {
    let c = fx.fresh();
    let items: HashMap<String, User> = (1..=3).map(|i| (format!("user:{i}"), user(i))).collect();
    c.set_many(&items, Duration::from_secs(300)).await.unwrap();
    for i in 1..=3 {
        let key = format!("user:{i}");
        assert_eq!(c.get::<User>(&key).await.unwrap(), Some(user(i)));
        let left = c.ttl(&key).await.unwrap().remaining().unwrap();
        assert!(
            left > Duration::from_secs(295) && left <= Duration::from_secs(300),
            "{left:?}"
        );
    }
}

pub(crate) async fn set_many_never_and_expiry(fx: &Fixture) {
    let c = fx.fresh();
    c.set_many([("a", 1), ("b", 2)], Ttl::Never).await.unwrap();
    assert_eq!(c.ttl("a").await.unwrap(), KeyTtl::Persistent);
    c.set_many([("s1", 1), ("s2", 2)], SHORT).await.unwrap();
    sleep_past(SHORT).await;
    let got: Vec<Option<i32>> = c.get_many(&["a", "b", "s1", "s2"]).await.unwrap();
    assert_eq!(got, vec![Some(1), Some(2), None, None]);
}

pub(crate) async fn set_many_of_nothing(fx: &Fixture) {
    let c = fx.fresh();
    c.set_many(Vec::<(String, i32)>::new(), Ttl::Default)
        .await
        .unwrap();
    assert!(c.keys("*").await.unwrap().is_empty());
}

// ---- stats, info, ping ---------------------------------------------------------------------

pub(crate) async fn stats_count_hits_misses_and_writes(fx: &Fixture) {
    let c = fx.fresh();
    assert!(c.get::<i32>("k").await.unwrap().is_none());
    c.set("k", &1, Ttl::Default).await.unwrap();
    assert!(c.get::<i32>("k").await.unwrap().is_some());
    let _: Vec<Option<i32>> = c.get_many(&["k", "x"]).await.unwrap();
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.writes, s.errors), (2, 2, 1, 0));
    assert!((s.hit_rate() - 0.5).abs() < 1e-9);
}

pub(crate) async fn info_reports_keys_and_memory(fx: &Fixture) {
    let c = fx.fresh();
    seed(&c, &["a", "b", "c"]).await;
    let info = c.info().await.unwrap();
    assert!(info.keys_in_db(0) >= 3, "{:?}", info.keyspace);
    assert!(info.used_memory().unwrap() > 0);
    assert!(info.used_memory_human().is_some());
    assert!(info.keyspace["db0"].expires >= 3);
    if fx.is_redis() {
        assert!(info
            .version()
            .unwrap()
            .starts_with(|ch: char| ch.is_ascii_digit()));
        assert!(!info.raw.is_empty());
        assert!(info.field("server", "redis_version").is_some());
    } else {
        assert_eq!(info.version(), Some("memory"));
    }
}

pub(crate) async fn ping_answers(fx: &Fixture) {
    assert!(fx.fresh().ping().await);
}

pub(crate) async fn concurrent_writers_and_readers(fx: &Fixture) {
    let c = fx.fresh();
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let key = format!("k:{t}:{i}");
                    c.set(&key, &(t * 1000 + i), Ttl::Default).await.unwrap();
                    assert_eq!(c.get::<i32>(&key).await.unwrap(), Some(t * 1000 + i));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(c.keys("k:*").await.unwrap().len(), 64 * 50);
}

pub(crate) async fn disabled_manager_stores_nothing(fx: &Fixture) {
    let c = fx.manager_with(&unique_prefix("off"), |mut cfg| {
        cfg.enabled = false;
        cfg
    });
    assert!(!c.is_enabled());
    c.set("k", &1, Ttl::Default).await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), None);
    assert!(!c.ping().await);
}

#[cfg(feature = "msgpack")]
pub(crate) async fn msgpack_codec_roundtrips(fx: &Fixture) {
    let c = fx.manager_with(&unique_prefix("mp"), |mut cfg| {
        cfg.codec = cachette::Codec::MessagePack;
        cfg
    });
    c.set("user:1", &user(1), Ttl::Default).await.unwrap();
    assert_eq!(c.get::<User>("user:1").await.unwrap(), Some(user(1)));
    let raw = c.get_raw("user:1").await.unwrap().unwrap();
    assert_eq!(
        raw.as_ref(),
        rmp_serde::to_vec_named(&user(1)).unwrap().as_slice()
    );
}

/// Calls `$callback!($($args)*; every conformance scenario)`: the one list of the suite.
macro_rules! with_conformance_scenarios {
    ($callback:ident!($($args:tt)*)) => {
        $callback! {$($args)*;
            set_then_get_roundtrips_a_struct, get_of_missing_key_is_none, set_overwrites_value,
            overwrite_with_another_type, values_are_exactly_serde_json, empty_values_roundtrip,
            one_mib_value_roundtrips, unicode_keys_work_everywhere, empty_key_is_rejected,
            zero_ttl_is_rejected, ttl_expires_value, never_ttl_is_persistent,
            default_ttl_is_one_hour, configured_default_ttl_applies, ttl_reports_three_states,
            set_replaces_ttl, sub_millisecond_ttl_is_not_zero, ttl_range_edges_agree,
            non_finite_floats_are_refused,
            expire_on_missing_key_is_false,
            expire_sets_ttl_and_expires, expire_never_makes_key_persistent, exists_and_delete,
            delete_many_counts_existing, set_nx_only_when_absent, delete_if_equals_compares,
            decode_failure_is_typed_and_names_key, garbage_bytes_are_a_decode_error,
            keys_star_strips_prefix_and_sorts, keys_question_mark_matches_one_char,
            keys_character_classes, patterns_escape_special_characters,
            keys_with_no_match_is_empty, delete_pattern_counts_and_spares_others,
            delete_pattern_over_100k_keys, keys_sees_every_key_of_a_large_set,
            expired_keys_are_not_listed, prefixes_isolate_managers,
            clear_removes_only_own_prefix, prefix_with_glob_characters_is_literal,
            get_many_keeps_order_and_reports_missing, get_many_with_duplicates,
            get_many_of_nothing, get_many_decode_error_names_key,
            set_many_applies_ttl_to_every_key, set_many_never_and_expiry, set_many_of_nothing,
            stats_count_hits_misses_and_writes, info_reports_keys_and_memory, ping_answers,
            concurrent_writers_and_readers, disabled_manager_stores_nothing,
            tags_invalidate_only_their_entries, tagged_values_stay_plain_json,
            read_through_honours_tags, invalidation_during_a_load_wins,
            invalidate_all_covers_tagged_entries_of_the_namespace, get_many_checks_tags,
            a_lost_tag_version_invalidates, tags_are_checked_and_documents_expire
        }
    };
}

/// `conformance! { name => fixture, ... }`: one test per scenario and fixture, in
/// `mod name`. `conformance!(sequence name => fixture)`: one test, `name`, running every
/// scenario one after the other on one fixture (for a fixture too slow to make per test,
/// such as a cluster of its own).
macro_rules! conformance {
    (sequence $test:ident => $fixture:expr) => {
        with_conformance_scenarios!(conformance!(@sequence $test $fixture));
    };
    ($($backend:ident => $fixture:expr),* $(,)?) => {$(
        mod $backend {
            with_conformance_scenarios!(conformance!(@tests $fixture));
            #[cfg(feature = "msgpack")]
            conformance!(@tests $fixture; msgpack_codec_roundtrips);
        }
    )*};
    (@tests $fixture:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let fixture = $fixture;
            super::$name(&fixture).await;
        }
    )*};
    (@sequence $test:ident $fixture:expr; $($name:ident),* $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let fixture = $fixture;
            $(
                let started = std::time::Instant::now();
                $name(&fixture).await;
                eprintln!("{}: {:?}", stringify!($name), started.elapsed());
            )*
            #[cfg(feature = "msgpack")]
            msgpack_codec_roundtrips(&fixture).await;
        }
    };
}

conformance! {
    memory => crate::support::Fixture::memory(),
    redis => crate::support::Fixture::redis(),
    cluster => crate::support::Fixture::cluster(),
    redis_acl => crate::support::Fixture::acl(),
    redis_near => crate::support::Fixture::near(),
    cluster_near => crate::support::Fixture::near_cluster(),
}

// Redis Sentinel: the primary found through three sentinels. One deployment (five processes,
// about 2.5 s to start) runs every scenario, in one test.
conformance!(sequence sentinel_runs_the_whole_suite => crate::support::Fixture::sentinel());

// The same through Sentinel with a near cache (its invalidation channel follows the primary).
conformance!(sequence sentinel_near_runs_the_whole_suite => crate::support::Fixture::near_sentinel());

// Redis over TLS (`rediss://`, certificates made for the test server).
#[cfg(feature = "tls")]
conformance! {
    redis_tls => crate::support::Fixture::tls(),
}

// A Redis Cluster serving TLS only: the whole suite in one test, on one cluster of its own
// (starting a cluster per scenario would cost ~2 s each).
#[cfg(feature = "tls")]
conformance!(sequence tls_cluster_runs_the_whole_suite => crate::support::Fixture::tls_cluster());

// Redis behind the metered backend (`CacheManagerBuilder::metrics(true)`).
#[cfg(feature = "metrics")]
conformance! {
    redis_metered => crate::support::Fixture::metered(),
}
