//! ACL users against a real server: the rules of `cachette::acl::rules` are enough (the
//! conformance suite and the lease scenarios run as such a user, see `conformance` and
//! `stampede`), every command they list is needed, a refused command is a `Permission` error
//! naming it, and wrong credentials are an `Auth` error that is never retried in a loop.

use std::time::Duration;

use cachette::acl::{rules, Feature};
use cachette::{CacheManager, ErrorKind, LoadOptions, Ttl};
use cachette_test_support::RedisServer;

use crate::support::{manual_publisher, unique_prefix, ACL_PASSWORD};

fn server_with_rules(rules: Vec<String>) -> RedisServer {
    let mut user = vec!["on".to_owned(), format!(">{ACL_PASSWORD}")];
    user.extend(rules);
    RedisServer::builder()
        .acl_user("cachette", user)
        .spawn()
        .expect("redis-server with an ACL user")
}

fn manager(url: String, prefix: &str, breaker_failures: u32) -> CacheManager {
    CacheManager::builder()
        .url(url)
        .key_prefix(prefix)
        .circuit_breaker(breaker_failures, Duration::from_secs(60))
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("builds without connecting")
}

/// Every operation of plain caching and of the lease, once; the first error is returned.
async fn tour(cache: &CacheManager) -> cachette::Result<()> {
    cache.set("a", &1u32, Ttl::secs(60)).await?;
    cache.get::<u32>("a").await?;
    cache
        .set_many(
            vec![("b".to_owned(), 2u32), ("c".to_owned(), 3)],
            Ttl::secs(60),
        )
        .await?;
    cache.get_many::<u32, _>(&["a", "b", "zz"]).await?;
    cache.exists("a").await?;
    cache.expire("a", Ttl::secs(30)).await?;
    cache.expire("a", Ttl::Never).await?;
    cache.ttl("a").await?;
    cache.keys("*").await?;
    cache.delete("b").await?;
    cache.delete_pattern("c*").await?;
    cache.info().await?;
    // `ping` answers a bool (the spec's signature): checked by the callers.
    let options = LoadOptions::ttl(Ttl::secs(60)).lock(true);
    let v: u32 = cache
        .get_or_load("leased", &options, || async {
            Ok::<_, std::convert::Infallible>(9)
        })
        .await
        .map_err(|e| match e {
            cachette::LoadError::Cache(e) => e,
            other => cachette::Error::new(ErrorKind::Loader, other.to_string()),
        })?;
    assert_eq!(v, 9);
    // The lease's release (a compare-and-delete script) fails quietly by design (the lease
    // then expires by itself): ask the backend for it directly.
    cache.set_raw("held", &b"token"[..], Ttl::secs(60)).await?;
    let released = cache
        .backend()
        .delete_if_equals(&cache.full_key("held"), b"token")
        .await?;
    assert!(released);
    cache.clear().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_rules_are_enough_for_every_operation() {
    let prefix = unique_prefix("acl-tour");
    let server = server_with_rules(rules(&prefix, &[Feature::Lease]));
    let cache = manager(server.url_for_user("cachette", ACL_PASSWORD), &prefix, 5);
    tour(&cache).await.expect("every operation is allowed");
    assert!(cache.ping().await);
}

/// Take any one command away from the rules and some operation fails with a `Permission`
/// error naming that command (the wake-up channel's `PUBLISH`/`SUBSCRIBE` fail silently by
/// design, waiters then re-check on their own: the lease scenarios as an ACL user check that
/// wake-ups arrive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_command_is_needed() {
    let prefix = unique_prefix("acl-min");
    let full = rules(&prefix, &[Feature::Lease]);
    let silent = ["+publish", "+subscribe"];
    for command in full.iter().filter(|r| r.starts_with('+')) {
        if silent.contains(&command.as_str()) {
            continue;
        }
        let fewer: Vec<String> = full.iter().filter(|r| *r != command).cloned().collect();
        let server = server_with_rules(fewer);
        // No breaker: every refusal reaches the caller.
        let cache = manager(server.url_for_user("cachette", ACL_PASSWORD), &prefix, 0);
        if command == "+ping" {
            assert!(!cache.ping().await, "PING is refused");
            tour(&cache).await.expect("nothing else needs PING");
            continue;
        }
        let e = tour(&cache)
            .await
            .expect_err(&format!("{command} is needed by some operation"));
        // A command that only runs inside a script is refused as the script.
        let name = match command.as_str() {
            "+del" => "EVAL".to_owned(),
            _ => command[1..].to_ascii_uppercase(),
        };
        assert_eq!(e.kind(), ErrorKind::Permission, "without {command}: {e}");
        assert!(
            e.to_string().contains(&format!("{name} refused")),
            "without {command}: {e}"
        );
    }
}

/// A key outside the user's key pattern: the refusal names the command, keeps the connection
/// and does not count toward the breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_outside_the_users_pattern_is_a_permission_error_naming_the_command() {
    let allowed = unique_prefix("acl-mine");
    let server = server_with_rules(rules(&allowed, &[]));
    let url = server.url_for_user("cachette", ACL_PASSWORD);
    let mine = manager(url.clone(), &allowed, 2);
    mine.set("k", &1u8, Ttl::secs(60)).await.unwrap();
    let other = manager(url, "someone-else:", 2);
    for _ in 0..5 {
        let e = other.get::<u8>("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
        assert!(e.to_string().contains("GET refused"), "{e}");
        assert!(e.to_string().contains("cachette::acl::rules"), "{e}");
        let e = other.set("k", &2u8, Ttl::secs(60)).await.unwrap_err();
        assert!(e.to_string().contains("SET refused"), "{e}");
    }
    assert_eq!(
        other.circuit_breaker().unwrap().state(),
        cachette::CircuitState::Closed
    );
    assert_eq!(mine.get::<u8>("k").await.unwrap(), Some(1));
}

