//! The near-cache settings of a [`Config`](super::Config) from `config.json` and the
//! environment.
//!
//! In `config.json`, `"near_cache"` is `true` (on, default bounds), `false`/`null` (off), or an
//! object that turns it on with some bounds replaced:
//! `{"max_entries": 10000, "max_bytes": 67108864, "max_ttl": 60, "max_staleness_ms": 1000}`.
//! In the environment `CACHETTE_NEAR_CACHE` turns it on or off, and
//! `CACHETTE_NEAR_CACHE_MAX_ENTRIES`, `_MAX_BYTES`, `_MAX_TTL` (seconds) and
//! `_MAX_STALENESS_MS` replace single bounds of a near cache turned on by either source.

use std::time::Duration;

use serde_json::Value;

use crate::backend::NearCacheOptions;
use crate::error::{Error, Result};

/// The object keys of `"near_cache"`.
pub(crate) const JSON_KEYS: &[&str] = &["max_entries", "max_bytes", "max_ttl", "max_staleness_ms"];

/// The environment variables of the near cache.
pub(crate) const ENV_VARS: &[&str] = &[
    "CACHETTE_NEAR_CACHE",
    "CACHETTE_NEAR_CACHE_MAX_ENTRIES",
    "CACHETTE_NEAR_CACHE_MAX_BYTES",
    "CACHETTE_NEAR_CACHE_MAX_TTL",
    "CACHETTE_NEAR_CACHE_MAX_STALENESS_MS",
];

fn positive(value: &Value) -> Option<u64> {
    value.as_u64().filter(|n| *n > 0)
}

fn to_usize(n: u64) -> Option<usize> {
    usize::try_from(n).ok()
}

/// The `"near_cache"` value of the file; `Err` says what is wrong, naming the key.
pub(crate) fn from_json(
    value: &Value,
) -> std::result::Result<Option<NearCacheOptions>, (String, String)> {
    let bad = |key: &str, what: &str| (format!("near_cache.{key}"), what.to_owned());
    match value {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(NearCacheOptions::default())),
        Value::Object(map) => {
            let mut options = NearCacheOptions::default();
            for (key, v) in map {
                match key.as_str() {
                    "max_entries" => {
                        options.max_entries = positive(v)
                            .and_then(to_usize)
                            .ok_or_else(|| bad(key, "expected a positive integer"))?
                    }
                    "max_bytes" => {
                        options.max_bytes = positive(v)
                            .and_then(to_usize)
                            .ok_or_else(|| bad(key, "expected a positive number of bytes"))?
                    }
                    "max_ttl" => {
                        options.max_ttl = if v.is_null() {
                            None
                        } else {
                            Some(Duration::from_secs(positive(v).ok_or_else(|| {
                                bad(key, "expected a positive number of seconds or null")
                            })?))
                        }
                    }
                    "max_staleness_ms" => {
                        options.max_staleness =
                            Duration::from_millis(positive(v).ok_or_else(|| {
                                bad(key, "expected a positive number of milliseconds")
                            })?)
                    }
                    other => {
                        return Err(bad(
                            other,
                            &format!("unknown field (known: {})", JSON_KEYS.join(", ")),
                        ))
                    }
                }
            }
            Ok(Some(options))
        }
        _ => Err((
            "near_cache".to_owned(),
            "expected true, false, null or an object of bounds".to_owned(),
        )),
    }
}

