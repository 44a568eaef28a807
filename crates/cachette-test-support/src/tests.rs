//! Tests against real `redis-server` processes.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::resp::{probe, Probe};
use crate::{redis_available, RedisServer, SpawnErrorKind};

/// Whether `pid` is a live process (not gone, not a zombie), from `/proc`.
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    condition()
}

#[test]
fn redis_is_available() {
    assert!(
        redis_available(),
        "redis-server is needed by these tests; install it (apt-get install redis-server)"
    );
}

#[test]
fn spawn_answers_ping() {
    let server = RedisServer::new();
    assert!(server.port() < 55535);
    assert_eq!(server.host(), "127.0.0.1");
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert_eq!(
        server.url_with_db(3),
        format!("redis://127.0.0.1:{}/3", server.port())
    );
    assert!(server.is_running());
    assert!(!server.is_stopped());
    assert_eq!(probe(server.port()), Probe::Pong { pid: server.pid() });
    assert_eq!(server.cli(["PING"]), "PONG");
    assert_eq!(server.cli(["SET", "k", "v"]), "OK");
    assert_eq!(server.cli(["GET", "k"]), "v");
    assert_eq!(
        server.cli(&["-n", "3", "GET", "k"]),
        "",
        "slices work too; nil is empty"
    );
    assert_eq!(server.cli(["CONFIG", "GET", "bind"]), "bind\n127.0.0.1");
    assert_eq!(server.cli(["CONFIG", "GET", "save"]), "save\n");
    assert!(server.log().contains("Ready to accept connections"));
    assert!(format!("{server:?}").contains(&server.port().to_string()));
}

#[test]
fn two_servers_get_different_ports() {
    let a = RedisServer::new();
    let b = RedisServer::new();
    assert_ne!(a.port(), b.port());
    a.cli(["SET", "k", "a"]);
    assert_eq!(b.cli(["EXISTS", "k"]), "0");
}

#[test]
fn kill_then_restart_on_the_same_port() {
    let server = RedisServer::new();
    let port = server.port();
    let first_pid = server.pid().expect("running");
    server.cli(["SET", "k", "v"]);

    server.kill();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(!is_alive(first_pid));
    assert_eq!(probe(port), Probe::Unreachable);
    assert!(!server
        .cli_output(["PING"])
        .expect("redis-cli runs")
        .status
        .success());
    server.kill(); // idempotent

    server.restart();
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    assert_ne!(server.pid(), Some(first_pid));
    assert_eq!(server.cli(["PING"]), "PONG");
    assert_eq!(server.cli(["EXISTS", "k"]), "0", "no persistence");

    // Restarting a running server kills it first.
    let second_pid = server.pid().expect("running");
    server.restart();
    assert!(!is_alive(second_pid));
    assert_eq!(server.cli(["PING"]), "PONG");
    assert_eq!(
        server.log().matches("Ready to accept connections").count(),
        3
    );
}

#[test]
fn stop_and_continue() {
    let server = RedisServer::new();
    server.stop_process();
    assert!(server.is_stopped());
    assert!(server.is_running(), "a stopped process still exists");
    // The kernel still accepts connections, but nothing answers.
    assert_eq!(probe(server.port()), Probe::Unreachable);

    server.continue_process();
    assert!(!server.is_stopped());
    assert_eq!(server.cli(["PING"]), "PONG");

    // Dropping a stopped server still kills it.
    server.stop_process();
    let pid = server.pid().expect("running");
    drop(server);
    assert!(!is_alive(pid));
}

#[test]
fn drop_kills_the_process_and_removes_the_directory() {
    let server = RedisServer::new();
    let pid = server.pid().expect("running");
    let port = server.port();
    let dir = server.dir().to_path_buf();
    assert!(is_alive(pid));
    assert!(dir.join("redis.log").exists());
    drop(server);
    assert!(!is_alive(pid));
    assert!(!dir.exists());
    assert_eq!(probe(port), Probe::Unreachable);
}

