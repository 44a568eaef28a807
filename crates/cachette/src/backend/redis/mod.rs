//! Standalone Redis over the `redis` crate (tokio, multiplexed connections that reconnect).
//!
//! Each connection is one multiplexed TCP connection shared by every concurrent caller, and
//! re-established after the server drops it or restarts. A backend holds `connections` of them
//! and hands them out round-robin. Every operation is bounded by the command timeout (which
//! also bounds the wait for a reconnect): through a stall watchdog per connection rather than a
//! timer per command, so a command gives up between 1x and about 1.25x the timeout (TLS
//! connections included: cachette opens them itself, see `tls.rs`). A command that failed
//! because the connection broke is retried once on a new connection (within a further command timeout), so a server restart costs callers at
//! most one error. A command the server answered with an error (or with a reply of an
//! unexpected type) is never retried and leaves the connection alone; see `classify` for how
//! each `redis` error is sorted. With Redis Sentinel the connections dial the primary the
//! sentinels name and follow its failovers (`sentinel.rs`).

mod connection;
pub(crate) mod endpoint;
mod sentinel;
pub(crate) mod tls;

pub(crate) use self::sentinel::{SentinelOptions, Sentinels};

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult};

use self::connection::{Attempt, Live, Reconnecting, Target};
use super::{Backend, KeyTtl, ScanPage};
use crate::backend::info::ServerInfo;
use crate::error::{Error, ErrorKind, Result};

/// Settings of a [`RedisBackend`]; built by [`crate::Config`] in normal use.
#[derive(Clone)]
pub struct RedisOptions {
    /// Connection URL (`redis://[user[:password]@]host:port/db`, or `rediss://` with the `tls`
    /// feature). May contain a password: never printed.
    pub url: String,
    /// Number of multiplexed connections to open (each serves any number of concurrent calls).
    pub connections: usize,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one operation, including waiting for a reconnect.
    pub command_timeout: Duration,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &self::endpoint::describe_url(&self.url))
            .field("connections", &self.connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// The Redis backend. Cheap to clone.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Vec<Reconnecting>,
    next: AtomicUsize,
    command_timeout: Duration,
    db: i64,
    display_url: String,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.inner.display_url)
            .field("connections", &self.inner.connections.len())
            .field("command_timeout", &self.inner.command_timeout)
            .finish()
    }
}

