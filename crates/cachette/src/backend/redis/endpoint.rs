//! Redis endpoints: a connection URL is parsed once, where it enters (config file,
//! environment, [`CacheManagerBuilder::url`](crate::CacheManagerBuilder::url),
//! [`StatsPublisher::builder`](crate::StatsPublisher::builder), the CLI's `--url`), into its
//! parts. Every description, `Debug` output and error is printed from those parts, so no
//! credentials ever appear, and a URL that does not parse is rejected with a message naming
//! the part that is wrong, without echoing any of the input.
//!
//! # Accepted URLs
//!
//! | form | meaning |
//! |---|---|
//! | `redis://[user[:password]@]host[:port][/db]` | TCP (`valkey://` too) |
//! | `rediss://[user[:password]@]host[:port][/db]` | TLS (crate feature `tls`; `valkeys://` too) |
//! | `redis+unix:///path/to/socket[?db=N&user=U&pass=P]` | Unix socket (`unix://` too) |
//!
//! - The user info runs to the **last** `@`, and splits at its first `:`; both parts are
//!   percent-decoded (`%40` for `@`, `%25` for `%`), so a password may hold any character,
//!   even an unencoded `@`, `/`, `#` or space.
//! - The port defaults to 6379 and must be 1-65535; the database defaults to 0.
//! - The host is a name (letters, digits, `-`, `.`, `_`), an IPv4 address or a bracketed
//!   IPv6 address (`[::1]`); `0.0.0.0` and `[::]` are refused.
//! - Query parameters (other than `db`, `user`, `pass` of a Unix socket) and `#fragments` are
//!   refused rather than silently ignored.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;

use super::tls::TlsOptions;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The default Redis port.
pub(crate) const DEFAULT_PORT: u16 = 6379;

/// How the server is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// TCP to `host:port`; `tls` for `rediss://`.
    Tcp {
        /// Host name or IP address (an IPv6 address without brackets).
        host: String,
        /// Port, 1-65535.
        port: u16,
        /// Whether the connection uses TLS (`rediss://`).
        tls: bool,
    },
    /// A Unix domain socket.
    Unix(PathBuf),
}

/// A Redis server and how to log in to it: the parts of a connection URL. `Display` and `Debug`
/// never show the user name or the password (`redis://***@host:6379/0`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisEndpoint {
    /// Where the server is.
    pub transport: Transport,
    /// Database number (`SELECT`).
    pub db: i64,
    /// ACL user name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// CA, client certificate and verification settings of a `rediss://` endpoint (never
    /// part of a URL: from the configuration, see [`TlsOptions`]).
    pub tls_options: TlsOptions,
}

impl RedisEndpoint {
    /// A TCP endpoint without credentials.
    pub fn tcp(host: impl Into<String>, port: u16) -> RedisEndpoint {
        RedisEndpoint {
            transport: Transport::Tcp {
                host: host.into(),
                port,
                tls: false,
            },
            db: 0,
            username: None,
            password: None,
            tls_options: TlsOptions::default(),
        }
    }

