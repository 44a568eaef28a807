//! Entry metadata for early refresh and stale copies, kept beside the value.
//!
//! Values stay exactly what the codec produces (`serde_json::to_vec(&value)` by default), so
//! other services can read them. When a read-through call uses early refresh (`beta > 0`) or
//! stale copies (`stale_ttl`), the value at `{key}` gets a sibling `{key}#meta{T}` (in its cluster slot, see [`crate::key::companion_key`]), written in the
//! same round trip (one pipeline on Redis) with the same TTL, holding one JSON object:
//!
//! ```json
//! {"v":1,"expires_at_ms":1767225600123,"compute_ms":52,"value_xxh3":"9d2c6e1f0a7b3c48"}
//! ```
//!
//! - `v`: format version (1).
//! - `expires_at_ms`: the value's logical expiry, Unix time in milliseconds. The stored keys
//!   live `stale_ttl` longer than that: in between, the value is a stale copy, served only
//!   when a reload fails or is too slow.
//! - `compute_ms`: how long the loader took, which scales the early-refresh window.
//! - `value_xxh3`: XXH3-64 of the value bytes, 16 lowercase hex digits. Metadata whose hash
//!   does not match the value (the value was rewritten by a plain `set`, or by hand) is
//!   ignored, and the value is treated as fresh and without metadata.
//!
//! Both keys are read with one `MGET`. Without those options nothing but the value is read or
//! written. A tagged value (see `load::tags`) is hashed as stored, with its mark.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::load::refresh;
use crate::load::state::State;
use crate::load::tags::{self, Versions};

/// Suffix of the metadata key.
pub(crate) const META_SUFFIX: &str = "#meta";

/// The metadata key of `full_key`: `{full_key}#meta{T}`, in `full_key`'s cluster slot (see
/// [`crate::key::companion_key`]).
pub(crate) fn meta_key(full_key: &str) -> String {
    crate::key::companion_key(full_key, META_SUFFIX)
}

#[derive(Debug, Serialize, Deserialize)]
struct MetaDoc<'a> {
    v: u8,
    expires_at_ms: u64,
    compute_ms: u64,
    #[serde(borrow)]
    value_xxh3: &'a str,
}

/// Parsed, verified metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) expires_at_ms: u64,
    pub(crate) compute_ms: u64,
}

fn hash_hex(value: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(value))
}

impl Meta {
    /// The metadata document for `value`.
    pub(crate) fn encode(&self, value: &[u8]) -> Bytes {
        let hash = hash_hex(value);
        let doc = MetaDoc {
            v: 1,
            expires_at_ms: self.expires_at_ms,
            compute_ms: self.compute_ms,
            value_xxh3: &hash,
        };
        // Serializing integers and a hex string cannot fail; an empty document would simply
        // be ignored by readers.
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// Parses `doc` and checks it belongs to `value`.
    pub(crate) fn decode(doc: &[u8], value: &[u8]) -> Option<Meta> {
        let doc: MetaDoc<'_> = serde_json::from_slice(doc).ok()?;
        if doc.v != 1 || doc.value_xxh3 != hash_hex(value) {
            return None;
        }
        Some(Meta {
            expires_at_ms: doc.expires_at_ms,
            compute_ms: doc.compute_ms,
        })
    }
}

/// A stored value with its verified metadata, if any.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub(crate) bytes: Bytes,
    pub(crate) meta: Option<Meta>,
}

/// What a reader should do with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it, and refresh it now (XFetch drew this reader).
    RefreshEarly,
    /// Past its logical expiry: reload, serving it only if the reload fails.
    Stale,
}

impl RawEntry {
    /// The entry's freshness for a reader with early-refresh factor `beta`.
    pub(crate) fn freshness(&self, beta: f64) -> Freshness {
        let Some(meta) = self.meta else {
            return Freshness::Fresh;
        };
        let now = refresh::unix_ms();
        if now >= meta.expires_at_ms {
            Freshness::Stale
        } else if refresh::should_refresh_early(now, meta.expires_at_ms, meta.compute_ms, beta) {
            Freshness::RefreshEarly
        } else {
            Freshness::Fresh
        }
    }
}

impl State {
    /// Reads the value at `full` (and its metadata when `with_meta`), counting the read. With
    /// `tags` (normalized, see [`LoadOptions::tags`](crate::LoadOptions::tags)), only an entry
    /// written with exactly those tags, all still current, is found (see `load::tags`).
    pub(crate) async fn read_entry(
        &self,
        full: &str,
        with_meta: bool,
        tags: &[String],
    ) -> Result<Option<RawEntry>> {
        match self.fetch_entry(full, with_meta, tags).await {
            Ok(entry) => {
                let hit = u64::from(entry.is_some());
                self.counters().add_reads(hit, 1 - hit);
                Ok(entry)
            }
            Err(e) => {
                self.counters().error();
                Err(e.with_key(full))
            }
        }
    }

