//! End-to-end tests of the `cachette` binary against a real, spawned `redis-server`, and a
//! real local Redis Cluster (3 primaries) for the `cluster_*` tests.
//!
//! One server and one cluster for the whole binary (started on first use); each test works
//! under its own key prefix. Every command
//! runs with the REDIS_* variables removed and in a directory without `config.json`, so the
//! machine's environment cannot leak in.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Command as StdCommand;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use cachette_test_support::{RedisCluster, RedisServer};
use predicates::prelude::*;
use predicates::str::contains;
use proptest::strategy::Strategy as _;

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::new)
}

/// `cachette` with a clean environment, no config file, and no `--url`.
fn bare() -> Command {
    let mut cmd = Command::cargo_bin("cachette").expect("the cachette binary");
    for var in cachette::config::ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("CACHETTE_CONFIG");
    cmd.current_dir(env!("CARGO_TARGET_TMPDIR"));
    cmd.timeout(Duration::from_secs(30));
    cmd
}

/// `cachette --url <test server> --prefix <prefix> args...`.
fn cli(prefix: &str, args: &[&str]) -> Command {
    let mut cmd = bare();
    cmd.arg("--url")
        .arg(server().url())
        .arg("--prefix")
        .arg(prefix);
    cmd.args(args);
    cmd
}

fn stdout_of(prefix: &str, args: &[&str]) -> String {
    let out = cli(prefix, args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("utf-8 output")
}

/// Runs `body` on a one-worker runtime with a manager on the shared test server under
/// `prefix` (what a service beside the CLI would do).
fn with_manager<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(cachette::CacheManager) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run_with(
        cachette::CacheManager::builder()
            .url(server().url())
            .key_prefix(prefix),
        body,
    );
}

/// Runs `body` on a one-worker runtime with the manager `builder` makes there.
fn run_with<F, Fut>(builder: cachette::CacheManagerBuilder, body: F)
where
    F: FnOnce(cachette::CacheManager) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        body(builder.build().unwrap()).await;
    });
}

#[test]
fn help_lists_every_command() {
    let assert = bare().arg("--help").assert().success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for command in [
        "ping",
        "info",
        "keys",
        "get",
        "set",
        "del",
        "ttl",
        "expire",
        "delete-pattern",
        "clear",
        "stats",
        "bench",
    ] {
        assert!(
            out.contains(&format!("  {command} ")),
            "{command} missing from\n{out}"
        );
    }
    assert!(out.contains("Exit codes"));
    bare()
        .args(["bench", "--help"])
        .assert()
        .success()
        .stdout(contains("--read-ratio"));
}

#[test]
fn unknown_command_is_a_usage_error() {
    bare()
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(contains("unrecognized subcommand 'frobnicate'"));
    bare().args(["expire", "k", "0"]).assert().code(2);
}

#[test]
fn ping_answers() {
    cli("t_ping:", &["ping"])
        .assert()
        .success()
        .stdout(contains("PONG from redis://127.0.0.1:"));
}

#[test]
fn set_get_ttl_expire_del_round_trip() {
    let p = "t_rt:";
    cli(
        p,
        &[
            "set",
            "user:1",
            r#"{"name":"Ada","roles":["admin"]}"#,
            "--ttl",
            "100",
        ],
    )
    .assert()
    .success()
    .stdout("OK\n");
    // Stored exactly as the library stores it: compact JSON under the prefix.
    assert_eq!(
        server().cli(["GET", "t_rt:user:1"]),
        r#"{"name":"Ada","roles":["admin"]}"#
    );
    cli(p, &["get", "user:1"])
        .assert()
        .success()
        .stdout("{\n  \"name\": \"Ada\",\n  \"roles\": [\n    \"admin\"\n  ]\n}\n");
    let ttl: u64 = stdout_of(p, &["ttl", "user:1"]).trim().parse().unwrap();
    assert!((95..=100).contains(&ttl), "{ttl}");
    cli(p, &["expire", "user:1", "5000"]).assert().success();
    let ttl: u64 = stdout_of(p, &["ttl", "user:1"]).trim().parse().unwrap();
    assert!((4990..=5000).contains(&ttl), "{ttl}");
    cli(p, &["set", "forever", "42", "--persist"])
        .assert()
        .success();
    cli(p, &["ttl", "forever"])
        .assert()
        .success()
        .stdout("-1\n");
    cli(p, &["del", "user:1", "forever", "never-there"])
        .assert()
        .success()
        .stdout("2\n");
    cli(p, &["get", "user:1"])
        .assert()
        .code(1)
        .stderr(contains("does not exist"));
    cli(p, &["ttl", "user:1"]).assert().code(1);
    cli(p, &["expire", "user:1", "10"]).assert().code(1);
}

