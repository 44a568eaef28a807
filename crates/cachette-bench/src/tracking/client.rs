//! The pieces of the tracking benchmark: connections in each tracking mode, a simulated
//! near-cache process (`Reader`), paced writes, and the server's counters.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::Notify;

/// The near cache's key prefix in every measurement.
pub(super) const PREFIX: &str = "trk:";
/// Keys under the prefix that the writers write (uniformly at random).
pub(super) const KEYS: u64 = 10_000;
/// Keys per pipeline when a process reads its set.
pub(super) const BATCH: usize = 500;

/// CPU time this process has used, in seconds (user + system, from `/proc/self/stat` at the
/// usual 100 ticks per second; 0 where there is no `/proc`).
pub(super) fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name: state is the 3rd field, utime the 14th, stime the 15th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// Whether `BENCH_FILTER` keeps `group`.
pub(super) fn wanted(group: &str) -> bool {
    std::env::var("BENCH_FILTER").map_or(true, |f| group.contains(f.as_str()))
}

pub(super) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub(super) fn key(i: u64) -> String {
    format!("{PREFIX}{i}")
}

/// The index of a key written by [`key`], if it is one.
pub(super) fn index(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(PREFIX.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

/// A deterministic spread of `n` (splitmix64).
pub(super) fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which client-side caching mode a process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `CLIENT TRACKING ON BCAST PREFIX trk:` on the invalidation connection (cachette today).
    Bcast,
    /// `CLIENT TRACKING ON REDIRECT <invalidation connection>` on the data connection.
    Default,
}

impl Mode {
    pub(super) fn name(self) -> &'static str {
        match self {
            Mode::Bcast => "BCAST",
            Mode::Default => "default",
        }
    }
}

/// What a listener does with an invalidation push: when it arrived and its keys (`None`: a
/// flush).
pub(super) type OnPush = Box<dyn Fn(Instant, Option<&[Value]>) + Send + Sync>;

/// A RESP3 connection whose invalidation pushes go to `on_push`, and its client id.
pub(super) async fn listener(base: &str, on_push: OnPush) -> (MultiplexedConnection, i64) {
    let client = redis::Client::open(format!("{base}?protocol=resp3")).expect("RESP3 client");
    let sender = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
        if info.kind == PushKind::Invalidate {
            let now = Instant::now();
            match info.data.first() {
                Some(Value::Array(keys)) => on_push(now, Some(keys)),
                _ => on_push(now, None),
            }
        }
        Ok(())
    };
    let config = patient().set_push_sender(sender);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("listener connection");
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await
        .expect("CLIENT ID");
    (conn, id)
}

pub(super) async fn plain(base: &str, resp3: bool) -> MultiplexedConnection {
    let url = if resp3 {
        format!("{base}?protocol=resp3")
    } else {
        base.to_owned()
    };
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection_with_config(&patient())
        .await
        .expect("connection")
}

/// Connection settings that outlast a loaded machine: the `redis` crate's default 500 ms
/// response timeout fails a 500-key pipeline when the two cores are busy elsewhere.
pub(super) fn patient() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(30)))
}

pub(super) async fn query(conn: &mut MultiplexedConnection, cmd: &redis::Cmd) {
    let _: Value = cmd.query_async(conn).await.expect("command");
}

pub(super) async fn tracking_on(
    conn: &mut MultiplexedConnection,
    mode: Mode,
    redirect: Option<i64>,
) {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON");
    match mode {
        Mode::Bcast => {
            cmd.arg("BCAST").arg("PREFIX").arg(PREFIX);
        }
        Mode::Default => {
            if let Some(id) = redirect {
                cmd.arg("REDIRECT").arg(id);
            }
        }
    }
    query(conn, &cmd).await;
}

/// Reads `keys` the way the near cache reads a miss (`GET` + `PTTL`), `BATCH` keys per
/// pipeline.
pub(super) async fn read_keys(
    conn: &mut MultiplexedConnection,
    keys: impl IntoIterator<Item = u64>,
) {
    let mut pipe = redis::pipe();
    let mut n = 0;
    for i in keys {
        let k = key(i);
        pipe.cmd("GET").arg(&k).cmd("PTTL").arg(&k);
        n += 1;
        if n == BATCH {
            let _: Value = pipe.query_async(conn).await.expect("read pipeline");
            pipe = redis::pipe();
            n = 0;
        }
    }
    if n > 0 {
        let _: Value = pipe.query_async(conn).await.expect("read pipeline");
    }
}

