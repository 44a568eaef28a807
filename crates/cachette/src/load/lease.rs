//! Cross-process coalescing: a lease per key, and wake-ups when a lease is released.
//!
//! The caller that misses a key takes the lease `{key}#lock{T}` (`T` puts it in the key's cluster slot, see [`crate::key::companion_key`]) with `SET NX PX lock_ttl` and a
//! random token (`"{pid}:{32 hex digits}"`), renews it every `lock_ttl / 3` while its loader
//! runs (only while the token is still its own), and releases it by compare-and-delete
//! (`Backend::delete_if_equals`, one Lua script on Redis) after storing the value. Then it
//! publishes the key's full name on the channel `{prefix}#lock`.
//!
//! Callers in other processes that find the lease taken wait for that message (a subscriber
//! connection per manager, opened on first contention and re-opened after it drops), then
//! read the value. They re-check by themselves only every `clamp(lock_ttl / 4, 50 ms, 1 s)`,
//! as a safety net for messages lost while the subscriber reconnects, and give up after
//! `lock_wait`: then they serve their stale copy or compute the value themselves.
//!
//! On a backend that is not Redis the same lease lives in that backend, and wake-ups go
//! through a registry shared by the whole process.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::error::Result;

/// Suffix of a lease key.
pub(crate) const LOCK_SUFFIX: &str = "#lock";

/// The lease key of `full_key`: `{full_key}#lock{T}`, in `full_key`'s cluster slot (see
/// [`crate::key::companion_key`]).
pub(crate) fn lease_key(full_key: &str) -> String {
    crate::key::companion_key(full_key, LOCK_SUFFIX)
}

/// How often a waiter re-checks by itself when no wake-up arrives.
pub(crate) fn recheck_interval(lock_ttl: Duration) -> Duration {
    (lock_ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// A held lease. Release it with [`HeldLease::release`]; if it is dropped instead (the
/// leader was cancelled or unwound), a task releases it in the background, so a cancelled
/// leader does not make other processes wait for the lease to expire.
pub(crate) struct HeldLease {
    key: String,
    token: Bytes,
    full_key: String,
    ttl: Duration,
    backend: Arc<dyn Backend>,
    leases: Leases,
    released: bool,
}

impl fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldLease").field("key", &self.key).finish()
    }
}

