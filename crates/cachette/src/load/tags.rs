//! Tags: invalidate every entry written with a tag in a constant number of commands, however
//! many entries carry it (the design of FusionCache v2 and Symfony's `TagAwareAdapter`: a
//! version per tag, checked on read, rather than a set of members per tag).
//!
//! # Layout (every key under the manager's prefix `P`)
//!
//! - **Tag key** `P#tag:NAME`: the tag's current *version*, an opaque random token (16 hex
//!   digits, no TTL). [`invalidate`](State::invalidate_tags) writes a fresh token: one `SET`
//!   per tag, whatever the number of tagged entries. The *namespace tag* (the empty name,
//!   key `P#tag:`) is implicitly on every tagged entry, so `invalidate_all` is one `SET` too.
//! - **Value** `K`: the codec's bytes behind a two-byte [`MARK`] (`"\t\r"`, JSON whitespace,
//!   so the value is still plain JSON any client parses as it is).
//! - **Tag document** `K#tags{T}` (a [`companion_key`](crate::key::companion_key), in `K`'s
//!   cluster slot, same TTL as the value): the versions the entry was written under,
//!   `{"v":1,"value_xxh3":"…","tags":[["","…"],["user:1","…"]]}` (sorted by name), bound
//!   to the stored value by its XXH3-64 like the early-refresh metadata.
//!
//! # Read rule
//!
//! A tagged entry is served only if its document belongs to the value and every version in it
//! is the tag's current version. A tag key that is missing (evicted, deleted by `clear`) has
//! no current version, so the entry is not served: losing a tag key invalidates, never
//! revives. Versions are random tokens rather than counters (a counter that is evicted and
//! recreated restarts at values old entries may hold) or wall-clock timestamps (no clock is
//! compared across processes).
//!
//! # Write rule
//!
//! A writer records the versions current *before* its value was computed (a read-through
//! call: before its loader starts; `set_tagged`: when it is called), creating missing tag
//! keys with `SET NX` first. A tag invalidated while a loader runs therefore leaves the
//! stored entry out of date at once.
//!
//! # Costs
//!
//! - A read with its tags known (`get_or_load*` with [`LoadOptions::tags`](crate::LoadOptions::tags))
//!   is one `get_many` of the value, its document and the tag keys: one `MGET` on a standalone
//!   server, one pipeline per node on a cluster, no command at all when the near cache holds
//!   them.
//! - A plain read (`get`, `get_raw`, `get_many`, read-through without tags) of an untagged
//!   value checks two bytes. Of a tagged value (it starts with [`MARK`]): two more round
//!   trips (the document, then the tag keys; see [`State::check_marked`]).
//! - A tagged write: one `get_many` of the tag keys (plus one `SET NX` per tag never seen
//!   before and a second read), then the value and its document in one `set_many`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::load::state::State;

/// What a tagged value starts with: two bytes of JSON whitespace that neither JSON (compact
/// output never starts with whitespace) nor MessagePack (a value starting with `\t` is the
/// one-byte integer 9) produce.
pub(crate) const MARK: &[u8] = b"\t\r";

/// The suffix of a value's tag document (see [`crate::key::companion_key`]).
pub(crate) const TAGS_SUFFIX: &str = "#tags";

/// What comes between the prefix and a tag's name in its key.
pub(crate) const TAG_INFIX: &str = "#tag:";

/// The name of the implicit tag of every tagged entry in a namespace.
pub(crate) const NAMESPACE_TAG: &str = "";

/// How many times a writer tries to read back the versions of tags it could not create.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// Whether `stored` is a tagged value.
#[inline]
pub(crate) fn is_marked(stored: &[u8]) -> bool {
    stored.starts_with(MARK)
}

/// The stored form of `bytes` as a tagged value.
pub(crate) fn mark(bytes: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(MARK.len() + bytes.len());
    out.put_slice(MARK);
    out.put_slice(bytes);
    out.freeze()
}

/// The value of a tagged stored form (without the mark).
fn unmark(stored: &Bytes) -> Bytes {
    stored.slice(MARK.len().min(stored.len())..)
}

/// The tag document key of the full key `full`.
pub(crate) fn tags_key(full: &str) -> String {
    crate::key::companion_key(full, TAGS_SUFFIX)
}

