//! The near cache against a real `redis-server`: hits in process, invalidation by other
//! clients' writes, the process's own writes, `FLUSHALL`, a killed tracking connection, a
//! dead server, expiry no later than the server's, bounds, and a versioned stress checking
//! the staleness bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{CacheManager, NearCacheOptions, NearStats};
use cachette_test_support::RedisServer;
use parking_lot::Mutex;

use crate::support::unique_prefix;

const LONG: Duration = Duration::from_secs(600);

fn options() -> NearCacheOptions {
    NearCacheOptions::default()
}

pub(crate) fn stats(cache: &CacheManager) -> NearStats {
    cache.near_stats().expect("a near cache")
}

/// Polls `check` every 2 ms for at most `within`; whether it became true.
pub(crate) async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A manager on `server` with a near cache, once its invalidation channel is up.
async fn near_with(server: &RedisServer, prefix: &str, options: NearCacheOptions) -> CacheManager {
    let cache = CacheManager::builder()
        .url(server.url())
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .near_cache(Some(options))
        .build()
        .expect("builds");
    assert!(
        eventually(Duration::from_secs(5), async || stats(&cache).live).await,
        "the invalidation channel never came up"
    );
    cache
}

/// Reads `key` until a read is answered by the tier: the server's invalidation of the write
/// that stored it may still be on its way when the first read's reply arrives (and then,
/// rightly, the reply is not kept).
pub(crate) async fn hold(cache: &CacheManager, key: &str) {
    let held = eventually(Duration::from_secs(1), async || {
        let _: Option<u32> = cache.get(key).await.unwrap();
        let hits = stats(cache).hits;
        let _: Option<u32> = cache.get(key).await.unwrap();
        stats(cache).hits > hits
    })
    .await;
    assert!(held, "{key} never entered the tier");
}

/// Whether `cache` reads `value` at `key` within a second (the staleness bound).
pub(crate) async fn sees(cache: &CacheManager, key: &str, value: u32) -> bool {
    eventually(Duration::from_secs(1), async || {
        cache.get::<u32>(key).await.unwrap() == Some(value)
    })
    .await
}

