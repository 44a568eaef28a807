//! The connection every command works through: configuration from the library's sources plus
//! the global flags, a [`CacheManager`] on Redis, and helpers for prefixed patterns and scans.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use cachette::backend::SCAN_BATCH;
use cachette::{CacheManager, Config, RedisEndpoint};

use crate::args::Global;
use crate::exit;

/// Where the CLI connects when no source names a Redis server (as `redis-cli` does):
/// `redis://127.0.0.1:6379`.
pub(crate) const DEFAULT_HOST: (&str, u16) = ("127.0.0.1", 6379);

/// The configured cache, as every command sees it.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) cache: CacheManager,
    /// The server, parsed from the URL where it entered (never printed with credentials); on
    /// a cluster, the first seed.
    endpoint: RedisEndpoint,
    /// Whether the server is [`DEFAULT_HOST`] because nothing named one.
    pub(crate) defaulted: bool,
}

impl Context {
    /// Loads the configuration (`config.json` or `--config`, then the environment), applies
    /// the global flags, and builds a manager on Redis. Does not connect.
    pub(crate) fn new(global: &Global) -> anyhow::Result<Context> {
        let mut config = match &global.config {
            Some(path) => {
                Config::load_from(Some((path.clone(), true)), |name| std::env::var(name).ok())
            }
            None => Config::load(),
        }
        .context("cannot load the configuration")?;
        if let Some(url) = &global.url {
            // Parsed here, not by clap: a clap error would echo the URL, password included.
            let endpoint = RedisEndpoint::parse_from(url, "the command line", "--url")?;
            config.apply_endpoint(endpoint);
        }
        if let Some(path) = &global.tls_ca_file {
            config.tls_options.ca_file = Some(path.clone());
        }
        if let Some(path) = &global.tls_cert_file {
            config.tls_options.cert_file = Some(path.clone());
        }
        if let Some(path) = &global.tls_key_file {
            config.tls_options.key_file = Some(path.clone());
        }
        if global.tls_insecure {
            config.tls_options.insecure = true;
        }
        if let Some(nodes) = &global.cluster_nodes {
            config.cluster_nodes = vec![nodes.clone()];
        }
        if let Some(sentinels) = &global.sentinels {
            config.sentinels = vec![sentinels.clone()];
        }
        if let Some(master) = &global.sentinel_master {
            config.sentinel_master = Some(master.clone());
        }
        if let Some(prefix) = &global.prefix {
            config.key_prefix = prefix.clone();
        }
        if let Some(ms) = global.timeout {
            if ms == 0 {
                return Err(exit::usage("--timeout must be at least 1 ms"));
            }
            config.command_timeout = Duration::from_millis(ms);
        }
        // The CLI inspects the cache even when the application has caching turned off.
        config.enabled = true;
        let defaulted = !config.uses_redis() && !config.uses_cluster() && !config.uses_sentinel();
        if defaulted {
            config.apply_endpoint(RedisEndpoint::tcp(DEFAULT_HOST.0, DEFAULT_HOST.1));
        }
        let endpoint = if config.uses_cluster() {
            // A cluster: the first seed stands for the server (database 0).
            config
                .cluster_endpoints()
                .context("invalid configuration")?
                .into_iter()
                .next()
        } else if config.uses_sentinel() && !config.uses_redis() {
            // Sentinel without a URL: the primary is found later; only the database counts.
            let mut endpoint = RedisEndpoint::tcp(DEFAULT_HOST.0, DEFAULT_HOST.1);
            endpoint.db = config.db;
            Some(endpoint)
        } else {
            config.endpoint().context("invalid configuration")?
        }
        .ok_or_else(|| exit::usage("no Redis server configured"))?;
        let cache = config.builder().build().context("invalid configuration")?;
        Ok(Context {
            cache,
            endpoint,
            defaulted,
        })
    }

    /// The server, without credentials (`redis://127.0.0.1:6379/0`).
    pub(crate) fn server(&self) -> String {
        let mut s = self.cache.describe().to_owned();
        if self.defaulted {
            s.push_str(" (the default: no --url, REDIS_URL, REDIS_HOST/REDIS_PORT or config.json names a server)");
        }
        s
    }

    /// The database number the URL selects.
    pub(crate) fn db(&self) -> i64 {
        self.endpoint.db()
    }

    /// The key prefix.
    pub(crate) fn prefix(&self) -> &str {
        self.cache.prefix()
    }

    /// The full `SCAN MATCH` pattern for a pattern relative to the prefix.
    pub(crate) fn full_pattern(&self, pattern: &str) -> String {
        let mut full = cachette::glob::escape(self.prefix());
        full.push_str(pattern);
        full
    }

    /// Adds "cannot reach Redis at ..." to errors that are connection failures or timeouts.
    pub(crate) fn reach<T>(&self, result: cachette::Result<T>) -> anyhow::Result<T> {
        result.map_err(|e| {
            if e.is_connection() || e.is_timeout() {
                anyhow::Error::new(e).context(format!("cannot reach Redis at {}", self.server()))
            } else {
                anyhow::Error::new(e)
            }
        })
    }

    /// Calls `each` with every page of full keys matching `full_pattern` (see [`Scan`]).
    /// Stops early when `each` returns `false`.
    pub(crate) async fn scan_pages(
        &self,
        full_pattern: &str,
        mut each: impl FnMut(Vec<String>) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let mut scan = Scan::new(full_pattern);
        while let Some(page) = scan.next_page(self).await? {
            if !each(page)? {
                break;
            }
        }
        Ok(())
    }

    /// How many keys match `full_pattern`.
    pub(crate) async fn count(&self, full_pattern: &str) -> anyhow::Result<u64> {
        let mut n = 0u64;
        self.scan_pages(full_pattern, |page| {
            n += page.len() as u64;
            Ok(true)
        })
        .await?;
        Ok(n)
    }
}

/// An incremental `SCAN MATCH` that yields each key once: SCAN may repeat keys while the
/// server rehashes, and a set of 64-bit hashes of the keys seen drops the repeats.
#[derive(Debug)]
pub(crate) struct Scan {
    pattern: String,
    cursor: u64,
    done: bool,
    seen: HashSet<u64>,
}

impl Scan {
    /// A scan over the full (prefixed, escaped) pattern.
    pub(crate) fn new(full_pattern: &str) -> Scan {
        Scan {
            pattern: full_pattern.to_owned(),
            cursor: 0,
            done: false,
            seen: HashSet::new(),
        }
    }

    /// The next non-empty page of keys not seen before; `None` at the end.
    pub(crate) async fn next_page(&mut self, ctx: &Context) -> anyhow::Result<Option<Vec<String>>> {
        let backend = ctx.cache.backend();
        while !self.done {
            let page = ctx.reach(backend.scan(self.cursor, &self.pattern, SCAN_BATCH).await)?;
            self.cursor = page.cursor;
            self.done = page.cursor == 0;
            let fresh: Vec<String> = page
                .keys
                .into_iter()
                .filter(|k| self.seen.insert(xxhash_rust::xxh3::xxh3_64(k.as_bytes())))
                .collect();
            if !fresh.is_empty() {
                return Ok(Some(fresh));
            }
        }
        Ok(None)
    }
}
