//! One multiplexed Redis connection that is re-established after it breaks, with stall
//! detection instead of a timer per command.
//!
//! `redis::aio::MultiplexedConnection` never reconnects by itself (redis-rs #1677), and the
//! crate's `ConnectionManager`, which does, costs a few percent of throughput on every command
//! (measured: it awaits a shared future per call). This is the small part of it cachette needs:
//! the live connection sits in an `ArcSwapOption` (reads touch no shared lock word); a caller
//! that sees it fail with an I/O or dropped-connection error discards that generation, and the
//! next caller reconnects, one at a time, bounded by the connect and command timeouts.
//!
//! # Deadlines without a timer per command
//!
//! A `tokio::time::timeout` around every command registers and removes a timer entry per call,
//! which measured at up to 10 % of the throughput of a 64-way GET load. Replies on one Redis
//! connection come back in order, so a connection only needs one watchdog: each command counts
//! itself in (`started`) and out (`answered`, or `abandoned` when its caller drops it), the
//! socket counts its successful reads, and a task per connection samples the counters every
//! eighth of the command timeout. When commands were pending a full command timeout ago, are
//! still pending, and not one byte has arrived since, the connection is stalled (server
//! stopped, network black hole, a command far slower than the timeout): the watchdog aborts
//! the connection's driver, every pending command fails at once with a timeout error, and the
//! next command reconnects. A command therefore waits at most about 1.25 x the command
//! timeout, and a healthy connection pays two atomic increments per command (and one per
//! socket read) instead of a timer.
//!
//! Progress is measured at the socket, not by callers, so a caller that gives up on its
//! command (its reply still arrives) never makes a healthy connection look stalled. One case
//! is still counted as a stall: a command future polled once and then held unpolled for longer
//! than the timeout on an otherwise silent connection. The connection is then replaced (the
//! next caller reconnects); no call fails because of it.
//!
//! The driver and the watchdog run on the runtime of the caller that connected. Callers on
//! another runtime time their commands themselves (that runtime may be alive but not driven,
//! e.g. a `current_thread` runtime between two `block_on`s), and their timeout replaces the
//! connection with one on their own runtime.
//!
//! TCP, TLS and Unix-socket connections are all opened here (so that cachette owns the driver
//! task and can abort it); for TLS the read counter sits below the TLS layer, on the TCP
//! stream, so a server that sends anything (a partial record included) counts as alive.
//!
//! # TLS failures are not retried at once
//!
//! A failed TLS handshake (untrusted, expired or misnamed certificate, client certificate
//! refused) is deterministic: for [`TLS_FAILURE_HOLD`] after one, every caller that would
//! connect gets the same error without a new attempt, so a burst of calls against a
//! misconfigured server costs one handshake, not one per call. A handshake still unanswered
//! when the caller's time to connect runs out (a plain port never answers one) is such a
//! failure too (`tls.rs`), so it ends by that deadline, before the timers here.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisResult};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;

use super::sentinel::Sentinels;
use super::tls::TlsConnector;
use super::{Inner, RedisBackend};
use crate::error::{Error, ErrorKind, Result};

/// How long a failed TLS handshake is reported to later callers without a new attempt.
pub(crate) const TLS_FAILURE_HOLD: Duration = Duration::from_secs(1);

/// A value alone on its cache line(s), so that counters bumped by different cores do not
/// invalidate each other.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// The in/out counters of one connection's commands, and the handle that kills it.
pub(crate) struct Watch {
    started: Padded<AtomicU64>,
    answered: Padded<AtomicU64>,
    abandoned: AtomicU64,
    /// Successful reads from the socket (bumped by the stream wrapper, below the driver).
    reads: Arc<AtomicU64>,
    stalled: AtomicBool,
    driver: AbortHandle,
}

/// Counts successful socket reads: server progress, whoever the reply is for.
struct CountReads<S> {
    inner: S,
    reads: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountReads<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

/// Writes pass straight through (vectored ones included).
impl<S: AsyncWrite + Unpin> AsyncWrite for CountReads<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One established connection (a generation).
pub(crate) struct Live {
    pub(crate) generation: u64,
    pub(crate) conn: MultiplexedConnection,
    /// The runtime that runs this connection's driver and watchdog.
    owner: tokio::runtime::Id,
    /// `None` when the `redis` crate owns the driver (an address kind cachette does not open
    /// itself): commands are timed one by one.
    watch: Option<Watch>,
}

/// How one attempt of a command ended.
pub(crate) enum Attempt<T> {
    /// The server answered, or the connection failed.
    Done(RedisResult<T>),
    /// No answer within the command timeout (stalled connection, or the per-command timer).
    TimedOut,
}

/// One command counted in; counted out as answered by [`InFlight::answered`], or as
/// abandoned when dropped before (its caller gave up on it).
pub(crate) struct InFlight<'w> {
    watch: &'w Watch,
}

