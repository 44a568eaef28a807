//! Where the publisher's batches go: a standalone server on a connection of the publisher's
//! own, or the primary of a Redis Cluster that serves the hash's slot, through the routing of
//! a [`ClusterBackend`] (a manager's, or one of the publisher's own built from the seeds).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use super::PUBLISHED_AT_FIELD;
use crate::backend::{ClusterBackend, ClusterOptions, RedisBackend};
use crate::config::RedisEndpoint;
use crate::error::{Error, ErrorKind, Result};

/// One batch, atomically and in one command (on a cluster, routed by the hash's key):
/// `ARGV[1]`/`ARGV[2]` are the time field and its value, then `field, delta` pairs.
const BATCH: &str = "for i = 3, #ARGV, 2 do \
     redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) \
     end \
     redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
     return (#ARGV - 2) / 2";

/// Where a [`StatsPublisherBuilder`](super::StatsPublisherBuilder) publishes.
pub(super) enum Target {
    /// A standalone server (an invalid URL is reported by `start`).
    Redis(std::result::Result<RedisEndpoint, Arc<Error>>),
    /// A Redis Cluster reached through these seeds, with a cluster backend of the publisher's
    /// own (built by `start`, with the builder's timeouts).
    ClusterSeeds(Vec<RedisEndpoint>),
    /// A running cluster backend (a manager's): its routing, connections and timeouts.
    Cluster(ClusterBackend),
    /// The primary that Redis Sentinel names, through a Sentinel backend of the publisher's
    /// own (built by `start` from this configuration, with the builder's timeouts).
    SentinelConfig(Box<crate::Config>),
    /// A running standalone backend (a manager's on Redis Sentinel): its connections, which
    /// follow the primary, and its timeouts.
    Standalone(RedisBackend),
}

impl Target {
    /// Where the batches go, without credentials (for seeds, as the cluster backend describes
    /// itself; building one connects nothing).
    pub(super) fn describe(&self) -> String {
        match self {
            Target::Redis(Ok(endpoint)) => endpoint.to_string(),
            Target::Redis(Err(_)) => "<invalid URL>".to_owned(),
            Target::ClusterSeeds(seeds) => ClusterBackend::connect_lazy(&cluster_options(
                seeds.clone(),
                Duration::ZERO,
                Duration::ZERO,
            ))
            .map_or_else(
                |_| "<invalid cluster nodes>".to_owned(),
                |c| c.describe().to_owned(),
            ),
            Target::Cluster(cluster) => cluster.describe().to_owned(),
            Target::SentinelConfig(config) => config.describe_sentinel(),
            Target::Standalone(redis) => format!("{redis:?}"),
        }
    }

    /// The sink of a started publisher. Does not connect.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid URL or cluster seed.
    pub(super) fn into_sink(self, connect: Duration, command: Duration) -> Result<Sink> {
        Ok(match self {
            Target::Redis(endpoint) => Sink::Redis(Box::new(OwnConnection {
                client: endpoint.map_err(|e| e.without_source())?.client()?,
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect))
                    .set_response_timeout(Some(command)),
                connection: None,
            })),
            Target::ClusterSeeds(seeds) => Sink::Cluster(ClusterBackend::connect_lazy(
                &cluster_options(seeds, connect, command),
            )?),
            Target::Cluster(cluster) => Sink::Cluster(cluster),
            Target::SentinelConfig(mut config) => {
                config.connect_timeout = connect;
                config.command_timeout = command;
                let (template, options) = config.sentinel_options()?;
                Sink::Standalone(RedisBackend::connect_sentinel(
                    &template,
                    options,
                    config.describe_sentinel(),
                    1,
                    connect,
                    command,
                )?)
            }
            Target::Standalone(redis) => Sink::Standalone(redis),
        })
    }
}

/// The publisher's own connection to a standalone server.
pub(super) struct OwnConnection {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connection: Option<MultiplexedConnection>,
}

fn cluster_options(
    seeds: Vec<RedisEndpoint>,
    connect: Duration,
    command: Duration,
) -> ClusterOptions {
    ClusterOptions {
        seeds,
        connections_per_node: 1,
        connect_timeout: connect,
        command_timeout: command,
    }
}

/// A started publisher's way to Redis.
pub(super) enum Sink {
    /// A standalone server, on a connection of the publisher's own: opened at the first batch,
    /// and again after a batch failed. Bounded by the publisher's timeouts.
    Redis(Box<OwnConnection>),
    /// A Redis Cluster: a batch is one script on the hash's key, routed like every single-key
    /// command of the cluster backend (`MOVED` followed, the slot map refreshed after a
    /// failover), bounded by twice the cluster's command timeout.
    Cluster(ClusterBackend),
    /// A standalone backend (Redis Sentinel): a batch is one script, with the backend's
    /// timeout, reconnects and primary discovery.
    Standalone(RedisBackend),
}

impl Sink {
    /// Adds `fields` (`(field, delta)`, not empty) to the hash `key` and sets its time field to
    /// `now_ms`, atomically.
    pub(super) async fn send(
        &mut self,
        key: &str,
        fields: &[(String, i64)],
        now_ms: u64,
    ) -> Result<()> {
        match self {
            Sink::Redis(own) => {
                let OwnConnection {
                    client,
                    config,
                    connection,
                } = &mut **own;
                let mut conn = match connection {
                    Some(conn) => conn.clone(),
                    None => {
                        let conn = client
                            .get_multiplexed_async_connection_with_config(config)
                            .await
                            .map_err(|e| redis_error("connect", &e))?;
                        *connection = Some(conn.clone());
                        conn
                    }
                };
                // One script, as on a cluster: atomic, one command for the ACL (`+eval` and
                // the commands it runs), and no `MULTI` (whose refusal the `redis` crate
                // 1.8 miscounts).
                batch_script(key, fields, now_ms)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(Error::from)
            }
            Sink::Cluster(cluster) => cluster
                .query_on_key(key, &batch_script(key, fields, now_ms), 0)
                .await
                .map(drop),
            Sink::Standalone(redis) => redis.query::<()>(&batch_script(key, fields, now_ms)).await,
        }
    }

    /// Forgets the connection of its own after a failed batch (the next one reconnects); a
    /// cluster backend reconnects by itself.
    pub(super) fn reset(&mut self) {
        if let Sink::Redis(own) = self {
            own.connection = None;
        }
    }
}

/// The `EVAL` of [`BATCH`] for one batch.
fn batch_script(key: &str, fields: &[(String, i64)], now_ms: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(BATCH)
        .arg(1)
        .arg(key)
        .arg(PUBLISHED_AT_FIELD)
        .arg(now_ms);
    for (field, delta) in fields {
        cmd.arg(field).arg(*delta);
    }
    cmd
}

fn redis_error(what: &str, e: &redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        ErrorKind::Connection
    } else {
        ErrorKind::Backend
    };
    let detail = e.detail().map_or_else(String::new, |d| format!(": {d}"));
    Error::new(
        kind,
        format!("statistics publisher: {what}: {:?}{detail}", e.kind()),
    )
}
