//! Redis Cluster rows, measured in the same run as the others, on a local 3-primary cluster
//! this section starts itself (`cachette-test-support`, loopback ports):
//!
//! - `get` + JSON decode at 1 and 64 tasks: the `redis` crate's async cluster client
//!   (`redis::cluster_async::ClusterConnection`, feature `cluster-async` of this crate's `redis`
//!   only) against `CacheManager::get` on the cluster. Both read the same 1000 keys spread over
//!   every slot, round robin, so that every primary works; and the same with a near cache in
//!   front of the cluster (`get`, and `get_shared` handing out the decoded `Arc<T>`);
//! - `get_many(1000)` of those keys: the raw cluster client's `mget` (whether it splits the
//!   command by slot or fails with `CROSSSLOT` is tried first and printed), cachette's
//!   `get_many` on the cluster (without and with a near cache), and cachette's `get_many` on the
//!   standalone server of the run;
//! - the round trips of one `get_many(1000)` batch, counted by the servers: `INFO stats` and
//!   `INFO commandstats` of every node before and after a run of sequential batches (less the
//!   `INFO` calls themselves, measured by a run of no batch). A round trip needs at least one
//!   socket read by the server, so the reads per batch bound the round trips from above; a
//!   read takes at most 16 KiB, so one read per node means one pipeline per node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cachette::{CacheManager, Ttl};
use cachette_test_support::RedisCluster;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde::Serialize;

use crate::alternatives::BenchValue;
use crate::{compare, op, Op, Plan, Row};

/// Keys read by every cluster row (`bench:many:{i}`).
const KEYS: usize = 1000;
/// Sequential batches over which the servers' counters are read.
const COUNTED_BATCHES: u64 = 20;

