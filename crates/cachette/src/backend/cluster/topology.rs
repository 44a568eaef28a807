//! The slot map: the `CLUSTER SLOTS` reply (key hashing is [`crate::key::slot`]).

use redis::Value;

pub use crate::key::{slot, SLOTS};

/// One slot range of a `CLUSTER SLOTS` reply: its primary and replicas as `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) primary: String,
    pub(crate) replicas: Vec<String>,
}

/// Parses a `CLUSTER SLOTS` reply; `asked` is the `host` of the node that answered (used for
/// nodes announced with an empty or unknown host). `None` for a malformed reply.
pub(crate) fn parse_cluster_slots(reply: &Value, asked: &str) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(parts) = range else {
            return None;
        };
        let start = u16::try_from(int(parts.first()?)?).ok()?;
        let end = u16::try_from(int(parts.get(1)?)?).ok()?;
        if start > end || usize::from(end) >= SLOTS {
            return None;
        }
        let mut nodes = parts[2..].iter().map(|n| node_addr(n, asked));
        let primary = nodes.next()??;
        let replicas = nodes.flatten().collect();
        out.push(SlotRange {
            start,
            end,
            primary,
            replicas,
        });
    }
    Some(out)
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn node_addr(node: &Value, asked: &str) -> Option<String> {
    let Value::Array(fields) = node else {
        return None;
    };
    let host = text(fields.first()?)?;
    let port = u16::try_from(int(fields.get(1)?)?).ok()?;
    let host = if host.is_empty() || host == "?" {
        asked.to_owned()
    } else {
        host
    };
    Some(join_host_port(&host, port))
}

/// `host:port`, with brackets around an IPv6 host.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_slots_replies_parse_and_malformed_ones_do_not() {
        let node = |h: &str, p: i64| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(p),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            node("", 7000),
            node("10.0.0.2", 7003),
        ])]);
        let parsed = parse_cluster_slots(&reply, "10.0.0.1").unwrap();
        assert_eq!(
            parsed,
            vec![SlotRange {
                start: 0,
                end: 5460,
                primary: "10.0.0.1:7000".into(),
                replicas: vec!["10.0.0.2:7003".into()],
            }]
        );
        assert!(parse_cluster_slots(&Value::Int(1), "h").is_none());
        let bad = Value::Array(vec![Value::Array(vec![Value::Int(5), Value::Int(1)])]);
        assert!(parse_cluster_slots(&bad, "h").is_none());
    }
}
