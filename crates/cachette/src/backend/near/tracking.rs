//! The invalidation channel of the near cache: one RESP3 connection per tier (per primary on a
//! cluster, see `cluster.rs`) with
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
//! of keys this process never read.
//!
//! Measured (`docs/near-tracking-modes.md`, bench groups `tracking …`): a hot-key miss read
//! costs the same in both modes; default mode's table costs the server ≈ 100 B per key read
//! (≈ 70 B more per further process), outlives the processes, and past
//! `tracking-table-max-keys` invalidates keys nobody wrote; broadcast batches keys into one
//! push and costs the server less per write when processes hold much of what is written
//! (6–8 against 11.5–15 µs of server CPU per `SET` with four processes holding everything).
//! Default mode wins only on write-heavy prefixes of which each process reads little (at 1 %:
//! 2.1–2.3 against 2.9–4.0 µs per `SET`; the crossover is near 10 %): such a prefix is better
//! left out of the near cache.
//!
//! # Liveness: the tier serves only what the channel vouches for
//!
//! Every [`HEARTBEAT`] the channel sends `PING` (through Sentinel `ROLE`, which must still say
//! `master`) and waits for the reply. Replies come back in
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
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
// tokio's clock, as the tier's: a hit reads it once for both (and tests can pause it).
use tokio::time::Instant;

use redis::aio::{AsyncPushSender, SendError};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};

use super::tier::Tier;
use crate::backend::redis::endpoint::RedisEndpoint;
use crate::backend::redis::Sentinels;
use crate::error::{Error, ErrorKind, Result};

/// How often the channel proves it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(100);

/// The tier's view of its channels: until when hits may be served.
///
/// A standalone server (or the primary named by Sentinel) has one channel; a Redis Cluster
/// has one per primary, and the tier serves only while **every** one of them vouches (a
/// write is announced only by the node that ran it). Each connection of a channel is a
/// session; only a channel's current session can vouch for it, and a session that ended (its
/// connection dropped) can neither vouch nor end its successor.
pub(crate) struct Liveness {
    base: Instant,
    /// Milliseconds since `base` until which the tier may serve: the earliest bound of its
    /// channels (0: not now, or no channel).
    until_ms: AtomicU64,
    /// The channels (rare writes: a heartbeat, a reconnect, a topology change).
    channels: Mutex<Channels>,
    /// Whether the server refused a channel at its last attempt (see [`refusal`]).
    refused: AtomicBool,
}

#[derive(Default)]
struct Channels {
    /// The last number given to a channel or a session (one sequence for both).
    last: u64,
    list: Vec<Channel>,
}

struct Channel {
    id: u64,
    /// The node it listens to (`host:port`), for a cluster's replies (see [`Liveness::covers`]).
    addr: Option<String>,
    /// Its current session (a number no session has when none is under way).
    session: u64,
    /// Milliseconds since `base` until which it vouches.
    until: u64,
}

impl Channels {
    fn next(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    fn get(&mut self, id: u64) -> Option<&mut Channel> {
        self.list.iter_mut().find(|c| c.id == id)
    }

    /// The tier's bound: the earliest of its channels' (none: 0).
    fn until(&self) -> u64 {
        self.list.iter().map(|c| c.until).min().unwrap_or(0)
    }
}

impl Liveness {
    pub(crate) fn new() -> Liveness {
        Liveness {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
            channels: Mutex::new(Channels::default()),
            refused: AtomicBool::new(false),
        }
    }

    /// Whether the server refused a channel at its last attempt.
    pub(crate) fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether every channel vouches for the tier now.
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.is_live_at(Instant::now())
    }

    /// Whether every channel vouches for the tier at `now` (a reading of the clock just
    /// taken: a hit reads it once, for this and for the entry's expiry).
    #[inline]
    pub(crate) fn is_live_at(&self, now: Instant) -> bool {
        self.ms_at(now) < self.until_ms.load(Ordering::Acquire)
    }

    /// Adds a channel (to the node `addr`, in a cluster); it vouches for nothing yet, so the
    /// tier serves nothing until it does.
    pub(crate) fn join(&self, addr: Option<String>) -> u64 {
        let mut channels = self.channels.lock();
        let id = channels.next();
        let session = channels.next();
        channels.list.push(Channel {
            id,
            addr,
            session,
            until: 0,
        });
        self.until_ms.store(0, Ordering::Release);
        id
    }

    /// Removes a channel (its node is no longer a primary); its sessions end.
    pub(crate) fn leave(&self, id: u64) {
        let mut channels = self.channels.lock();
        channels.list.retain(|c| c.id != id);
        self.until_ms.store(channels.until(), Ordering::Release);
    }