/// Lua script for `delete_if_equals`: compare-and-delete in one atomic step.
pub(crate) const DELETE_IF_EQUALS: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl RedisBackend {
    /// Creates the backend without connecting: the first operation connects, and the backend
    /// reconnects by itself whenever the server comes back. Fails only on an invalid URL.
    ///
    /// Must be called inside a tokio runtime.
    pub fn connect_lazy(options: &RedisOptions) -> Result<Self> {
        let endpoint = crate::RedisEndpoint::parse_from(&options.url, "RedisOptions", "url")?;
        RedisBackend::connect_endpoint(
            &endpoint,
            options.connections,
            options.connect_timeout,
            options.command_timeout,
        )
    }

    /// [`RedisBackend::connect_lazy`] to a parsed endpoint: `connections` multiplexed
    /// connections, each bounded by the two timeouts.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the client refuses the endpoint.
    pub fn connect_endpoint(
        endpoint: &crate::RedisEndpoint,
        connections: usize,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let target = Target::Fixed(Box::new(endpoint.client()?));
        let display = endpoint.to_string();
        let timeouts = (connect_timeout, command_timeout);
        RedisBackend::build(endpoint, target, display, connections, timeouts)
    }

    /// `GET key`, as [`Backend::get`] but without boxing the future (the hot path of
    /// [`crate::CacheManager::get`]).
    pub async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        let value: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(key)).await?;
        Ok(value.map(Bytes::from))
    }

    /// The database number this backend talks to.
    pub fn db(&self) -> i64 {
        self.inner.db
    }

    fn connection(&self) -> &Reconnecting {
        let n = self.inner.connections.len();
        let i = if n == 1 {
            0
        } else {
            self.inner.next.fetch_add(1, Ordering::Relaxed) % n
        };
        &self.inner.connections[i]
    }

    /// Runs one command, bounded by the command timeout, retrying once on a new connection if
    /// the connection had broken.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.query_sized(cmd, 0).await
    }

    /// [`query`](Self::query) for a command that uploads a value of `payload` bytes (see
    /// [`REFUSABLE_PAYLOAD`]).
    async fn query_sized<T: FromRedisValue>(&self, cmd: &Cmd, payload: usize) -> Result<T> {
        self.exec("redis command", payload, |mut conn| async move {
            cmd.query_async::<T>(&mut conn).await
        })
        .await
        .map_err(|e| name_refused_command(e, cmd))
    }

    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        payload: usize,
    ) -> Result<T> {
        let result = self
            .exec("redis pipeline", payload, |mut conn| async move {
                pipe.query_async::<T>(&mut conn).await
            })
            .await;
        match pipe.cmd_iter().next() {
            Some(first) => result.map_err(|e| name_refused_command(e, first)),
            None => result,
        }
    }

    /// One attempt on the live connection (connecting first if needed), then one more on a
    /// new connection if that one had broken.
    ///
    /// On the hot path (a live connection, on the runtime that drives it) the attempt is
    /// bounded by the connection's stall watchdog (see the `connection` module): no timer.
    /// A call that had to connect first gets a timer for what is left of its command timeout,
    /// and the retry gets one more command timeout for reconnecting and resending.
    ///
    /// The first attempt is written out here rather than in helpers taking the command's
    /// future by value: every such layer copies the future (measured: a 64-way GET load spent
    /// 5 % of its time in `memmove` with three layers). The slow paths are boxed: they are
    /// rare, and keeping them out of line keeps this future small.
    ///
    /// `payload` is the size of the largest value the command uploads (0 for reads): a
    /// command with a payload above [`REFUSABLE_PAYLOAD`] whose connection broke is never
    /// resent (see [`refused_upload`]).
    #[inline]
    pub(crate) async fn exec<T, F, Fut>(
        &self,
        what: &'static str,
        payload: usize,
        send: F,
    ) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let link = self.connection();
        let Some(live) = link.current() else {
            return Box::pin(self.connect_then_send(what, link, payload, &send)).await;
        };
        let attempt = match live.watch() {
            Some(watch) => {
                let in_flight = watch.begin();
                let result = send(live.conn.clone()).await;
                in_flight.answered(result)
            }
            None => {
                live.timed(self.inner.command_timeout, send(live.conn.clone()))
                    .await
            }
        };
        self.settle(what, link, live, payload, attempt, &send).await
    }

    /// What a finished attempt becomes: its result, a timeout (the connection is discarded),
    /// or a retry on a new connection when it had broken.
    async fn settle<T, F, Fut>(
        &self,
        what: &'static str,
        link: &Reconnecting,
        live: Arc<Live>,
        payload: usize,
        attempt: Attempt<T>,
        send: &F,
    ) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match attempt {
            Attempt::Done(Err(e)) => match classify(&e) {
                // Sentinel: the node was demoted; retried on the rediscovered primary.
                Failure::Refused if link.demoted(&e) => {
                    Box::pin(self.retry(what, link, live, payload, e, send)).await
                }
                Failure::Broken => {
                    if let Some(refused) = refused_upload(payload, &e) {
                        link.discard(live.generation);
                        return Err(refused);
                    }
                    Box::pin(self.retry(what, link, live, payload, e, send)).await
                }
                Failure::TimedOut | Failure::Auth | Failure::Tls => {
                    link.discard(live.generation);
                    Err(Error::from(e))
                }
                // The server answered: the connection is fine, and the command is not resent.
                Failure::Refused | Failure::BadReply | Failure::Client => Err(Error::from(e)),
            },
            Attempt::Done(result) => result.map_err(Error::from),
            Attempt::TimedOut => {
                link.discard(live.generation);
                Err(Error::timeout(what, self.inner.command_timeout))
            }
        }
    }

    /// No live connection: connect, then send with what is left of the command timeout.
    #[cold]
    async fn connect_then_send<T, F, Fut>(
        &self,
        what: &'static str,
        link: &Reconnecting,
        payload: usize,
        send: &F,
    ) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let timeout = self.inner.command_timeout;
        let started = std::time::Instant::now();
        let Some(live) = link.connect_within(timeout).await? else {
            return Err(Error::timeout(what, timeout));
        };
        let left = timeout.saturating_sub(started.elapsed());
        let attempt = live.timed(left, send(live.conn.clone())).await;
        match attempt {
            // A connection that breaks (or whose node is demoted) right after it was made is
            // not retried.
            Attempt::Done(Err(e)) if link.demoted(&e) => {
                link.discard(live.generation);
                Err(Error::from(e))
            }
            Attempt::Done(Err(e)) if matches!(classify(&e), Failure::Broken | Failure::Tls) => {
                link.discard(live.generation);
                Err(refused_upload(payload, &e).unwrap_or_else(|| Error::from(e)))
            }
            Attempt::Done(result) => result.map_err(Error::from),
            Attempt::TimedOut => {
                link.discard(live.generation);
                Err(Error::timeout(what, timeout))
            }
        }
    }

    /// The second attempt of [`exec`](Self::exec), on a new connection, within one more
    /// command timeout.
    #[cold]
    async fn retry<T, F, Fut>(
        &self,
        what: &'static str,
        link: &Reconnecting,
        broken: Arc<Live>,
        payload: usize,
        error: redis::RedisError,
        send: &F,
    ) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        tracing::debug!(error = %error, "cachette: Redis connection broke; retrying on a new one");
        link.discard(broken.generation);
        drop(broken);
        self.connect_then_send(what, link, payload, send).await
    }
}