/// Runs the cluster rows and returns them, with a JSON summary of what the servers counted.
/// `standalone` is a manager on the run's standalone server (prefix `bench:`), at
/// `standalone_url`. Nothing runs (and no cluster starts) when `BENCH_FILTER` excludes every
/// cluster group, or when the cluster cannot start (a note says why).
///
/// # Panics
/// When a server or a contender fails once the cluster is up: a benchmark has nothing to
/// report then.
pub async fn section<V: BenchValue>(
    standalone: &CacheManager,
    standalone_url: &str,
    plan: Plan,
    value: V,
) -> (Vec<Row>, serde_json::Value) {
    const GROUPS: [&str; 3] = [
        "cluster get x1",
        "cluster get x64",
        "cluster get_many(1000)",
    ];
    if let Ok(filter) = std::env::var("BENCH_FILTER") {
        if !GROUPS.iter().any(|g| g.contains(filter.as_str())) {
            return (Vec::new(), serde_json::Value::Null);
        }
    }
    let cluster = match tokio::task::spawn_blocking(|| RedisCluster::spawn(3, 0)).await {
        Ok(Ok(cluster)) => cluster,
        Ok(Err(e)) => {
            println!("\ncluster rows skipped: the local cluster did not start: {e}");
            return (Vec::new(), serde_json::Value::Null);
        }
        Err(e) => {
            println!("\ncluster rows skipped: {e}");
            return (Vec::new(), serde_json::Value::Null);
        }
    };
    let seeds = cluster.seeds();
    let primaries: Vec<String> = cluster
        .primaries()
        .into_iter()
        .map(|i| format!("127.0.0.1:{}", cluster.node(i).port()))
        .collect();
    let json = serde_json::to_vec(&value).expect("encode");
    let names: Vec<String> = (0..KEYS).map(|i| format!("many:{i}")).collect();
    let full: Vec<String> = names.iter().map(|k| format!("bench:{k}")).collect();
    let slots: std::collections::HashSet<u16> = full
        .iter()
        .map(|k| cachette::backend::cluster::slot(k.as_bytes()))
        .collect();
    println!(
        "\nRedis Cluster: 3 primaries on {}; {KEYS} keys over {} slots",
        primaries.join(", "),
        slots.len()
    );

    let cache = CacheManager::builder()
        .cluster_nodes(seeds.iter().cloned())
        .key_prefix("bench:")
        .build()
        .expect("cluster manager");
    for manager in [&cache, standalone] {
        manager
            .set_many(
                names.iter().map(|k| (k.as_str(), value.clone())),
                Ttl::Never,
            )
            .await
            .expect("seed");
    }
    // The same cluster with a near cache (one invalidation channel per primary), once every
    // channel vouches and the tier holds every key.
    let near = CacheManager::builder()
        .cluster_nodes(seeds.iter().cloned())
        .key_prefix("bench:")
        .near_cache(Some(cachette::NearCacheOptions::default()))
        .build()
        .expect("cluster manager with a near cache");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !near.near_stats().is_some_and(|s| s.live) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster's near cache never came up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for _ in 0..3 {
        let _: Vec<Option<V>> = near.get_many(&names).await.expect("warm the tier");
    }
    let client = redis::cluster::ClusterClient::new(seeds.iter().map(|s| format!("redis://{s}")))
        .expect("cluster client");
    let mut raw = client
        .get_async_connection()
        .await
        .expect("raw cluster connection");

    // What the raw client does with an MGET over every slot.
    let probe: redis::RedisResult<Vec<Option<Vec<u8>>>> = raw.mget(full.as_slice()).await;
    let raw_mget_splits = match &probe {
        Ok(values) => {
            let right =
                values.len() == KEYS && values.iter().all(|v| v.as_deref() == Some(&json[..]));
            assert!(right, "the raw cluster client's MGET returned other values");
            println!("  raw ClusterConnection mget of {KEYS} keys over {} slots: splits it by slot (no CROSSSLOT)", slots.len());
            true
        }
        Err(e) => {
            println!("  raw ClusterConnection mget of {KEYS} keys over {} slots: fails ({:?}: {e}); its row is skipped", slots.len(), e.kind());
            false
        }
    };

    let names = Arc::new(names);
    let full = Arc::new(full);
    let raw_get = {
        let (raw, full) = (raw.clone(), full.clone());
        let next = Arc::new(AtomicUsize::new(0));
        op(move || {
            let (mut raw, full) = (raw.clone(), full.clone());
            let key = next.fetch_add(1, Ordering::Relaxed) % KEYS;
            async move {
                let bytes: Option<Vec<u8>> = raw.get(&full[key]).await.expect("GET");
                let v: V = serde_json::from_slice(&bytes.expect("present")).expect("decode");
                std::hint::black_box(v);
            }
        })
    };
    // `get` of the keys round robin, on `cache`.
    let get_round_robin = |cache: &CacheManager| -> Op {
        let (cache, names) = (cache.clone(), names.clone());
        let next = Arc::new(AtomicUsize::new(0));
        op(move || {
            let (cache, names) = (cache.clone(), names.clone());
            let key = next.fetch_add(1, Ordering::Relaxed) % KEYS;
            async move {
                let v: Option<V> = cache.get(&names[key]).await.expect("get");
                std::hint::black_box(v.expect("present"));
            }
        })
    };
    let manager_get = get_round_robin(&cache);
    let near_get = get_round_robin(&near);
    let near_shared = {
        let (cache, names) = (near.clone(), names.clone());
        let next = Arc::new(AtomicUsize::new(0));
        op(move || {
            let (cache, names) = (cache.clone(), names.clone());
            let key = next.fetch_add(1, Ordering::Relaxed) % KEYS;
            async move {
                let v: Option<Arc<V>> = cache.get_shared(&names[key]).await.expect("get_shared");
                std::hint::black_box(v.expect("present"));
            }
        })
    };
    let raw_mget: Op = {
        let (raw, full) = (raw.clone(), full.clone());
        op(move || {
            let (mut raw, full) = (raw.clone(), full.clone());
            async move {
                let got: Vec<Option<Vec<u8>>> = raw.mget(full.as_slice()).await.expect("MGET");
                let v: Vec<Option<V>> = got
                    .into_iter()
                    .map(|b| b.map(|b| serde_json::from_slice(&b).expect("decode")))
                    .collect();
                std::hint::black_box(v);
            }
        })
    };
    let get_many = |cache: &CacheManager| -> Op {
        let (cache, names) = (cache.clone(), names.clone());
        op(move || {
            let (cache, names) = (cache.clone(), names.clone());
            async move {
                let v: Vec<Option<V>> = cache.get_many(names.as_slice()).await.expect("get_many");
                std::hint::black_box(v);
            }
        })
    };
    let cluster_many = get_many(&cache);
    let standalone_many = get_many(standalone);

    let mut rows = Vec::new();
    for concurrency in [1, 64] {
        println!(
            "\nredis cluster GET + JSON decode, {concurrency} task(s), {KEYS} keys round robin"
        );
        rows.extend(
            compare(
                &format!("cluster get x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![
                    (
                        "raw redis cluster_async::ClusterConnection",
                        raw_get.clone(),
                    ),
                    ("CacheManager::get (cluster)", manager_get.clone()),
                    ("CacheManager::get (cluster + near cache)", near_get.clone()),
                    (
                        "CacheManager::get_shared (cluster + near cache, Arc<T>)",
                        near_shared.clone(),
                    ),
                ],
            )
            .await,
        );
    }
    println!(
        "\nget_many of {KEYS} keys over {} slots (ops = keys read; p50/p99 per batch)",
        slots.len()
    );
    let mut contenders = Vec::new();
    if raw_mget_splits {
        contenders.push(("raw ClusterConnection mget(1000)", raw_mget.clone()));
    }
    contenders.push((
        "CacheManager::get_many(1000) (cluster)",
        cluster_many.clone(),
    ));
    contenders.push((
        "CacheManager::get_many(1000) (standalone)",
        standalone_many.clone(),
    ));
    contenders.push((
        "CacheManager::get_many(1000) (cluster + near cache)",
        get_many(&near),
    ));
    rows.extend(compare("cluster get_many(1000)", 1, KEYS as u64, plan, contenders).await);

    // Round trips per batch, as the servers count them.
    let cluster_nodes = connect_all(&primaries).await;
    let standalone_node = connect_all(&[standalone_url.to_owned()]).await;
    println!(
        "\nround trips of one get_many({KEYS}), counted by the servers over {COUNTED_BATCHES} \
         sequential batches (INFO deltas; reads bound round trips from above, one read = at \
         most 16 KiB)"
    );
    let mut counted = serde_json::Map::new();
    let mut runs: Vec<(&str, &Op, &[Node])> = Vec::new();
    if raw_mget_splits {
        runs.push((
            "raw ClusterConnection mget(1000)",
            &raw_mget,
            &cluster_nodes,
        ));
    }
    runs.push((
        "CacheManager::get_many(1000) (cluster)",
        &cluster_many,
        &cluster_nodes,
    ));
    runs.push((
        "CacheManager::get_many(1000) (standalone)",
        &standalone_many,
        &standalone_node,
    ));
    for (name, f, nodes) in runs {
        let per_node = count_per_batch(nodes, f).await;
        println!("  {name}");
        let mut total_reads = 0.0;
        for (addr, c) in &per_node {
            total_reads += c.reads;
            println!("    {addr}: {}", c.describe());
        }
        println!("    all nodes: {total_reads:.2} reads per batch");
        counted.insert(
            name.to_owned(),
            serde_json::json!({ "reads_per_batch": total_reads, "nodes": per_node }),
        );
    }
    let summary = serde_json::json!({
        "primaries": primaries,
        "keys": KEYS,
        "slots": slots.len(),
        "raw_mget_splits_by_slot": raw_mget_splits,
        "raw_mget_error": probe.err().map(|e| e.to_string()),
        "batches_counted": COUNTED_BATCHES,
        "per_batch": counted,
    });
    drop(cluster);
    (rows, summary)
}

