//! `cachette stats [--json] [--filter TEXT] [--reset]`: the per-function counters that
//! cachette processes publish to `{prefix}__cachette:stats` (see `cachette::publish`), and
//! their near caches' counters and sizes, read with `CacheManager::published_stats` (on a
//! cluster, from the primary serving the hash).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use cachette::publish::{stats_key, COUNTERS};
use serde_json::json;

use crate::args::StatsArgs;
use crate::context::Context;
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context, args: &StatsArgs) -> anyhow::Result<u8> {
    let key = stats_key(ctx.prefix());
    // Through the cache's own connections: on a cluster, the primary that serves the hash's
    // slot.
    if args.reset {
        let removed = ctx
            .reach(ctx.cache.reset_published_stats().await)
            .with_context(|| format!("cannot delete {key:?}"))?;
        output::line(if removed {
            "OK"
        } else {
            "OK (nothing was published)"
        })?;
        return Ok(exit::OK);
    }
    let mut published = ctx
        .reach(ctx.cache.published_stats().await)
        .with_context(|| format!("cannot read {key:?}"))?;
    if let Some(filter) = &args.filter {
        published
            .functions
            .retain(|f| f.name.contains(filter.as_str()));
    }
    let age_secs = published.published_at_ms.map(|at| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        now.saturating_sub(at) as f64 / 1000.0
    });
    if args.json {
        let functions: Vec<_> = published
            .functions
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "hit_rate": f.hit_rate(),
                    "counters": f.counters,
                })
            })
            .collect();
        let near = published.near.as_ref().map(|n| {
            json!({
                "hit_rate": n.hit_rate(),
                "counters": n.counters,
            })
        });
        let doc = json!({
            "key": key,
            "published_at_ms": published.published_at_ms,
            "functions": functions,
            "near_cache": near,
        });
        output::line(serde_json::to_string_pretty(&doc)?)?;
        return Ok(exit::OK);
    }
    let near = published.near.as_ref().map(|n| {
        format!(
            "near cache: {} hits, {} misses, hit rate {}, {} invalidations, {} flushes, {} \
             entries and {} bytes held (summed over the processes that publish it)",
            n.get("hits"),
            n.get("misses"),
            n.hit_rate()
                .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
            n.get("invalidations"),
            n.get("flushes"),
            n.get("entries"),
            n.get("bytes"),
        )
    });
    if published.functions.is_empty() {
        if let Some(near) = near.filter(|_| args.filter.is_none()) {
            output::line(near)?;
            return Ok(exit::OK);
        }
        eprintln!(
            "cachette: note: no statistics under {key:?}{}: processes publish them with \
             cachette::StatsPublisher (Config::stats_publisher()?.start()?)",
            if args.filter.is_some() {
                " match the filter"
            } else {
                ""
            }
        );
        return Ok(exit::OK);
    }
    let width = published
        .functions
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(8)
        .clamp(8, 60);
    let mut lines = vec![format!(
        "{:<width$} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "function", "hits", "misses", "hit rate", "errors", "writes", "coalesced", "fallbacks"
    )];
    for f in &published.functions {
        lines.push(format!(
            "{:<width$} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9}",
            f.name,
            f.get("hits"),
            f.get("misses"),
            f.hit_rate()
                .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
            f.get("errors"),
            f.get("writes"),
            f.get("coalesced"),
            f.get("fallbacks"),
        ));
    }
    let others: Vec<&str> = COUNTERS
        .iter()
        .copied()
        .filter(|c| {
            ![
                "hits",
                "misses",
                "errors",
                "writes",
                "coalesced",
                "fallbacks",
            ]
            .contains(c)
        })
        .collect();
    if let Some(near) = near.filter(|_| args.filter.is_none()) {
        lines.push(near);
    }
    lines.push(format!(
        "totals across every publishing process; last batch {} ago; also in --json: {}",
        age_secs.map_or_else(|| "?".to_owned(), |s| format!("{s:.1}s")),
        others.join(", ")
    ));
    output::line(lines.join("\n"))?;
    Ok(exit::OK)
}
