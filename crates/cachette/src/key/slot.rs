//! Redis Cluster hash slots, and the *companion keys* that live in their value's slot.
//!
//! The read-through layer keeps two keys beside a value: the cross-process lease and the
//! early-refresh / stale metadata. On Redis Cluster they must hash to the value's slot, so
//! that the value and its companions sit on one node (one pipeline, one failover, and room
//! for scripts that touch both). A companion of the full key `K` is
//!
//! ```text
//! K + suffix + "{" + T + "}"        e.g. cache:user:1#lock{3Kc}
//! ```
//!
//! where `T` is a short alphanumeric *slot tag*:
//!
//! - if `K` has a hash tag of its own (`cache:{user:1}:profile`), Redis hashes that tag and
//!   ignores ours; `T` is still appended, so every companion has the same shape;
//! - if `K` has no `{`, Redis hashes `T`, and `T` is [`slot_tag`]`(slot(K))`: the first string
//!   in shortlex order over `0-9A-Za-z` (ASCII order) whose slot is `K`'s;
//! - if `K` has a `{` but no hash tag (`a{b`, `{}a`), the tag `T` is the first string in that
//!   same order that makes the whole companion hash to `K`'s slot (a search of about 16 384
//!   candidates, only ever for such keys).
//!
//! The rule is the same on every backend, so a process on the memory backend, on a standalone
//! server and on a cluster would all name the companions alike, and any client (another
//! language included) can compute them from this description. Since `T` has no glob
//! characters, the companions of every key matching a glob `P` are matched by
//! `P + suffix + "{*}"`.

use std::sync::LazyLock;

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The alphabet of slot tags, in ASCII (shortlex) order.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The longest tag searched for a key with a `{` but no hash tag (62⁴ ≈ 14.8 M candidates).
const MAX_SEARCHED_LEN: usize = 4;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with: a byte at a time,
/// through a table computed at compile time.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The CRC16 (polynomial 0x1021) of each byte value.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The bytes Redis Cluster hashes for `key`: its hash tag (the bytes between the first `{`
/// and the first `}` after it, when not empty), else the whole key.
fn hashed_part(key: &[u8]) -> &[u8] {
    key.iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key)
}

/// Whether `key` has a hash tag (a non-empty `{...}` after its first `{`).
pub fn has_hash_tag(key: &str) -> bool {
    hashed_part(key.as_bytes()).len() != key.len()
}

/// The hash slot of `key`: CRC16 of the key, or of its hash tag (the bytes between the first
/// `{` and the first `}` after it, when not empty), modulo 16384 — what `CLUSTER KEYSLOT`
/// answers.
///
/// # Examples
///
/// ```
/// use cachette::key::slot;
/// assert_eq!(slot(b"foo"), 12182);
/// assert_eq!(slot(b"cache:{user:1}:posts"), slot(b"user:1"));
/// ```
pub fn slot(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) % SLOTS as u16
}

/// The `i`-th string of the shortlex order over [`ALPHABET`] (`0`, ..., `z`, `00`, `01`, ...),
/// written into `out`.
fn nth_tag(mut i: usize, out: &mut Vec<u8>) {
    let mut len = 1;
    let mut count = ALPHABET.len();
    while i >= count {
        i -= count;
        len += 1;
        count *= ALPHABET.len();
    }
    let start = out.len();
    out.resize(start + len, b'0');
    for pos in (start..start + len).rev() {
        out[pos] = ALPHABET[i % ALPHABET.len()];
        i /= ALPHABET.len();
    }
}

/// Per slot, its first tag in shortlex order (every slot has one of at most 3 characters).
static TAGS: LazyLock<Vec<Box<str>>> = LazyLock::new(|| {
    let mut tags: Vec<Option<Box<str>>> = vec![None; SLOTS];
    let mut missing = SLOTS;
    let mut buf = Vec::with_capacity(MAX_SEARCHED_LEN);
    // 62 + 62² + 62³ candidates cover every slot (checked by a test); the bound keeps the
    // loop finite whatever happens.
    let candidates = (1..=MAX_SEARCHED_LEN)
        .map(|len| ALPHABET.len().pow(len as u32))
        .sum::<usize>();
    for i in 0..candidates {
        if missing == 0 {
            break;
        }
        buf.clear();
        nth_tag(i, &mut buf);
        let s = usize::from(slot(&buf));
        if tags[s].is_none() {
            tags[s] = std::str::from_utf8(&buf).ok().map(Box::from);
            missing -= 1;
        }
    }
    tags.into_iter()
        .map(|t| t.unwrap_or_else(|| Box::from("")))
        .collect()
});

/// The slot tag of `slot`: the first string in shortlex order over `0-9A-Za-z` whose hash
/// slot is `slot` (slots of 16384 and above wrap around).
///
/// # Examples
///
/// ```
/// use cachette::key::{slot, slot_tag};
/// let tag = slot_tag(slot(b"cache:user:1"));
/// assert_eq!(slot(tag.as_bytes()), slot(b"cache:user:1"));
/// ```
pub fn slot_tag(slot: u16) -> &'static str {
    TAGS.get(usize::from(slot) % SLOTS).map_or("", |t| &**t)
}

