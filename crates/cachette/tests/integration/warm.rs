//! Cache warming: batches through `set_many`, progress, TTL/jitter/metadata like read-through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cachette::backend::{Backend, KeyTtl, MemoryBackend, MemoryConfig, ScanPage};
use cachette::{CacheManager, LoadOptions, Outcome, Ttl, WarmProgress};

use crate::support::{meta_of, Fixture};

async fn warm_writes_every_entry_and_reports_progress(fx: &Fixture) {
    let cache = fx.fresh();
    let mut progress: Vec<WarmProgress> = Vec::new();
    let report = cache
        .warm(&LoadOptions::ttl(Ttl::secs(60)))
        .batch_size(500)
        .on_progress(|p| progress.push(*p))
        .run((0..2300).map(|i| (format!("w:{i}"), i)))
        .await
        .unwrap();
    assert_eq!(
        (report.written, report.failed, report.batches),
        (2300, 0, 5)
    );
    assert!(report.first_error.is_none());
    let written: Vec<u64> = progress.iter().map(|p| p.written).collect();
    assert_eq!(written, [500, 1000, 1500, 2000, 2300]);
    assert!(progress.iter().all(|p| p.total == Some(2300)));
    assert_eq!(cache.keys("w:*").await.unwrap().len(), 2300);
    assert_eq!(cache.get::<u32>("w:1234").await.unwrap(), Some(1234));
    assert_eq!(cache.stats().writes, 2300);
}

async fn warmed_entries_carry_metadata_for_stale_copies(fx: &Fixture) {
    let cache = fx.fresh();
    let options = LoadOptions::ttl(Duration::from_millis(200))
        .stale_ttl(Duration::from_secs(10))
        .jitter_percent(10);
    let report = cache
        .warm(&options)
        .run([("a", "warm a"), ("b", "warm b")])
        .await
        .unwrap();
    assert_eq!(report.written, 2);
    assert!(cache.exists(&meta_of(&cache, "a")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Logically expired, physically kept: a failing loader gets the warmed stale copy.
    let (v, outcome) = cache
        .get_or_load_traced(
            "a",
            &options,
            None,
            |_| true,
            || async { Err::<String, _>("source down") },
        )
        .await
        .unwrap();
    assert_eq!((v.as_str(), outcome), ("warm a", Outcome::Stale));
}

async fn invalid_entries_are_counted_and_the_rest_written(fx: &Fixture) {
    let cache = fx.fresh();
    let report = cache
        .warm(&LoadOptions::ttl(Ttl::secs(60)))
        .run([("ok", 1), ("", 2), ("also-ok", 3)])
        .await
        .unwrap();
    assert_eq!((report.written, report.failed), (2, 1));
    assert!(report.first_error.is_some());
    assert_eq!(cache.get::<i32>("also-ok").await.unwrap(), Some(3));
}

/// The memory backend, counting calls to `set` and `set_many`.
#[derive(Debug)]
struct Counting {
    inner: MemoryBackend,
    sets: AtomicU64,
    set_manys: AtomicU64,
}

#[async_trait]
impl Backend for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    async fn get(&self, key: &str) -> cachette::Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> cachette::Result<()> {
        self.sets.fetch_add(1, Ordering::Relaxed);
        self.inner.set(key, value, ttl).await
    }
    async fn set_nx(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> cachette::Result<bool> {
        self.inner.set_nx(key, value, ttl).await
    }
    async fn delete_many(&self, keys: &[String]) -> cachette::Result<u64> {
        self.inner.delete_many(keys).await
    }
    async fn exists(&self, key: &str) -> cachette::Result<bool> {
        self.inner.exists(key).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> cachette::Result<bool> {
        self.inner.expire(key, ttl).await
    }
    async fn persist(&self, key: &str) -> cachette::Result<bool> {
        self.inner.persist(key).await
    }
    async fn ttl(&self, key: &str) -> cachette::Result<KeyTtl> {
        self.inner.ttl(key).await
    }
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> cachette::Result<ScanPage> {
        self.inner.scan(cursor, pattern, count).await
    }
    async fn info(&self) -> cachette::Result<cachette::ServerInfo> {
        self.inner.info().await
    }
    async fn ping(&self) -> cachette::Result<()> {
        self.inner.ping().await
    }
    async fn set_many(
        &self,
        items: &[(String, Bytes)],
        ttl: Option<Duration>,
    ) -> cachette::Result<()> {
        self.set_manys.fetch_add(1, Ordering::Relaxed);
        for (k, v) in items {
            self.inner.set(k, v.clone(), ttl).await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_goes_through_set_many_batches() {
    let backend = Arc::new(Counting {
        inner: MemoryBackend::new(MemoryConfig::default()),
        sets: AtomicU64::new(0),
        set_manys: AtomicU64::new(0),
    });
    let cache = CacheManager::builder()
        .backend(backend.clone())
        .build()
        .unwrap();
    let report = cache
        .warm(&LoadOptions::ttl(Ttl::secs(60)))
        .batch_size(100)
        .run((0..1000).map(|i| (format!("k{i}"), i)))
        .await
        .unwrap();
    assert_eq!(report.batches, 10);
    assert_eq!(backend.set_manys.load(Ordering::Relaxed), 10);
    assert_eq!(backend.sets.load(Ordering::Relaxed), 0);
    // With jitter each batch is split into a few sub-batches with their own TTLs.
    let report = cache
        .warm(&LoadOptions::ttl(Ttl::secs(60)).jitter_percent(20))
        .batch_size(100)
        .run((0..1000).map(|i| (format!("j{i}"), i)))
        .await
        .unwrap();
    assert_eq!(report.batches, 10);
    assert_eq!(backend.set_manys.load(Ordering::Relaxed), 10 + 10 * 8);
    let mut ttls = std::collections::BTreeSet::new();
    for i in 0..100 {
        let ttl = cache
            .ttl(&format!("j{i}"))
            .await
            .unwrap()
            .remaining()
            .unwrap();
        ttls.insert(ttl.as_millis() / 100);
    }
    assert!(ttls.len() > 3, "{ttls:?}");
}

per_backend!(
    warm_writes_every_entry_and_reports_progress,
    warmed_entries_carry_metadata_for_stale_copies,
    invalid_entries_are_counted_and_the_rest_written,
);
