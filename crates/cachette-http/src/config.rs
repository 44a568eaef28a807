//! The layer's configuration: [`HttpCache`] (a builder that is also the `tower::Layer`),
//! per-route rules ([`Route`]) and what to do with credentials ([`Credentials`]).

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use cachette::{CacheManager, LoadOptions};
use http::header::HeaderName;
use http::request::Parts;

use crate::policy::DEFAULT_CACHEABLE_STATUSES;

/// What the cache does with a request that carries credentials (`Authorization`, or
/// `Cookie`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// The default: such requests go to the handler uncached (`x-cache: BYPASS`).
    #[default]
    Bypass,
    /// Cached per credential: a hash of the field's value is part of the key, so each user
    /// only ever gets the responses made for their own requests.
    PerUser,
    /// Ignored: one entry shared by every user. Only for routes whose responses do not
    /// depend on who asks. For `Authorization`, a response is still stored only if it says
    /// it may be shared (`public`, `s-maxage` or `must-revalidate`, RFC 9111 §3.5).
    Shared,
}

/// How one route is cached; chosen per request by [`HttpCache::route`] (longest matching
/// path prefix) or [`HttpCache::route_fn`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use cachette_http::Route;
///
/// let products = Route::ttl(Duration::from_secs(300)).tags(["products"]);
/// let admin = Route::bypass();
/// # let _ = (products, admin);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub(crate) cache: bool,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tags: Vec<String>,
}

impl Route {
    /// Cached for `ttl` at most (a response's own shorter `max-age`, `s-maxage` or
    /// `Expires` wins; a longer one is capped at `ttl`).
    pub fn ttl(ttl: Duration) -> Route {
        Route {
            cache: true,
            ttl: Some(ttl),
            tags: Vec::new(),
        }
    }

    /// Cached with the layer's default TTL ([`HttpCache::ttl`]).
    pub fn cached() -> Route {
        Route {
            cache: true,
            ttl: None,
            tags: Vec::new(),
        }
    }

    /// Never cached: every request goes to the handler (`x-cache: BYPASS`).
    pub fn bypass() -> Route {
        Route {
            cache: false,
            ttl: None,
            tags: Vec::new(),
        }
    }

    /// Tags of the route's entries, added to those a response names in the tags header
    /// ([`HttpCache::tags_header`]).
    ///
    /// Tags are recorded with each stored response; invalidation by tag needs
    /// `CacheManager::invalidate_tag` in `cachette`, which this release does not wire yet
    /// (see the crate docs).
    #[must_use]
    pub fn tags<I, S>(mut self, tags: I) -> Route
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }
}

/// A function choosing the route of a request (see [`HttpCache::route_fn`]).
pub type RouteFn = Arc<dyn Fn(&Parts) -> Option<Route> + Send + Sync>;

/// The HTTP response cache: a [`tower_layer::Layer`] whose service caches `GET` and `HEAD`
/// responses in a [`CacheManager`]. Built with setters (each returns the changed layer);
/// cheap to clone (an `Arc` inside), and every clone shares the settings it had then.
///
/// See the crate docs for the rules it follows.
#[derive(Clone)]
pub struct HttpCache {
    pub(crate) settings: Arc<Settings>,
}

/// Everything a request needs to know about the layer (shared by every clone of it and of
/// its services).
pub(crate) struct Settings {
    pub(crate) cache: CacheManager,
    pub(crate) base: LoadOptions,
    pub(crate) ttl: Duration,
    /// Path prefixes, longest first.
    pub(crate) routes: Vec<(String, Route)>,
    pub(crate) route_fn: Option<RouteFn>,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) max_body_bytes: usize,
    pub(crate) statuses: Vec<u16>,
    pub(crate) authorization: Credentials,
    pub(crate) cookies: Credentials,
    pub(crate) status_header: HeaderName,
    pub(crate) tags_header: Option<HeaderName>,
    pub(crate) key_prefix: String,
    /// Bumped by every [`HttpCache::invalidate_tags`] of this layer (and its clones), before
    /// the tags' versions change: a fill that stores its response after its handler ran
    /// checks it did not move meanwhile (see `service`).
    pub(crate) purges: Arc<AtomicU64>,
}