impl InFlight<'_> {
    /// Counts the command out with its result.
    #[inline]
    pub(crate) fn answered<T>(self, result: RedisResult<T>) -> Attempt<T> {
        let watch = self.watch;
        std::mem::forget(self);
        watch.answered.0.fetch_add(1, Ordering::Release);
        // A command failed by the watchdog's abort sees a dropped connection: that is its
        // timeout, not a broken connection to retry on.
        if result.is_err() && watch.stalled.load(Ordering::Acquire) {
            return Attempt::TimedOut;
        }
        Attempt::Done(result)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.watch.abandoned.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The connection is gone (discarded, and no command holds it any more): stop its
        // driver too, rather than leave it to flush a send buffer toward a silent peer.
        self.driver.abort();
    }
}

impl Watch {
    /// Counts a command in.
    #[inline]
    pub(crate) fn begin(&self) -> InFlight<'_> {
        self.started.0.fetch_add(1, Ordering::Relaxed);
        InFlight { watch: self }
    }
}

impl Live {
    /// The stall watchdog's counters, when this connection has one and the caller runs on
    /// the runtime that drives it. A caller on another runtime times its command itself: if
    /// the owning runtime is alive but not being driven (a `current_thread` runtime between
    /// two `block_on`s), neither the driver nor the watchdog makes progress, and only the
    /// caller's own timer bounds the wait (its timeout then discards the connection, and the
    /// next caller reconnects on its own runtime).
    #[inline]
    pub(crate) fn watch(&self) -> Option<&Watch> {
        let watch = self.watch.as_ref()?;
        let here = tokio::runtime::Handle::try_current().ok()?.id();
        (here == self.owner).then_some(watch)
    }

    /// Whether the watchdog declared this connection stalled.
    fn is_stalled(&self) -> bool {
        self.watch
            .as_ref()
            .is_some_and(|w| w.stalled.load(Ordering::Relaxed))
    }

    /// Runs one command bounded by a timer of its own (connections without a watchdog).
    pub(crate) async fn timed<T>(
        &self,
        timeout: Duration,
        command: impl Future<Output = RedisResult<T>>,
    ) -> Attempt<T> {
        match tokio::time::timeout(timeout, command).await {
            Ok(result) => Attempt::Done(result),
            Err(_) => Attempt::TimedOut,
        }
    }
}

/// One counters sample.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    started: u64,
    answered: u64,
    abandoned: u64,
    /// Successful socket reads so far: the server's progress, whoever its replies are for.
    reads: u64,
}

impl Sample {
    fn take(watch: &Watch) -> Sample {
        // `answered`/`abandoned` first: a command is never counted out before it is counted in.
        let answered = watch.answered.0.load(Ordering::Acquire);
        let abandoned = watch.abandoned.load(Ordering::Acquire);
        let started = watch.started.0.load(Ordering::Acquire);
        let reads = watch.reads.load(Ordering::Relaxed);
        Sample {
            at: Instant::now(),
            started,
            answered,
            abandoned,
            reads,
        }
    }

    fn pending(&self) -> u64 {
        self.started
            .saturating_sub(self.answered.saturating_add(self.abandoned))
    }
}

/// How often the watchdog samples a connection with command timeout `timeout`.
fn tick(timeout: Duration) -> Duration {
    (timeout / 8).clamp(Duration::from_millis(1), Duration::from_millis(250))
}

/// Watches one connection until it is dropped or declared stalled.
async fn watchdog(live: Weak<Live>, timeout: Duration) {
    let tick = tick(timeout);
    let mut samples: VecDeque<Sample> = VecDeque::new();
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(live) = live.upgrade() else { return };
        let Some(watch) = &live.watch else { return };
        let now = Sample::take(watch);
        samples.push_back(now);
        // Keep exactly one sample at least `timeout` old (the newest such), and the newer ones.
        while samples
            .get(1)
            .is_some_and(|s| now.at.duration_since(s.at) >= timeout)
        {
            samples.pop_front();
        }
        let Some(then) = samples.front().copied() else {
            continue;
        };
        if now.at.duration_since(then.at) < timeout {
            continue;
        }
        if then.pending() > 0 && now.pending() > 0 && now.reads == then.reads {
            watch.stalled.store(true, Ordering::Release);
            watch.driver.abort();
            tracing::warn!(
                generation = live.generation,
                pending = now.pending(),
                "cachette: no reply from Redis within the command timeout; dropping the connection"
            );
            return;
        }
    }
}

/// Where a connection goes.
#[derive(Clone)]
pub(crate) enum Target {
    /// A fixed address (boxed: only read when connecting).
    Fixed(Box<Client>),
    /// The primary the sentinels name at each connect (see the `sentinel` module).
    Sentinel(Arc<Sentinels>),
}