#[test]
fn password_via_builder() {
    let server = RedisServer::builder()
        .password("s3cret:/@")
        .spawn()
        .expect("spawn");
    assert_eq!(server.password(), Some("s3cret:/@"));
    assert_eq!(
        server.url(),
        format!("redis://:s3cret%3A%2F%40@127.0.0.1:{}/", server.port())
    );
    assert_eq!(probe(server.port()), Probe::NoAuth);
    assert_eq!(server.cli(["PING"]), "PONG", "cli authenticates");
    assert!(!format!("{server:?}").contains("s3cret"));
}

#[test]
fn requirepass_argument_is_picked_up() {
    let server = RedisServer::builder()
        .args(["--requirepass", "pw"])
        .spawn()
        .expect("spawn");
    assert_eq!(server.password(), Some("pw"));
    assert!(server.url().starts_with("redis://:pw@"));
    assert_eq!(server.cli(["PING"]), "PONG");
}

#[test]
fn acl_user_and_config_line() {
    let server = RedisServer::builder()
        .acl_user("alice", ["on", ">alice pw", "~*", "&*", "+@all"])
        .config_line("notify-keyspace-events KEA")
        .spawn()
        .expect("spawn");
    assert_eq!(
        server.url_for_user("alice", "alice pw"),
        format!("redis://alice:alice%20pw@127.0.0.1:{}/", server.port())
    );
    assert_eq!(
        server.cli([
            "--user",
            "alice",
            "--pass",
            "alice pw",
            "--no-auth-warning",
            "ACL",
            "WHOAMI"
        ]),
        "alice"
    );
    assert_eq!(
        server.cli(["CONFIG", "GET", "notify-keyspace-events"]),
        "notify-keyspace-events\nAKE"
    );
}

#[test]
fn reserved_options_are_refused() {
    for builder in [
        RedisServer::builder().args(["--port", "6379"]),
        RedisServer::builder().args(["--BIND", "0.0.0.0"]),
        RedisServer::builder().config_line("bind 0.0.0.0"),
    ] {
        let err = builder.spawn().expect_err("reserved option");
        assert_eq!(err.kind(), SpawnErrorKind::InvalidConfig);
    }
}

#[test]
fn bad_argument_fails_fast_with_the_log() {
    let started = Instant::now();
    let err = RedisServer::builder()
        .args(["--no-such-directive", "1"])
        .spawn()
        .expect_err("bad directive");
    assert_eq!(err.kind(), SpawnErrorKind::ExitedEarly);
    assert!(err.log().contains("no-such-directive"), "{err}");
    assert!(
        err.to_string().contains("--- redis-server log ---"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn restart_waits_while_the_port_is_taken() {
    let server = RedisServer::new();
    let port = server.port();
    server.kill();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind freed port");
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(500));
        drop(squatter);
    });
    let started = Instant::now();
    server.try_restart().expect("restart once the port is free");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(server.port(), port);
    assert_eq!(server.cli(["PING"]), "PONG");
    assert!(server.log().contains("Address already in use"));
    release.join().expect("release thread");
}

const LEAK_HELPER_ENV: &str = "CACHETTE_TEST_SUPPORT_LEAK_HELPER";

/// Run by `server_dies_with_the_test_process` in a child process: starts a server, leaks it
/// (as a `static` would) and exits. Without the environment variable it does nothing.
#[test]
fn leak_helper() {
    if std::env::var_os(LEAK_HELPER_ENV).is_none() {
        return;
    }
    let server = RedisServer::new();
    println!(
        "\nLEAKED_PID={} LEAKED_DIR={}",
        server.pid().expect("running"),
        server.dir().display()
    );
    std::mem::forget(server);
}