/// A node's `host:port` and a plain connection to it (for `INFO`).
type Node = (String, MultiplexedConnection);

/// A plain connection to each `host:port` (for `INFO`).
async fn connect_all(addrs: &[String]) -> Vec<Node> {
    let mut out = Vec::new();
    for addr in addrs {
        let url = if addr.starts_with("redis://") {
            addr.clone()
        } else {
            format!("redis://{addr}")
        };
        let conn = redis::Client::open(url.as_str())
            .expect("node url")
            .get_multiplexed_async_connection()
            .await
            .expect("node connection");
        let label = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        out.push((label, conn));
    }
    out
}

/// One node's counters (`INFO stats` and `INFO commandstats`).
#[derive(Debug, Clone, Default)]
struct Snapshot {
    reads: u64,
    commands: u64,
    bytes_in: u64,
    connections: u64,
    calls: BTreeMap<String, u64>,
}

impl Snapshot {
    async fn take(conn: &mut MultiplexedConnection) -> Snapshot {
        let text: String = redis::cmd("INFO")
            .arg("stats")
            .arg("commandstats")
            .query_async(conn)
            .await
            .expect("INFO");
        let mut s = Snapshot::default();
        for line in text.lines() {
            let Some((k, v)) = line.trim().split_once(':') else {
                continue;
            };
            let n = || v.parse::<u64>().unwrap_or(0);
            match k {
                "total_reads_processed" => s.reads = n(),
                "total_commands_processed" => s.commands = n(),
                "total_net_input_bytes" => s.bytes_in = n(),
                "total_connections_received" => s.connections = n(),
                _ => {
                    if let Some(cmd) = k.strip_prefix("cmdstat_") {
                        let calls = v
                            .split(',')
                            .find_map(|f| f.strip_prefix("calls="))
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(0);
                        s.calls.insert(cmd.to_owned(), calls);
                    }
                }
            }
        }
        s
    }

