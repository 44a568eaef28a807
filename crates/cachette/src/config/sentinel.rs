//! Redis Sentinel: `sentinels` and `sentinel_master` (`config.json`), `REDIS_SENTINELS` and
//! `REDIS_SENTINEL_MASTER` (environment), `CacheManagerBuilder::sentinels` (code), and the
//! optional credentials of the sentinels themselves.

use super::*;
use crate::backend::redis::endpoint::split_host_port;
use crate::backend::redis::SentinelOptions;

/// Parses sentinel addresses given as `host:port` items, each possibly a comma-separated list;
/// normalised, in order, without duplicates (as [`cluster::parse_nodes`](super::cluster)).
///
/// # Errors
/// A message naming the first item that is not `host:port`.
pub(crate) fn parse_sentinels<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<Vec<String>, String> {
    super::cluster::parse_nodes(items).map_err(|m| m.replace("cluster node", "sentinel address"))
}

/// A master name as the sentinels know it: not blank, without spaces (a `+switch-master`
/// message separates its fields with spaces). `None` stays unset.
///
/// # Errors
/// A message saying what is wrong (never echoing the name).
pub(crate) fn check_master_name(
    name: Option<String>,
) -> std::result::Result<Option<String>, &'static str> {
    match name {
        None => Ok(None),
        Some(n) if n.trim().is_empty() => Err("must not be empty"),
        Some(n) if n.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err("must not contain spaces or control characters")
        }
        Some(n) => Ok(Some(n)),
    }
}

impl Config {
    /// Whether Redis Sentinel is configured ([`Config::sentinels`] or
    /// [`Config::sentinel_master`] set; [`Config::validate`] requires both): the manager then
    /// runs on the primary the sentinels name, and `url`/`host`/`port` only lend their
    /// database, credentials and TLS setting.
    pub fn uses_sentinel(&self) -> bool {
        !self.sentinels.is_empty() || self.sentinel_master.is_some()
    }

    /// Both Sentinel settings or neither; not beside `cluster_nodes` or a Unix socket.
    /// `origin` gives, for a field that is set (`sentinels`, `sentinel_master`), the source
    /// that set it and its name there; the error names that one.
    pub(super) fn validate_sentinel(
        &self,
        origin: impl Fn(&str) -> (String, String),
    ) -> Result<()> {
        if !self.uses_sentinel() {
            return Ok(());
        }
        let refuse = |field: &str, message: &str| {
            let (source, name) = origin(field);
            Err(Error::config(&source, &name, message))
        };
        if self.sentinels.is_empty() {
            return refuse(
                "sentinel_master",
                "names a master but no sentinel (set sentinels / REDIS_SENTINELS too)",
            );
        }
        if self.sentinel_master.is_none() {
            return refuse(
                "sentinels",
                "names sentinels but not the master they monitor (set sentinel_master / \
                 REDIS_SENTINEL_MASTER too)",
            );
        }
        if self.uses_cluster() {
            return refuse(
                "sentinels",
                "Redis Sentinel and Redis Cluster (cluster_nodes) cannot be used together",
            );
        }
        if self.url.is_none() && self.socket.is_some() {
            return refuse(
                "sentinels",
                "the primary named by the sentinels is reached over TCP, not a Unix socket",
            );
        }
        Ok(())
    }

    /// [`validate_sentinel`](Self::validate_sentinel) for settings set in code.
    pub(super) fn validate_sentinel_in_code(&self) -> Result<()> {
        self.validate_sentinel(|field| ("code".to_owned(), field.to_owned()))
    }