    /// Whether a reply from the node `addr` may be kept: always with a single channel (the
    /// replies come from its node), else when a channel listens to that node (a cluster's
    /// replies may come from a node that is not a primary yet, following `ASK`: nothing would
    /// announce its writes).
    pub(crate) fn covers(&self, addr: Option<&str>) -> bool {
        match addr {
            None => true,
            Some(addr) => self
                .channels
                .lock()
                .list
                .iter()
                .any(|c| c.addr.as_deref() == Some(addr)),
        }
    }

    /// Starts a new session of channel `id` (ending its previous one); it vouches for nothing
    /// yet. `None` when the channel was removed.
    fn start(&self, id: u64) -> Option<u64> {
        let mut channels = self.channels.lock();
        let session = channels.next();
        let channel = channels.get(id)?;
        channel.session = session;
        channel.until = 0;
        self.until_ms.store(0, Ordering::Release);
        Some(session)
    }

    /// A heartbeat of `session` of channel `id` sent at `sent` was answered: it vouches until
    /// `sent + staleness`. `false` when the channel was removed.
    fn vouch(&self, id: u64, session: u64, sent: Instant, staleness: Duration) -> bool {
        let sent_ms = self.ms_at(sent);
        let bound = sent_ms.saturating_add(u64::try_from(staleness.as_millis()).unwrap_or(0));
        let mut channels = self.channels.lock();
        let Some(channel) = channels.get(id) else {
            return false;
        };
        if channel.session == session {
            // An older heartbeat answered late never shortens it.
            channel.until = channel.until.max(bound);
            self.until_ms.store(channels.until(), Ordering::Release);
        }
        true
    }

    /// `session` of channel `id` is over: nothing is served until a new session vouches.
    fn end(&self, id: u64, session: u64) {
        let mut channels = self.channels.lock();
        let next = channels.next();
        if let Some(channel) = channels.get(id) {
            if channel.session == session {
                channel.session = next;
                channel.until = 0;
                self.until_ms.store(0, Ordering::Release);
            }
        }
    }
}

/// Applies the pushes of the tracking connection to the tier, on the connection's driver.
struct Invalidations {
    tier: Weak<Tier>,
    liveness: Weak<Liveness>,
    channel: u64,
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
                                liveness.end(self.channel, self.session);
                                tier.flush();
                            }
                        }
                    }
                }
                // `FLUSHALL`/`FLUSHDB` (a null key list), or a form we do not know.
                _ => tier.flush(),
            },
            PushKind::Disconnection => {
                liveness.end(self.channel, self.session);
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

/// Where a channel connects.
#[derive(Clone)]
pub(crate) enum Target {
    /// A fixed server (standalone, or one node of a cluster).
    Fixed(RedisEndpoint),
    /// The primary the sentinels name, asked again at every session. A session ends (and the
    /// tier is flushed) as soon as its node is no longer the primary: its heartbeat is `ROLE`,
    /// and any switch of the master the backend hears of ends it too.
    Sentinel(Arc<Sentinels>),
}

/// Settings of a channel.
#[derive(Clone)]
pub(crate) struct ChannelOptions {
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) max_staleness: Duration,
    /// Flush the tier when a session starts announcing (a cluster's channels: a miss may have
    /// read from this node before its writes were announced; see `cluster.rs`).
    pub(crate) flush_on_start: bool,
}

