//! Redis Sentinel: the primary's address comes from the sentinels, and follows its failovers.
//!
//! A [`RedisBackend`] built with [`RedisBackend::connect_sentinel`] is the standalone backend
//! (same connections, stall watchdog, retry and hot path) whose connections do not dial a
//! fixed address: every (re)connect asks the sentinels in turn for
//! `SENTINEL get-master-addr-by-name <master>` (each bounded by the connect timeout; a sentinel
//! that fails is skipped and the next one asked first next time), connects to the answer with
//! the endpoint's database, credentials and TLS settings, and keeps the connection only if
//! `ROLE` says `master`. So a connection is never opened to a node that is not (any more) the
//! primary.
//!
//! The primary changes under open connections in three ways, all handled:
//! - **`+switch-master`**: a background task per backend stays subscribed to the channel on
//!   one sentinel (the next one when that connection drops or stops answering its pings,
//!   with a back-off of 50 ms doubling to 1 s). A switch of our master drops every current
//!   connection of the backend (commands already sent finish on their connection); the next
//!   command reconnects to the new primary. A connect that was under way during the switch
//!   asks again, and for 5 s a sentinel that still names the former primary (it has not
//!   heard of the switch yet) is not believed. After a lost subscription, the task compares
//!   the sentinels' answer with the last one and drops the connections if it changed
//!   meanwhile. The task holds only a weak reference to the backend and ends soon after the
//!   backend is dropped.
//! - **Connection loss**: a broken connection is replaced as for a standalone server, and
//!   the reconnect asks the sentinels again.
//! - **`READONLY`**: a write refused because the node was demoted to a replica is handled like
//!   a broken connection (in Sentinel mode only): the connection is dropped and the command
//!   retried once on a new connection to the rediscovered primary. A demoted primary therefore
//!   never keeps receiving writes.
//!
//! Failures have kinds of their own: sentinels that cannot be reached (or that do not answer
//! in time) give [`ErrorKind::Connection`]; when every sentinel answers but none knows the
//! master name, [`ErrorKind::Config`] naming it (held for [`UNKNOWN_MASTER_HOLD`] so that a
//! misconfiguration does not cost one round of questions per call). Neither error ever
//! contains a password.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{Client, ConnectionAddr};

use super::{Inner, RedisBackend};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// A host and port.
type Addr = (String, u16);

/// How long after a `+switch-master` a sentinel naming the former primary is taken to be
/// behind (sentinels tell each other about a new configuration every 2 s).
const BEHIND_WINDOW: Duration = Duration::from_secs(5);

/// How long "no sentinel knows this master" is reported without asking again.
pub(crate) const UNKNOWN_MASTER_HOLD: Duration = Duration::from_secs(1);

/// The sentinels and the master they monitor (from [`crate::Config`]).
#[derive(Clone)]
pub(crate) struct SentinelOptions {
    /// `(host, port)` of each sentinel, in the order they are asked first.
    pub(crate) sentinels: Vec<(String, u16)>,
    /// The master name (`sentinel monitor NAME ...`).
    pub(crate) master: String,
    /// ACL user name on the sentinels.
    pub(crate) username: Option<String>,
    /// Password of the sentinels.
    pub(crate) password: Option<Secret>,
}

impl fmt::Debug for SentinelOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelOptions")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("password", &self.password)
            .finish()
    }
}

/// What every connection of a Sentinel backend shares: where to ask, and what was answered.
pub(crate) struct Sentinels {
    options: SentinelOptions,
    /// One client per sentinel (with the sentinels' credentials).
    clients: Vec<Client>,
    /// The data connection's settings (database, credentials, TLS); its address is replaced.
    template: redis::ConnectionInfo,
    connect_timeout: Duration,
    /// The sentinel to ask first.
    next: AtomicUsize,
    /// Bumped on every switch of our master: a connection opened from an older answer is not
    /// kept.
    switches: AtomicU64,
    /// The last address the sentinels gave.
    last: Mutex<Option<(String, u16)>>,
    /// The last switch of our master seen (when, from, to): for [`BEHIND_WINDOW`] after it,
    /// a sentinel that still names `from` has not heard of it yet and is not believed.
    moved: Mutex<Option<(Instant, Addr, Addr)>>,
    /// "No sentinel knows this master", and when.
    unknown: Mutex<Option<(Instant, String)>>,
}