/// The key holding the version of `tag` under `prefix`.
pub(crate) fn tag_key(prefix: &str, tag: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + TAG_INFIX.len() + tag.len());
    key.push_str(prefix);
    key.push_str(TAG_INFIX);
    key.push_str(tag);
    key
}

/// Sorted, deduplicated tag names (the normal form [`LoadOptions::tags`](crate::LoadOptions::tags) keeps).
pub(crate) fn normalize<I, S>(tags: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut names: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_owned()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Refuses an empty tag name (the namespace tag's) with [`ErrorKind::InvalidInput`].
pub(crate) fn check_names(tags: &[String]) -> Result<()> {
    if tags.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "tag names must not be empty (use invalidate_all for the whole namespace)",
        ));
    }
    Ok(())
}

/// A fresh version token: 64 random bits as 16 hex digits (unique, not secret: two tokens
/// of one tag meet with probability 2⁻⁶⁴).
fn new_version() -> Bytes {
    Bytes::from(format!("{:016x}", fastrand::u64(..)))
}

/// A tag document as stored: the versions as `[name, version]` pairs sorted by name.
#[derive(Debug, Serialize)]
struct TagsDoc<'a> {
    v: u8,
    value_xxh3: String,
    tags: Vec<(&'a str, &'a str)>,
}

/// The versions of a set of tags (the namespace tag included), as a writer records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Versions(BTreeMap<String, String>);

impl Versions {
    /// The document recording these versions for the stored value `stored`.
    fn doc(&self, stored: &[u8]) -> Bytes {
        let doc = TagsDoc {
            v: 1,
            value_xxh3: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(stored)),
            tags: self
                .0
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        // Strings always serialize; an empty document would only be ignored.
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }
}

/// A tag document as read: borrowed from the bytes read (no allocation per tag on a hit).
#[derive(Debug, Deserialize)]
struct DocRef<'a> {
    v: u8,
    #[serde(borrow)]
    value_xxh3: Cow<'a, str>,
    #[serde(borrow)]
    tags: Recorded<'a>,
}

/// Recorded `(tag, version)` pairs, borrowed from a document (sorted by tag when written by
/// cachette).
type Recorded<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The parsed document `doc` of `stored`, if it belongs to it.
fn parse_doc<'a>(doc: Option<&'a Bytes>, stored: &[u8]) -> Option<Recorded<'a>> {
    let doc: DocRef<'a> = serde_json::from_slice(doc?).ok()?;
    let hash = xxhash_rust::xxh3::xxh3_64(stored);
    let bound = doc.value_xxh3.len() == 16
        && u64::from_str_radix(&doc.value_xxh3, 16).is_ok_and(|h| h == hash);
    (doc.v == 1 && bound).then_some(doc.tags)
}

/// Whether every recorded version is current (`current` gives a tag's current version).
fn all_current<'a>(
    recorded: &Recorded<'_>,
    mut current: impl FnMut(&str) -> Option<&'a Bytes>,
) -> bool {
    recorded
        .iter()
        .all(|(tag, version)| current(tag).is_some_and(|v| v.as_ref() == version.as_bytes()))
}

/// The items that store `bytes` at `full` as a tagged value written under `versions`: the
/// marked value and its document, and the marked value alone (for metadata hashes and a
/// compare-and-delete).
pub(crate) fn tagged_items(
    full: &str,
    bytes: &[u8],
    versions: &Versions,
) -> (Bytes, [(String, Bytes); 2]) {
    let stored = mark(bytes);
    let doc = versions.doc(&stored);
    (
        stored.clone(),
        [(full.to_owned(), stored), (tags_key(full), doc)],
    )
}

impl State {
    /// The keys of `tags` and of the namespace tag (first).
    fn tag_keys(&self, tags: &[String]) -> Vec<String> {
        std::iter::once(NAMESPACE_TAG)
            .chain(tags.iter().map(String::as_str))
            .map(|t| tag_key(self.prefix(), t))
            .collect()
    }

