//! Command-line arguments (clap derive): global connection options and one variant per command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Inspect, edit and load-test a cachette cache (Redis or Redis Cluster) in its own terms: its
/// key prefix, its JSON values, its published hit/miss counters.
///
/// The connection comes from the same sources as the library (built-in defaults <
/// config.json "redis" section, or the file in CACHETTE_CONFIG < REDIS_* environment
/// variables), then --url, --cluster-nodes, --sentinels/--sentinel-master and --prefix. When
/// none of them names a Redis server the CLI uses redis://127.0.0.1:6379, like redis-cli. On a
/// cluster every command covers every primary; with Sentinel, the primary the sentinels name.
///
/// Keys given to and printed by every command are relative to the prefix (default "cache:").
///
/// Exit codes: 0 success; 1 the key does not exist (get, ttl, expire); 2 usage error
/// (bad arguments, malformed JSON, invalid configuration); 3 the cache failed (Redis
/// unreachable, timeout, server error); 4 a destructive command was not confirmed.
#[derive(Debug, Parser)]
#[command(
    name = "cachette",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Redis URL (`redis://[user[:password]@]host:port/db`, `rediss://` for TLS); overrides
    /// REDIS_URL and config.json.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// TLS: PEM file of the CA to trust instead of the public roots (overrides
    /// REDIS_TLS_CA_FILE and config.json's tls_ca_file).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) tls_ca_file: Option<PathBuf>,
    /// TLS: PEM client certificate for mutual TLS (with --tls-key-file; overrides
    /// REDIS_TLS_CERT_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) tls_cert_file: Option<PathBuf>,
    /// TLS: PEM private key of the client certificate (overrides REDIS_TLS_KEY_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) tls_key_file: Option<PathBuf>,
    /// TLS, DEVELOPMENT ONLY: accept any server certificate (no CA, expiry or host name check).
    #[arg(long, global = true)]
    pub(crate) tls_insecure: bool,
    /// Redis Cluster seed nodes, comma-separated `host:port` (overrides REDIS_CLUSTER_NODES and
    /// config.json's cluster_nodes); credentials and TLS still come from the URL/configuration.
    #[arg(long, global = true, value_name = "HOST:PORT,...")]
    pub(crate) cluster_nodes: Option<String>,
    /// Redis Sentinel instances, comma-separated `host:port` (overrides REDIS_SENTINELS and
    /// config.json's sentinels; needs --sentinel-master or its configured equivalent). The
    /// primary they name is used with the database, credentials and TLS of the
    /// URL/configuration.
    #[arg(long, global = true, value_name = "HOST:PORT,...")]
    pub(crate) sentinels: Option<String>,
    /// The master name the sentinels monitor (overrides REDIS_SENTINEL_MASTER and
    /// config.json's sentinel_master).
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) sentinel_master: Option<String>,
    /// Key prefix of the cache (default from the configuration, else "cache:").
    #[arg(long, global = true, value_name = "PREFIX")]
    pub(crate) prefix: Option<String>,
    /// A config.json to read instead of ./config.json (same as CACHETTE_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Time allowed for one Redis command, in milliseconds (default from the configuration,
    /// else 500); connecting is bounded by the configured connect timeout (default 1000).
    #[arg(long, global = true, value_name = "MS")]
    pub(crate) timeout: Option<u64>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check that Redis answers, and how fast.
    Ping,
    /// Server and cache summary: version, memory, keys under the prefix, hit rate.
    Info(InfoArgs),
    /// List keys under the prefix matching a Redis glob pattern (streamed, SCAN-based).
    Keys(KeysArgs),
    /// Print the value of a key (pretty JSON; other bytes shown escaped).
    Get(GetArgs),
    /// Store a JSON value at a key.
    Set(SetArgs),
    /// Delete keys; prints how many existed.
    Del(DelArgs),
    /// Print the remaining time to live of a key, in seconds.
    Ttl(KeyArg),
    /// Set the time to live of an existing key.
    Expire(ExpireArgs),
    /// Delete every key under the prefix matching a pattern (asks first).
    DeletePattern(DeletePatternArgs),
    /// Delete every key under the prefix, and nothing else (asks first).
    Clear(ConfirmArgs),
    /// Hit/miss/error counters that cachette processes publish, per decorated function.
    Stats(StatsArgs),
    /// Load generator: concurrent gets and sets through cachette; throughput and latency.
    Bench(BenchArgs),
}