/// `SET`s `keys` keys `trk:0..` with `value`, `BATCH` per pipeline.
pub(super) async fn seed(conn: &mut MultiplexedConnection, keys: u64, value: &[u8]) {
    let mut start = 0;
    while start < keys {
        let end = (start + BATCH as u64).min(keys);
        let mut pipe = redis::pipe();
        for i in start..end {
            pipe.cmd("SET").arg(key(i)).arg(value).ignore();
        }
        let _: () = pipe.query_async(conn).await.expect("seed");
        start = end;
    }
}

/// One `INFO` field as a number (0 when absent).
pub(super) fn field(info: &str, name: &str) -> f64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub(super) async fn info(conn: &mut MultiplexedConnection) -> String {
    redis::cmd("INFO")
        .arg("everything")
        .query_async(conn)
        .await
        .expect("INFO")
}

/// Waits (at most 5 s) until the server has no tracking client left from earlier rows.
pub(super) async fn no_tracking_clients(admin: &mut MultiplexedConnection) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while field(&info(admin).await, "tracking_clients") > 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What one near-cache process received.
#[derive(Default)]
pub(super) struct Inbox {
    pub(super) messages: AtomicU64,
    pub(super) keys: AtomicU64,
    /// Keys received that the process had read (the others are wasted traffic).
    pub(super) held: AtomicU64,
    pub(super) flushes: AtomicU64,
    /// Keys read again after their invalidation.
    pub(super) rereads: AtomicU64,
    /// Invalidated keys of the read set waiting to be read again.
    pub(super) pending: Mutex<HashSet<u64>>,
    pub(super) wake: Notify,
}

/// A process with a near cache: an invalidation connection (RESP3) and a data connection
/// (RESP2, tracked with `REDIRECT` in default mode), having read keys `0..read`. With
/// `reread`, each invalidated key of its set is read again on the data connection (at most
/// once per batch of pushes), as a near cache with a hot read set would.
pub(super) struct Reader {
    pub(super) inbox: Arc<Inbox>,
    pub(super) listener: MultiplexedConnection,
    pub(super) rereader: tokio::task::JoinHandle<()>,
}

impl Reader {
    pub(super) async fn new(base: &str, mode: Mode, read: u64, reread: bool) -> Reader {
        let inbox = Arc::new(Inbox::default());
        let on_push: OnPush = {
            let inbox = inbox.clone();
            Box::new(move |_, keys| {
                inbox.messages.fetch_add(1, Ordering::Relaxed);
                let Some(keys) = keys else {
                    inbox.flushes.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                inbox.keys.fetch_add(keys.len() as u64, Ordering::Relaxed);
                let mut wanted = Vec::new();
                for k in keys {
                    if let Value::BulkString(k) = k {
                        if let Some(i) = index(k).filter(|i| *i < read) {
                            wanted.push(i);
                        }
                    }
                }
                inbox.held.fetch_add(wanted.len() as u64, Ordering::Relaxed);
                if reread && !wanted.is_empty() {
                    inbox.pending.lock().expect("pending").extend(wanted);
                    inbox.wake.notify_one();
                }
            })
        };
        let (mut listener, id) = listener(base, on_push).await;
        let mut data = plain(base, false).await;
        match mode {
            Mode::Bcast => tracking_on(&mut listener, Mode::Bcast, None).await,
            Mode::Default => tracking_on(&mut data, Mode::Default, Some(id)).await,
        }
        read_keys(&mut data, 0..read).await;
        let rereader = {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                loop {
                    inbox.wake.notified().await;
                    let keys: Vec<u64> = inbox.pending.lock().expect("pending").drain().collect();
                    inbox
                        .rereads
                        .fetch_add(keys.len() as u64, Ordering::Relaxed);
                    read_keys(&mut data, keys).await;
                }
            })
        };
        Reader {
            inbox,
            listener,
            rereader,
        }
    }

    /// Returns once every push the server queued for this process before now has arrived
    /// (replies and pushes come in order).
    pub(super) async fn settle(&mut self) {
        query(&mut self.listener, &redis::cmd("PING")).await;
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.rereader.abort();
    }
}

/// Writes `rate` SETs per second for `duration` to random keys of `0..KEYS` (a pipeline per
/// millisecond); returns how many.
pub(super) async fn paced_writes(
    conn: &mut MultiplexedConnection,
    rate: u64,
    duration: Duration,
    value: &[u8],
    seq: &AtomicU64,
) -> u64 {
    let per_tick = (rate / 1000).max(1);
    let ticks = duration.as_millis() as u64;
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    let mut written = 0;
    for _ in 0..ticks {
        interval.tick().await;
        let mut pipe = redis::pipe();
        for _ in 0..per_tick {
            let i = mix(seq.fetch_add(1, Ordering::Relaxed)) % KEYS;
            pipe.cmd("SET").arg(key(i)).arg(value).ignore();
        }
        let _: () = pipe.query_async(conn).await.expect("paced SET");
        written += per_tick;
    }
    written
}
