//! Failure behaviour against a real, spawned `redis-server`: down at start, killed and
//! restarted, paused. Every operation must come back with a typed error within the command
//! timeout (plus scheduling slack), never panic and never hang, and the same manager must work
//! again once the server is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{CacheManager, ErrorKind, Ttl};
use cachette_test_support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(300);
const SLACK: Duration = Duration::from_millis(700);

fn manager(url: &str) -> CacheManager {
    CacheManager::builder()
        .url(url)
        .key_prefix("fail:")
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .expect("manager builds lazily even when the server is down")
}

/// Retries `op` until it succeeds, at most `attempts` times, 100 ms apart.
async fn eventually<F, Fut, T>(attempts: usize, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = cachette::Result<T>>,
{
    for _ in 0..attempts {
        if let Ok(v) = op().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_at_start_gives_typed_errors_then_recovers() {
    // Reserve a port, then start nothing on it yet.
    let server = RedisServer::new();
    let url = server.url();
    server.kill();
    let cache = manager(&url);

    let started = Instant::now();
    let err = cache.get::<u32>("k").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err:?}"
    );
    assert!(
        started.elapsed() < TIMEOUT + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.key(), Some("fail:k"));

    let started = Instant::now();
    assert!(!cache.ping().await);
    assert!(started.elapsed() < TIMEOUT + SLACK);
    let err = cache.set("k", &1, Ttl::Default).await.unwrap_err();
    assert!(err.is_backend_failure(), "{err:?}");
    assert!(cache.stats().errors >= 2);

    server.restart();
    let value = eventually(30, || async {
        cache.set("k", &7u32, Ttl::Default).await?;
        cache.get::<u32>("k").await
    })
    .await;
    assert_eq!(
        value,
        Some(Some(7)),
        "the same manager works once the server is up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_reconnects_the_same_manager() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    cache.set("k", &1u32, Ttl::Never).await.unwrap();

    server.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let err = cache.get::<u32>("k").await.unwrap_err();
        assert!(err.is_backend_failure(), "{err:?}");
        assert!(
            started.elapsed() < TIMEOUT + SLACK,
            "took {:?}",
            started.elapsed()
        );
    }

    server.restart();
    // The restarted server is empty (no persistence); what matters is that calls succeed.
    let got = eventually(30, || cache.get::<u32>("k")).await;
    assert_eq!(got, Some(None));
    cache.set("k", &2u32, Ttl::Never).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(2));
    assert!(cache.ping().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_within_the_command_timeout() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    cache.set("k", &1u32, Ttl::Never).await.unwrap();

    server.stop_process();
    let started = Instant::now();
    let err = cache.get::<u32>("k").await.unwrap_err();
    let took = started.elapsed();
    server.continue_process();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(took >= TIMEOUT && took < TIMEOUT + SLACK, "took {took:?}");

    let got = eventually(30, || cache.get::<u32>("k")).await;
    assert_eq!(got, Some(Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_during_an_outage_all_return() {
    let server = RedisServer::new();
    let cache = manager(&server.url());
    server.kill();
    let started = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get::<u32>(&format!("k{i}")).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap_err().is_backend_failure());
    }
    assert!(
        started.elapsed() < TIMEOUT + SLACK,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_protected_server() {
    let server = RedisServer::builder()
        .password("s3cret pass")
        .spawn()
        .unwrap();
    let good = manager(&server.url());
    good.set("k", &1, Ttl::Default).await.unwrap();
    assert_eq!(good.get::<i32>("k").await.unwrap(), Some(1));

    let bad = manager(&format!("redis://:wrong@127.0.0.1:{}/", server.port()));
    let err = bad.get::<i32>("k").await.unwrap_err();
    assert!(!err.to_string().contains("wrong"), "{err}");
    assert!(!format!("{err:?}").contains("wrong"));
    assert!(!format!("{bad:?}").contains("wrong"));
    assert!(!bad.ping().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_env_style_settings_reach_redis() {
    let server = RedisServer::new();
    let port = server.port().to_string();
    let vars = [
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", port.as_str()),
        ("REDIS_DB", "3"),
        ("REDIS_KEY_PREFIX", "xcore:"),
        ("REDIS_DEFAULT_TTL", "120"),
    ];
    let config = cachette::Config::load_from(None, |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let cache = config.builder().build().unwrap();
    assert_eq!(cache.backend_name(), "redis");
    cache.set("user:1", &"ada", Ttl::Default).await.unwrap();
    let raw = server.cli(&["-n", "3", "GET", "xcore:user:1"]);
    assert_eq!(raw.trim(), "\"ada\"");
    let ttl: u64 = server
        .cli(&["-n", "3", "TTL", "xcore:user:1"])
        .trim()
        .parse()
        .unwrap();
    assert!((115..=120).contains(&ttl), "{ttl}");
    assert_eq!(cache.info().await.unwrap().keys_in_db(3), 1);
}

/// Keeps the server busy with a Lua loop of `micros` (the server answers nothing meanwhile).
fn busy_script(micros: u64) -> Vec<String> {
    let script = format!(
        "local s = redis.call('TIME') \
         repeat local n = redis.call('TIME') \
         until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > {micros} \
         return 1"
    );
    vec!["EVAL".into(), script, "0".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_in_flight_on_a_paused_server_times_out_then_the_connection_recovers() {
    let server = RedisServer::new();
    let cache = CacheManager::builder()
        .url(server.url())
        .key_prefix("fail:")
        .command_timeout(TIMEOUT)
        .circuit_breaker(0, Duration::ZERO) // every call must reach the connection
        .build()
        .unwrap();
    cache.set("k", &1u32, Ttl::Never).await.unwrap();

    server.stop_process();
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let result = cache.get::<u32>("k").await;
                (result, Instant::now())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        // A regression must fail here, not hang the suite.
        let (result, at) = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("every call returns")
            .unwrap();
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
        slowest = slowest.max(at.duration_since(started));
    }
    server.continue_process();
    // Stall detection samples every eighth of the timeout: at most ~1.25x it, plus slack.
    assert!(
        slowest >= TIMEOUT && slowest < TIMEOUT + TIMEOUT / 4 + SLACK,
        "slowest call took {slowest:?}"
    );
    let got = eventually(30, || cache.get::<u32>("k")).await;
    assert_eq!(got, Some(Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_slower_than_the_timeout_times_out_and_later_calls_succeed() {
    let server = Arc::new(RedisServer::new());
    let cache = manager(&server.url());
    cache.set("k", &1u32, Ttl::Never).await.unwrap();

    let busy = {
        let args = busy_script(3 * TIMEOUT.as_micros() as u64);
        let server = server.clone();
        std::thread::spawn(move || server.cli_output(&args).map(|o| o.status.success()))
    };
    // Let the script start.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), cache.get::<u32>("k"))
        .await
        .expect("the call returns")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(
        started.elapsed() < TIMEOUT + TIMEOUT / 4 + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(busy.join().unwrap().ok(), Some(true));
    let got = eventually(30, || cache.get::<u32>("k")).await;
    assert_eq!(got, Some(Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_but_answering_server_is_never_declared_stalled() {
    // The server stalls for a third of the timeout at a time, over and over, while calls keep
    // coming: replies arrive between the stalls, so no call may fail.
    let server = Arc::new(RedisServer::new());
    let cache = manager(&server.url());
    cache.set("k", &1u32, Ttl::Never).await.unwrap();
    let busy = {
        let args = busy_script(TIMEOUT.as_micros() as u64 / 3);
        let server = server.clone();
        std::thread::spawn(move || {
            (0..8).all(|_| server.cli_output(&args).is_ok_and(|o| o.status.success()))
        })
    };
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut calls = 0u32;
                let deadline = Instant::now() + Duration::from_millis(800);
                while Instant::now() < deadline && calls < 100_000 {
                    cache.get::<u32>("k").await?;
                    calls += 1;
                }
                Ok::<u32, cachette::Error>(calls)
            })
        })
        .collect();
    for w in workers {
        let calls = w.await.unwrap().expect("no call may time out");
        assert!(calls > 0);
    }
    assert!(busy.join().unwrap(), "the busy scripts ran");
}

// ---- the stall watchdog's edge cases (found in review) ------------------------------------

const REVIEW_TIMEOUT: Duration = Duration::from_millis(400);

fn unguarded(url: &str) -> CacheManager {
    CacheManager::builder()
        .url(url)
        .key_prefix("review:")
        .command_timeout(REVIEW_TIMEOUT)
        .connect_timeout(REVIEW_TIMEOUT)
        .circuit_breaker(0, Duration::ZERO)
        .build()
        .unwrap()
}

/// Keeps the server busy (answering nothing) for `ms`, from a connection of its own.
async fn busy_for(url: &str, ms: u64) -> tokio::task::JoinHandle<()> {
    let client = redis::Client::open(url).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let script = format!(
        "local s = redis.call('TIME') \
         repeat local n = redis.call('TIME') \
         until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > {} \
         return 1",
        ms * 1000
    );
    tokio::spawn(async move {
        let _: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
    })
}

/// Two server hiccups of 250 ms each (timeout 400 ms) on a lightly used connection; the call
/// made during the first one is given up by its caller (an outer deadline of 150 ms, e.g. a
/// request deadline). Its reply still arrives, which is progress: the call during the second
/// hiccup must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_its_caller_gave_up_on_does_not_make_a_healthy_connection_look_stalled() {
    let server = RedisServer::new();
    let url = server.url();
    let cache = unguarded(&url);
    cache.set("k", &1u32, Ttl::Never).await.unwrap();

    let hiccup = busy_for(&url, 250).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t0 = Instant::now();
    let gave_up = tokio::time::timeout(Duration::from_millis(150), cache.get::<u32>("k")).await;
    assert!(gave_up.is_err(), "the server is busy: the caller gives up");
    hiccup.await.unwrap();

    tokio::time::sleep_until((t0 + Duration::from_millis(420)).into()).await;
    let hiccup = busy_for(&url, 250).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let result = cache.get::<u32>("k").await;
    let took = started.elapsed();
    hiccup.await.unwrap();
    assert_eq!(
        result.as_ref().ok(),
        Some(&Some(1)),
        "the server never went quiet for more than 250 ms (timeout {REVIEW_TIMEOUT:?}), \
         yet the call failed after {took:?}: {result:?}"
    );
}

/// The connection (its driver and its watchdog) lives on the runtime of whichever caller
/// connected. When that runtime is alive but not being driven, a caller on another runtime
/// must still get an answer (a timeout, then a connection of its own runtime).
#[test]
fn a_call_returns_even_when_the_runtime_that_connected_is_idle() {
    let server = RedisServer::new();
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = idle.block_on(async {
        let cache = unguarded(&server.url());
        cache.set("k", &1u32, Ttl::Never).await.unwrap();
        cache
    });
    // `idle` is kept alive (not dropped) but nothing drives it any more.
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = other.block_on(async {
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), cache.get::<u32>("k")).await;
        let took = started.elapsed();
        // Then it heals: a connection driven by this runtime.
        let healed = eventually(30, || cache.get::<u32>("k")).await;
        assert_eq!(healed, Some(Some(1)));
        (r, took)
    });
    let (result, took) = outcome;
    assert!(
        result.is_ok(),
        "cache.get did not return within 5 s (command timeout {REVIEW_TIMEOUT:?}): took {took:?}"
    );
    drop(idle);
}

/// A future polled once (its command sent, the reply back in microseconds) and then held
/// without being polled counts as pending: with no other traffic the watchdog replaces the
/// connection, and the next call must not fail because of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_future_never_makes_a_later_call_fail() {
    let server = RedisServer::new();
    let cache = unguarded(&server.url());
    cache.set("k", &1u32, Ttl::Never).await.unwrap();

    let parked = cache.get::<u32>("k");
    let mut parked = std::pin::pin!(parked);
    // Sent while the server is paused, so that the first poll cannot already complete; the
    // reply arrives right after, while nobody polls the future.
    server.stop_process();
    let first = futures_poll_once(parked.as_mut()).await;
    server.continue_process();
    assert!(first.is_none(), "{first:?}");
    tokio::time::sleep(REVIEW_TIMEOUT + Duration::from_millis(200)).await;

    let started = Instant::now();
    let result = cache.get::<u32>("k").await;
    let took = started.elapsed();
    // The parked future still gets its value (its reply was delivered before the abort).
    assert_eq!(parked.await.unwrap(), Some(1));
    assert_eq!(
        result.as_ref().ok(),
        Some(&Some(1)),
        "a healthy, idle server; the call failed after {took:?}: {result:?}"
    );
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
    let mut f = f;
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut f).poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}
