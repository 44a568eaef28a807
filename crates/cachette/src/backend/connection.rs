//! One multiplexed Redis connection that is re-established after it breaks.
//!
//! `redis::aio::MultiplexedConnection` never reconnects by itself (redis-rs #1677), and the
//! crate's `ConnectionManager`, which does, costs a few percent of throughput on every command
//! (measured: it awaits a shared future per call). This is the small part of it cachette needs:
//! the live connection sits in an `ArcSwapOption` (reads touch no shared lock word); a caller that sees it fail with an I/O or
//! dropped-connection error discards that generation, and the next caller reconnects, one at a
//! time, bounded by the connect timeout.

use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult};

pub(crate) struct Reconnecting {
    client: Client,
    config: AsyncConnectionConfig,
    current: ArcSwapOption<(u64, MultiplexedConnection)>,
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl Reconnecting {
    pub(crate) fn new(client: Client, config: AsyncConnectionConfig) -> Self {
        Reconnecting {
            client,
            config,
            current: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// The live connection and its generation, connecting first if there is none.
    pub(crate) async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(live) = &*self.current.load() {
            return Ok((live.0, live.1.clone()));
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(live) = &*self.current.load() {
            return Ok((live.0, live.1.clone()));
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.current
            .store(Some(Arc::new((generation, conn.clone()))));
        Ok((generation, conn))
    }

    /// Forgets generation `generation` after it failed (a newer one is left alone).
    pub(crate) fn discard(&self, generation: u64) {
        self.current.rcu(|current| match current {
            Some(live) if live.0 == generation => None,
            other => other.clone(),
        });
    }
}
