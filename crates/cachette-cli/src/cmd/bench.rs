//! `cachette bench`: a load generator through `CacheManager` (the library's own path, timeouts
//! and counters included): N tasks issue `get_raw`/`set_raw` on a fixed key space for a fixed
//! time; latencies go to HDR histograms (one per task, merged at the end).
//!
//! The keys (`__bench:0` .. `__bench:N-1` under the prefix) are written before the run with a
//! one-hour TTL (so an interrupted run leaves nothing permanent) and deleted after it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::BenchArgs;
use crate::context::Context;
use crate::exit;
use crate::output;

const KEY_PREFIX: &str = "__bench:";
const KEY_TTL: Duration = Duration::from_secs(3600);
/// Histogram range: 1 µs .. 60 s, 3 significant digits.
const MAX_MICROS: u64 = 60_000_000;

/// A JSON string of exactly `size` bytes (`"xxx…"`), or `0` below 2 bytes.
fn value_of_size(size: usize) -> Vec<u8> {
    if size < 2 {
        return b"0".to_vec();
    }
    let mut v = Vec::with_capacity(size);
    v.push(b'"');
    v.resize(size - 1, b'x');
    v.push(b'"');
    v
}

#[derive(Debug)]
struct TaskResult {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    hits: u64,
    misses: u64,
    errors: u64,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).context("cannot create a histogram")
}

pub(crate) async fn run(ctx: &Context, args: &BenchArgs) -> anyhow::Result<u8> {
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        return Err(exit::usage(
            "--duration must be between 0 and 86400 seconds",
        ));
    }
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return Err(exit::usage("--read-ratio must be between 0.0 and 1.0"));
    }
    if args.value_size > 64 << 20 {
        return Err(exit::usage("--value-size must be at most 64 MiB"));
    }
    let cache = ctx.cache.clone();
    ctx.reach(cache.backend().ping().await)?;
    let value = bytes::Bytes::from(value_of_size(args.value_size));

    // Write every key first, so reads hit.
    let keys: Vec<String> = (0..args.keys).map(|i| format!("{KEY_PREFIX}{i}")).collect();
    for chunk in keys.chunks(1000) {
        let items: Vec<(String, bytes::Bytes)> = chunk
            .iter()
            .map(|k| (cache.full_key(k), value.clone()))
            .collect();
        ctx.reach(cache.backend().set_many(&items, Some(KEY_TTL)).await)?;
    }
    let keys = Arc::new(keys);

    let duration = Duration::from_secs_f64(args.duration);
    let warmup = Duration::from_secs_f64((args.duration / 10.0).min(1.0));
    let start = Instant::now() + warmup;
    let end = start + duration;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (cache, keys, value, done, stop) = (
            cache.clone(),
            keys.clone(),
            value.clone(),
            done.clone(),
            stop.clone(),
        );
        let read_ratio = args.read_ratio;
        let (mut reads, mut writes) = (histogram()?, histogram()?);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::new();
            let (mut hits, mut misses, mut errors) = (0u64, 0u64, 0u64);
            loop {
                let t = Instant::now();
                if t >= end || stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = &keys[rng.usize(..keys.len())];
                let measured = t >= start;
                if rng.f64() < read_ratio {
                    let result = cache.get_raw(key).await;
                    let micros = t.elapsed().as_micros() as u64;
                    if measured {
                        match result {
                            Ok(Some(_)) => {
                                hits += 1;
                                reads.saturating_record(micros.max(1));
                            }
                            Ok(None) => {
                                misses += 1;
                                reads.saturating_record(micros.max(1));
                            }
                            Err(_) => errors += 1,
                        }
                    }
                } else {
                    let result = cache.set_raw(key, value.clone(), KEY_TTL).await;
                    let micros = t.elapsed().as_micros() as u64;
                    if measured {
                        match result {
                            Ok(()) => writes.saturating_record(micros.max(1)),
                            Err(_) => errors += 1,
                        }
                    }
                }
                if measured {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            TaskResult {
                reads,
                writes,
                hits,
                misses,
                errors,
            }
        }));
    }

    // Live progress on stderr (hidden when stderr is not a terminal).
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {msg}").map_or_else(
            |_| ProgressStyle::default_bar(),
            |s| s.progress_chars("=> "),
        ),
    );
    let progress = async {
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if now < start {
                bar.set_message("warming up");
            } else {
                let secs = now.duration_since(start).as_secs_f64().max(1e-3);
                let n = done.load(Ordering::Relaxed);
                bar.set_position(now.duration_since(start).as_millis() as u64);
                bar.set_message(format!(
                    "{:.1}/{:.1}s  {n} ops  {:.0} ops/s",
                    secs,
                    duration.as_secs_f64(),
                    n as f64 / secs
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        () = progress => {}
        _ = tokio::signal::ctrl_c() => {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let elapsed = Instant::now().min(end).saturating_duration_since(start);
    let (mut reads, mut writes) = (histogram()?, histogram()?);
    let (mut hits, mut misses, mut errors) = (0u64, 0u64, 0u64);
    for task in tasks {
        let r = task.await.context("a bench task failed")?;
        reads.add(&r.reads).context("merging histograms")?;
        writes.add(&r.writes).context("merging histograms")?;
        hits += r.hits;
        misses += r.misses;
        errors += r.errors;
    }
    bar.finish_and_clear();
    let cleanup = cache.delete_pattern(&format!("{KEY_PREFIX}*")).await;

    let mut all = histogram()?;
    all.add(&reads).context("merging histograms")?;
    all.add(&writes).context("merging histograms")?;
    let ops = all.len();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let pct = |h: &Histogram<u64>| {
        json!({
            "p50_us": h.value_at_quantile(0.5),
            "p90_us": h.value_at_quantile(0.9),
            "p99_us": h.value_at_quantile(0.99),
            "p999_us": h.value_at_quantile(0.999),
            "max_us": h.max(),
        })
    };
    if args.json {
        let doc = json!({
            "server": ctx.cache.describe(),
            "concurrency": args.concurrency,
            "duration_s": secs,
            "value_size": args.value_size,
            "read_ratio": args.read_ratio,
            "keys": args.keys,
            "ops": ops,
            "ops_per_sec": ops as f64 / secs,
            "reads": reads.len(),
            "writes": writes.len(),
            "hits": hits,
            "misses": misses,
            "errors": errors,
            "latency": pct(&all),
            "read_latency": pct(&reads),
            "write_latency": pct(&writes),
        });
        output::line(serde_json::to_string_pretty(&doc)?)?;
    } else {
        let row = |name: &str, h: &Histogram<u64>| {
            format!(
                "{name:<7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            )
        };
        let lines = [
            format!(
                "{} for {secs:.1}s: {} tasks, {}-byte values, {:.0}% reads over {} keys",
                ctx.cache.describe(),
                args.concurrency,
                args.value_size,
                args.read_ratio * 100.0,
                args.keys
            ),
            format!(
                "throughput {:.0} ops/s ({ops} ops, {hits} hits, {misses} misses, {errors} errors)",
                ops as f64 / secs
            ),
            format!(
                "{:<7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency", "ops", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
            ),
            row("all", &all),
            row("get", &reads),
            row("set", &writes),
        ];
        output::line(lines.join("\n"))?;
    }
    if let Err(e) = cleanup {
        eprintln!("cachette: warning: could not delete the bench keys: {e}");
    }
    if errors > 0 {
        eprintln!("cachette: warning: {errors} operations failed (not included in the latencies)");
    }
    Ok(exit::OK)
}
