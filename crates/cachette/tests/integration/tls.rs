//! `rediss://` against a real `redis-server --tls-port` with certificates made at test time
//! (`cachette_test_support::TlsFiles`): what connects, what fails and how (each failed check
//! is an `ErrorKind::Tls` error saying which check, with a bounded number of connection
//! attempts), the stall watchdog on TLS connections, and the TLS settings' file errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{CacheManager, ErrorKind, Ttl};
use cachette_test_support::{RedisServer, TlsFiles};

use crate::support::logged;

fn files(server: &RedisServer) -> &TlsFiles {
    server.tls_files().expect("a TLS server")
}

fn spawn(builder: cachette_test_support::RedisServerBuilder) -> RedisServer {
    builder.spawn().expect("redis-server with TLS")
}

/// A manager on `url` (breaker off, so every call reaches the connection).
fn manager(
    url: &str,
    tls: impl FnOnce(cachette::CacheManagerBuilder) -> cachette::CacheManagerBuilder,
) -> CacheManager {
    let builder = CacheManager::builder()
        .url(url)
        .key_prefix("tls:")
        .command_timeout(Duration::from_millis(500))
        .circuit_breaker(0, Duration::ZERO);
    tls(builder).build().expect("build manager")
}

/// A loopback TCP proxy in front of the server's TLS port that counts the connections it
/// accepts: every connection attempt of the client, including those whose handshake fails
/// (the server's own `total_connections_received` counts a TLS client only once its
/// handshake succeeded, so it cannot see a retry storm of failing handshakes).
struct CountingProxy {
    url: String,
    accepted: Arc<AtomicU64>,
}

async fn counting_proxy(server: &RedisServer) -> CountingProxy {
    let target = server.tls_port().expect("a TLS server");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    CountingProxy {
        url: format!("rediss://127.0.0.1:{port}/"),
        accepted,
    }
}

/// Through a [`CountingProxy`], 40 calls one after the other, then 64 at once: every one
/// fails with a TLS error whose message contains each of `says`, and at most 3 connections
/// are attempted for all of them (one handshake, then the failure is held;
/// `TLS_FAILURE_HOLD`). `case` names the scenario in failure messages.
async fn fails_with(
    case: &str,
    server: &RedisServer,
    tls: impl FnOnce(cachette::CacheManagerBuilder) -> cachette::CacheManagerBuilder,
    says: &[&str],
) {
    let proxy = counting_proxy(server).await;
    let cache = manager(&proxy.url, tls);
    for i in 0..40 {
        let e = cache.get::<u32>(&format!("k{i}")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Tls, "{case}: {e}");
        assert!(e.is_tls() && e.is_backend_failure(), "{case}");
        for fragment in says {
            assert!(
                e.to_string().contains(fragment),
                "{case}: expected {fragment:?} in: {e}"
            );
        }
    }
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get::<u32>(&format!("c{i}")).await })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Tls, "{case}: {e}");
    }
    let attempts = proxy.accepted.load(Ordering::Relaxed);
    assert!(
        (1..=3).contains(&attempts),
        "{case}: {attempts} connection attempts for 104 failing calls (a retry storm, or none \
         at all)"
    );
    assert!(!cache.ping().await, "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_ca_connects() {
    let server = spawn(RedisServer::builder().tls());
    assert!(server.url().starts_with("rediss://127.0.0.1:"));
    let ca = files(&server).ca_file.clone();
    let cache = manager(&server.url(), |b| b.tls_ca_file(&ca));
    cache.set("k", &7u32, Ttl::Never).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(7));
    assert!(cache.ping().await);
    // The value went through the TLS port to the same server.
    assert_eq!(server.cli(["GET", "tls:k"]), "7");
    // By name too (the certificate names localhost and 127.0.0.1).
    let url = server.tls_url_for_host("localhost").unwrap();
    let by_name = manager(&url, |b| b.tls_ca_file(&ca));
    assert_eq!(by_name.get::<u32>("k").await.unwrap(), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_connects_with_a_client_certificate() {
    let server = spawn(RedisServer::builder().tls_auth_clients(true));
    let f = files(&server).clone();
    let cache = manager(&server.url(), |b| {
        b.tls_ca_file(&f.ca_file)
            .tls_client_cert(&f.cert_file, &f.key_file)
    });
    cache.set("k", &1u32, Ttl::Never).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
}

/// One refused handshake: how the server is made, the client's TLS settings (given the
/// server's files), and what the error must say.
struct Refused {
    case: &'static str,
    server: fn() -> cachette_test_support::RedisServerBuilder,
    client: fn(&TlsFiles, cachette::CacheManagerBuilder) -> cachette::CacheManagerBuilder,
    says: &'static [&'static str],
}