/// The largest value no Redis server can refuse for its size: `proto-max-bulk-len` cannot be
/// set below 1 MiB.
const REFUSABLE_PAYLOAD: usize = 1024 * 1024;

/// A connection that broke while a command uploaded more than [`REFUSABLE_PAYLOAD`] bytes
/// was most likely closed by the server because of that size (a value above its
/// `proto-max-bulk-len` gets `-ERR Protocol error` and a closed connection). Resending would
/// upload the value again for the same answer, and counting it would let one oversized value
/// open the circuit breaker: such a failure is reported as [`ErrorKind::Backend`] and not
/// retried (the broken connection is still replaced). `None` for smaller commands.
fn refused_upload(payload: usize, e: &redis::RedisError) -> Option<Error> {
    (payload > REFUSABLE_PAYLOAD).then(|| {
        Error::new(
            ErrorKind::Backend,
            format!(
                "Redis closed the connection while receiving a {payload}-byte value (above its \
                 proto-max-bulk-len?); not resent: {}",
                crate::error::redact(&e.to_string())
            ),
        )
    })
}

/// What a failed `redis` call means: the single place where a [`redis::RedisError`] is
/// sorted, for [`ErrorKind`], for the retry/reconnect decision and so for the circuit breaker
/// (which counts only [`ErrorKind::Connection`] and [`ErrorKind::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection is unusable or could not be made (I/O error, dropped, refused, failed
    /// handshake): [`ErrorKind::Connection`]. The connection is discarded and the command
    /// retried once on a new one.
    Broken,
    /// An I/O timeout: [`ErrorKind::Timeout`]. The connection is discarded (not retried).
    TimedOut,
    /// The TLS handshake failed (untrusted, expired or misnamed server certificate; client
    /// certificate missing or refused): [`ErrorKind::Tls`]. The connection is discarded and
    /// the command not retried (the next attempt would fail the same way); counted.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls,
    /// The server answered with an error reply (`WRONGTYPE`, `NOPERM`, `OOM`, `ERR ...`,
    /// `LOADING`, `READONLY`, ...): [`ErrorKind::Backend`]. The connection is healthy: kept,
    /// not retried, not counted (except `READONLY` in Sentinel mode: see `sentinel.rs`).
    Refused,
    /// The server answered, but not with a reply of the expected type, or one that could not
    /// be parsed or decoded (a non-UTF-8 string, an integer out of range):
    /// [`ErrorKind::Backend`]. Kept, not retried, not counted.
    BadReply,
    /// Refused on the client before anything was sent (an invalid command or client
    /// setting): [`ErrorKind::Config`] for a client setting, [`ErrorKind::Backend`] otherwise.
    /// Kept, not retried, not counted.
    Client,
    /// The server refused the credentials (`WRONGPASS`, `NOAUTH`, a failed handshake):
    /// [`ErrorKind::Auth`]. The connection is discarded and not retried (the same
    /// credentials would fail again); counted by the breaker, which stops further attempts.
    Auth,
}