    /// Whether the connection uses TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tcp { tls: true, .. })
    }

    /// Parses a connection URL: `redis://`, `rediss://` or `redis+unix://`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the part that is wrong (scheme,
    /// host, port, database, user name, password, query); the message never contains any of
    /// the input.
    pub fn parse(url: &str) -> Result<RedisEndpoint> {
        RedisEndpoint::parse_from(url, "code", "url")
    }

    /// [`RedisEndpoint::parse`] with the source (`"environment variable REDIS_URL"`) and field
    /// (`"REDIS_URL"`) an error names.
    ///
    /// # Errors
    /// As [`RedisEndpoint::parse`].
    pub fn parse_from(url: &str, source: &str, field: &str) -> Result<RedisEndpoint> {
        parse(url).map_err(|what| Error::config(source, field, what))
    }

    /// The database number.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// A `redis` client for this endpoint (does not connect). For `rediss://` it trusts the
    /// [`TlsOptions`]' CA file and presents their client certificate (the files are read here).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when the client refuses the settings,
    /// or a TLS file cannot be read; the message has no credentials.
    pub fn client(&self) -> Result<redis::Client> {
        let addr = match &self.transport {
            Transport::Tcp {
                host,
                port,
                tls: false,
            } => redis::ConnectionAddr::Tcp(host.clone(), *port),
            Transport::Tcp {
                host,
                port,
                tls: true,
            } => redis::ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: self.tls_options.insecure,
                tls_params: None,
            },
            Transport::Unix(path) => redis::ConnectionAddr::Unix(path.clone()),
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose());
        }
        let refused = |e: redis::RedisError| {
            Error::new(
                crate::ErrorKind::Config,
                format!("cannot use the Redis server {self}: {:?}", e.kind()),
            )
        };
        let info = redis::IntoConnectionInfo::into_connection_info(addr)
            .map_err(refused)?
            .set_redis_settings(settings);
        #[cfg(feature = "tls")]
        if self.is_tls() && !self.tls_options.is_default() {
            // Checked first with cachette's own reader, whose errors name the setting and
            // the path (the `redis` crate's only say "Io").
            super::tls::TlsConnector::new(&self.tls_options)?;
            let read = |path: &std::path::Path, field: &str| {
                std::fs::read(path).map_err(|e| {
                    Error::config(
                        "the TLS settings",
                        field,
                        format!("cannot read {}: {}", path.display(), e.kind()),
                    )
                })
            };
            let client_tls = match (&self.tls_options.cert_file, &self.tls_options.key_file) {
                (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                    client_cert: read(cert, "tls_cert_file")?,
                    client_key: read(key, "tls_key_file")?,
                }),
                _ => None,
            };
            let root_cert = match &self.tls_options.ca_file {
                Some(ca) if !self.tls_options.insecure => Some(read(ca, "tls_ca_file")?),
                _ => None,
            };
            let certificates = redis::TlsCertificates {
                client_tls,
                root_cert,
            };
            // The `redis` crate's messages about these files never quote them.
            return redis::Client::build_with_tls(info, certificates).map_err(|e| {
                Error::new(
                    crate::ErrorKind::Config,
                    format!(
                        "cannot use the TLS files for the Redis server {self}: {:?}",
                        e.kind()
                    ),
                )
            });
        }
        redis::Client::open(info).map_err(refused)
    }

    /// The TLS configuration of connections cachette opens itself (`None` for `redis://`
    /// and Unix sockets).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the setting and path of a TLS
    /// file that cannot be read or parsed.
    pub(crate) fn tls_connector(&self) -> Result<Option<super::tls::TlsConnector>> {
        if !self.is_tls() {
            return Ok(None);
        }
        #[cfg(feature = "tls")]
        return super::tls::TlsConnector::new(&self.tls_options).map(Some);
        #[cfg(not(feature = "tls"))]
        Err(Error::new(
            crate::ErrorKind::Config,
            "rediss:// (TLS) needs the cachette feature \"tls\"",
        ))
    }
}

impl fmt::Display for RedisEndpoint {
    /// `redis://host:port/db`, with `***@` when there are credentials; never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.username.is_some() || self.password.is_some() {
            "***@"
        } else {
            ""
        };
        match &self.transport {
            Transport::Tcp { host, port, tls } => {
                let scheme = if *tls { "rediss" } else { "redis" };
                if host.contains(':') {
                    write!(f, "{scheme}://{auth}[{host}]:{port}/{}", self.db)
                } else {
                    write!(f, "{scheme}://{auth}{host}:{port}/{}", self.db)
                }
            }
            Transport::Unix(path) => {
                write!(f, "redis+unix://{auth}{}?db={}", path.display(), self.db)
            }
        }
    }
}

impl fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisEndpoint({self})")
    }
}

/// A URL described from its parts (`redis://***@host:6379/0`), or `<invalid URL>`: never the
/// text itself.
pub(crate) fn describe_url(url: &str) -> String {
    match parse(url) {
        Ok(endpoint) => endpoint.to_string(),
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// Checks a host name given on its own (`REDIS_HOST`, `redis.host`, code): a name, an IPv4
/// address, or an IPv6 address with or without brackets. Returns it without brackets.
pub(crate) fn check_host(host: &str) -> std::result::Result<String, &'static str> {
    let host = host.trim();
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return ipv6(inner);
    }
    if host.contains(':') {
        return ipv6(host);
    }
    if host.is_empty() {
        return Err("the host is empty");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(
            "the host may only contain letters, digits, '-', '.' and '_' (or be an IP address)",
        );
    }
    if host == "0.0.0.0" {
        return Err("cannot connect to the wildcard address 0.0.0.0");
    }
    Ok(host.to_owned())
}