    /// [`read_entry`](Self::read_entry) without counting (a leader's second look).
    pub(crate) async fn fetch_entry(
        &self,
        full: &str,
        with_meta: bool,
        tags: &[String],
    ) -> Result<Option<RawEntry>> {
        if !tags.is_empty() {
            let found = Box::pin(self.fetch_tagged(full, with_meta, tags)).await?;
            return Ok(found.map(|(stored, meta_doc)| RawEntry {
                meta: meta_doc.and_then(|doc| Meta::decode(&doc, &stored)),
                bytes: tags::value_of(&stored),
            }));
        }
        let entry = if with_meta {
            let keys = [full.to_owned(), meta_key(full)];
            self.backend().get_many(&keys).await.map(|mut values| {
                let meta_doc = values.pop().flatten();
                values.pop().flatten().map(|bytes| {
                    let meta = meta_doc.and_then(|doc| Meta::decode(&doc, &bytes));
                    RawEntry { bytes, meta }
                })
            })?
        } else {
            // Boxed: read-through futures nest this read several layers deep, and inline it
            // would take them past the allocator's small-size caches (1 KiB) wherever they
            // are boxed or spawned (measured: 1.2-1.7 KB futures cost a 64-way hit load more
            // than the extra small allocation does).
            Box::pin(self.get_full(full))
                .await?
                .map(|bytes| RawEntry { bytes, meta: None })
        };
        match entry {
            // A tagged value read without its tags: checked against its own document.
            Some(entry) if tags::is_marked(&entry.bytes) => {
                let meta = entry.meta;
                let checked = Box::pin(self.check_marked(full, entry.bytes)).await?;
                Ok(checked.map(|bytes| RawEntry { bytes, meta }))
            }
            other => Ok(other),
        }
    }

    /// Stores `bytes` at `full` for `ttl` (already jittered; `None` = persistent), with
    /// metadata when `meta` is given and as a tagged value recording `tags` when given,
    /// counting the write. Returns the bytes stored at `full` (marked when tagged).
    pub(crate) async fn write_entry(
        &self,
        full: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
        meta: Option<(Meta, Duration)>,
        tags: Option<&Versions>,
    ) -> Result<Bytes> {
        if let Err(e) = self.check_value_size(full, bytes.len()) {
            self.counters().error();
            return Err(e);
        }
        let (stored, doc) = match tags {
            Some(versions) => {
                let (stored, [_, doc]) = tags::tagged_items(full, &bytes, versions);
                (stored, Some(doc))
            }
            None => (bytes, None),
        };
        let meta = match (ttl, meta) {
            (Some(ttl), Some((meta, stale_ttl))) => Some((meta, stale_ttl, ttl)),
            _ => None,
        };
        let result = if meta.is_none() && doc.is_none() {
            self.backend().set(full, stored.clone(), ttl).await
        } else {
            let mut items = Vec::with_capacity(3);
            items.push((full.to_owned(), stored.clone()));
            // The stale copy's extra life stays inside the one TTL range (rounded up to whole
            // milliseconds, at most 100 years) on every backend.
            let life = match &meta {
                Some((meta, stale_ttl, ttl)) => {
                    items.push((meta_key(full), meta.encode(&stored)));
                    Some(stale_life(*ttl, *stale_ttl))
                }
                None => ttl,
            };
            items.extend(doc);
            self.backend().set_many(&items, life).await
        };
        match result {
            Ok(()) => {
                self.counters().write(1);
                Ok(stored)
            }
            Err(e) => {
                self.counters().error();
                Err(e.with_key(full))
            }
        }
    }
}

/// How long a value with a stale copy lives: its TTL plus `stale_ttl`, rounded up to whole
/// milliseconds and capped to [`crate::ttl::MAX_TTL`].
fn stale_life(ttl: Duration, stale_ttl: Duration) -> Duration {
    crate::ttl::round_up_to_millis(ttl.saturating_add(stale_ttl)).min(crate::ttl::MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_roundtrips_and_is_bound_to_its_value() {
        let meta = Meta {
            expires_at_ms: 1_767_225_600_123,
            compute_ms: 52,
        };
        let doc = meta.encode(b"{\"a\":1}");
        let text = std::str::from_utf8(&doc).unwrap();
        assert!(
            text.starts_with(
                "{\"v\":1,\"expires_at_ms\":1767225600123,\"compute_ms\":52,\"value_xxh3\":\""
            ),
            "{text}"
        );
        assert_eq!(Meta::decode(&doc, b"{\"a\":1}"), Some(meta));
        assert_eq!(Meta::decode(&doc, b"{\"a\":2}"), None);
        assert_eq!(Meta::decode(b"garbage", b"{\"a\":1}"), None);
        assert_eq!(meta_key("cache:user:1"), "cache:user:1#meta{4Cy}");
    }
}