    /// `self - before - overhead`, as signed counts.
    fn delta(&self, before: &Snapshot, overhead: &Delta) -> Delta {
        let d = |a: u64, b: u64, o: f64| a as f64 - b as f64 - o;
        let mut calls = BTreeMap::new();
        for (cmd, &n) in &self.calls {
            let was = before.calls.get(cmd).copied().unwrap_or(0);
            let o = overhead.calls.get(cmd).copied().unwrap_or(0.0);
            let v = d(n, was, o);
            if v != 0.0 {
                calls.insert(cmd.clone(), v);
            }
        }
        Delta {
            reads: d(self.reads, before.reads, overhead.reads),
            commands: d(self.commands, before.commands, overhead.commands),
            bytes_in: d(self.bytes_in, before.bytes_in, overhead.bytes_in),
            connections: d(self.connections, before.connections, overhead.connections),
            calls,
        }
    }
}

/// What one node counted, per batch.
#[derive(Debug, Clone, Default, Serialize)]
struct Delta {
    /// Socket reads of client connections (`total_reads_processed`).
    reads: f64,
    /// Commands run (`total_commands_processed`).
    commands: f64,
    /// Bytes read from clients (`total_net_input_bytes`).
    bytes_in: f64,
    /// Connections accepted (`total_connections_received`).
    connections: f64,
    /// Commands by name (`INFO commandstats`).
    calls: BTreeMap<String, f64>,
}

impl Delta {
    fn scaled(mut self, by: f64) -> Delta {
        self.reads /= by;
        self.commands /= by;
        self.bytes_in /= by;
        self.connections /= by;
        for v in self.calls.values_mut() {
            *v /= by;
        }
        self
    }

    fn describe(&self) -> String {
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|(c, n)| format!("{} {n:.1}", c.to_uppercase()))
            .collect();
        format!(
            "{:.2} reads, {:.1} commands ({}), {:.1} KiB in, {:.2} new connections",
            self.reads,
            self.commands,
            calls.join(", "),
            self.bytes_in / 1024.0,
            self.connections
        )
    }
}

/// Runs `f` [`COUNTED_BATCHES`] times, one after the other, and returns what each node counted
/// per batch, less what the `INFO` calls themselves cost (measured by a run of no batch).
async fn count_per_batch(
    nodes: &[(String, MultiplexedConnection)],
    f: &Op,
) -> Vec<(String, Delta)> {
    let mut conns: Vec<MultiplexedConnection> = nodes.iter().map(|(_, c)| c.clone()).collect();
    let zero = Delta::default();
    let b0 = snapshots(&mut conns).await;
    let b1 = snapshots(&mut conns).await;
    let overhead: Vec<Delta> = b1.iter().zip(&b0).map(|(a, b)| a.delta(b, &zero)).collect();
    let s0 = snapshots(&mut conns).await;
    for _ in 0..COUNTED_BATCHES {
        f().await;
    }
    let s1 = snapshots(&mut conns).await;
    nodes
        .iter()
        .zip(s1.iter().zip(&s0).zip(&overhead))
        .map(|((addr, _), ((after, before), o))| {
            (
                addr.clone(),
                after.delta(before, o).scaled(COUNTED_BATCHES as f64),
            )
        })
        .collect()
}

/// Every node's counters, one node after the other.
async fn snapshots(conns: &mut [MultiplexedConnection]) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for c in conns.iter_mut() {
        out.push(Snapshot::take(c).await);
    }
    out
}
