//! Removing stored responses: by URL, by path prefix, by tag.

use std::sync::atomic::Ordering;

use cachette::glob;

use crate::config::HttpCache;
use crate::key;

impl HttpCache {
    /// Removes every stored response of `url` (`scheme://host/path?query`, or a path
    /// relative to `origin`): its primary entry, its other variants and its per-user
    /// entries. Returns how many keys were removed (a tagged response's tag document,
    /// `{key}#tags{…}`, is one more).
    ///
    /// # Errors
    /// The cache's error, or an invalid URL ([`ErrorKind::InvalidInput`](cachette::ErrorKind::InvalidInput)).
    pub async fn purge_url(&self, url: &str) -> cachette::Result<u64> {
        let uri: http::Uri = url.parse().map_err(|e| {
            cachette::Error::new(
                cachette::ErrorKind::InvalidInput,
                format!("invalid URL {url:?}: {e}"),
            )
        })?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(cachette::Error::new(
                cachette::ErrorKind::InvalidInput,
                format!("purge_url needs an absolute URL (scheme://host/path), got {url:?}"),
            ));
        };
        let origin = format!("{scheme}://{}", authority.as_str().to_ascii_lowercase());
        let s = &self.settings;
        let primary = key::primary(&s.key_prefix, &origin, &uri, None);
        let mut removed = u64::from(s.cache.delete(&primary).await?);
        removed += s
            .cache
            .delete_pattern(&format!("{}#*", glob::escape(&primary)))
            .await?;
        Ok(removed)
    }

    /// Removes every stored response whose URL starts with `origin` (`scheme://host`) and
    /// then `path_prefix` (e.g. `"/products/"`). Scans the manager's keys (`SCAN` on Redis):
    /// meant for purge endpoints, not for every request.
    ///
    /// # Errors
    /// The cache's error.
    pub async fn purge_prefix(&self, origin: &str, path_prefix: &str) -> cachette::Result<u64> {
        let s = &self.settings;
        let pattern = format!(
            "{}*",
            glob::escape(&format!(
                "{}GET:{}{path_prefix}",
                s.key_prefix,
                origin.to_ascii_lowercase()
            ))
        );
        s.cache.delete_pattern(&pattern).await
    }

    /// Invalidates every stored response tagged `tag`: by its route ([`Route::tags`](crate::Route::tags))
    /// or by its handler (the tags header, `x-cache-tags` by default). One command
    /// ([`CacheManager::invalidate_tag`](cachette::CacheManager::invalidate_tag)), however
    /// many responses carry the tag; the next request of each of them is a `MISS` and runs
    /// its handler. Every read path honours it: hits, `HEAD`, `304`s, stale copies, `Vary`
    /// variants, `only-if-cached`.
    ///
    /// Cheap to call from a handler: keep a clone of the layer in the router's state (see
    /// the crate's `http_axum` example, which purges `product:{id}` from a `POST`).
    ///
    /// # Examples
    /// ```
    /// use cachette::CacheManager;
    /// use cachette_http::HttpCache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = HttpCache::new(CacheManager::memory());
    /// cache.invalidate_tag("product:7").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The cache's error; [`ErrorKind::InvalidInput`](cachette::ErrorKind::InvalidInput) for
    /// an empty tag.
    pub async fn invalidate_tag(&self, tag: &str) -> cachette::Result<()> {
        self.invalidate_tags([tag]).await
    }

    /// Invalidates every stored response tagged with any of `tags`, in one pipeline. See
    /// [`invalidate_tag`](Self::invalidate_tag).
    ///
    /// # Errors
    /// The cache's error; [`ErrorKind::InvalidInput`](cachette::ErrorKind::InvalidInput) for
    /// an empty tag.
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> cachette::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let s = &self.settings;
        // Before the versions change: a fill of this process storing after its handler ran
        // sees the count move and drops what it stored (see `service::store`).
        s.purges.fetch_add(1, Ordering::SeqCst);
        s.cache.invalidate_tags(tags).await
    }
}
