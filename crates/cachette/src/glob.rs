//! Redis glob patterns, as `KEYS`, `SCAN … MATCH` and cachette's `delete_pattern` use them.
//!
//! The syntax and every corner case follow Redis' `stringmatchlen` (case-sensitive):
//!
//! | pattern   | matches                                                                  |
//! |-----------|--------------------------------------------------------------------------|
//! | `*`       | any run of bytes, including none                                         |
//! | `?`       | exactly one **byte** (a non-ASCII character is several bytes)            |
//! | `[abc]`   | one byte out of the set; `[a-z]` a range, `[z-a]` the same range         |
//! | `[^a]`    | one byte *not* in the set                                                |
//! | `\x`      | the byte `x` literally, outside and inside brackets                      |
//!
//! Redis' quirks are kept on purpose, so that the memory backend answers exactly like a server:
//!
//! - An unterminated `[` runs to the end of the pattern (`"[ab"` is `"[ab]"`, a lone trailing
//!   `"["` matches nothing, `"[^"` matches any one byte), and `]` right after `[` closes an
//!   empty set. A `-` with a byte on both sides is always a range, even when that byte is `]`:
//!   `"[a-]"` is the range `]`..=`a`, left unterminated.
//! - Range bounds compare as C `char`s, which are signed on the x86-64 and the usual Linux
//!   builds of Redis: a bound or key byte `>= 0x80` sorts *below* `0x00`. This only matters for
//!   ranges whose bounds are not both ASCII or both non-ASCII.
//! - A lone trailing `\` matches a backslash.
//! - Every pattern except the empty one fails on the empty key — except the pattern `"*"`
//!   alone, which `KEYS` and `SCAN` treat as "everything" without matching (so it also returns
//!   the empty key). [`matches()`] applies that shortcut too, since it answers "would `SCAN`
//!   return this key?".
//! - A pattern with more than 1000 `*` groups that are not at its very end never matches
//!   (Redis' guard against abusive patterns; old unpatched servers lack it).
//!
//! Matching is byte-based and runs in `O(pattern × key)` time in the worst case (the classic
//! backtrack-to-the-last-star algorithm over pre-compiled tokens), never exponential.
//!
//! # Examples
//!
//! ```
//! use cachette::glob::{escape, matches};
//!
//! assert!(matches("user:*", "user:42"));
//! assert!(matches("user:[0-9]?", "user:42"));
//! assert!(!matches("user:[^4]*", "user:42"));
//! // Escape untrusted text before building a pattern from it.
//! let pattern = format!("{}*", escape("report[2024]"));
//! assert!(matches(&pattern, "report[2024]:pdf"));
//! assert!(!matches(&pattern, "report2:pdf"));
//! ```

/// Redis refuses to recurse deeper than this many `*` groups (`stringmatchlen_impl`).
const MAX_NESTING: usize = 1000;

/// Whether `key` matches the Redis glob `pattern`.
///
/// Equivalent to `Pattern::new(pattern).is_match(key)`; compile a [`Pattern`] once instead
/// when testing many keys against the same pattern.
///
/// # Examples
///
/// ```
/// use cachette::glob::matches;
///
/// assert!(matches("h?llo", "hello"));
/// assert!(matches("h*llo", "heeeello"));
/// assert!(matches("h[ae]llo", "hallo"));
/// assert!(!matches("h[^e]llo", "hello"));
/// assert!(matches("h[a-b]llo", "hbllo"));
/// assert!(matches("h[b-a]llo", "hallo")); // reversed ranges work, as in Redis
/// assert!(matches(r"h\*llo", "h*llo"));
/// assert!(!matches(r"h\*llo", "hello"));
/// ```
pub fn matches(pattern: &str, key: &str) -> bool {
    Pattern::new(pattern).is_match(key)
}

