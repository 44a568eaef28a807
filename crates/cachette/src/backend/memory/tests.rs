use super::*;
use std::collections::HashSet;

/// Item 11: 64 tasks looping on memory reads (through the manager's fast path and through
/// `Backend::get`) with no other await, on a 2-worker runtime, cannot keep a timer task
/// from running. Bounded: the loops stop after 5 s at most.
#[test]
fn a_loop_of_memory_reads_cannot_starve_the_runtime() {
    use std::sync::atomic::AtomicBool;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cache = rt.block_on(async { crate::CacheManager::memory() });
    let backend: Arc<dyn Backend> = cache.backend().clone();
    rt.block_on(async { cache.set("k", &1u64, crate::Ttl::Never).await.unwrap() });

    let started = std::time::Instant::now();
    let ran = Arc::new(AtomicBool::new(false));
    let timer = ran.clone();
    rt.spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        timer.store(true, Relaxed);
    });
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..64)
        .map(|i| {
            let (cache, backend, stop) = (cache.clone(), backend.clone(), stop.clone());
            rt.spawn(async move {
                while !stop.load(Relaxed) {
                    if i % 2 == 0 {
                        let _ = cache.get::<u64>("k").await;
                    } else {
                        let _ = backend.get("cache:k").await;
                    }
                }
            })
        })
        .collect();
    let deadline = started + Duration::from_secs(5);
    while !ran.load(Relaxed) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = started.elapsed();
    let timer_ran = ran.load(Relaxed);
    stop.store(true, Relaxed);
    for l in loops {
        rt.block_on(l).unwrap();
    }
    assert!(
        timer_ran && after < Duration::from_secs(2),
        "timer ran: {timer_ran} after {after:?}"
    );
}

