//! Client-side caching, default mode against broadcast mode (issue 13), measured in one run on
//! a redis-server of its own (loopback, ephemeral port).
//!
//! cachette's near cache uses broadcast mode: one RESP3 connection per process with
//! `CLIENT TRACKING ON BCAST PREFIX <prefix>`, data connections untouched (RESP2, untracked).
//! The alternative is default mode: the data connections are tracked (here with `REDIRECT` to
//! the process's invalidation connection), the server remembers every key each of them read
//! and tells the process only about those. The default-mode client is written here with the
//! raw `redis` crate: it is a measurement, not library code. Every loop is bounded. A
//! "process" with a near cache is simulated by its pair of connections (invalidation, data)
//! inside this benchmark's process. The results and the decision they led to are in
//! `docs/near-tracking-modes.md`.
//!
//! What runs (groups `tracking ...`, filtered with `BENCH_FILTER` like every group):
//!
//! - `tracking read x1`, `tracking read x64`: the near cache's miss read (`GET` + `PTTL`
//!   pipelined, one multiplexed connection) untracked on RESP2 (cachette today) and RESP3,
//!   tracked (default mode) with `REDIRECT` from RESP2 and on RESP3 itself, and in `OPTIN`
//!   mode (`CLIENT CACHING yes` before each read);
//! - `tracking memory`: the server's `used_memory` and `tracking_total_keys`/`items` after one
//!   process (then two) read `BENCH_TRACKING_KEYS` (default 200 000) distinct keys in each
//!   mode, and the invalidations of keys nobody wrote when the tracking table is over
//!   `tracking-table-max-keys`;
//! - `tracking traffic`: `BENCH_TRACKING_WRITES` (default 10 000) writes/s for one row's time
//!   to 10 000 keys under the prefix, of which one process read 1%, 10% or 100% (and re-reads
//!   each key of its set as soon as it is invalidated, as a near cache with a hot set would):
//!   the invalidation messages and keys it receives in each mode;
//! - `tracking writer x64`: SET throughput from 64 tasks with 0, 1 and 4 such processes in
//!   each mode (read sets of 1%, 10% and 100%), with the server's CPU time per write (INFO)
//!   and this process's (writer and readers share it, and the machine's cores with the
//!   server: the server's CPU per write is the figure that does not depend on that);
//! - `tracking latency`: from the start of a write to its invalidation arriving at the other
//!   process (p50/p99), in each mode, idle and with a background writer under the prefix.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette_test_support::RedisServer;
use hdrhistogram::Histogram;
use redis::aio::MultiplexedConnection;
use redis::Value;

mod client;

use self::client::*;
use crate::{compare, op, run, Op, Plan, Row};
/// The whole comparison: rows (`tracking read x1/x64`, `tracking writer x64`) and a JSON note
/// with the memory, traffic and latency figures.
///
/// # Panics
/// When a server or a connection fails: a benchmark has nothing to report then.
pub async fn section(plan: Plan, value: &[u8]) -> (Vec<Row>, serde_json::Value) {
    if ![
        "read x1",
        "read x64",
        "memory",
        "traffic",
        "writer x64",
        "latency",
    ]
    .iter()
    .any(|g| wanted(&format!("tracking {g}")))
    {
        return (Vec::new(), serde_json::Value::Null);
    }
    let server = RedisServer::new();
    let base = server.url();
    let version_str = info(&mut plain(&base, false).await)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    println!(
        "\nclient-side caching, default vs broadcast mode (redis-server {version_str} on {base})"
    );
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let load_before = load();
    println!("  load average before: {load_before}");
    let mut rows = read_path(&base, plan, value).await;
    let memory = memory(value).await;
    let traffic = traffic(&base, plan, value).await;
    let (writer_rows, writer) = writer(&base, plan, value).await;
    rows.extend(writer_rows);
    let latency = latency(&base, value).await;
    let load_after = load();
    println!("\n  load average after the tracking groups: {load_after}");
    (
        rows,
        serde_json::json!({
            "redis_version": version_str,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "memory": memory,
            "traffic": traffic,
            "writer": writer,
            "latency": latency,
        }),
    )
}

