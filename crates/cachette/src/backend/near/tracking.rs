//! The invalidation channel of the near cache: one RESP3 connection per tier with
//! `CLIENT TRACKING ON BCAST PREFIX <prefix>`, whose invalidation pushes are applied to the tier
//! by the connection's own driver, in the order the server sent them.
//!
//! # Why broadcast mode on a connection of its own
//!
//! In default mode the server remembers which keys each connection read and tells that
//! connection (or the one it redirects to) when they change; the reads would have to run on
//! tracked connections, and the server keeps a table of every key read by every client. In
//! broadcast mode the server tells this one connection about every change under the prefix,
//! whoever reads it, and keeps no per-key table: the data connections stay as they are (no
//! RESP3, no cost on the hot path), and the channel can be replaced at any time without
//! touching them. The price is a message for every write under the prefix, including writes
//! of keys this process never read; for a cache (read far more often than written) that is
//! the cheaper side.
//!
//! # Liveness: the tier serves only what the channel vouches for
//!
//! Every [`HEARTBEAT`] the channel sends `PING` and waits for the reply. Replies come back in
//! order with pushes, so when the reply to a `PING` sent at `t` arrives, every invalidation of
//! a write that completed before `t` has been applied. The tier then serves hits until
//! `t + max_staleness`; past that (the channel stalled, the reply is late, the task is starved)
//! it serves nothing and stores nothing, and reads go to Redis. A read therefore never returns
//! a value older than the last write that completed `max_staleness` before it began.
//!
//! When the connection drops (or a `PING` times out) the tier is flushed, then the channel
//! reconnects with a bounded back-off. A `FLUSHALL`/`FLUSHDB` arrives as an invalidation
//! without keys and flushes the tier too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Weak;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use redis::aio::{AsyncPushSender, SendError};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};

use super::tier::Tier;
use crate::backend::redis::endpoint::RedisEndpoint;
use crate::error::{Error, ErrorKind, Result};

/// How often the channel proves it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(100);

/// The tier's view of its channel: until when hits may be served.
///
/// Each connection of the channel is a session; only the current session can vouch, and a
/// session that ended (its connection dropped) can neither vouch nor end its successor.
pub(crate) struct Liveness {
    base: Instant,
    /// Milliseconds since `base` until which the tier may serve (0: not now).
    until_ms: AtomicU64,
    /// The current session (rare writes: a heartbeat, a reconnect).
    session: Mutex<u64>,
    /// Whether the server refused the channel at the last attempt (see [`refusal`]).
    refused: AtomicBool,
}

impl Liveness {
    pub(crate) fn new() -> Liveness {
        Liveness {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
            session: Mutex::new(0),
            refused: AtomicBool::new(false),
        }
    }

    /// Whether the server refused the channel at the last attempt.
    pub(crate) fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the channel vouches for the tier now.
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.now_ms() < self.until_ms.load(Ordering::Acquire)
    }

    /// Starts a new session (ending any other); it vouches for nothing yet.
    fn start(&self) -> u64 {
        let mut session = self.session.lock();
        *session += 1;
        self.until_ms.store(0, Ordering::Release);
        *session
    }

    /// A heartbeat of `session` sent at `sent` was answered: serve until `sent + staleness`.
    fn vouch(&self, session: u64, sent: Instant, staleness: Duration) {
        let current = self.session.lock();
        if *current != session {
            return;
        }
        let sent_ms = u64::try_from(sent.saturating_duration_since(self.base).as_millis())
            .unwrap_or(u64::MAX);
        let until = sent_ms.saturating_add(u64::try_from(staleness.as_millis()).unwrap_or(0));
        self.until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// `session` is over: nothing is served until a new session vouches.
    fn end(&self, session: u64) {
        let mut current = self.session.lock();
        if *current == session {
            *current += 1;
            self.until_ms.store(0, Ordering::Release);
        }
    }
}

/// Applies the pushes of the tracking connection to the tier, on the connection's driver.
struct Invalidations {
    tier: Weak<Tier>,
    liveness: Weak<Liveness>,
    session: u64,
}