/// A wrong password: an `Auth` error naming the cause, one connection attempt per call at most
/// (never a retry within a call), and with a breaker no more attempts once it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_auth_error_never_retried_in_a_loop() {
    let prefix = unique_prefix("acl-auth");
    let server = server_with_rules(rules(&prefix, &[]));
    let url = server.url_for_user("cachette", "not-the-password");

    // Without a breaker: each call tries once.
    let cache = manager(url.clone(), &prefix, 0);
    let before = server.connections_received();
    for _ in 0..10 {
        let e = cache.get::<u8>("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert!(!e.to_string().contains("not-the-password"), "{e}");
        assert!(e.is_backend_failure());
    }
    let made = server.connections_received() - before - 1;
    assert!(made <= 10, "{made} connection attempts for 10 calls");

    // With a breaker of 3: after 3 refusals the calls stop reaching the server.
    let cache = manager(url, &prefix, 3);
    let before = server.connections_received();
    let mut kinds = Vec::new();
    for _ in 0..20 {
        kinds.push(cache.get::<u8>("k").await.unwrap_err().kind());
    }
    assert_eq!(kinds[..3], [ErrorKind::Auth; 3], "{kinds:?}");
    assert!(
        kinds[3..].iter().all(|k| *k == ErrorKind::CircuitOpen),
        "{kinds:?}"
    );
    let made = server.connections_received() - before - 1;
    assert!(made <= 3, "{made} connection attempts for 20 calls");
}

/// The stats publisher and reading its hash back, as a user with the `StatsPublisher` rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_publisher_runs_as_a_user_with_its_rules() {
    let prefix = unique_prefix("acl-stats");
    let server = server_with_rules(rules(&prefix, &[Feature::StatsPublisher]));
    let cache = manager(server.url_for_user("cachette", ACL_PASSWORD), &prefix, 5);
    cache.set("k", &1u8, Ttl::secs(60)).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
    let publisher = manual_publisher(&cache);
    assert!(publisher.publish_now().await.unwrap() > 0);
    let published = cache.published_stats().await.unwrap();
    assert!(published.published_at_ms.is_some());
    cache.reset_published_stats().await.unwrap();

    // Without them, publishing is refused with a Permission error naming the script.
    let prefix = unique_prefix("acl-nostats");
    let server = server_with_rules(rules(&prefix, &[]));
    let cache = manager(server.url_for_user("cachette", ACL_PASSWORD), &prefix, 5);
    cache.set("k", &1u8, Ttl::secs(60)).await.unwrap();
    let publisher = manual_publisher(&cache);
    let e = publisher.publish_now().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
}

/// The near cache as an ACL user: with the `NearCache` rules its channel comes up and the tier
/// answers; without them (`CLIENT TRACKING` is `NOPERM`) it says it was refused, stays off,
/// and every read goes to Redis (so another client's write is seen at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_needs_its_rules_and_stays_off_without_them() {
    async fn near_manager(server: &RedisServer, prefix: &str) -> CacheManager {
        CacheManager::builder()
            .url(server.url_for_user("cachette", ACL_PASSWORD))
            .key_prefix(prefix)
            .command_timeout(Duration::from_secs(2))
            .near_cache(Some(cachette::NearCacheOptions::default()))
            .build()
            .expect("builds without connecting")
    }
    async fn settled(cache: &CacheManager) -> cachette::NearStats {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let s = cache.near_stats().expect("a near cache");
            if s.live || s.refused || std::time::Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    let prefix = unique_prefix("acl-near");
    let server = server_with_rules(rules(&prefix, &[Feature::NearCache]));
    let cache = near_manager(&server, &prefix).await;
    let s = settled(&cache).await;
    assert!(s.live && !s.refused, "{s:?}");
    cache.set("k", &1u8, Ttl::secs(60)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while cache.near_stats().unwrap().hits == 0 {
        assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
        assert!(
            std::time::Instant::now() < deadline,
            "the tier never answered"
        );
    }

    let prefix = unique_prefix("acl-near-off");
    let server = server_with_rules(rules(&prefix, &[]));
    let cache = near_manager(&server, &prefix).await;
    let s = settled(&cache).await;
    assert!(s.refused && !s.live, "{s:?}");
    cache.set("k", &1u8, Ttl::secs(60)).await.unwrap();
    for i in 2..50u8 {
        assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(i - 1));
        // Written by another client: with no tier in the way, the next read sees it.
        server.cli(["SET", &format!("{prefix}k"), &(i).to_string()]);
    }
    let s = cache.near_stats().unwrap();
    assert_eq!((s.hits, s.entries), (0, 0), "{s:?}");
    assert!(s.refused, "{s:?}");

    // The rule is needed.
    for needed in Feature::NearCache.commands() {
        let prefix = unique_prefix("acl-near-less");
        let less: Vec<String> = rules(&prefix, &[Feature::NearCache])
            .into_iter()
            .filter(|r| r != needed)
            .collect();
        let server = server_with_rules(less);
        let s = settled(&near_manager(&server, &prefix).await).await;
        assert!(s.refused && !s.live, "without {needed}: {s:?}");
    }
}
