//! Errors that are not connection problems, against a real `redis-server`: a key that is not
//! UTF-8, `WRONGTYPE`, `NOPERM`, `OOM`, `READONLY`, `ERR`, and values over the size limit. None of them
//! may drop the connection, be retried as if it had broken, or count toward the circuit
//! breaker: after 20 such failures with `breaker_failures = 5`, the breaker is still closed and
//! a healthy key still reads.

use std::time::Duration;

use bytes::Bytes;
use cachette::{CacheManager, CircuitState, ErrorKind, LoadOptions, Ttl};
use cachette_test_support::RedisServer;

const FAILURES: usize = 20;

fn manager(url: &str) -> CacheManager {
    CacheManager::builder()
        .url(url)
        .key_prefix("cache:")
        .circuit_breaker(5, Duration::from_secs(60))
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("builds")
}

/// The breaker is closed, a healthy key reads, and the manager did not reconnect since
/// `before` (one more connection: the `INFO` query itself).
async fn still_healthy(cache: &CacheManager, server: &RedisServer, before: u64) {
    assert_eq!(
        cache.circuit_breaker().expect("has a breaker").state(),
        CircuitState::Closed
    );
    assert_eq!(cache.get::<u32>("healthy").await.unwrap(), Some(1));
    assert_eq!(
        server.connections_received(),
        before + 1,
        "the manager must keep its connection"
    );
}

