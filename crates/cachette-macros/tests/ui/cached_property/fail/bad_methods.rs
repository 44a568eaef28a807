use cachette::{cached_property, CachedProperty};

#[derive(Default)]
struct DataProcessor {
    value: CachedProperty<u64>,
}

impl DataProcessor {
    #[cached_property(ttl = 60, field = value)]
    async fn with_argument(&self, factor: u64) -> u64 {
        factor
    }

    #[cached_property(ttl = 60, field = value)]
    async fn mutable(&mut self) -> u64 {
        1
    }

    #[cached_property(ttl = 60)]
    async fn associated() -> u64 {
        1
    }

    #[cached_property(ttl = 60, key = "x")]
    async fn unknown_option(&self) -> u64 {
        1
    }

    #[cached_property(ttl = 60, field = value)]
    fn not_async(&self) -> u64 {
        1
    }
}

fn main() {}
