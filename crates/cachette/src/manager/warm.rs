//! Cache warming: many entries written through `set_many` batches, with progress reports.
//!
//! [`CacheManager::warm`] takes the same [`LoadOptions`] as read-through calls, so warmed
//! entries get the same TTL (jittered when asked) and, with early refresh or stale copies,
//! the same metadata as entries written by [`CacheManager::get_or_load`].
//!
//! # Warming a `#[cached]` function
//!
//! Either call the function for each argument set (each call that misses runs the body and
//! stores its value; bounded concurrency keeps the source comfortable):
//!
//! ```ignore
//! use futures_util::{stream, StreamExt};
//! stream::iter(user_ids)
//!     .for_each_concurrent(16, |id| async move { let _ = get_user(id).await; })
//!     .await;
//! ```
//!
//! or, when the source can produce many values at once (one query for all users), write them
//! in batches here under the keys the function uses (its key template, e.g.
//! `#[cached(key = "user:{id}")]`, or the generated key) with the function's TTL:
//!
//! ```ignore
//! let users = db.all_users().await?;
//! cache.warm(&LoadOptions::ttl(Duration::from_secs(300)))
//!     .run(users.iter().map(|u| (format!("user:{}", u.id), u)))
//!     .await?;
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::load::meta::{meta_key, Meta};
use crate::load::refresh;
use crate::load::LoadOptions;
use crate::manager::CacheManager;

/// Default number of entries per `set_many` batch.
const DEFAULT_BATCH: usize = 500;

/// With jitter, a batch is written as this many sub-batches, each with its own TTL.
const JITTER_BUCKETS: usize = 8;

/// Where a warm-up stands, passed to the progress callback after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmProgress {
    /// Entries written so far.
    pub written: u64,
    /// Entries that could not be written (invalid key, encoding error, failed batch).
    pub failed: u64,
    /// Batches done.
    pub batches: u64,
    /// Total entries, when the source knows it (an exact `size_hint`).
    pub total: Option<u64>,
    /// Time since the warm-up started.
    pub elapsed: Duration,
}

/// The result of a warm-up.
#[derive(Debug)]
#[non_exhaustive]
pub struct WarmReport {
    /// Entries written.
    pub written: u64,
    /// Entries not written.
    pub failed: u64,
    /// Batches written (`set_many` calls, or groups of them with jitter).
    pub batches: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// The first failure, if any.
    pub first_error: Option<Error>,
}

type Progress<'a> = Box<dyn FnMut(&WarmProgress) + Send + 'a>;

/// A warm-up in preparation; made by [`CacheManager::warm`], started by [`Warm::run`] or
/// [`Warm::run_stream`].
#[must_use]
pub struct Warm<'a> {
    cache: &'a CacheManager,
    options: LoadOptions,
    batch_size: usize,
    compute_time: Duration,
    progress: Option<Progress<'a>>,
}

impl fmt::Debug for Warm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Warm")
            .field("options", &self.options)
            .field("batch_size", &self.batch_size)
            .field("compute_time", &self.compute_time)
            .finish()
    }
}

impl CacheManager {
    /// Prepares a warm-up that writes entries with `options` (TTL, jitter, and the metadata
    /// that early refresh and stale copies need) in `set_many` batches.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use cachette::{CacheManager, LoadOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = CacheManager::memory();
    /// let report = cache
    ///     .warm(&LoadOptions::ttl(Duration::from_secs(300)).jitter_percent(10))
    ///     .batch_size(100)
    ///     .on_progress(|p| eprintln!("{} of {:?} written", p.written, p.total))
    ///     .run((0..250).map(|i| (format!("user:{i}"), i)))
    ///     .await?;
    /// assert_eq!((report.written, report.batches), (250, 3));
    /// assert_eq!(cache.get::<i32>("user:7").await?, Some(7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn warm(&self, options: &LoadOptions) -> Warm<'_> {
        Warm {
            cache: self,
            options: options.clone(),
            batch_size: DEFAULT_BATCH,
            compute_time: Duration::ZERO,
            progress: None,
        }
    }
}