impl Sentinels {
    pub(crate) fn new(
        options: SentinelOptions,
        template: &Client,
        connect_timeout: Duration,
    ) -> Result<Sentinels> {
        let clients = options
            .sentinels
            .iter()
            .map(|(host, port)| {
                let mut settings = redis::RedisConnectionInfo::default();
                if let Some(user) = &options.username {
                    settings = settings.set_username(user);
                }
                if let Some(password) = &options.password {
                    settings = settings.set_password(password.expose());
                }
                let info = redis::IntoConnectionInfo::into_connection_info(ConnectionAddr::Tcp(
                    host.clone(),
                    *port,
                ))
                .map(|info| info.set_redis_settings(settings))
                .and_then(Client::open);
                info.map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("cannot use the sentinel {host}:{port}: {:?}", e.kind()),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if clients.is_empty() {
            return Err(Error::config("code", "sentinels", "no sentinel is named"));
        }
        Ok(Sentinels {
            options,
            clients,
            template: template.get_connection_info().clone(),
            connect_timeout,
            next: AtomicUsize::new(0),
            switches: AtomicU64::new(0),
            last: Mutex::new(None),
            moved: Mutex::new(None),
            unknown: Mutex::new(None),
        })
    }

    /// The number of switches of our master seen so far.
    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Acquire)
    }

