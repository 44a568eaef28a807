//! The smallest Redis ACL rules cachette needs, per feature.
//!
//! Run cachette as a least-privilege ACL user: its keys and channels all start with the key
//! prefix (values, `{key}#lock{T}` leases, `{key}#meta{T}` metadata, `{key}#tags{T}` tag
//! documents and `{prefix}#tag:{name}` tag versions, the stats hash, the `{prefix}#lock`
//! wake-up channel), and it uses a short, fixed list of commands:
//!
//! | feature | rules (besides `~{prefix}*` and `&{prefix}*`) |
//! |---|---|
//! | [`Feature::Caching`]: `get`, `set`, `delete`, `exists`, `expire`, `ttl`, batches, `keys`, `delete_pattern`, `clear`, `info`, `ping`, `#[cached]`, tags (`set_tagged`, `invalidate_tag`, ...) | `+get +set +mget +unlink +exists +pexpire +persist +pttl +scan +info +ping` |
//! | [`Feature::Lease`]: `lock = true` (cross-process coalescing and its wake-ups), `delete_if_equals` | `+eval +del +publish +subscribe` (the release script runs `GET` and `DEL`) |
//! | [`Feature::StatsPublisher`]: [`StatsPublisher`](crate::StatsPublisher) and `cachette stats` | `+eval +hincrby +hset +hgetall +del` (a batch is one script of `HINCRBY`s and an `HSET`) |
//! | [`Feature::Cluster`]: Redis Cluster (slot map, redirections) | `+cluster\|slots +asking` |
//! | [`Feature::Database`]: a database other than 0 | `+select` |
//! | [`Feature::Sentinel`]: Redis Sentinel (each new connection checks that its node is the primary) | `+role` |
//! | [`Feature::NearCache`]: the near cache's invalidation channel (a RESP3 connection with `CLIENT TRACKING ON BCAST PREFIX {prefix}`) | `+client\|tracking` (`HELLO 3` needs no rule) |
//!
//! [`rules`] writes them out for a prefix, for `ACL SETUSER` or a `users.acl` file. The test
//! suite runs the conformance suite as a user with exactly these rules, and checks that every
//! command listed is needed: take any one away and some operation fails with
//! [`ErrorKind::Permission`](crate::ErrorKind::Permission) naming it.
//!
//! # Examples
//!
//! ```
//! use cachette::acl::{rules, Feature};
//!
//! let line = rules("cache:", &[Feature::Caching, Feature::Lease]).join(" ");
//! assert_eq!(
//!     line,
//!     "resetkeys ~cache:* resetchannels &cache:* -@all +get +set +mget +unlink +exists \
//!      +pexpire +persist +pttl +scan +info +ping +eval +del +publish +subscribe"
//! );
//! // ACL SETUSER cachette on >password resetkeys ~cache:* ...
//! ```

/// A part of cachette a user may switch on; see the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// Plain caching: every `CacheManager` operation and the macros without `lock`.
    Caching,
    /// Cross-process coalescing (`lock = true`): the lease, its release script and the
    /// wake-up channel.
    Lease,
    /// Publishing statistics and reading them back (`cachette stats`).
    StatsPublisher,
    /// Redis Cluster: the slot map and `ASK` redirections.
    Cluster,
    /// A database other than 0 (`SELECT`).
    Database,
    /// Redis Sentinel: `ROLE`, with which every new connection checks that its node is the
    /// primary (the sentinels themselves have their own users).
    Sentinel,
    /// The near cache ([`CacheManagerBuilder::near_cache`](crate::CacheManagerBuilder::near_cache)):
    /// its invalidation channel turns on `CLIENT TRACKING` (on a RESP3 connection).
    /// Without it the near cache stays off (see [`NearStats::refused`](crate::NearStats::refused)).
    NearCache,
}

impl Feature {
    /// The commands this feature needs, as ACL rules.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Feature::Caching => &[
                "+get", "+set", "+mget", "+unlink", "+exists", "+pexpire", "+persist", "+pttl",
                "+scan", "+info", "+ping",
            ],
            // The release script runs `GET` and `DEL`: a script's commands are checked too.
            Feature::Lease => &["+eval", "+del", "+publish", "+subscribe"],
            Feature::StatsPublisher => &["+eval", "+hincrby", "+hset", "+hgetall", "+del"],
            Feature::Cluster => &["+cluster|slots", "+asking"],
            Feature::Database => &["+select"],
            Feature::Sentinel => &["+role"],
            Feature::NearCache => &["+client|tracking"],
        }
    }
}

/// The ACL rules for a cachette user with key prefix `prefix` and `features` (plain caching is
/// always included): keys and channels under the prefix (glob characters in it escaped), no
/// command but the ones needed, each once.
pub fn rules(prefix: &str, features: &[Feature]) -> Vec<String> {
    let pattern = format!("{}*", crate::glob::escape(prefix));
    let mut out = vec![
        "resetkeys".to_owned(),
        format!("~{pattern}"),
        "resetchannels".to_owned(),
        format!("&{pattern}"),
        "-@all".to_owned(),
    ];
    let all = std::iter::once(Feature::Caching).chain(features.iter().copied());
    for command in all.flat_map(Feature::commands) {
        if !out.iter().any(|r| r == command) {
            out.push((*command).to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_escape_the_prefix_and_list_each_command_once() {
        let r = rules(
            "a*b:",
            &[Feature::Lease, Feature::StatsPublisher, Feature::Caching],
        );
        assert_eq!(r[1], r"~a\*b:*");
        assert_eq!(r[3], r"&a\*b:*");
        let evals = r.iter().filter(|x| *x == "+eval").count();
        assert_eq!(evals, 1);
        assert!(r.contains(&"+hgetall".to_owned()));
        assert_eq!(rules("", &[])[1], "~*");
    }
}
