//! Credentials never leave the [`cachette::RedisEndpoint`] they are parsed into: for arbitrary
//! user names and passwords (printable, non-ASCII, `@`, `#`, `%`, `:`, `/`, spaces, quotes),
//! no `Display`/`Debug` of the configuration, the builders or the manager, no error chain and
//! no tracing event emitted while building and connecting contains them, raw or
//! percent-encoded. Also: the empty-prefix guard of `clear`/`delete_pattern`.

use std::sync::OnceLock;
use std::time::Duration;

use cachette::{CacheManager, Config, ErrorKind, RedisEndpoint, StatsPublisher};
use cachette_test_support::RedisServer;
use proptest::prelude::*;

use crate::support::logged;

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A credential: arbitrary text around a marker, so that a partial leak shows too.
fn credential(marker: &'static str) -> impl Strategy<Value = String> {
    let text = prop_oneof!["[ -~]{0,8}", "[@#%:/ \"'\\\\]{0,6}", "\\PC{0,6}",];
    (text.clone(), text).prop_map(move |(a, b)| format!("{a}{marker}{b}"))
}

/// Every form of the credentials that must not appear.
fn forms(user: &str, password: &str) -> Vec<String> {
    vec![
        user.to_owned(),
        password.to_owned(),
        encode(user),
        encode(password),
        "Us3rMarker".to_owned(),
        "Pa55Marker".to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str, forms: &[String]) -> Result<(), TestCaseError> {
    for form in forms {
        prop_assert!(
            !text.contains(form.as_str()),
            "{} leaks {:?}: {}",
            what,
            form,
            text
        );
    }
    Ok(())
}

/// The error and every `source()` below it.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{e} / {e:?}");
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(&format!(" / {c} / {c:?}"));
        cause = c.source();
    }
    out
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server_with_other_password() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        RedisServer::builder()
            .password("the-right-one")
            .spawn()
            .expect("redis-server")
    })
}

/// Builds, prints and uses a manager for `url` under a capturing subscriber; returns
/// everything printed.
fn everything_printed(url: &str, env_password: Option<&str>) -> String {
    let (mut out, log) = logged(tracing::Level::TRACE, async {
        let mut out = String::new();
        // Through the environment (REDIS_URL + REDIS_PASSWORD) ...
        let vars = [
            ("REDIS_URL", Some(url.to_owned())),
            ("REDIS_PASSWORD", env_password.map(str::to_owned)),
            ("REDIS_COMMAND_TIMEOUT_MS", Some("300".to_owned())),
        ];
        let config = match Config::load_from(None, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.clone())
        }) {
            Ok(config) => config,
            Err(e) => {
                out.push_str(&format!("{}\n", chain(&e)));
                Config::default()
            }
        };
        out.push_str(&format!("{config:?}\n{}\n", config.describe_backend()));
        if let Ok(publisher) = config.stats_publisher() {
            out.push_str(&format!("{publisher:?}\n"));
        }
        // ... and through the builder.
        let builder = CacheManager::builder()
            .url(url)
            .command_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(300));
        out.push_str(&format!("{builder:?}\n{:?}\n", builder.config()));
        out.push_str(&format!("{:?}\n", StatsPublisher::builder(url)));
        let mut caches = Vec::new();
        for built in [builder.build(), config.builder().build()] {
            match built {
                Ok(cache) => caches.push(cache),
                Err(e) => out.push_str(&format!("{}\n", chain(&e))),
            }
        }
        for cache in caches {
            out.push_str(&format!("{cache:?}\n{}\n", cache.describe()));
            if let Ok(p) = cache.stats_publisher() {
                out.push_str(&format!("{p:?}\n"));
            }
            for _ in 0..2 {
                match cache.get::<String>("k").await {
                    Ok(v) => out.push_str(&format!("{v:?}\n")),
                    Err(e) => out.push_str(&format!("{}\n", chain(&e))),
                }
            }
            let io: std::io::Error = match cache.set("k", &1, Duration::from_secs(1)).await {
                Ok(()) => std::io::Error::other("stored"),
                Err(e) => e.into(),
            };
            out.push_str(&format!("{}\n", chain(&io)));
        }
        out
    });
    out.push_str(&log);
    out
}