/// The miss read in each mode on one hot key, at 1 and 64 tasks.
async fn read_path(base: &str, plan: Plan, value: &[u8]) -> Vec<Row> {
    if !wanted("tracking read x1") && !wanted("tracking read x64") {
        return Vec::new();
    }
    let hot = format!("{PREFIX}hot");
    let mut admin = plain(base, false).await;
    query(&mut admin, redis::cmd("SET").arg(&hot).arg(value)).await;
    // cachette's own channel is there in every row, as in a process with a near cache.
    let (mut bcast, _) = listener(base, Box::new(|_, _| {})).await;
    tracking_on(&mut bcast, Mode::Bcast, None).await;
    let (_invalidation, id) = listener(base, Box::new(|_, _| {})).await;

    let untracked2 = plain(base, false).await;
    let untracked3 = plain(base, true).await;
    let mut redirect2 = plain(base, false).await;
    tracking_on(&mut redirect2, Mode::Default, Some(id)).await;
    let (mut own3, _) = listener(base, Box::new(|_, _| {})).await;
    tracking_on(&mut own3, Mode::Default, None).await;
    let mut optin2 = plain(base, false).await;
    query(
        &mut optin2,
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("REDIRECT")
            .arg(id)
            .arg("OPTIN"),
    )
    .await;

    let read = |conn: &MultiplexedConnection, optin: bool| -> Op {
        let conn = conn.clone();
        let hot = hot.clone();
        let mut pipe = redis::pipe();
        if optin {
            pipe.cmd("CLIENT").arg("CACHING").arg("yes").ignore();
        }
        pipe.cmd("GET").arg(&hot).cmd("PTTL").arg(&hot);
        let pipe = Arc::new(pipe);
        op(move || {
            let (mut conn, pipe) = (conn.clone(), pipe.clone());
            async move {
                let (v, ttl): (Option<Vec<u8>>, i64) =
                    pipe.query_async(&mut conn).await.expect("GET + PTTL");
                std::hint::black_box((v.expect("present"), ttl));
            }
        })
    };
    let mut rows = Vec::new();
    for concurrency in [1, 64] {
        println!(
            "\ntracking: the near cache's miss read (GET + PTTL pipelined) on one hot key, \
             {concurrency} task(s)"
        );
        rows.extend(
            compare(
                &format!("tracking read x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![
                    (
                        "RESP2 untracked (cachette: BCAST)",
                        read(&untracked2, false),
                    ),
                    ("RESP3 untracked", read(&untracked3, false)),
                    ("RESP2 tracked, REDIRECT (default)", read(&redirect2, false)),
                    ("RESP3 tracked, own pushes (default)", read(&own3, false)),
                    ("RESP2 OPTIN, CACHING yes + GET + PTTL", read(&optin2, true)),
                ],
            )
            .await,
        );
    }
    rows
}