#[test]
fn set_reads_stdin_and_uses_the_default_ttl() {
    let p = "t_stdin:";
    cli(p, &["set", "k", "-"])
        .write_stdin("[1, 2, 3]\n")
        .assert()
        .success();
    cli(p, &["get", "k"])
        .assert()
        .success()
        .stdout("[\n  1,\n  2,\n  3\n]\n");
    // Default TTL of the library: 3600 s.
    let ttl: u64 = stdout_of(p, &["ttl", "k"]).trim().parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
}

#[test]
fn malformed_json_is_refused_with_exit_2() {
    cli("t_bad:", &["set", "k", "{name: Ada}"])
        .assert()
        .code(2)
        .stderr(contains("not valid JSON").and(contains("line 1 column 2")));
    cli("t_bad:", &["set", "k", "plain text"]).assert().code(2);
    assert_eq!(server().cli(["EXISTS", "t_bad:k"]), "0");
    cli("t_bad:", &["set", "k", "1", "--ttl", "0"])
        .assert()
        .code(2);
}

#[test]
fn a_ttl_out_of_range_is_a_usage_error_naming_the_flag() {
    for ttl in [
        "18446744073709551615",
        "3153600001",
        "99999999999999999999",
        "-1",
    ] {
        cli("t_ttl:", &["set", "k", "1", &format!("--ttl={ttl}")])
            .assert()
            .code(2)
            .stderr(contains("--ttl"));
        cli("t_ttl:", &["expire", "k", ttl]).assert().code(2);
    }
    assert_eq!(server().cli(["EXISTS", "t_ttl:k"]), "0");
    // The largest accepted TTL (100 years) is stored as such on Redis.
    cli("t_ttl:", &["set", "k", "1", "--ttl", "3153600000"])
        .assert()
        .success();
    let left: u64 = stdout_of("t_ttl:", &["ttl", "k"]).trim().parse().unwrap();
    assert!((3_153_599_990..=3_153_600_000).contains(&left), "{left}");
    cli("t_ttl:", &["expire", "k", "3153600000"])
        .assert()
        .success();
}