    fn name(&self, i: usize) -> String {
        let (host, port) = &self.options.sentinels[i];
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// Asks sentinel `i` for the master's address (`None`: it does not know the name).
    async fn ask(&self, i: usize) -> redis::RedisResult<Option<(String, u16)>> {
        let mut conn = self.clients[i]
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.connect_timeout)),
            )
            .await?;
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.options.master)
            .query_async(&mut conn)
            .await?;
        Ok(reply)
    }

    /// The primary's address, from the first sentinel that knows it (each asked within the
    /// connect timeout; one that fails is asked last next time).
    pub(crate) async fn primary(&self) -> Result<(String, u16)> {
        if let Some((at, message)) = &*self.unknown.lock() {
            if at.elapsed() < UNKNOWN_MASTER_HOLD {
                return Err(Error::new(ErrorKind::Config, message.clone()));
            }
        }
        let n = self.clients.len();
        let first = self.next.load(Ordering::Relaxed) % n;
        let mut failures = Vec::with_capacity(n);
        let mut unknown = 0;
        let moved = self
            .moved
            .lock()
            .clone()
            .filter(|(at, _, _)| at.elapsed() < BEHIND_WINDOW)
            .map(|(_, from, to)| (from, to));
        let mut behind = false;
        for i in (0..n).map(|k| (first + k) % n) {
            let asked = tokio::time::timeout(self.connect_timeout, self.ask(i)).await;
            match asked {
                // A sentinel that has not heard of the last switch yet.
                Ok(Ok(Some(addr))) if moved.as_ref().is_some_and(|(from, _)| *from == addr) => {
                    behind = true;
                    failures.push(format!("{}: still names the former primary", self.name(i)));
                }
                Ok(Ok(Some(addr))) => {
                    self.next.store(i, Ordering::Relaxed);
                    *self.last.lock() = Some(addr.clone());
                    return Ok(addr);
                }
                Ok(Ok(None)) => {
                    unknown += 1;
                    failures.push(format!("{}: unknown master", self.name(i)));
                }
                Ok(Err(e)) => failures.push(format!(
                    "{}: {}",
                    self.name(i),
                    crate::error::redact(&e.to_string())
                )),
                Err(_) => failures.push(format!(
                    "{}: no answer within {:?}",
                    self.name(i),
                    self.connect_timeout
                )),
            }
            // Ask the next one first next time.
            self.next.store((i + 1) % n, Ordering::Relaxed);
        }
        if let Some((_, to)) = moved.filter(|_| behind) {
            // Every sentinel that answered is behind: the switch itself named the primary.
            return Ok(to);
        }
        if unknown == n {
            let message = format!(
                "no sentinel monitors a master named {:?} (check sentinel_master; asked {})",
                self.options.master,
                failures.join(", ")
            );
            *self.unknown.lock() = Some((Instant::now(), message.clone()));
            return Err(Error::new(ErrorKind::Config, message));
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "no sentinel gave the address of the master {:?} ({})",
                self.options.master,
                failures.join("; ")
            ),
        ))
    }

    /// A client for the primary at `(host, port)` with the endpoint's settings.
    pub(crate) fn client_for(&self, (host, port): (String, u16)) -> Result<Client> {
        let addr = match self.template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        Client::open(self.template.clone().set_addr(addr)).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot use the primary's address: {:?}", e.kind()),
            )
        })
    }

    /// Checks that the node behind `conn` is a primary (`ROLE`), within the connect timeout.
    pub(crate) async fn check_role(&self, conn: &MultiplexedConnection) -> Result<()> {
        let mut conn = conn.clone();
        let cmd = redis::cmd("ROLE");
        let role = cmd.query_async::<redis::Value>(&mut conn);
        let role = match tokio::time::timeout(self.connect_timeout, role).await {
            Ok(Ok(role)) => role,
            Ok(Err(e)) => {
                let e = Error::from(e);
                return Err(if e.kind() == ErrorKind::Permission {
                    e.prefixed(
                        "ROLE refused (Sentinel needs +role: cachette::acl::Feature::Sentinel): ",
                    )
                } else {
                    e
                });
            }
            Err(_) => return Err(Error::timeout("ROLE", self.connect_timeout)),
        };
        let first = match &role {
            redis::Value::Array(items) => items.first(),
            _ => None,
        };
        let name = match first {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => "an unexpected reply".to_owned(),
        };
        if name == "master" {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "the node the sentinels named as master {:?} is a {name}, not a primary \
                 (a failover in progress?); not used",
                self.options.master
            ),
        ))
    }

    /// The former and the new primary of a `+switch-master` message
    /// (`<name> <old ip> <old port> <new ip> <new port>`) about our master.
    fn our_switch(&self, payload: &[u8]) -> Option<(Addr, Addr)> {
        let text = std::str::from_utf8(payload).ok()?;
        let fields: Vec<&str> = text.split(' ').collect();
        let [name, from_ip, from_port, to_ip, to_port] = fields[..] else {
            return None;
        };
        if name != self.options.master {
            return None;
        }
        let from = (from_ip.to_owned(), from_port.parse().ok()?);
        let to = (to_ip.to_owned(), to_port.parse().ok()?);
        Some((from, to))
    }

    /// Records a switch (`from` → `to`) and drops every current connection of `backend`.
    fn switched(&self, backend: &Inner, moved: (Addr, Addr)) {
        *self.moved.lock() = Some((Instant::now(), moved.0, moved.1));
        self.switches.fetch_add(1, Ordering::AcqRel);
        for link in &backend.connections {
            link.drop_current();
        }
    }
}

impl RedisBackend {
    /// The sentinels this backend follows, when it was built by
    /// [`connect_sentinel`](Self::connect_sentinel).
    pub(crate) fn sentinels(&self) -> Option<Arc<Sentinels>> {
        self.inner.connections.iter().find_map(|c| c.sentinels())
    }