/// A [`ErrorKind::Permission`] error names the command the server refused (its reply names
/// it only when the command itself is not allowed, not for a key or a channel).
pub(crate) fn name_refused_command(e: Error, cmd: &Cmd) -> Error {
    if e.kind() != ErrorKind::Permission {
        return e;
    }
    let name = match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
        _ => return e,
    };
    e.prefixed(&format!("{name} refused: "))
}

/// Whether the server's ACL refused the command: `NOPERM`, or a command inside a script
/// (`ERR The user executing the script can't run this command ...`).
fn refused_by_acl(e: &redis::RedisError) -> bool {
    e.code() == Some("NOPERM")
        || e.detail()
            .is_some_and(|d| d.starts_with("The user executing the script can't run"))
}

/// Sorts a [`redis::RedisError`] (see [`Failure`]). Exhaustive over the `redis` crate's
/// error kinds that exist today; a kind added later is treated as a server answer (never a
/// broken connection), so it can never take a healthy connection down or trip the breaker.
pub(crate) fn classify(e: &redis::RedisError) -> Failure {
    use redis::ErrorKind as K;
    match e.kind() {
        #[cfg(feature = "tls")]
        K::Io if tls::tls_failure(e).is_some() => Failure::Tls,
        K::Io if e.is_timeout() => Failure::TimedOut,
        K::Io => Failure::Broken,
        // The handshake (AUTH/HELLO) refused the credentials: no connection was made.
        K::AuthenticationFailed => Failure::Auth,
        K::Server(_) if matches!(e.code(), Some("WRONGPASS" | "NOAUTH")) => Failure::Auth,
        // Topology errors (sentinel, cluster): no server to talk to.
        K::ClusterConnectionNotFound
        | K::MasterNameNotFoundBySentinel
        | K::NoValidReplicasFoundBySentinel
        | K::EmptySentinelList => Failure::Broken,
        // `Parse` is what a reply conversion reports (`Vec<String>` from a non-UTF-8 key), not
        // only a garbled stream; a garbled stream ends the driver, and the next command then
        // sees a dropped connection (`Broken`) and is retried on a new one.
        K::Parse | K::UnexpectedReturnType => Failure::BadReply,
        K::Server(_) | K::Extension => Failure::Refused,
        K::InvalidClientConfig | K::Client | K::RESP3NotSupported => Failure::Client,
        _ => Failure::Refused,
    }
}

impl Failure {
    /// The [`ErrorKind`] a failure of this class becomes.
    pub(crate) fn kind(self, e: &redis::RedisError) -> ErrorKind {
        match self {
            Failure::Broken => ErrorKind::Connection,
            Failure::TimedOut => ErrorKind::Timeout,
            Failure::Refused if refused_by_acl(e) => ErrorKind::Permission,
            Failure::Tls => ErrorKind::Tls,
            Failure::Refused | Failure::BadReply => ErrorKind::Backend,
            Failure::Auth => ErrorKind::Auth,
            Failure::Client if e.kind() == redis::ErrorKind::InvalidClientConfig => {
                ErrorKind::Config
            }
            Failure::Client => ErrorKind::Backend,
        }
    }
}