async fn raw_connection(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_utf8_is_listed_without_failing_and_deleted_by_patterns() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    cache.set("healthy", &1u32, Ttl::Never).await.unwrap();
    cache.set("user:1", &1u32, Ttl::Never).await.unwrap();
    let mut raw = raw_connection(&server).await;
    let foreign: &[u8] = b"cache:\xffk";
    let other: &[u8] = b"other:\xffk";
    let _: () = redis::cmd("SET")
        .arg(foreign)
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(other)
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    let before = server.connections_received();

    for _ in 0..FAILURES {
        // Left out (and reported in a warning), not a failure.
        assert_eq!(cache.keys("*").await.unwrap(), vec!["healthy", "user:1"]);
    }
    still_healthy(&cache, &server, before).await;

    // delete_pattern and clear remove it too, and nothing outside the prefix.
    let _: () = redis::cmd("SET")
        .arg(b"cache:user:\xfe".as_slice())
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(cache.delete_pattern("user:*").await.unwrap(), 2);
    assert_eq!(cache.clear().await.unwrap(), 2);
    let left: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(left, vec![other.to_vec()]);
    assert_eq!(
        cache.circuit_breaker().unwrap().state(),
        CircuitState::Closed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongtype_is_a_backend_error_that_keeps_the_connection_and_the_breaker_closed() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    cache.set("healthy", &1u32, Ttl::Never).await.unwrap();
    server.cli(["LPUSH", "cache:list", "a"]);
    let before = server.connections_received();
    for _ in 0..FAILURES {
        let e = cache.get::<u32>("list").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        assert!(e.to_string().contains("WRONGTYPE"), "{e}");
        let e = cache.get_raw("list").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        let e = cache
            .backend()
            .delete_if_equals("cache:list", b"a")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    }
    still_healthy(&cache, &server, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noperm_is_a_permission_error_that_keeps_the_connection_and_the_breaker_closed() {
    let server = RedisServer::builder()
        .acl_user(
            "limited",
            ["on", ">pw", "~*", "&*", "+@all", "-pttl", "-unlink"],
        )
        .spawn()
        .unwrap();
    let cache = manager(&server.url_for_user("limited", "pw"));
    cache.set("healthy", &1u32, Ttl::Never).await.unwrap();
    let before = server.connections_received();
    for _ in 0..FAILURES {
        let e = cache.ttl("healthy").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
        assert!(e.to_string().contains("PTTL refused"), "{e}");
        assert!(
            e.is_backend_failure(),
            "fail-open treats it as a cache failure"
        );
        let e = cache.delete("healthy").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
        assert!(e.to_string().contains("UNLINK refused"), "{e}");
    }
    still_healthy(&cache, &server, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_is_a_backend_error_that_keeps_the_connection_and_the_breaker_closed() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    cache.set("healthy", &1u32, Ttl::Never).await.unwrap();
    server.cli(["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.cli(["CONFIG", "SET", "maxmemory", "1"]);
    let before = server.connections_received();
    for i in 0..FAILURES {
        let e = cache.set("k", &i, Ttl::Never).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        assert!(e.to_string().contains("OOM"), "{e}");
        let e = cache.set_many([("a", 1), ("b", 2)], Ttl::Never).await;
        assert_eq!(e.unwrap_err().kind(), ErrorKind::Backend);
    }
    still_healthy(&cache, &server, before).await;
}

/// Outside Redis Sentinel, `READONLY` (a write to a replica) is an answer like any other:
/// not a broken connection (only a Sentinel backend takes it for a demotion, see `sentinel`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_is_a_backend_error_that_keeps_the_connection_and_the_breaker_closed() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    cache.set("healthy", &1u32, Ttl::Never).await.unwrap();
    // A replica of a primary that is not there: it keeps its data and refuses writes.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    server.cli(["REPLICAOF", "127.0.0.1", &closed.to_string()]);
    let before = server.connections_received();
    for i in 0..FAILURES {
        let e = cache.set("k", &i, Ttl::Never).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        assert!(e.to_string().contains("ReadOnly"), "{e}");
    }
    still_healthy(&cache, &server, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_replies_keep_the_connection_and_the_breaker_closed() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    cache.set("healthy", &1u32, Ttl::Never).await.unwrap();
    let before = server.connections_received();
    for _ in 0..FAILURES {
        // `SCAN ... COUNT 0`: ERR syntax error.
        let e = cache.backend().scan(0, "cache:*", 0).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        assert!(e.to_string().contains("syntax error"), "{e}");
        // A TTL past Redis's range (`ERR ... out of range`), if it reaches the server.
        if let Err(e) = cache.backend().expire("cache:healthy", Duration::MAX).await {
            assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        }
    }
    still_healthy(&cache, &server, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_max_value_bytes_is_refused_before_sending_on_every_backend() {
    let server = RedisServer::new();
    let redis = CacheManager::builder()
        .url(server.url())
        .circuit_breaker(5, Duration::from_secs(60))
        .max_value_bytes(1024)
        .build()
        .unwrap();
    let memory = CacheManager::builder()
        .max_value_bytes(1024)
        .build()
        .unwrap();
    for cache in [&redis, &memory] {
        let fits = Bytes::from(vec![b'x'; 1024]);
        let over = Bytes::from(vec![b'x'; 1025]);
        cache
            .set_raw("fits", fits.clone(), Ttl::Never)
            .await
            .unwrap();
        for _ in 0..FAILURES {
            let e = cache
                .set_raw("big", over.clone(), Ttl::Never)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert_eq!(e.key(), Some("cache:big"));
            let text = e.to_string();
            assert!(
                text.contains("1025") && text.contains("1024") && text.contains("cache:big"),
                "{text}"
            );
            // JSON of a 1030-character string: 1032 bytes.
            let big = "y".repeat(1030);
            let e = cache.set("big", &big, Ttl::Never).await.unwrap_err();
            assert!(e.to_string().contains("1032"), "{e}");
            let e = cache.set_nx("big", &big, Ttl::Never).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            let e = cache
                .set_many(
                    [("a", "small".to_owned()), ("big", big.clone())],
                    Ttl::Never,
                )
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            // Read-through: the value is returned, not stored.
            let loaded = cache
                .get_or_load("loaded", &LoadOptions::ttl(Ttl::Never), || async {
                    Ok::<_, std::io::Error>(big.clone())
                })
                .await;
            assert_eq!(loaded.ok().as_deref(), Some(big.as_str()));
        }
        assert!(!cache.exists("big").await.unwrap());
        assert!(!cache.exists("a").await.unwrap());
        assert!(!cache.exists("loaded").await.unwrap());
        let report = cache
            .warm(&LoadOptions::ttl(Ttl::Never))
            .run([("w1", "small".to_owned()), ("w2", "z".repeat(2000))])
            .await
            .unwrap();
        assert_eq!((report.written, report.failed), (1, 1));
        assert_eq!(
            report.first_error.map(|e| e.kind()),
            Some(ErrorKind::InvalidInput)
        );
        assert_eq!(cache.get_raw("fits").await.unwrap(), Some(fits));
    }
    assert_eq!(
        redis.circuit_breaker().unwrap().state(),
        CircuitState::Closed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_server_refuses_for_its_size_is_not_resent_and_does_not_open_the_breaker() {
    // The server refuses bulk strings over 1 MiB (and closes the connection); the client
    // limit is above it.
    let server = RedisServer::builder()
        .args(["--proto-max-bulk-len", "1mb"])
        .spawn()
        .unwrap();
    let cache = CacheManager::builder()
        .url(server.url())
        .circuit_breaker(5, Duration::from_secs(60))
        .command_timeout(Duration::from_secs(2))
        .max_value_bytes(64 * 1024 * 1024)
        .build()
        .unwrap();
    cache.set("healthy", &1u32, Ttl::Never).await.unwrap();
    let over = Bytes::from(vec![b'x'; 48 * 1024 * 1024]);
    const N: u64 = 8;
    let before = server.connections_received();
    for _ in 0..N {
        let e = cache
            .set_raw("big", over.clone(), Ttl::Never)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    }
    assert_eq!(
        cache.circuit_breaker().unwrap().state(),
        CircuitState::Closed
    );
    assert_eq!(cache.get::<u32>("healthy").await.unwrap(), Some(1));
    // Each refused write costs its connection (the server closes it) but is not uploaded
    // again on a new one: at most one connection per write, plus the final INFO's own.
    let opened = server.connections_received() - before;
    assert!(
        opened <= N + 1,
        "{opened} connections for {N} refused writes"
    );
}