    /// The endpoint whose database, credentials and TLS settings the primary is reached with
    /// (its host and port are replaced by the sentinels' answer), and the sentinels.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for half a Sentinel configuration, an
    /// invalid sentinel address, a Unix-socket URL, or an invalid URL set in code.
    pub(crate) fn sentinel_options(&self) -> Result<(RedisEndpoint, SentinelOptions)> {
        self.validate_sentinel_in_code()?;
        // The host and port are the sentinels' answer: a placeholder (a URL still wins, and
        // lends its database, credentials and TLS setting).
        let mut parts = self.clone();
        parts.host = Some("localhost".to_owned());
        let template = parts
            .endpoint()?
            .ok_or_else(|| Error::config("code", "sentinels", "no endpoint"))?;
        if matches!(template.transport, Transport::Unix(_)) {
            return Err(Error::config(
                "code",
                "url",
                "the primary named by the sentinels is reached over TCP, not a Unix socket",
            ));
        }
        let sentinels = parse_sentinels(self.sentinels.iter().map(String::as_str))
            .map_err(|m| Error::config("code", "sentinels", m))?
            .iter()
            .map(|s| split_host_port(s).map_err(|m| Error::config("code", "sentinels", m)))
            .collect::<Result<Vec<_>>>()?;
        let options = SentinelOptions {
            sentinels,
            master: self.sentinel_master.clone().unwrap_or_default(),
            username: self.sentinel_username.clone(),
            password: self.sentinel_password.clone(),
        };
        Ok((template, options))
    }

