//! Fixtures: a backend, a server running a router on 127.0.0.1:0, a client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use cachette::CacheManager;
use cachette_test_support::RedisServer;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Where responses are stored in a test.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Memory,
    Redis,
}

/// A backend under test (a Redis one holds its own server).
pub(crate) struct Backend {
    pub(crate) manager: CacheManager,
    pub(crate) server: Option<RedisServer>,
}

impl Backend {
    pub(crate) fn new(kind: Kind) -> Backend {
        let prefix = format!(
            "t{}:{}:",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match kind {
            Kind::Memory => Backend {
                manager: CacheManager::builder()
                    .memory()
                    .key_prefix(prefix)
                    .build()
                    .expect("memory manager"),
                server: None,
            },
            Kind::Redis => {
                let server = RedisServer::new();
                let manager = CacheManager::builder()
                    .url(server.url())
                    .key_prefix(prefix)
                    .command_timeout(std::time::Duration::from_millis(300))
                    .connect_timeout(std::time::Duration::from_millis(300))
                    .build()
                    .expect("redis manager");
                Backend {
                    manager,
                    server: Some(server),
                }
            }
        }
    }
}

/// A counter of handler runs.
#[derive(Clone, Default)]
pub(crate) struct Calls(pub(crate) Arc<AtomicUsize>);

impl Calls {
    /// Counts one run and returns its number (1 for the first).
    pub(crate) fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Serves `app` on 127.0.0.1:0 until the test ends.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A response as the client saw it.
#[derive(Debug)]
pub(crate) struct Got {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Got {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub(crate) fn cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request over a new HTTP/1.1 connection (`Host` is the server's address unless given).
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.to_string());
    }
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub(crate) async fn get(addr: SocketAddr, path: &str) -> Got {
    send(addr, "GET", path, &[]).await
}

/// The exact bytes the server sends for `request` (a whole HTTP/1.1 request; the server
/// closes the connection after it when it says `Connection: close`).
pub(crate) async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    );
    read.await
        .expect("the server closes the connection")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs each test on the memory backend and on Redis.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Kind::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Kind::Redis).await
                }
            )*
        }
    };
}