/// Escapes `literal` so that, used as a pattern, it matches exactly `literal` and nothing else.
///
/// A backslash is put before each of `*`, `?`, `[`, `]` and `\`; every other character is
/// kept as it is (`^` and `-` are only special inside brackets, which escaping `[` rules out).
/// Useful to build a pattern from a prefix that may contain glob characters:
/// `format!("{}*", escape(prefix))`.
///
/// # Examples
///
/// ```
/// use cachette::glob::{escape, matches};
///
/// assert_eq!(escape("a*b?[c]\\"), r"a\*b\?\[c\]\\");
/// assert!(matches(&escape("a*b"), "a*b"));
/// assert!(!matches(&escape("a*b"), "axxb"));
/// ```
pub fn escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 8);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The longest literal text that every key matching `pattern` starts with.
///
/// Escapes are resolved (`r"a\*b*"` gives `"a*b"`); the prefix stops at the first `*`, `?` or
/// `[`. A pattern without wildcards yields the whole (unescaped) text, which is then the only
/// key it matches (apart from the `"*"` shortcut, whose prefix is `""`).
///
/// # Examples
///
/// ```
/// use cachette::glob::literal_prefix;
///
/// assert_eq!(literal_prefix("cache:user:*"), "cache:user:");
/// assert_eq!(literal_prefix(r"cache:\[x\]?"), "cache:[x]");
/// assert_eq!(literal_prefix("*:user"), "");
/// ```
pub fn literal_prefix(pattern: &str) -> String {
    let compiled = Pattern::new(pattern);
    let bytes: Vec<u8> = compiled
        .tokens
        .iter()
        .map_while(|token| match token {
            Token::Byte(b) => Some(*b),
            _ => None,
        })
        .collect();
    // Wildcards and escapes are ASCII, so the prefix always ends on a character boundary;
    // the lossy conversion never actually replaces anything.
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A compiled Redis glob pattern, to test many keys without parsing the pattern each time.
///
/// # Examples
///
/// ```
/// use cachette::glob::Pattern;
///
/// let pattern = Pattern::new("session:[0-9]*");
/// let keys = ["session:1", "session:x", "session:42:data"];
/// let hits: Vec<_> = keys.iter().filter(|k| pattern.is_match(k)).collect();
/// assert_eq!(hits, [&"session:1", &"session:42:data"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
    /// The pattern is exactly `"*"`: `KEYS`/`SCAN` skip matching and take every key.
    match_all: bool,
    /// More `*` groups than Redis is willing to recurse into: nothing matches.
    too_deep: bool,
}

/// One element of a pattern; every token but `Star` consumes exactly one key byte.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// One or more consecutive `*`.
    Star,
    /// `?`.
    Any,
    /// A literal (possibly escaped) byte.
    Byte(u8),
    /// A bracket expression, negation already applied.
    Class(ByteSet),
}

/// A set of bytes as a 256-bit bitmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn insert(&mut self, byte: u8) {
        self.0[usize::from(byte >> 6)] |= 1 << (byte & 63);
    }

    fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }

    fn complement(self) -> ByteSet {
        let [a, b, c, d] = self.0;
        ByteSet([!a, !b, !c, !d])
    }
}

impl Token {
    fn matches(&self, byte: u8) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Byte(b) => *b == byte,
            Token::Class(set) => set.contains(byte),
        }
    }
}

impl Pattern {
    /// Compiles `pattern`. Every string is a valid pattern (see the [module docs](self) for
    /// how malformed brackets and escapes are read), so this cannot fail.
    pub fn new(pattern: &str) -> Pattern {
        Pattern::from_bytes(pattern.as_bytes())
    }

    /// Compiles a pattern given as raw bytes.
    pub fn from_bytes(pattern: &[u8]) -> Pattern {
        let tokens = tokenize(pattern);
        let stars = tokens.iter().filter(|t| matches!(t, Token::Star)).count();
        let trailing = usize::from(matches!(tokens.last(), Some(Token::Star)));
        Pattern {
            match_all: pattern == b"*",
            too_deep: stars - trailing > MAX_NESTING,
            tokens,
        }
    }

    /// Whether `key` matches this pattern.
    pub fn is_match(&self, key: &str) -> bool {
        self.is_match_bytes(key.as_bytes())
    }

