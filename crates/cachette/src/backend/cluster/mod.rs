//! Redis Cluster, over cachette's own connections: one [`RedisBackend`] per node.
//!
//! # Why not the `redis` crate's cluster client
//!
//! Its async cluster client splits `MGET`/`UNLINK` per slot but sends each part as a separate
//! request, keeps pipelines within one slot (#840, #1348), routes `SCAN` to one random node
//! (#1230), and has known stalls while refreshing its topology (#2092) or connecting (#1953).
//! Every node here is a standalone [`RedisBackend`] instead, so each node keeps the stall
//! watchdog, the reconnect-and-retry-once rule and the error classification of the standalone
//! backend, and this module only adds routing:
//!
//! - **Topology** from `CLUSTER SLOTS`, asked of the known primaries, then the known replicas,
//!   then the seeds (first answer wins), on first use, after a `MOVED` (in the background, at
//!   most every [`MIN_REFRESH_INTERVAL`]; the command itself follows the redirection at once),
//!   and after a connection error on a node, a `READONLY` or a `CLUSTERDOWN` (before the
//!   command is resent, so a failover costs the callers of that shard one refresh).
//! - **Redirections**: `MOVED` and `ASK` (with `ASKING` in front, on the same connection) are
//!   followed up to [`MAX_REDIRECTS`] times; `TRYAGAIN` is retried after a short pause.
//! - **Batches by node**: `get_many`, `set_many`, `delete_many` (and so warming and
//!   `delete_pattern`) group the keys by slot and the slots by primary, and send one pipeline
//!   per primary (an `MGET`/`UNLINK` per slot, or a `SET` per key), every primary in parallel;
//!   results come back in the caller's order and no command ever spans two slots, so
//!   `CROSSSLOT` cannot happen. A redirected slot is resent alone (only its redirected `SET`s),
//!   key by key while it is being migrated (`ASK`, `TRYAGAIN`: a multi-key command there gets
//!   `TRYAGAIN` while its keys are split or missing); the keys of a node whose connection
//!   failed are regrouped after one topology refresh and sent once more.
//! - **Whole-keyspace operations** visit every primary: `keys` and `delete_pattern` (so
//!   `clear`) scan every primary to completion in parallel (a primary whose connection fails
//!   mid-scan is scanned again, from its new owner after a refresh, up to three times; `keys`
//!   deduplicates and `UNLINK` counts only keys that existed, so no key is missed or counted
//!   twice). [`Backend::scan`](crate::Backend::scan) has a single cursor: it encodes the primary (by the lowest slot
//!   it serves, which a promoted replica keeps) in the top 16 bits and that node's own cursor
//!   in the low 48. `info` sums keys, memory, clients, hits and misses over the primaries
//!   and adds a `cluster` section with one line per node.
//! - **Commands the [`Backend`](crate::Backend) trait does not name** (the statistics hash of
//!   `observe::publish`) go through the same routing, keyed by their one key
//!   (`query_on_key`).
//!
//! # Bounds
//!
//! Each command on a node is bounded by the command timeout (the node's stall watchdog); a
//! whole single-key or batch operation is bounded by twice the command timeout (room for one
//! topology refresh and the resend). Connection errors and timeouts are
//! [`ErrorKind::Connection`]/[`ErrorKind::Timeout`] and count toward the circuit breaker (one
//! breaker per cluster, put around this backend by the manager); server replies (`MOVED`
//! that could not be followed, `CLUSTERDOWN`, `WRONGTYPE`, ...) are [`ErrorKind::Backend`] and
//! never count.
//!
//! A value's lease and metadata hash to its own slot ([`crate::key::companion_key`]).

mod ops;
mod route;
mod topology;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::future::join_all;
use redis::{Cmd, Value};

use self::ops::scan_cmd;
use self::topology::{join_host_port, parse_cluster_slots};
pub use self::topology::{slot, SLOTS};
use super::{RedisBackend, SCAN_BATCH};
use crate::backend::redis::endpoint::RedisEndpoint;
use crate::error::{Error, ErrorKind, Result};