pub(crate) struct Reconnecting {
    target: Target,
    /// The TLS configuration of a `rediss://` endpoint.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls: Option<TlsConnector>,
    /// The last failed TLS handshake, reported without a new attempt for
    /// [`TLS_FAILURE_HOLD`].
    tls_failure: Mutex<Option<(Instant, String)>>,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    command_timeout: Duration,
    current: ArcSwapOption<Live>,
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl Reconnecting {
    pub(crate) fn new(
        target: Target,
        tls: Option<TlsConnector>,
        config: AsyncConnectionConfig,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Reconnecting {
            target,
            tls,
            tls_failure: Mutex::new(None),
            config,
            connect_timeout,
            command_timeout,
            current: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// The sentinels this connection follows, if it dials the primary they name.
    pub(crate) fn sentinels(&self) -> Option<Arc<Sentinels>> {
        match &self.target {
            Target::Sentinel(sentinels) => Some(sentinels.clone()),
            Target::Fixed(_) => None,
        }
    }

    /// The live connection, if there is one that the watchdog has not declared stalled.
    #[inline]
    pub(crate) fn current(&self) -> Option<Arc<Live>> {
        let live = self.current.load_full()?;
        if live.is_stalled() {
            // The watchdog killed it and no waiting caller has discarded it yet.
            self.discard(live.generation);
            return None;
        }
        Some(live)
    }

    /// Connects (or waits for a concurrent caller's connection) within `timeout`.
    /// `Ok(None)`: the wait exceeded it.
    #[cold]
    pub(crate) async fn connect_within(&self, timeout: Duration) -> Result<Option<Arc<Live>>> {
        // Boxed: connecting is rare, and its future (TCP connect, handshake) is large; inline,
        // every command's future would carry it.
        let deadline = tokio::time::Instant::now() + timeout;
        match Box::pin(tokio::time::timeout_at(deadline, self.reconnect(deadline))).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }

    #[cold]
    async fn reconnect(&self, deadline: tokio::time::Instant) -> Result<Arc<Live>> {
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(live) = self.current() {
            return Ok(live);
        }
        if let Some((at, message)) = &*self.tls_failure.lock() {
            if at.elapsed() < TLS_FAILURE_HOLD {
                return Err(Error::new(ErrorKind::Tls, message.clone()));
            }
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = match &self.target {
            Target::Fixed(client) => self
                .open(client, generation, deadline)
                .await
                .map_err(Error::from),
            Target::Sentinel(sentinels) => self.open_primary(sentinels, generation, deadline).await,
        };
        let live = match opened {
            Ok(live) => Arc::new(live),
            Err(e) => {
                if e.is_tls() {
                    tracing::warn!(error = %e, "cachette: TLS handshake with Redis failed");
                    *self.tls_failure.lock() = Some((Instant::now(), tls_message(&e)));
                }
                return Err(e);
            }
        };
        if live.watch.is_some() {
            tokio::spawn(watchdog(Arc::downgrade(&live), self.command_timeout));
        }
        self.current.store(Some(live.clone()));
        Ok(live)
    }

    /// A connection to the primary the sentinels name now, checked with `ROLE`; asked again
    /// if the primary switched meanwhile.
    #[cold]
    async fn open_primary(
        &self,
        sentinels: &Sentinels,
        generation: u64,
        deadline: tokio::time::Instant,
    ) -> Result<Live> {
        for _ in 0..3 {
            let switches = sentinels.switches();
            let client = sentinels.client_for(sentinels.primary().await?)?;
            let live = self.open(&client, generation, deadline).await?;
            sentinels.check_role(&live.conn).await?;
            if sentinels.switches() == switches {
                return Ok(live);
            }
        }
        Err(Error::new(
            ErrorKind::Connection,
            "the Sentinel primary kept switching while connecting",
        ))
    }

    /// Whether `e` says that this connection's node was demoted to a replica, in Sentinel
    /// mode (elsewhere a `READONLY` reply is an answer like any other).
    #[cold]
    pub(crate) fn demoted(&self, e: &redis::RedisError) -> bool {
        matches!(self.target, Target::Sentinel(_)) && e.code() == Some("READONLY")
    }

    /// Drops the current connection, whatever its generation (the primary moved); commands
    /// already sent on it finish there.
    pub(crate) fn drop_current(&self) {
        self.current.store(None);
    }

    /// A multiplexed connection over `stream` whose driver runs in a task of our own (so the
    /// watchdog can abort it).
    async fn drive<S>(
        &self,
        info: &redis::ConnectionInfo,
        stream: S,
    ) -> RedisResult<(MultiplexedConnection, Option<AbortHandle>)>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (conn, driver) = MultiplexedConnection::new_with_config(
            info.redis_settings(),
            stream,
            self.config.clone(),
        )
        .await?;
        Ok((conn, Some(tokio::spawn(driver).abort_handle())))
    }

    /// Opens a connection: TCP, TLS and Unix sockets with a driver task of our own (watched);
    /// any other address through the `redis` crate (timed per command).
    async fn open(
        &self,
        client: &Client,
        generation: u64,
        deadline: tokio::time::Instant,
    ) -> RedisResult<Live> {
        // A TLS handshake ends by the caller's deadline and the connect timeout (so that it
        // fails as TLS before either timer below reports a timeout).
        #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
        let deadline = deadline.min(tokio::time::Instant::now() + self.connect_timeout);
        // The driver and the watchdog are spawned on the caller's runtime.
        let owner = tokio::runtime::Handle::try_current()
            .map_err(|_| {
                redis::RedisError::from(io::Error::other(
                    "a Redis connection must be opened inside a tokio runtime",
                ))
            })?
            .id();
        let info = client.get_connection_info();
        let reads = Arc::new(AtomicU64::new(0));
        let connect = async {
            let (conn, driver) = match info.addr() {
                #[cfg(feature = "tls")]
                ConnectionAddr::TcpTls { host, port, .. } => match &self.tls {
                    Some(tls) => {
                        let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                        stream.set_nodelay(true)?;
                        // Reads counted below TLS: any byte from the server is progress.
                        let stream = CountReads {
                            inner: stream,
                            reads: reads.clone(),
                        };
                        let stream = tls.connect(host, stream, deadline).await?;
                        self.drive(info, stream).await?
                    }
                    None => (
                        client
                            .get_multiplexed_async_connection_with_config(&self.config)
                            .await?,
                        None,
                    ),
                },
                ConnectionAddr::Tcp(host, port) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    let stream = CountReads {
                        inner: stream,
                        reads: reads.clone(),
                    };
                    self.drive(info, stream).await?
                }
                #[cfg(unix)]
                ConnectionAddr::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    let stream = CountReads {
                        inner: stream,
                        reads: reads.clone(),
                    };
                    self.drive(info, stream).await?
                }
                _ => (
                    client
                        .get_multiplexed_async_connection_with_config(&self.config)
                        .await?,
                    None,
                ),
            };
            Ok::<_, redis::RedisError>((conn, driver))
        };
        let (conn, driver) = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(redis::RedisError::from(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connecting to Redis timed out",
                )))
            }
        };
        Ok(Live {
            generation,
            conn,
            owner,
            watch: driver.map(|driver| Watch {
                started: Padded::default(),
                answered: Padded::default(),
                abandoned: AtomicU64::new(0),
                reads,
                stalled: AtomicBool::new(false),
                driver,
            }),
        })
    }

    /// Forgets generation `generation` after it failed (a newer one is left alone).
    pub(crate) fn discard(&self, generation: u64) {
        self.current.rcu(|current| match current {
            Some(live) if live.generation == generation => None,
            other => other.clone(),
        });
    }
}