fn ipv6(inner: &str) -> std::result::Result<String, &'static str> {
    match inner.parse::<Ipv6Addr>() {
        Ok(addr) if addr.is_unspecified() => Err("cannot connect to the wildcard address ::"),
        Ok(addr) => Ok(addr.to_string()),
        Err(_) => Err("the host is not a valid IPv6 address (write it in brackets: [::1])"),
    }
}

/// Parses a port (`1`-`65535`) without echoing it.
pub(crate) fn check_port(port: &str) -> std::result::Result<u16, &'static str> {
    let port = port.trim();
    if port.is_empty() {
        return Err("the port is empty");
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port is not a number");
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => {
            u16::try_from(p).map_err(|_| "the port is out of range (1-65535)")
        }
        _ => Err("the port is out of range (1-65535)"),
    }
}

fn check_db(db: &str) -> std::result::Result<i64, &'static str> {
    if db.is_empty() {
        return Ok(0);
    }
    if !db.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the database (the path after the host) must be a non-negative integer");
    }
    db.parse::<i64>()
        .map_err(|_| "the database number is out of range")
}

/// Percent-decodes `part` (named `what` in errors) into UTF-8.
fn decode(part: &str, what: &'static str) -> std::result::Result<String, String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) if bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                    out.push(b);
                    i += 3;
                }
                _ => {
                    return Err(format!(
                        "the {what} has a '%' that is not followed by two hex digits \
                         (write %25 for a literal '%')"
                    ))
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the {what} is not UTF-8 after percent-decoding"))
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// The parser. Errors never contain any part of `url`.
fn parse(url: &str) -> std::result::Result<RedisEndpoint, String> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL: expected redis://host:port/db, rediss://... or \
                    redis+unix:///path/to/socket"
            .to_owned());
    };
    let (tls, unix) = match scheme.to_ascii_lowercase().as_str() {
        "redis" | "valkey" => (false, false),
        "rediss" | "valkeys" => (true, false),
        "redis+unix" | "unix" | "valkey+unix" => (false, true),
        _ => {
            return Err(
                "unsupported scheme: expected redis://, rediss:// or redis+unix://".to_owned(),
            )
        }
    };
    if tls && !cfg!(feature = "tls") {
        return Err("rediss:// (TLS) needs the cachette feature \"tls\"".to_owned());
    }
    // The user info runs to the last '@'.
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (mut username, mut password) = (None, None);
    if let Some(info) = userinfo {
        let (user, pass) = match info.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (info, None),
        };
        username = non_empty(decode(user, "user name")?);
        password = match pass {
            Some(p) => non_empty(decode(p, "password")?).map(Secret::new),
            None => None,
        };
    }
    if after.contains('#') {
        return Err("a #fragment is not supported".to_owned());
    }
    let (before_query, query) = match after.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (after, None),
    };
    if unix {
        let path = match before_query.strip_prefix("localhost") {
            Some(p) => p,
            None => before_query,
        };
        if !path.starts_with('/') || path.len() < 2 {
            return Err(
                "the socket path must be absolute: redis+unix:///path/to/socket".to_owned(),
            );
        }
        let path = decode(path, "socket path")?;
        let mut endpoint = RedisEndpoint {
            transport: Transport::Unix(PathBuf::from(path)),
            db: 0,
            username,
            password,
            tls_options: TlsOptions::default(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "db" => endpoint.db = check_db(value)?,
                "user" => endpoint.username = non_empty(decode(value, "user name")?),
                "pass" => {
                    endpoint.password = non_empty(decode(value, "password")?).map(Secret::new)
                }
                _ => {
                    return Err(
                        "unknown query parameter (a socket URL takes db, user and pass)".to_owned(),
                    )
                }
            }
        }
        return Ok(endpoint);
    }
    if query.is_some() {
        return Err("query parameters are not supported (the database is the path: /N)".to_owned());
    }
    let (authority, path) = match before_query.find('/') {
        Some(slash) => before_query.split_at(slash),
        None => (before_query, ""),
    };
    let db = check_db(path.strip_prefix('/').unwrap_or(path))?;
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inner, tail)) = bracketed.split_once(']') else {
            return Err("the host has a '[' without a closing ']'".to_owned());
        };
        let port = match tail {
            "" => DEFAULT_PORT,
            t => match t.strip_prefix(':') {
                Some(p) => check_port(p)?,
                None => return Err("unexpected characters after the IPv6 host".to_owned()),
            },
        };
        (ipv6(inner)?, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(
                        "the host has several ':' (write an IPv6 address in brackets: [::1])"
                            .to_owned(),
                    );
                }
                (h, check_port(p)?)
            }
            None => (authority, DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err("the host is missing".to_owned());
        }
        (check_host(host)?, port)
    };
    Ok(RedisEndpoint {
        transport: Transport::Tcp { host, port, tls },
        db,
        username,
        password,
        tls_options: TlsOptions::default(),
    })
}

