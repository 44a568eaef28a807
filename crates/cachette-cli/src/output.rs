//! Writing to stdout without panicking on a closed pipe, and showing stored bytes safely.

use std::fmt::Write as _;
use std::io::{self, Write};

/// Writes `text` and a newline to stdout; a closed pipe is an `io::Error` (exit 0 in `main`),
/// never a panic as with `println!`.
pub(crate) fn line(text: impl AsRef<str>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_ref().as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// How a stored value is shown by `get`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shown {
    /// Valid JSON, pretty-printed.
    Json(String),
    /// UTF-8 text that is not JSON, with control characters escaped.
    Text(String),
    /// Anything else, as an escaped byte string (`\x93\xa1...`).
    Binary(String),
}

/// Pretty JSON when the bytes are JSON, escaped text or bytes otherwise: never raw control
/// characters on a terminal.
pub(crate) fn show(bytes: &[u8]) -> Shown {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if let Ok(pretty) = serde_json::to_string_pretty(&value) {
            return Shown::Json(pretty);
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                if c.is_control() && c != '\n' && c != '\t' {
                    let _ = write!(out, "{}", c.escape_default());
                } else {
                    out.push(c);
                }
            }
            Shown::Text(out)
        }
        Err(_) => Shown::Binary(bytes.escape_ascii().to_string()),
    }
}

/// Seconds as `1h 2m 3s` (for humans; scripts read the plain number).
pub(crate) fn human_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_json_text_and_binary_safely() {
        assert_eq!(show(br#"{"a":1}"#), Shown::Json("{\n  \"a\": 1\n}".into()));
        assert_eq!(show(b"hi\x1b[31m"), Shown::Text("hi\\u{1b}[31m".into()));
        assert_eq!(show(b"\x93\xa1a"), Shown::Binary("\\x93\\xa1a".into()));
        assert_eq!(human_secs(3723), "1h 2m 3s");
        assert_eq!(human_secs(59), "59s");
    }
}