/// The server's memory and tracking table after processes read `BENCH_TRACKING_KEYS` distinct
/// keys, each configuration on a server of its own (a disconnected client's entries stay in
/// the table until their key is written or evicted, so a shared server would carry them over).
async fn memory(value: &[u8]) -> serde_json::Value {
    if !wanted("tracking memory") {
        return serde_json::Value::Null;
    }
    let n = env_u64("BENCH_TRACKING_KEYS", 200_000);
    let snapshot = |info: &str| {
        (
            field(info, "used_memory"),
            field(info, "tracking_total_keys"),
            field(info, "tracking_total_items"),
            field(info, "tracking_total_prefixes"),
        )
    };
    println!(
        "\ntracking: the server after processes read {n} distinct keys (GET + PTTL pipelined, \
         {BATCH} keys a pipeline; a server of its own per line)"
    );
    let mut out = serde_json::Map::new();
    for (label, mode, readers) in [
        ("BCAST, 1 process", Mode::Bcast, 1),
        ("default, 1 process", Mode::Default, 1),
        ("default, 2 processes", Mode::Default, 2),
    ] {
        let server = RedisServer::new();
        let base = server.url();
        let mut admin = plain(&base, false).await;
        seed(&mut admin, n, value).await;
        let (base_mem, ..) = snapshot(&info(&mut admin).await);
        let t = Instant::now();
        let mut procs = Vec::new();
        for _ in 0..readers {
            procs.push(Reader::new(&base, mode, n, false).await);
        }
        let took = t.elapsed();
        let (mem, keys, items, prefixes) = snapshot(&info(&mut admin).await);
        let added = mem - base_mem;
        drop(procs);
        no_tracking_clients(&mut admin).await;
        let (mem_after, keys_after, items_after, _) = snapshot(&info(&mut admin).await);
        let keys_per_sec = (n * readers) as f64 / took.as_secs_f64();
        println!(
            "  {label:<22} +{:>6.1} MB ({:>6.1} B per key read)  tracking_total_keys {keys:>7}  \
             items {items:>7}  prefixes {prefixes}  read at {:>7.0} keys/s; after the \
             processes left: +{:.1} MB, {keys_after} keys, {items_after} items",
            added / 1e6,
            added / n as f64,
            keys_per_sec,
            (mem_after - base_mem) / 1e6,
        );
        out.insert(
            label.to_owned(),
            serde_json::json!({
                "used_memory_before_bytes": base_mem,
                "used_memory_added_bytes": added,
                "bytes_per_key_read": added / n as f64,
                "tracking_total_keys": keys,
                "tracking_total_items": items,
                "tracking_total_prefixes": prefixes,
                "read_keys_per_sec": keys_per_sec,
                "after_disconnect_used_memory_added_bytes": mem_after - base_mem,
                "after_disconnect_tracking_total_keys": keys_after,
                "after_disconnect_tracking_total_items": items_after,
            }),
        );
    }
    // Over the table's limit the server evicts keys from it by invalidating them: pushes for
    // keys nobody wrote, each one a near-cache miss to come.
    let server = RedisServer::new();
    let base = server.url();
    let mut admin = plain(&base, false).await;
    seed(&mut admin, n, value).await;
    let default_limit: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("tracking-table-max-keys")
        .query_async(&mut admin)
        .await
        .expect("CONFIG GET");
    let default_limit = default_limit.get(1).cloned().unwrap_or_default();
    let limit = (n / 10).max(1);
    query(
        &mut admin,
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("tracking-table-max-keys")
            .arg(limit),
    )
    .await;
    let mut reader = Reader::new(&base, Mode::Default, n, false).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        reader.settle().await;
        let now = reader.inbox.keys.load(Ordering::Relaxed);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let spurious = reader.inbox.keys.load(Ordering::Relaxed);
    let table = field(&info(&mut admin).await, "tracking_total_keys");
    println!(
        "  default, tracking-table-max-keys {limit} (this server's default: {default_limit}): \
         {spurious} keys invalidated without any write, {table} left in the table"
    );
    drop(reader);
    out.insert(
        "over_table_limit".to_owned(),
        serde_json::json!({
            "tracking_table_max_keys": limit,
            "server_default_tracking_table_max_keys": default_limit,
            "keys_read": n,
            "invalidated_without_write": spurious,
            "tracking_total_keys_after": table,
        }),
    );
    out.insert("keys_read".to_owned(), serde_json::json!(n));
    serde_json::Value::Object(out)
}

