//! The near cache across separate OS processes (this test binary re-run with
//! [`WORKER_ENV`] set, each child one manager): a write in one process is seen by another
//! within the bound; a versioned stress of 10^6 operations over three processes; chaos
//! (`FLUSHALL`, `CLIENT KILL` of the tracking connections, a killed and restarted server)
//! under that load. Every operation is logged with wall-clock times (one clock for every
//! process of the machine) and checked afterwards against the rule of the near cache: no read
//! returns a value older than the last write that completed before the read began, beyond
//! `max_staleness` for another process's write (and at once for a write of its own process).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cachette::{CacheManager, NearCacheOptions};
use cachette_test_support::RedisServer;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::near::tracking_client_ids;
use crate::support::unique_prefix;

/// Set in a child process: its part, as JSON (see [`worker`]).
const WORKER_ENV: &str = "CACHETTE_NEAR_WORKER";
const WORKER_TEST: &str = "near_process::worker";
const LONG: Duration = Duration::from_secs(3600);
/// `max_staleness` of every manager here: the smallest allowed, the strictest check.
const BOUND: Duration = Duration::from_millis(200);
/// A read that returned no value (or an error) in a log.
const NONE: u64 = u64::MAX;

fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos(),
    )
    .expect("before 2554")
}

/// A plain manager (no near cache, so no tracking connection).
fn plain(url: &str, prefix: &str) -> CacheManager {
    CacheManager::builder()
        .url(url)
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("builds")
}