    /// The current versions of `tags` (and of the namespace tag), creating the tags that
    /// have none: what a writer records. One `get_many`; for tags seen for the first time,
    /// one `SET NX` each and one more `get_many`.
    pub(crate) async fn snapshot_tags(&self, tags: &[String]) -> Result<Versions> {
        check_names(tags)?;
        let names: Vec<&str> = std::iter::once(NAMESPACE_TAG)
            .chain(tags.iter().map(String::as_str))
            .collect();
        let keys = self.tag_keys(tags);
        let mut current = self.backend().get_many(&keys).await?;
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| current[i].is_none()).collect();
            if missing.is_empty() {
                let versions = names
                    .iter()
                    .zip(current)
                    .filter_map(|(name, v)| {
                        let v = v?;
                        Some(((*name).to_owned(), String::from_utf8_lossy(&v).into_owned()))
                    })
                    .collect();
                return Ok(Versions(versions));
            }
            for &i in &missing {
                let version = new_version();
                if self
                    .backend()
                    .set_nx(&keys[i], version.clone(), None)
                    .await?
                {
                    current[i] = Some(version);
                }
            }
            let lost: Vec<usize> = missing
                .into_iter()
                .filter(|&i| current[i].is_none())
                .collect();
            if !lost.is_empty() {
                // Another writer created them first: read theirs.
                let again: Vec<String> = lost.iter().map(|&i| keys[i].clone()).collect();
                for (i, v) in lost.into_iter().zip(self.backend().get_many(&again).await?) {
                    current[i] = v;
                }
            }
        }
        Err(Error::new(
            ErrorKind::Backend,
            "tag versions kept disappearing while being created (is the server evicting them?)",
        ))
    }

    /// Reads the entry at `full` for a reader that knows its tags: the value, its tag
    /// document, its metadata (when `with_meta`) and the tag keys, in one `get_many`. `None`
    /// unless the value is tagged, with exactly `tags`, under versions that are all current.
    pub(crate) async fn fetch_tagged(
        &self,
        full: &str,
        with_meta: bool,
        tags: &[String],
    ) -> Result<Option<(Bytes, Option<Bytes>)>> {
        let mut keys = Vec::with_capacity(tags.len() + 4);
        keys.push(full.to_owned());
        keys.push(tags_key(full));
        if with_meta {
            keys.push(crate::load::meta::meta_key(full));
        }
        let first_tag = keys.len();
        keys.extend(self.tag_keys(tags));
        let mut values = self.backend().get_many(&keys).await?;
        if values.len() != keys.len() {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("{} values read for {} keys", values.len(), keys.len()),
            ));
        }
        let Some(stored) = values.first().cloned().flatten() else {
            return Ok(None);
        };
        if !is_marked(&stored) {
            // Written without tags: it cannot be vouched for by tags it never had.
            return Ok(None);
        }
        let Some(recorded) = parse_doc(values[1].as_ref(), &stored) else {
            return Ok(None);
        };
        let wanted = std::iter::once(NAMESPACE_TAG).chain(tags.iter().map(String::as_str));
        if !recorded.iter().map(|(t, _)| t.as_ref()).eq(wanted) {
            return Ok(None);
        }
        // `recorded` and `values[first_tag..]` are in the same (sorted) order.
        let fresh = recorded
            .iter()
            .map(|(_, version)| version)
            .zip(&values[first_tag..])
            .all(|(version, current)| {
                current
                    .as_ref()
                    .is_some_and(|v| v.as_ref() == version.as_bytes())
            });
        if !fresh {
            return Ok(None);
        }
        let meta = if with_meta { values[2].take() } else { None };
        Ok(Some((stored, meta)))
    }

    /// A tagged value read by a reader that did not know its tags: its value without the
    /// mark, if its document belongs to it and every version in it is current; else `None`.
    /// Two round trips: the document, then the tag keys.
    pub(crate) async fn check_marked(&self, full: &str, stored: Bytes) -> Result<Option<Bytes>> {
        let items = [(full.to_owned(), stored)];
        Ok(self.check_marked_many(&items).await?.pop().flatten())
    }

    /// [`check_marked`](Self::check_marked) for several values: two round trips in all.
    pub(crate) async fn check_marked_many(
        &self,
        items: &[(String, Bytes)],
    ) -> Result<Vec<Option<Bytes>>> {
        let doc_keys: Vec<String> = items.iter().map(|(full, _)| tags_key(full)).collect();
        let docs = self.backend().get_many(&doc_keys).await?;
        let recorded: Vec<Option<Recorded<'_>>> = items
            .iter()
            .zip(&docs)
            .map(|((_, stored), doc)| parse_doc(doc.as_ref(), stored))
            .collect();
        let names: Vec<&str> = {
            let mut names: Vec<&str> = recorded
                .iter()
                .flatten()
                .flat_map(|tags| tags.iter().map(|(t, _)| t.as_ref()))
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        };
        let keys: Vec<String> = names.iter().map(|t| tag_key(self.prefix(), t)).collect();
        let versions = if keys.is_empty() {
            Vec::new()
        } else {
            self.backend().get_many(&keys).await?
        };
        let current = |tag: &str| {
            names
                .binary_search(&tag)
                .ok()
                .and_then(|i| versions.get(i))
                .and_then(Option::as_ref)
        };
        Ok(items
            .iter()
            .zip(&recorded)
            .map(|((_, stored), recorded)| {
                let recorded = recorded.as_ref()?;
                all_current(recorded, current).then(|| unmark(stored))
            })
            .collect())
    }

    /// Gives each of `tags` a fresh version: one `set_many` (one `SET` per tag, pipelined).
    pub(crate) async fn invalidate_tags(&self, tags: &[&str]) -> Result<()> {
        let items: Vec<(String, Bytes)> = tags
            .iter()
            .map(|t| (tag_key(self.prefix(), t), new_version()))
            .collect();
        match items.as_slice() {
            [] => Ok(()),
            [(key, version)] => self.backend().set(key, version.clone(), None).await,
            _ => self.backend().set_many(&items, None).await,
        }
    }
}

