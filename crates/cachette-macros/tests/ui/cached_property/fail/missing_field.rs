use cachette::{cached_property, CachedProperty};

struct DataProcessor {
    total: CachedProperty<String>,
}

impl DataProcessor {
    // No field named `processed_data`.
    #[cached_property(ttl = 60)]
    async fn processed_data(&self) -> Vec<u64> {
        vec![1]
    }

    // A field of the wrong type.
    #[cached_property(ttl = 60)]
    async fn total(&self) -> u64 {
        1
    }
}

fn main() {}