impl HeldLease {
    /// Renews the lease every `ttl / 3` for as long as it is ours; returns when it is lost
    /// (it expired and someone else took it, or the backend failed). Meant to be raced
    /// against the loader.
    pub(crate) async fn keep_alive(&self) {
        let period = (self.ttl / 3).max(Duration::from_millis(1));
        loop {
            tokio::time::sleep(period).await;
            match self.backend.get(&self.key).await {
                Ok(Some(current)) if current == self.token => {
                    if !matches!(self.backend.expire(&self.key, self.ttl).await, Ok(true)) {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Whether the lease is still ours. An eviction of the key in any process removes its
    /// lease first, so a fill that stored its value and then finds its lease gone (or taken)
    /// was superseded. A failing backend answers `false`.
    pub(crate) async fn still_held(&self) -> bool {
        matches!(self.backend.get(&self.key).await, Ok(Some(current)) if current == self.token)
    }

    /// Releases the lease (only if still ours) and wakes the key's waiters.
    pub(crate) async fn release(mut self) {
        self.released = true;
        release(
            &*self.backend,
            &self.leases,
            &self.key,
            &self.token,
            &self.full_key,
            true,
        )
        .await;
    }

    /// Releases the lease without waking anyone (nothing changed while it was held).
    pub(crate) async fn release_quietly(mut self) {
        self.released = true;
        release(
            &*self.backend,
            &self.leases,
            &self.key,
            &self.token,
            &self.full_key,
            false,
        )
        .await;
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let backend = self.backend.clone();
            let leases = self.leases.clone();
            let key = std::mem::take(&mut self.key);
            let token = self.token.clone();
            let full_key = std::mem::take(&mut self.full_key);
            handle.spawn(async move {
                release(&*backend, &leases, &key, &token, &full_key, true).await;
            });
        }
    }
}

async fn release(
    backend: &dyn Backend,
    leases: &Leases,
    key: &str,
    token: &[u8],
    full_key: &str,
    wake: bool,
) {
    if let Err(e) = backend.delete_if_equals(key, token).await {
        // The lease expires by itself after its TTL.
        tracing::debug!(error = %e, "cachette: could not release a lease");
    }
    if wake {
        match leases {
            Leases::Local => LOCAL.wake(full_key),
            Leases::Redis(notifier) => notifier.publish(full_key).await,
        }
    }
}

fn new_token() -> Bytes {
    Bytes::from(format!(
        "{}:{:032x}",
        std::process::id(),
        fastrand::u128(..)
    ))
}

/// Local waiters per key: each key has a watch channel whose value counts releases.
#[derive(Debug, Default)]
struct Registry {
    keys: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Registry {
    fn listen(self: &Arc<Self>, key: &str) -> Listener {
        let mut keys = self.keys.lock();
        let rx = match keys.get(key) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                keys.insert(key.to_owned(), tx);
                rx
            }
        };
        Listener {
            registry: self.clone(),
            key: key.to_owned(),
            rx: Some(rx),
        }
    }

    fn wake(&self, key: &str) {
        if let Some(tx) = self.keys.lock().get(key) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A registered interest in the release of one key; wakes on any release after its creation.
pub(crate) struct Listener {
    registry: Arc<Registry>,
    key: String,
    rx: Option<watch::Receiver<u64>>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").field("key", &self.key).finish()
    }
}

impl Listener {
    /// Waits until the key is released (since the listener was created or last woken) or
    /// `max` has passed.
    pub(crate) async fn wait(&mut self, max: Duration) {
        if let Some(rx) = self.rx.as_mut() {
            // An error means the sender is gone, which cannot happen while we are registered;
            // the timeout bounds the wait either way.
            let _ = tokio::time::timeout(max, rx.changed()).await;
        } else {
            tokio::time::sleep(max).await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut keys = self.registry.keys.lock();
        self.rx = None;
        if keys
            .get(self.key.as_str())
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            keys.remove(self.key.as_str());
        }
    }
}

/// Wake-ups of every manager in this process whose backend is not Redis.
static LOCAL: LazyLock<Arc<Registry>> = LazyLock::new(Arc::default);

/// Where release messages travel.
#[derive(Debug, Clone)]
pub(crate) enum Leases {
    /// Within this process only.
    Local,
    /// Through Redis pub/sub.
    Redis(Arc<RedisNotifier>),
}

impl Leases {
    /// Leases whose releases are announced through Redis pub/sub at one of `endpoints` (a
    /// standalone server, or the seeds of a cluster, which forwards classic pub/sub to every
    /// node): the first that answers, and the next one whenever it fails.
    pub(crate) fn redis(
        endpoints: &[crate::RedisEndpoint],
        prefix: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Leases {
        // The backend was built from the same URLs, so none fails here; without any, local
        // wake-ups plus periodic re-checks still work.
        let clients: Vec<redis::Client> =
            endpoints.iter().filter_map(|e| e.client().ok()).collect();
        if clients.is_empty() {
            return Leases::Local;
        }
        Leases::Redis(Arc::new(RedisNotifier::new(
            Arc::new(Nodes {
                clients,
                current: AtomicUsize::new(0),
            }),
            format!("{prefix}{LOCK_SUFFIX}"),
            connect_timeout,
            command_timeout,
        )))
    }

    /// Takes the lease of `full_key` for `ttl` if it is free.
    pub(crate) async fn try_acquire(
        &self,
        backend: &Arc<dyn Backend>,
        full_key: &str,
        ttl: Duration,
    ) -> Result<Option<HeldLease>> {
        let key = lease_key(full_key);
        let token = new_token();
        let taken = backend.set_nx(&key, token.clone(), Some(ttl)).await?;
        Ok(taken.then(|| HeldLease {
            key,
            token,
            full_key: full_key.to_owned(),
            ttl,
            backend: backend.clone(),
            leases: self.clone(),
            released: false,
        }))
    }

    /// Registers interest in the release of `full_key`. Call it before the last check of the
    /// value, so that a release between that check and the wait is not missed.
    pub(crate) async fn listen(&self, full_key: &str) -> Listener {
        match self {
            Leases::Local => LOCAL.listen(full_key),
            Leases::Redis(notifier) => {
                let listener = notifier.registry.listen(full_key);
                notifier.ensure_subscribed().await;
                listener
            }
        }
    }
}

/// The servers a notifier may talk to, and the one it uses now.
#[derive(Debug)]
struct Nodes {
    clients: Vec<redis::Client>,
    current: AtomicUsize,
}

impl Nodes {
    /// The client in use and its index.
    fn current(&self) -> (usize, &redis::Client) {
        let i = self.current.load(Ordering::Relaxed) % self.clients.len();
        (i, &self.clients[i])
    }

    /// Moves on from `failed` to the next server (unless someone already did).
    fn failed(&self, failed: usize) {
        let next = (failed + 1) % self.clients.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Publishes and receives release messages on one Redis channel.
pub(crate) struct RedisNotifier {
    nodes: Arc<Nodes>,
    channel: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    registry: Arc<Registry>,
    /// The publishing connection, and the index of its server in `nodes`.
    publisher: Mutex<Option<(usize, MultiplexedConnection)>>,
    /// `true` while the subscription is live, and until when callers wait for the first
    /// one; `None` until the subscriber is started.
    subscribed: Mutex<Option<(watch::Receiver<bool>, Instant)>>,
    /// Dropped with the notifier, which stops the subscriber task.
    shutdown: watch::Sender<()>,
}

impl fmt::Debug for RedisNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNotifier")
            .field("channel", &self.channel)
            .finish()
    }
}

impl RedisNotifier {
    fn new(
        nodes: Arc<Nodes>,
        channel: String,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        RedisNotifier {
            nodes,
            channel,
            connect_timeout,
            command_timeout,
            registry: Arc::default(),
            publisher: Mutex::new(None),
            subscribed: Mutex::new(None),
            shutdown: watch::channel(()).0,
        }
    }

    /// Starts the subscriber on first use; until its first subscription is confirmed (at
    /// most the connect timeout after the start), callers wait for it. Afterwards they return
    /// at once, also while it reconnects (waiters then rely on their periodic re-checks).
    async fn ensure_subscribed(&self) {
        let (mut ready, deadline) = {
            let mut slot = self.subscribed.lock();
            match slot.as_ref() {
                Some((rx, deadline)) => {
                    if *rx.borrow() || Instant::now() >= *deadline {
                        return;
                    }
                    (rx.clone(), *deadline)
                }
                None => {
                    let (tx, rx) = watch::channel(false);
                    let deadline = Instant::now() + self.connect_timeout;
                    *slot = Some((rx.clone(), deadline));
                    tokio::spawn(subscriber(
                        self.nodes.clone(),
                        self.channel.clone(),
                        Arc::downgrade(&self.registry),
                        tx,
                        self.shutdown.subscribe(),
                        self.connect_timeout,
                    ));
                    (rx, deadline)
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, ready.wait_for(|up| *up)).await;
    }

    /// Publishes the release of `full_key`. A failure moves on to the next server and tries
    /// once more there (with several servers), so one dead node loses no wake-up; after that,
    /// waiters re-check on their own.
    async fn publish(&self, full_key: &str) {
        // Waiters of other managers in this process hear it through Redis like everyone else.
        let attempts = self.nodes.clients.len().min(2);
        for _ in 0..attempts {
            if self.publish_once(full_key).await {
                return;
            }
        }
    }

    async fn publish_once(&self, full_key: &str) -> bool {
        let conn = self.publisher.lock().clone();
        let (node, mut conn) = match conn {
            Some(conn) => conn,
            None => {
                let (node, client) = self.nodes.current();
                let connect = client.get_multiplexed_async_connection();
                match tokio::time::timeout(self.connect_timeout, connect).await {
                    Ok(Ok(conn)) => {
                        *self.publisher.lock() = Some((node, conn.clone()));
                        (node, conn)
                    }
                    _ => {
                        self.nodes.failed(node);
                        return false;
                    }
                }
            }
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&self.channel).arg(full_key);
        let publish = cmd.query_async::<i64>(&mut conn);
        if matches!(
            tokio::time::timeout(self.command_timeout, publish).await,
            Ok(Ok(_))
        ) {
            return true;
        }
        // Reconnect, to the next server.
        *self.publisher.lock() = None;
        self.nodes.failed(node);
        false
    }
}

/// Keeps one subscription to `channel` alive and forwards its messages to `registry`.
async fn subscriber(
    nodes: Arc<Nodes>,
    channel: String,
    registry: Weak<Registry>,
    up: watch::Sender<bool>,
    mut shutdown: watch::Receiver<()>,
    connect_timeout: Duration,
) {
    const PING_EVERY: Duration = Duration::from_secs(2);
    let mut backoff = Duration::from_millis(50);
    loop {
        let (node, client) = nodes.current();
        let session = async {
            let pubsub = tokio::time::timeout(connect_timeout, client.get_async_pubsub())
                .await
                .ok()?
                .ok()?;
            let (mut sink, mut stream) = pubsub.split();
            tokio::time::timeout(connect_timeout, sink.subscribe(&channel))
                .await
                .ok()?
                .ok()?;
            up.send_replace(true);
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let msg = msg?;
                        let registry = registry.upgrade()?;
                        if let Ok(key) = std::str::from_utf8(msg.get_payload_bytes()) {
                            registry.wake(key);
                        }
                    }
                    () = tokio::time::sleep(PING_EVERY) => {
                        // A stopped or vanished server does not always close the socket.
                        let ping = sink.ping::<String>();
                        if !matches!(tokio::time::timeout(connect_timeout, ping).await, Ok(Ok(_))) {
                            return None;
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            ended = session => {
                let _: Option<()> = ended;
            }
        }
        up.send_replace(false);
        nodes.failed(node);
        if registry.strong_count() == 0 {
            return;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_wake_on_release_and_clean_up() {
        let registry = Arc::new(Registry::default());
        let mut a = registry.listen("k");
        let mut b = registry.listen("k");
        registry.wake("k");
        let started = std::time::Instant::now();
        a.wait(Duration::from_secs(5)).await;
        b.wait(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        // Nothing new: the wait runs into its bound.
        let started = std::time::Instant::now();
        a.wait(Duration::from_millis(30)).await;
        assert!(started.elapsed() >= Duration::from_millis(25));
        drop(a);
        assert_eq!(registry.keys.lock().len(), 1);
        drop(b);
        assert_eq!(registry.keys.lock().len(), 0);
        registry.wake("k"); // nobody listens: nothing happens
    }

    #[test]
    fn names() {
        assert_eq!(lease_key("cache:user:1"), "cache:user:1#lock{4Cy}");
        assert_eq!(
            recheck_interval(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            recheck_interval(Duration::from_millis(100)),
            Duration::from_millis(50)
        );
        let t = new_token();
        assert!(std::str::from_utf8(&t).unwrap().contains(':'));
        assert_ne!(t, new_token());
    }
}