/// The value of a tagged stored form, without the mark.
pub(crate) fn value_of(stored: &Bytes) -> Bytes {
    unmark(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(pairs: &[(&str, &str)]) -> Versions {
        Versions(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn tagged_values_stay_json_and_are_recognised() {
        let bytes = br#"{"name":"Ada"}"#;
        let (stored, items) = tagged_items("cache:u:1", bytes, &versions(&[("", "a"), ("u", "b")]));
        assert!(is_marked(&stored));
        assert!(!is_marked(bytes));
        assert!(!is_marked(b"\t"));
        assert_eq!(value_of(&stored).as_ref(), bytes);
        let parsed: serde_json::Value = serde_json::from_slice(&stored).expect("still JSON");
        assert_eq!(parsed["name"], "Ada");
        assert_eq!(items[0].0, "cache:u:1");
        assert_eq!(items[1].0, tags_key("cache:u:1"));
        assert!(items[1].0.starts_with("cache:u:1#tags{"));
        let doc = std::str::from_utf8(&items[1].1).expect("utf-8");
        assert!(
            doc.starts_with(r#"{"v":1,"value_xxh3":""#)
                && doc.ends_with(r#"","tags":[["","a"],["u","b"]]}"#),
            "{doc}"
        );
        let parsed = parse_doc(Some(&items[1].1), &stored).expect("bound to its value");
        let parsed: Vec<(&str, &str)> = parsed
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(parsed, [("", "a"), ("u", "b")]);
        // Bound to the value: a document of another value is ignored.
        assert_eq!(parse_doc(Some(&items[1].1), &mark(b"{}")), None);
        assert_eq!(parse_doc(Some(&Bytes::from_static(b"junk")), &stored), None);
        assert_eq!(parse_doc(None, &stored), None);
    }

    #[test]
    fn an_entry_is_current_only_if_every_version_is() {
        let recorded: Recorded<'_> = [("", "a"), ("u", "b")]
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
            .collect();
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        let c = Bytes::from_static(b"c");
        assert!(all_current(&recorded, |t| Some(if t.is_empty() {
            &a
        } else {
            &b
        })));
        assert!(!all_current(&recorded, |t| Some(if t.is_empty() {
            &a
        } else {
            &c
        })));
        assert!(!all_current(&recorded, |t| if t.is_empty() {
            Some(&a)
        } else {
            None
        }));
    }

    #[test]
    fn tags_are_normalized_and_named_under_the_prefix() {
        assert_eq!(normalize(["b", "a", "b"]), ["a", "b"]);
        assert!(check_names(&normalize(["a"])).is_ok());
        let err = check_names(&normalize(["a", ""])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(tag_key("cache:", "user:1"), "cache:#tag:user:1");
        assert_eq!(tag_key("cache:", NAMESPACE_TAG), "cache:#tag:");
        assert_ne!(new_version(), new_version());
        assert_eq!(new_version().len(), 16);
    }
}