async fn near(server: &RedisServer, prefix: &str) -> CacheManager {
    near_with(server, prefix, options()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_served_in_process_until_another_client_writes() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    let b = near(&server, &prefix).await;
    a.set("k", &1u32, LONG).await.unwrap();
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(1));
    hold(&a, "k").await;
    let before = stats(&a);
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(1));
    assert_eq!(
        stats(&a).hits,
        before.hits + 1,
        "the second read is a tier hit"
    );
    assert_eq!(stats(&a).entries, 1);

    // A write by another client (not cachette at all) reaches the tier.
    server.cli(["SET", &format!("{prefix}k"), "2"]);
    assert!(
        sees(&a, "k", 2).await,
        "a write by redis-cli was not seen within the staleness bound"
    );
    // And one by another manager.
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(2));
    b.set("k", &3u32, LONG).await.unwrap();
    assert!(sees(&a, "k", 3).await);
    assert!(stats(&a).invalidations >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_and_evictions_are_seen_by_the_next_read() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    // Each round: cache the key, change it, read at once. The server's invalidation races with
    // the read; only the local invalidation before the write returns makes every round pass.
    let mut stale = Vec::new();
    for i in 0..300u32 {
        a.set("k", &i, LONG).await.unwrap();
        a.get::<u32>("k").await.unwrap();
        a.set("k", &(i + 1_000_000), LONG).await.unwrap();
        let after_set = a.get::<u32>("k").await.unwrap();
        if after_set != Some(i + 1_000_000) {
            stale.push(("set", i, after_set));
        }
        a.delete("k").await.unwrap();
        let after_delete = a.get::<u32>("k").await.unwrap();
        if after_delete.is_some() {
            stale.push(("delete", i, after_delete));
        }
        a.set_many([("k", i)], LONG).await.unwrap();
        a.get::<u32>("k").await.unwrap();
        a.delete_pattern("k*").await.unwrap();
        let after_pattern = a.get::<u32>("k").await.unwrap();
        if after_pattern.is_some() {
            stale.push(("delete_pattern", i, after_pattern));
        }
    }
    assert!(stale.is_empty(), "stale reads after own writes: {stale:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_empties_the_tier() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    a.set("k", &1u32, LONG).await.unwrap();
    hold(&a, "k").await;
    assert_eq!(stats(&a).entries, 1);
    let flushes = stats(&a).flushes;
    server.cli(["FLUSHALL"]);
    assert!(
        eventually(Duration::from_secs(1), async || stats(&a).flushes > flushes).await,
        "FLUSHALL did not flush the tier"
    );
    assert_eq!(stats(&a).entries, 0);
    assert_eq!(a.get::<u32>("k").await.unwrap(), None);
}

/// The ids of the connections with tracking on (flag `t`) in `CLIENT LIST`.
pub(crate) fn tracking_client_ids(server: &RedisServer) -> Vec<String> {
    server
        .cli(["CLIENT", "LIST"])
        .lines()
        .filter(|line| {
            line.split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('t'))
        })
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_flushes_the_tier_and_comes_back() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    a.set("k", &1u32, LONG).await.unwrap();
    hold(&a, "k").await;
    let flushes = stats(&a).flushes;
    let ids = tracking_client_ids(&server);
    assert_eq!(ids.len(), 1, "one tracking connection per tier: {ids:?}");
    server.cli(["CLIENT", "KILL", "ID", &ids[0]]);
    // A write while the channel is down is never hidden by the tier.
    server.cli(["SET", &format!("{prefix}k"), "2"]);
    assert!(
        eventually(Duration::from_secs(1), async || stats(&a).flushes > flushes).await,
        "losing the channel did not flush the tier"
    );
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(2));
    assert!(
        eventually(Duration::from_secs(5), async || stats(&a).live).await,
        "the channel did not come back"
    );
    let ids_after = tracking_client_ids(&server);
    assert_eq!(ids_after.len(), 1);
    assert_ne!(ids_after, ids);
    // Served from the tier again, and invalidated again.
    hold(&a, "k").await;
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(2));
    server.cli(["SET", &format!("{prefix}k"), "3"]);
    assert!(sees(&a, "k", 3).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_not_hidden_by_the_tier() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    a.set("k", &1u32, LONG).await.unwrap();
    hold(&a, "k").await;
    server.kill();
    // Within the staleness bound the tier stops answering: reads go to the (dead) server.
    assert!(
        eventually(Duration::from_millis(1500), async || a
            .get::<u32>("k")
            .await
            .is_err())
        .await,
        "the tier kept serving with the server dead"
    );
    assert_eq!(stats(&a).entries, 0);
    server.restart();
    assert!(
        eventually(Duration::from_secs(10), async || stats(&a).live).await,
        "the channel did not come back after a restart"
    );
    // The restarted server is empty (no persistence): nothing old comes back.
    assert_eq!(a.get::<u32>("k").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_no_later_than_their_redis_ttl() {
    let server = RedisServer::new();
    // Keys expire only when touched: the server would not announce their expiry in time.
    server.cli(["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    a.set("k", &1u32, Duration::from_millis(300)).await.unwrap();
    let fetched = Instant::now();
    hold(&a, "k").await;
    assert_eq!(stats(&a).entries, 1);
    tokio::time::sleep(Duration::from_millis(310).saturating_sub(fetched.elapsed())).await;
    let hits = stats(&a).hits;
    assert_eq!(a.get::<u32>("k").await.unwrap(), None);
    assert_eq!(stats(&a).hits, hits, "an expired entry was served");
    // A local cap shortens an entry's life below its TTL at the server.
    let capped = near_with(
        &server,
        &unique_prefix("near"),
        NearCacheOptions {
            max_ttl: Some(Duration::from_secs(1)),
            ..options()
        },
    )
    .await;
    capped.set("k", &1u32, LONG).await.unwrap();
    hold(&capped, "k").await;
    tokio::time::sleep(Duration::from_millis(1010)).await;
    let misses = stats(&capped).misses;
    assert_eq!(capped.get::<u32>("k").await.unwrap(), Some(1));
    assert_eq!(stats(&capped).misses, misses + 1, "the cap did not apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_is_bounded_and_batches_use_it() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near_with(
        &server,
        &prefix,
        NearCacheOptions {
            max_entries: 128,
            ..options()
        },
    )
    .await;
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let items: Vec<(&str, u32)> = keys.iter().map(|k| (k.as_str(), 7)).collect();
    a.set_many(items, LONG).await.unwrap();
    // Let the server's invalidations of those writes arrive first: a reply that crosses its
    // key's invalidation is (rightly) not kept, which would blur the eviction count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values: Vec<Option<u32>> = a.get_many(&refs).await.unwrap();
    assert!(values.iter().all(|v| *v == Some(7)));
    let s = stats(&a);
    assert!(s.entries <= 128, "{} entries", s.entries);
    assert!(s.evictions >= 1000 - 128);
    // A batch of cached keys is answered by the tier.
    let hot: Vec<&str> = refs[..10].to_vec();
    let _: Vec<Option<u32>> = a.get_many(&hot).await.unwrap();
    let hits = stats(&a).hits;
    let again: Vec<Option<u32>> = a.get_many(&hot).await.unwrap();
    assert!(again.iter().all(|v| *v == Some(7)));
    assert!(
        stats(&a).hits >= hits + 8,
        "a batch of hot keys missed the tier"
    );
}

/// Per key, the versions written and when each write completed, in order.
type WriteLog = Vec<Mutex<Vec<(u64, Instant)>>>;

/// Writers on one manager, readers on another, versioned values: no read returns a version
/// older than the newest one whose write completed `max_staleness` before the read began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_is_older_than_the_staleness_bound() {
    const KEYS: usize = 8;
    const WRITES: usize = 2_000;
    const MAX_READS: usize = 2_000_000;
    let bound = Duration::from_millis(200);
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let opts = NearCacheOptions {
        max_staleness: bound,
        ..options()
    };
    let writer = near_with(&server, &prefix, opts).await;
    let reader = near_with(&server, &prefix, opts).await;
    // Per key: (version, completed at), in order.
    let log: Arc<WriteLog> = Arc::new(
        (0..KEYS)
            .map(|_| Mutex::new(vec![(0, Instant::now())]))
            .collect(),
    );
    for k in 0..KEYS {
        writer.set(&format!("v{k}"), &0u64, LONG).await.unwrap();
    }
    let done = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (writer, log, done, writes) =
                (writer.clone(), log.clone(), done.clone(), writes.clone());
            tokio::spawn(async move {
                let mut version = 0u64;
                for i in 1..=WRITES {
                    version += 1;
                    // Writer w owns the keys k with k % 2 == w: versions of a key only grow.
                    let k = (i % (KEYS / 2)) * 2 + w;
                    writer.set(&format!("v{k}"), &version, LONG).await.unwrap();
                    log[k].lock().push((version, Instant::now()));
                    writes.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let mut violations = Vec::new();
    let mut stale_at_all = 0usize;
    let mut reads = 0usize;
    // Read while the writers write (bounded): hits take nanoseconds, so yield now and then.
    while done.load(Ordering::Relaxed) < 2 && reads < MAX_READS {
        reads += 1;
        if reads.is_multiple_of(32) {
            tokio::task::yield_now().await;
        }
        let k = reads % KEYS;
        let began = Instant::now();
        let (required, newest) = {
            let log = log[k].lock();
            let required = log
                .iter()
                .rev()
                .find(|(_, at)| *at + bound < began)
                .map_or(0, |(v, _)| *v);
            (required, log.last().map_or(0, |(v, _)| *v))
        };
        let got: u64 = reader.get(&format!("v{k}")).await.unwrap().unwrap_or(0);
        if got < required {
            violations.push((k, got, required));
        }
        if got < newest {
            stale_at_all += 1;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let s = stats(&reader);
    eprintln!(
        "near stress: {reads} reads, {} writes, {} tier hits, {} invalidations, {} discarded, \
         {stale_at_all} reads older than the newest completed write (allowed within {bound:?})",
        writes.load(Ordering::Relaxed),
        s.hits,
        s.invalidations,
        s.discarded
    );
    assert!(
        violations.is_empty(),
        "{} reads beyond the bound, e.g. {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    // Under this write rate a read may well cross an invalidation every time (its reply is
    // then not kept); once writes stop, the tier answers again.
    hold(&reader, "v0").await;
}

/// Decodes of [`Counted`] so far (this test's own type).
static DECODES: AtomicU64 = AtomicU64::new(0);

/// A `u32` that counts its decodes.
#[derive(Debug, Clone, serde::Serialize)]
struct Counted(u32);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        u32::deserialize(d).map(Counted)
    }
}

async fn shared(cache: &CacheManager, key: &str) -> Option<u32> {
    cache.get_shared::<Counted>(key).await.unwrap().map(|v| v.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_hits_decode_nothing_and_are_invalidated_like_any_hit() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    let b = near(&server, &prefix).await;
    a.set("k", &1u32, LONG).await.unwrap();
    hold(&a, "k").await;
    let first = a.get_shared::<Counted>("k").await.unwrap().unwrap();
    assert_eq!(first.0, 1);
    let (decodes, hits) = (DECODES.load(Ordering::SeqCst), stats(&a).hits);
    for _ in 0..100 {
        let again = a.get_shared::<Counted>("k").await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "not the shared value");
    }
    // Owned copies of the shared value: cloned, not decoded.
    for _ in 0..10 {
        let owned: Counted = a.get_cloned("k").await.unwrap().unwrap();
        assert_eq!(owned.0, 1);
    }
    assert_eq!(
        DECODES.load(Ordering::SeqCst),
        decodes,
        "a shared hit decoded"
    );
    assert_eq!(stats(&a).hits, hits + 110);
    // Another manager's write: the decoded copy goes with its entry.
    b.set("k", &2u32, LONG).await.unwrap();
    assert!(
        eventually(Duration::from_secs(1), async || shared(&a, "k").await
            == Some(2))
        .await,
        "another manager's write was not seen within the bound"
    );
    // Own writes and evictions: at once.
    a.set("k", &3u32, LONG).await.unwrap();
    assert_eq!(shared(&a, "k").await, Some(3));
    a.delete("k").await.unwrap();
    assert_eq!(shared(&a, "k").await, None);
    // A value written elsewhere that is not a `Counted`: a decode error, counted as such.
    server.cli(["SET", &format!("{prefix}bad"), "\"text\""]);
    let e = a.get_shared::<Counted>("bad").await.unwrap_err();
    assert_eq!(e.kind(), cachette::ErrorKind::Decode, "{e}");
    // Without a near cache: the same answers, decoded every time.
    let plain = CacheManager::builder()
        .url(server.url())
        .key_prefix(&prefix)
        .build()
        .unwrap();
    plain.set("p", &4u32, LONG).await.unwrap();
    let decodes = DECODES.load(Ordering::SeqCst);
    assert_eq!(shared(&plain, "p").await, Some(4));
    assert_eq!(shared(&plain, "p").await, Some(4));
    let owned: Counted = plain.get_cloned("p").await.unwrap().unwrap();
    assert_eq!(owned.0, 4);
    assert_eq!(DECODES.load(Ordering::SeqCst), decodes + 3);
    assert_eq!(shared(&plain, "none").await, None);
}

/// Hits never wait, so a loop of them must still give the runtime back now and then: with
/// more spinning readers than worker threads, a Redis call beside them completes at once, and
/// the channel's heartbeat keeps the tier live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_hits_does_not_starve_the_runtime() {
    let server = RedisServer::new();
    let prefix = unique_prefix("near");
    let a = near(&server, &prefix).await;
    a.set("k", &1u32, LONG).await.unwrap();
    hold(&a, "k").await;
    let spin = Duration::from_millis(1500);
    let started = Instant::now();
    let spinners: Vec<_> = (0..4)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < spin {
                    for _ in 0..256 {
                        if i % 2 == 0 {
                            let _: Option<u32> = a.get("k").await.unwrap();
                        } else {
                            let _ = a.get_shared::<u32>("k").await.unwrap();
                        }
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    // Measured from the start: a starved runtime would not even wake this task in time.
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.set("other", &2u32, LONG).await.unwrap();
    let took = started.elapsed();
    let live = stats(&a).live;
    let mut reads = 0;
    for s in spinners {
        reads += s.await.unwrap();
    }
    assert!(
        took < Duration::from_millis(600),
        "a 100 ms sleep and a write beside {reads} hits took {took:?}"
    );
    assert!(live, "the heartbeat starved");
    assert!(stats(&a).live);
}
