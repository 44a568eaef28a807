//! Key templates (`key = "user:{user_id}"`) and the escaping of the values substituted into
//! them, for keys and for Redis glob patterns.

use std::fmt::{self, Display, Write as _};

/// Appends `value` to `out`, percent-escaping `%`, `:`, `{` and `}` (the escaping of template
/// values in keys): a value can neither add a field to the key nor open or close a Redis
/// Cluster hash tag.
///
/// # Examples
///
/// ```
/// let mut key = String::from("user:");
/// cachette::key::escape_value("a:b%c{d}", &mut key);
/// assert_eq!(key, "user:a%3Ab%25c%7Bd%7D");
/// ```
pub fn escape_value(value: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'%' => "%25",
            b':' => "%3A",
            b'{' => "%7B",
            b'}' => "%7D",
            _ => continue,
        };
        out.push_str(&value[start..i]);
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(&value[start..]);
}

/// Appends `value` to `out` escaped for a key template ([`escape_value`]) and then for a Redis
/// glob (a backslash before `*`, `?`, `[`, `]` and `\`), so that it matches itself only.
///
/// # Examples
///
/// ```
/// let mut pattern = String::from("user:");
/// cachette::key::escape_pattern_value("*", &mut pattern);
/// pattern.push_str(":*");
/// assert_eq!(pattern, r"user:\*:*");
/// assert!(cachette::glob::matches(&pattern, "user:*:profile"));
/// assert!(!cachette::glob::matches(&pattern, "user:42:profile"));
/// ```
pub fn escape_pattern_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            '*' | '?' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Builds a key or an eviction pattern from a template: literal parts as written, argument
/// values through `Display`, escaped. This is what `key = "user:{id}"` expands into.
///
/// # Examples
///
/// ```
/// use cachette::key::KeyTemplate;
///
/// let mut key = KeyTemplate::key(16);
/// key.lit("user:").value(&"ada:lovelace").lit(":extra:").value(&true);
/// assert_eq!(key.finish(), "user:ada%3Alovelace:extra:true");
///
/// let mut pattern = KeyTemplate::pattern(16);
/// pattern.lit("user:").value(&"*").lit(":*");
/// assert_eq!(pattern.finish(), r"user:\*:*");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct KeyTemplate {
    out: String,
    glob: bool,
}

impl KeyTemplate {
    /// A template for a key, with room for `capacity` bytes.
    pub fn key(capacity: usize) -> Self {
        KeyTemplate {
            out: String::with_capacity(capacity),
            glob: false,
        }
    }

    /// A template for a Redis glob pattern (values are glob-escaped too).
    pub fn pattern(capacity: usize) -> Self {
        KeyTemplate {
            out: String::with_capacity(capacity),
            glob: true,
        }
    }

    /// Appends a literal part as written.
    pub fn lit(&mut self, literal: &str) -> &mut Self {
        self.out.push_str(literal);
        self
    }

    /// Appends an argument value through `Display`, escaped.
    pub fn value<T: Display + ?Sized>(&mut self, value: &T) -> &mut Self {
        let mut w = Escaper {
            out: &mut self.out,
            glob: self.glob,
        };
        // Writing into a String cannot fail; a `Display` impl that reports an error leaves
        // what it wrote so far.
        let _ = write!(w, "{value}");
        self
    }

    /// The key or pattern.
    pub fn finish(self) -> String {
        self.out
    }
}

struct Escaper<'a> {
    out: &'a mut String,
    glob: bool,
}

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.glob {
            escape_pattern_value(s, self.out);
        } else {
            escape_value(s, self.out);
        }
        Ok(())
    }
}