    /// Whether the raw bytes `key` match this pattern.
    pub fn is_match_bytes(&self, key: &[u8]) -> bool {
        if self.match_all {
            return true;
        }
        if key.is_empty() {
            // Redis' matching loop never runs on an empty string.
            return self.tokens.is_empty();
        }
        if self.too_deep {
            return false;
        }
        let tokens = &self.tokens;
        let (mut t, mut k) = (0, 0);
        // Where to resume after the most recent star: (token after it, key position).
        let mut backtrack: Option<(usize, usize)> = None;
        while k < key.len() {
            match tokens.get(t) {
                Some(Token::Star) => {
                    t += 1;
                    backtrack = Some((t, k));
                }
                Some(token) if token.matches(key[k]) => {
                    t += 1;
                    k += 1;
                }
                _ => match backtrack {
                    // Let the last star swallow one more byte and retry from there. Earlier
                    // stars never need to grow (the same argument as Redis' skipLongerMatches).
                    Some((after_star, start)) => {
                        t = after_star;
                        k = start + 1;
                        backtrack = Some((after_star, k));
                    }
                    None => return false,
                },
            }
        }
        tokens[t..].iter().all(|token| matches!(token, Token::Star))
    }
}

/// Splits a pattern into tokens exactly the way `stringmatchlen` walks it. How much pattern a
/// token takes never depends on the key, so this is done once up front.
fn tokenize(p: &[u8]) -> Vec<Token> {
    let n = p.len();
    let mut tokens = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        match p[i] {
            b'*' => {
                while i + 1 < n && p[i + 1] == b'*' {
                    i += 1;
                }
                tokens.push(Token::Star);
                i += 1;
            }
            b'?' => {
                tokens.push(Token::Any);
                i += 1;
            }
            b'[' => {
                i += 1;
                let negate = i < n && p[i] == b'^';
                if negate {
                    i += 1;
                }
                let mut set = ByteSet::EMPTY;
                loop {
                    if i >= n {
                        // Unterminated: the set runs to the end of the pattern.
                        break;
                    } else if p[i] == b'\\' && n - i >= 2 {
                        i += 1;
                        set.insert(p[i]);
                    } else if p[i] == b']' {
                        i += 1;
                        break;
                    } else if n - i >= 3 && p[i + 1] == b'-' {
                        insert_range(&mut set, p[i], p[i + 2]);
                        i += 2;
                    } else {
                        set.insert(p[i]);
                    }
                    i += 1;
                }
                tokens.push(Token::Class(if negate { set.complement() } else { set }));
            }
            b'\\' => {
                if n - i >= 2 {
                    i += 1;
                }
                tokens.push(Token::Byte(p[i]));
                i += 1;
            }
            byte => {
                tokens.push(Token::Byte(byte));
                i += 1;
            }
        }
    }
    tokens
}

