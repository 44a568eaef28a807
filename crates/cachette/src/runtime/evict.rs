//! Eviction (`#[cache_evict]`) around a function body.

use std::fmt;
use std::future::Future;

use crate::error::Error;
use crate::manager::CacheManager;
use crate::stats::Counters;

use super::call::OwnerFn;
use super::site::FnSite;

/// The keys and patterns one `#[cache_evict]` call deletes, and the tags it invalidates,
/// computed from the arguments before the body runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvictPlan {
    keys: Vec<String>,
    patterns: Vec<String>,
    tags: Vec<String>,
}

impl EvictPlan {
    /// Deletes `key` (relative to the manager's prefix).
    pub fn key(&mut self, key: String) -> &mut Self {
        self.keys.push(key);
        self
    }

    /// Deletes every key matching the Redis glob `pattern`.
    pub fn pattern(&mut self, pattern: String) -> &mut Self {
        self.patterns.push(pattern);
        self
    }

    /// Invalidates every entry tagged with `tag` ([`CacheManager::invalidate_tags`]).
    pub fn tag(&mut self, tag: String) -> &mut Self {
        self.tags.push(tag);
        self
    }

    /// The tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The keys.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// When an eviction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EvictWhen {
    /// Before the body (the default is after).
    pub before: bool,
    /// After the body even when it returned `Err` (only meaningful for `Result` functions
    /// evicting after).
    pub always: bool,
}

impl EvictWhen {
    /// `before` the body, or after it (`always`: even after an `Err`).
    pub const fn new(before: bool, always: bool) -> Self {
        EvictWhen { before, always }
    }
}

/// One call of a `#[cache_evict]` function: the manager and the plan, resolved before the
/// body runs. Consumed by [`evict_result`] and its siblings.
pub struct Evict<'m> {
    site: &'static FnSite,
    counters: &'static Counters,
    manager: Option<&'m CacheManager>,
    plan: EvictPlan,
    when: EvictWhen,
}

impl fmt::Debug for Evict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evict")
            .field("active", &self.manager.is_some())
            .field("plan", &self.plan)
            .field("when", &self.when)
            .finish()
    }
}

impl<'m> Evict<'m> {
    /// Resolves a call: registers `site` (once) and, when `manager` is `Some` and enabled,
    /// fills the plan with `plan`.
    #[inline]
    pub fn new(
        site: &'static FnSite,
        owner: Option<OwnerFn>,
        manager: Option<&'m CacheManager>,
        when: EvictWhen,
        plan: impl FnOnce(&mut EvictPlan),
    ) -> Self {
        let counters = site.enter(owner);
        let manager = manager.filter(|m| m.is_enabled());
        let mut filled = EvictPlan::default();
        if manager.is_some() {
            plan(&mut filled);
        }
        Evict {
            site,
            counters,
            manager,
            plan: filled,
            when,
        }
    }

    /// The keys and patterns this call deletes (empty when the cache is not in use).
    pub fn plan(&self) -> &EvictPlan {
        &self.plan
    }

    /// Deletes the plan's keys (one `delete_many`) and patterns, and invalidates its tags (one
    /// pipeline); returns how many keys went (invalidated entries are not counted).
    async fn run(&self) -> Result<u64, Error> {
        let Some(manager) = self.manager else {
            return Ok(0);
        };
        let mut deleted = 0;
        if !self.plan.keys.is_empty() {
            deleted += manager.delete_many(&self.plan.keys).await?;
        }
        for pattern in &self.plan.patterns {
            deleted += manager.delete_pattern(pattern).await?;
        }
        if !self.plan.tags.is_empty() {
            manager.invalidate_tags(&self.plan.tags).await?;
        }
        self.site.add_evicted(deleted);
        tracing::debug!(
            function = self.site.name(),
            keys = ?self.plan.keys,
            patterns = ?self.plan.patterns,
            tags = ?self.plan.tags,
            deleted,
            "cachette: evicted"
        );
        Ok(deleted)
    }

    /// Runs the eviction; a failure is counted and handed to `on_error`.
    async fn run_or<O>(&self, on_error: impl FnOnce(Error) -> Option<O>) -> Option<O> {
        match self.run().await {
            Ok(_) => None,
            Err(e) => {
                self.counters.error();
                match on_error(e) {
                    Some(replacement) => Some(replacement),
                    None => {
                        tracing::warn!(
                            function = self.site.name(),
                            "cachette: eviction failed; continuing"
                        );
                        None
                    }
                }
            }
        }
    }
}

async fn evict_around<O, F, H>(
    evict: Evict<'_>,
    succeeded: impl FnOnce(&O) -> bool,
    on_error: H,
    body: F,
) -> O
where
    F: Future<Output = O>,
    H: FnOnce(Error) -> Option<O>,
{
    if evict.when.before {
        if let Some(replacement) = evict.run_or(on_error).await {
            return replacement;
        }
        return body.await;
    }
    let output = body.await;
    if evict.when.always || succeeded(&output) {
        if let Some(replacement) = evict.run_or(on_error).await {
            return replacement;
        }
    }
    output
}

/// `#[cache_evict]` on a function returning `Result<T, E>`: evicts before the body, or after
/// it when it returned `Ok` (or always, with `always = true`). A failed eviction is logged and
/// ignored.
///
/// # Examples
///
/// ```
/// use cachette::runtime::{evict_result, Evict, EvictWhen, FnSite, SiteKind};
/// use cachette::{CacheManager, Ttl};
///
/// async fn update_user(cache: &CacheManager, id: u64) -> Result<(), std::io::Error> {
///     static SITE: FnSite = FnSite::new(module_path!(), "update_user", SiteKind::Evict);
///     let evict = Evict::new(&SITE, None, Some(cache), EvictWhen::default(), |plan| {
///         plan.key(format!("user:{id}"));
///     });
///     evict_result(evict, async move { Ok(()) }).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = CacheManager::memory();
/// cache.set("user:1", &"Ada", Ttl::Default).await?;
/// update_user(&cache, 1).await?;
/// assert!(!cache.exists("user:1").await?);
/// # Ok(())
/// # }
/// ```
pub fn evict_result<'m, T, E, Fut>(
    evict: Evict<'m>,
    body: Fut,
) -> impl Future<Output = Result<T, E>> + use<'m, T, E, Fut>
where
    Fut: Future<Output = Result<T, E>>,
{
    evict_around(evict, Result::is_ok, |_| None, body)
}

/// [`evict_result`] with `fallback_on_error = false`: a failed eviction is returned as
/// `Err(E::from(error))` — before the body (which then does not run) or after it.
pub fn evict_result_strict<'m, T, E, Fut>(
    evict: Evict<'m>,
    body: Fut,
) -> impl Future<Output = Result<T, E>> + use<'m, T, E, Fut>
where
    E: From<Error>,
    Fut: Future<Output = Result<T, E>>,
{
    evict_around(evict, Result::is_ok, |e| Some(Err(E::from(e))), body)
}

/// `#[cache_evict]` on a function returning anything but a `Result`: evicts before or after
/// the body, every time.
pub fn evict_value<'m, O, Fut>(
    evict: Evict<'m>,
    body: Fut,
) -> impl Future<Output = O> + use<'m, O, Fut>
where
    Fut: Future<Output = O>,
{
    evict_around(evict, |_| true, |_| None, body)
}