    /// `redis+sentinel://h:p,h:p/MASTER/DB` (`rediss+sentinel://` for TLS, `***@` when the
    /// primary has credentials): never the credentials.
    pub fn describe_sentinel(&self) -> String {
        let auth = if self.username.is_some() || self.password.is_some() {
            "***@"
        } else {
            ""
        };
        let tls = match &self.url {
            Some(url) => RedisEndpoint::parse(url).is_ok_and(|e| e.is_tls()),
            None => self.tls,
        };
        let scheme = if tls {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        let nodes = parse_sentinels(self.sentinels.iter().map(String::as_str))
            .map(|n| n.join(","))
            .unwrap_or_else(|_| "<invalid sentinels>".to_owned());
        let master = self.sentinel_master.as_deref().unwrap_or("<no master>");
        let db = match &self.url {
            Some(url) => RedisEndpoint::parse(url).map_or(self.db, |e| e.db),
            None => self.db,
        };
        format!("{scheme}://{auth}{nodes}/{master}/{db}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: Option<&str>, env: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let file = json.map(|text| {
            let path = dir.path().join("config.json");
            std::fs::write(&path, text).unwrap();
            (path, true)
        });
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load_from(file, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn sentinels_load_from_the_file_and_the_environment() {
        let c = load(
            Some(
                r#"{"redis": {"url": "redis://:pw@ignored:1/2", "sentinels": ["127.0.0.1:26379", "h:26380,h:26381"],
                "sentinel_master": "mymaster", "sentinel_password": "spw"}}"#,
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.sentinels, ["127.0.0.1:26379", "h:26380", "h:26381"]);
        assert_eq!(c.sentinel_master.as_deref(), Some("mymaster"));
        assert_eq!(c.sentinel_password.as_ref().unwrap().expose(), "spw");
        let (template, options) = c.sentinel_options().unwrap();
        assert_eq!(template.db, 2);
        assert_eq!(template.password.unwrap().expose(), "pw");
        assert_eq!(options.sentinels.len(), 3);
        assert_eq!(
            c.describe_backend(),
            "redis+sentinel://***@127.0.0.1:26379,h:26380,h:26381/mymaster/2"
        );
        let c = load(
            Some(r#"{"redis": {"sentinels": "a:1", "sentinel_master": "m"}}"#),
            &[
                ("REDIS_SENTINELS", "b:2, c:3"),
                ("REDIS_SENTINEL_MASTER", "other"),
                ("REDIS_SENTINEL_PASSWORD", "pw2"),
                ("REDIS_SENTINEL_USERNAME", "u"),
            ],
        )
        .unwrap();
        assert_eq!(c.sentinels, ["b:2", "c:3"]);
        assert_eq!(c.sentinel_master.as_deref(), Some("other"));
        assert_eq!(c.sentinel_username.as_deref(), Some("u"));
        let (template, _) = c.sentinel_options().unwrap();
        assert_eq!(template.db, 0);
        // Parts (not a URL) lend the database and credentials; a host is only a placeholder.
        let c = load(
            None,
            &[
                ("REDIS_SENTINELS", "a:1"),
                ("REDIS_SENTINEL_MASTER", "m"),
                ("REDIS_HOST", "elsewhere"),
                ("REDIS_DB", "3"),
                ("REDIS_PASSWORD", "pw"),
            ],
        )
        .unwrap();
        let (template, _) = c.sentinel_options().unwrap();
        assert_eq!(
            (template.db, template.password.unwrap().expose()),
            (3, "pw")
        );
        // Empty variables are unset.
        let c = load(
            None,
            &[("REDIS_SENTINELS", " "), ("REDIS_SENTINEL_MASTER", "")],
        )
        .unwrap();
        assert!(!c.uses_sentinel());
    }

    #[test]
    fn half_a_sentinel_configuration_is_an_error_naming_the_missing_field() {
        let e = load(None, &[("REDIS_SENTINELS", "a:1")]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(e.to_string().contains("sentinel_master"), "{e}");
        let e = load(Some(r#"{"redis": {"sentinel_master": "m"}}"#), &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid redis.sentinel_master from config file"),
            "{e}"
        );
        assert!(e.to_string().contains("no sentinel"), "{e}");
        let e = load(
            Some(r#"{"redis": {"sentinels": "a:1"}}"#),
            &[("REDIS_SENTINEL_MASTER", "")],
        );
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("invalid redis.sentinels from config file"),
            "{e}"
        );
        let e = load(None, &[("REDIS_SENTINEL_MASTER", "m")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("environment variable REDIS_SENTINEL_MASTER"),
            "{e}"
        );
        let e = load(
            None,
            &[
                ("REDIS_SENTINELS", "a:1"),
                ("REDIS_SENTINEL_MASTER", "m"),
                ("REDIS_CLUSTER_NODES", "b:2"),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("Cluster"), "{e}");
        let e = load(None, &[("REDIS_SENTINELS", "nope")]).unwrap_err();
        assert!(e.to_string().contains("REDIS_SENTINELS"), "{e}");
        for bad in ["a b", "a\u{7f}b", "a\tb"] {
            let e = load(None, &[("REDIS_SENTINEL_MASTER", bad)]).unwrap_err();
            let e = e.to_string();
            assert!(e.contains("REDIS_SENTINEL_MASTER"), "{e}");
            assert!(
                e.contains("must not contain spaces or control characters"),
                "{e}"
            );
        }
        let e = load(Some(r#"{"redis": {"sentinel_master": ""}}"#), &[]).unwrap_err();
        assert!(e.to_string().contains("redis.sentinel_master"), "{e}");
        assert!(e.to_string().contains("must not be empty"), "{e}");
        let e = load(Some(r#"{"redis": {"sentinels": 5}}"#), &[]).unwrap_err();
        assert!(e.to_string().contains("redis.sentinels"), "{e}");
        // In code: checked by validate.
        let config = Config {
            sentinels: vec!["a:1".into()],
            ..Config::default()
        };
        let e = config.validate().unwrap_err();
        assert!(e.to_string().contains("sentinel_master"), "{e}");
    }

    #[test]
    fn the_sentinel_password_is_never_printed() {
        let config = Config {
            sentinels: vec!["a:1".into()],
            sentinel_master: Some("m".into()),
            sentinel_username: Some("sentinel-user".into()),
            sentinel_password: Some(Secret::new("sentinel-pw")),
            ..Config::default()
        };
        let printed = format!("{config:?} {}", config.describe_backend());
        assert!(!printed.contains("sentinel-pw"), "{printed}");
        assert!(!printed.contains("sentinel-user"), "{printed}");
        let (_, options) = config.sentinel_options().unwrap();
        let printed = format!("{options:?}");
        assert!(!printed.contains("sentinel-pw"), "{printed}");
    }
}