/// Redirections followed by one command before it fails.
pub const MAX_REDIRECTS: usize = 5;
/// Background topology refreshes (after `MOVED`) are at most this frequent.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// Bits of a [`Backend::scan`](crate::Backend::scan) cursor that hold the node's own cursor.
const NODE_CURSOR_BITS: u32 = 48;
/// A slot no primary serves.
const UNASSIGNED: u16 = u16::MAX;

/// Settings of a [`ClusterBackend`]; built from [`crate::Config`] in normal use.
#[derive(Clone)]
pub struct ClusterOptions {
    /// Seed nodes (at least one); their user name, password and TLS setting apply to every
    /// node of the cluster.
    pub seeds: Vec<RedisEndpoint>,
    /// Multiplexed connections per node.
    pub connections_per_node: usize,
    /// Time allowed to connect to a node.
    pub connect_timeout: Duration,
    /// Time allowed for one command on a node.
    pub command_timeout: Duration,
}

impl fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterOptions")
            .field("seeds", &self.seeds)
            .field("connections_per_node", &self.connections_per_node)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// The Redis Cluster backend (see the [module docs](self)). Cheap to clone.
#[derive(Clone)]
pub struct ClusterBackend {
    inner: Arc<Inner>,
}

struct Inner {
    /// Credentials and TLS for every node (host and port replaced per node).
    template: RedisEndpoint,
    seeds: Vec<String>,
    connections_per_node: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// One standalone backend per node ever seen, by `host:port`.
    nodes: parking_lot::Mutex<HashMap<String, RedisBackend>>,
    topology: ArcSwapOption<Topology>,
    refreshing: tokio::sync::Mutex<()>,
    last_refresh: parking_lot::Mutex<Option<Instant>>,
    display: String,
}

/// Who serves what, from one `CLUSTER SLOTS` answer.
struct Topology {
    /// Per slot, the index of its primary in `primaries` ([`UNASSIGNED`] if none).
    owner: Vec<u16>,
    /// Sorted by `first_slot`.
    primaries: Vec<Primary>,
    replicas: Vec<String>,
}

struct Primary {
    addr: String,
    node: RedisBackend,
    /// The lowest slot it serves: its identity in a scan cursor.
    first_slot: u16,
}

impl Topology {
    fn owner(&self, slot: u16) -> Option<&Primary> {
        let i = *self.owner.get(usize::from(slot))?;
        self.primaries.get(usize::from(i))
    }
}

impl fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let primaries = self.inner.topology.load().as_ref().map(|t| {
            t.primaries
                .iter()
                .map(|p| p.addr.clone())
                .collect::<Vec<_>>()
        });
        f.debug_struct("ClusterBackend")
            .field("seeds", &self.inner.display)
            .field("primaries", &primaries)
            .field("command_timeout", &self.inner.command_timeout)
            .finish()
    }
}

/// What a node made of one command: `Err` outside for a connection error or timeout (already
/// retried once by the node), `Err` inside for the server's error reply.
type Answer = redis::RedisResult<Value>;

