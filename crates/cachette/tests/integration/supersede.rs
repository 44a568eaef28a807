//! A write or eviction supersedes the read-through fills of its key that are in flight: their
//! callers get the loaded value, but it is not stored afterwards (issue 9, item 4). In one
//! manager always; across managers and processes with `lock = true`. Bounded in count and time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachette::{cache_evict, cached, CacheManager, LoadOptions, Outcome};

use crate::support::{unique_prefix, Fixture};

const LOADER: Duration = Duration::from_millis(300);
/// When the write happens, well inside the loader.
const WRITE_AT: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Never;

/// Starts a fill of `key` on `cache` (a 300 ms loader returning `"old"`).
fn start_fill(
    cache: &CacheManager,
    key: &str,
    options: LoadOptions,
) -> tokio::task::JoinHandle<(String, Outcome)> {
    let (cache, key) = (cache.clone(), key.to_owned());
    tokio::spawn(async move {
        cache
            .get_or_load_traced(
                &key,
                &options,
                None,
                |_| true,
                || async {
                    tokio::time::sleep(LOADER).await;
                    Ok::<_, Never>("old".to_owned())
                },
            )
            .await
            .expect("the loader does not fail")
    })
}

#[derive(Clone, Copy, Debug)]
enum Write {
    Delete,
    DeleteMany,
    DeletePattern,
    Clear,
    Set,
}

async fn write(cache: &CacheManager, key: &str, how: Write) {
    match how {
        Write::Delete => {
            cache.delete(key).await.unwrap();
        }
        Write::DeleteMany => {
            cache.delete_many(&[key, "other"]).await.unwrap();
        }
        Write::DeletePattern => {
            cache.delete_pattern("us?r:*").await.unwrap();
        }
        Write::Clear => {
            cache.clear().await.unwrap();
        }
        Write::Set => cache
            .set(key, "new", Duration::from_secs(60))
            .await
            .unwrap(),
    }
}

async fn check_superseded(writer: &CacheManager, filler: &CacheManager, options: LoadOptions) {
    for how in [
        Write::Delete,
        Write::DeleteMany,
        Write::DeletePattern,
        Write::Clear,
        Write::Set,
    ] {
        let key = "user:1";
        let fill = start_fill(filler, key, options.clone());
        tokio::time::sleep(WRITE_AT).await;
        write(writer, key, how).await;
        let (value, outcome) = tokio::time::timeout(Duration::from_secs(10), fill)
            .await
            .expect("bounded")
            .expect("no panic");
        assert_eq!(
            value, "old",
            "{how:?}: the caller still gets its loaded value"
        );
        assert_eq!(outcome, Outcome::NotStored, "{how:?}");
        let expected = matches!(how, Write::Set).then(|| "new".to_owned());
        for cache in [writer, filler] {
            assert_eq!(
                cache.get::<String>(key).await.unwrap(),
                expected,
                "{how:?}: the fill that started before the write must not be stored"
            );
        }
        writer.delete(key).await.unwrap();
    }
}

/// One manager: every kind of write supersedes its fills in flight.
async fn a_write_supersedes_a_fill_in_flight(fx: &Fixture) {
    let cache = fx.fresh();
    check_superseded(&cache, &cache, LoadOptions::ttl(Duration::from_secs(60))).await;
    // Also with metadata (stale copies) and without coalescing.
    let opts = LoadOptions::ttl(Duration::from_secs(60))
        .stale_ttl(Duration::from_secs(60))
        .coalesce(false);
    check_superseded(&cache, &cache, opts).await;
}