/// Adds the range between two bounds (in either order) compared as signed C `char`s.
fn insert_range(set: &mut ByteSet, a: u8, b: u8) {
    let (a, b) = (a as i8, b as i8);
    let (lo, hi) = if a > b { (b, a) } else { (a, b) };
    for c in lo..=hi {
        set.insert(c as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A line-by-line port of Redis' `stringmatchlen_impl` (util.c, with the nesting guard),
    /// reading a NUL past the end of the pattern as the C code does. The oracle for `matches`.
    fn redis_impl(p: &[u8], s: &[u8], skip_longer: &mut bool, nesting: usize) -> bool {
        fn at(p: &[u8], i: usize) -> u8 {
            p.get(i).copied().unwrap_or(0)
        }
        if nesting > 1000 {
            return false;
        }
        let (mut pi, mut plen) = (0usize, p.len());
        let (mut si, mut slen) = (0usize, s.len());
        while plen > 0 && slen > 0 {
            match p[pi] {
                b'*' => {
                    while plen > 0 && at(p, pi + 1) == b'*' {
                        pi += 1;
                        plen -= 1;
                    }
                    if plen == 1 {
                        return true;
                    }
                    while slen > 0 {
                        if redis_impl(&p[pi + 1..], &s[si..], skip_longer, nesting + 1) {
                            return true;
                        }
                        if *skip_longer {
                            return false;
                        }
                        si += 1;
                        slen -= 1;
                    }
                    *skip_longer = true;
                    return false;
                }
                b'?' => {
                    si += 1;
                    slen -= 1;
                }
                b'[' => {
                    pi += 1;
                    plen -= 1;
                    let not = at(p, pi) == b'^';
                    if not {
                        pi += 1;
                        plen -= 1;
                    }
                    let mut matched = false;
                    loop {
                        if at(p, pi) == b'\\' && plen >= 2 {
                            pi += 1;
                            plen -= 1;
                            if p[pi] == s[si] {
                                matched = true;
                            }
                        } else if at(p, pi) == b']' {
                            break;
                        } else if plen == 0 {
                            pi -= 1;
                            plen += 1;
                            break;
                        } else if plen >= 3 && p[pi + 1] == b'-' {
                            let mut start = p[pi] as i8 as i32;
                            let mut end = p[pi + 2] as i8 as i32;
                            let c = s[si] as i8 as i32;
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            pi += 2;
                            plen -= 2;
                            if c >= start && c <= end {
                                matched = true;
                            }
                        } else if p[pi] == s[si] {
                            matched = true;
                        }
                        pi += 1;
                        plen -= 1;
                    }
                    if not {
                        matched = !matched;
                    }
                    if !matched {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                c => {
                    let c = if c == b'\\' && plen >= 2 {
                        pi += 1;
                        plen -= 1;
                        p[pi]
                    } else {
                        c
                    };
                    if c != s[si] {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
            }
            pi += 1;
            plen -= 1;
            if slen == 0 {
                while at(p, pi) == b'*' {
                    pi += 1;
                    plen -= 1;
                }
                break;
            }
        }
        plen == 0 && slen == 0
    }

    /// What `SCAN … MATCH` does: the `"*"` shortcut, then `stringmatchlen`.
    fn redis_scan_match(p: &[u8], s: &[u8]) -> bool {
        p == b"*" || redis_impl(p, s, &mut false, 0)
    }

    #[test]
    fn basics() {
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(!matches("a", ""));
        assert!(matches("*", ""));
        assert!(!matches("**", ""));
        assert!(!matches("?*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("a*", "a"));
        assert!(matches("a**", "a"));
        assert!(matches("*a", "a"));
        assert!(matches("*a*", "bab"));
        assert!(!matches("*a*", "bbb"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("a*c", "ac"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("user:*:name", "user:1:2:name"));
    }

    #[test]
    fn brackets() {
        assert!(matches("[abc]", "b"));
        assert!(!matches("[abc]", "d"));
        assert!(matches("[a-c]x", "bx"));
        assert!(matches("[c-a]x", "bx"));
        assert!(!matches("[c-a]x", "dx"));
        assert!(matches("[^a]", "b"));
        assert!(!matches("[^a]", "a"));
        assert!(matches("[^a-c]", "d"));
        assert!(!matches("[^a-c]", "b"));
        assert!(matches(r"[\]]", "]"));
        assert!(matches(r"[\-a]", "-"));
        assert!(!matches(r"[\-a]", "b"));
        assert!(matches(r"[a\-c]", "-"));
        assert!(!matches(r"[a\-c]", "b"));
        assert!(matches("[a-]", "^")); // `]`..=`a` range, unterminated
        assert!(!matches("[a-]", "-"));
        // Empty set: `]` right after `[` closes it, and nothing matches.
        assert!(!matches("[]a]", "a"));
        assert!(!matches("[]a]", "]a]"));
        assert!(matches("[^]a]", "xa]"));
        assert!(matches("[-a]", "-"));
        assert!(matches("[a-]x", "x"));
    }

    #[test]
    fn unterminated_brackets() {
        assert!(matches("[ab", "a"));
        assert!(matches("[ab", "b"));
        assert!(!matches("[ab", "ab"));
        assert!(!matches("[", "["));
        assert!(!matches("[", "a"));
        assert!(matches("[^", "a"));
        assert!(matches("[^", "^"));
        assert!(!matches("[^", "ab"));
        assert!(matches("x[", "x") == redis_scan_match(b"x[", b"x"));
        assert!(matches(r"[\", "\\"));
        assert!(matches(r"[\]", "]"));
        assert!(!matches(r"[\]", "\\"));
    }

    #[test]
    fn escapes() {
        assert!(matches(r"\*", "*"));
        assert!(!matches(r"\*", "a"));
        assert!(matches(r"\?", "?"));
        assert!(matches(r"\[a]", "[a]"));
        assert!(matches(r"\\", "\\"));
        assert!(matches(r"a\", "a\\")); // a lone trailing backslash is literal
        assert!(matches(r"\a", "a"));
    }

    #[test]
    fn signed_char_ranges() {
        // 0x80.. sorts below 0x00 as a signed char: [\x01-é] (é = c3 a9) is -61..=1.
        assert!(Pattern::from_bytes(b"[\x01-\xc3]").is_match_bytes(b"\x00"));
        assert!(Pattern::from_bytes(b"[\x01-\xc3]").is_match_bytes(b"\xff"));
        assert!(!Pattern::from_bytes(b"[\x01-\xc3]").is_match_bytes(b"a"));
        assert!(Pattern::from_bytes(b"[\x80-\xff]").is_match_bytes(b"\xa9"));
        assert!(!Pattern::from_bytes(b"[\x80-\xff]").is_match_bytes(b"a"));
        // `?` is one byte, not one character.
        assert!(!matches("?", "é"));
        assert!(matches("??", "é"));
    }

    #[test]
    fn nesting_guard() {
        let key = "a".repeat(2000);
        let ok = "*a".repeat(1000) + "*";
        assert!(matches(&ok, &key));
        let too_many = "*a".repeat(1001);
        assert!(!matches(&too_many, &key));
        assert_eq!(
            matches(&too_many, &key),
            redis_scan_match(too_many.as_bytes(), key.as_bytes())
        );
    }

    #[test]
    fn no_exponential_blowup() {
        let key = "a".repeat(10_000);
        let pattern = "*a".repeat(30) + "b";
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &key));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix(""), "");
        assert_eq!(literal_prefix("abc"), "abc");
        assert_eq!(literal_prefix("ab?c"), "ab");
        assert_eq!(literal_prefix("ab[c]"), "ab");
        assert_eq!(literal_prefix(r"a\\b*"), r"a\b");
        assert_eq!(literal_prefix(r"é\é*"), "éé");
    }

    #[test]
    fn escape_examples() {
        assert_eq!(escape(""), "");
        assert_eq!(escape("plain:key"), "plain:key");
        assert_eq!(escape("[^a-z]"), r"\[^a-z\]");
        assert!(matches(&escape("[^a-z]"), "[^a-z]"));
    }

    fn glob_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(b"ab*?[]^-\\\x80\xff".to_vec()), 0..12)
    }

    fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(b"ab*?[]^-\\\x00\x80\xff".to_vec()),
            0..10,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn escaped_matches_only_itself(s in ".*", t in ".*") {
            let pattern = escape(&s);
            prop_assert!(matches(&pattern, &s));
            prop_assert_eq!(matches(&pattern, &t), s == t);
            prop_assert_eq!(literal_prefix(&pattern), s);
        }

        #[test]
        fn escaped_glob_chars_match_only_themselves(
            s in "[ab*?\\[\\]\\\\^-]{0,8}",
            t in "[ab*?\\[\\]\\\\^-]{0,8}",
        ) {
            prop_assert_eq!(matches(&escape(&s), &t), s == t);
        }

        #[test]
        fn agrees_with_redis(p in glob_bytes(), s in key_bytes()) {
            prop_assert_eq!(
                Pattern::from_bytes(&p).is_match_bytes(&s),
                redis_scan_match(&p, &s),
                "pattern {:?} key {:?}",
                String::from_utf8_lossy(&p),
                String::from_utf8_lossy(&s)
            );
        }

        #[test]
        fn prefix_is_a_prefix_of_every_match(p in glob_bytes(), s in key_bytes()) {
            let pattern = Pattern::from_bytes(&p);
            if pattern.is_match_bytes(&s) && p != b"*" {
                let prefix: Vec<u8> = pattern
                    .tokens
                    .iter()
                    .map_while(|t| match t { Token::Byte(b) => Some(*b), _ => None })
                    .collect();
                prop_assert!(s.starts_with(&prefix));
            }
        }
    }
}