/// A manager with a near cache whose channel is up.
async fn manager(url: &str, prefix: &str, command_timeout: Duration) -> CacheManager {
    let cache = CacheManager::builder()
        .url(url)
        .key_prefix(prefix)
        .connect_timeout(command_timeout)
        .command_timeout(command_timeout)
        .near_cache(Some(NearCacheOptions {
            max_staleness: BOUND,
            ..NearCacheOptions::default()
        }))
        .build()
        .expect("builds");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.near_stats().expect("near").live {
        assert!(Instant::now() < deadline, "the channel never came up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache
}

/// Not a test by itself: the body of a child process of the tests below (returns at once when
/// run normally). Roles: `watch` (follows one key, round after round) and `load` (versioned
/// reads and writes, logged to a file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let spec: Value = serde_json::from_str(&spec).expect("a JSON spec");
    let url = spec["url"].as_str().expect("url");
    let prefix = spec["prefix"].as_str().expect("prefix");
    match spec["role"].as_str() {
        Some("watch") => watch(url, prefix, spec["rounds"].as_u64().expect("rounds")).await,
        Some("load") => load(url, prefix, &spec).await,
        other => panic!("unknown role {other:?}"),
    }
}

/// Each round `r`: hold `k` (value `r - 1`) in the tier, say `ready r`, then read until the
/// value is `r` and say when, and when the last read that still returned `r - 1` began
/// (`seen r <unix ns> <unix ns>`).
async fn watch(url: &str, prefix: &str, rounds: u64) {
    let cache = manager(url, prefix, Duration::from_secs(2)).await;
    let stats = || cache.near_stats().expect("near");
    for r in 1..=rounds {
        // Held: a read answered by the tier (the first read after a write may rightly not be
        // kept, when its reply crossed the write's own invalidation).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(r - 1));
            let hits = stats().hits;
            assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(r - 1));
            if stats().hits > hits {
                break;
            }
            assert!(Instant::now() < deadline, "k never entered the tier");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!("NEAR ready {r}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last_old = 0;
        let seen = loop {
            let began = now_ns();
            match cache.get::<u64>("k").await.unwrap() {
                Some(v) if v == r => break now_ns(),
                Some(v) => assert_eq!(v, r - 1, "a value from nowhere"),
                None => panic!("k vanished"),
            }
            last_old = began;
            assert!(
                Instant::now() < deadline,
                "round {r}: the write was never seen"
            );
            tokio::task::yield_now().await;
        };
        println!("NEAR seen {r} {seen} {last_old}");
    }
}

/// One record of a log: a read (`key`, value or [`NONE`], began, ended) or a write (`key`,
/// version, began, ended; the version is [`NONE`]-flagged in the high bit when it failed).
#[derive(Clone, Copy, Debug)]
struct Record {
    key: u64,
    value: u64,
    began: u64,
    ended: u64,
}

const FAILED: u64 = 1 << 63;

fn write_log(path: &Path, reads: &[Record], writes: &[Record]) {
    let mut out = Vec::with_capacity((reads.len() + writes.len() + 2) * 32);
    for part in [reads, writes] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        for r in part {
            for x in [r.key, r.value, r.began, r.ended] {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    std::fs::write(path, out).expect("write the log");
}

fn read_log(path: &Path) -> (Vec<Record>, Vec<Record>) {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .expect("a log")
        .read_to_end(&mut bytes)
        .unwrap();
    let mut words = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
    let mut part = || {
        let n = words.next().expect("a count");
        (0..n)
            .map(|_| {
                let mut next = || words.next().expect("a record");
                Record {
                    key: next(),
                    value: next(),
                    began: next(),
                    ended: next(),
                }
            })
            .collect::<Vec<_>>()
    };
    let reads = part();
    let writes = part();
    (reads, writes)
}

/// Versioned load: `tasks` tasks, each doing `ops` operations on `keys` keys `v{k}`; key `k`
/// is written only by process `k % processes` (task `k / processes % tasks` of it), one
/// version after the other. Stops early when stdin closes (chaos). Logs every operation.
async fn load(url: &str, prefix: &str, spec: &Value) {
    let index = spec["index"].as_u64().unwrap();
    let processes = spec["processes"].as_u64().unwrap();
    let keys = spec["keys"].as_u64().unwrap();
    let tasks = spec["tasks"].as_u64().unwrap();
    let ops = spec["ops"].as_u64().unwrap();
    let write_per_mille = spec["write_per_mille"].as_u64().unwrap();
    // Chaos runs until stdin closes: a pause of 1 ms every `pace` operations bounds its logs.
    let pace = spec["pace"].as_u64().unwrap_or(0);
    let out = PathBuf::from(spec["out"].as_str().unwrap());
    let timeout = Duration::from_millis(spec["timeout_ms"].as_u64().unwrap());
    let cache = manager(url, prefix, timeout).await;
    // Paced (chaos): stop when the parent closes stdin (or after `ops`).
    let stop = Arc::new(AtomicBool::new(false));
    if pace > 0 {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            stop.store(true, Ordering::Relaxed);
        });
    }
    println!("NEAR ready {index}");
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (cache, stop) = (cache.clone(), stop.clone());
            let rng_seed = index * 1000 + task;
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(rng_seed);
                let mine: Vec<u64> = (0..keys)
                    .filter(|k| k % processes == index && k / processes % tasks == task)
                    .collect();
                let mut version: HashMap<u64, u64> = HashMap::new();
                let (mut reads, mut writes) = (Vec::new(), Vec::new());
                let (mut errors, mut done) = (0u64, 0u64);
                for i in 0..ops {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    done += 1;
                    if pace > 0 && i % pace == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else if i % 16 == 0 {
                        // Hits never wait: let the channel's driver and the other task run.
                        tokio::task::yield_now().await;
                    }
                    if !mine.is_empty() && rng.u64(0..1000) < write_per_mille {
                        let key = mine[rng.usize(0..mine.len())];
                        let v = version.entry(key).or_insert(0);
                        *v += 1;
                        let began = now_ns();
                        let ok = cache.set(&format!("v{key}"), v, LONG).await.is_ok();
                        errors += u64::from(!ok);
                        writes.push(Record {
                            key,
                            value: if ok { *v } else { *v | FAILED },
                            began,
                            ended: now_ns(),
                        });
                    } else {
                        let key = rng.u64(0..keys);
                        let began = now_ns();
                        let got = cache.get::<u64>(&format!("v{key}")).await;
                        let ended = now_ns();
                        match got {
                            Ok(v) => reads.push(Record {
                                key,
                                value: v.unwrap_or(NONE),
                                began,
                                ended,
                            }),
                            Err(_) => errors += 1,
                        }
                    }
                }
                (reads, writes, errors, done)
            })
        })
        .collect();
    let (mut reads, mut writes, mut errors, mut done) = (Vec::new(), Vec::new(), 0, 0);
    for h in handles {
        let (r, w, e, d) = h.await.unwrap();
        reads.extend(r);
        writes.extend(w);
        errors += e;
        done += d;
    }
    write_log(&out, &reads, &writes);
    let s = cache.near_stats().unwrap();
    println!(
        "NEAR done {index} ops={done} errors={errors} hits={} misses={} invalidations={} \
         flushes={} discarded={}",
        s.hits, s.misses, s.invalidations, s.flushes, s.discarded
    );
}

