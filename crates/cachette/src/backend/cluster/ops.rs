//! The [`Backend`] operations of [`ClusterBackend`]: single-key commands routed by slot,
//! batches by node, and the whole-keyspace operations over every primary.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::join_all;
use redis::{Cmd, Value};

use super::{convert, key_slot, on_node, ClusterBackend, NODE_CURSOR_BITS, SLOTS, UNASSIGNED};
use crate::backend::info::{InfoValue, KeyspaceStats, ServerInfo};
use crate::backend::redis::{millis, set_cmd, DELETE_IF_EQUALS};
use crate::backend::{Backend, KeyTtl, ScanPage};
use crate::error::{Error, ErrorKind, Result};

/// The `INFO` fields that [`Backend::info`] sums over the primaries, as `(section, field)`
/// (memory ones with their `_human` form); listed again in its docs.
const SUMMED: [(&str, &str); 11] = [
    ("memory", "used_memory"),
    ("memory", "used_memory_peak"),
    ("memory", "maxmemory"),
    ("clients", "connected_clients"),
    ("clients", "blocked_clients"),
    ("stats", "keyspace_hits"),
    ("stats", "keyspace_misses"),
    ("stats", "expired_keys"),
    ("stats", "evicted_keys"),
    ("stats", "total_commands_processed"),
    ("stats", "instantaneous_ops_per_sec"),
];

pub(super) fn scan_cmd(cursor: u64, pattern: &str, count: usize) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    cmd
}

fn split_utf8(raw: Vec<Vec<u8>>) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut keys = Vec::with_capacity(raw.len());
    let mut other = Vec::new();
    for key in raw {
        match String::from_utf8(key) {
            Ok(k) => keys.push(k),
            Err(e) => other.push(e.into_bytes()),
        }
    }
    (keys, other)
}

impl ClusterBackend {
    /// Runs `cmd`, every key of which hashes to the slot of `key`, on the primary that serves
    /// that slot: the routing of every single-key operation (`MOVED` followed at once, `ASK`,
    /// `TRYAGAIN`, the slot map refreshed after a failover), bounded by twice the command
    /// timeout. For commands the [`Backend`] trait does not name (the statistics hash).
    pub(crate) async fn query_on_key(&self, key: &str, cmd: &Cmd, payload: usize) -> Result<Value> {
        self.route(key_slot(key), cmd, payload).await
    }
}

#[async_trait]
impl Backend for ClusterBackend {
    fn name(&self) -> &'static str {
        "redis-cluster"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let v: Option<Vec<u8>> = self.route_key(key, redis::cmd("GET").arg(key), 0).await?;
        Ok(v.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.route_key::<()>(key, &set_cmd(key, &value, ttl), value.len())
            .await
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let mut cmd = set_cmd(key, &value, ttl);
        cmd.arg("NX");
        let reply: Option<String> = self.route_key(key, &cmd, value.len()).await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let n: u64 = self
            .route_key(key, redis::cmd("UNLINK").arg(key), 0)
            .await?;
        Ok(n > 0)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        let raw = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        self.bounded("redis cluster batch", self.delete_bytes(raw))
            .await
    }

