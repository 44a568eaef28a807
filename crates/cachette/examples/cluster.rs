//! Redis Cluster: the same `CacheManager` on a cluster named by `REDIS_CLUSTER_NODES` (or
//! `cluster_nodes` in `config.json`). Without one it runs unchanged on whatever else is
//! configured (`REDIS_URL`, or the embedded memory backend), so it is safe to run anywhere.
//!
//! ```text
//! cargo run -p cachette --example cluster
//! REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002 cargo run -p cachette --example cluster
//! ```

use cachette::Ttl;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = cachette::Config::load()?;
    if !config.uses_cluster() {
        println!("REDIS_CLUSTER_NODES is not set: running on the configured backend instead");
    }
    let cache = config.builder().build()?;
    println!("backend: {}", cache.describe());
    if !cache.ping().await {
        return Err("the configured cache does not answer".into());
    }
    cache.delete_pattern("cluster-example:*").await?;

    // A batch over many slots: one pipeline per primary, results in this order.
    let items: Vec<(String, u32)> = (0..100)
        .map(|i| (format!("cluster-example:item:{i}"), i))
        .collect();
    cache.set_many(items.clone(), Ttl::secs(60)).await?;
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let values: Vec<Option<u32>> = cache.get_many(&keys).await?;
    assert!(values.iter().zip(0..).all(|(v, i)| *v == Some(i)));
    println!("get_many of {} keys over every node: in order", keys.len());

    // Related keys in one slot: a hash tag `{...}` in the key.
    cache
        .set("cluster-example:{user:1}:profile", &"Ada", Ttl::secs(60))
        .await?;
    cache
        .set("cluster-example:{user:1}:settings", &"dark", Ttl::secs(60))
        .await?;

    // keys / delete_pattern visit every primary.
    let mut found = cache.keys("cluster-example:*").await?;
    found.sort();
    println!("keys: {} (first {:?})", found.len(), found.first());
    let info = cache.info().await?;
    println!("keys in the store: {}", info.keys_in_db(0));
    let removed = cache.delete_pattern("cluster-example:*").await?;
    println!("removed {removed} keys");
    Ok(())
}
