//! The near cache on a Redis Cluster: one tier, one invalidation channel per primary.
//!
//! A node announces only the writes it runs itself, so the tier listens to every primary (a
//! `CLIENT TRACKING ON BCAST PREFIX` connection to each, as for a standalone server) and
//! serves a hit only while **every** channel vouches for it (see [`Liveness`]). The rules
//! that keep it coherent while the cluster changes:
//!
//! - **The channels follow the topology** the cluster backend knows, looked at every
//!   heartbeat: a channel for each primary. A primary that is no longer one (failed over,
//!   removed) loses its channel and the tier is flushed; a new primary gets a channel, and
//!   the tier serves nothing until that channel vouches. When a channel starts announcing, the
//!   tier is flushed again: a miss may have read from its node before.
//! - **A reply is kept only from a node the tier listens to**: following an `ASK`, a miss may
//!   be answered by a node that is not a primary in the known topology yet (a slot being
//!   imported by a new node); nothing would announce that node's writes, so its replies are
//!   served but not kept.
//! - **Slots moving between known primaries need nothing more**: `MIGRATE` deletes each key at
//!   the source (announced there), and the target announces every later write.
//! - **A failover** drops the failed primary's channel (flush; nothing is served until every
//!   channel vouches again); the promoted replica gets a channel as soon as the topology names
//!   it (the backend refreshes it on the first error or `MOVED`).
//!
//! The price of one tier for the whole cluster: while any primary is unreachable, the tier
//! serves nothing (every read goes to Redis) until the cluster has failed it over.

use std::collections::HashMap;
use std::sync::Weak;

use super::tier::Tier;
use super::tracking::{self, ChannelOptions, Liveness, Target, HEARTBEAT};
use crate::backend::ClusterBackend;

/// Keeps one channel per primary of `cluster` until the tier is dropped.
pub(crate) async fn follow(
    cluster: ClusterBackend,
    tier: Weak<Tier>,
    liveness: Weak<Liveness>,
    options: ChannelOptions,
) {
    // The channel of each primary, by `host:port`.
    let mut channels: HashMap<String, u64> = HashMap::new();
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if tier.strong_count() == 0 {
            return;
        }
        let Some(primaries) = cluster.primaries_now() else {
            // The topology has not been read yet: read it (bounded by the command timeout;
            // on failure, the next heartbeat tries again).
            let _ = cluster.primaries().await;
            continue;
        };
        let (Some(t), Some(l)) = (tier.upgrade(), liveness.upgrade()) else {
            return;
        };
        let before = channels.len();
        channels.retain(|addr, id| {
            let kept = primaries.iter().any(|(a, _)| a == addr);
            if !kept {
                l.leave(*id);
            }
            kept
        });
        if channels.len() != before {
            // A node that is no longer a primary: what was read from it may be announced by
            // no one any more.
            t.flush();
        }
        for (addr, endpoint) in primaries {
            if channels.contains_key(&addr) {
                continue;
            }
            let id = l.join(Some(addr.clone()));
            channels.insert(addr, id);
            tokio::spawn(tracking::run(
                tier.clone(),
                liveness.clone(),
                id,
                Target::Fixed(endpoint),
                options.clone(),
            ));
        }
    }
}