/// Re-runs this binary as a worker with `spec`.
fn spawn_worker(spec: &Value) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([WORKER_TEST, "--exact", "--nocapture", "--test-threads", "1"])
        .env(WORKER_ENV, spec.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("re-run the test binary")
}

/// The next `NEAR …` line of a worker (its words after `NEAR`), within `within`.
async fn next_line(out: &mut BufReader<ChildStdout>, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout_at(deadline, out.read_line(&mut line))
            .await
            .expect("the worker answered in time")
            .unwrap();
        assert!(n > 0, "the worker ended early");
        // libtest may have written `test … ... ` before it on the same line.
        if let Some((_, rest)) = line.trim().split_once("NEAR ") {
            return rest.split(' ').map(str::to_owned).collect();
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_one_process_is_seen_by_another_within_the_bound() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return;
    }
    const ROUNDS: u64 = 20;
    let server = RedisServer::new();
    let prefix = unique_prefix("procs");
    let cache = manager(&server.url(), &prefix, Duration::from_secs(2)).await;
    cache.set("k", &0u64, LONG).await.unwrap();
    let mut child = spawn_worker(&json!({
        "role": "watch", "url": server.url(), "prefix": prefix, "rounds": ROUNDS,
    }));
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut latencies, mut late) = (Vec::new(), Vec::new());
    for r in 1..=ROUNDS {
        assert_eq!(
            next_line(&mut out, Duration::from_secs(10)).await,
            ["ready".to_owned(), r.to_string()]
        );
        cache.set("k", &r, LONG).await.unwrap();
        let written = now_ns();
        let seen = next_line(&mut out, Duration::from_secs(15)).await;
        assert_eq!(seen[..2], ["seen".to_owned(), r.to_string()]);
        let at: u64 = seen[2].parse().unwrap();
        latencies.push(at.saturating_sub(written));
        // The rule: no read that began `BOUND` after the write returned reads the old value.
        let last_old: u64 = seen[3].parse().unwrap();
        if last_old > written + BOUND.as_nanos() as u64 {
            late.push((r, Duration::from_nanos(last_old - written)));
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the worker ended")
        .unwrap();
    assert!(status.success());
    latencies.sort_unstable();
    eprintln!(
        "near across processes: write to seen p50 {:?}, max {:?} over {ROUNDS} rounds \
         (bound {BOUND:?})",
        Duration::from_nanos(percentile(&latencies, 0.5)),
        Duration::from_nanos(*latencies.last().unwrap())
    );
    assert!(
        late.is_empty(),
        "reads of the old value that began later than the bound after the write: {late:?}"
    );
}

/// A destructive event of the chaos test: every key may be gone from `began` to `ended`.
#[derive(Clone, Copy, Debug)]
struct Event {
    began: u64,
    ended: u64,
}

/// What the logs show against the rule; `violations` must be empty.
#[derive(Debug, Default)]
struct Verdict {
    reads: usize,
    violations: Vec<String>,
    /// Reads of another process's key older than its newest completed write, and by how
    /// much (ns since the first newer write completed): allowed up to the bound.
    lags: Vec<u64>,
    /// Reads of a value written before a flush that began after the flush ended (no bound).
    after_flush: usize,
}

impl Verdict {
    /// Fails with the number of violations and the first few.
    fn assert_no_violations(&self) {
        assert!(
            self.violations.is_empty(),
            "{} violations, e.g. {:#?}",
            self.violations.len(),
            &self.violations[..self.violations.len().min(5)]
        );
    }
}

/// Checks every read of every worker (`logs[p]` from process `p`, which owns the keys
/// `k % logs.len() == p`) against the writes and the `events`.
fn check(logs: &[(Vec<Record>, Vec<Record>)], events: &[Event]) -> Verdict {
    let processes = logs.len() as u64;
    let bound = BOUND.as_nanos() as u64;
    // Per key, its writes in version order (one writer per key: also completion order).
    let mut writes: HashMap<u64, Vec<Record>> = HashMap::new();
    for (_, w) in logs {
        for r in w {
            writes.entry(r.key).or_default().push(*r);
        }
    }
    for w in writes.values_mut() {
        w.sort_by_key(|r| r.value & !FAILED);
    }
    let mut verdict = Verdict::default();
    for (p, (reads, _)) in logs.iter().enumerate() {
        for read in reads {
            verdict.reads += 1;
            let own = read.key % processes == p as u64;
            let cutoff = read.began.saturating_sub(if own { 0 } else { bound });
            let flush_cutoff = read.began.saturating_sub(bound);
            let log = writes.get(&read.key).map_or(&[][..], Vec::as_slice);
            let done: Vec<&Record> = log.iter().filter(|w| w.value & FAILED == 0).collect();
            // The newest write that completed before the cutoff (version 0 was written by the
            // parent before the workers started).
            let last = done.iter().rev().find(|w| w.ended < cutoff);
            let last_version = last.map_or(0, |w| w.value);
            let last_began = last.map_or(0, |w| w.began);
            let wiped_since = |t: u64| events.iter().any(|e| e.ended > t && e.began < read.ended);
            let fail = |why: String| {
                format!(
                    "process {p} read v{} = {} at {} ({}): {why}",
                    read.key,
                    if read.value == NONE {
                        "none".to_owned()
                    } else {
                        read.value.to_string()
                    },
                    read.began,
                    if own { "own key" } else { "another's key" }
                )
            };
            if read.value == NONE {
                if !wiped_since(last_began) {
                    verdict.violations.push(fail(format!(
                        "version {last_version} was written and never wiped"
                    )));
                }
                continue;
            }
            let v = read.value;
            if v < last_version {
                verdict
                    .violations
                    .push(fail(format!("version {last_version} was complete")));
            }
            // A value written before a flush that ended before the cutoff.
            // When the write of `v` completed (0: the parent's version 0; a failed write may
            // have been applied at any time, so it never counts as written before a flush).
            let written_end = match log.iter().find(|w| w.value & !FAILED == v) {
                Some(w) if w.value & FAILED != 0 => u64::MAX,
                Some(w) => w.ended,
                None => 0,
            };
            if events
                .iter()
                .any(|e| written_end < e.began && e.ended < flush_cutoff)
            {
                verdict
                    .violations
                    .push(fail("a value from before a flush".to_owned()));
            }
            if events
                .iter()
                .any(|e| written_end < e.began && e.ended < read.began)
            {
                verdict.after_flush += 1;
            }
            if !own {
                // Staleness at all: the first newer write that completed before the read.
                if let Some(newer) = done.iter().find(|w| w.value > v && w.ended < read.began) {
                    verdict.lags.push(read.began - newer.ended);
                }
            }
        }
    }
    verdict
}

struct Run {
    logs: Vec<(Vec<Record>, Vec<Record>)>,
    summaries: Vec<Vec<String>>,
}

/// Starts `processes` load workers, runs `during` while they work (it gets their stdin
/// handles' owner to close), and collects their logs.
async fn run_load<F: std::future::Future<Output = ()>>(
    server: &RedisServer,
    processes: u64,
    ops: u64,
    write_per_mille: u64,
    pace: u64,
    timeout: Duration,
    during: impl FnOnce() -> F,
) -> Run {
    const KEYS: u64 = 48;
    let prefix = unique_prefix("procs");
    let dir = tempfile::tempdir().unwrap();
    let setup = plain(&server.url(), &prefix);
    for k in 0..KEYS {
        setup.set(&format!("v{k}"), &0u64, LONG).await.unwrap();
    }
    let mut children = Vec::new();
    for index in 0..processes {
        let mut child = spawn_worker(&json!({
            "role": "load", "url": server.url(), "prefix": prefix, "index": index,
            "processes": processes, "keys": KEYS, "tasks": 2, "ops": ops,
            "write_per_mille": write_per_mille, "pace": pace,
            "out": dir.path().join(format!("{index}.log")).to_str().unwrap(),
            "timeout_ms": timeout.as_millis() as u64,
        }));
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        assert_eq!(
            next_line(&mut out, Duration::from_secs(15)).await[0],
            "ready"
        );
        children.push((child, stdin, out));
    }
    during().await;
    let mut summaries = Vec::new();
    for (mut child, stdin, mut out) in children {
        drop(stdin); // stops a paced (chaos) run; a stress run ends by itself
        let line = next_line(&mut out, Duration::from_secs(120)).await;
        assert_eq!(line[0], "done", "{line:?}");
        summaries.push(line);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the worker ended")
            .unwrap();
        assert!(status.success());
    }
    let logs = (0..processes)
        .map(|i| read_log(&dir.path().join(format!("{i}.log"))))
        .collect();
    let _ = std::io::stderr().flush();
    Run { logs, summaries }
}

fn field(summary: &[String], name: &str) -> u64 {
    summary
        .iter()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {summary:?}"))
}

fn report(what: &str, run: &Run, verdict: &Verdict) {
    let mut lags = verdict.lags.clone();
    lags.sort_unstable();
    let total = |name| run.summaries.iter().map(|s| field(s, name)).sum::<u64>();
    eprintln!(
        "{what}: {} operations ({} reads checked), {} errors, {} tier hits, {} misses, {} \
         invalidations, {} flushes, {} discarded; {} reads of another process's key older than \
         its newest completed write (lag p50 {:?}, p99 {:?}, max {:?}; allowed {BOUND:?}); {} \
         reads of a pre-flush value after the flush; {} violations",
        total("ops"),
        verdict.reads,
        total("errors"),
        total("hits"),
        total("misses"),
        total("invalidations"),
        total("flushes"),
        total("discarded"),
        lags.len(),
        Duration::from_nanos(percentile(&lags, 0.5)),
        Duration::from_nanos(percentile(&lags, 0.99)),
        Duration::from_nanos(lags.last().copied().unwrap_or(0)),
        verdict.after_flush,
        verdict.violations.len(),
    );
}

/// 10^6 operations over three processes (two tasks each), 2 % writes, versioned: no read is
/// older than the rule allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_operations_over_three_processes_keep_the_bound() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return;
    }
    const PROCESSES: u64 = 3;
    const OPS_PER_TASK: u64 = 1_000_000 / (PROCESSES * 2) + 1;
    let server = RedisServer::new();
    let run = run_load(
        &server,
        PROCESSES,
        OPS_PER_TASK,
        20,
        0,
        Duration::from_secs(2),
        || async {},
    )
    .await;
    let verdict = check(&run.logs, &[]);
    report("near stress", &run, &verdict);
    let total: u64 = run.summaries.iter().map(|s| field(s, "ops")).sum();
    assert!(total >= 1_000_000, "{total} operations");
    assert_eq!(
        run.summaries
            .iter()
            .map(|s| field(s, "errors"))
            .sum::<u64>(),
        0
    );
    verdict.assert_no_violations();
    // The tier answered most reads: the stress went through the near cache.
    for s in &run.summaries {
        assert!(field(s, "hits") > field(s, "misses"), "{s:?}");
    }
}