/// Applies the near-cache variables to `near`.
pub(crate) fn apply_env(
    near: &mut Option<NearCacheOptions>,
    get: &dyn Fn(&str) -> Option<String>,
    parse_bool: fn(&str) -> Option<bool>,
) -> Result<()> {
    let bad =
        |name: &str, what: &str| Error::config(&format!("environment variable {name}"), name, what);
    if let Some(v) = get("CACHETTE_NEAR_CACHE") {
        let on =
            parse_bool(&v).ok_or_else(|| bad("CACHETTE_NEAR_CACHE", "expected true/false/1/0"))?;
        *near = match (on, near.take()) {
            (false, _) => None,
            (true, current) => Some(current.unwrap_or_default()),
        };
    }
    let number = |name: &str| -> Result<Option<u64>> {
        match get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| bad(name, &format!("expected a positive integer, got {v:?}"))),
        }
    };
    for name in &ENV_VARS[1..] {
        let Some(n) = number(name)? else {
            continue;
        };
        let Some(options) = near.as_mut() else {
            return Err(bad(
                name,
                "the near cache is off: turn it on with CACHETTE_NEAR_CACHE=true or \
                 \"near_cache\" in config.json",
            ));
        };
        match *name {
            "CACHETTE_NEAR_CACHE_MAX_ENTRIES" => {
                options.max_entries =
                    to_usize(n).ok_or_else(|| bad(name, "expected a positive integer"))?
            }
            "CACHETTE_NEAR_CACHE_MAX_BYTES" => {
                options.max_bytes =
                    to_usize(n).ok_or_else(|| bad(name, "expected a positive integer"))?
            }
            "CACHETTE_NEAR_CACHE_MAX_TTL" => options.max_ttl = Some(Duration::from_secs(n)),
            _ => options.max_staleness = Duration::from_millis(n),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_turns_it_on_off_or_sets_bounds() {
        assert_eq!(from_json(&Value::Bool(false)), Ok(None));
        assert_eq!(from_json(&Value::Null), Ok(None));
        assert_eq!(
            from_json(&Value::Bool(true)),
            Ok(Some(NearCacheOptions::default()))
        );
        let options = from_json(&serde_json::json!({
            "max_entries": 5, "max_bytes": 6, "max_ttl": 7, "max_staleness_ms": 800
        }))
        .unwrap()
        .unwrap();
        assert_eq!(options.max_entries, 5);
        assert_eq!(options.max_bytes, 6);
        assert_eq!(options.max_ttl, Some(Duration::from_secs(7)));
        assert_eq!(options.max_staleness, Duration::from_millis(800));
        for (doc, key) in [
            (
                serde_json::json!({"max_entrys": 5}),
                "near_cache.max_entrys",
            ),
            (
                serde_json::json!({"max_entries": 0}),
                "near_cache.max_entries",
            ),
            (
                serde_json::json!({"max_bytes": "1"}),
                "near_cache.max_bytes",
            ),
            (serde_json::json!({"max_ttl": -1}), "near_cache.max_ttl"),
            (serde_json::json!(3), "near_cache"),
        ] {
            let (field, _) = from_json(&doc).expect_err(key);
            assert_eq!(field, key);
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn bool_of(v: &str) -> Option<bool> {
        match v {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    #[test]
    fn the_environment_turns_it_on_off_and_replaces_bounds() {
        let mut near = None;
        apply_env(
            &mut near,
            &env(&[
                ("CACHETTE_NEAR_CACHE", "true"),
                ("CACHETTE_NEAR_CACHE_MAX_ENTRIES", "9"),
            ]),
            bool_of,
        )
        .unwrap();
        assert_eq!(near.map(|o| o.max_entries), Some(9));
        // A file's bounds are kept when the environment only names one.
        let mut near = Some(NearCacheOptions {
            max_bytes: 77,
            ..Default::default()
        });
        apply_env(
            &mut near,
            &env(&[("CACHETTE_NEAR_CACHE_MAX_TTL", "30")]),
            bool_of,
        )
        .unwrap();
        let o = near.unwrap();
        assert_eq!(
            (o.max_bytes, o.max_ttl),
            (77, Some(Duration::from_secs(30)))
        );
        apply_env(&mut near, &env(&[("CACHETTE_NEAR_CACHE", "0")]), bool_of).unwrap();
        assert_eq!(near, None);
        for (vars, name) in [
            (
                vec![("CACHETTE_NEAR_CACHE", "maybe")],
                "CACHETTE_NEAR_CACHE",
            ),
            (
                vec![("CACHETTE_NEAR_CACHE_MAX_BYTES", "5")],
                "CACHETTE_NEAR_CACHE_MAX_BYTES",
            ),
            (
                vec![
                    ("CACHETTE_NEAR_CACHE", "1"),
                    ("CACHETTE_NEAR_CACHE_MAX_STALENESS_MS", "soon"),
                ],
                "CACHETTE_NEAR_CACHE_MAX_STALENESS_MS",
            ),
        ] {
            let mut near = None;
            let e = apply_env(&mut near, &env(&vars), bool_of).expect_err(name);
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