/// Invalidation traffic to one process at a paced write rate, by read fraction and mode.
async fn traffic(base: &str, plan: Plan, value: &[u8]) -> serde_json::Value {
    if !wanted("tracking traffic") {
        return serde_json::Value::Null;
    }
    let rate = env_u64("BENCH_TRACKING_WRITES", 10_000);
    let mut admin = plain(base, false).await;
    seed(&mut admin, KEYS, value).await;
    let mut writer = plain(base, false).await;
    let seq = AtomicU64::new(0);
    println!(
        "\ntracking: invalidations received by one process, {rate} writes/s for {:.1} s to \
         {KEYS} keys under the prefix (a pipeline per ms); the process re-reads each \
         invalidated key of its read set",
        plan.duration.as_secs_f64()
    );
    println!(
        "  {:<6} {:<8} {:>8} {:>10} {:>10} {:>10} {:>9} {:>10}",
        "read", "mode", "writes", "messages", "keys", "held", "wasted", "re-reads"
    );
    let mut out = Vec::new();
    for fraction in [0.01, 0.1, 1.0] {
        let read = (KEYS as f64 * fraction) as u64;
        for mode in [Mode::Bcast, Mode::Default] {
            let mut reader = Reader::new(base, mode, read, true).await;
            let writes = paced_writes(&mut writer, rate, plan.duration, value, &seq).await;
            reader.settle().await;
            let inbox = &reader.inbox;
            let (messages, keys, held, rereads) = (
                inbox.messages.load(Ordering::Relaxed),
                inbox.keys.load(Ordering::Relaxed),
                inbox.held.load(Ordering::Relaxed),
                inbox.rereads.load(Ordering::Relaxed),
            );
            let wasted = if keys == 0 {
                0.0
            } else {
                (keys - held) as f64 / keys as f64 * 100.0
            };
            println!(
                "  {:<6} {:<8} {writes:>8} {messages:>10} {keys:>10} {held:>10} {wasted:>8.1}% \
                 {rereads:>10}",
                format!("{}%", fraction * 100.0),
                mode.name()
            );
            out.push(serde_json::json!({
                "read_fraction": fraction,
                "mode": mode.name(),
                "writes": writes,
                "messages": messages,
                "keys": keys,
                "keys_held": held,
                "rereads": rereads,
                "flushes": inbox.flushes.load(Ordering::Relaxed),
            }));
            drop(reader);
            no_tracking_clients(&mut admin).await;
        }
    }
    serde_json::json!({ "writes_per_sec": rate, "keys": KEYS, "rows": out })
}

/// Near-cache processes beside a writer: their mode, how many, the fraction of keys each read.
type Readers = (Mode, usize, f64);

