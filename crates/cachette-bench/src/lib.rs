//! Measurement helpers shared by cachette's benchmarks: run an async operation sequentially or
//! from N concurrent tasks for a fixed time, record every latency in an HDR histogram, and
//! print rows side by side (plus JSON).

pub mod alternatives;
pub mod cluster;
pub mod http;
pub mod near;
pub mod tags;
pub mod tracking;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Group the row is compared within (e.g. `"redis get, 64 tasks"`).
    pub group: String,
    /// What ran (e.g. `"raw redis"`).
    pub name: String,
    /// Concurrent tasks.
    pub concurrency: usize,
    /// Completed operations.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Throughput relative to the group's baseline (first row of the group).
    pub ratio: f64,
}

/// How long each measurement runs, and its warm-up.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Measured time per row and round.
    pub duration: Duration,
    /// Unmeasured warm-up per row and round.
    pub warmup: Duration,
    /// Rounds; rows of a group alternate within each round and the best round counts.
    pub rounds: usize,
}

impl Plan {
    /// From `BENCH_SECS` (default 2) and `BENCH_ROUNDS` (default 3). `BENCH_FILTER` keeps only
    /// the groups whose name contains it, `BENCH_ONLY` only the rows whose name contains it.
    pub fn from_env() -> Plan {
        let secs: f64 = std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0);
        let rounds = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        Plan {
            duration: Duration::from_secs_f64(secs),
            warmup: Duration::from_secs_f64((secs / 5.0).min(0.5)),
            rounds,
        }
    }
}

/// Runs `op` from `concurrency` tasks for `duration` after `warmup`; each call of `op` is one
/// operation (or `batch` operations when it does several).
pub async fn run<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    op: F,
) -> (u64, Histogram<u64>, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    // One window for every task: a task that never yields (a memory-backend hit) still only
    // counts operations that completed inside the window.
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                    .expect("histogram bounds");
                let mut n = 0u64;
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    op().await;
                    if t >= start {
                        hist.saturating_record(t.elapsed().as_nanos() as u64);
                        n += 1;
                    }
                }
                (n, hist)
            })
        })
        .collect();
    let mut total = 0;
    let mut merged =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    for t in tasks {
        let (n, hist) = t.await.expect("bench task");
        total += n;
        merged.add(&hist).expect("same bounds");
    }
    (total, merged, duration)
}

/// A named async operation in a comparison group.
pub type Op = Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Wraps a closure returning a future as an [`Op`].
pub fn op<F, Fut>(f: F) -> Op
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// Measures every `(name, op)` of a group at `concurrency`, alternating them in each round,
/// keeping each one's best round. `per_call` is how many operations one call performs.
pub async fn compare(
    group: &str,
    concurrency: usize,
    per_call: u64,
    plan: Plan,
    ops: Vec<(&str, Op)>,
) -> Vec<Row> {
    if let Ok(filter) = std::env::var("BENCH_FILTER") {
        if !group.contains(filter.as_str()) {
            return Vec::new();
        }
    }
    // BENCH_ONLY keeps only the contenders whose name contains it (for profiling one row).
    let ops: Vec<(&str, Op)> = match std::env::var("BENCH_ONLY") {
        Ok(only) => ops
            .into_iter()
            .filter(|(name, _)| name.contains(only.as_str()))
            .collect(),
        Err(_) => ops,
    };
    let mut best: Vec<Option<Row>> = vec![None; ops.len()];
    for _ in 0..plan.rounds {
        for (i, (name, f)) in ops.iter().enumerate() {
            let f = f.clone();
            let (n, hist, took) = run(concurrency, plan.warmup, plan.duration, move || f()).await;
            let ops_done = n * per_call;
            let row = Row {
                group: group.to_owned(),
                name: (*name).to_owned(),
                concurrency,
                ops: ops_done,
                ops_per_sec: ops_done as f64 / took.as_secs_f64(),
                p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
                p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
                ratio: 1.0,
            };
            if best[i]
                .as_ref()
                .is_none_or(|b| row.ops_per_sec > b.ops_per_sec)
            {
                best[i] = Some(row);
            }
        }
    }
    let mut rows: Vec<Row> = best.into_iter().flatten().collect();
    let base = rows.first().map_or(1.0, |r| r.ops_per_sec);
    for r in &mut rows {
        r.ratio = r.ops_per_sec / base;
    }
    print_rows(&rows);
    rows
}

/// Prints rows as a table.
pub fn print_rows(rows: &[Row]) {
    for r in rows {
        println!(
            "  {:<44} {:>3} tasks {:>12.0} ops/s  p50 {:>9.2} us  p99 {:>9.2} us  x{:.3}",
            r.name, r.concurrency, r.ops_per_sec, r.p50_us, r.p99_us, r.ratio
        );
    }
}

/// Writes every row to `target/bench/<file>` as JSON and returns the path.
pub fn write_json(
    file: &str,
    rows: &[Row],
    notes: serde_json::Value,
) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(file);
    let doc = serde_json::json!({ "rows": rows, "notes": notes });
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    Ok(path)
}