#[test]
fn server_dies_with_the_test_process() {
    let exe = std::env::current_exe().expect("current_exe");
    let output = Command::new(exe)
        .args([
            "tests::leak_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LEAK_HELPER_ENV, "1")
        .output()
        .expect("run helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "helper failed: {stdout}");
    let (pid, dir) = stdout
        .lines()
        .find_map(|l| l.split_once("LEAKED_PID="))
        .and_then(|(_, rest)| rest.split_once(" LEAKED_DIR="))
        .unwrap_or_else(|| panic!("no pid in helper output: {stdout}"));
    let pid: u32 = pid.parse().expect("pid");
    let dir = std::path::PathBuf::from(dir.trim_end());
    assert!(
        wait_until(Duration::from_secs(5), || !is_alive(pid)),
        "leaked redis-server {pid} outlived its test process"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !dir.exists()),
        "leaked server directory {} was not removed",
        dir.display()
    );
}

/// A 3-primary cluster comes up within the budget with every slot served, each node answers
/// as a cluster node, a key written through one node's owner is read back from it, and a
/// killed node comes back into the cluster.
#[test]
fn cluster_starts_serves_every_slot_and_survives_a_restart() {
    if !redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let started = Instant::now();
    let cluster = crate::RedisCluster::new();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "cluster start took {took:?}"
    );
    assert_eq!(cluster.nodes().len(), 3);
    assert_eq!(cluster.primaries(), vec![0, 1, 2]);
    for i in 0..3 {
        let info = cluster.cli(i, ["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(cluster.node(i).port() < 55535);
    }
    // Slot 0 and slot 16383 are owned by different primaries.
    let first = cluster.owner_of_slot(0).unwrap();
    let last = cluster.owner_of_slot(16383).unwrap();
    assert_ne!(first, last);
    // "{a}" hashes to slot 15495; the owner accepts it, another node redirects.
    let owner = cluster.owner_of_slot(15495).unwrap();
    assert_eq!(cluster.cli(owner, ["SET", "{a}x", "1"]), "OK");
    let other = (owner + 1) % 3;
    assert!(cluster
        .cli(other, ["GET", "{a}x"])
        .starts_with("MOVED 15495"));
    // A killed node is gone; restarted, it rejoins (empty) and the cluster is ok again.
    let pid = cluster.node(owner).pid().unwrap();
    cluster.node(owner).kill();
    assert!(!is_alive(pid));
    cluster.node(owner).restart();
    cluster.wait_ok(Duration::from_secs(10)).unwrap();
    assert_eq!(cluster.cli(owner, ["GET", "{a}x"]), "");
    let pids: Vec<u32> = cluster.nodes().iter().map(|n| n.pid().unwrap()).collect();
    drop(cluster);
    assert!(
        pids.iter().all(|&p| !is_alive(p)),
        "every node is killed on drop"
    );
}

/// The 3+3 variant: three primaries, three replicas, and a replica takes over a killed primary.
#[test]
fn cluster_with_replicas_promotes_a_replica() {
    if !redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let cluster = crate::RedisCluster::with_replicas();
    assert_eq!(cluster.nodes().len(), 6);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    let victim = primaries[0];
    cluster.node(victim).kill();
    let recovered = cluster.wait_recovered(Duration::from_secs(15));
    let survivor = (victim + 1) % 6;
    assert!(
        recovered,
        "no replica took over: {}",
        cluster.cli(survivor, ["CLUSTER", "NODES"])
    );
    let now = cluster.primaries();
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(!now.contains(&victim));
}

/// `redis-cli` over TLS to `127.0.0.1:port`, trusting the cluster's CA; its stdout.
fn tls_cli(files: &crate::TlsFiles, port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(files.cli_args())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TLS cluster (3 primaries, 1 replica each): every node shares one CA, the seeds are the
/// TLS ports, replicas sync over TLS, and a TLS client is told the TLS ports by
/// `CLUSTER SLOTS` and `MOVED`.
#[test]
fn tls_cluster_reports_its_tls_ports_to_tls_clients() {
    if !redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let started = Instant::now();
    let cluster = crate::RedisCluster::spawn_tls(3, 1).unwrap();
    eprintln!("TLS cluster (6 nodes) up in {:?}", started.elapsed());
    let files = cluster.tls_files().unwrap().clone();
    let tls_ports: Vec<u16> = cluster
        .nodes()
        .iter()
        .map(|n| n.tls_port().unwrap())
        .collect();
    let seeds: Vec<String> = tls_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    assert_eq!(cluster.seeds(), seeds);
    // One CA: every node's files are the cluster's.
    for node in cluster.nodes() {
        assert_eq!(node.tls_files(), Some(&files));
    }
    assert_eq!(cluster.primaries().len(), 3);
    let slots = tls_cli(&files, tls_ports[0], &["CLUSTER", "SLOTS"]);
    // Every port in the reply (the numbers above the last slot; ports are ephemeral): the
    // primaries', and the replicas' once the bus has told their replication offset.
    let named: Vec<u16> = slots
        .lines()
        .filter_map(|l| l.parse::<u16>().ok())
        .filter(|&p| p > 16383)
        .collect();
    assert!(named.len() >= 3, "{slots}");
    for i in 0..6 {
        let replication = cluster.cli(i, ["INFO", "replication"]);
        assert!(
            replication.contains("role:master") || replication.contains("master_link_status:up"),
            "node {i} has not synced over TLS: {replication}"
        );
    }
    for port in named {
        assert!(
            tls_ports.contains(&port),
            "CLUSTER SLOTS over TLS named {port}: {slots}"
        );
    }
    let owner = cluster.owner_of_slot(15495).unwrap();
    let other = cluster
        .primaries()
        .into_iter()
        .find(|&i| i != owner)
        .unwrap();
    let moved = tls_cli(&files, tls_ports[other], &["GET", "{a}x"]);
    assert_eq!(
        moved.trim(),
        format!("MOVED 15495 127.0.0.1:{}", tls_ports[owner])
    );
}

#[test]
fn connections_received_counts_each_client() {
    if !redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let server = RedisServer::new();
    let before = server.connections_received();
    server.cli(["PING"]);
    // The PING's connection, then this query's own.
    assert_eq!(server.connections_received(), before + 2);
}

#[test]
fn sentinel_starts_with_a_replica_and_three_sentinels() {
    let started = Instant::now();
    let deployment = crate::RedisSentinel::new();
    eprintln!("Redis Sentinel ready in {:?}", started.elapsed());
    assert_eq!(deployment.sentinel_addrs().len(), 3);
    let primary = deployment.primary().expect("a primary");
    assert_eq!(primary.port(), deployment.node(0).port());
    assert_eq!(deployment.role(0).as_deref(), Some("master"));
    assert_eq!(deployment.role(1).as_deref(), Some("slave"));
    assert_eq!(primary.cli(["SET", "k", "v"]), "OK");
    let replica = deployment.replica().expect("a replica");
    assert!(wait_until(Duration::from_secs(5), || replica
        .cli(["GET", "k"])
        == "v"));
}

#[test]
fn sentinel_failover_changes_the_primary() {
    let deployment = crate::RedisSentinel::new();
    let first = deployment.primary_port().unwrap();
    let started = Instant::now();
    let second = deployment.failover().expect("failover");
    eprintln!("SENTINEL FAILOVER took {:?}", started.elapsed());
    assert_ne!(first, second);
    assert_eq!(deployment.primary_index(), Some(1));
    assert_eq!(deployment.role(1).as_deref(), Some("master"));
    assert_eq!(deployment.replica().map(RedisServer::port), Some(first));
}

#[test]
fn a_killed_sentinel_primary_is_replaced() {
    let deployment = crate::RedisSentinel::new();
    let first = deployment.primary_port().unwrap();
    deployment.node(0).kill();
    let started = Instant::now();
    let second = deployment
        .wait_primary_change(Some(first), Duration::from_secs(30))
        .expect("promotion after a kill");
    eprintln!("failover after a kill took {:?}", started.elapsed());
    assert_eq!(second, deployment.node(1).port());
    assert!(started.elapsed() >= Duration::from_millis(crate::SENTINEL_DOWN_AFTER_MS));
}
