//! Cache keys of requests.
//!
//! The *primary key* of a request is
//! `{key_prefix}GET:{scheme}://{host}{path}[?{query}]`, the query normalized (empty pairs
//! dropped, pairs sorted), `HEAD` sharing `GET`'s key (a `HEAD` is answered from the `GET`
//! response, as nginx's `proxy_cache_convert_head`). With [`Credentials::PerUser`](crate::Credentials::PerUser), `#u:`
//! and a hash of the credentials follow. A response with `Vary` is stored under the primary
//! key and, for the other variants, under `{primary}#v:{hash of the varying fields}`.
//! Every key names its URL in clear (so a purge can match it) unless it is longer than
//! [`MAX_CLEAR`] bytes, when its tail is replaced by a hash.

use std::fmt::Write as _;

use http::request::Parts;
use http::Uri;

/// The longest key kept readable.
pub(crate) const MAX_CLEAR: usize = 400;

fn hex128(data: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data))
}

/// The query with empty pairs dropped and pairs sorted (byte order), or `None`.
pub(crate) fn normalized_query(query: Option<&str>) -> Option<String> {
    let query = query?;
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_unstable();
    Some(pairs.join("&"))
}

/// `scheme://host` of a request: the URI's when it has one (HTTP/2, absolute form), else
/// `http` and the `Host` field, lowercased.
pub(crate) fn origin(parts: &Parts) -> String {
    let scheme = parts.uri.scheme_str().unwrap_or("http");
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "-".to_owned());
    format!("{scheme}://{}", host.to_ascii_lowercase())
}

/// The primary key of a request to `origin` + `uri`'s path and query.
pub(crate) fn primary(prefix: &str, origin: &str, uri: &Uri, user: Option<&[u8]>) -> String {
    let mut key = String::with_capacity(prefix.len() + origin.len() + 64);
    key.push_str(prefix);
    key.push_str("GET:");
    key.push_str(origin);
    key.push_str(uri.path());
    if let Some(q) = normalized_query(uri.query()) {
        key.push('?');
        key.push_str(&q);
    }
    if key.len() > MAX_CLEAR {
        let hash = hex128(key.as_bytes());
        let mut cut = MAX_CLEAR - 40;
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        key.truncate(cut);
        key.push_str("#h:");
        key.push_str(&hash);
    }
    if let Some(user) = user {
        key.push_str("#u:");
        key.push_str(&hex128(user));
    }
    key
}

/// The key of one variant of `primary`: the varying fields' names and values hashed.
pub(crate) fn variant(primary: &str, vary: &[(String, Option<String>)]) -> String {
    let mut text = String::new();
    for (name, value) in vary {
        let _ = write!(
            text,
            "{name}\n{}\n{}\n",
            value.is_some() as u8,
            value.as_deref().unwrap_or("")
        );
    }
    format!("{primary}#v:{}", hex128(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_normalized() {
        assert_eq!(normalized_query(Some("b=2&&a=1&")), Some("a=1&b=2".into()));
        assert_eq!(normalized_query(Some("&")), None);
        assert_eq!(normalized_query(None), None);
    }

    #[test]
    fn primary_keys_name_the_url_and_hash_long_ones() {
        let uri: Uri = "/p?b=1&a=2".parse().unwrap();
        assert_eq!(
            primary("http:", "http://h", &uri, None),
            "http:GET:http://h/p?a=2&b=1"
        );
        let long: Uri = format!("/{}", "x".repeat(1000)).parse().unwrap();
        let k = primary("http:", "http://h", &long, None);
        assert!(k.len() < MAX_CLEAR + 40 && k.contains("#h:"));
        let other: Uri = format!("/{}y", "x".repeat(999)).parse().unwrap();
        assert_ne!(k, primary("http:", "http://h", &other, None));
        let u = primary("http:", "http://h", &uri, Some(b"Bearer a"));
        assert_ne!(u, primary("http:", "http://h", &uri, Some(b"Bearer b")));
    }

    #[test]
    fn variants_differ_by_value_and_by_absence() {
        let a = variant("k", &[("accept".into(), Some("a".into()))]);
        let b = variant("k", &[("accept".into(), Some("b".into()))]);
        let none = variant("k", &[("accept".into(), None)]);
        let empty = variant("k", &[("accept".into(), Some(String::new()))]);
        assert!(a != b && none != empty && a.starts_with("k#v:"));
    }
}