/// Whether a `redis` error is the server's reply (as opposed to a failed connection).
fn is_reply(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// What to do about a server error reply.
enum Reply {
    Moved(String),
    Ask(String),
    TryAgain,
    /// The topology is stale (`READONLY` from a demoted primary, `CLUSTERDOWN`,
    /// `MASTERDOWN`): refresh, then resend.
    Refresh,
    Fail,
}

fn sort_reply(e: &redis::RedisError) -> Reply {
    use redis::ServerErrorKind as S;
    match e.kind() {
        redis::ErrorKind::Server(S::Moved) => match e.redirect_node() {
            Some((addr, _)) => Reply::Moved(addr.to_owned()),
            None => Reply::Fail,
        },
        redis::ErrorKind::Server(S::Ask) => match e.redirect_node() {
            Some((addr, _)) => Reply::Ask(addr.to_owned()),
            None => Reply::Fail,
        },
        redis::ErrorKind::Server(S::TryAgain) => Reply::TryAgain,
        redis::ErrorKind::Server(S::ReadOnly | S::ClusterDown | S::MasterDown) => Reply::Refresh,
        _ => Reply::Fail,
    }
}

fn to_value_error(v: Value) -> Answer {
    match v {
        Value::ServerError(e) => Err(e.into()),
        v => Ok(v),
    }
}

fn convert<T: redis::FromRedisValue>(v: Value) -> Result<T> {
    redis::from_redis_value::<T>(v).map_err(|e| Error::from(redis::RedisError::from(e)))
}

/// The slot of a command's key, for commands built by this module.
fn key_slot(key: &str) -> u16 {
    slot(key.as_bytes())
}

impl ClusterBackend {
    /// Creates the backend without connecting: the first operation reads the topology from
    /// the seeds (bounded by the command timeout), and every node is connected on first use.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] without seeds, or with a seed that is not a TCP endpoint.
    pub fn connect_lazy(options: &ClusterOptions) -> Result<Self> {
        let Some(template) = options.seeds.first().cloned() else {
            return Err(Error::config(
                "code",
                "cluster_nodes",
                "at least one seed node is needed",
            ));
        };
        // The TLS files are read and checked now (each node reads them again when it connects).
        template.tls_connector()?;
        let mut seeds = Vec::new();
        for seed in &options.seeds {
            match &seed.transport {
                crate::backend::redis::endpoint::Transport::Tcp { host, port, .. } => {
                    seeds.push(join_host_port(host, *port));
                }
                crate::backend::redis::endpoint::Transport::Unix(_) => {
                    return Err(Error::config(
                        "code",
                        "cluster_nodes",
                        "a cluster node is reached over TCP (host:port)",
                    ))
                }
            }
        }
        let auth = if template.username.is_some() || template.password.is_some() {
            "***@"
        } else {
            ""
        };
        let tls = matches!(
            template.transport,
            crate::backend::redis::endpoint::Transport::Tcp { tls: true, .. }
        );
        let scheme = if tls {
            "rediss-cluster"
        } else {
            "redis-cluster"
        };
        let display = format!("{scheme}://{auth}{}", seeds.join(","));
        Ok(ClusterBackend {
            inner: Arc::new(Inner {
                template,
                seeds,
                connections_per_node: options.connections_per_node.max(1),
                connect_timeout: options.connect_timeout,
                command_timeout: options.command_timeout,
                nodes: parking_lot::Mutex::new(HashMap::new()),
                topology: ArcSwapOption::empty(),
                refreshing: tokio::sync::Mutex::new(()),
                last_refresh: parking_lot::Mutex::new(None),
                display,
            }),
        })
    }

    /// `redis-cluster://host:port,...` (the seeds), without credentials.
    pub fn describe(&self) -> &str {
        &self.inner.display
    }

    /// The primaries of the current topology (`host:port`), reading it first if needed.
    ///
    /// # Errors
    /// When no node answers `CLUSTER SLOTS`.
    pub async fn primaries(&self) -> Result<Vec<String>> {
        let topology = self.topology().await?;
        Ok(topology.primaries.iter().map(|p| p.addr.clone()).collect())
    }

    /// Reads the topology again now (normally done on redirections and errors).
    ///
    /// # Errors
    /// When no known node answers `CLUSTER SLOTS`.
    pub async fn refresh_topology(&self) -> Result<()> {
        self.refresh(Instant::now()).await
    }

    /// How to reach the node `addr` (`host:port`): the seeds' credentials and TLS settings.
    fn endpoint_of(&self, addr: &str) -> Result<RedisEndpoint> {
        let (host, port) = crate::backend::redis::endpoint::split_host_port(addr)
            .map_err(|m| Error::new(ErrorKind::Backend, m))?;
        let mut endpoint = self.inner.template.clone();
        if let crate::backend::redis::endpoint::Transport::Tcp { tls, .. } = endpoint.transport {
            endpoint.transport =
                crate::backend::redis::endpoint::Transport::Tcp { host, port, tls };
        }
        Ok(endpoint)
    }

    fn node(&self, addr: &str) -> Result<RedisBackend> {
        let mut nodes = self.inner.nodes.lock();
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        let endpoint = self.endpoint_of(addr)?;
        let node = RedisBackend::connect_endpoint(
            &endpoint,
            self.inner.connections_per_node,
            self.inner.connect_timeout,
            self.inner.command_timeout,
        )?;
        nodes.insert(addr.to_owned(), node.clone());
        Ok(node)
    }

    async fn topology(&self) -> Result<Arc<Topology>> {
        if let Some(t) = self.inner.topology.load_full() {
            return Ok(t);
        }
        self.refresh(Instant::now()).await?;
        self.inner
            .topology
            .load_full()
            .ok_or_else(|| Error::new(ErrorKind::Connection, "no Redis Cluster node answered"))
    }

    /// Reads `CLUSTER SLOTS` from the first known node that answers, unless a refresh
    /// completed after `requested` (one refresh at a time; waiters share its result).
    async fn refresh(&self, requested: Instant) -> Result<()> {
        let _one = self.inner.refreshing.lock().await;
        if self
            .inner
            .last_refresh
            .lock()
            .is_some_and(|t| t >= requested)
        {
            return Ok(());
        }
        let mut candidates: Vec<String> = Vec::new();
        if let Some(t) = self.inner.topology.load_full() {
            candidates.extend(t.primaries.iter().map(|p| p.addr.clone()));
            candidates.extend(t.replicas.iter().cloned());
        }
        candidates.extend(self.inner.seeds.iter().cloned());
        let mut seen = HashSet::new();
        candidates.retain(|c| seen.insert(c.clone()));
        let mut last_error = None;
        for addr in candidates {
            match self.read_slots(&addr).await {
                Ok(topology) => {
                    self.inner.topology.store(Some(Arc::new(topology)));
                    *self.inner.last_refresh.lock() = Some(Instant::now());
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::new(ErrorKind::Connection, "no Redis Cluster node known")))
    }

    async fn read_slots(&self, addr: &str) -> Result<Topology> {
        let node = self.node(addr)?;
        let reply = on_node(&node, &redis::cmd("CLUSTER").arg("SLOTS").clone(), false, 0)
            .await?
            .map_err(Error::from)?;
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ranges = parse_cluster_slots(&reply, host).ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!("malformed CLUSTER SLOTS reply from {addr}"),
            )
        })?;
        if ranges.is_empty() {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("{addr} serves no slots (is the cluster created?)"),
            ));
        }
        let mut first: BTreeMap<String, u16> = BTreeMap::new();
        let mut replicas = Vec::new();
        for r in &ranges {
            let f = first.entry(r.primary.clone()).or_insert(r.start);
            *f = (*f).min(r.start);
            replicas.extend(r.replicas.iter().cloned());
        }
        let mut order: Vec<(u16, String)> = first.into_iter().map(|(a, f)| (f, a)).collect();
        order.sort();
        let mut primaries = Vec::with_capacity(order.len());
        let mut index = HashMap::new();
        for (i, (first_slot, addr)) in order.into_iter().enumerate() {
            index.insert(addr.clone(), u16::try_from(i).unwrap_or(UNASSIGNED));
            primaries.push(Primary {
                node: self.node(&addr)?,
                addr,
                first_slot,
            });
        }
        let mut owner = vec![UNASSIGNED; SLOTS];
        for r in &ranges {
            let i = index.get(&r.primary).copied().unwrap_or(UNASSIGNED);
            for s in r.start..=r.end {
                if let Some(o) = owner.get_mut(usize::from(s)) {
                    *o = i;
                }
            }
        }
        Ok(Topology {
            owner,
            primaries,
            replicas,
        })
    }

    /// Refreshes in the background (after a `MOVED`), at most every [`MIN_REFRESH_INTERVAL`].
    fn refresh_soon(&self) {
        let recent = self
            .inner
            .last_refresh
            .lock()
            .is_some_and(|t| t.elapsed() < MIN_REFRESH_INTERVAL);
        if recent || self.inner.refreshing.try_lock().is_err() {
            return;
        }
        let this = self.clone();
        let requested = Instant::now();
        tokio::spawn(async move {
            let _ = this.refresh(requested).await;
        });
    }

    /// Bounds a whole operation (see the module docs).
    async fn bounded<T>(
        &self,
        what: &'static str,
        op: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let limit = self.inner.command_timeout.saturating_mul(2);
        match tokio::time::timeout(limit, op).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(what, limit)),
        }
    }

    /// The primaries of the topology known now (`host:port` and how to reach each), without
    /// reading it: `None` before the first read.
    pub(crate) fn primaries_now(&self) -> Option<Vec<(String, RedisEndpoint)>> {
        let topology = self.inner.topology.load_full()?;
        Some(
            topology
                .primaries
                .iter()
                .filter_map(|p| Some((p.addr.clone(), self.endpoint_of(&p.addr).ok()?)))
                .collect(),
        )
    }

    /// Runs per-slot command groups: `groups` maps a slot to its items; `build` gives the
    /// commands of one group (one for the whole group, or one per item in the items' order);
    /// `parse` turns their replies into `(item, result)` pairs. One pipeline per primary,
    /// primaries in parallel; redirected groups resent alone (only their redirected commands,
    /// item by item while the slot is being migrated); the groups of a node whose connection
    /// failed regrouped once after a refresh.
    async fn per_slot<R, B, P>(
        &self,
        groups: BTreeMap<u16, Vec<usize>>,
        payload: usize,
        build: B,
        parse: P,
    ) -> Result<Vec<(usize, R)>>
    where
        B: Fn(&[usize]) -> Vec<Cmd> + Sync,
        P: Fn(&[usize], Vec<Value>) -> Result<Vec<(usize, R)>> + Sync,
        R: Send,
    {
        let mut out = Vec::new();
        let mut pending = groups;
        for round in 0..2 {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                self.refresh(Instant::now()).await?;
            }
            let topology = self.topology().await?;
            let mut by_node: BTreeMap<u16, Vec<(u16, Vec<usize>)>> = BTreeMap::new();
            for (slot, items) in std::mem::take(&mut pending) {
                let owner = topology
                    .owner
                    .get(usize::from(slot))
                    .copied()
                    .unwrap_or(UNASSIGNED);
                by_node.entry(owner).or_default().push((slot, items));
            }
            let runs = by_node.into_iter().map(|(owner, groups)| {
                let topology = &topology;
                let build = &build;
                async move {
                    let Some(primary) = topology.primaries.get(usize::from(owner)) else {
                        // Unassigned slots: each group goes through the routed path.
                        return (groups, None);
                    };
                    let mut pipe = redis::pipe();
                    pipe.ignore_errors();
                    for (_, items) in &groups {
                        for cmd in build(items) {
                            pipe.add_command(cmd);
                        }
                    }
                    let result = primary
                        .node
                        .exec("redis cluster pipeline", payload, |mut conn| {
                            let pipe = &pipe;
                            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
                        })
                        .await;
                    (groups, Some(result))
                }
            });
            // To resend: the slot, its items, whether the slot is being migrated.
            let mut redirected: Vec<(u16, Vec<usize>, bool)> = Vec::new();
            for (groups, result) in join_all(runs).await {
                let replies = match result {
                    None => {
                        redirected.extend(groups.into_iter().map(|(s, items)| (s, items, false)));
                        continue;
                    }
                    Some(Err(e)) if e.kind() == ErrorKind::Connection && round == 0 => {
                        pending.extend(groups);
                        continue;
                    }
                    Some(Err(e)) => return Err(e),
                    Some(Ok(replies)) => replies,
                };
                let mut replies = replies.into_iter();
                for (slot, items) in groups {
                    let n = build(&items).len();
                    let mine: Vec<Value> = replies.by_ref().take(n).collect();
                    if mine.len() != n {
                        return Err(Error::new(
                            ErrorKind::Backend,
                            "a Redis Cluster pipeline returned too few replies",
                        ));
                    }
                    let mut again = vec![false; n];
                    let mut migrating = false;
                    for (j, v) in mine.iter().enumerate() {
                        if let Value::ServerError(e) = v {
                            let e: redis::RedisError = e.clone().into();
                            match sort_reply(&e) {
                                Reply::Fail => return Err(Error::from(e)),
                                reply => {
                                    again[j] = true;
                                    migrating |= matches!(reply, Reply::Ask(_) | Reply::TryAgain);
                                }
                            }
                        }
                    }
                    if !again.contains(&true) {
                        out.extend(parse(&items, mine)?);
                    } else if n > 1 && n == items.len() {
                        // One command per item (`SET`): keep what ran, resend only the rest
                        // (a `SET` sent twice could undo a later write of another client).
                        let (rest, ran): (Vec<_>, Vec<_>) =
                            items.iter().zip(mine).zip(again).partition(|(_, a)| *a);
                        let (ran, replies): (Vec<usize>, Vec<Value>) =
                            ran.into_iter().map(|((&i, v), _)| (i, v)).unzip();
                        out.extend(parse(&ran, replies)?);
                        let rest = rest.into_iter().map(|((&i, _), _)| i).collect();
                        redirected.push((slot, rest, migrating));
                    } else {
                        redirected.push((slot, items, migrating));
                    }
                }
            }
            // Redirected slots, one routed command at a time per slot, slots in parallel. A
            // slot being migrated (`ASK`, `TRYAGAIN`) answers a multi-key command with
            // `TRYAGAIN` as long as its keys are split between the two nodes or some do not
            // exist, so there every item goes alone, in the caller's order.
            let resends = redirected.into_iter().map(|(slot, items, migrating)| {
                let build = &build;
                let parse = &parse;
                async move {
                    let mut found = Vec::new();
                    for part in items.chunks(if migrating { 1 } else { items.len().max(1) }) {
                        let mut replies = Vec::new();
                        for cmd in build(part) {
                            replies.push(self.route_unbounded(slot, &cmd, payload).await?);
                        }
                        found.extend(parse(part, replies)?);
                    }
                    Ok::<_, Error>(found)
                }
            });
            for r in join_all(resends).await {
                out.extend(r?);
            }
        }
        if !pending.is_empty() {
            return Err(Error::new(
                ErrorKind::Connection,
                "Redis Cluster nodes unreachable after a topology refresh",
            ));
        }
        Ok(out)
    }

    /// Scans one primary (identified by its first slot) to completion, calling `page` for
    /// each step; restarted from its current owner (after a refresh) when its connection fails,
    /// at most three times.
    async fn scan_primary<F, Fut>(&self, first_slot: u16, pattern: &str, mut page: F) -> Result<()>
    where
        F: FnMut(Vec<Vec<u8>>) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let mut attempts = 0;
        'restart: loop {
            attempts += 1;
            let topology = self.topology().await?;
            let Some(owner) = topology.owner(first_slot) else {
                return Ok(());
            };
            let node = owner.node.clone();
            let mut cursor: u64 = 0;
            loop {
                let cmd = scan_cmd(cursor, pattern, SCAN_BATCH);
                let answer = on_node(&node, &cmd, false, 0).await;
                let value = match answer {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => return Err(Error::from(e)),
                    Err(e) if e.kind() == ErrorKind::Connection && attempts < 3 => {
                        self.refresh(Instant::now()).await?;
                        continue 'restart;
                    }
                    Err(e) => return Err(e),
                };
                let (next, keys): (u64, Vec<Vec<u8>>) = convert(value)?;
                page(keys).await?;
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        }
    }

    async fn first_slots(&self) -> Result<Vec<u16>> {
        Ok(self
            .topology()
            .await?
            .primaries
            .iter()
            .map(|p| p.first_slot)
            .collect())
    }

    async fn delete_bytes(&self, keys: Vec<Vec<u8>>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            groups.entry(slot(k)).or_default().push(i);
        }
        let keys = &keys;
        let counts = self
            .per_slot(
                groups,
                0,
                |items| {
                    let mut cmd = redis::cmd("UNLINK");
                    for &i in items {
                        cmd.arg(&keys[i]);
                    }
                    vec![cmd]
                },
                |items, replies| {
                    let mut n = 0u64;
                    for r in replies {
                        n += convert::<u64>(r)?;
                    }
                    Ok(vec![(items[0], n)])
                },
            )
            .await?;
        Ok(counts.into_iter().map(|(_, n)| n).sum())
    }
}

/// One command on one node (`ASKING` first when `asking`), bounded by the node's own rules.
async fn on_node(node: &RedisBackend, cmd: &Cmd, asking: bool, payload: usize) -> Result<Answer> {
    if asking {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("ASKING");
        pipe.add_command(cmd.clone());
        let replies: Vec<Value> = node
            .exec("redis cluster command", payload, |mut conn| {
                let pipe = &pipe;
                async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
            })
            .await?;
        return Ok(replies
            .into_iter()
            .last()
            .map_or(Ok(Value::Nil), to_value_error));
    }
    node.exec("redis cluster command", payload, |mut conn| async move {
        match cmd.query_async::<Value>(&mut conn).await {
            Err(e) if is_reply(&e) => Ok(Err(e)),
            other => other.map(Ok),
        }
    })
    .await
}