/// `host:port` (or `[v6]:port`) into its checked parts.
pub(crate) fn split_host_port(item: &str) -> std::result::Result<(String, u16), String> {
    let bad = |what: &str| format!("{what} in cluster node {item:?} (expected host:port)");
    let (host, port) = item.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad("not a port number 1-65535"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let host = check_host(host).map_err(bad)?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(e: &RedisEndpoint) -> (&str, u16) {
        match &e.transport {
            Transport::Tcp { host, port, .. } => (host, *port),
            Transport::Unix(_) => panic!("not tcp"),
        }
    }

    #[test]
    fn parses_the_usual_forms() {
        let e = RedisEndpoint::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(tcp(&e), ("127.0.0.1", 6380));
        assert_eq!(e.db, 2);
        assert_eq!(e.to_string(), "redis://127.0.0.1:6380/2");
        let e = RedisEndpoint::parse("redis://h").unwrap();
        assert_eq!(tcp(&e), ("h", 6379));
        assert_eq!(e.db, 0);
        let e = RedisEndpoint::parse("redis://[::1]:7000/").unwrap();
        assert_eq!(tcp(&e), ("::1", 7000));
        assert_eq!(e.to_string(), "redis://[::1]:7000/0");
        let e = RedisEndpoint::parse("redis://app:p%40ss@h:1/3").unwrap();
        assert_eq!(e.username.as_deref(), Some("app"));
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(e.to_string(), "redis://***@h:1/3");
        let e = RedisEndpoint::parse("redis://:se/cret @x@h:1/3").unwrap();
        assert_eq!(e.username, None);
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("se/cret @x"));
        let e = RedisEndpoint::parse("redis+unix:///tmp/r.sock?db=4&pass=a%26b").unwrap();
        assert_eq!(e.transport, Transport::Unix(PathBuf::from("/tmp/r.sock")));
        assert_eq!(e.db, 4);
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("a&b"));
        assert_eq!(e.to_string(), "redis+unix://***@/tmp/r.sock?db=4");
    }

    #[test]
    fn rejections_name_the_part() {
        for (url, part) in [
            ("not a url", "not a URL"),
            ("http://h:1", "scheme"),
            ("redis://h:99999", "port"),
            ("redis://h:0", "port"),
            ("redis://h:x", "port"),
            ("redis://a b:1", "host"),
            ("redis://:1", "host"),
            ("redis://h:1/x", "database"),
            ("redis://h:1/-1", "database"),
            ("redis://h:1/?protocol=resp3", "query"),
            ("redis://h:1/0#insecure", "fragment"),
            ("redis://u:%zz@h", "password"),
            ("redis://%ff@h", "user name"),
            ("redis://0.0.0.0", "wildcard"),
            ("redis://[::]:1", "wildcard"),
            ("redis+unix://relative", "absolute"),
        ] {
            let e = RedisEndpoint::parse(url).unwrap_err();
            assert!(e.is_config());
            assert!(e.to_string().contains(part), "{url}: {e}");
        }
    }
}
