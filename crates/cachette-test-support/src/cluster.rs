//! [`RedisCluster`]: a real local Redis Cluster made of [`RedisServer`]s.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{SpawnError, SpawnErrorKind};
use crate::server::RedisServer;
use crate::tls::{TlsFiles, TlsSettings};

/// The cluster node timeout given to every node (ms): failures are detected, and replicas
/// promoted, about this long after a primary dies.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 2000;

/// How long [`RedisCluster::spawn`] waits for `cluster_state:ok` on every node.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How many times a node is started again when its port (or its bus port) was taken.
const NODE_ATTEMPTS: usize = 4;

/// A local Redis Cluster on `127.0.0.1`: `primaries` primaries and `replicas` replicas of each,
/// every node a [`RedisServer`] (its own process, port below 55535 so that the bus port
/// `port + 10000` exists, its own temporary directory holding its `nodes.conf`), started with
/// `--cluster-enabled yes --cluster-node-timeout 2000`, joined with
/// `redis-cli --cluster create ... --cluster-yes`, and returned once every node reports
/// `cluster_state:ok` with all 16384 slots assigned. Dropping it kills every node.
///
/// Each node can be killed, restarted (same port, same `nodes.conf`: it rejoins the cluster,
/// without data) or paused through [`RedisCluster::node`].
///
/// ```no_run
/// use cachette_test_support::RedisCluster;
///
/// let cluster = RedisCluster::new(); // 3 primaries
/// let seeds = cluster.seeds_csv(); // "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
/// assert_eq!(cluster.cli(0, ["CLUSTER", "INFO"]).contains("cluster_state:ok"), true);
/// # let _ = seeds;
/// ```
pub struct RedisCluster {
    // Declared first so the nodes are gone before the certificates' directory is removed.
    nodes: Vec<RedisServer>,
    replicas: usize,
    /// The certificates every node of a TLS cluster shares, and their directory.
    tls: Option<(TlsFiles, tempfile::TempDir)>,
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each and waits until the cluster
    /// is up (see the type's docs).
    ///
    /// # Errors
    ///
    /// A node cannot start (see [`RedisServer::spawn`]), `redis-cli --cluster create` fails
    /// ([`SpawnErrorKind::ExitedEarly`], with its output), or the cluster is not `ok` on every
    /// node within 20 s ([`SpawnErrorKind::Timeout`], with the first node's log).
    pub fn spawn(primaries: usize, replicas: usize) -> Result<Self, SpawnError> {
        Self::spawn_with(primaries, replicas, false)
    }

    /// [`spawn`](Self::spawn), every node serving TLS only to clients: each node has a TLS
    /// port (`--tls-port`, what [`seeds`](Self::seeds) names, and what `CLUSTER SLOTS` and
    /// `MOVED` report to a TLS client), the cluster bus and replication run in TLS
    /// (`--tls-cluster yes --tls-replication yes`), and one CA signed every certificate
    /// ([`tls_files`](Self::tls_files): its `ca_file` is what a client trusts; certificates
    /// for `localhost` and `127.0.0.1`). The cluster is created with
    /// `redis-cli --tls --cacert ... --cluster create` on the TLS ports. Each node also keeps
    /// a plain control port ([`RedisServer::port`]) for readiness checks and
    /// [`cli`](Self::cli); no client of the cluster is ever sent there.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn), and when the certificates cannot be written.
    pub fn spawn_tls(primaries: usize, replicas: usize) -> Result<Self, SpawnError> {
        Self::spawn_with(primaries, replicas, true)
    }

    /// Three primaries serving TLS ([`spawn_tls`](Self::spawn_tls)), no replicas; panics
    /// with the error (for tests).
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started.
    #[must_use]
    pub fn new_tls() -> Self {
        match Self::spawn_tls(3, 0) {
            Ok(cluster) => cluster,
            Err(e) => panic!("cachette-test-support: could not start a TLS Redis Cluster: {e}"),
        }
    }

