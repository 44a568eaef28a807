//! HTTP caching rules (RFC 9111): `Cache-Control` directives, freshness, and which
//! responses a shared cache may store.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http::StatusCode;

/// The `Cache-Control` directives this cache acts on, from every `Cache-Control` field of a
/// request or a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    /// `no-cache` (also its qualified form `no-cache="field"`, treated as unqualified).
    pub(crate) no_cache: bool,
    /// `private` (also qualified, treated as unqualified).
    pub(crate) private: bool,
    pub(crate) public: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub(crate) must_revalidate: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) only_if_cached: bool,
}

impl Directives {
    /// Parses every `Cache-Control` field of `headers`; unknown directives are ignored, a
    /// malformed delta-seconds makes the directive count as `0` (RFC 9111 §1.2.2: a cache
    /// must treat an invalid `max-age` as stale).
    pub(crate) fn parse(headers: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else {
                // An unreadable field: be conservative.
                d.no_store = true;
                continue;
            };
            for part in value.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let (name, arg) = match part.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (part, None),
                };
                let seconds = || arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "public" => d.public = true,
                    "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
                    "max-age" => d.max_age = Some(seconds()),
                    "s-maxage" => d.s_maxage = Some(seconds()),
                    "only-if-cached" => d.only_if_cached = true,
                    _ => {}
                }
            }
        }
        d
    }
}

/// The statuses that are heuristically cacheable (RFC 9110 §15.1), without `206 Partial
/// Content` (this cache stores whole representations only; range requests bypass it).
pub const DEFAULT_CACHEABLE_STATUSES: [u16; 11] =
    [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The statuses for which a stale copy is served instead (stale-if-error, RFC 5861 §4).
pub(crate) fn is_error_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// The explicit freshness lifetime a response gives itself (RFC 9111 §4.2.1), less the age
/// it already had when it reached this cache (its `Age` field): `s-maxage`, else `max-age`,
/// else `Expires` minus `Date` (or minus now, without a `Date`). `None`: nothing explicit.
pub(crate) fn explicit_freshness(
    headers: &HeaderMap,
    cc: &Directives,
    now: SystemTime,
) -> Option<Duration> {
    let lifetime = if let Some(s) = cc.s_maxage.or(cc.max_age) {
        Duration::from_secs(s)
    } else if let Some(expires) = headers.get(header::EXPIRES) {
        // An invalid date (e.g. "0") means already expired.
        let Some(expires) = http_date(expires.to_str().ok()) else {
            return Some(Duration::ZERO);
        };
        let date =
            http_date(headers.get(header::DATE).and_then(|v| v.to_str().ok())).unwrap_or(now);
        expires.duration_since(date).unwrap_or(Duration::ZERO)
    } else {
        return None;
    };
    Some(lifetime.saturating_sub(Duration::from_secs(origin_age(headers))))
}

/// The `Age` a response arrived with (0 when absent or malformed).
pub(crate) fn origin_age(headers: &HeaderMap) -> u64 {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// An HTTP date (IMF-fixdate and the two obsolete formats).
pub(crate) fn http_date(value: Option<&str>) -> Option<SystemTime> {
    httpdate::parse_http_date(value?.trim()).ok()
}

/// Whether `tag` (an entity tag, possibly weak) matches one of the tags of an
/// `If-None-Match` field, by the weak comparison (RFC 9110 §8.8.3.2), or the field is `*`.
pub(crate) fn none_match(if_none_match: &str, tag: &str) -> bool {
    let opaque = |t: &str| {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_owned()
    };
    let mine = opaque(tag);
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || opaque(t) == mine)
}

/// The header names of a `Vary` field list, lowercased, sorted, deduplicated; `None` for
/// `Vary: *` (never cached).
pub(crate) fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let value = value.to_str().ok()?;
        for name in value.split(',') {
            let name = name.trim();
            if name == "*" {
                return None;
            }
            if !name.is_empty() {
                names.push(name.to_ascii_lowercase());
            }
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// A request's value of the field `name` for `Vary` matching: every line of it joined with
/// `", "`, inner whitespace runs kept as they are; `None` when absent.
pub(crate) fn field_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let text = text.trim();
        match out.as_mut() {
            Some(o) => {
                o.push_str(", ");
                o.push_str(text);
            }
            None => out = Some(text.to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn directives_are_read_from_every_field_case_insensitively() {
        let h = headers(&[
            ("cache-control", "Public, max-age=60"),
            ("cache-control", "s-maxage=\"30\", no-cache=\"set-cookie\""),
        ]);
        let d = Directives::parse(&h);
        assert!(d.public && d.no_cache && !d.no_store && !d.private);
        assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(30)));
        assert_eq!(
            Directives::parse(&headers(&[("cache-control", "max-age=x")])).max_age,
            Some(0)
        );
    }

    #[test]
    fn freshness_prefers_s_maxage_then_max_age_then_expires_and_subtracts_age() {
        let now = SystemTime::now();
        let h = headers(&[("cache-control", "max-age=100, s-maxage=50"), ("age", "20")]);
        let d = Directives::parse(&h);
        assert_eq!(
            explicit_freshness(&h, &d, now),
            Some(Duration::from_secs(30))
        );
        let h = headers(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 08:50:37 GMT"),
        ]);
        let d = Directives::parse(&h);
        assert_eq!(
            explicit_freshness(&h, &d, now),
            Some(Duration::from_secs(60))
        );
        let h = headers(&[("expires", "0")]);
        assert_eq!(
            explicit_freshness(&h, &Directives::default(), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            explicit_freshness(&HeaderMap::new(), &Directives::default(), now),
            None
        );
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"x\""));
        assert!(!none_match("\"a\"", "\"b\""));
    }

    #[test]
    fn vary_names_are_normalized_and_star_is_none() {
        let h = headers(&[("vary", "Accept-Language, accept"), ("vary", "Accept")]);
        assert_eq!(
            vary_names(&h),
            Some(vec!["accept".into(), "accept-language".into()])
        );
        assert_eq!(vary_names(&headers(&[("vary", "accept, *")])), None);
    }
}
