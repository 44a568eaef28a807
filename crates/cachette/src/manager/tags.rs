//! Tagged writes and invalidation by tag on [`CacheManager`] (the policy is in `load::tags`).

use bytes::Bytes;
use serde::Serialize;

use super::CacheManager;
use crate::error::Result;
use crate::load::tags::{self, check_names, normalize, tagged_items, NAMESPACE_TAG};
use crate::ttl::Ttl;

impl CacheManager {
    /// Stores `value` at `key` with `ttl`, tagged with `tags` (any iterable of strings:
    /// `["user:42", "users"]`, `&[&str]`, `Vec<String>`...).
    ///
    /// After [`invalidate_tag`](Self::invalidate_tag) of any of `tags` (or
    /// [`invalidate_all`](Self::invalidate_all)), no read returns this entry: neither a
    /// read-through call with [`LoadOptions::tags`](crate::LoadOptions::tags) nor a plain
    /// [`get`](Self::get). The value stays plain JSON for other clients (behind two bytes of
    /// JSON whitespace, `"\t\r"`, that mark it as tagged); its tag versions live beside it
    /// under `{key}#tags{T}`, in its cluster slot, with its TTL. With no tags at all, the
    /// entry still carries the namespace's implicit tag (`invalidate_all` covers it).
    ///
    /// Costs two round trips (the tag versions, then the value and its tag document in one
    /// pipeline), one more the first time a tag is used. A plain `get` of a tagged key costs
    /// two round trips more than an untagged one (its document, then its tags); read
    /// through [`get_or_load`](Self::get_or_load) with the same tags for one round trip.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use cachette::CacheManager;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = CacheManager::memory();
    /// let ttl = Duration::from_secs(300);
    /// cache.set_tagged("user:42:profile", &"Ada", ttl, ["user:42", "users"]).await?;
    /// cache.set_tagged("user:7:profile", &"Alan", ttl, ["user:7", "users"]).await?;
    /// cache.invalidate_tag("user:42").await?;
    /// assert_eq!(cache.get::<String>("user:42:profile").await?, None);
    /// assert_eq!(cache.get::<String>("user:7:profile").await?.as_deref(), Some("Alan"));
    /// cache.invalidate_tag("users").await?;
    /// assert_eq!(cache.get::<String>("user:7:profile").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Those of [`set`](Self::set), and [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// for an empty tag name.
    pub async fn set_tagged<T, I, S>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
        tags: I,
    ) -> Result<()>
    where
        T: Serialize + ?Sized,
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let full = self.checked_key(key)?;
        let ttl = self.key_ttl(&full, ttl)?;
        let tags = normalize(tags);
        check_names(&tags).map_err(|e| e.with_key(&full))?;
        let bytes = self.inner.codec.encode(&full, value)?;
        self.check_value_size(&full, bytes.len())?;
        self.inner.fills.supersede(&full);
        let result = async {
            let versions = self.inner.snapshot_tags(&tags).await?;
            let (_, items) = tagged_items(&full, &bytes, &versions);
            self.inner.backend.set_many(&items, ttl).await
        }
        .await
        .map_err(|e| e.with_key(full));
        if result.is_ok() {
            self.inner.counters.write(1);
        }
        self.count(result)
    }

    /// [`set_many`](Self::set_many) with the same `tags` on every item: the tag versions are
    /// read once, then every value and its tag document go in one pipelined round trip.
    ///
    /// # Errors
    /// Those of [`set_many`](Self::set_many) and [`set_tagged`](Self::set_tagged).
    pub async fn set_many_tagged<K, V, I, T, S>(
        &self,
        items: I,
        ttl: impl Into<Ttl>,
        tags: T,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
        T: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let ttl = self.resolve_ttl(ttl)?;
        let tags = normalize(tags);
        check_names(&tags)?;
        let encoded = self.encode_items(items)?;
        if encoded.is_empty() {
            return Ok(());
        }
        for (full, _) in &encoded {
            self.inner.fills.supersede(full);
        }
        let n = encoded.len() as u64;
        let result = async {
            let versions = self.inner.snapshot_tags(&tags).await?;
            let items: Vec<(String, Bytes)> = encoded
                .iter()
                .flat_map(|(full, bytes)| tagged_items(full, bytes, &versions).1)
                .collect();
            self.inner.backend.set_many(&items, ttl).await
        }
        .await;
        if result.is_ok() {
            self.inner.counters.write(n);
        }
        self.count(result)
    }

    /// Invalidates every entry tagged with `tag`, in one command (`SET` of the tag's version
    /// key `{prefix}#tag:{tag}` to a fresh random version), however many entries carry it.
    ///
    /// The entries are not deleted: they are never served again, and their memory is freed
    /// when their TTL ends (or by [`clear`](Self::clear)/[`delete_pattern`](Self::delete_pattern)).
    /// A read-through fill of a tagged key that started before this call stores a value that
    /// is already out of date (it recorded the old version). With the near cache, other
    /// processes see the new version as they see any write (its tracking invalidation).
    ///
    /// # Errors
    /// A backend failure; [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an
    /// empty tag.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.invalidate_tags([tag]).await
    }

    /// Invalidates every entry tagged with any of `tags`: one `SET` per tag, in one pipeline
    /// (one per node on a cluster). See [`invalidate_tag`](Self::invalidate_tag).
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tags = normalize(tags);
        check_names(&tags)?;
        let names: Vec<&str> = tags.iter().map(String::as_str).collect();
        let result = self.inner.invalidate_tags(&names).await;
        self.count(result)
    }

    /// Invalidates every *tagged* entry of this namespace (every entry written with
    /// [`set_tagged`](Self::set_tagged), [`set_many_tagged`](Self::set_many_tagged) or
    /// [`LoadOptions::tags`](crate::LoadOptions::tags), with or without tags of its own) in
    /// one command: each of them carries the namespace's implicit tag, whose version this
    /// renews.
    ///
    /// Entries written without tags (plain [`set`](Self::set), read-through without tags) are
    /// not affected: checking a namespace version on their reads would cost every untagged
    /// read a second key (and, on a cluster, a second node). Use [`clear`](Self::clear) for
    /// them: it scans the keyspace, but also frees the memory.
    ///
    /// # Examples
    /// ```
    /// use cachette::{CacheManager, Ttl};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = CacheManager::memory();
    /// cache.set_tagged("a", &1, Ttl::Default, ["x"]).await?;
    /// cache.set_tagged("b", &2, Ttl::Default, None::<&str>).await?;
    /// cache.set("c", &3, Ttl::Default).await?;
    /// cache.invalidate_all().await?;
    /// assert_eq!(cache.get::<u32>("a").await?, None);
    /// assert_eq!(cache.get::<u32>("b").await?, None);
    /// assert_eq!(cache.get::<u32>("c").await?, Some(3)); // untagged: `clear` removes it
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate_all(&self) -> Result<()> {
        let result = self.inner.invalidate_tags(&[NAMESPACE_TAG]).await;
        self.count(result)
    }

    /// A tagged value `stored` at `full` read by [`get_shared`](Self::get_shared): checked
    /// against its tags (as [`get`](Self::get) does), decoded, never attached to the near
    /// cache's entry; counted as a hit or a miss.
    pub(super) async fn shared_tagged<T>(
        &self,
        full: &str,
        stored: Bytes,
    ) -> Result<Option<std::sync::Arc<T>>>
    where
        T: serde::de::DeserializeOwned,
    {
        match self.inner.check_marked(full, stored).await {
            Ok(Some(bytes)) => {
                self.inner.counters.hit();
                let value = self.inner.codec.decode::<T>(full, &bytes)?;
                Ok(Some(std::sync::Arc::new(value)))
            }
            Ok(None) => {
                self.inner.counters.miss();
                Ok(None)
            }
            Err(e) => Err(e.with_key(full)),
        }
    }

    /// `raw` (values of the full keys `full`) with each tagged value checked against its
    /// tags: unmarked when current, `None` otherwise.
    pub(super) async fn checked_many(
        &self,
        full: &[String],
        mut raw: Vec<Option<Bytes>>,
    ) -> Result<Vec<Option<Bytes>>> {
        let marked: Vec<usize> = (0..raw.len())
            .filter(|&i| raw[i].as_deref().is_some_and(tags::is_marked))
            .collect();
        let items: Vec<(String, Bytes)> = marked
            .iter()
            .filter_map(|&i| Some((full.get(i)?.clone(), raw[i].clone()?)))
            .collect();
        let checked = self.inner.check_marked_many(&items).await?;
        for (i, value) in marked.into_iter().zip(checked) {
            raw[i] = value;
        }
        Ok(raw)
    }
}