/// The companion key `full + suffix + "{T}"` of the full key `full`, in `full`'s hash slot:
/// the lease (`#lock`) and the metadata (`#meta`) that the read-through layer keeps beside a
/// value, so that on Redis Cluster they sit on the value's node (one pipeline, one failover,
/// moved together in a migration). For a full key `K` it is `K + suffix + "{" + T + "}"`
/// (e.g. `cache:user:1#lock{4Cy}`), where `T` is a short alphanumeric *slot tag*:
///
/// - if `K` has a hash tag of its own (`cache:{user:1}:profile`), Redis hashes that tag and
///   ignores ours; `T` is still appended, so every companion has the same shape;
/// - if `K` has no `{`, Redis hashes `T`, and `T` is [`slot_tag`]`(slot(K))`: the first string
///   in shortlex order over `0-9A-Za-z` (ASCII order) whose slot is `K`'s;
/// - if `K` has a `{` but no hash tag (`a{b`, `{}a`), the tag `T` is the first string in that
///   same order that makes the whole companion hash to `K`'s slot (a search of about 16 384
///   candidates, only ever for such keys).
///
/// The rule is the same on every backend, so a process on the memory backend, on a standalone
/// server and on a cluster would all name the companions alike, and any client (another
/// language included) can compute them from this description. Since `T` has no glob
/// characters, the companions of every key matching a glob `P` are matched by
/// `P + suffix + "{*}"`.
///
/// # Examples
///
/// ```
/// use cachette::key::{companion_key, slot};
/// let lease = companion_key("cache:user:1", "#lock");
/// assert!(lease.starts_with("cache:user:1#lock{"));
/// assert_eq!(slot(lease.as_bytes()), slot(b"cache:user:1"));
/// ```
pub fn companion_key(full: &str, suffix: &str) -> String {
    let target = slot(full.as_bytes());
    let mut key = String::with_capacity(full.len() + suffix.len() + 5);
    key.push_str(full);
    key.push_str(suffix);
    key.push('{');
    let base = key.len();
    key.push_str(slot_tag(target));
    key.push('}');
    if !full.contains('{') || slot(key.as_bytes()) == target {
        return key;
    }
    // `full` has a `{` but no hash tag: the tag changes the hashed bytes, search for one.
    let mut buf = key.clone().into_bytes();
    let candidates = (1..=MAX_SEARCHED_LEN)
        .map(|len| ALPHABET.len().pow(len as u32))
        .sum::<usize>();
    for i in 0..candidates {
        buf.truncate(base);
        nth_tag(i, &mut buf);
        buf.push(b'}');
        if slot(&buf) == target {
            if let Ok(found) = String::from_utf8(buf) {
                return found;
            }
            break;
        }
    }
    // Not reached for any key tried (a test covers many); the companion then merely lives in
    // another slot, which every backend still handles.
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{a}x"), 15495);
        assert_eq!(slot(b"a"), 15495);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // An empty tag hashes the whole key; only the first `{` counts.
        assert_eq!(slot(b"{}x"), crc16(b"{}x") % 16384);
        assert_eq!(slot(b"x{{a}}"), crc16(b"{a") % 16384);
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn a_hash_tag_is_a_non_empty_brace_pair_after_the_first_open_brace() {
        for key in ["{u}", "a{user:1}b", "x{y}{z}", "{{a}"] {
            assert!(has_hash_tag(key), "{key}");
        }
        for key in ["", "plain", "{}", "a{}b{c}", "open{", "close}", "}{x"] {
            assert!(!has_hash_tag(key), "{key}");
        }
    }

    #[test]
    fn tags_follow_shortlex_order() {
        let tag = |i| {
            let mut v = Vec::new();
            nth_tag(i, &mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(tag(0), "0");
        assert_eq!(tag(61), "z");
        assert_eq!(tag(62), "00");
        assert_eq!(tag(63), "01");
        assert_eq!(tag(62 + 62 * 62 - 1), "zz");
        assert_eq!(tag(62 + 62 * 62), "000");
    }

    #[test]
    fn every_slot_has_a_tag_of_at_most_three_characters() {
        for s in 0..SLOTS as u16 {
            let tag = slot_tag(s);
            assert!((1..=3).contains(&tag.len()), "slot {s}: {tag:?}");
            assert_eq!(slot(tag.as_bytes()), s);
        }
        assert_eq!(slot_tag(SLOTS as u16), slot_tag(0));
    }

    #[test]
    fn companions_pin_their_form() {
        // Golden values, from an independent implementation (a Python script) of the rule in
        // the module docs: another client computing companions must get the same.
        assert_eq!(slot_tag(0), "06S");
        assert_eq!(slot_tag(16383), "6ZJ");
        assert_eq!(slot_tag(slot(b"foo")), "9Le");
        assert_eq!(
            companion_key("cache:user:1", "#lock"),
            "cache:user:1#lock{4Cy}"
        );
        assert_eq!(
            companion_key("cache:{u1}:a", "#meta"),
            "cache:{u1}:a#meta{19}"
        );
        // A `{` without a hash tag: the searched tag.
        assert_eq!(companion_key("a{b", "#lock"), "a{b#lock{b8}");
        assert_eq!(companion_key("{}x", "#meta"), "{}x#meta{FD}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any key, braces and all: the companion shares its slot, starts with the key and
        /// the suffix, and is matched by `key + suffix + "{*}"`.
        #[test]
        fn companions_share_the_slot_of_any_key(full in "[a-z{}:#]{0,12}", suffix in "#(lock|meta)") {
            let companion = companion_key(&full, &suffix);
            prop_assert_eq!(slot(companion.as_bytes()), slot(full.as_bytes()), "{}", companion);
            let head = format!("{full}{suffix}{{");
            prop_assert!(companion.starts_with(&head));
            let closed = companion.ends_with('}');
            prop_assert!(closed);
            let pattern = format!("{}{suffix}{{*}}", crate::glob::escape(&full));
            prop_assert!(crate::glob::matches(&pattern, &companion), "{} !~ {}", companion, pattern);
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn companions_of_any_text_share_its_slot(full in any::<String>()) {
            let companion = companion_key(&full, "#lock");
            prop_assert_eq!(slot(companion.as_bytes()), slot(full.as_bytes()));
        }
    }
}