    async fn delete_raw(&self, keys: &[Vec<u8>]) -> Result<u64> {
        self.bounded("redis cluster batch", self.delete_bytes(keys.to_vec()))
            .await
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let n: u64 = self
            .route_key(
                key,
                redis::cmd("EVAL")
                    .arg(DELETE_IF_EQUALS)
                    .arg(1)
                    .arg(key)
                    .arg(value),
                0,
            )
            .await?;
        Ok(n > 0)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let n: u64 = self
            .route_key(key, redis::cmd("EXISTS").arg(key), 0)
            .await?;
        Ok(n > 0)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let n: u64 = self
            .route_key(key, redis::cmd("PEXPIRE").arg(key).arg(millis(ttl)), 0)
            .await?;
        Ok(n > 0)
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        let n: u64 = self
            .route_key(key, redis::cmd("PERSIST").arg(key), 0)
            .await?;
        Ok(n > 0)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let ms: i64 = self.route_key(key, redis::cmd("PTTL").arg(key), 0).await?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    /// One step over one primary: the cursor holds the primary's lowest slot (top 16 bits)
    /// and its own cursor (low 48 bits); see the module docs.
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        let topology = self.topology().await?;
        let first = u16::try_from(cursor >> NODE_CURSOR_BITS)
            .ok()
            .filter(|s| usize::from(*s) < SLOTS)
            .ok_or_else(|| Error::invalid(format!("not a cluster scan cursor: {cursor}")))?;
        let node_cursor = cursor & ((1 << NODE_CURSOR_BITS) - 1);
        let index = if cursor == 0 {
            0
        } else {
            let owner = topology
                .owner
                .get(usize::from(first))
                .copied()
                .unwrap_or(UNASSIGNED);
            usize::from(owner)
        };
        let Some(primary) = topology.primaries.get(index) else {
            return Ok(ScanPage::default());
        };
        let value = self
            .bounded("redis cluster scan", async {
                on_node(
                    &primary.node,
                    &scan_cmd(node_cursor, pattern, count),
                    false,
                    0,
                )
                .await?
                .map_err(Error::from)
            })
            .await?;
        let (next, raw): (u64, Vec<Vec<u8>>) = convert(value)?;
        if next >> NODE_CURSOR_BITS != 0 {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("SCAN cursor {next} of {} is too large", primary.addr),
            ));
        }
        let cursor = if next != 0 {
            (u64::from(primary.first_slot) << NODE_CURSOR_BITS) | next
        } else {
            topology
                .primaries
                .get(index + 1)
                .map_or(0, |p| u64::from(p.first_slot) << NODE_CURSOR_BITS)
        };
        let (keys, non_utf8_keys) = split_utf8(raw);
        Ok(ScanPage {
            cursor,
            keys,
            non_utf8_keys,
        })
    }

    /// Sums over the primaries the keyspace and these fields: `used_memory`,
    /// `used_memory_peak`, `maxmemory` (`0`, no limit, when a primary has none),
    /// `connected_clients`, `blocked_clients`, `keyspace_hits`, `keyspace_misses`,
    /// `expired_keys`, `evicted_keys`, `total_commands_processed` and
    /// `instantaneous_ops_per_sec` (the memory ones with their `_human` form); every other
    /// field is the first primary's. The `cluster` section has
    /// `primaries` and, per node, `<host:port>_keys`, `<host:port>_used_memory`,
    /// `<host:port>_keyspace_hits` and `<host:port>_keyspace_misses`.
    async fn info(&self) -> Result<ServerInfo> {
        let topology = self.topology().await?;
        let infos = join_all(topology.primaries.iter().map(|p| async move {
            let value = self
                .bounded("redis cluster info", async {
                    on_node(&p.node, &redis::cmd("INFO"), false, 0)
                        .await?
                        .map_err(Error::from)
                })
                .await?;
            let raw: Vec<u8> = convert(value)?;
            Ok::<_, Error>((
                p.addr.clone(),
                ServerInfo::parse(&String::from_utf8_lossy(&raw)),
            ))
        }))
        .await;
        let mut total = ServerInfo::default();
        let mut sums = [0i64; SUMMED.len()];
        let mut unlimited = false;
        let mut keyspace: BTreeMap<String, KeyspaceStats> = BTreeMap::new();
        let mut cluster: BTreeMap<String, InfoValue> = BTreeMap::new();
        let mut raw = String::new();
        for (i, info) in infos.into_iter().enumerate() {
            let (addr, info) = info?;
            if i == 0 {
                total.sections = info.sections.clone();
            }
            let int = |(section, field): (&str, &str)| {
                info.field(section, field)
                    .and_then(InfoValue::as_i64)
                    .unwrap_or(0)
            };
            for (sum, field) in sums.iter_mut().zip(SUMMED) {
                *sum = sum.saturating_add(int(field));
            }
            unlimited |= int(("memory", "maxmemory")) == 0;
            for (db, stats) in &info.keyspace {
                let t = keyspace.entry(db.clone()).or_default();
                t.keys += stats.keys;
                t.expires += stats.expires;
                t.avg_ttl_ms = t.avg_ttl_ms.max(stats.avg_ttl_ms);
            }
            let keys = i64::try_from(info.keys_in_db(0)).unwrap_or(i64::MAX);
            cluster.insert(format!("{addr}_keys"), InfoValue::Int(keys));
            for field in ["used_memory", "keyspace_hits", "keyspace_misses"] {
                let value = info.get(field).and_then(InfoValue::as_i64).unwrap_or(0);
                cluster.insert(format!("{addr}_{field}"), InfoValue::Int(value));
            }
            raw.push_str(&format!("# Node {addr}\r\n{}\r\n", info.raw));
        }
        cluster.insert(
            "primaries".to_owned(),
            InfoValue::Int(i64::try_from(topology.primaries.len()).unwrap_or(i64::MAX)),
        );
        for ((section, field), sum) in SUMMED.into_iter().zip(sums) {
            let fields = total.sections.entry(section.to_owned()).or_default();
            if field == "maxmemory" && unlimited {
                fields.insert(field.to_owned(), InfoValue::Int(0));
                fields.insert(
                    "maxmemory_human".to_owned(),
                    InfoValue::Text("0B".to_owned()),
                );
                continue;
            }
            fields.insert(field.to_owned(), InfoValue::Int(sum));
            if section == "memory" {
                fields.insert(
                    format!("{field}_human"),
                    InfoValue::Text(crate::backend::info::human_bytes(
                        u64::try_from(sum).unwrap_or(0),
                    )),
                );
            }
        }
        let ks = total.sections.entry("keyspace".to_owned()).or_default();
        ks.clear();
        for (db, s) in &keyspace {
            ks.insert(
                db.clone(),
                InfoValue::Text(format!(
                    "keys={},expires={},avg_ttl={}",
                    s.keys, s.expires, s.avg_ttl_ms
                )),
            );
        }
        total.keyspace = keyspace;
        total.sections.insert("cluster".to_owned(), cluster);
        total.raw = raw;
        Ok(total)
    }

    /// Pings every primary.
    async fn ping(&self) -> Result<()> {
        let topology = self.topology().await?;
        let pings = topology.primaries.iter().map(|p| {
            self.bounded("redis cluster ping", async {
                on_node(&p.node, &redis::cmd("PING"), false, 0)
                    .await?
                    .map_err(Error::from)
            })
        });
        for r in join_all(pings).await {
            r?;
        }
        Ok(())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            groups.entry(key_slot(k)).or_default().push(i);
        }
        let found = self
            .bounded(
                "redis cluster batch",
                self.per_slot(
                    groups,
                    0,
                    |items| {
                        let mut cmd = redis::cmd("MGET");
                        for &i in items {
                            cmd.arg(&keys[i]);
                        }
                        vec![cmd]
                    },
                    |items, replies| {
                        let Some(reply) = replies.into_iter().next() else {
                            return Ok(Vec::new());
                        };
                        let values: Vec<Option<Vec<u8>>> = convert(reply)?;
                        if values.len() != items.len() {
                            return Err(Error::new(
                                ErrorKind::Backend,
                                format!(
                                    "MGET returned {} values for {} keys",
                                    values.len(),
                                    items.len()
                                ),
                            ));
                        }
                        Ok(items
                            .iter()
                            .copied()
                            .zip(values.into_iter().map(|v| v.map(Bytes::from)))
                            .collect())
                    },
                ),
            )
            .await?;
        let mut out: Vec<Option<Option<Bytes>>> = vec![None; keys.len()];
        for (i, v) in found {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(v);
            }
        }
        out.into_iter()
            .map(|v| {
                v.ok_or_else(|| Error::new(ErrorKind::Backend, "a key of get_many got no reply"))
            })
            .collect()
    }

    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, (k, _)) in items.iter().enumerate() {
            groups.entry(key_slot(k)).or_default().push(i);
        }
        let payload = items.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        self.bounded(
            "redis cluster batch",
            self.per_slot(
                groups,
                payload,
                |group| {
                    group
                        .iter()
                        .map(|&i| set_cmd(&items[i].0, &items[i].1, ttl))
                        .collect()
                },
                |_, replies| {
                    for r in replies {
                        if let Value::ServerError(e) = r {
                            return Err(Error::from(redis::RedisError::from(e)));
                        }
                    }
                    Ok(Vec::<(usize, ())>::new())
                },
            ),
        )
        .await?;
        Ok(())
    }

    /// Every primary scanned to completion, in parallel (see the module docs).
    async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        let firsts = self.first_slots().await?;
        let scans = firsts.into_iter().map(|first| async move {
            let mut found: Vec<Vec<u8>> = Vec::new();
            self.scan_primary(first, pattern, |page| {
                found.extend(page);
                async { Ok(()) }
            })
            .await?;
            Ok::<_, Error>(found)
        });
        let mut seen = HashSet::new();
        let mut foreign = 0usize;
        for r in join_all(scans).await {
            let (keys, other) = split_utf8(r?);
            seen.extend(keys);
            foreign += other.len();
        }
        if foreign > 0 {
            tracing::warn!(
                skipped = foreign,
                pattern,
                "cachette: keys that are not UTF-8 match the pattern; they are not listed \
                 (delete_pattern and clear remove them)"
            );
        }
        Ok(seen.into_iter().collect())
    }

    /// Every primary scanned to completion in parallel, each page unlinked as it comes.
    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let firsts = self.first_slots().await?;
        let scans = firsts.into_iter().map(|first| async move {
            let removed = std::sync::atomic::AtomicU64::new(0);
            self.scan_primary(first, pattern, |page| {
                let removed = &removed;
                async move {
                    let n = self
                        .bounded("redis cluster batch", self.delete_bytes(page))
                        .await?;
                    removed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
            })
            .await?;
            Ok::<_, Error>(removed.into_inner())
        });
        let mut total = 0;
        for r in join_all(scans).await {
            total += r?;
        }
        Ok(total)
    }
}
