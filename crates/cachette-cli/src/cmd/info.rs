//! `cachette info [--json] [--no-count]`: the server and this cache's share of it. On a Redis
//! Cluster the figures are summed over the primaries (see `ClusterBackend`'s `info`), and a
//! per-node breakdown follows (`cluster` in `--json`).

use cachette::info::InfoValue;
use serde_json::json;

use crate::args::InfoArgs;
use crate::context::Context;
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context, args: &InfoArgs) -> anyhow::Result<u8> {
    let info = ctx.reach(ctx.cache.info().await)?;
    let db = ctx.db();
    let keys_in_db = u32::try_from(db).map_or(0, |db| info.keys_in_db(db));
    let under_prefix = if args.no_count {
        None
    } else {
        Some(ctx.count(&ctx.full_pattern("*")).await?)
    };
    let int = |field: &str| info.get(field).and_then(InfoValue::as_i64);
    let text = |field: &str| info.get(field).map(ToString::to_string);
    let (hits, misses) = (
        int("keyspace_hits").unwrap_or(0),
        int("keyspace_misses").unwrap_or(0),
    );
    let hit_rate = if hits + misses > 0 {
        Some(hits as f64 / (hits + misses) as f64)
    } else {
        None
    };
    let cluster = cluster_nodes(&info);
    if args.json {
        let doc = json!({
            "server": ctx.cache.describe(),
            "prefix": ctx.prefix(),
            "db": db,
            "keys_in_db": keys_in_db,
            "keys_under_prefix": under_prefix,
            "redis_version": info.version(),
            "uptime_in_seconds": int("uptime_in_seconds"),
            "used_memory": info.used_memory(),
            "used_memory_human": info.used_memory_human(),
            "used_memory_peak_human": text("used_memory_peak_human"),
            "maxmemory": int("maxmemory"),
            "maxmemory_policy": text("maxmemory_policy"),
            "connected_clients": int("connected_clients"),
            "keyspace_hits": hits,
            "keyspace_misses": misses,
            "keyspace_hit_rate": hit_rate,
            "expired_keys": int("expired_keys"),
            "evicted_keys": int("evicted_keys"),
            "cluster": cluster.as_ref().map(|nodes| json!({
                "primaries": nodes.len(),
                "nodes": nodes.iter().map(|n| json!({
                    "node": n.addr,
                    "keys": n.keys,
                    "used_memory": n.used_memory,
                    "keyspace_hits": n.hits,
                    "keyspace_misses": n.misses,
                })).collect::<Vec<_>>(),
            })),
            "sections": info.sections.iter().map(|(name, fields)| {
                (name.clone(), serde_json::Value::from(fields.iter().map(|(k, v)| (k.clone(), value_json(v))).collect::<serde_json::Map<_, _>>()))
            }).collect::<serde_json::Map<_, _>>(),
        });
        output::line(serde_json::to_string_pretty(&doc)?)?;
        return Ok(exit::OK);
    }
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let mut lines = vec![
        format!("server        {}", ctx.cache.describe()),
        format!(
            "version       redis {}, up {}",
            info.version().unwrap_or("?"),
            int("uptime_in_seconds")
                .map_or_else(|| "?".to_owned(), |s| output::human_secs(s.max(0) as u64))
        ),
        format!(
            "prefix        {:?}: {} keys (of {keys_in_db} in db{db})",
            ctx.prefix(),
            under_prefix.map_or_else(|| "not counted".to_owned(), |n| n.to_string())
        ),
        format!(
            "memory        {} used, peak {}, maxmemory {} ({})",
            info.used_memory_human().unwrap_or("?"),
            or_dash(text("used_memory_peak_human")),
            match int("maxmemory") {
                Some(0) | None => "unlimited".to_owned(),
                Some(_) => or_dash(text("maxmemory_human")),
            },
            or_dash(text("maxmemory_policy")),
        ),
        format!(
            "clients       {} connected",
            or_dash(text("connected_clients"))
        ),
        format!(
            "server reads  {hits} hits, {misses} misses{} ({}, since start)",
            hit_rate.map_or_else(String::new, |r| format!(", hit rate {:.1}%", r * 100.0)),
            if cluster.is_some() {
                "every primary"
            } else {
                "whole server"
            }
        ),
        format!(
            "expiry        {} expired, {} evicted",
            or_dash(text("expired_keys")),
            or_dash(text("evicted_keys"))
        ),
    ];
    if let Some(nodes) = &cluster {
        // Summed above (version and uptime are the first primary's); one line per primary.
        lines.push(format!(
            "cluster       {} primaries (figures above summed over them)",
            nodes.len()
        ));
        let width = nodes.iter().map(|n| n.addr.len()).max().unwrap_or(0);
        for n in nodes {
            lines.push(format!(
                "  {:<width$}  {:>9} keys  {:>9} used  {} hits, {} misses",
                n.addr,
                n.keys,
                human_bytes(n.used_memory),
                n.hits,
                n.misses,
            ));
        }
    }
    lines.push("per-function hit rates: cachette stats".to_owned());
    output::line(lines.join("\n"))?;
    Ok(exit::OK)
}

fn value_json(v: &InfoValue) -> serde_json::Value {
    match v {
        InfoValue::Int(i) => json!(i),
        InfoValue::Float(f) => json!(f),
        other => json!(other.to_string()),
    }
}

/// One primary of a Redis Cluster, from the `cluster` section of the summed `INFO`.
#[derive(Debug)]
struct Node {
    addr: String,
    keys: i64,
    used_memory: i64,
    hits: i64,
    misses: i64,
}

/// The primaries listed in the `cluster` section (`primaries`, `<host:port>_keys`, ...) that
/// the cluster backend adds to `INFO`; `None` on a standalone server.
fn cluster_nodes(info: &cachette::info::ServerInfo) -> Option<Vec<Node>> {
    let section = info.sections.get("cluster")?;
    section.get("primaries")?;
    let int = |addr: &str, field: &str| {
        section
            .get(&format!("{addr}_{field}"))
            .and_then(InfoValue::as_i64)
            .unwrap_or(0)
    };
    Some(
        section
            .keys()
            .filter_map(|k| k.strip_suffix("_keys"))
            .map(|addr| Node {
                addr: addr.to_owned(),
                keys: int(addr, "keys"),
                used_memory: int(addr, "used_memory"),
                hits: int(addr, "keyspace_hits"),
                misses: int(addr, "keyspace_misses"),
            })
            .collect(),
    )
}

/// Bytes as Redis prints them (`1.02M`).
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{}B", bytes.max(0))
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}