/// Two managers (another process, as far as the fill knows) on one server or backend: with
/// `lock = true`, the writer's eviction removes the lease and the fill gives its value up.
async fn an_eviction_in_another_manager_supersedes_a_locked_fill(fx: &Fixture) {
    let prefix = unique_prefix("sup");
    let (writer, filler) = (fx.manager(&prefix), fx.manager(&prefix));
    let opts = LoadOptions::ttl(Duration::from_secs(60)).lock(true);
    for how in [
        Write::Delete,
        Write::DeleteMany,
        Write::DeletePattern,
        Write::Clear,
    ] {
        let fill = start_fill(&filler, "user:1", opts.clone());
        tokio::time::sleep(WRITE_AT).await;
        write(&writer, "user:1", how).await;
        let (value, _) = tokio::time::timeout(Duration::from_secs(10), fill)
            .await
            .expect("bounded")
            .expect("no panic");
        assert_eq!(value, "old");
        assert_eq!(
            writer.get::<String>("user:1").await.unwrap(),
            None,
            "{how:?} in another manager must supersede a locked fill"
        );
    }
    // The control: a fill that starts after the eviction is stored.
    let (value, outcome) = start_fill(&filler, "user:1", opts).await.unwrap();
    assert_eq!((value.as_str(), outcome), ("old", Outcome::Miss));
    assert_eq!(
        writer.get::<String>("user:1").await.unwrap().as_deref(),
        Some("old")
    );
}

#[cached(cache = cache, key = "profile:{id}", ttl = 60)]
async fn profile(cache: &CacheManager, id: u32, db: &AtomicUsize) -> String {
    let version = db.load(Ordering::SeqCst);
    tokio::time::sleep(LOADER).await;
    format!("v{version}")
}

#[cache_evict(cache = cache, key = "profile:{id}")]
async fn update_profile(cache: &CacheManager, id: u32, db: &AtomicUsize) {
    db.fetch_add(1, Ordering::SeqCst);
}

/// The reproduction: a `#[cached]` fill reads version 0, the row is updated and the
/// key evicted while the fill runs; the next call must read version 1, not the stale 0 for
/// the whole TTL.
async fn cache_evict_supersedes_a_cached_fill(fx: &Fixture) {
    let cache = fx.fresh();
    let db = Arc::new(AtomicUsize::new(0));
    let fill = {
        let (cache, db) = (cache.clone(), db.clone());
        tokio::spawn(async move { profile(&cache, 1, &db).await })
    };
    tokio::time::sleep(WRITE_AT).await;
    update_profile(&cache, 1, &db).await;
    assert_eq!(fill.await.unwrap(), "v0", "the caller gets what it loaded");
    assert_eq!(
        profile(&cache, 1, &db).await,
        "v1",
        "no stale value after the eviction"
    );
}

/// Many random interleavings of a short fill and an eviction: whenever the loader began
/// before the eviction was called, the fill's value is not in the cache afterwards.
async fn no_interleaving_keeps_a_superseded_value(fx: &Fixture) {
    let cache = fx.fresh();
    let rounds = if fx.is_redis() { 100 } else { 400 };
    let clock = Arc::new(AtomicUsize::new(1));
    for round in 0..rounds {
        let key = format!("k{round}");
        let began = Arc::new(AtomicUsize::new(0));
        let fill = {
            let (cache, key, clock, began) =
                (cache.clone(), key.clone(), clock.clone(), began.clone());
            let delay = fastrand::u64(0..1500);
            tokio::spawn(async move {
                let opts = LoadOptions::ttl(Duration::from_secs(60));
                cache
                    .get_or_load(&key, &opts, || async move {
                        began.store(clock.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_micros(delay)).await;
                        Ok::<_, Never>(round)
                    })
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..1500))).await;
        let evicted_at = clock.fetch_add(1, Ordering::SeqCst);
        cache.delete(&key).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), fill)
            .await
            .expect("bounded")
            .unwrap();
        let began = began.load(Ordering::SeqCst);
        if began != 0 && began < evicted_at {
            assert_eq!(
                cache.get::<usize>(&key).await.unwrap(),
                None,
                "round {round}: the fill began before the eviction and was kept"
            );
        }
    }
}

per_backend!(
    a_write_supersedes_a_fill_in_flight,
    an_eviction_in_another_manager_supersedes_a_locked_fill,
    cache_evict_supersedes_a_cached_fill,
    no_interleaving_keeps_a_superseded_value,
);