impl Clone for Settings {
    fn clone(&self) -> Self {
        Settings {
            cache: self.cache.clone(),
            base: self.base.clone(),
            ttl: self.ttl,
            routes: self.routes.clone(),
            route_fn: self.route_fn.clone(),
            stale_while_revalidate: self.stale_while_revalidate,
            stale_if_error: self.stale_if_error,
            max_body_bytes: self.max_body_bytes,
            statuses: self.statuses.clone(),
            authorization: self.authorization,
            cookies: self.cookies,
            status_header: self.status_header.clone(),
            tags_header: self.tags_header.clone(),
            key_prefix: self.key_prefix.clone(),
            purges: self.purges.clone(),
        }
    }
}

impl fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("HttpCache")
            .field("cache", &s.cache.describe())
            .field("ttl", &s.ttl)
            .field("routes", &s.routes)
            .field("route_fn", &s.route_fn.is_some())
            .field("stale_while_revalidate", &s.stale_while_revalidate)
            .field("stale_if_error", &s.stale_if_error)
            .field("max_body_bytes", &s.max_body_bytes)
            .field("statuses", &s.statuses)
            .field("authorization", &s.authorization)
            .field("cookies", &s.cookies)
            .field("status_header", &s.status_header)
            .field("tags_header", &s.tags_header)
            .field("key_prefix", &s.key_prefix)
            .finish()
    }
}

/// The default of [`HttpCache::ttl`]: 60 s.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The default of [`HttpCache::max_body_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