impl<'a> Warm<'a> {
    /// Entries per batch (default 500, at least 1).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// How long computing one value takes, recorded in the metadata for early refresh
    /// (default 0, which never refreshes early until the first reload measures it).
    pub fn compute_time(mut self, d: Duration) -> Self {
        self.compute_time = d;
        self
    }

    /// Called after every batch.
    pub fn on_progress(mut self, progress: impl FnMut(&WarmProgress) + Send + 'a) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Writes every entry of `entries`.
    ///
    /// # Errors
    /// Only an invalid TTL in the options; failed entries and batches are counted in the
    /// report (with the first error) and the warm-up goes on.
    pub async fn run<K, V, I>(self, entries: I) -> Result<WarmReport>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        self.run_stream(stream::iter(entries)).await
    }

    /// Writes every entry of `entries` as they arrive (e.g. rows from a database cursor).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_stream<K, V, S>(mut self, entries: S) -> Result<WarmReport>
    where
        S: Stream<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        let ttl = self.cache.resolve_ttl(self.options.ttl)?;
        let started = Instant::now();
        let total = match entries.size_hint() {
            (low, Some(high)) if low == high => Some(low as u64),
            _ => None,
        };
        let mut report = WarmReport {
            written: 0,
            failed: 0,
            batches: 0,
            elapsed: Duration::ZERO,
            first_error: None,
        };
        let mut chunks = std::pin::pin!(entries.chunks(self.batch_size));
        while let Some(chunk) = chunks.next().await {
            let mut encoded = Vec::with_capacity(chunk.len());
            for (key, value) in chunk {
                let item = self.cache.checked_key(key.as_ref()).and_then(|full| {
                    let bytes = self.cache.codec().encode(&full, &value)?;
                    self.cache.check_value_size(&full, bytes.len())?;
                    Ok((full, Bytes::from(bytes)))
                });
                match item {
                    Ok(item) => encoded.push(item),
                    Err(e) => {
                        report.failed += 1;
                        report.first_error.get_or_insert(e);
                    }
                }
            }
            let n = encoded.len() as u64;
            match self.write_batch(encoded, ttl).await {
                Ok(()) => {
                    report.written += n;
                    self.cache.counters().write(n);
                }
                Err(e) => {
                    report.failed += n;
                    self.cache.counters().error();
                    tracing::warn!(error = %e, entries = n, "cachette: a warm-up batch failed");
                    report.first_error.get_or_insert(e);
                }
            }
            report.batches += 1;
            if let Some(progress) = self.progress.as_mut() {
                progress(&WarmProgress {
                    written: report.written,
                    failed: report.failed,
                    batches: report.batches,
                    total,
                    elapsed: started.elapsed(),
                });
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Writes one batch: one `set_many`, or one per jitter bucket (concurrently).
    async fn write_batch(&self, items: Vec<(String, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let jitter = self.options.jitter_percent;
        let buckets = match ttl {
            Some(_) if jitter > 0 => JITTER_BUCKETS.min(items.len()),
            _ => 1,
        };
        let mut groups: Vec<Vec<(String, Bytes)>> = (0..buckets).map(|_| Vec::new()).collect();
        for (i, item) in items.into_iter().enumerate() {
            groups[i % buckets].push(item);
        }
        let writes = groups.into_iter().map(|group| {
            let ttl = ttl.map(|t| refresh::jitter(t, jitter));
            self.write_group(group, ttl)
        });
        for result in futures_util::future::join_all(writes).await {
            result?;
        }
        Ok(())
    }

    async fn write_group(
        &self,
        mut items: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let physical = match ttl {
            Some(ttl) if self.options.needs_meta() => {
                let meta = Meta {
                    expires_at_ms: refresh::unix_ms().saturating_add(refresh::ceil_ms(ttl)),
                    compute_ms: refresh::ceil_ms(self.compute_time),
                };
                let docs: Vec<_> = items
                    .iter()
                    .map(|(key, value)| (meta_key(key), meta.encode(value)))
                    .collect();
                items.extend(docs);
                Some(ttl.saturating_add(self.options.stale_ttl.unwrap_or_default()))
            }
            other => other,
        };
        self.cache.backend().set_many(&items, physical).await
    }
}