/// Each failed check (untrusted CA, public roots against a private CA, wrong host name,
/// expired certificate, missing client certificate) is an `ErrorKind::Tls` error saying
/// which check, without a retry storm (see [`fails_with`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_check_is_a_tls_error_saying_which() {
    let cases = [
        Refused {
            case: "an unrelated CA",
            server: || RedisServer::builder().tls(),
            client: |f, b| b.tls_ca_file(&f.other_ca_file),
            says: &["not signed by a trusted CA"],
        },
        Refused {
            case: "the public roots against a private CA",
            server: || RedisServer::builder().tls(),
            client: |_, b| b,
            says: &["not signed by a trusted CA"],
        },
        Refused {
            case: "a certificate for another host",
            server: || RedisServer::builder().tls_server_names(["cache.other.example"]),
            client: |f, b| b.tls_ca_file(&f.ca_file),
            says: &[
                "not valid for the host name 127.0.0.1",
                "cache.other.example",
            ],
        },
        Refused {
            case: "an expired certificate",
            server: || RedisServer::builder().tls_expired_certificate(),
            client: |f, b| b.tls_ca_file(&f.ca_file),
            says: &["has expired"],
        },
        Refused {
            case: "a missing client certificate",
            server: || RedisServer::builder().tls_auth_clients(true),
            client: |f, b| b.tls_ca_file(&f.ca_file),
            says: &["client certificate"],
        },
    ];
    for refused in cases {
        let server = spawn((refused.server)());
        let f = files(&server).clone();
        fails_with(
            refused.case,
            &server,
            |b| (refused.client)(&f, b),
            refused.says,
        )
        .await;
    }
}

/// `tls_insecure` connects to a server whose certificate fails every check, and says so at
/// `warn` when the manager is built.
#[test]
fn insecure_accepts_any_certificate_and_warns() {
    let server = spawn(
        RedisServer::builder()
            .tls_server_names(["cache.other.example"])
            .tls_expired_certificate(),
    );
    let ((), log) = logged(tracing::Level::WARN, async {
        let cache = manager(&server.url(), |b| b.tls_insecure_skip_verify(true));
        cache.set("k", &3u32, Ttl::Never).await.unwrap();
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(3));
    });
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("verification is OFF"), "{log}");
}

