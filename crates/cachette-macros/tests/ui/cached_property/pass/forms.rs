use std::sync::Arc;
use std::time::Duration;

use cachette::{cached_property, CachedProperty};

#[derive(Default)]
struct DataProcessor {
    raw: Vec<u64>,
    processed_data: CachedProperty<Arc<Vec<u64>>>,
    total_cache: CachedProperty<u64>,
    checked: CachedProperty<u64>,
}

impl DataProcessor {
    #[cached_property(ttl = 300)]
    async fn processed_data(&self) -> Arc<Vec<u64>> {
        Arc::new(self.raw.iter().map(|x| x * 2).collect())
    }

    #[cached_property(field = total_cache, ttl = Duration::from_millis(100))]
    async fn total(&self) -> u64 {
        self.raw.iter().sum()
    }

    #[cached_property(field = checked, ttl = None)]
    async fn checked(&self) -> Result<u64, std::io::Error> {
        Ok(1)
    }

    async fn by_hand(&self) -> u64 {
        self.total_cache.get_or_init(|| async { 5 }).await
    }
}

fn main() {
    fn assert_send<T: Send>(_: T) {}
    let p = DataProcessor::default();
    assert_send(p.processed_data());
    assert_send(p.total());
    assert_send(p.checked());
    assert_send(p.by_hand());
}