impl RedisBackend {
    /// `connections` connections to `target`, with the database and TLS settings of
    /// `endpoint`, printed as `display`.
    pub(super) fn build(
        endpoint: &crate::RedisEndpoint,
        target: Target,
        display: String,
        connections: usize,
        (connect_timeout, command_timeout): (Duration, Duration),
    ) -> Result<Self> {
        // Built once: the TLS files are read (and checked) here, not on every connect.
        let tls = endpoint.tls_connector()?;
        // Our own deadline bounds each operation (including a pending reconnect), so the
        // driver's per-response timer would only double the cost.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(None);
        let connections = (0..connections.max(1))
            .map(|_| {
                let (target, tls) = (target.clone(), tls.clone());
                Reconnecting::new(
                    target,
                    tls,
                    config.clone(),
                    connect_timeout,
                    command_timeout,
                )
            })
            .collect();
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                connections,
                next: AtomicUsize::new(0),
                command_timeout,
                db: endpoint.db(),
                display_url: display,
            }),
        })
    }
}

/// The message of a TLS error without the kind's prefix (it is rebuilt with the kind).
fn tls_message(e: &Error) -> String {
    let text = e.to_string();
    let prefix = format!("cachette {}: ", ErrorKind::Tls);
    text.strip_prefix(&prefix).unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_samples_often_enough_and_not_too_often() {
        assert_eq!(
            tick(Duration::from_millis(500)),
            Duration::from_micros(62_500)
        );
        assert_eq!(tick(Duration::from_micros(10)), Duration::from_millis(1));
        assert_eq!(tick(Duration::from_secs(60)), Duration::from_millis(250));
    }

    #[test]
    fn pending_never_underflows() {
        let s = Sample {
            at: Instant::now(),
            started: 1,
            answered: 1,
            abandoned: 1,
            reads: 0,
        };
        assert_eq!(s.pending(), 0);
    }
}