/// SET throughput from 64 tasks with 0, 1 and 4 near-cache processes in each mode.
async fn writer(base: &str, plan: Plan, value: &[u8]) -> (Vec<Row>, serde_json::Value) {
    const GROUP: &str = "tracking writer x64";
    if !wanted(GROUP) {
        return (Vec::new(), serde_json::Value::Null);
    }
    let mut admin = plain(base, false).await;
    seed(&mut admin, KEYS, value).await;
    let writer = plain(base, false).await;
    let seq = Arc::new(AtomicU64::new(1 << 32));
    let value = Arc::new(value.to_vec());
    let set: Op = op(move || {
        let (mut writer, value) = (writer.clone(), value.clone());
        let k = key(mix(seq.fetch_add(1, Ordering::Relaxed)) % KEYS);
        async move {
            let _: () = redis::cmd("SET")
                .arg(k)
                .arg(value.as_slice())
                .query_async(&mut writer)
                .await
                .expect("SET");
        }
    });
    let mut configs: Vec<(String, Option<Readers>)> = vec![("SET, no near cache".to_owned(), None)];
    for fraction in [0.01, 0.1, 1.0] {
        for mode in [Mode::Bcast, Mode::Default] {
            for readers in [1, 4] {
                configs.push((
                    format!(
                        "SET, {readers} x {} (read {}%)",
                        mode.name(),
                        fraction * 100.0
                    ),
                    Some((mode, readers, fraction)),
                ));
            }
        }
    }
    println!(
        "\ntracking: writer throughput (SET from 64 tasks to {KEYS} keys under the prefix) with \
         near-cache processes that re-read their invalidated keys; server CPU per SET from INFO"
    );
    let mut best: Vec<Option<(Row, serde_json::Value)>> = vec![None; configs.len()];
    for _ in 0..plan.rounds {
        for (i, (name, config)) in configs.iter().enumerate() {
            let mut readers = Vec::new();
            if let Some((mode, n, fraction)) = config {
                for _ in 0..*n {
                    readers.push(
                        Reader::new(base, *mode, (KEYS as f64 * fraction) as u64, true).await,
                    );
                }
            }
            let before = info(&mut admin).await;
            let client_before = process_cpu_secs();
            let set = set.clone();
            let (ops, hist, took) = run(64, plan.warmup, plan.duration, move || set()).await;
            let client_cpu = process_cpu_secs() - client_before;
            let after = info(&mut admin).await;
            for r in &mut readers {
                r.settle().await;
            }
            let delta = |f: &str| field(&after, f) - field(&before, f);
            let cpu = delta("used_cpu_user") + delta("used_cpu_sys");
            // `cmdstat_set:calls=N,...`: the SETs the server ran (warm-up included).
            let calls = |info: &str, cmd: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
                    .and_then(|v| v.split(',').next()?.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let sets = calls(&after, "set") - calls(&before, "set");
            let gets = calls(&after, "get") - calls(&before, "get");
            let keys: u64 = readers
                .iter()
                .map(|r| r.inbox.keys.load(Ordering::Relaxed))
                .sum();
            let messages: u64 = readers
                .iter()
                .map(|r| r.inbox.messages.load(Ordering::Relaxed))
                .sum();
            let row = Row {
                group: GROUP.to_owned(),
                name: name.clone(),
                concurrency: 64,
                ops,
                ops_per_sec: ops as f64 / took.as_secs_f64(),
                p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
                p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
                ratio: 1.0,
            };
            let note = serde_json::json!({
                "name": name,
                "server_cpu_us_per_set": cpu * 1e6 / sets.max(1.0),
                "bench_process_cpu_us_per_set": client_cpu * 1e6 / sets.max(1.0),
                "sets": sets,
                "rereads_gets": gets,
                "invalidation_messages": messages,
                "invalidated_keys": keys,
            });
            if best[i]
                .as_ref()
                .is_none_or(|(b, _)| row.ops_per_sec > b.ops_per_sec)
            {
                best[i] = Some((row, note));
            }
            drop(readers);
            no_tracking_clients(&mut admin).await;
        }
    }
    let (mut rows, notes): (Vec<Row>, Vec<serde_json::Value>) = best.into_iter().flatten().unzip();
    let base_ops = rows.first().map_or(1.0, |r| r.ops_per_sec);
    for (r, n) in rows.iter_mut().zip(&notes) {
        r.ratio = r.ops_per_sec / base_ops;
        println!(
            "  {:<36} {:>10.0} SET/s  p50 {:>7.1} us  p99 {:>7.1} us  x{:.3}  server {:>5.2} us \
             CPU/SET, bench process {:>5.2} us  {:>7} keys pushed ({} msgs), {} re-reads",
            r.name,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.ratio,
            n["server_cpu_us_per_set"].as_f64().unwrap_or(0.0),
            n["bench_process_cpu_us_per_set"].as_f64().unwrap_or(0.0),
            n["invalidated_keys"],
            n["invalidation_messages"],
            n["rereads_gets"],
        );
    }
    (rows, serde_json::Value::Array(notes))
}

/// From the start of a write to its invalidation arriving at the other process, in each mode
/// (interleaved), idle and with a background writer under the prefix.
async fn latency(base: &str, value: &[u8]) -> serde_json::Value {
    if !wanted("tracking latency") {
        return serde_json::Value::Null;
    }
    const ROUNDS: usize = 2_000;
    let background_rate = env_u64("BENCH_TRACKING_WRITES", 10_000);
    let mut out = serde_json::Map::new();
    for background in [0, background_rate] {
        // One listener per mode, each told only about its own probe key's pushes.
        let probe = |name: &str| format!("{PREFIX}probe:{name}");
        let (tx_b, mut rx_b) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let (tx_d, mut rx_d) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let forward = |tx: tokio::sync::mpsc::UnboundedSender<Instant>, probe: String| -> OnPush {
            Box::new(move |at, keys| {
                let ours = keys.is_some_and(|keys| {
                    keys.iter()
                        .any(|k| matches!(k, Value::BulkString(k) if k == probe.as_bytes()))
                });
                if ours {
                    let _ = tx.send(at);
                }
            })
        };
        let (mut bcast, _) = listener(base, forward(tx_b, probe("b"))).await;
        tracking_on(&mut bcast, Mode::Bcast, None).await;
        let (_default_listener, id) = listener(base, forward(tx_d, probe("d"))).await;
        let mut tracked = plain(base, false).await;
        tracking_on(&mut tracked, Mode::Default, Some(id)).await;
        let mut writer = plain(base, false).await;

        // Background writes under the prefix that the default-mode process never read: every
        // one reaches the BCAST listener, none the default one.
        let stop = Arc::new(AtomicU64::new(0));
        let load = (background > 0).then(|| {
            let (base, value, stop) = (base.to_owned(), value.to_vec(), stop.clone());
            tokio::spawn(async move {
                let mut conn = plain(&base, false).await;
                let seq = AtomicU64::new(7 << 40);
                // Bounded: at most 10 minutes, in 1 s slices.
                for _ in 0..600 {
                    if stop.load(Ordering::Relaxed) != 0 {
                        break;
                    }
                    paced_writes(&mut conn, background, Duration::from_secs(1), &value, &seq).await;
                }
            })
        });
        if background > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let new_hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        let mut hist = [new_hist(), new_hist()];
        let mut write_rt = new_hist();
        let mut lost = [0u64; 2];
        for round in 0..ROUNDS {
            for m in [round % 2, 1 - round % 2] {
                let (k, rx) = if m == 0 {
                    (probe("b"), &mut rx_b)
                } else {
                    (probe("d"), &mut rx_d)
                };
                if m == 1 {
                    // Default mode: the process reads the key (the server records it).
                    query(&mut tracked, redis::cmd("GET").arg(&k)).await;
                }
                while rx.try_recv().is_ok() {}
                let start = Instant::now();
                query(&mut writer, redis::cmd("SET").arg(&k).arg(value)).await;
                write_rt.saturating_record(start.elapsed().as_nanos() as u64);
                match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                    Ok(Some(at)) => {
                        hist[m].saturating_record(at.duration_since(start).as_nanos() as u64)
                    }
                    _ => lost[m] += 1,
                }
            }
        }
        stop.store(1, Ordering::Relaxed);
        if let Some(load) = load {
            let _ = load.await;
        }
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let label = if background > 0 {
            format!("with {background} background writes/s under the prefix")
        } else {
            "idle".to_owned()
        };
        println!(
            "\ntracking: invalidation latency, write start to push arrival, {ROUNDS} writes per \
             mode, {label}"
        );
        let mut modes = serde_json::Map::new();
        for (m, mode) in [Mode::Bcast, Mode::Default].iter().enumerate() {
            println!(
                "  {:<8} p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us  ({} not seen within 1 s)",
                mode.name(),
                us(&hist[m], 0.5),
                us(&hist[m], 0.99),
                hist[m].max() as f64 / 1000.0,
                lost[m]
            );
            modes.insert(
                mode.name().to_owned(),
                serde_json::json!({
                    "p50_us": us(&hist[m], 0.5),
                    "p99_us": us(&hist[m], 0.99),
                    "max_us": hist[m].max() as f64 / 1000.0,
                    "not_seen_within_1s": lost[m],
                }),
            );
        }
        println!(
            "  the write's own round trip: p50 {:.1} us, p99 {:.1} us",
            us(&write_rt, 0.5),
            us(&write_rt, 0.99)
        );
        modes.insert(
            "write_round_trip".to_owned(),
            serde_json::json!({ "p50_us": us(&write_rt, 0.5), "p99_us": us(&write_rt, 0.99) }),
        );
        out.insert(
            if background > 0 { "loaded" } else { "idle" }.to_owned(),
            serde_json::Value::Object(modes),
        );
    }
    out.insert(
        "background_writes_per_sec".to_owned(),
        serde_json::json!(background_rate),
    );
    serde_json::Value::Object(out)
}