impl HttpCache {
    /// A layer storing responses in `cache` with the defaults: TTL 60 s when a response
    /// names none, bodies up to 1 MiB, the RFC 9110 heuristically cacheable statuses,
    /// requests with credentials bypassed, the status in `x-cache`, tags in `x-cache-tags`,
    /// keys under `http:`.
    pub fn new(cache: CacheManager) -> HttpCache {
        HttpCache {
            settings: Arc::new(Settings {
                cache,
                base: LoadOptions::new(),
                ttl: DEFAULT_TTL,
                routes: Vec::new(),
                route_fn: None,
                stale_while_revalidate: None,
                stale_if_error: None,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                statuses: DEFAULT_CACHEABLE_STATUSES.to_vec(),
                authorization: Credentials::Bypass,
                cookies: Credentials::Bypass,
                status_header: HeaderName::from_static("x-cache"),
                tags_header: Some(HeaderName::from_static("x-cache-tags")),
                key_prefix: "http:".to_owned(),
                purges: Arc::default(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> HttpCache {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// The manager responses are stored in.
    pub fn manager(&self) -> &CacheManager {
        &self.settings.cache
    }

    /// The longest time a response is kept when its route names no TTL (default 60 s). A
    /// response's own shorter freshness (`s-maxage`, `max-age`, `Expires`) wins.
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> HttpCache {
        self.with(|s| s.ttl = ttl)
    }

    /// The rule for every path starting with `prefix` (the longest matching prefix wins;
    /// [`route_fn`](Self::route_fn), when set, is asked first).
    #[must_use]
    pub fn route(self, prefix: impl Into<String>, route: Route) -> HttpCache {
        let prefix = prefix.into();
        self.with(|s| {
            s.routes.retain(|(p, _)| *p != prefix);
            s.routes.push((prefix, route));
            s.routes.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        })
    }

    /// A function choosing the rule of a request (e.g. from axum's `MatchedPath` extension);
    /// `None` falls back to the prefixes of [`route`](Self::route), then to the defaults.
    #[must_use]
    pub fn route_fn(
        self,
        f: impl Fn(&Parts) -> Option<Route> + Send + Sync + 'static,
    ) -> HttpCache {
        self.with(|s| s.route_fn = Some(Arc::new(f)))
    }

    /// Read-through options every fill starts from (e.g. `LoadOptions::new().lock(true)` for
    /// one handler run across every process sharing a Redis server, or a `hard_timeout`).
    /// Their TTL, stale settings and tags are replaced by the layer's (tags come from the
    /// routes and the tags header).
    #[must_use]
    pub fn load_options(self, options: LoadOptions) -> HttpCache {
        self.with(|s| s.base = options)
    }

    /// Keep each response `window` past its freshness; while it is stale, every request gets
    /// the stale copy at once (`x-cache: STALE`) while the handler runs once, in the
    /// background, and its response replaces the entry (RFC 5861 `stale-while-revalidate`
    /// for the layer: cachette's `stale_ttl` with a zero `soft_timeout` for the requests that
    /// wait on the reload, and a spawned task for the one that leads it).
    #[must_use]
    pub fn stale_while_revalidate(self, window: Duration) -> HttpCache {
        self.with(|s| s.stale_while_revalidate = Some(window))
    }

    /// Keep each response `window` past its freshness, served (`x-cache: STALE`) when the
    /// handler answers 500, 502, 503 or 504, or fails (RFC 5861 `stale-if-error`).
    #[must_use]
    pub fn stale_if_error(self, window: Duration) -> HttpCache {
        self.with(|s| s.stale_if_error = Some(window))
    }

    /// The largest body stored (default 1 MiB). A larger one streams through uncached: at
    /// most this many bytes of it are ever held.
    #[must_use]
    pub fn max_body_bytes(self, bytes: usize) -> HttpCache {
        self.with(|s| s.max_body_bytes = bytes)
    }

    /// The statuses that may be stored (default: [`DEFAULT_CACHEABLE_STATUSES`](crate::DEFAULT_CACHEABLE_STATUSES)).
    #[must_use]
    pub fn cacheable_statuses(self, statuses: impl IntoIterator<Item = u16>) -> HttpCache {
        self.with(|s| s.statuses = statuses.into_iter().collect())
    }

    /// What to do with requests carrying `Authorization` (default [`Credentials::Bypass`]).
    #[must_use]
    pub fn authorization(self, policy: Credentials) -> HttpCache {
        self.with(|s| s.authorization = policy)
    }

    /// What to do with requests carrying `Cookie` (default [`Credentials::Bypass`]).
    #[must_use]
    pub fn cookies(self, policy: Credentials) -> HttpCache {
        self.with(|s| s.cookies = policy)
    }

    /// The response header telling `HIT`, `MISS`, `STALE` or `BYPASS` (default `x-cache`).
    #[must_use]
    pub fn status_header(self, name: HeaderName) -> HttpCache {
        self.with(|s| s.status_header = name)
    }

    /// The response header in which a handler names the tags of its response, comma
    /// separated (default `x-cache-tags`; removed before the response leaves the layer).
    /// `None`: tags come from the routes only, and the header passes through.
    #[must_use]
    pub fn tags_header(self, name: Option<HeaderName>) -> HttpCache {
        self.with(|s| s.tags_header = name)
    }

    /// The prefix of every key (default `http:`), below the manager's own prefix.
    #[must_use]
    pub fn key_prefix(self, prefix: impl Into<String>) -> HttpCache {
        let prefix = prefix.into();
        self.with(|s| s.key_prefix = prefix)
    }
}

impl Settings {
    /// The route of a request.
    pub(crate) fn route_of(&self, parts: &Parts) -> Option<Route> {
        if let Some(f) = &self.route_fn {
            if let Some(route) = f(parts) {
                return Some(route);
            }
        }
        let path = parts.uri.path();
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, r)| r.clone())
    }

    /// The read-through options of a fill on `route`.
    pub(crate) fn options(&self, route: Option<&Route>) -> (LoadOptions, Duration) {
        let ttl = route.and_then(|r| r.ttl).unwrap_or(self.ttl);
        let mut options = self.base.clone().with_ttl(cachette::Ttl::After(ttl));
        options.stale_ttl = None;
        options.soft_timeout = None;
        let stale = match (self.stale_while_revalidate, self.stale_if_error) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // The route's tags replace any the base options had: entries carry exactly the tags
        // they are recorded with (`Stored::tags`).
        options = options.tags(route.map_or(&[][..], |r| r.tags.as_slice()));
        if let Some(stale) = stale {
            options = options.stale_ttl(stale);
        }
        if self.stale_while_revalidate.is_some() {
            options = options.soft_timeout(Duration::ZERO);
        }
        (options, ttl)
    }

    pub(crate) fn status_cacheable(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }
}
