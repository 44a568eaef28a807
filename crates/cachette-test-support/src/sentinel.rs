//! [`RedisSentinel`]: a real primary, one replica and three Redis Sentinel processes.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{SpawnError, SpawnErrorKind};
use crate::server::RedisServer;

/// How long [`RedisSentinel::spawn`] waits for the deployment to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The sentinels' `down-after-milliseconds`: a primary that does not answer for this long is
/// subjectively down, and a failover starts once two sentinels agree.
pub const SENTINEL_DOWN_AFTER_MS: u64 = 1000;
/// The sentinels' `failover-timeout` (ms).
pub const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 5000;

/// A local Redis Sentinel deployment on `127.0.0.1`: a primary, one replica of it
/// (`--replicaof`, diskless sync without delay) and three sentinels (`redis-server CONF
/// --sentinel`, each with its own config file in its temporary directory) monitoring the
/// primary as [`MASTER`](Self::MASTER) with a quorum of 2, `down-after-milliseconds`
/// [`SENTINEL_DOWN_AFTER_MS`] and `failover-timeout` [`SENTINEL_FAILOVER_TIMEOUT_MS`].
/// Every process is a [`RedisServer`] on a free port (killed with the test process, see the
/// crate docs). [`spawn`](Self::spawn) returns once every sentinel knows the primary, the
/// replica and the two other sentinels, and the replica is in sync.
///
/// ```no_run
/// use cachette_test_support::RedisSentinel;
///
/// let deployment = RedisSentinel::new();
/// let sentinels = deployment.sentinels_csv(); // "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
/// let before = deployment.primary_port().unwrap();
/// let after = deployment.failover().unwrap(); // SENTINEL FAILOVER, then wait for the switch
/// assert_ne!(before, after);
/// # let _ = sentinels;
/// ```
pub struct RedisSentinel {
    /// The data nodes: `[0]` the first primary, `[1]` its replica (roles change at failovers).
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// The master name the sentinels monitor.
    pub const MASTER: &'static str = "cachette-primary";

    /// Starts the deployment and waits until it is ready (see the type's docs).
    ///
    /// # Errors
    ///
    /// A process cannot start (see [`RedisServer::spawn`]), or the deployment is not ready
    /// within 30 s ([`SpawnErrorKind::Timeout`], with the first sentinel's log).
    pub fn spawn() -> Result<Self, SpawnError> {
        let primary = RedisServer::builder()
            .arg("--repl-diskless-sync-delay")
            .arg("0")
            .spawn()?;
        let replica = RedisServer::builder()
            .args(["--replicaof", "127.0.0.1", &primary.port().to_string()])
            .args([
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .spawn()?;
        let mut sentinels = Vec::with_capacity(3);
        for _ in 0..3 {
            sentinels.push(
                RedisServer::builder()
                    .config_line(format!(
                        "sentinel monitor {} 127.0.0.1 {} 2",
                        Self::MASTER,
                        primary.port()
                    ))
                    .config_line(format!(
                        "sentinel down-after-milliseconds {} {SENTINEL_DOWN_AFTER_MS}",
                        Self::MASTER
                    ))
                    .config_line(format!(
                        "sentinel failover-timeout {} {SENTINEL_FAILOVER_TIMEOUT_MS}",
                        Self::MASTER
                    ))
                    .config_line(format!("sentinel parallel-syncs {} 1", Self::MASTER))
                    .arg("--sentinel")
                    .spawn()?,
            );
        }
        let deployment = RedisSentinel {
            nodes: vec![primary, replica],
            sentinels,
        };
        deployment.wait_ready(READY_TIMEOUT)?;
        Ok(deployment)
    }

    /// [`spawn`](Self::spawn), panicking with the error and the log: for tests.
    ///
    /// # Panics
    ///
    /// If the deployment cannot be started.
    #[must_use]
    #[allow(clippy::new_without_default)] // `Default` spawning processes would surprise.
    pub fn new() -> Self {
        match Self::spawn() {
            Ok(deployment) => deployment,
            Err(e) => panic!("cachette-test-support: could not start Redis Sentinel: {e}"),
        }
    }

    /// The master name the sentinels monitor ([`MASTER`](Self::MASTER)).
    #[must_use]
    pub fn master_name(&self) -> &'static str {
        Self::MASTER
    }

    /// The sentinels' addresses, `127.0.0.1:PORT` each.
    #[must_use]
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect()
    }

