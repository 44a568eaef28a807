//! Reading the statistics hash back: [`Published`], and [`CacheManager::published_stats`] /
//! [`CacheManager::reset_published_stats`], through the manager's own connections (on a
//! cluster, to the primary that serves the hash's slot).

use std::collections::BTreeMap;

use super::{stats_key, PUBLISHED_AT_FIELD};
use crate::error::{Error, ErrorKind, Result};
use crate::manager::CacheManager;

impl CacheManager {
    /// What every process published to this manager's statistics hash
    /// (`{prefix}__cachette:stats`), read with one `HGETALL` on the manager's Redis server or,
    /// on a cluster, on the primary that serves the hash's slot (following `MOVED`). What
    /// `cachette stats` shows.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the manager does not run on a Redis server or cluster it was
    /// configured with; [`ErrorKind::Connection`] or [`ErrorKind::Timeout`] when it cannot be
    /// reached; [`ErrorKind::Backend`] for the server's error reply (the key holds another
    /// type: `WRONGTYPE`).
    ///
    /// # Examples
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::CacheManager::from_env()?;
    /// for f in cache.published_stats().await?.functions {
    ///     println!("{}: {:?}", f.name, f.hit_rate());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn published_stats(&self) -> Result<Published> {
        let (_, direct) = self.direct_redis().ok_or_else(not_on_redis)?;
        let key = stats_key(self.prefix());
        let value = direct
            .query_on_key(&key, redis::cmd("HGETALL").arg(&key))
            .await?;
        let fields: Vec<(String, String)> = redis::from_redis_value(value)
            .map_err(|e| Error::from(redis::RedisError::from(e)).with_key(key.clone()))?;
        Ok(Published::parse(fields))
    }

    /// Deletes this manager's statistics hash: every process's counters start again from zero
    /// (a running publisher adds only what it counts from then on). Returns whether there was
    /// one.
    ///
    /// # Errors
    /// As [`published_stats`](Self::published_stats).
    pub async fn reset_published_stats(&self) -> Result<bool> {
        let (_, direct) = self.direct_redis().ok_or_else(not_on_redis)?;
        let key = stats_key(self.prefix());
        let value = direct
            .query_on_key(&key, redis::cmd("DEL").arg(&key))
            .await?;
        let removed: u64 = redis::from_redis_value(value)
            .map_err(|e| Error::from(redis::RedisError::from(e)).with_key(key.clone()))?;
        Ok(removed > 0)
    }
}

fn not_on_redis() -> Error {
    Error::new(
        ErrorKind::Config,
        "statistics are published to Redis, and this manager does not run on one",
    )
}

/// One function's totals as read back from the hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishedFunction {
    /// The function (`module::function`), or a name given to [`StatsPublisherBuilder::manager`](super::StatsPublisherBuilder::manager).
    pub name: String,
    /// Counter name to total, for every counter present (see [`COUNTERS`](super::COUNTERS); counters of newer
    /// versions are kept too).
    pub counters: BTreeMap<String, u64>,
}

impl PublishedFunction {
    /// A counter's total (`0` when absent).
    pub fn get(&self, counter: &str) -> u64 {
        self.counters.get(counter).copied().unwrap_or(0)
    }

    /// `hits / (hits + misses)`, `None` before any read.
    pub fn hit_rate(&self) -> Option<f64> {
        let (hits, misses) = (self.get("hits"), self.get("misses"));
        (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
    }
}

/// The content of the statistics hash, as `HGETALL` returns it, by function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Per function, sorted by name.
    pub functions: Vec<PublishedFunction>,
    /// Unix time in milliseconds of the latest batch from any process.
    pub published_at_ms: Option<u64>,
    /// The near caches' counters and sizes ([`NEAR_COUNTERS`](super::NEAR_COUNTERS)), added
    /// up over the processes that publish them (named [`NEAR_NAME`](super::NEAR_NAME));
    /// `None` when none does.
    pub near: Option<PublishedFunction>,
}

impl Published {
    /// Groups `HGETALL` fields (`function|counter` to a number); ignores malformed fields.
    pub fn parse<I, K, V>(fields: I) -> Published
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut published = Published::default();
        let mut by_name: BTreeMap<String, PublishedFunction> = BTreeMap::new();
        for (field, value) in fields {
            let (field, value) = (field.as_ref(), value.as_ref());
            if field == PUBLISHED_AT_FIELD {
                published.published_at_ms = value.parse().ok();
                continue;
            }
            let (Some((name, counter)), Ok(n)) = (field.rsplit_once('|'), value.parse::<u64>())
            else {
                continue;
            };
            by_name
                .entry(name.to_owned())
                .or_insert_with(|| PublishedFunction {
                    name: name.to_owned(),
                    counters: BTreeMap::new(),
                })
                .counters
                .insert(counter.to_owned(), n);
        }
        published.near = by_name.remove(super::NEAR_NAME);
        published.functions = by_name.into_values().collect();
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_groups_fields_by_function() {
        let p = Published::parse([
            ("a::f|hits", "3"),
            ("a::f|misses", "1"),
            ("b|errors", "2"),
            (PUBLISHED_AT_FIELD, "1700000000000"),
            ("garbage", "1"),
            ("c|hits", "x"),
            ("__cachette:near|hits", "9"),
        ]);
        assert_eq!(p.near.as_ref().map(|n| n.get("hits")), Some(9));
        assert_eq!(p.published_at_ms, Some(1_700_000_000_000));
        assert_eq!(p.functions.len(), 2);
        assert_eq!(p.functions[0].name, "a::f");
        assert_eq!(p.functions[0].hit_rate(), Some(0.75));
        assert_eq!(p.functions[1].get("errors"), 2);
        assert_eq!(p.functions[1].hit_rate(), None);
    }
}