pub(crate) fn millis(ttl: Duration) -> u64 {
    // Redis' resolution is a millisecond; never round a positive TTL down to zero.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

pub(crate) fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(millis(ttl));
    }
    cmd
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_value(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.query_sized::<()>(&set_cmd(key, &value, ttl), value.len())
            .await
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let mut cmd = set_cmd(key, &value, ttl);
        cmd.arg("NX");
        let reply: Option<String> = self.query_sized(&cmd, value.len()).await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let n: u64 = self.query(redis::cmd("UNLINK").arg(key)).await?;
        Ok(n > 0)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.query(redis::cmd("UNLINK").arg(keys)).await
    }

    async fn delete_raw(&self, keys: &[Vec<u8>]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.query(redis::cmd("UNLINK").arg(keys)).await
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let n: u64 = self
            .query(
                redis::cmd("EVAL")
                    .arg(DELETE_IF_EQUALS)
                    .arg(1)
                    .arg(key)
                    .arg(value),
            )
            .await?;
        Ok(n > 0)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let n: u64 = self.query(redis::cmd("EXISTS").arg(key)).await?;
        Ok(n > 0)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let n: u64 = self
            .query(redis::cmd("PEXPIRE").arg(key).arg(millis(ttl)))
            .await?;
        Ok(n > 0)
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        let n: u64 = self.query(redis::cmd("PERSIST").arg(key)).await?;
        Ok(n > 0)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let ms: i64 = self.query(redis::cmd("PTTL").arg(key)).await?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        // Keys as bytes: another client may have written keys that are not UTF-8.
        let (cursor, raw): (u64, Vec<Vec<u8>>) = self
            .query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        let mut keys = Vec::with_capacity(raw.len());
        let mut non_utf8_keys = Vec::new();
        for key in raw {
            match String::from_utf8(key) {
                Ok(key) => keys.push(key),
                Err(e) => non_utf8_keys.push(e.into_bytes()),
            }
        }
        Ok(ScanPage {
            cursor,
            keys,
            non_utf8_keys,
        })
    }

    async fn info(&self) -> Result<ServerInfo> {
        // As bytes: a reply that is not UTF-8 must not fail the call (nor look like a broken
        // connection); the parser gets it with replacement characters.
        let raw: Vec<u8> = self.query(&redis::cmd("INFO")).await?;
        Ok(ServerInfo::parse(&String::from_utf8_lossy(&raw)))
    }

    async fn ping(&self) -> Result<()> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Backend,
                format!("unexpected PING reply {pong:?}"),
            ))
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(keys)).await?;
        if values.len() != keys.len() {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "MGET returned {} values for {} keys",
                    values.len(),
                    keys.len()
                ),
            ));
        }
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, value) in items {
            pipe.add_command(set_cmd(key, value, ttl)).ignore();
        }
        let payload = items.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        self.pipeline::<()>(&pipe, payload).await
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        // One classification for the kind, the retry decision and the breaker.
        let kind = classify(&err).kind(&err);
        #[cfg(feature = "tls")]
        if let Some(failure) = tls::tls_failure(&err) {
            return Error::new(kind, tls::describe(failure));
        }
        // redis errors never contain the password, but may contain the host; that is fine.
        let message = crate::error::redact(&err.to_string()) + tls::plain_client_hint(&err);
        match kind {
            ErrorKind::Permission => Error::new(
                kind,
                format!(
                    "{message} (the ACL user lacks a permission: cachette::acl::rules lists the \
                     rules each feature needs)"
                ),
            ),
            ErrorKind::Auth => Error::new(
                kind,
                format!("{message} (check the username and password; not retried)"),
            ),
            _ => Error::new(kind, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind as K, RedisError, ServerErrorKind as S};
    use std::io;

    fn general(kind: K) -> RedisError {
        RedisError::from((kind, "test"))
    }

    /// Every `redis` error kind, sorted: only a broken or unreachable connection is
    /// `Connection` (discarded, retried, counted), an I/O timeout is `Timeout`; every answer of
    /// the server, every reply that does not convert and every client-side refusal keeps the
    /// connection and is never counted by the breaker.
    #[test]
    fn every_redis_error_kind_is_sorted_explicitly() {
        use Failure::*;
        let table: Vec<(RedisError, Failure, ErrorKind)> = vec![
            (general(K::Io), Broken, ErrorKind::Connection),
            (
                io::Error::from(io::ErrorKind::ConnectionReset).into(),
                Broken,
                ErrorKind::Connection,
            ),
            (
                io::Error::from(io::ErrorKind::ConnectionRefused).into(),
                Broken,
                ErrorKind::Connection,
            ),
            (
                io::Error::from(io::ErrorKind::UnexpectedEof).into(),
                Broken,
                ErrorKind::Connection,
            ),
            (
                io::Error::from(io::ErrorKind::TimedOut).into(),
                TimedOut,
                ErrorKind::Timeout,
            ),
            (general(K::AuthenticationFailed), Auth, ErrorKind::Auth),
            (
                general(K::ClusterConnectionNotFound),
                Broken,
                ErrorKind::Connection,
            ),
            (
                general(K::MasterNameNotFoundBySentinel),
                Broken,
                ErrorKind::Connection,
            ),
            (
                general(K::NoValidReplicasFoundBySentinel),
                Broken,
                ErrorKind::Connection,
            ),
            (general(K::EmptySentinelList), Broken, ErrorKind::Connection),
            (general(K::Parse), BadReply, ErrorKind::Backend),
            (
                general(K::UnexpectedReturnType),
                BadReply,
                ErrorKind::Backend,
            ),
            (general(K::InvalidClientConfig), Client, ErrorKind::Config),
            (general(K::Client), Client, ErrorKind::Backend),
            (general(K::RESP3NotSupported), Client, ErrorKind::Backend),
            (general(K::Extension), Refused, ErrorKind::Backend),
            (
                redis::make_extension_error("WRONGTYPE".into(), Some("list".into())),
                Refused,
                ErrorKind::Backend,
            ),
            (
                redis::make_extension_error("OOM".into(), None),
                Refused,
                ErrorKind::Backend,
            ),
        ];
        for (error, failure, kind) in table {
            assert_eq!(classify(&error), failure, "{error:?}");
            assert_eq!(Error::from(error.clone()).kind(), kind, "{error:?}");
        }
        for server in [
            S::ResponseError,
            S::ExecAbort,
            S::BusyLoading,
            S::NoScript,
            S::Moved,
            S::Ask,
            S::TryAgain,
            S::ClusterDown,
            S::CrossSlot,
            S::MasterDown,
            S::ReadOnly,
            S::NotBusy,
            S::NoSub,
            S::NoPerm,
        ] {
            let error = general(K::Server(server));
            assert_eq!(classify(&error), Refused, "{server:?}");
            // The ACL's refusals have a kind of their own (the connection is kept all the same).
            let kind = if server == S::NoPerm {
                ErrorKind::Permission
            } else {
                ErrorKind::Backend
            };
            assert_eq!(Error::from(error).kind(), kind, "{server:?}");
        }
    }

    /// What a reply that does not convert (a key that is not UTF-8 read as a `String`)
    /// becomes: a bad reply, not a broken connection.
    #[test]
    fn a_reply_that_does_not_convert_is_a_bad_reply() {
        let value = redis::Value::BulkString(vec![b'k', 0xff]);
        let parse = redis::from_redis_value::<String>(value).unwrap_err();
        let error = RedisError::from(parse);
        assert_eq!(classify(&error), Failure::BadReply);
        let value = redis::Value::SimpleString("PONG".into());
        let parse = redis::from_redis_value::<i64>(value).unwrap_err();
        assert_eq!(classify(&RedisError::from(parse)), Failure::BadReply);
    }

    #[test]
    fn only_a_large_upload_is_taken_for_a_refusal() {
        let reset: RedisError = io::Error::from(io::ErrorKind::ConnectionReset).into();
        assert!(refused_upload(0, &reset).is_none());
        assert!(refused_upload(REFUSABLE_PAYLOAD, &reset).is_none());
        let e = refused_upload(REFUSABLE_PAYLOAD + 1, &reset).unwrap();
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(e.to_string().contains("1048577-byte"), "{e}");
    }
}