/// [`everything_printed`] for Redis Sentinel: sentinels at `sentinel` asked with `user` and
/// `password` (from the environment and from the builder).
fn sentinel_printed(sentinel: &str, user: &str, password: &str) -> String {
    let (mut out, log) = logged(tracing::Level::TRACE, async {
        let mut out = String::new();
        let vars = [
            ("REDIS_SENTINELS", sentinel.to_owned()),
            ("REDIS_SENTINEL_MASTER", "m".to_owned()),
            ("REDIS_SENTINEL_USERNAME", user.to_owned()),
            ("REDIS_SENTINEL_PASSWORD", password.to_owned()),
            ("REDIS_COMMAND_TIMEOUT_MS", "300".to_owned()),
        ];
        let config = Config::load_from(None, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("a valid configuration");
        out.push_str(&format!("{config:?}\n{}\n", config.describe_backend()));
        if let Ok(publisher) = config.stats_publisher() {
            out.push_str(&format!("{publisher:?}\n"));
        }
        let builder = CacheManager::builder()
            .sentinels([sentinel], "m")
            .sentinel_auth(Some(user.to_owned()), Some(password.to_owned()))
            .command_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(300));
        out.push_str(&format!("{builder:?}\n{:?}\n", builder.config()));
        for built in [builder.build(), config.builder().build()] {
            let cache = match built {
                Ok(cache) => cache,
                Err(e) => {
                    out.push_str(&format!("{}\n", chain(&e)));
                    continue;
                }
            };
            out.push_str(&format!("{cache:?}\n{}\n", cache.describe()));
            match cache.get::<String>("k").await {
                Ok(v) => out.push_str(&format!("{v:?}\n")),
                Err(e) => out.push_str(&format!("{}\n", chain(&e))),
            }
            if let Err(e) = cache.set("k", &1, Duration::from_secs(1)).await {
                out.push_str(&format!("{}\n", chain(&e)));
            }
        }
        out
    });
    out.push_str(&log);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The sentinels' user name and password, against a closed port and a server that wants
    /// another password (standing in for a sentinel: its `AUTH` fails).
    #[test]
    fn sentinel_credentials_never_printed(
        user in credential("Us3rMarker"),
        password in credential("Pa55Marker"),
    ) {
        let printed = sentinel_printed(&format!("127.0.0.1:{}", closed_port()), &user, &password);
        prop_assert!(printed.contains("no sentinel gave"), "{}", printed);
        assert_clean("output (closed port)", &printed, &forms(&user, &password))?;
        let server = server_with_other_password();
        let printed = sentinel_printed(&format!("127.0.0.1:{}", server.port()), &user, &password);
        assert_clean("output (AUTH refused)", &printed, &forms(&user, &password))?;
    }

    /// Issue 9 item 1, against a closed port (connection refused).
    #[test]
    fn credentials_never_printed_closed_port(
        user in credential("Us3rMarker"),
        password in credential("Pa55Marker"),
    ) {
        let url = format!("redis://{}:{}@127.0.0.1:{}/3", encode(&user), encode(&password), closed_port());
        let printed = everything_printed(&url, None);
        assert_clean("output", &printed, &forms(&user, &password))?;
        // Unencoded (a password with a '/', a space, a quote, ...), as in the issue.
        let raw = format!("redis://:{password}@127.0.0.1:{}/3", closed_port());
        let printed = everything_printed(&raw, None);
        assert_clean("output (unencoded URL)", &printed, &forms(&user, &password))?;
    }

    /// Issue 9 item 1, against a real server that wants another password (AUTH fails).
    #[test]
    fn credentials_never_printed_wrong_password(
        user in credential("Us3rMarker"),
        password in credential("Pa55Marker"),
    ) {
        let server = server_with_other_password();
        let url = format!("redis://{}@127.0.0.1:{}/0", encode(&user), server.port());
        let printed = everything_printed(&url, Some(&password));
        assert_clean("output", &printed, &forms(&user, &password))?;
    }

    /// Fuzzing URLs: any text parses or is rejected without a panic, and a rejection says
    /// what is wrong without echoing any of the input.
    #[test]
    fn any_url_parses_or_names_the_part(
        scheme in prop_oneof![
            Just("redis://".to_owned()),
            Just("rediss://".to_owned()),
            Just("redis+unix://".to_owned()),
            Just(String::new()),
            "[a-z+]{0,6}://",
        ],
        rest in "\\PC{0,40}",
    ) {
        let url = format!("{scheme}{rest}Zq8Marker");
        match RedisEndpoint::parse(&url) {
            Ok(e) => { let _ = (e.to_string(), format!("{e:?}"), e.client()); }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::Config);
                let text = e.to_string();
                prop_assert!(text.starts_with("cachette configuration error: invalid url from code: "), "{}", text);
                prop_assert!(!text.contains("Zq8Marker"), "{}", text);
            }
        }
    }

    /// URLs built from parts parse back to those parts.
    #[test]
    fn urls_round_trip(
        user in proptest::option::of("\\PC{1,8}"),
        password in proptest::option::of("\\PC{1,8}"),
        host in "[a-z][a-z0-9.-]{0,10}",
        port in 1u16..,
        db in 0i64..10_000,
    ) {
        let auth = match (&user, &password) {
            (None, None) => String::new(),
            (u, p) => format!(
                "{}{}@",
                u.as_deref().map(encode).unwrap_or_default(),
                p.as_deref().map(|p| format!(":{}", encode(p))).unwrap_or_default()
            ),
        };
        let e = RedisEndpoint::parse(&format!("redis://{auth}{host}:{port}/{db}")).unwrap();
        prop_assert_eq!(e.username.clone(), user);
        prop_assert_eq!(e.password.as_ref().map(|p| p.expose().to_owned()), password);
        prop_assert_eq!(e.db, db);
        prop_assert_eq!(e.to_string().ends_with(&format!("{host}:{port}/{db}")), true);
    }
}

