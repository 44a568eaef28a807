//! A stored response: what is kept, and the responses (full, `HEAD`, `304`) built from it.
//!
//! Entries are stored through the manager's codec; with the default JSON codec one reads
//! (body as text when it is UTF-8, else base64 under `b64`):
//!
//! ```json
//! {"v":1,"status":200,"headers":[["content-type","application/json"],["etag","\"x3-…\""]],
//!  "text":"{\"id\":1}","stored_at_ms":1767225600123,"age_s":0,"ttl_ms":60000,
//!  "vary":[["accept-language","fr"]],"tags":["products"]}
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::policy;

/// Format version of [`Stored`].
const VERSION: u8 = 1;

/// One stored response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) v: u8,
    pub(crate) status: u16,
    /// End-to-end fields as the handler sent them (plus a generated `etag`), lowercased.
    pub(crate) headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) b64: Option<String>,
    pub(crate) stored_at_ms: u64,
    /// The `Age` the response arrived with.
    #[serde(default)]
    pub(crate) age_s: u64,
    /// How long it is fresh from `stored_at_ms`.
    pub(crate) ttl_ms: u64,
    /// The request fields named by the response's `Vary`, as the request that produced it
    /// had them (`None`: absent).
    #[serde(default)]
    pub(crate) vary: Vec<(String, Option<String>)>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// `must-revalidate`, `proxy-revalidate` (never served stale).
    #[serde(default)]
    pub(crate) no_stale: bool,
}

/// Fields never stored: hop-by-hop ones (RFC 9110 §7.6.1), those the layer computes
/// itself, and `set-cookie` (whose responses are not stored anyway).
fn not_stored(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "age"
            | "content-length"
            | "set-cookie"
    )
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A strong entity tag for `body`: its XXH3-128, quoted.
pub(crate) fn etag_of(body: &[u8]) -> String {
    format!("\"x3-{:032x}\"", xxhash_rust::xxh3::xxh3_128(body))
}

/// What a request asks of a stored response beyond the response itself.
#[derive(Debug, Default, Clone)]
pub(crate) struct Conditions {
    pub(crate) if_none_match: Option<String>,
    pub(crate) if_modified_since: Option<SystemTime>,
    pub(crate) head: bool,
}

impl Conditions {
    pub(crate) fn of(headers: &HeaderMap, head: bool) -> Conditions {
        Conditions {
            if_none_match: headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            if_modified_since: policy::http_date(
                headers
                    .get(header::IF_MODIFIED_SINCE)
                    .and_then(|v| v.to_str().ok()),
            ),
            head,
        }
    }
}

impl Stored {
    /// An entry for a response the layer may store (the caller checked the rules).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
        ttl: Duration,
        vary: Vec<(String, Option<String>)>,
        tags: Vec<String>,
        no_stale: bool,
        tags_header: Option<&HeaderName>,
    ) -> Option<Stored> {
        let mut kept = Vec::with_capacity(headers.len() + 1);
        for (name, value) in headers {
            if not_stored(name) || Some(name) == tags_header {
                continue;
            }
            // A field that is not visible ASCII is kept out of the store by not storing.
            kept.push((name.as_str().to_owned(), value.to_str().ok()?.to_owned()));
        }
        if !headers.contains_key(header::ETAG) {
            kept.push(("etag".to_owned(), etag_of(&body)));
        }
        let (text, b64) = match String::from_utf8(body.to_vec()) {
            Ok(text) => (Some(text), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&body)),
            ),
        };
        Some(Stored {
            v: VERSION,
            status: status.as_u16(),
            headers: kept,
            text,
            b64,
            stored_at_ms: unix_ms(now),
            age_s: policy::origin_age(headers),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            vary,
            tags,
            no_stale,
        })
    }

    /// Whether this entry was stored in a format this version reads.
    pub(crate) fn readable(&self) -> bool {
        self.v == VERSION && StatusCode::from_u16(self.status).is_ok()
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request's fields named by `Vary` are those this entry was made for.
    pub(crate) fn matches(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| policy::field_value(request, name) == *value)
    }

    /// Its age now, in seconds (RFC 9111 §4.2.3, the origin's `Age` included).
    pub(crate) fn age(&self, now: SystemTime) -> u64 {
        unix_ms(now).saturating_sub(self.stored_at_ms) / 1000 + self.age_s
    }

    /// Whether it is still fresh now.
    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        unix_ms(now).saturating_sub(self.stored_at_ms) < self.ttl_ms
    }

    /// Whether a request with `cond` gets `304 Not Modified` (RFC 9110 §13.2.2: `If-None-Match`
    /// when present, else `If-Modified-Since` against `Last-Modified`).
    fn not_modified(&self, cond: &Conditions) -> bool {
        if !(200..300).contains(&self.status) {
            return false;
        }
        if let Some(inm) = &cond.if_none_match {
            return self
                .field("etag")
                .is_some_and(|tag| policy::none_match(inm, tag));
        }
        match (cond.if_modified_since, self.field("last-modified")) {
            (Some(since), Some(lm)) => policy::http_date(Some(lm)).is_some_and(|lm| lm <= since),
            _ => false,
        }
    }

    /// The response for a request with `cond`: `304` with the validators and caching fields,
    /// else the stored response (without a body for `HEAD`), with `Age` when `age` is given.
    pub(crate) fn respond(self, cond: &Conditions, age: Option<u64>) -> Response<Bytes> {
        let not_modified = self.not_modified(cond);
        let status = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK)
        };
        let mut out = Response::new(Bytes::new());
        *out.status_mut() = status;
        let headers = out.headers_mut();
        for (name, value) in &self.headers {
            if not_modified
                && !matches!(
                    name.as_str(),
                    "etag"
                        | "cache-control"
                        | "expires"
                        | "vary"
                        | "content-location"
                        | "date"
                        | "last-modified"
                )
            {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        if let Some(age) = age {
            headers.insert(header::AGE, HeaderValue::from(age));
        }
        if not_modified {
            return out;
        }
        let body = match (self.text, self.b64) {
            (Some(text), _) => Bytes::from(text.into_bytes()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Bytes::from)
                .unwrap_or_default(),
            (None, None) => Bytes::new(),
        };
        if cond.head {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        } else {
            *out.body_mut() = body;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(headers: &[(&'static str, &'static str)], body: &'static [u8]) -> Stored {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.append(*n, HeaderValue::from_static(v));
        }
        Stored::new(
            StatusCode::OK,
            &h,
            Bytes::from_static(body),
            SystemTime::now(),
            Duration::from_secs(60),
            Vec::new(),
            Vec::new(),
            false,
            None,
        )
        .unwrap()
    }

    #[test]
    fn binary_bodies_round_trip_through_base64_and_text_stays_text() {
        let e = entry(&[], b"\xff\x00abc");
        assert!(e.text.is_none() && e.b64.is_some());
        let r = e.respond(&Conditions::default(), None);
        assert_eq!(r.body().as_ref(), b"\xff\x00abc");
        let e = entry(&[], b"{\"a\":1}");
        assert_eq!(e.text.as_deref(), Some("{\"a\":1}"));
    }

    #[test]
    fn hop_by_hop_fields_are_not_stored_and_an_etag_is_generated() {
        let e = entry(
            &[("connection", "close"), ("content-type", "text/plain")],
            b"x",
        );
        assert!(e.field("connection").is_none());
        assert_eq!(e.field("etag"), Some(etag_of(b"x").as_str()));
        let e = entry(&[("etag", "\"mine\"")], b"x");
        assert_eq!(e.field("etag"), Some("\"mine\""));
    }
}
