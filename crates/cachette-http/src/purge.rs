//! Removing stored responses: by URL, by path prefix (and, once `cachette` has tags, by
//! tag).

use cachette::glob;

use crate::config::HttpCache;
use crate::key;

impl HttpCache {
    /// Removes every stored response of `url` (`scheme://host/path?query`, or a path
    /// relative to `origin`): its primary entry, its other variants and its per-user
    /// entries. Returns how many entries were removed.
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
}