/// `info`
#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,
    /// Do not scan for the number of keys under the prefix (faster on huge databases).
    #[arg(long)]
    pub(crate) no_count: bool,
}

/// `keys`
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    /// Redis glob pattern relative to the prefix: `user:*`, `post:?`, `id:[0-9]`, `\*`.
    #[arg(default_value = "*")]
    pub(crate) pattern: String,
    /// Stop after this many keys.
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) count: Option<u64>,
}

/// `get`
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The key, relative to the prefix.
    pub(crate) key: String,
    /// Write the stored bytes unchanged (no pretty-printing, no escaping).
    #[arg(long)]
    pub(crate) raw: bool,
}

/// `set`
#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// The key, relative to the prefix.
    pub(crate) key: String,
    /// The value as JSON (`'{"name":"Ada"}'`, `42`, `'"text"'`); `-` reads it from stdin.
    pub(crate) json: String,
    /// Time to live in seconds, 1 to 3153600000 (100 years) (default: the configured default
    /// TTL).
    #[arg(long, value_name = "SECONDS", value_parser = ttl_seconds(), conflicts_with = "persist")]
    pub(crate) ttl: Option<u64>,
    /// Store without expiry.
    #[arg(long)]
    pub(crate) persist: bool,
}

/// `del`
#[derive(Debug, Args)]
pub(crate) struct DelArgs {
    /// Keys, relative to the prefix.
    #[arg(required = true)]
    pub(crate) keys: Vec<String>,
}

/// A single key.
#[derive(Debug, Args)]
pub(crate) struct KeyArg {
    /// The key, relative to the prefix.
    pub(crate) key: String,
}

/// `expire`
#[derive(Debug, Args)]
pub(crate) struct ExpireArgs {
    /// The key, relative to the prefix.
    pub(crate) key: String,
    /// New time to live in seconds, 1 to 3153600000 (100 years).
    #[arg(value_parser = ttl_seconds())]
    pub(crate) seconds: u64,
}

/// Confirmation of destructive commands.
#[derive(Debug, Args)]
pub(crate) struct ConfirmArgs {
    /// Do not ask: delete. Required when stdin is not a terminal.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// `delete-pattern`
#[derive(Debug, Args)]
pub(crate) struct DeletePatternArgs {
    /// Redis glob pattern relative to the prefix.
    pub(crate) pattern: String,
    #[command(flatten)]
    pub(crate) confirm: ConfirmArgs,
}

/// `stats`
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Only functions whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) filter: Option<String>,
    /// Delete the published counters (every process starts again from zero).
    #[arg(long)]
    pub(crate) reset: bool,
}

/// `bench`
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Concurrent tasks issuing requests.
    #[arg(long, short = 'c', default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) concurrency: u64,
    /// Measured time in seconds (after a short warm-up).
    #[arg(long, short = 'd', default_value_t = 10.0, value_name = "SECONDS")]
    pub(crate) duration: f64,
    /// Size in bytes of each stored JSON value.
    #[arg(long, default_value_t = 256, value_name = "BYTES")]
    pub(crate) value_size: usize,
    /// Fraction of operations that are reads (0.0 to 1.0); the rest are writes.
    #[arg(long, default_value_t = 0.9, value_name = "RATIO")]
    pub(crate) read_ratio: f64,
    /// Number of distinct keys (`__bench:0` .. `__bench:N-1` under the prefix), written
    /// before the run and deleted after it.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) keys: u64,
    /// Print the result as JSON (the progress bar still goes to stderr on a terminal).
    #[arg(long)]
    pub(crate) json: bool,
}

/// The parser of a TTL in seconds: the library's one valid range, 1..=[`cachette::ttl::MAX_TTL_SECS`]
/// (a value outside it is a usage error, exit 2, naming the argument).
fn ttl_seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=cachette::ttl::MAX_TTL_SECS)
}
