//! Cached properties: a per-instance async lazy value with a TTL (the spec's "Cached
//! Property"). The value lives in a `CachedProperty` field of the instance: concurrent first
//! callers compute it once, it is recomputed after the TTL, and it is freed with the instance.
//!
//! ```text
//! cargo run --example cached_property
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example cached_property
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{cached, cached_property, CacheManager, CachedProperty};

/// A data source whose raw data is cached in the shared cache (memory or Redis).
struct DataSource {
    cache: CacheManager,
    fetches: AtomicUsize,
}

impl DataSource {
    #[cached(cache = self.cache, ttl = 300)]
    async fn fetch(&self) -> Vec<u64> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        (1..=100_000).rev().collect()
    }
}

struct DataProcessor {
    data_source: Arc<DataSource>,
    /// The cache of `processed_data()`: the field named like the method.
    processed_data: CachedProperty<Arc<Vec<u64>>>,
    computations: AtomicUsize,
}

impl DataProcessor {
    fn new(data_source: Arc<DataSource>) -> Self {
        DataProcessor {
            data_source,
            processed_data: CachedProperty::new(),
            computations: AtomicUsize::new(0),
        }
    }

    /// Expensive computation cached per instance for 300 ms (5 minutes in the spec; short
    /// here so that the example shows the recomputation).
    #[cached_property(ttl = Duration::from_millis(300))]
    async fn processed_data(&self) -> Arc<Vec<u64>> {
        let raw_data = self.data_source.fetch().await;
        self.computations.fetch_add(1, Ordering::SeqCst);
        Arc::new(self.expensive_processing(raw_data))
    }

    fn expensive_processing(&self, mut data: Vec<u64>) -> Vec<u64> {
        data.sort_unstable();
        data
    }
}

async fn timed(processor: &DataProcessor, what: &str) {
    let before = processor.computations.load(Ordering::SeqCst);
    let started = Instant::now();
    let data = processor.processed_data().await;
    let outcome = if processor.computations.load(Ordering::SeqCst) > before {
        "computed"
    } else {
        "cached  "
    };
    println!(
        "{what:<40} {outcome} in {:>8.2?} ({} items, first {})",
        started.elapsed(),
        data.len(),
        data[0]
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = CacheManager::from_env()?;
    println!("backend of the data source: {}", cache.describe());
    let module = module_path!().replace("::", ".");
    cache.delete_pattern(&format!("{module}:*")).await?;

    let source = Arc::new(DataSource {
        cache: cache.clone(),
        fetches: AtomicUsize::new(0),
    });
    let processor = Arc::new(DataProcessor::new(source.clone()));

    // Eight concurrent first callers: one computation.
    let started = Instant::now();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let p = processor.clone();
            tokio::spawn(async move { p.processed_data().await.len() })
        })
        .collect();
    for caller in callers {
        caller.await?;
    }
    println!(
        "8 concurrent first calls                 {} computation(s) in {:.2?}",
        processor.computations.load(Ordering::SeqCst),
        started.elapsed()
    );
    timed(&processor, "processor.processed_data()").await;

    // Another instance computes its own value (its source data is a shared-cache hit).
    let second = DataProcessor::new(source.clone());
    timed(&second, "second.processed_data()").await;
    println!(
        "data source fetches so far: {}",
        source.fetches.load(Ordering::SeqCst)
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    timed(&processor, "processor.processed_data() after the TTL").await;

    let weak = Arc::downgrade(&processor.processed_data().await);
    drop(processor);
    println!(
        "value freed with its instance: {}",
        weak.upgrade().is_none()
    );
    cache.delete_pattern(&format!("{module}:*")).await?;
    Ok(())
}