#[test]
fn get_shows_non_json_values_safely() {
    let p = "t_raw:";
    server().cli(["SET", "t_raw:text", "hello world"]);
    cli(p, &["get", "text"])
        .assert()
        .success()
        .stdout("hello world\n")
        .stderr(contains("not JSON"));
    // A value with an escape sequence and invalid UTF-8, written through the library.
    with_manager(p, |cache| async move {
        cache
            .set_raw("bin", &b"\x93\xa1\x1b[31m"[..], cachette::Ttl::Never)
            .await
            .unwrap();
    });
    cli(p, &["get", "bin"])
        .assert()
        .success()
        .stdout("\\x93\\xa1\\x1b[31m\n")
        .stderr(contains("binary"));
    let raw = cli(p, &["get", "bin", "--raw"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(raw, b"\x93\xa1\x1b[31m");
}

#[test]
fn keys_streams_matches_under_the_prefix_only() {
    let p = "t_keys:";
    for i in 0..25 {
        server().cli(["SET", &format!("t_keys:user:{i}"), "1"]);
    }
    server().cli(["SET", "t_keys:post:1", "1"]);
    server().cli(["SET", "other:user:1", "1"]);
    let out = stdout_of(p, &["keys", "user:*"]);
    let mut keys: Vec<&str> = out.lines().collect();
    keys.sort_unstable();
    assert_eq!(keys.len(), 25);
    assert!(keys.iter().all(|k| k.starts_with("user:")), "{keys:?}");
    assert_eq!(stdout_of(p, &["keys"]).lines().count(), 26);
    assert_eq!(
        stdout_of(p, &["keys", "user:*", "--count", "3"])
            .lines()
            .count(),
        3
    );
}

#[test]
fn a_pattern_matching_nothing_is_not_an_error() {
    let p = "t_none:";
    cli(p, &["keys", "nothing:*"])
        .assert()
        .success()
        .stdout("")
        .stderr(contains("no keys match"));
    cli(p, &["delete-pattern", "nothing:*"])
        .assert()
        .success()
        .stdout("0\n")
        .stderr(contains("nothing to delete"));
}

#[test]
fn delete_pattern_refuses_without_a_terminal_or_yes() {
    let p = "t_delp:";
    for i in 0..5 {
        server().cli(["SET", &format!("t_delp:s:{i}"), "1"]);
    }
    server().cli(["SET", "t_delp:keep", "1"]);
    server().cli(["SET", "t_other:s:1", "1"]);
    cli(p, &["delete-pattern", "s:*"])
        .write_stdin("y\n") // stdin is a pipe, not a terminal: no prompt, no answer read
        .assert()
        .code(4)
        .stderr(contains("refusing to delete 5 keys").and(contains("--yes")));
    assert_eq!(stdout_of(p, &["keys", "s:*"]).lines().count(), 5);
    cli(p, &["delete-pattern", "s:*", "--yes"])
        .assert()
        .success()
        .stdout("5\n");
    assert_eq!(stdout_of(p, &["keys"]), "keep\n");
    assert_eq!(server().cli(["EXISTS", "t_other:s:1"]), "1");
}

#[test]
fn clear_removes_only_its_own_prefix() {
    let p = "t_clear:";
    for i in 0..3 {
        server().cli(["SET", &format!("t_clear:{i}"), "1"]);
    }
    server().cli(["SET", "t_clearx", "1"]);
    cli(p, &["clear"]).assert().code(4);
    cli(p, &["clear", "--yes"]).assert().success().stdout("3\n");
    assert_eq!(server().cli(["EXISTS", "t_clearx"]), "1");
    cli("", &["clear", "--yes"])
        .assert()
        .code(2)
        .stderr(contains("empty prefix"));
}

#[test]
fn info_summarises_and_prints_json() {
    let p = "t_info:";
    server().cli(["SET", "t_info:a", "1"]);
    cli(p, &["info"])
        .assert()
        .success()
        .stdout(contains("version       redis ").and(contains("\"t_info:\": 1 keys")));
    let out = stdout_of(p, &["info", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["keys_under_prefix"], 1);
    assert_eq!(doc["prefix"], "t_info:");
    assert!(doc["redis_version"].is_string());
    assert!(doc["sections"]["memory"]["used_memory"].is_u64());
    let out = stdout_of(p, &["info", "--json", "--no-count"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["keys_under_prefix"].is_null());
}

#[test]
fn stats_reads_what_a_publisher_wrote() {
    let p = "t_stats:";
    cli(p, &["stats"])
        .assert()
        .success()
        .stderr(contains("no statistics"));
    with_manager(p, |cache| async move {
        cache.set("a", &1, cachette::Ttl::Never).await.unwrap();
        for _ in 0..3 {
            let _: Option<u32> = cache.get("a").await.unwrap();
        }
        let _: Option<u32> = cache.get("missing").await.unwrap();
        let publisher = cachette::StatsPublisher::builder(server().url())
            .prefix(p)
            .functions(false)
            .manager("app::direct", &cache)
            .interval(Duration::from_secs(3600))
            .start()
            .unwrap();
        assert!(publisher.publish_now().await.unwrap() >= 3);
        // Nothing new: no round trip, nothing counted twice.
        assert_eq!(publisher.publish_now().await.unwrap(), 0);
        let _: Option<u32> = cache.get("a").await.unwrap();
        publisher.stop().await; // publishes the last hit
    });
    cli(p, &["stats"])
        .assert()
        .success()
        .stdout(contains("app::direct").and(contains("80.0%")));
    let doc: serde_json::Value = serde_json::from_str(&stdout_of(p, &["stats", "--json"])).unwrap();
    let f = &doc["functions"][0];
    assert_eq!(f["name"], "app::direct");
    assert_eq!(f["counters"]["hits"], 4);
    assert_eq!(f["counters"]["misses"], 1);
    assert_eq!(f["counters"]["writes"], 1);
    assert!(doc["published_at_ms"].is_u64());
    cli(p, &["stats", "--filter", "nope"])
        .assert()
        .success()
        .stdout("");
    cli(p, &["stats", "--reset"]).assert().success();
    assert_eq!(server().cli(["EXISTS", "t_stats:__cachette:stats"]), "0");
}

/// A manager with a near cache publishes its near cache's counters and size, and `stats`
/// shows them; a publisher that stops takes its size back.
#[test]
fn stats_shows_the_near_cache_of_publishing_managers() {
    let p = "t_nearstats:";
    let builder = cachette::CacheManager::builder()
        .url(server().url())
        .key_prefix(p)
        .near_cache(Some(cachette::NearCacheOptions::default()));
    run_with(builder, |cache| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cache.near_stats().unwrap().live {
            assert!(Instant::now() < deadline, "the channel never came up");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cache.set("a", &1u32, cachette::Ttl::Never).await.unwrap();
        // Read until the tier answers (a first reply may cross the write's invalidation).
        while cache.near_stats().unwrap().hits < 2 {
            assert_eq!(cache.get::<u32>("a").await.unwrap(), Some(1));
            assert!(Instant::now() < deadline, "the tier never answered");
        }
        let publisher = cache
            .stats_publisher()
            .unwrap()
            .functions(false)
            .interval(Duration::from_secs(3600))
            .start()
            .unwrap();
        publisher.publish_now().await.unwrap();
        let near = cache.near_stats().unwrap();
        let out = stdout_of(p, &["stats"]);
        assert!(
            out.contains(&format!(
                "near cache: {} hits, {} misses",
                near.hits, near.misses
            )) && out.contains("1 entries"),
            "{out}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&stdout_of(p, &["stats", "--json"])).unwrap();
        let counters = &doc["near_cache"]["counters"];
        assert_eq!(counters["hits"], near.hits, "{doc}");
        assert_eq!(counters["entries"], 1, "{doc}");
        assert!(counters["bytes"].as_u64().unwrap() > 0, "{doc}");
        assert!(counters["invalidations"].as_u64().unwrap() >= 1, "{doc}");
        // The near cache is no function.
        assert!(doc["functions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["name"] == "manager"));
        publisher.stop().await;
    });
    let doc: serde_json::Value = serde_json::from_str(&stdout_of(p, &["stats", "--json"])).unwrap();
    assert_eq!(doc["near_cache"]["counters"]["entries"], 0, "{doc}");
    assert_eq!(doc["near_cache"]["counters"]["bytes"], 0, "{doc}");
    cli(p, &["stats", "--reset"]).assert().success();
}

#[cachette::cached(cache = cache, skip(cache), ttl = 60)]
async fn doubled(cache: &cachette::CacheManager, x: u64) -> u64 {
    x * 2
}

#[test]
fn stats_shows_decorated_functions_published_by_default() {
    let p = "t_fnstats:";
    with_manager(p, |cache| async move {
        // The manager's shortcut: its server, prefix and timeouts.
        let publisher = cache
            .stats_publisher()
            .unwrap()
            .interval(Duration::from_millis(20))
            .start()
            .unwrap();
        for _ in 0..3 {
            assert_eq!(doubled(&cache, 21).await, 42); // a miss, then two hits
        }
        // Published by the background task within a few intervals.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server().cli(["HGET", "t_fnstats:__cachette:stats", "cli::doubled|hits"]) != "2" {
            assert!(Instant::now() < deadline, "not published in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(publisher);
    });
    let doc: serde_json::Value =
        serde_json::from_str(&stdout_of(p, &["stats", "--json", "--filter", "doubled"])).unwrap();
    let f = &doc["functions"][0];
    assert_eq!(f["name"], "cli::doubled");
    assert_eq!(f["counters"]["hits"], 2);
    assert_eq!(f["counters"]["misses"], 1);
    assert!((f["hit_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
}

#[test]
fn bench_reports_throughput_and_percentiles_and_cleans_up() {
    let p = "t_bench:";
    let out = stdout_of(
        p,
        &[
            "bench",
            "--duration",
            "0.3",
            "--concurrency",
            "4",
            "--keys",
            "50",
            "--json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["ops"].as_u64().unwrap() > 0, "{doc}");
    assert!(doc["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["errors"], 0);
    for q in ["p50_us", "p90_us", "p99_us", "p999_us"] {
        assert!(doc["latency"][q].as_u64().unwrap() > 0, "{q}");
    }
    assert_eq!(stdout_of(p, &["keys"]), "", "bench keys left behind");
    cli(
        p,
        &[
            "bench",
            "-d",
            "0.2",
            "-c",
            "2",
            "--keys",
            "10",
            "--read-ratio",
            "0.5",
        ],
    )
    .assert()
    .success()
    .stdout(contains("throughput").and(contains("p99.9")));
    cli(p, &["bench", "--read-ratio", "2"]).assert().code(2);
}

#[test]
fn an_unreachable_server_fails_fast_with_a_clear_message() {
    // Nothing listens on a port we bound and released.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    bare()
        .args([
            "--url",
            &format!("redis://:hunter2@127.0.0.1:{port}"),
            "get",
            "k",
        ])
        .assert()
        .code(3)
        .stderr(
            contains(format!(
                "cannot reach Redis at redis://***@127.0.0.1:{port}"
            ))
            .and(contains("hunter2").not()),
        );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A server that accepts connections and never answers: bounded by --timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    bare()
        .args([
            "--url",
            &format!("redis://127.0.0.1:{port}"),
            "--timeout",
            "200",
            "ping",
        ])
        .assert()
        .code(3)
        .stderr(contains("cannot reach Redis").and(contains("timed out")));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn configuration_comes_from_the_environment_and_defaults_to_localhost() {
    // REDIS_URL and REDIS_KEY_PREFIX, as the library reads them.
    server().cli(["SET", "t_env:k", "7"]);
    bare()
        .env("REDIS_URL", server().url())
        .env("REDIS_KEY_PREFIX", "t_env:")
        .args(["get", "k"])
        .assert()
        .success()
        .stdout("7\n");
    // Nothing configured: redis://127.0.0.1:6379, and the message says so when it fails.
    let out = bare().args(["--timeout", "300", "ping"]).output().unwrap();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("redis://127.0.0.1:6379"), "{stderr}");
        assert!(stderr.contains("the default"), "{stderr}");
        assert_eq!(out.status.code(), Some(3));
    }
    // An invalid configuration value names its source: exit 2.
    bare()
        .env("REDIS_PORT", "not-a-port")
        .arg("ping")
        .assert()
        .code(2)
        .stderr(contains("REDIS_PORT"));
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let p = "t_pipe:";
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET")
            .arg(format!("t_pipe:{i:05}"))
            .arg(1)
            .ignore();
    }
    let client = redis::Client::open(server().url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    pipe.query::<()>(&mut conn).unwrap();
    // `cachette keys | head -1`: the reader exits after the first line.
    let bin = assert_cmd::cargo::cargo_bin("cachette");
    let script = format!(
        "'{}' --url '{}' --prefix '{p}' keys | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        bin.display(),
        server().url()
    );
    let out = StdCommand::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn server_with_other_password() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        RedisServer::builder()
            .password("the-right-one")
            .spawn()
            .expect("redis-server")
    })
}

/// stdout + stderr of `cachette --url URL args...`, and its exit code.
fn run_with_url(url: &str, args: &[&str]) -> (String, Option<i32>) {
    let out = bare()
        .args(["--url", url, "--timeout", "300"])
        .args(args)
        .output()
        .expect("cachette runs");
    (
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        out.status.code(),
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Issue 9 item 1: whatever the user name and password (spaces, tabs, `/`, quotes, `@`,
    /// `#`, `%`, `:`, non-ASCII), raw or percent-encoded in `--url`, neither appears in the
    /// output of `ping` against a closed port or a server that wants another password.
    #[test]
    fn the_url_credentials_never_appear_in_the_output(
        user in "[ -~]{0,6}Us3rMarker[@#%:/ \t\"'\\PC]{0,6}",
        password in "[ -~]{0,6}Pa55Marker[@#%:/ \t\"'\\PC]{0,6}",
    ) {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let forms = [user.clone(), password.clone(), encode(&user), encode(&password),
            "Us3rMarker".to_owned(), "Pa55Marker".to_owned()];
        for port in [closed, server_with_other_password().port()] {
            for url in [
                format!("redis://{}:{}@127.0.0.1:{port}/0", encode(&user), encode(&password)),
                format!("redis://:{password}@127.0.0.1:{port}/0"),
            ] {
                let (output, code) = run_with_url(&url, &["ping"]);
                proptest::prop_assert!(matches!(code, Some(2 | 3)), "{:?}: {}", code, output);
                proptest::prop_assert!(!output.contains("panicked"), "{}", output);
                for form in &forms {
                    proptest::prop_assert!(!output.contains(form.as_str()), "leaks {:?}: {}", form, output);
                }
            }
        }
    }

    /// Fuzzing the command line: arbitrary arguments never panic; a rejection is a usage error
    /// (exit 2) or a failure to reach the (closed) server (exit 3).
    #[test]
    fn arbitrary_arguments_never_panic(
        args in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(vec![
                "ping", "info", "keys", "get", "set", "del", "ttl", "expire", "delete-pattern",
                "clear", "stats", "--url", "--prefix", "--timeout", "--config", "--json", "-n",
                "--ttl", "--yes", "*", "", "0", "-1", "18446744073709551616", "redis://h:0",
            ]).prop_map(str::to_owned),
            "\\PC{0,12}",
        ], 0..6),
    ) {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let out = bare()
            .env("REDIS_URL", format!("redis://127.0.0.1:{closed}/0"))
            .args(["--timeout", "200"])
            .args(&args)
            .output()
            .expect("cachette runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        proptest::prop_assert!(!stderr.contains("panicked"), "{:?}: {}", args, stderr);
        proptest::prop_assert!(matches!(out.status.code(), Some(0..=4)), "{:?}: {:?} {}", args, out.status, stderr);
        if out.status.code() == Some(2) {
            proptest::prop_assert!(!stderr.trim().is_empty(), "{:?}: a usage error says why", args);
        }
    }
}

/// Issue 9 item 9: an invalid `--url` is a usage error naming the option and the part.
#[test]
fn an_invalid_url_names_the_option_and_the_part() {
    for (url, part) in [
        ("not a url", "not a URL"),
        ("http://127.0.0.1:1", "scheme"),
        ("redis://127.0.0.1:99999", "port"),
        ("redis://a b:1", "host"),
    ] {
        bare()
            .args(["--url", url, "ping"])
            .assert()
            .code(2)
            .stderr(contains("--url").and(contains(part)));
    }
}

#[test]
fn keys_with_count_zero_prints_nothing_but_does_not_claim_no_keys_match() {
    let p = "t_keys0:";
    server().cli(["SET", "t_keys0:user:1", "1"]);
    cli(p, &["keys", "user:*", "-n", "0"])
        .assert()
        .success()
        .stdout("")
        .stderr(contains("no keys match").not());
    cli(p, &["keys", "nothing:*", "-n", "0"])
        .assert()
        .success()
        .stderr(contains("no keys match"));
}

#[test]
fn a_server_error_is_reported_once_and_not_as_unreachable() {
    let p = "t_stwt:";
    server().cli(["LPUSH", "t_stwt:__cachette:stats", "x"]);
    let out = cli(p, &["stats"]).assert().failure().get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("WRONGTYPE").count(), 1, "{stderr}");
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    // A key of another client that is not UTF-8 is neither a failure nor "unreachable".
    server().cli(["SET", "t_stwt:user:1", "1"]);
    {
        use std::os::unix::ffi::OsStrExt;
        server().cli([
            std::ffi::OsStr::from_bytes(b"SET"),
            std::ffi::OsStr::from_bytes(b"t_stwt:user:\xff"),
            std::ffi::OsStr::from_bytes(b"1"),
        ]);
    }
    assert_eq!(stdout_of(p, &["keys", "user:*"]), "user:1\n");
}

/// The 3-primary Redis Cluster of this test binary, started on first use; each test works
/// under its own prefix.
fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::shared)
}

/// `cachette --cluster-nodes <the cluster> --prefix <prefix> args...`.
fn on_cluster(prefix: &str, args: &[&str]) -> Command {
    let mut cmd = bare();
    cmd.args([
        "--cluster-nodes",
        &cluster().seeds_csv(),
        "--prefix",
        prefix,
    ]);
    cmd.args(args);
    cmd
}

fn cluster_stdout(prefix: &str, args: &[&str]) -> String {
    let out = on_cluster(prefix, args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("utf-8 output")
}

/// The keys under `prefix` that primary `i` holds (`KEYS`, fine on a test server).
fn keys_on_node(i: usize, prefix: &str) -> Vec<String> {
    cluster()
        .cli(i, ["KEYS", &format!("{prefix}*")])
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix(prefix).unwrap_or(l).to_owned())
        .collect()
}

/// Runs `body` with a manager on the shared cluster under `prefix`.
fn with_cluster_manager<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(cachette::CacheManager) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run_with(
        cachette::CacheManager::builder()
            .cluster_nodes(cluster().seeds())
            .key_prefix(prefix)
            .command_timeout(Duration::from_secs(2)),
        body,
    );
}

/// The CLI on a Redis Cluster (`--cluster-nodes`, and `REDIS_CLUSTER_NODES`): set, get, keys
/// listing the keys of every primary, delete-pattern and clear on every primary.
#[test]
fn cluster_keys_delete_pattern_and_clear_cover_every_primary() {
    let p = "t_ckeys:";
    for i in 0..30 {
        on_cluster(p, &["set", &format!("k{i}"), &i.to_string()])
            .assert()
            .success();
    }
    on_cluster(p, &["get", "k7"])
        .assert()
        .success()
        .stdout("7\n");
    let listed: BTreeSet<String> = cluster_stdout(p, &["keys", "*"])
        .lines()
        .map(str::to_owned)
        .collect();
    // Every primary holds some of them, and every key of every primary is listed.
    let mut held = BTreeSet::new();
    for i in 0..3 {
        let keys = keys_on_node(i, p);
        assert!(!keys.is_empty(), "node {i} holds none of {listed:?}");
        held.extend(keys);
    }
    assert_eq!(held.len(), 30);
    assert_eq!(listed, held);
    assert_eq!(
        cluster_stdout(p, &["keys", "k1*", "-n", "3"])
            .lines()
            .count(),
        3
    );
    let mut env = bare();
    env.env("REDIS_CLUSTER_NODES", cluster().seeds_csv()).args([
        "--prefix",
        p,
        "delete-pattern",
        "k1*",
        "--yes",
    ]);
    env.assert().success().stdout("11\n");
    let left: BTreeSet<String> = cluster_stdout(p, &["keys", "*"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(left.len(), 30 - 11);
    assert!(left.iter().all(|k| !k.starts_with("k1")), "{left:?}");
    on_cluster(p, &["clear"]).assert().code(4);
    on_cluster(p, &["clear", "--yes"])
        .assert()
        .success()
        .stdout("19\n");
    for i in 0..3 {
        assert_eq!(keys_on_node(i, p), Vec::<String>::new(), "node {i}");
    }
    assert_eq!(cluster_stdout(p, &["keys", "*"]), "");
}

/// `info` on a cluster: keys, memory and reads summed over the primaries, and one line (one
/// JSON object) per primary that adds up to them.
#[test]
fn cluster_info_sums_every_primary_and_lists_each_node() {
    let p = "t_cinfo:";
    for i in 0..30 {
        on_cluster(p, &["set", &format!("k{i}"), "1"])
            .assert()
            .success();
    }
    // Reads on every primary (`GET` counts a hit on the node that holds the key).
    for i in 0..30 {
        on_cluster(p, &["get", &format!("k{i}")]).assert().success();
    }
    let doc: serde_json::Value =
        serde_json::from_str(&cluster_stdout(p, &["info", "--json"])).unwrap();
    assert_eq!(doc["keys_under_prefix"], 30, "{doc}");
    assert!(doc["server"]
        .as_str()
        .unwrap()
        .starts_with("redis-cluster://"));
    assert_eq!(doc["cluster"]["primaries"], 3, "{doc}");
    let nodes = doc["cluster"]["nodes"].as_array().unwrap();
    let names: BTreeSet<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    let seeds = cluster().seeds();
    assert_eq!(names, seeds.iter().map(String::as_str).collect());
    let sum = |field: &str| {
        nodes
            .iter()
            .map(|n| n[field].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(doc["keys_in_db"].as_i64(), Some(sum("keys")));
    assert_eq!(doc["used_memory"].as_i64(), Some(sum("used_memory")));
    assert_eq!(doc["keyspace_hits"].as_i64(), Some(sum("keyspace_hits")));
    assert_eq!(
        doc["keyspace_misses"].as_i64(),
        Some(sum("keyspace_misses"))
    );
    for n in nodes {
        // Every node holds some of the 30 keys, and was read.
        assert!(n["keys"].as_i64().unwrap() > 0, "{n}");
        assert!(n["keyspace_hits"].as_i64().unwrap() > 0, "{n}");
    }
    let text = cluster_stdout(p, &["info"]);
    assert!(text.contains("\"t_cinfo:\": 30 keys"), "{text}");
    assert!(text.contains("cluster       3 primaries"), "{text}");
    assert!(text.contains("(every primary, since start)"), "{text}");
    for seed in &seeds {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(seed.as_str()) && l.contains(" keys")),
            "no line for {seed}: {text}"
        );
    }
    on_cluster(p, &["clear", "--yes"]).assert().success();
}

/// `stats` on a cluster reads the hash from the primary that serves its slot (here not the
/// first seed, so a read from the first seed alone would get `MOVED`); `--reset` deletes it
/// there.
#[test]
fn cluster_stats_reads_what_a_publisher_wrote() {
    // A prefix whose statistics hash is not on the first seed.
    let p = (0..)
        .map(|i| format!("t_cstats{i}:"))
        .find(|p| {
            let key = cachette::publish::stats_key(p);
            cluster().owner_of_slot(cachette::backend::cluster::slot(key.as_bytes())) != Some(0)
        })
        .unwrap();
    let key = cachette::publish::stats_key(&p);
    let owner = cluster()
        .owner_of_slot(cachette::backend::cluster::slot(key.as_bytes()))
        .unwrap();
    on_cluster(&p, &["stats"])
        .assert()
        .success()
        .stderr(contains("no statistics"));
    with_cluster_manager(&p, |cache| async move {
        cache.set("a", &1, cachette::Ttl::Never).await.unwrap();
        for _ in 0..3 {
            let _: Option<u32> = cache.get("a").await.unwrap();
        }
        let _: Option<u32> = cache.get("missing").await.unwrap();
        let publisher = cache
            .stats_publisher()
            .unwrap()
            .functions(false)
            .interval(Duration::from_secs(3600))
            .start()
            .unwrap();
        assert_eq!(publisher.publish_now().await.unwrap(), 3);
        let _: Option<u32> = cache.get("a").await.unwrap();
        publisher.stop().await; // publishes the last hit
    });
    assert_eq!(cluster().cli(owner, ["HGET", &key, "manager|hits"]), "4");
    on_cluster(&p, &["stats"])
        .assert()
        .success()
        .stdout(contains("manager").and(contains("80.0%")));
    let doc: serde_json::Value =
        serde_json::from_str(&cluster_stdout(&p, &["stats", "--json"])).unwrap();
    let f = &doc["functions"][0];
    assert_eq!(f["name"], "manager");
    assert_eq!(f["counters"]["hits"], 4);
    assert_eq!(f["counters"]["misses"], 1);
    assert_eq!(f["counters"]["writes"], 1);
    assert!(doc["published_at_ms"].is_u64());
    on_cluster(&p, &["stats", "--reset"])
        .assert()
        .success()
        .stdout("OK\n");
    assert_eq!(cluster().cli(owner, ["EXISTS", &key]), "0");
    on_cluster(&p, &["stats", "--reset"])
        .assert()
        .success()
        .stdout("OK (nothing was published)\n");
    on_cluster(&p, &["clear", "--yes"]).assert().success();
}

/// `bench` and `ping` on a cluster: operations on every primary, no errors, nothing left.
#[test]
fn cluster_bench_runs_and_cleans_up() {
    let p = "t_cbench:";
    on_cluster(p, &["ping"])
        .assert()
        .success()
        .stdout(contains("PONG from redis-cluster://"));
    let out = cluster_stdout(
        p,
        &[
            "bench",
            "--duration",
            "0.3",
            "--concurrency",
            "4",
            "--keys",
            "60",
            "--json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["ops"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(doc["errors"], 0, "{doc}");
    assert!(doc["hits"].as_u64().unwrap() > 0, "{doc}");
    for q in ["p50_us", "p99_us"] {
        assert!(doc["latency"][q].as_u64().unwrap() > 0, "{q}");
    }
    assert_eq!(cluster_stdout(p, &["keys"]), "", "bench keys left behind");
    for i in 0..3 {
        assert_eq!(keys_on_node(i, p), Vec::<String>::new(), "node {i}");
    }
}

/// `--tls-ca-file` (and the client certificate flags) beside a `rediss://` `--url`: the CA
/// of the test server connects; an unrelated CA fails with the check named (exit 3); a
/// missing key file is a usage error naming the flag's setting and path (exit 2).
#[cfg(feature = "tls")]
#[test]
fn tls_flags_beside_url() {
    let server = RedisServer::builder()
        .tls_auth_clients(true)
        .spawn()
        .expect("redis-server with TLS");
    let files = server.tls_files().expect("a TLS server");
    let url = server.url();
    let path = |p: &std::path::Path| p.display().to_string();
    bare()
        .args(["--url", &url, "--tls-ca-file", &path(&files.ca_file)])
        .args(["--tls-cert-file", &path(&files.cert_file)])
        .args(["--tls-key-file", &path(&files.key_file), "ping"])
        .assert()
        .success()
        .stdout(contains("PONG from rediss://127.0.0.1:"));
    bare()
        .args(["--url", &url, "--tls-ca-file", &path(&files.other_ca_file)])
        .args(["--tls-cert-file", &path(&files.cert_file)])
        .args(["--tls-key-file", &path(&files.key_file), "ping"])
        .assert()
        .code(3)
        .stderr(contains("not signed by a trusted CA"));
    let missing = files.ca_file.with_file_name("missing.key");
    bare()
        .args(["--url", &url, "--tls-ca-file", &path(&files.ca_file)])
        .args(["--tls-cert-file", &path(&files.cert_file)])
        .args(["--tls-key-file", &path(&missing), "ping"])
        .assert()
        .code(2)
        .stderr(contains("tls_key_file"))
        .stderr(contains(path(&missing)));
}

/// The CLI through Redis Sentinel (`--sentinels`/`--sentinel-master`, and
/// `REDIS_SENTINELS`/`REDIS_SENTINEL_MASTER`): set and get on the primary the sentinels name;
/// one of the two without the other is a usage error naming the missing one.
#[test]
fn sentinel_flags_reach_the_primary() {
    let d = cachette_test_support::RedisSentinel::new();
    let p = "t_sentinel:";
    let mut set = bare();
    set.args([
        "--sentinels",
        &d.sentinels_csv(),
        "--sentinel-master",
        d.master_name(),
        "--prefix",
        p,
        "set",
        "k",
        "42",
    ]);
    set.assert().success();
    assert_eq!(d.primary().unwrap().cli(["GET", &format!("{p}k")]), "42");
    let mut get = bare();
    get.env("REDIS_SENTINELS", d.sentinels_csv())
        .env("REDIS_SENTINEL_MASTER", d.master_name())
        .args(["--prefix", p, "get", "k"]);
    get.assert().success().stdout("42\n");
    let mut half = bare();
    half.args(["--sentinels", &d.sentinels_csv(), "ping"]);
    half.assert().code(2).stderr(contains("sentinel_master"));
}
