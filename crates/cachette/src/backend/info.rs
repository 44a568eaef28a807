//! Structured server information, as returned by [`crate::CacheManager::info`].

use std::collections::BTreeMap;

/// One field of an `INFO` section: numbers are parsed as numbers, everything else kept as text.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InfoValue {
    /// An integer field (`connected_clients:1`).
    Int(i64),
    /// A floating-point field (`mem_fragmentation_ratio:1.23`).
    Float(f64),
    /// Any other field (`redis_version:7.0.15`, `used_memory_human:1.02M`).
    Text(String),
}

impl InfoValue {
    fn parse(raw: &str) -> InfoValue {
        if let Ok(i) = raw.parse::<i64>() {
            InfoValue::Int(i)
        } else if let Some(f) = raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && raw.contains('.'))
        {
            InfoValue::Float(f)
        } else {
            InfoValue::Text(raw.to_owned())
        }
    }

    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            InfoValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a float (integers convert).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            InfoValue::Int(i) => Some(*i as f64),
            InfoValue::Float(f) => Some(*f),
            InfoValue::Text(_) => None,
        }
    }

    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            InfoValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for InfoValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InfoValue::Int(i) => write!(f, "{i}"),
            InfoValue::Float(x) => write!(f, "{x}"),
            InfoValue::Text(s) => f.write_str(s),
        }
    }
}

/// The `keys=..,expires=..,avg_ttl=..` line of one database in the `Keyspace` section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyspaceStats {
    /// Number of keys in the database.
    pub keys: u64,
    /// Number of keys with a TTL.
    pub expires: u64,
    /// Average TTL in milliseconds of keys with a TTL (Redis' estimate; 0 when unknown).
    pub avg_ttl_ms: u64,
}

/// Server information: every `INFO` section parsed into fields, the keyspace as a map, the raw
/// text kept.
///
/// Section and field names are as Redis prints them (sections lower-cased: `server`,
/// `memory`, `stats`, ...). The memory backend fills a `memory` and `stats` section and the
/// keyspace of `db0` with its own figures, and names itself in `server.backend`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerInfo {
    /// `section -> field -> value`.
    pub sections: BTreeMap<String, BTreeMap<String, InfoValue>>,
    /// `db0 -> stats`, from the `Keyspace` section.
    pub keyspace: BTreeMap<String, KeyspaceStats>,
    /// The unparsed text (empty for the memory backend).
    pub raw: String,
}

impl ServerInfo {
    /// Parses the text of a Redis `INFO` reply.
    pub fn parse(raw: &str) -> ServerInfo {
        let mut info = ServerInfo {
            raw: raw.to_owned(),
            ..ServerInfo::default()
        };
        let mut section = String::from("default");
        for line in raw.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('#') {
                section = name.trim().to_ascii_lowercase();
                continue;
            }
            let Some((field, value)) = line.split_once(':') else {
                continue;
            };
            if section == "keyspace" {
                if let Some(stats) = parse_keyspace(value) {
                    info.keyspace.insert(field.to_owned(), stats);
                }
            }
            info.sections
                .entry(section.clone())
                .or_default()
                .insert(field.to_owned(), InfoValue::parse(value));
        }
        info
    }

    /// A field by name, searched in every section (`"used_memory"`, `"redis_version"`).
    pub fn get(&self, field: &str) -> Option<&InfoValue> {
        self.sections.values().find_map(|s| s.get(field))
    }

    /// A field of one section.
    pub fn field(&self, section: &str, field: &str) -> Option<&InfoValue> {
        self.sections.get(section)?.get(field)
    }

    /// `used_memory` in bytes.
    pub fn used_memory(&self) -> Option<u64> {
        self.get("used_memory")?
            .as_i64()
            .and_then(|v| u64::try_from(v).ok())
    }

    /// `used_memory_human`, e.g. `"1.02M"`.
    pub fn used_memory_human(&self) -> Option<&str> {
        self.get("used_memory_human")?.as_str()
    }

    /// The number of keys in database `db` (`0` if the database is empty or absent).
    pub fn keys_in_db(&self, db: u32) -> u64 {
        self.keyspace.get(&format!("db{db}")).map_or(0, |s| s.keys)
    }

    /// The server version (`redis_version`), or the backend's name for the memory backend.
    pub fn version(&self) -> Option<&str> {
        self.get("redis_version")
            .or_else(|| self.get("backend"))?
            .as_str()
    }
}