/// A stopped TLS server: calls fail with a timeout within ~1.25x the command timeout, through
/// the connection's stall watchdog (which logs that it dropped the connection), and the
/// connection comes back when the server does.
#[test]
fn a_stalled_tls_server_times_out_under_the_watchdog() {
    const TIMEOUT: Duration = Duration::from_millis(400);
    let server = spawn(RedisServer::builder().tls());
    let ca = files(&server).ca_file.clone();
    let ((), log) = logged(tracing::Level::WARN, async {
        let cache = CacheManager::builder()
            .url(server.url())
            .tls_ca_file(&ca)
            .key_prefix("tls:")
            .command_timeout(TIMEOUT)
            .circuit_breaker(0, Duration::ZERO)
            .build()
            .unwrap();
        cache.set("k", &1u32, Ttl::Never).await.unwrap();
        server.stop_process();
        let started = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get::<u32>("k").await })
            })
            .collect();
        for t in tasks {
            let result = tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("every call returns")
                .unwrap();
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
        }
        let took = started.elapsed();
        server.continue_process();
        assert!(
            took >= TIMEOUT && took < TIMEOUT * 5 / 4 + Duration::from_millis(200),
            "took {took:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(1)) = cache.get::<u32>("k").await {
                break;
            }
            assert!(Instant::now() < deadline, "never reconnected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(
        log.contains("no reply from Redis within the command timeout"),
        "the watchdog did not fire: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_unparsable_files_are_config_errors_naming_field_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "SECRET-KEY-MATERIAL not a pem file\n").unwrap();
    let url = "rediss://127.0.0.1:1/";
    let cases: Vec<(cachette::CacheManagerBuilder, &str, &std::path::Path)> = vec![
        (
            CacheManager::builder().url(url).tls_ca_file(&missing),
            "tls_ca_file",
            &missing,
        ),
        (
            CacheManager::builder().url(url).tls_ca_file(&garbage),
            "tls_ca_file",
            &garbage,
        ),
        (
            CacheManager::builder()
                .url(url)
                .tls_client_cert(&garbage, &garbage),
            "tls_cert_file",
            &garbage,
        ),
        (
            CacheManager::builder()
                .url(url)
                .tls_client_cert(&missing, &garbage),
            "tls_cert_file",
            &missing,
        ),
    ];
    for (builder, field, path) in cases {
        let e = builder.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        let text = e.to_string();
        assert!(text.contains(field), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(!text.contains("SECRET-KEY-MATERIAL"), "{text}");
    }
    // A valid certificate with a key file that holds no key.
    let server = spawn(RedisServer::builder().tls());
    let f = files(&server);
    let e = CacheManager::builder()
        .url(server.url())
        .tls_client_cert(&f.cert_file, &garbage)
        .build()
        .unwrap_err();
    assert!(e.is_config());
    assert!(e.to_string().contains("tls_key_file"), "{e}");
    assert!(
        e.to_string().contains(&garbage.display().to_string()),
        "{e}"
    );
    // TLS settings for a plain server are refused rather than ignored.
    let e = CacheManager::builder()
        .url("redis://127.0.0.1:1/")
        .tls_ca_file(&f.ca_file)
        .build()
        .unwrap_err();
    assert!(e.is_config());
    assert!(e.to_string().contains("rediss://"), "{e}");
}

/// A manager on `url` with these timeouts (breaker off).
fn timed_manager(url: &str, connect: Duration, command: Duration) -> CacheManager {
    CacheManager::builder()
        .url(url)
        .key_prefix("tls:")
        .connect_timeout(connect)
        .command_timeout(command)
        .circuit_breaker(0, Duration::ZERO)
        .build()
        .expect("build manager")
}

/// `rediss://` at a plain Redis port: the server never answers the client hello (it waits
/// for the end of an inline command that never comes), so the handshake is cut when the time
/// to connect runs out (the command timeout or the connect timeout, whichever ends first)
/// and reported as a TLS error that says so, not as a timeout; and the failure is held like
/// any failed handshake (the next call gets it at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_to_a_plain_port_is_a_tls_error_not_a_timeout() {
    let plain = RedisServer::new();
    let url = format!("rediss://127.0.0.1:{}/", plain.port());
    let ms = Duration::from_millis;
    // (connect timeout, command timeout): the defaults (the command timeout ends first), then
    // a connect timeout shorter than the command timeout.
    for (connect, command) in [(ms(1000), ms(500)), (ms(300), ms(2000))] {
        let cache = timed_manager(&url, connect, command);
        let started = Instant::now();
        let e = cache.get::<u32>("k").await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("did not complete the TLS handshake") && text.contains("TLS port?"),
            "{text}"
        );
        let limit = connect.min(command);
        assert!(
            took >= limit * 9 / 10 && took < limit + ms(300),
            "took {took:?} (limit {limit:?})"
        );
        let started = Instant::now();
        let again = cache.get::<u32>("k").await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Tls, "{again}");
        assert!(started.elapsed() < ms(100), "{:?}", started.elapsed());
    }
    assert_eq!(plain.cli(["PING"]), "PONG");
}

/// A plain server that does answer the client hello, in plain text (`-ERR ...`, what a
/// plain Redis sends when the hello happens to hold a newline): the handshake fails at once,
/// with a TLS error saying the answer was not TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_text_answer_to_the_handshake_fails_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut hello = [0u8; 512];
                if socket.read(&mut hello).await.is_ok() {
                    let _ = socket.write_all(b"-ERR unknown command\r\n").await;
                    // Kept open: only the content of the answer fails the handshake.
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            });
        }
    });
    let url = format!("rediss://127.0.0.1:{port}/");
    let cache = timed_manager(&url, Duration::from_secs(2), Duration::from_secs(2));
    let started = Instant::now();
    let e = cache.get::<u32>("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("did not answer in TLS") && text.contains("TLS port?"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

/// `redis://` at a TLS-only port: the server resets the plain connection at once; the
/// connection error says to use `rediss://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_to_a_tls_port_says_to_use_rediss() {
    let server = spawn(RedisServer::builder().tls());
    let url = format!("redis://127.0.0.1:{}/", server.tls_port().unwrap());
    let cache = timed_manager(&url, Duration::from_secs(1), Duration::from_secs(1));
    let started = Instant::now();
    let e = cache.get::<u32>("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.to_string().contains("connect with rediss://"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}