impl AsyncPushSender for Invalidations {
    fn send(&self, info: PushInfo) -> std::result::Result<(), SendError> {
        let (Some(tier), Some(liveness)) = (self.tier.upgrade(), self.liveness.upgrade()) else {
            return Err(SendError);
        };
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        match key {
                            Value::BulkString(k) => {
                                // A key that is not UTF-8 is never in the tier.
                                if let Ok(k) = std::str::from_utf8(k) {
                                    tier.invalidate(k);
                                }
                            }
                            // A key in a form we did not expect: forget everything.
                            _ => {
                                liveness.end(self.session);
                                tier.flush();
                            }
                        }
                    }
                }
                // `FLUSHALL`/`FLUSHDB` (a null key list), or a form we do not know.
                _ => tier.flush(),
            },
            PushKind::Disconnection => {
                liveness.end(self.session);
                tier.flush();
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether `e` is the server's answer rather than a failure to reach it: an error reply to
/// `HELLO 3` or `CLIENT TRACKING` (`NOPERM` from an ACL without them, an unknown command on a
/// server before Redis 6 or a provider that disables them, wrong credentials). Retrying will
/// not help until someone changes the server.
///
/// # Why no fallback channel
///
/// The alternatives all need the same permission or weaken the rule: `REDIRECT` to a RESP2
/// connection is `CLIENT TRACKING` too (the same `NOPERM`), and a pub/sub channel that
/// cachette's writers publish to would miss every write that does not go through a manager
/// with a near cache (another service, `redis-cli`, a script, `FLUSHALL`, an eviction), with
/// no bound on how stale a hit could then be. The near cache stays off instead, and says so.
fn refusal(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Permission | ErrorKind::Auth | ErrorKind::Backend
    )
}

/// Settings of the channel.
#[derive(Clone)]
pub(crate) struct ChannelOptions {
    pub(crate) endpoint: RedisEndpoint,
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) max_staleness: Duration,
}

/// Runs the channel until the tier is dropped: connect, enable tracking, heartbeat; on any
/// failure revoke, flush, back off and start again.
pub(crate) async fn run(tier: Weak<Tier>, liveness: Weak<Liveness>, options: ChannelOptions) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if tier.strong_count() == 0 {
            return;
        }
        let Some(id) = liveness.upgrade().map(|l| l.start()) else {
            return;
        };
        match session(id, &tier, &liveness, &options).await {
            Ok(()) => return, // the tier is gone
            Err(e) => {
                let Some(l) = liveness.upgrade() else {
                    return;
                };
                l.end(id);
                if let Some(t) = tier.upgrade() {
                    t.flush();
                }
                let refused = refusal(&e);
                if refused && !l.refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "cachette: the server refused the near cache's invalidation channel; \
                         the near cache stays off (every read goes to Redis) until it is \
                         allowed (Redis 6 or later, with CLIENT TRACKING: \
                         cachette::acl::Feature::NearCache)"
                    );
                } else if !refused {
                    tracing::debug!(error = %e, "cachette: near-cache invalidation channel down");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One connection's life. `Ok` when the tier is dropped, `Err` when the connection failed.
async fn session(
    id: u64,
    tier: &Weak<Tier>,
    liveness: &Weak<Liveness>,
    options: &ChannelOptions,
) -> Result<()> {
    let client = options.endpoint.client()?;
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(Error::from)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.command_timeout))
        .set_push_sender(Invalidations {
            tier: tier.clone(),
            liveness: liveness.clone(),
            session: id,
        });
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(Error::from)?;
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("BCAST");
    if !options.prefix.is_empty() {
        tracking.arg("PREFIX").arg(&options.prefix);
    }
    let _: () = tracking.query_async(&mut conn).await.map_err(|e| {
        let e = Error::from(e);
        Error::new(e.kind(), format!("CLIENT TRACKING failed: {e}"))
    })?;
    if let Some(l) = liveness.upgrade() {
        l.refused.store(false, Ordering::Relaxed);
    }
    // From here on every write under the prefix is announced. Nothing was stored since the
    // last flush (the tier is revoked while the channel is down), so the tier starts coherent.
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(live) = liveness.upgrade() else {
            return Ok(());
        };
        if tier.strong_count() == 0 {
            return Ok(());
        }
        let sent = Instant::now();
        let _: () = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        live.vouch(id, sent, options.max_staleness);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_lasts_from_the_heartbeat_sent_until_the_staleness_bound() {
        let l = Liveness::new();
        assert!(!l.is_live());
        let s = l.start();
        assert!(!l.is_live(), "a new session vouches for nothing");
        l.vouch(s, Instant::now(), Duration::from_secs(60));
        assert!(l.is_live());
        // An older heartbeat answered late never shortens it.
        l.vouch(s, l.base, Duration::from_millis(1));
        assert!(l.is_live());
        l.end(s);
        assert!(!l.is_live());
        // A session that ended cannot vouch again.
        l.vouch(s, Instant::now(), Duration::from_secs(60));
        assert!(!l.is_live());
        // A heartbeat whose bound has already passed vouches for nothing.
        let t = l.start();
        l.vouch(t, l.base, Duration::ZERO);
        assert!(!l.is_live());
        // The end of an old session does not end the current one.
        l.vouch(t, Instant::now(), Duration::from_secs(60));
        l.end(s);
        assert!(l.is_live());
    }
}
