//! Redis Cluster seeds: `cluster_nodes` (`config.json`), `REDIS_CLUSTER_NODES` (environment),
//! `CacheManagerBuilder::cluster_nodes` (code).

use super::*;
use crate::backend::redis::endpoint::{split_host_port, Transport};

/// Parses seed nodes given as `host:port` items, each possibly a comma-separated list
/// (`"10.0.0.1:7000,10.0.0.2:7000"`); an IPv6 host is written in brackets (`[::1]:7000`).
/// Returns them normalised (`host:port`), in order, without duplicates.
///
/// # Errors
/// A message naming the first item that is not `host:port` (empty items are skipped).
pub(crate) fn parse_nodes<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in items.into_iter().flat_map(|s| s.split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (host, port) = split_host_port(item)?;
        let node = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        if !out.contains(&node) {
            out.push(node);
        }
    }
    Ok(out)
}

impl Config {
    /// Whether Redis Cluster seeds are configured ([`Config::cluster_nodes`] not empty): the
    /// manager then runs on the cluster backend, and `url`/`host`/`port` only lend their
    /// credentials and TLS setting.
    pub fn uses_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
    }

    /// One endpoint per seed node, with this configuration's user name, password and TLS
    /// setting (database 0: a cluster has no other).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming `cluster_nodes` for a seed that
    /// is not `host:port`, or `db` when a database other than 0 is configured.
    pub fn cluster_endpoints(&self) -> Result<Vec<RedisEndpoint>> {
        let mut tls = self.tls;
        let mut username = self.username.clone();
        let mut password = self.password.clone();
        let mut db = self.db;
        // A URL set in code lends its credentials too.
        if let Some(url) = &self.url {
            let endpoint = RedisEndpoint::parse_from(url, "code", "url")?;
            if let Transport::Tcp { tls: t, .. } = endpoint.transport {
                tls = t;
            }
            username = endpoint.username;
            password = endpoint.password;
            db = endpoint.db;
        }
        if db != 0 {
            return Err(Error::config(
                "code",
                "db",
                "a Redis Cluster has only database 0",
            ));
        }
        let nodes = parse_nodes(self.cluster_nodes.iter().map(String::as_str))
            .map_err(|m| Error::config("code", "cluster_nodes", m))?;
        nodes
            .iter()
            .map(|node| {
                let (host, port) =
                    split_host_port(node).map_err(|m| Error::config("code", "cluster_nodes", m))?;
                let mut endpoint = RedisEndpoint::tcp(host.clone(), port);
                endpoint.transport = Transport::Tcp { host, port, tls };
                endpoint.username = username.clone();
                endpoint.password = password.clone();
                endpoint.tls_options = self.tls_options.clone();
                Ok(endpoint)
            })
            .collect()
    }

    /// `redis-cluster://host:port,host:port` (with `rediss-cluster://` for TLS and `***@` when
    /// there are credentials): never the credentials.
    pub fn describe_cluster(&self) -> String {
        let auth = if self.username.is_some() || self.password.is_some() {
            "***@"
        } else {
            ""
        };
        let scheme = if self.tls {
            "rediss-cluster"
        } else {
            "redis-cluster"
        };
        let nodes = parse_nodes(self.cluster_nodes.iter().map(String::as_str))
            .map(|n| n.join(","))
            .unwrap_or_else(|_| "<invalid cluster_nodes>".to_owned());
        format!("{scheme}://{auth}{nodes}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_parse_lists_and_comma_separated_strings() {
        assert_eq!(
            parse_nodes(["127.0.0.1:7000, 127.0.0.1:7001", "h:1", "h:1", ""]).unwrap(),
            vec!["127.0.0.1:7000", "127.0.0.1:7001", "h:1"]
        );
        assert_eq!(parse_nodes(["[::1]:7000"]).unwrap(), vec!["[::1]:7000"]);
        for bad in ["host", "host:0", "host:x", ":7000", "a b:1", "h:70000"] {
            let e = parse_nodes([bad]).unwrap_err();
            assert!(e.contains("cluster node"), "{bad}: {e}");
        }
    }

    #[test]
    fn cluster_endpoints_carry_credentials_and_describe_hides_them() {
        let mut config = Config {
            cluster_nodes: vec!["127.0.0.1:7000,127.0.0.1:7001".into()],
            password: Some(Secret::new("s3cret")),
            ..Config::default()
        };
        let endpoints = config.cluster_endpoints().unwrap();
        assert_eq!(endpoints.len(), 2);
        assert!(endpoints.iter().all(|e| e.password.is_some()));
        let described = config.describe_cluster();
        assert_eq!(
            described,
            "redis-cluster://***@127.0.0.1:7000,127.0.0.1:7001"
        );
        config.db = 1;
        let e = config.cluster_endpoints().unwrap_err();
        assert!(e.to_string().contains("db"), "{e}");
    }
}