/// Item 12: the default store is bounded in bytes, not only in entries. 4 000 values of
/// 100 KB (400 MB accounted; one shared allocation, so the test itself stays small) never
/// take the backend's byte accounting over 256 MiB, whichever way the store was built.
#[tokio::test]
async fn the_default_store_is_bounded_in_bytes() {
    use crate::{CacheManager, Config, Ttl};
    assert_eq!(MemoryConfig::default().max_bytes, Some(DEFAULT_MAX_BYTES));
    assert_eq!(Config::default().memory_max_bytes, Some(DEFAULT_MAX_BYTES));
    let value = Bytes::from(vec![7u8; 100_000]);
    let m = MemoryBackend::default();
    for i in 0..4_000 {
        m.set(&format!("big:{i}"), value.clone(), None)
            .await
            .unwrap();
        assert!(m.used_memory() <= DEFAULT_MAX_BYTES, "{}", m.used_memory());
    }
    assert!(m.used_memory() > DEFAULT_MAX_BYTES / 2);
    assert!(m.len() < 4_000);

    let built = CacheManager::builder().memory().build().unwrap();
    for cache in [CacheManager::memory(), built] {
        for i in 0..4_000 {
            cache
                .set_raw(&format!("big:{i}"), value.clone(), Ttl::Never)
                .await
                .unwrap();
        }
        let info = cache.info().await.unwrap();
        let used = info.used_memory().unwrap();
        assert!(
            used <= DEFAULT_MAX_BYTES && used > DEFAULT_MAX_BYTES / 2,
            "{used}"
        );
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn unbounded() -> MemoryBackend {
    MemoryBackend::new(MemoryConfig {
        max_entries: None,
        max_bytes: None,
        ..MemoryConfig::default()
    })
}

fn stat(info: &ServerInfo, section: &str, field: &str) -> i64 {
    info.field(section, field)
        .and_then(InfoValue::as_i64)
        .unwrap_or_else(|| panic!("missing {section}.{field}"))
}

async fn all_keys(backend: &MemoryBackend, pattern: &str) -> Vec<String> {
    let mut keys = backend.keys(pattern).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test(start_paused = true)]
async fn ttl_expires_with_paused_time() {
    let m = unbounded();
    m.set("k", b("v"), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(m.get("k").await.unwrap(), Some(b("v")));
    assert_eq!(
        m.ttl("k").await.unwrap(),
        KeyTtl::Expires(Duration::from_secs(1))
    );
    assert!(m.exists("k").await.unwrap());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(m.get("k").await.unwrap(), None);
    assert_eq!(m.ttl("k").await.unwrap(), KeyTtl::Missing);
    assert!(!m.exists("k").await.unwrap());
    assert!(m.keys("*").await.unwrap().is_empty());
    assert!(!m.delete("k").await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn persistent_keys_stay() {
    let m = unbounded();
    m.set("p", b("v"), None).await.unwrap();
    tokio::time::advance(Duration::from_secs(1000 * 86_400)).await;
    assert_eq!(m.get("p").await.unwrap(), Some(b("v")));
    assert_eq!(m.ttl("p").await.unwrap(), KeyTtl::Persistent);
    // A later `set` without TTL makes an expiring key persistent again, as Redis does.
    m.set("e", b("1"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    m.set("e", b("2"), None).await.unwrap();
    assert_eq!(m.ttl("e").await.unwrap(), KeyTtl::Persistent);
    let info = m.info().await.unwrap();
    assert_eq!(info.keyspace["db0"].expires, 0);
}

#[tokio::test(start_paused = true)]
async fn expire_persist_ttl_states() {
    let m = unbounded();
    assert_eq!(m.ttl("k").await.unwrap(), KeyTtl::Missing);
    assert!(!m.expire("k", Duration::from_secs(5)).await.unwrap());
    assert!(!m.persist("k").await.unwrap());

    m.set("k", b("v"), None).await.unwrap();
    assert!(!m.persist("k").await.unwrap(), "no TTL to remove");
    assert!(m.expire("k", Duration::from_secs(5)).await.unwrap());
    assert_eq!(
        m.ttl("k").await.unwrap(),
        KeyTtl::Expires(Duration::from_secs(5))
    );
    assert!(m.expire("k", Duration::from_secs(50)).await.unwrap());
    assert_eq!(
        m.ttl("k").await.unwrap().remaining(),
        Some(Duration::from_secs(50))
    );
    assert!(m.persist("k").await.unwrap());
    assert_eq!(m.ttl("k").await.unwrap(), KeyTtl::Persistent);

    m.expire("k", Duration::from_secs(1)).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        !m.expire("k", Duration::from_secs(5)).await.unwrap(),
        "expired key"
    );
    assert!(!m.persist("k").await.unwrap());
    assert_eq!(m.len(), 0, "touching an expired key reclaims it");

    m.set("z", b("v"), None).await.unwrap();
    assert!(
        m.expire("z", Duration::ZERO).await.unwrap(),
        "zero TTL deletes"
    );
    assert_eq!(m.ttl("z").await.unwrap(), KeyTtl::Missing);

    let err = m.set("z", b("v"), Some(Duration::ZERO)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    // The longest TTL is the same as on every backend; longer ones are refused, not capped.
    m.set("long", b("v"), Some(MAX_TTL)).await.unwrap();
    assert_eq!(m.ttl("long").await.unwrap().remaining(), Some(MAX_TTL));
    for huge in [MAX_TTL + Duration::from_nanos(1), Duration::MAX] {
        let err = m.set("long", b("w"), Some(huge)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("long"), "{err}");
        let err = m.expire("long", huge).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(
        m.get_now("long"),
        Some(b("v")),
        "a refused TTL changes nothing"
    );
    // Sub-millisecond TTLs are rounded up to whole milliseconds, never down to zero.
    m.set("tiny", b("v"), Some(Duration::from_nanos(1)))
        .await
        .unwrap();
    assert_eq!(
        m.ttl("tiny").await.unwrap().remaining(),
        Some(Duration::from_millis(1))
    );
    assert!(m.expire("tiny", Duration::from_micros(1500)).await.unwrap());
    assert_eq!(
        m.ttl("tiny").await.unwrap().remaining(),
        Some(Duration::from_millis(2))
    );
}

#[tokio::test(start_paused = true)]
async fn set_nx_only_when_absent_or_expired() {
    let m = unbounded();
    assert!(m
        .set_nx("lock", b("a"), Some(Duration::from_secs(1)))
        .await
        .unwrap());
    assert!(!m.set_nx("lock", b("b"), None).await.unwrap());
    assert_eq!(m.get("lock").await.unwrap(), Some(b("a")));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(m.set_nx("lock", b("c"), None).await.unwrap());
    assert_eq!(m.get("lock").await.unwrap(), Some(b("c")));
    assert_eq!(m.ttl("lock").await.unwrap(), KeyTtl::Persistent);
    assert_eq!(m.len(), 1);
}

#[tokio::test]
async fn delete_if_equals_is_compare_and_delete() {
    let m = unbounded();
    assert!(!m.delete_if_equals("lock", b"token").await.unwrap());
    m.set("lock", b("token"), None).await.unwrap();
    assert!(!m.delete_if_equals("lock", b"other").await.unwrap());
    assert!(m.exists("lock").await.unwrap());
    assert!(m.delete_if_equals("lock", b"token").await.unwrap());
    assert!(!m.exists("lock").await.unwrap());
    assert!(!m.delete_if_equals("lock", b"token").await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn delete_if_equals_ignores_expired() {
    let m = unbounded();
    m.set("lock", b("t"), Some(Duration::from_millis(10)))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(10)).await;
    assert!(!m.delete_if_equals("lock", b"t").await.unwrap());
}

#[tokio::test]
async fn batches() {
    let m = unbounded();
    let items: Vec<(String, Bytes)> = (0..10)
        .map(|i| (format!("k{i}"), b(&i.to_string())))
        .collect();
    m.set_many(&items, None).await.unwrap();
    let keys = vec!["k1".to_owned(), "nope".to_owned(), "k9".to_owned()];
    assert_eq!(
        m.get_many(&keys).await.unwrap(),
        vec![Some(b("1")), None, Some(b("9"))]
    );
    assert_eq!(m.delete_many(&keys).await.unwrap(), 2);
    assert_eq!(m.len(), 8);
    assert_eq!(m.delete_pattern("k*").await.unwrap(), 8);
    assert!(m.is_empty());
    assert_eq!(m.used_memory(), 0);
}

#[tokio::test]
async fn evicts_by_count_keeping_recently_used() {
    let m = MemoryBackend::new(MemoryConfig {
        max_entries: Some(100),
        ..MemoryConfig::default()
    });
    m.set("hot", b("h"), None).await.unwrap();
    for i in 0..1000 {
        m.set(&format!("k{i}"), b("v"), None).await.unwrap();
        assert_eq!(
            m.get("hot").await.unwrap(),
            Some(b("h")),
            "hot key evicted at {i}"
        );
    }
    assert_eq!(m.len(), 100);
    let info = m.info().await.unwrap();
    assert_eq!(stat(&info, "stats", "evicted_keys"), 901);
    assert_eq!(stat(&info, "memory", "max_entries"), 100);
    assert_eq!(info.keys_in_db(0), 100);
    // The newest key is never the victim of its own insertion.
    assert!(m.exists("k999").await.unwrap());
}

#[tokio::test]
async fn evicts_by_bytes_and_rejects_oversized_values() {
    let value = Bytes::from(vec![7u8; 1000]);
    let per_entry = weight("k000", &value);
    let max_bytes = 10 * per_entry;
    let m = MemoryBackend::new(MemoryConfig {
        max_entries: None,
        max_bytes: Some(max_bytes),
        ..MemoryConfig::default()
    });
    for i in 0..100 {
        m.set(&format!("k{i:03}"), value.clone(), None)
            .await
            .unwrap();
        assert!(m.used_memory() <= max_bytes);
    }
    assert_eq!(m.len(), 10);
    let info = m.info().await.unwrap();
    assert_eq!(stat(&info, "stats", "evicted_keys"), 90);
    assert_eq!(
        stat(&info, "memory", "used_memory"),
        (10 * per_entry) as i64
    );
    assert_eq!(stat(&info, "memory", "maxmemory"), max_bytes as i64);
    assert!(info.used_memory_human().is_some());

    // Too big for the whole store: refused, and the stale value is gone.
    let huge = Bytes::from(vec![0u8; max_bytes as usize]);
    m.set("k099", b("small"), None).await.unwrap();
    let err = m.set("k099", huge.clone(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.key(), Some("k099"));
    assert_eq!(m.get("k099").await.unwrap(), None);
    assert!(m.set_nx("big", huge, None).await.is_err());
    // Still usable.
    m.set("after", value.clone(), None).await.unwrap();
    assert_eq!(m.get("after").await.unwrap(), Some(value.clone()));
    // One entry that takes most of the budget evicts everything else it needs to.
    let most = Bytes::from(vec![1u8; (max_bytes - ENTRY_OVERHEAD - 10) as usize]);
    m.set("most", most.clone(), None).await.unwrap();
    assert_eq!(m.get("most").await.unwrap(), Some(most));
    assert!(m.used_memory() <= max_bytes);
    assert_eq!(m.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn eviction_prefers_expired_entries() {
    let m = MemoryBackend::new(MemoryConfig {
        max_entries: Some(10),
        reap_interval: Duration::ZERO,
        ..MemoryConfig::default()
    });
    for i in 0..10 {
        m.set(&format!("t{i}"), b("v"), Some(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    for i in 0..10 {
        m.set(&format!("p{i}"), b("v"), None).await.unwrap();
    }
    let info = m.info().await.unwrap();
    assert_eq!(stat(&info, "stats", "evicted_keys"), 0);
    assert_eq!(stat(&info, "stats", "expired_keys"), 10);
    assert_eq!(m.len(), 10);
}

#[tokio::test(start_paused = true)]
async fn background_reaper_reclaims_without_reads() {
    let m = unbounded();
    for i in 0..100 {
        m.set(&format!("t{i}"), b("v"), Some(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    for i in 0..5 {
        m.set(&format!("p{i}"), b("v"), None).await.unwrap();
    }
    assert_eq!(m.len(), 105);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(m.len(), 5);
    let info = m.info().await.unwrap();
    assert_eq!(stat(&info, "stats", "expired_keys"), 100);
    assert_eq!(info.keyspace["db0"].expires, 0);
    assert_eq!(m.used_memory(), 5 * weight("p0", &b("v")));
}

#[tokio::test(start_paused = true)]
async fn reaper_stops_when_backend_dropped() {
    let m = unbounded();
    assert_eq!(m.inner.reaper.load(Relaxed), REAPER_RUNNING);
    let weak = Arc::downgrade(&m.inner);
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 1);
    drop(m);
    assert!(weak.upgrade().is_none());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(metrics.num_alive_tasks(), 0);
}

#[test]
fn works_outside_a_runtime_then_reaps_inside_one() {
    let m = MemoryBackend::new(MemoryConfig::default());
    assert_eq!(m.inner.reaper.load(Relaxed), REAPER_IDLE);
    // Synchronous use without any runtime.
    m.inner
        .set("a", b("1"), Some(Duration::from_millis(1)), false)
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(m.inner.get("a"), None);
    assert_eq!(m.len(), 1);
    assert_eq!(m.purge_expired(), 1);
    assert!(m.is_empty());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        m.set("t", b("v"), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(
            m.inner.reaper.load(Relaxed),
            REAPER_RUNNING,
            "started on first write"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(m.is_empty());
    });
    drop(runtime);
    assert_eq!(
        m.inner.reaper.load(Relaxed),
        REAPER_IDLE,
        "runtime gone, reaper gone"
    );
}

#[test]
fn runtime_without_timers_falls_back_to_writes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let m = MemoryBackend::default();
        assert_eq!(m.inner.reaper.load(Relaxed), REAPER_UNAVAILABLE);
        m.set("t", b("v"), Some(Duration::from_millis(1)))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(m.get("t").await.unwrap(), None);
        m.set("t", b("w"), None).await.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m.inner.reaper.load(Relaxed), REAPER_UNAVAILABLE);
    });
}

#[tokio::test(start_paused = true)]
async fn writes_sweep_expired_entries_without_reaper() {
    let m = MemoryBackend::new(MemoryConfig {
        max_entries: None,
        reap_interval: Duration::ZERO,
        ..MemoryConfig::default()
    });
    for i in 0..1000 {
        m.set(&format!("t{i}"), b("v"), Some(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    for i in 0..1000 {
        m.set(&format!("p{i}"), b("v"), None).await.unwrap();
    }
    assert!(
        m.len() < 1500,
        "writes reclaimed expired entries: {}",
        m.len()
    );
}

#[tokio::test]
async fn scan_returns_every_key_of_100k() {
    let m = unbounded();
    let items: Vec<(String, Bytes)> = (0..100_000).map(|i| (format!("key:{i}"), b("v"))).collect();
    m.set_many(&items, None).await.unwrap();
    let mut seen = HashSet::new();
    let mut cursor = 0;
    let mut calls = 0;
    loop {
        let page = m.scan(cursor, "key:*", 1000).await.unwrap();
        assert!(page.keys.len() <= 1000);
        for key in page.keys {
            assert!(seen.insert(key), "duplicate");
        }
        calls += 1;
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 100_000);
    assert!(calls <= 100 + SHARDS + 1, "{calls} calls");
    assert_eq!(m.keys("key:1234?").await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_is_complete_under_concurrent_writes() {
    let m = unbounded();
    let stable: Vec<(String, Bytes)> = (0..100_000).map(|i| (format!("s:{i}"), b("v"))).collect();
    m.set_many(&stable, None).await.unwrap();
    let volatile: Vec<(String, Bytes)> = (0..20_000).map(|i| (format!("v:{i}"), b("v"))).collect();
    m.set_many(&volatile, None).await.unwrap();

    let writer = {
        let m = m.clone();
        tokio::spawn(async move {
            for round in 0..50_000u32 {
                m.set(&format!("new:{round}"), b("x"), None).await.unwrap();
                m.delete(&format!("v:{}", round % 20_000)).await.unwrap();
                m.set(&format!("s:{}", round % 100_000), b("y"), None)
                    .await
                    .unwrap();
                if round % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut seen = HashSet::new();
    let mut cursor = 0;
    loop {
        let page = m.scan(cursor, "s:*", 100).await.unwrap();
        for key in page.keys {
            assert!(seen.insert(key.clone()), "{key} returned twice");
        }
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert_eq!(seen.len(), 100_000);
}

#[tokio::test]
async fn scan_uses_redis_globs_with_escapes() {
    let m = unbounded();
    for key in ["a*b", "axb", "a[1]", "a1", "a?", "ab", "é:1", "", "\\x"] {
        m.set(key, b("v"), None).await.unwrap();
    }
    assert_eq!(all_keys(&m, "a\\*b").await, ["a*b"]);
    assert_eq!(all_keys(&m, "a*b").await, ["a*b", "ab", "axb"]);
    assert_eq!(all_keys(&m, "a\\[1\\]").await, ["a[1]"]);
    assert_eq!(all_keys(&m, "a[1]").await, ["a1"]);
    assert_eq!(all_keys(&m, "a\\?").await, ["a?"]);
    assert_eq!(all_keys(&m, "a[^*x]*").await, ["a1", "a?", "a[1]", "ab"]);
    assert_eq!(
        all_keys(&m, &format!("{}*", crate::glob::escape("a["))).await,
        ["a[1]"]
    );
    assert_eq!(all_keys(&m, "é:?").await, ["é:1"]);
    assert_eq!(all_keys(&m, "\\\\*").await, ["\\x"]);
    assert_eq!(
        all_keys(&m, "*").await.len(),
        9,
        "`*` includes the empty key, as SCAN"
    );
    assert_eq!(all_keys(&m, "**").await.len(), 8);
}

#[tokio::test]
async fn scan_edge_cursors() {
    let m = unbounded();
    assert_eq!(m.scan(0, "*", 10).await.unwrap(), ScanPage::default());
    m.set("k", b("v"), None).await.unwrap();
    assert_eq!(
        m.scan(u64::MAX, "*", 10).await.unwrap(),
        ScanPage::default()
    );
    // `count` 0 still makes progress.
    let mut cursor = 0;
    let mut found = Vec::new();
    for _ in 0..10_000 {
        let page = m.scan(cursor, "*", 0).await.unwrap();
        found.extend(page.keys);
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!((cursor, found), (0, vec!["k".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks() {
    let m = MemoryBackend::new(MemoryConfig {
        max_entries: Some(5_000),
        ..MemoryConfig::default()
    });
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let m = m.clone();
            tokio::spawn(async move {
                for i in 0..2_000 {
                    let own = format!("own:{t}:{i}");
                    m.set(&own, b(&own), Some(Duration::from_secs(60)))
                        .await
                        .unwrap();
                    let shared = format!("shared:{}", i % 50);
                    m.set(&shared, b(&t.to_string()), None).await.unwrap();
                    let _ = m.get(&shared).await.unwrap();
                    let _ = m
                        .set_nx(&format!("lock:{}", i % 7), b("x"), None)
                        .await
                        .unwrap();
                    if i % 3 == 0 {
                        m.delete_if_equals(&format!("lock:{}", i % 7), b"x")
                            .await
                            .unwrap();
                    }
                    if let Some(v) = m.get(&own).await.unwrap() {
                        assert_eq!(v, b(&own));
                    }
                    if i % 100 == 0 {
                        let _ = m.keys("own:*").await.unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(m.len() <= 5_000 + 16, "len {}", m.len());
    let info = m.info().await.unwrap();
    assert!(stat(&info, "stats", "evicted_keys") > 0);
    assert!(stat(&info, "stats", "keyspace_hits") > 0);
    // Counters agree with the contents.
    let stored = m.keys("*").await.unwrap();
    assert_eq!(stored.len(), m.len());
    let expected: u64 = {
        let mut total = 0;
        for key in &stored {
            let value = m.get(key).await.unwrap().unwrap();
            total += weight(key, &value);
        }
        total
    };
    assert_eq!(m.used_memory(), expected);
}

#[tokio::test]
async fn info_sections() {
    let m = MemoryBackend::default();
    m.ping().await.unwrap();
    assert_eq!(m.name(), "memory");
    m.set("a", b("1"), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    m.set("b", b("2"), None).await.unwrap();
    m.get("a").await.unwrap();
    m.get("zz").await.unwrap();
    let info = m.info().await.unwrap();
    assert_eq!(info.version(), Some("memory"));
    assert_eq!(
        info.field("server", "backend").and_then(InfoValue::as_str),
        Some("memory")
    );
    assert_eq!(stat(&info, "stats", "keyspace_hits"), 1);
    assert_eq!(stat(&info, "stats", "keyspace_misses"), 1);
    assert_eq!(stat(&info, "memory", "maxmemory"), DEFAULT_MAX_BYTES as i64);
    assert_eq!(
        stat(&info, "memory", "max_entries"),
        DEFAULT_MAX_ENTRIES as i64
    );
    assert_eq!(info.used_memory(), Some(weight("a", &b("1")) * 2));
    assert_eq!(
        info.keyspace["db0"],
        KeyspaceStats {
            keys: 2,
            expires: 1,
            avg_ttl_ms: 0
        }
    );
    assert!(format!("{m:?}").contains("MemoryBackend"));
}

/// The decoded copy a typed read keeps with an entry: served to reads of its type only, and
/// dropped by every write, delete, expiry (and not taken by a newer value of equal bytes).
#[tokio::test(start_paused = true)]
async fn a_decoded_copy_lives_exactly_as_long_as_its_value() {
    let m = unbounded();
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Missing));
    m.set("k", b("7"), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let Shared::Encoded(held) = m.hit_shared::<u32>("k") else {
        panic!("not held");
    };
    m.attach("k", &held, Arc::new(7u32));
    let (Shared::Decoded(a), Shared::Decoded(c)) =
        (m.hit_shared::<u32>("k"), m.hit_shared::<u32>("k"))
    else {
        panic!("not decoded");
    };
    assert!(Arc::ptr_eq(&a, &c));
    // Another type is not served the first one's copy.
    assert!(matches!(m.hit_shared::<u64>("k"), Shared::Encoded(_)));
    // A TTL change keeps it (the value is the same).
    assert!(m.expire("k", Duration::from_secs(20)).await.unwrap());
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Decoded(_)));

    // A write (even of equal bytes) drops it, and an older read's decoding is not taken.
    m.set("k", b("7"), None).await.unwrap();
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Encoded(_)));
    m.attach("k", &held, Arc::new(7u32));
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Encoded(_)));
    // SET NX on a present key writes nothing: the copy stays.
    let Shared::Encoded(now) = m.hit_shared::<u32>("k") else {
        panic!("not held");
    };
    m.attach("k", &now, Arc::new(7u32));
    assert!(!m.set_nx("k", b("8"), None).await.unwrap());
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Decoded(_)));

    // A delete takes it with the entry; a new entry starts without one.
    assert!(m.delete("k").await.unwrap());
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Missing));
    m.set("k", b("9"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let Shared::Encoded(nine) = m.hit_shared::<u32>("k") else {
        panic!("not held");
    };
    assert_eq!(nine, b("9"));
    m.attach("k", &nine, Arc::new(9u32));
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Decoded(_)));
    // Expiry: gone, copy included.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Missing));
    m.attach("k", &nine, Arc::new(9u32));
    assert!(matches!(m.hit_shared::<u32>("k"), Shared::Missing));
}

/// A typed hit's clone of the decoded copy (`hit_cloned`): served only from a copy of its
/// type, counted as a hit then, and not counted otherwise (the read that follows counts it).
#[tokio::test]
async fn a_cloned_hit_is_served_only_from_a_copy_of_its_type() {
    let m = unbounded();
    let counts = |info: &ServerInfo| {
        (
            stat(info, "stats", "keyspace_hits"),
            stat(info, "stats", "keyspace_misses"),
        )
    };
    assert_eq!(m.hit_cloned::<String>("k"), None);
    m.set("k", b("\"v\""), None).await.unwrap();
    assert_eq!(m.hit_cloned::<String>("k"), None, "not decoded yet");
    assert_eq!(counts(&m.info().await.unwrap()), (0, 0), "nothing counted");
    let Shared::Encoded(held) = m.hit_shared::<String>("k") else {
        panic!("not held");
    };
    m.attach("k", &held, Arc::new("v".to_owned()));
    assert_eq!(m.hit_cloned::<String>("k").as_deref(), Some("v"));
    assert_eq!(m.hit_cloned::<String>("k").as_deref(), Some("v"));
    assert_eq!(m.hit_cloned::<u64>("k"), None, "another type");
    // The `hit_shared` read above, then the two clones.
    assert_eq!(counts(&m.info().await.unwrap()), (3, 0));
    m.set("k", b("\"w\""), None).await.unwrap();
    assert_eq!(m.hit_cloned::<String>("k"), None, "a write drops the copy");
}