    /// A backend on the primary that the sentinels of `options` name, reached with the
    /// database, credentials and TLS settings of `template` (its host and port are not used),
    /// following failovers (see the module documentation), described as `display`. Does not
    /// connect; starts the `+switch-master` watcher.
    ///
    /// Must be called inside a tokio runtime.
    pub(crate) fn connect_sentinel(
        template: &crate::RedisEndpoint,
        options: SentinelOptions,
        display: String,
        connections: usize,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let client = template.client()?;
        let sentinels = Arc::new(Sentinels::new(options, &client, connect_timeout)?);
        let backend = RedisBackend::build(
            template,
            super::connection::Target::Sentinel(sentinels.clone()),
            display,
            connections,
            (connect_timeout, command_timeout),
        )?;
        tokio::spawn(watch_switches(
            Arc::downgrade(&backend.inner),
            sentinels,
            connect_timeout,
        ));
        Ok(backend)
    }
}

/// Keeps one `+switch-master` subscription alive on one of the sentinels, until the backend
/// is dropped.
async fn watch_switches(backend: Weak<Inner>, sentinels: Arc<Sentinels>, timeout: Duration) {
    const PING_EVERY: Duration = Duration::from_secs(1);
    let mut backoff = Duration::from_millis(50);
    let mut resubscribed = false;
    let n = sentinels.clients.len();
    let mut i = 0;
    loop {
        let session = async {
            let pubsub = tokio::time::timeout(timeout, sentinels.clients[i].get_async_pubsub())
                .await
                .ok()?
                .ok()?;
            let (mut sink, mut stream) = pubsub.split();
            tokio::time::timeout(timeout, sink.subscribe("+switch-master"))
                .await
                .ok()?
                .ok()?;
            if resubscribed {
                // A switch may have happened while no one listened.
                let before = sentinels.last.lock().clone();
                let now = sentinels.primary().await.ok();
                if let (Some(before), Some(now)) = (before, now) {
                    if before != now {
                        sentinels.switched(&*backend.upgrade()?, (before, now));
                    }
                }
            }
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let msg = msg?;
                        if let Some(moved) = sentinels.our_switch(msg.get_payload_bytes()) {
                            tracing::info!(
                                switch = %String::from_utf8_lossy(msg.get_payload_bytes()),
                                "cachette: Sentinel switched the primary; reconnecting"
                            );
                            sentinels.switched(&*backend.upgrade()?, moved);
                        }
                    }
                    () = tokio::time::sleep(PING_EVERY) => {
                        backend.upgrade()?;
                        // A stopped or vanished sentinel does not always close the socket.
                        let ping = sink.ping::<String>();
                        if !matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_))) {
                            return None;
                        }
                    }
                }
            }
        };
        let _: Option<()> = session.await;
        if backend.strong_count() == 0 {
            return;
        }
        resubscribed = true;
        i = (i + 1) % n;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
        if backend.strong_count() == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinels(master: &str) -> Sentinels {
        let options = SentinelOptions {
            sentinels: vec![("127.0.0.1".into(), 1)],
            master: master.into(),
            username: None,
            password: Some(Secret::new("pw")),
        };
        let template = crate::RedisEndpoint::tcp("localhost", 6379)
            .client()
            .unwrap();
        Sentinels::new(options, &template, Duration::from_millis(100)).unwrap()
    }

    #[test]
    fn only_a_switch_of_our_master_counts() {
        let s = sentinels("mymaster");
        assert_eq!(
            s.our_switch(b"mymaster 127.0.0.1 1 10.0.0.2 2"),
            Some((("127.0.0.1".into(), 1), ("10.0.0.2".into(), 2)))
        );
        assert_eq!(s.our_switch(b"mymaster2 127.0.0.1 1 127.0.0.1 2"), None);
        assert_eq!(s.our_switch(b"other mymaster"), None);
        assert_eq!(s.our_switch(b"mymaster 127.0.0.1 x 127.0.0.1 2"), None);
        assert_eq!(s.our_switch(b"\xff"), None);
    }

    #[test]
    fn the_primary_keeps_the_template_settings() {
        let s = sentinels("m");
        let client = s.client_for(("10.0.0.9".into(), 7000)).unwrap();
        let info = client.get_connection_info();
        assert_eq!(info.addr(), &ConnectionAddr::Tcp("10.0.0.9".into(), 7000));
        let options = format!("{:?}", s.options);
        assert!(!options.contains("pw\""), "{options}");
    }
}