    /// [`sentinel_addrs`](Self::sentinel_addrs), comma-separated (for `REDIS_SENTINELS`).
    #[must_use]
    pub fn sentinels_csv(&self) -> String {
        self.sentinel_addrs().join(",")
    }

    /// Sentinel `i` (0..3), to kill, restart or query it.
    ///
    /// # Panics
    ///
    /// If `i >= 3`.
    #[must_use]
    pub fn sentinel(&self, i: usize) -> &RedisServer {
        &self.sentinels[i]
    }

    /// The data nodes: `[0]` started as the primary, `[1]` as its replica.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Data node `i` (0 or 1).
    ///
    /// # Panics
    ///
    /// If `i >= 2`.
    #[must_use]
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// The primary's port as the first answering (running, not stopped) sentinel reports it
    /// (`SENTINEL get-master-addr-by-name`), or `None` when none answers.
    #[must_use]
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels
            .iter()
            .filter(|s| answers(s))
            .find_map(sentinel_primary)
    }

    /// The index in [`nodes`](Self::nodes) of the node the sentinels name as primary.
    #[must_use]
    pub fn primary_index(&self) -> Option<usize> {
        let port = self.primary_port()?;
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// The data node the sentinels name as primary.
    #[must_use]
    pub fn primary(&self) -> Option<&RedisServer> {
        self.primary_index().map(|i| &self.nodes[i])
    }

    /// The other data node (the replica, or the demoted or dead former primary).
    #[must_use]
    pub fn replica(&self) -> Option<&RedisServer> {
        self.primary_index().map(|i| &self.nodes[1 - i])
    }

    /// The first line of `ROLE` on data node `i` (`master`, `slave`), `None` when it is down.
    #[must_use]
    pub fn role(&self, i: usize) -> Option<String> {
        let node = &self.nodes[i];
        if !node.is_running() {
            return None;
        }
        let out = node.cli_output(["ROLE"]).ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    }

    /// Runs `SENTINEL FAILOVER` on an answering sentinel and waits (up to 30 s) until every
    /// answering sentinel names the other node as primary and that node's `ROLE` is `master`;
    /// returns the new primary's port.
    ///
    /// # Errors
    ///
    /// [`SpawnErrorKind::Timeout`] when the failover did not complete in time, or
    /// [`SpawnErrorKind::ExitedEarly`] when no sentinel accepted it (with its answer).
    pub fn failover(&self) -> Result<u16, SpawnError> {
        let before = self.primary_port();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let sentinel = self
                .sentinels
                .iter()
                .find(|s| answers(s))
                .ok_or_else(|| SpawnError::new(SpawnErrorKind::ExitedEarly, "no sentinel"))?;
            let answer = sentinel
                .cli_output(["SENTINEL", "FAILOVER", Self::MASTER])
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            if answer == "OK" {
                break;
            }
            // NOGOODSLAVE while the sentinels' view of the replica is not fresh yet.
            if Instant::now() >= deadline {
                return Err(SpawnError::new(
                    SpawnErrorKind::ExitedEarly,
                    format!("SENTINEL FAILOVER answered {answer:?}"),
                )
                .with_log(sentinel.log()));
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.wait_primary_change(before, deadline.saturating_duration_since(Instant::now()))
    }

    /// Waits until every answering sentinel names a primary other than `from` (any primary when
    /// `None`) and that node answers `ROLE` with `master`; returns its port.
    ///
    /// # Errors
    ///
    /// [`SpawnErrorKind::Timeout`] with what the sentinels last said.
    pub fn wait_primary_change(
        &self,
        from: Option<u16>,
        timeout: Duration,
    ) -> Result<u16, SpawnError> {
        let deadline = Instant::now() + timeout;
        loop {
            let answers: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .filter(|s| answers(s))
                .map(sentinel_primary)
                .collect();
            if let Some(Some(port)) = answers.first() {
                let agreed = answers.iter().all(|a| a == &Some(*port));
                let index = self.nodes.iter().position(|n| n.port() == *port);
                if agreed
                    && Some(*port) != from
                    && index.is_some_and(|i| self.role(i).as_deref() == Some("master"))
                {
                    return Ok(*port);
                }
            }
            if Instant::now() >= deadline {
                return Err(SpawnError::new(
                    SpawnErrorKind::Timeout,
                    format!(
                        "the sentinels did not switch from {from:?} within {timeout:?}; \
                         they say {answers:?}"
                    ),
                )
                .with_log(self.sentinels[0].log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every answering sentinel knows the primary, a healthy replica and the two
    /// other sentinels, and the replica is in sync with the primary.
    ///
    /// # Errors
    ///
    /// [`SpawnErrorKind::Timeout`] with the last state seen and the first sentinel's log.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), SpawnError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.readiness() {
                Ok(()) => return Ok(()),
                Err(state) => state,
            };
            if Instant::now() >= deadline {
                return Err(SpawnError::new(
                    SpawnErrorKind::Timeout,
                    format!("Redis Sentinel was not ready within {timeout:?}; last: {last}"),
                )
                .with_log(self.sentinels[0].log()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `Ok` when ready, else what is missing.
    fn readiness(&self) -> Result<(), String> {
        let primary = self.primary_port().ok_or("no sentinel names a primary")?;
        let replica = self
            .nodes
            .iter()
            .find(|n| n.port() != primary)
            .ok_or("no replica")?;
        let synced = replica
            .cli_output(["INFO", "replication"])
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("master_link_status:up"));
        if !synced {
            return Err(format!("replica {} not in sync", replica.port()));
        }
        for s in self.sentinels.iter().filter(|s| answers(s)) {
            let master = fields(&cli_lines(s, &["SENTINEL", "MASTER", Self::MASTER]));
            let get = |k: &str| master.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
            if get("flags") != Some("master")
                || get("num-slaves") != Some("1")
                || get("num-other-sentinels") != Some("2")
                || get("port") != Some(&primary.to_string())
            {
                return Err(format!("sentinel {}: {master:?}", s.port()));
            }
            let replicas = fields(&cli_lines(s, &["SENTINEL", "REPLICAS", Self::MASTER]));
            let flags = replicas.iter().find(|(f, _)| f == "flags");
            let link = replicas.iter().find(|(f, _)| f == "master-link-status");
            if flags.map(|(_, v)| v.as_str()) != Some("slave")
                || link.map(|(_, v)| v.as_str()) != Some("ok")
            {
                return Err(format!("sentinel {} replica: {replicas:?}", s.port()));
            }
        }
        Ok(())
    }
}

/// Whether sentinel `s` can answer: running and not stopped (`stop_process`).
fn answers(s: &RedisServer) -> bool {
    s.is_running() && !s.is_stopped()
}

/// What sentinel `s` names as the primary's port.
fn sentinel_primary(s: &RedisServer) -> Option<u16> {
    let lines = cli_lines(
        s,
        &["SENTINEL", "get-master-addr-by-name", RedisSentinel::MASTER],
    );
    lines.get(1)?.trim().parse().ok()
}

/// `redis-cli` output lines (empty when the command fails).
fn cli_lines(s: &RedisServer, args: &[&str]) -> Vec<String> {
    match s.cli_output(args) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Field/value pairs of a flat reply.
fn fields(lines: &[String]) -> Vec<(String, String)> {
    lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

impl fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSentinel")
            .field("master", &Self::MASTER)
            .field(
                "nodes",
                &self.nodes.iter().map(RedisServer::port).collect::<Vec<_>>(),
            )
            .field(
                "sentinels",
                &self
                    .sentinels
                    .iter()
                    .map(RedisServer::port)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