/// Issue 9 item 3: with an empty prefix, `clear` and patterns that could match every key
/// refuse; `delete_pattern_forced` is the explicit way.
#[tokio::test]
async fn an_empty_prefix_refuses_to_clear_the_database() {
    let server = RedisServer::new();
    let other = CacheManager::builder()
        .url(server.url())
        .key_prefix("other-app:")
        .build()
        .unwrap();
    other.set("k", &1, Duration::from_secs(60)).await.unwrap();
    let memory = CacheManager::builder().key_prefix("").build().unwrap();
    let redis = CacheManager::builder()
        .url(server.url())
        .key_prefix("")
        .build()
        .unwrap();
    for cache in [&memory, &redis] {
        cache
            .set("user:1", &1, Duration::from_secs(60))
            .await
            .unwrap();
        let e = cache.clear().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("empty key prefix"), "{e}");
        for pattern in ["*", "**", "?*", "[u]*", "[^x]*", "\\"] {
            let e = cache.delete_pattern(pattern).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{pattern}: {e}");
        }
        assert_eq!(cache.delete_pattern("nothing:*").await.unwrap(), 0);
        assert_eq!(cache.delete_pattern("user:*").await.unwrap(), 1);
        assert_eq!(
            other.get::<i64>("k").await.unwrap(),
            Some(1),
            "another app's key survives"
        );
    }
    // Forced: everything goes, the other application's key too (that is what it means).
    assert_eq!(redis.delete_pattern_forced("*").await.unwrap(), 1);
    assert_eq!(other.get::<i64>("k").await.unwrap(), None);
    // A prefixed manager is not affected by the guard.
    assert_eq!(other.clear().await.unwrap(), 0);
}

/// Issue 9 item 10: a disabled manager behaves as `Config::enabled` documents.
#[tokio::test]
async fn a_disabled_manager_reads_miss_and_writes_succeed() {
    let cache = CacheManager::builder().enabled(false).build().unwrap();
    cache.set("k", &1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(cache.get::<i64>("k").await.unwrap(), None);
    assert!(!cache.delete("k").await.unwrap());
    assert_eq!(cache.clear().await.unwrap(), 0);
    assert!(!cache.ping().await);
    let e = cache.backend().ping().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disabled);
}