fn parse_keyspace(value: &str) -> Option<KeyspaceStats> {
    let mut stats = KeyspaceStats::default();
    for part in value.split(',') {
        let (name, n) = part.split_once('=')?;
        let n: u64 = n.trim().parse().ok()?;
        match name.trim() {
            "keys" => stats.keys = n,
            "expires" => stats.expires = n,
            "avg_ttl" => stats.avg_ttl_ms = n,
            _ => {}
        }
    }
    Some(stats)
}

/// Formats a byte count the way Redis' `*_human` fields do (`"1.02M"`).
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:12\r\n\r\n# Memory\r\nused_memory:1070232\r\nused_memory_human:1.02M\r\nmem_fragmentation_ratio:7.51\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=2999\r\ndb2:keys=10,expires=0,avg_ttl=0\r\n";

    #[test]
    fn parses_sections_numbers_and_keyspace() {
        let info = ServerInfo::parse(SAMPLE);
        assert_eq!(info.version(), Some("7.0.15"));
        assert_eq!(info.used_memory(), Some(1_070_232));
        assert_eq!(info.used_memory_human(), Some("1.02M"));
        assert_eq!(
            info.field("memory", "mem_fragmentation_ratio"),
            Some(&InfoValue::Float(7.51))
        );
        assert_eq!(
            info.field("server", "uptime_in_seconds"),
            Some(&InfoValue::Int(12))
        );
        assert_eq!(info.keys_in_db(0), 3);
        assert_eq!(info.keys_in_db(2), 10);
        assert_eq!(info.keys_in_db(1), 0);
        assert_eq!(info.keyspace["db0"].expires, 1);
        assert_eq!(info.raw, SAMPLE);
    }

    #[test]
    fn human_bytes_matches_redis_style() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1_070_232), "1.02M");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Lines that look like `INFO`: section headers, `field:value` pairs (keyspace ones
        /// included, well-formed or not), blanks, and noise.
        fn info_line() -> impl Strategy<Value = String> {
            prop_oneof![
                "# ?[A-Za-z]{0,12}",
                "[a-z_]{1,16}:[ -~]{0,24}",
                "db[0-9]{1,3}:keys=[0-9-]{0,20},expires=[0-9]{0,20},avg_ttl=[0-9x]{0,20}",
                "db[0-9]{0,3}:[=,a-z0-9]{0,30}",
                "[ \t\r]{0,3}",
                "\\PC{0,40}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Arbitrary text never makes the parser panic, and every accessor answers.
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
                let info = ServerInfo::parse(&text);
                let _ = (info.used_memory(), info.used_memory_human(), info.version());
                let _ = info.keys_in_db(0);
                prop_assert_eq!(info.raw.as_str(), text.as_str());
            }

            /// Arbitrary bytes (as a reply decoded lossily) never make it panic.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let text = String::from_utf8_lossy(&bytes);
                let info = ServerInfo::parse(&text);
                let _ = (info.used_memory(), info.version(), info.keys_in_db(u32::MAX));
            }

            /// INFO-shaped text: never panics, and a `field:value` line in a section is found.
            #[test]
            fn info_shaped_text_parses(
                lines in proptest::collection::vec(info_line(), 0..40),
                value in "[1-9][0-9]{0,12}",
            ) {
                let mut text = lines.join("\r\n");
                text.push_str("\r\n# Fuzz\r\nfuzz_field:");
                text.push_str(&value);
                text.push_str("\r\n");
                let info = ServerInfo::parse(&text);
                let got = info.field("fuzz", "fuzz_field").map(|v| v.to_string());
                prop_assert_eq!(got.as_deref(), Some(value.as_str()));
                for db in 0..4 {
                    let _ = info.keys_in_db(db);
                }
            }
        }
    }
}