/// Under load from three processes: `FLUSHALL`, the tracking connections killed, the server
/// killed and restarted (empty), `FLUSHALL` again. No read breaks the rule, and no value from
/// before a flush is read once the flush is older than the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_under_load_from_three_processes() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return;
    }
    let server = RedisServer::new();
    let events = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let killed = Arc::new(parking_lot::Mutex::new(0usize));
    let pause = || tokio::time::sleep(Duration::from_millis(600));
    let run = run_load(
        &server,
        3,
        5_000_000,
        20,
        20,
        Duration::from_millis(300),
        || {
            let (events, killed, server) = (events.clone(), killed.clone(), &server);
            async move {
                let flushall = || {
                    let began = now_ns();
                    server.cli(["FLUSHALL"]);
                    events.lock().push(Event {
                        began,
                        ended: now_ns(),
                    });
                };
                pause().await;
                flushall();
                pause().await;
                // Every worker's channel (one may be reconnecting on a loaded machine).
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut ids = tracking_client_ids(server);
                while ids.len() < 3 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    ids = tracking_client_ids(server);
                }
                for id in &ids {
                    server.cli(["CLIENT", "KILL", "ID", id]);
                }
                *killed.lock() = ids.len();
                pause().await;
                let began = now_ns();
                server.kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                server.restart();
                events.lock().push(Event {
                    began,
                    ended: now_ns(),
                });
                tokio::time::sleep(Duration::from_millis(1500)).await;
                flushall();
                pause().await;
            }
        },
    )
    .await;
    assert_eq!(*killed.lock(), 3, "one tracking connection per process");
    let events = events.lock().clone();
    let verdict = check(&run.logs, &events);
    report("near chaos", &run, &verdict);
    verdict.assert_no_violations();
    for s in &run.summaries {
        // Two FLUSHALLs, a killed channel, a dead server: each flushed every tier.
        assert!(field(s, "flushes") >= 4, "{s:?}");
        assert!(field(s, "hits") > 0, "{s:?}");
    }
}
