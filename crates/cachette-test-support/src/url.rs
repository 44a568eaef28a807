//! Building `redis://` URLs.

/// `redis://[user][:password@]127.0.0.1:PORT/[db]`, with the user info percent-encoded.
pub(crate) fn redis_url(
    port: u16,
    user: Option<&str>,
    password: Option<&str>,
    db: Option<i64>,
) -> String {
    let mut url = String::from("redis://");
    if user.is_some() || password.is_some() {
        if let Some(user) = user {
            url.push_str(&encode_userinfo(user));
        }
        if let Some(password) = password {
            url.push(':');
            url.push_str(&encode_userinfo(password));
        }
        url.push('@');
    }
    url.push_str(&format!("127.0.0.1:{port}/"));
    if let Some(db) = db {
        url.push_str(&db.to_string());
    }
    url
}

/// Percent-encodes everything but RFC 3986 "unreserved" characters.
fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redis_url;

    #[test]
    fn plain() {
        assert_eq!(redis_url(6379, None, None, None), "redis://127.0.0.1:6379/");
        assert_eq!(
            redis_url(6379, None, None, Some(3)),
            "redis://127.0.0.1:6379/3"
        );
    }

    #[test]
    fn with_auth_is_percent_encoded() {
        assert_eq!(
            redis_url(1, None, Some("pw"), None),
            "redis://:pw@127.0.0.1:1/"
        );
        assert_eq!(
            redis_url(1, Some("al ice"), Some("p@ss:/%"), Some(2)),
            "redis://al%20ice:p%40ss%3A%2F%25@127.0.0.1:1/2"
        );
    }
}