    fn spawn_with(primaries: usize, replicas: usize, tls: bool) -> Result<Self, SpawnError> {
        if primaries < 3 {
            return Err(SpawnError::new(
                SpawnErrorKind::InvalidConfig,
                "a Redis Cluster needs at least 3 primaries",
            ));
        }
        let tls = if tls {
            let dir = tempfile::Builder::new()
                .prefix("cachette-redis-cluster-tls-")
                .tempdir()
                .map_err(|e| SpawnError::io("creating a temporary directory", e))?;
            let files = TlsFiles::generate(dir.path(), &TlsSettings::default())?;
            Some((files, dir))
        } else {
            None
        };
        let count = primaries * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(spawn_node(tls.as_ref().map(|(files, _)| files))?);
        }
        let cluster = RedisCluster {
            nodes,
            replicas,
            tls,
        };
        let mut args: Vec<std::ffi::OsString> = cluster
            .tls_files()
            .map(TlsFiles::cli_args)
            .unwrap_or_default();
        args.extend(["--cluster".into(), "create".into()]);
        args.extend(cluster.seeds().into_iter().map(Into::into));
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string().into(),
            "--cluster-yes".into(),
        ]);
        let out = cluster.nodes[0]
            .cli_output(&args)
            .map_err(|e| SpawnError::io("running redis-cli --cluster create", e))?;
        if !out.status.success() {
            return Err(SpawnError::new(
                SpawnErrorKind::ExitedEarly,
                format!(
                    "redis-cli --cluster create failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        cluster.wait_ok(READY_TIMEOUT)?;
        Ok(cluster)
    }

    /// The environment variable naming a running 3-primary cluster (its seeds, comma
    /// separated) that [`shared`](Self::shared) attaches to instead of starting one.
    pub const SHARED_ENV: &'static str = "CACHETTE_TEST_CLUSTER";

    /// The cluster that tests isolated by key prefix share: the one named by
    /// [`SHARED_ENV`](Self::SHARED_ENV) when set (`scripts/test` starts one for the whole run
    /// with the `cachette-test-cluster` binary of this crate, since a test runner such as
    /// nextest runs each test in a process of its own), else a new 3-primary cluster. An
    /// attached cluster's nodes belong to the process that started them: tests must not kill,
    /// pause or reconfigure them (use a cluster of their own for that).
    ///
    /// # Panics
    ///
    /// If the named cluster does not answer as a healthy cluster, or one cannot be started.
    #[must_use]
    pub fn shared() -> Self {
        match std::env::var(Self::SHARED_ENV) {
            Ok(seeds) if !seeds.trim().is_empty() => match Self::attach(&seeds) {
                Ok(cluster) => cluster,
                Err(e) => panic!(
                    "cachette-test-support: {}={seeds} is not a usable cluster: {e}",
                    Self::SHARED_ENV
                ),
            },
            _ => Self::new(),
        }
    }

    /// Attaches to a running cluster whose nodes are the comma-separated loopback seeds
    /// `127.0.0.1:PORT,...` (every node of it), after checking that it is `ok`.
    ///
    /// # Errors
    ///
    /// A seed that is not `127.0.0.1:PORT` ([`SpawnErrorKind::InvalidConfig`]), no
    /// `redis-server` binary (see [`RedisServer::attach`]), or a cluster that is not `ok`
    /// within 20 s ([`SpawnErrorKind::Timeout`]).
    pub fn attach(seeds: &str) -> Result<Self, SpawnError> {
        let mut nodes = Vec::new();
        for seed in seeds.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let port = seed
                .strip_prefix("127.0.0.1:")
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| {
                    SpawnError::new(
                        SpawnErrorKind::InvalidConfig,
                        format!("cluster seed {seed:?} is not 127.0.0.1:PORT (loopback only)"),
                    )
                })?;
            nodes.push(RedisServer::attach(port)?);
        }
        if nodes.len() < 3 {
            return Err(SpawnError::new(
                SpawnErrorKind::InvalidConfig,
                "a Redis Cluster needs at least 3 nodes",
            ));
        }
        let cluster = RedisCluster {
            nodes,
            replicas: 0,
            tls: None,
        };
        cluster.wait_ok(READY_TIMEOUT)?;
        Ok(cluster)
    }

    /// Three primaries, no replicas; panics with the error (for tests).
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started.
    #[must_use]
    #[allow(clippy::new_without_default)] // `Default` spawning processes would surprise.
    pub fn new() -> Self {
        match Self::spawn(3, 0) {
            Ok(cluster) => cluster,
            Err(e) => panic!("cachette-test-support: could not start a Redis Cluster: {e}"),
        }
    }

    /// Three primaries with one replica each; panics with the error (for tests).
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started.
    #[must_use]
    pub fn with_replicas() -> Self {
        match Self::spawn(3, 1) {
            Ok(cluster) => cluster,
            Err(e) => panic!("cachette-test-support: could not start a Redis Cluster: {e}"),
        }
    }

    /// Every node, in the order given to `redis-cli --cluster create` (primaries first, as that
    /// command assigns them; [`primaries`](Self::primaries) tells who is primary now).
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i` (see [`nodes`](Self::nodes)).
    ///
    /// # Panics
    ///
    /// If there is no node `i`.
    #[must_use]
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// Replicas per primary this cluster was created with.
    #[must_use]
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// `"127.0.0.1:PORT"` of every node: the port clients use (the TLS port on a TLS cluster).
    #[must_use]
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.tls_port().unwrap_or_else(|| n.port())))
            .collect()
    }

    /// The certificate files every node shares, on a cluster from
    /// [`spawn_tls`](Self::spawn_tls); else `None`.
    #[must_use]
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref().map(|(files, _)| files)
    }

    /// [`seeds`](Self::seeds) joined with commas (the `REDIS_CLUSTER_NODES` form).
    #[must_use]
    pub fn seeds_csv(&self) -> String {
        self.seeds().join(",")
    }

    /// `redis-cli` on node `i` (see [`RedisServer::cli`]).
    ///
    /// # Panics
    ///
    /// As [`RedisServer::cli`].
    pub fn cli<I>(&self, i: usize, args: I) -> String
    where
        I: IntoIterator,
        I::Item: AsRef<std::ffi::OsStr>,
    {
        self.nodes[i].cli(args)
    }

    /// Indices of the running nodes that are primaries now (`ROLE` says `master`).
    #[must_use]
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.role(i).as_deref() == Some("master"))
            .collect()
    }

    /// The index of the running node that owns `slot` now, from that node's own view.
    #[must_use]
    pub fn owner_of_slot(&self, slot: u16) -> Option<usize> {
        self.primaries().into_iter().find(|&i| self.owns(i, slot))
    }

    /// Node `i`'s cluster id (`CLUSTER MYID`).
    ///
    /// # Panics
    ///
    /// If the node does not answer.
    #[must_use]
    pub fn node_id(&self, i: usize) -> String {
        self.cli(i, ["CLUSTER", "MYID"])
    }

    /// Starts moving `slot` from node `from` (its owner) to node `to`, the way
    /// `redis-cli --cluster reshard` does: `CLUSTER SETSLOT slot IMPORTING` on `to`, then
    /// `MIGRATING` on `from`. Until [`finish_migration`](Self::finish_migration), `from`
    /// answers `ASK` for the slot's keys it does not hold; move them with
    /// [`migrate_keys`](Self::migrate_keys).
    ///
    /// # Panics
    ///
    /// If a node does not answer `OK`.
    pub fn begin_migration(&self, slot: u16, from: usize, to: usize) {
        let s = slot.to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let importing = self.cli(to, ["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]);
        assert_eq!(importing, "OK", "SETSLOT {s} IMPORTING on node {to}");
        let migrating = self.cli(from, ["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]);
        assert_eq!(migrating, "OK", "SETSLOT {s} MIGRATING on node {from}");
    }

    /// `MIGRATE`s `keys` (all of one slot being migrated) from node `from` to node `to`, over
    /// the port clients use (the TLS port of a TLS cluster, whose nodes migrate in TLS).
    ///
    /// # Panics
    ///
    /// If `MIGRATE` does not answer `OK` (or `NOKEY`, when none of the keys exists).
    pub fn migrate_keys<K: AsRef<str>>(&self, from: usize, to: usize, keys: &[K]) {
        let node = &self.nodes[to];
        let port = node.tls_port().unwrap_or_else(|| node.port()).to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys.iter().map(AsRef::as_ref));
        let out = self.cli(from, args);
        assert!(
            out == "OK" || out == "NOKEY",
            "MIGRATE from node {from}: {out}"
        );
    }

    /// Ends a [`begin_migration`](Self::begin_migration): `CLUSTER SETSLOT slot NODE <to>` on
    /// `to`, then `from`, then every other node (the order `redis-cli` uses). Every node
    /// then answers `MOVED` to `to` for the slot.
    ///
    /// # Panics
    ///
    /// If a running node does not answer `OK`.
    pub fn finish_migration(&self, slot: u16, from: usize, to: usize) {
        let s = slot.to_string();
        let to_id = self.node_id(to);
        let others = (0..self.nodes.len()).filter(|&i| i != from && i != to);
        for i in [to, from].into_iter().chain(others) {
            if !self.nodes[i].is_running() {
                continue;
            }
            let out = self.cli(i, ["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
            assert_eq!(out, "OK", "SETSLOT {s} NODE on node {i}");
        }
    }

    /// Waits until every running node reports `cluster_state:ok` and `cluster_slots_ok:16384`
    /// and knows every other node.
    ///
    /// # Errors
    ///
    /// [`SpawnErrorKind::Timeout`] with the last `CLUSTER INFO` seen.
    pub fn wait_ok(&self, timeout: Duration) -> Result<(), SpawnError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let mut all_ok = true;
            for (i, node) in self.nodes.iter().enumerate() {
                if !node.is_running() {
                    continue;
                }
                let info = self.cli_ok(i, ["CLUSTER", "INFO"]).unwrap_or_default();
                let known = format!("cluster_known_nodes:{}", self.nodes.len());
                // A replica counts once its first sync is done (it can then take over).
                let synced = self.cli_ok(i, ["INFO", "replication"]).is_some_and(|r| {
                    r.contains("role:master") || r.contains("master_link_status:up")
                });
                if !(info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&known)
                    && synced)
                {
                    all_ok = false;
                    last = format!("node {i} (port {}): {info}", node.port());
                    break;
                }
            }
            if all_ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SpawnError::new(
                    SpawnErrorKind::Timeout,
                    format!("the cluster was not ok within {timeout:?}; last: {last}"),
                )
                .with_log(self.nodes[0].log()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every slot is owned by a running primary (after a kill, a replica has
    /// been promoted) and the running nodes report `cluster_state:ok`, up to `timeout`;
    /// returns whether they do.
    #[must_use]
    pub fn wait_recovered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let owned: usize = self
                .primaries()
                .into_iter()
                .map(|i| self.own_slot_count(i))
                .sum();
            let ok = owned == 16384
                && (0..self.nodes.len())
                    .filter(|&i| self.nodes[i].is_running())
                    .all(|i| {
                        self.cli_ok(i, ["CLUSTER", "INFO"]).is_some_and(|info| {
                            info.contains("cluster_state:ok")
                                && info.contains("cluster_slots_ok:16384")
                        })
                    });
            if ok || Instant::now() >= deadline {
                return ok;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn role(&self, i: usize) -> Option<String> {
        if !self.nodes[i].is_running() {
            return None;
        }
        let out = self.cli_ok(i, ["ROLE"])?;
        out.lines().next().map(str::to_owned)
    }

    fn owns(&self, i: usize, slot: u16) -> bool {
        self.own_ranges(i)
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&slot))
    }

    fn own_slot_count(&self, i: usize) -> usize {
        self.own_ranges(i)
            .iter()
            .map(|(a, b)| usize::from(b.saturating_sub(*a)) + 1)
            .sum()
    }

    /// The slot ranges node `i` says it owns (its `myself` line of `CLUSTER NODES`; empty when
    /// it does not answer).
    #[must_use]
    pub fn own_ranges(&self, i: usize) -> Vec<(u16, u16)> {
        let Some(out) = self.cli_ok(i, ["CLUSTER", "NODES"]) else {
            return Vec::new();
        };
        let Some(line) = out
            .lines()
            .find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself")))
        else {
            return Vec::new();
        };
        line.split(' ')
            .skip(8)
            .filter(|range| !range.starts_with('['))
            .filter_map(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?))
            })
            .collect()
    }

    /// `redis-cli` output when it ran and succeeded.
    fn cli_ok<I>(&self, i: usize, args: I) -> Option<String>
    where
        I: IntoIterator,
        I::Item: AsRef<std::ffi::OsStr>,
    {
        let out = self.nodes[i].cli_output(args).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }
}

/// One node (serving `tls` if given), retried on a fresh port when its port or its bus port
/// was taken.
fn spawn_node(tls: Option<&TlsFiles>) -> Result<RedisServer, SpawnError> {
    let mut last = None;
    for _ in 0..NODE_ATTEMPTS {
        let mut builder = RedisServer::builder();
        if let Some(files) = tls {
            builder = builder
                .tls_shared_files(files.clone())
                .args(files.cluster_node_args());
        }
        let spawned = builder
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &CLUSTER_NODE_TIMEOUT_MS.to_string(),
                // A node whose replica is gone still serves its slots.
                "--cluster-require-full-coverage",
                "no",
                // Replicas sync at once (the default waits 5 s for more replicas), and one
                // always takes over a failed primary, however old its data.
                "--repl-diskless-sync-delay",
                "0",
                "--cluster-replica-validity-factor",
                "0",
            ])
            .spawn();
        match spawned {
            Ok(node) => return Ok(node),
            Err(e)
                if matches!(
                    e.kind(),
                    SpawnErrorKind::PortInUse | SpawnErrorKind::ExitedEarly
                ) =>
            {
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| SpawnError::new(SpawnErrorKind::PortInUse, "no node started")))
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("nodes", &self.seeds())
            .field("replicas", &self.replicas)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}