/// Runs channel `id` until the tier is dropped or the channel removed: connect, enable
/// tracking, heartbeat; on any failure revoke, flush, back off and start again.
pub(crate) async fn run(
    tier: Weak<Tier>,
    liveness: Weak<Liveness>,
    id: u64,
    target: Target,
    options: ChannelOptions,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if tier.strong_count() == 0 {
            return;
        }
        let Some(session_id) = liveness.upgrade().and_then(|l| l.start(id)) else {
            return;
        };
        match session(id, session_id, &tier, &liveness, &target, &options).await {
            Ok(()) => return, // the tier is gone, or the channel removed
            Err(e) => {
                let Some(l) = liveness.upgrade() else {
                    return;
                };
                l.end(id, session_id);
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

/// The client of a session: the fixed server, or the primary the sentinels name now (with the
/// number of master switches seen when it was asked).
async fn client_of(target: &Target) -> Result<(redis::Client, Option<u64>)> {
    match target {
        Target::Fixed(endpoint) => Ok((endpoint.client()?, None)),
        Target::Sentinel(sentinels) => {
            let switches = sentinels.switches();
            let primary = sentinels.primary().await?;
            Ok((sentinels.client_for(primary)?, Some(switches)))
        }
    }
}

/// One connection's life. `Ok` when the tier is dropped or the channel removed, `Err` when
/// the connection failed (or, through Sentinel, its node stopped being the primary).
async fn session(
    id: u64,
    session_id: u64,
    tier: &Weak<Tier>,
    liveness: &Weak<Liveness>,
    target: &Target,
    options: &ChannelOptions,
) -> Result<()> {
    let (client, switches) = client_of(target).await?;
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
            channel: id,
            session: session_id,
        });
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(Error::from)?;
    let sentinels = match target {
        Target::Sentinel(sentinels) => {
            sentinels.check_role(&conn).await?;
            Some(sentinels)
        }
        Target::Fixed(_) => None,
    };
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
    // last flush (the tier is revoked while the channel is down), so the tier starts coherent;
    // a cluster's tier may hold replies from this node read before now, hence the flush.
    if options.flush_on_start {
        if let Some(t) = tier.upgrade() {
            t.flush();
        }
    }
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
        match sentinels {
            // Through Sentinel the heartbeat also proves the node is still the primary.
            Some(sentinels) => sentinels.check_role(&conn).await?,
            None => redis::cmd("PING")
                .query_async::<()>(&mut conn)
                .await
                .map_err(Error::from)?,
        }
        if let (Some(sentinels), Some(seen)) = (sentinels, switches) {
            if sentinels.switches() != seen {
                return Err(Error::new(
                    ErrorKind::Connection,
                    "the Sentinel master switched: the channel follows it",
                ));
            }
        }
        if !live.vouch(id, session_id, sent, options.max_staleness) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_lasts_from_the_heartbeat_sent_until_the_staleness_bound() {
        let l = Liveness::new();
        assert!(!l.is_live(), "no channel vouches for nothing");
        let c = l.join(None);
        assert!(!l.is_live());
        let s = l.start(c).unwrap();
        assert!(!l.is_live(), "a new session vouches for nothing");
        assert!(l.vouch(c, s, Instant::now(), Duration::from_secs(60)));
        assert!(l.is_live());
        // An older heartbeat answered late never shortens it.
        assert!(l.vouch(c, s, l.base, Duration::from_millis(1)));
        assert!(l.is_live());
        l.end(c, s);
        assert!(!l.is_live());
        // A session that ended cannot vouch again.
        l.vouch(c, s, Instant::now(), Duration::from_secs(60));
        assert!(!l.is_live());
        // A heartbeat whose bound has already passed vouches for nothing.
        let t = l.start(c).unwrap();
        l.vouch(c, t, l.base, Duration::ZERO);
        assert!(!l.is_live());
        // The end of an old session does not end the current one.
        l.vouch(c, t, Instant::now(), Duration::from_secs(60));
        l.end(c, s);
        assert!(l.is_live());
        // A bound runs out as time passes.
        let l = Liveness::new();
        let c = l.join(None);
        let s = l.start(c).unwrap();
        l.vouch(c, s, Instant::now(), Duration::from_millis(30));
        assert!(l.is_live());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!l.is_live(), "the bound ran out");
    }

    #[test]
    fn every_channel_must_vouch_and_the_earliest_bound_counts() {
        let l = Liveness::new();
        let a = l.join(Some("127.0.0.1:1".into()));
        let b = l.join(Some("127.0.0.1:2".into()));
        let (sa, sb) = (l.start(a).unwrap(), l.start(b).unwrap());
        l.vouch(a, sa, Instant::now(), Duration::from_secs(60));
        assert!(!l.is_live(), "b vouches for nothing yet");
        l.vouch(b, sb, l.base, Duration::ZERO);
        assert!(!l.is_live(), "b's bound has passed");
        l.vouch(b, sb, Instant::now(), Duration::from_secs(60));
        assert!(l.is_live());
        // A new channel stops the tier until it vouches; removing it lets the others serve.
        let c = l.join(Some("127.0.0.1:3".into()));
        assert!(!l.is_live());
        assert!(l.covers(Some("127.0.0.1:3")));
        l.leave(c);
        assert!(l.is_live());
        assert!(!l.covers(Some("127.0.0.1:3")));
        assert!(l.covers(Some("127.0.0.1:1")));
        assert!(l.covers(None));
        assert!(l.start(c).is_none(), "a removed channel has no sessions");
        assert!(!l.vouch(c, sa, Instant::now(), Duration::from_secs(60)));
        // One channel's end stops the tier.
        l.end(a, sa);
        assert!(!l.is_live());
        l.leave(a);
        l.leave(b);
        assert!(!l.is_live(), "no channel vouches for nothing");
    }
}
