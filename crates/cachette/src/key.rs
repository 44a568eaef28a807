//! Stable cache keys: the default key of a decorated function, the hash of its arguments, and
//! the escaping of argument values in key templates.
//!
//! # The default key (format version 1)
//!
//! `#[cached]` functions without `key`/`key_builder` store their value under
//!
//! ```text
//! {prefix}{module}:{function}:{args_hash}          free functions (and associated fns)
//! {prefix}{module}:{Type}.{method}:{args_hash}     methods (a `self` receiver)
//! ```
//!
//! - `{prefix}` is the manager's key prefix (default `cache:`), added by the manager.
//! - `{module}` is `module_path!()` of the function with `::` written as `.`
//!   (`my_app::services::user` → `my_app.services.user`, like the spec's `services.user`), so
//!   that `:` only ever separates the three fields.
//! - `{Type}` is the last path segment of `std::any::type_name::<Self>()` without generic
//!   arguments (`my_app::UserService<Pg>` → `UserService`), see [`type_label`].
//! - `{args_hash}` is 32 lowercase hex digits: the 128-bit **xxh3** hash ([`ArgsHasher`]) of
//!   the canonical encoding below of every argument that is not skipped, in declaration order
//!   (`self` never takes part). A function without arguments hashes the empty input:
//!   `99aa06d3014798d86001c324468d497f`.
//!
//! For example `#[cached] async fn get_user(user_id: u64)` in module `my_app::users`, called
//! with `42`, reads and writes `cache:my_app.users:get_user:a81db0d4a908caac9ed4ed07560b0030`
//! (pinned by the golden tests of this module and of the macros).
//!
//! The format is versioned ([`KEY_FORMAT_VERSION`]): every change to it, or to the encoding,
//! changes keys and therefore silently empties caches, so it only changes in a release that
//! announces it and bumps the version.
//!
//! # The canonical encoding of arguments
//!
//! Every argument is serialized with `serde` into a byte stream that is fed to xxh3. The
//! stream is the same on every platform (little-endian, fixed widths) and does not depend on
//! the Rust types beyond what serde shows, so equal values hash equally:
//!
//! | serde data | bytes |
//! |---|---|
//! | `()`, unit struct | `00` |
//! | `false` / `true` | `01` / `02` |
//! | any integer `i8`..`i128`, `u8`..`u128` ≤ `i128::MAX` | `03` + the value as `i128`, 16 bytes LE (so `1u8` and `1i64` hash alike) |
//! | `u128` > `i128::MAX` | `04` + 16 bytes LE |
//! | `f32`, `f64` | `05` + the value as `f64`, 8 bytes LE; `-0.0` is written as `0.0` and every NaN as `f64::NAN` |
//! | `str`, `char` | `06` + byte length as `u64` LE + UTF-8 bytes |
//! | bytes | `07` + length as `u64` LE + bytes |
//! | `None` / `Some(v)` | `08` / `09` + v |
//! | sequence, tuple, tuple struct | `0a` + each element + `0b` |
//! | map | `0c` + entry count as `u64` LE + the wrapping sum (mod 2¹²⁸) of the xxh3-128 of each entry's `key ++ value` encoding, 16 bytes LE: **independent of iteration order**, so a `HashMap` hashes the same in every process |
//! | struct | `0d` + for each serialized field: its name as a `str` + its value; then `0b` |
//! | unit variant | `0e` + variant name as a `str` |
//! | newtype variant | `0f` + variant name as a `str` + value |
//! | tuple variant | `10` + variant name as a `str` + each element + `0b` |
//! | struct variant | `11` + variant name as a `str` + fields as for a struct + `0b` |
//!
//! Newtype structs are transparent; struct and enum *names* are not part of the encoding,
//! field and variant names are. Every encoding is self-delimiting, so arguments are simply
//! concatenated. The serializer reports itself as human-readable (types such as IP addresses
//! serialize as text, as in JSON).
//!
//! The table is all another service needs to compute the same keys; in Python, with the
//! `xxhash` package:
//!
//! ```text
//! import struct, xxhash
//! def int_(v): return b"\x03" + v.to_bytes(16, "little", signed=True)
//! def str_(s): b = s.encode(); return b"\x06" + struct.pack("<Q", len(b)) + b
//! xxhash.xxh3_128_hexdigest(int_(42))       # 'a81db0d4a908caac9ed4ed07560b0030'
//! ```
//!
//! **Sets**: serde shows a `HashSet` as a plain sequence in its (per-process random) iteration
//! order, which cannot be told apart from a `Vec`; pass a `BTreeSet`, a sorted `Vec`, or use a
//! key template or `key_builder` for such arguments.
//!
//! # Key templates
//!
//! `key = "user:{user_id}"` substitutes arguments with their `Display` form, percent-escaping
//! `%` (as `%25`) and `:` (as `%3A`) so that a value can never add a field to the key
//! ([`escape_value`]). In eviction *patterns*, substituted values are additionally escaped for
//! Redis globs ([`escape_pattern_value`]), so a user id of `*` matches only the literal key.
//! The literal parts of a template are used as written.
//!
//! # Examples
//!
//! Computing the key of a `#[cached]` function elsewhere (to read or evict it):
//!
//! ```
//! use cachette::key::DefaultKey;
//!
//! let key = DefaultKey::function("my_app::users", "get_user").arg(&42u64).build()?;
//! assert_eq!(key, "my_app.users:get_user:a81db0d4a908caac9ed4ed07560b0030");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::{self, Display, Write as _};

use serde::ser::{self, Serialize};
use xxhash_rust::xxh3::{xxh3_128, Xxh3Default};

use crate::error::{Error, ErrorKind};

/// The version of the default-key format and argument encoding described in the
/// [module documentation](self). Changing either changes every generated key.
pub const KEY_FORMAT_VERSION: u32 = 1;

mod tag {
    pub(super) const UNIT: u8 = 0x00;
    pub(super) const FALSE: u8 = 0x01;
    pub(super) const TRUE: u8 = 0x02;
    pub(super) const INT: u8 = 0x03;
    pub(super) const BIG_UINT: u8 = 0x04;
    pub(super) const FLOAT: u8 = 0x05;
    pub(super) const STR: u8 = 0x06;
    pub(super) const BYTES: u8 = 0x07;
    pub(super) const NONE: u8 = 0x08;
    pub(super) const SOME: u8 = 0x09;
    pub(super) const SEQ: u8 = 0x0a;
    pub(super) const END: u8 = 0x0b;
    pub(super) const MAP: u8 = 0x0c;
    pub(super) const STRUCT: u8 = 0x0d;
    pub(super) const UNIT_VARIANT: u8 = 0x0e;
    pub(super) const NEWTYPE_VARIANT: u8 = 0x0f;
    pub(super) const TUPLE_VARIANT: u8 = 0x10;
    pub(super) const STRUCT_VARIANT: u8 = 0x11;
}

/// Hashes function arguments into the `{args_hash}` field of a default key: xxh3-128 over
/// the canonical encoding described in the [module documentation](self).
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use cachette::key::ArgsHasher;
///
/// let mut a = ArgsHasher::new();
/// a.arg(&42u64).arg("en");
/// let mut b = ArgsHasher::new();
/// b.arg(&42i32).arg(&String::from("en"));
/// assert_eq!(a.finish()?, b.finish()?); // integer widths and string types do not matter
///
/// // Map iteration order does not matter either.
/// let m1: HashMap<u32, &str> = (0..100).map(|i| (i, "x")).collect();
/// let m2: HashMap<u32, &str> = (0..100).rev().map(|i| (i, "x")).collect();
/// let (mut h1, mut h2) = (ArgsHasher::new(), ArgsHasher::new());
/// assert_eq!(h1.arg(&m1).finish_hex()?, h2.arg(&m2).finish_hex()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ArgsHasher {
    state: Sink,
    error: Option<KeyError>,
}

impl fmt::Debug for ArgsHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgsHasher")
            .field("failed", &self.error.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ArgsHasher {
    fn default() -> Self {
        ArgsHasher::new()
    }
}

impl ArgsHasher {
    /// A hasher that has seen no argument.
    pub fn new() -> Self {
        ArgsHasher {
            state: Sink::new(),
            error: None,
        }
    }

    /// Adds one argument. A `Serialize` implementation that fails makes [`finish`](Self::finish)
    /// fail (the decorated function then runs uncached).
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) -> &mut Self {
        if self.error.is_none() {
            if let Err(e) = value.serialize(&mut Encoder {
                state: &mut self.state,
            }) {
                self.error = Some(e);
            }
        }
        self
    }

    /// The 128-bit hash of the arguments added so far.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] when an argument's `Serialize` implementation failed.
    pub fn finish(&self) -> Result<u128, Error> {
        match &self.error {
            Some(e) => Err(Error::new(
                ErrorKind::Encode,
                format!("cannot hash a function argument into a cache key: {e}"),
            )),
            None => Ok(self.state.digest128()),
        }
    }

    /// The default key of function `function` (of type `owner`, for a method) defined in
    /// `module`, with the arguments added so far: see [`default_key`].
    ///
    /// # Errors
    /// As [`finish`](Self::finish).
    pub fn default_key(
        &self,
        module: &str,
        owner: Option<&str>,
        function: &str,
    ) -> Result<String, Error> {
        Ok(default_key(module, owner, function, self.finish()?))
    }

    /// [`finish`](Self::finish) as 32 lowercase hex digits.
    ///
    /// # Errors
    /// As [`finish`](Self::finish).
    pub fn finish_hex(&self) -> Result<String, Error> {
        let mut out = String::with_capacity(32);
        push_hex(&mut out, self.finish()?);
        Ok(out)
    }
}

/// The bound on arguments of the default key: any `serde::Serialize` type.
///
/// Exists only to give a clear compile error when an argument of a `#[cached]` function
/// cannot be serialized.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "this argument is hashed into the default cache key",
    note = "derive or implement `serde::Serialize` for it, leave the argument out of the key with `skip(arg_name)`, or name the key with `key = \"...\"`"
)]
pub trait KeyArg: Serialize {}

impl<T: Serialize + ?Sized> KeyArg for T {}

/// Appends `value` as 32 lowercase hex digits.
fn push_hex(out: &mut String, value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (i, b) in value.to_be_bytes().into_iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(b >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    if let Ok(hex) = std::str::from_utf8(&hex) {
        out.push_str(hex);
    }
}

/// Where the encoding goes: a small inline buffer hashed in one shot, or, once the encoding
/// outgrows it, a streaming xxh3 state. Both give the xxh3-128 of the same byte stream.
struct Sink {
    buf: [u8; Sink::INLINE],
    len: usize,
    stream: Option<Box<Xxh3Default>>,
}

impl Sink {
    const INLINE: usize = 128;

    fn new() -> Self {
        Sink {
            buf: [0; Sink::INLINE],
            len: 0,
            stream: None,
        }
    }

    #[inline]
    fn update(&mut self, bytes: &[u8]) {
        if let Some(stream) = &mut self.stream {
            stream.update(bytes);
            return;
        }
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        } else {
            let mut stream = Box::new(Xxh3Default::new());
            stream.update(&self.buf[..self.len]);
            stream.update(bytes);
            self.stream = Some(stream);
        }
    }

    fn digest128(&self) -> u128 {
        match &self.stream {
            Some(stream) => stream.digest128(),
            None => xxh3_128(&self.buf[..self.len]),
        }
    }
}

/// The `{Type}` label of a method's default key: the last path segment of
/// `std::any::type_name::<T>()`, without generic arguments or leading `&`.
///
/// `type_name` is the compiler's description of the type; for a named type it has always been
/// its path, so the label is the type's own name.
///
/// # Examples
///
/// ```
/// struct UserService<D>(D);
/// assert_eq!(cachette::key::type_label::<UserService<Vec<u8>>>(), "UserService");
/// assert_eq!(cachette::key::type_label::<&String>(), "String");
/// ```
pub fn type_label<T: ?Sized>() -> &'static str {
    label_of(std::any::type_name::<T>())
}

fn label_of(name: &'static str) -> &'static str {
    let base = match name.find('<') {
        Some(i) => &name[..i],
        None => name,
    };
    let last = match base.rfind("::") {
        Some(i) => &base[i + 2..],
        None => base,
    };
    last.trim_start_matches(['&', '*'])
        .trim_start_matches("mut ")
}

/// Builds the default key of a decorated function from its parts; what `#[cached]` computes,
/// for use outside the function (to read, write or evict its entries).
///
/// # Examples
///
/// ```
/// use cachette::key::DefaultKey;
///
/// // #[cached] async fn get_user(user_id: u64, lang: &str) in module my_app::users:
/// let key = DefaultKey::function("my_app::users", "get_user").arg(&7u64).arg("en").build()?;
/// assert!(key.starts_with("my_app.users:get_user:"));
///
/// // #[cached] async fn count(&self) on my_app::users::UserService:
/// let key = DefaultKey::method("my_app::users", "UserService", "count").build()?;
/// assert_eq!(key, "my_app.users:UserService.count:99aa06d3014798d86001c324468d497f");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct DefaultKey<'a> {
    module: &'a str,
    owner: Option<&'a str>,
    function: &'a str,
    args: ArgsHasher,
}

impl<'a> DefaultKey<'a> {
    /// The key of free function `function` defined in `module` (a `module_path!()`).
    pub fn function(module: &'a str, function: &'a str) -> Self {
        DefaultKey {
            module,
            owner: None,
            function,
            args: ArgsHasher::new(),
        }
    }

    /// The key of method `method` of type `owner` (its [`type_label`]) defined in `module`.
    pub fn method(module: &'a str, owner: &'a str, method: &'a str) -> Self {
        DefaultKey {
            module,
            owner: Some(owner),
            function: method,
            args: ArgsHasher::new(),
        }
    }

    /// Adds the next (non-skipped) argument.
    pub fn arg<T: KeyArg + ?Sized>(mut self, value: &T) -> Self {
        self.args.arg(value);
        self
    }

    /// The key, without the manager's prefix.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] when an argument's `Serialize` implementation failed.
    pub fn build(&self) -> Result<String, Error> {
        Ok(default_key(
            self.module,
            self.owner,
            self.function,
            self.args.finish()?,
        ))
    }
}

/// Formats a default key from its fields (see the [module documentation](self)).
pub fn default_key(module: &str, owner: Option<&str>, function: &str, hash: u128) -> String {
    let mut out = String::with_capacity(
        module.len() + owner.map_or(0, |o| o.len() + 1) + function.len() + 34,
    );
    // `::` → `.` (module paths are identifiers joined by `::`).
    let bytes = module.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i + 1 < bytes.len() {
        if bytes[i] == b':' && bytes[i + 1] == b':' {
            out.push_str(&module[start..i]);
            out.push('.');
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&module[start..]);
    out.push(':');
    if let Some(owner) = owner {
        out.push_str(owner);
        out.push('.');
    }
    out.push_str(function);
    out.push(':');
    push_hex(&mut out, hash);
    out
}

/// Appends `value` to `out`, percent-escaping `%` and `:` (the escaping of template values in
/// keys).
///
/// # Examples
///
/// ```
/// let mut key = String::from("user:");
/// cachette::key::escape_value("a:b%c", &mut key);
/// assert_eq!(key, "user:a%3Ab%25c");
/// ```
pub fn escape_value(value: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'%' => "%25",
            b':' => "%3A",
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

// ---- the canonical serializer -------------------------------------------------------------

/// Why an argument could not be hashed (a failing `Serialize` implementation).
#[derive(Debug)]
struct KeyError(String);

impl Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl ser::Error for KeyError {
    fn custom<T: Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }
}

/// Feeds the canonical encoding of one value into a sink.
struct Encoder<'a> {
    state: &'a mut Sink,
}

impl Encoder<'_> {
    fn byte(&mut self, b: u8) {
        self.state.update(&[b]);
    }

    fn int(&mut self, v: i128) {
        let mut buf = [0u8; 17];
        buf[0] = tag::INT;
        buf[1..].copy_from_slice(&v.to_le_bytes());
        self.state.update(&buf);
    }

    fn len_prefixed(&mut self, t: u8, bytes: &[u8]) {
        let mut head = [0u8; 9];
        head[0] = t;
        head[1..].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.state.update(&head);
        self.state.update(bytes);
    }

    fn str(&mut self, s: &str) {
        self.len_prefixed(tag::STR, s.as_bytes());
    }
}

type Res = Result<(), KeyError>;

impl<'s> ser::Serializer for &'s mut Encoder<'_> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapEncoder<'s>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Res {
        self.byte(if v { tag::TRUE } else { tag::FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Res {
        self.int(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Res {
        self.int(i128::from(v));
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Res {
        match i128::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => {
                let mut buf = [0u8; 17];
                buf[0] = tag::BIG_UINT;
                buf[1..].copy_from_slice(&v.to_le_bytes());
                self.state.update(&buf);
            }
        }
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Res {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Res {
        let v = if v.is_nan() {
            f64::NAN
        } else if v == 0.0 {
            0.0
        } else {
            v
        };
        let mut buf = [0u8; 9];
        buf[0] = tag::FLOAT;
        buf[1..].copy_from_slice(&v.to_bits().to_le_bytes());
        self.state.update(&buf);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Res {
        let mut buf = [0u8; 4];
        self.str(v.encode_utf8(&mut buf));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Res {
        self.str(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Res {
        self.len_prefixed(tag::BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> Res {
        self.byte(tag::NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        self.byte(tag::SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        self.byte(tag::UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        self.byte(tag::UNIT);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Res {
        self.byte(tag::UNIT_VARIANT);
        self.str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Res {
        self.byte(tag::NEWTYPE_VARIANT);
        self.str(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, KeyError> {
        self.byte(tag::SEQ);
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, KeyError> {
        self.byte(tag::SEQ);
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, KeyError> {
        self.byte(tag::SEQ);
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, KeyError> {
        self.byte(tag::TUPLE_VARIANT);
        self.str(variant);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapEncoder<'s>, KeyError> {
        Ok(MapEncoder {
            state: self.state,
            count: 0,
            sum: 0,
            entry: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, KeyError> {
        self.byte(tag::STRUCT);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, KeyError> {
        self.byte(tag::STRUCT_VARIANT);
        self.str(variant);
        Ok(self)
    }
}

impl ser::SerializeSeq for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.byte(tag::END);
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.byte(tag::END);
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.byte(tag::END);
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.byte(tag::END);
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
        self.str(key);
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.byte(tag::END);
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
        self.str(key);
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.byte(tag::END);
        Ok(())
    }
}

/// Hashes each map entry on its own and sums the entry hashes, so the result does not depend
/// on iteration order.
struct MapEncoder<'a> {
    state: &'a mut Sink,
    count: u64,
    sum: u128,
    /// The entry being encoded: its key has been written, its value not yet.
    entry: Option<Sink>,
}

impl MapEncoder<'_> {
    fn close_entry(&mut self, entry: &Sink) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(entry.digest128());
    }
}

impl ser::SerializeMap for MapEncoder<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        let mut entry = Sink::new();
        key.serialize(&mut Encoder { state: &mut entry })?;
        self.entry = Some(entry);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        let Some(mut entry) = self.entry.take() else {
            return Err(KeyError("map value serialized before its key".to_owned()));
        };
        value.serialize(&mut Encoder { state: &mut entry })?;
        self.close_entry(&entry);
        Ok(())
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Res {
        let mut entry = Sink::new();
        key.serialize(&mut Encoder { state: &mut entry })?;
        value.serialize(&mut Encoder { state: &mut entry })?;
        self.close_entry(&entry);
        Ok(())
    }

    fn end(self) -> Res {
        if self.entry.is_some() {
            return Err(KeyError("map key serialized without a value".to_owned()));
        }
        let mut buf = [0u8; 25];
        buf[0] = tag::MAP;
        buf[1..9].copy_from_slice(&self.count.to_le_bytes());
        buf[9..].copy_from_slice(&self.sum.to_le_bytes());
        self.state.update(&buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;

    use super::*;

    /// The hex hash of the given arguments.
    macro_rules! hx {
        ($($arg:expr),* $(,)?) => {{
            #[allow(unused_mut)]
            let mut h = ArgsHasher::new();
            $(h.arg($arg);)*
            h.finish_hex().unwrap()
        }};
    }

    fn hex_of_bytes(bytes: &[u8]) -> String {
        format!("{:032x}", xxh3_128(bytes))
    }

    #[test]
    fn streaming_equals_one_shot_of_the_documented_bytes() {
        // 42u64 → 03 + i128 LE
        let mut bytes = vec![0x03];
        bytes.extend_from_slice(&42i128.to_le_bytes());
        assert_eq!(hx!(&42u64), hex_of_bytes(&bytes));
        // "en" → 06 + len u64 LE + bytes
        let mut bytes = vec![0x06];
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.extend_from_slice(b"en");
        assert_eq!(hx!("en"), hex_of_bytes(&bytes));
        // (1, true) as a tuple → 0a 03.. 02 0b ; as two args → 03.. 02
        let mut tuple = vec![0x0a, 0x03];
        tuple.extend_from_slice(&1i128.to_le_bytes());
        tuple.extend_from_slice(&[0x02, 0x0b]);
        assert_eq!(hx!(&(1u8, true)), hex_of_bytes(&tuple));
        assert_eq!(hx!(), hex_of_bytes(b""));
        // Past the inline buffer, the stream continues: still the hash of the same bytes.
        let long = "x".repeat(1000);
        let mut bytes = vec![0x03];
        bytes.extend_from_slice(&7i128.to_le_bytes());
        bytes.push(0x06);
        bytes.extend_from_slice(&1000u64.to_le_bytes());
        bytes.extend_from_slice(long.as_bytes());
        assert_eq!(hx!(&7u8, long.as_str()), hex_of_bytes(&bytes));
        for len in [100, 110, 111, 112, 127, 128, 129, 300] {
            let s = "y".repeat(len);
            let mut bytes = vec![0x06];
            bytes.extend_from_slice(&(len as u64).to_le_bytes());
            bytes.extend_from_slice(s.as_bytes());
            assert_eq!(hx!(s.as_str()), hex_of_bytes(&bytes), "{len}");
        }
    }

    /// Golden values: these must never change within format version 1.
    #[test]
    fn golden_hashes() {
        assert_eq!(KEY_FORMAT_VERSION, 1);
        assert_eq!(hx!(), "99aa06d3014798d86001c324468d497f");
        assert_eq!(hx!(&42u64), "a81db0d4a908caac9ed4ed07560b0030");
        assert_eq!(hx!(&1u64, &false), "19c8af124f1a32f34ef566eb56a9fbc5");
        assert_eq!(hx!("ada@example.com"), "eb0e1e0632312a9f76b238a5fe4cd0f8");
        #[derive(Serialize)]
        struct Filter {
            page: u32,
            tags: Vec<&'static str>,
            min: Option<f64>,
        }
        assert_eq!(
            hx!(&Filter {
                page: 2,
                tags: vec!["a", "b"],
                min: Some(1.5)
            }),
            "e7484823d4423f1d7fc6305feace0707"
        );
    }

    #[test]
    fn equal_values_hash_equally() {
        assert_eq!(hx!(&1u8), hx!(&1i64));
        assert_eq!(hx!(&1u128), hx!(&1i32));
        assert_eq!(hx!("x"), hx!(&'x'));
        assert_eq!(hx!(&String::from("x")), hx!(&"x"));
        assert_eq!(hx!(&0.0f64), hx!(&-0.0f64));
        assert_eq!(hx!(&f64::NAN), hx!(&-f64::NAN));
        assert_eq!(hx!(&1.5f32), hx!(&1.5f64));
        assert_eq!(hx!(&vec![1, 2]), hx!(&[1u8, 2]));
        // Newtypes are transparent.
        #[derive(Serialize)]
        struct UserId(u64);
        assert_eq!(hx!(&UserId(5)), hx!(&5u64));
    }

    #[test]
    fn distinct_values_hash_differently() {
        let all = [
            hx!(),
            hx!(&()),
            hx!(&None::<u8>),
            hx!(&Some(())),
            hx!(&0u8),
            hx!(&u128::MAX),
            hx!(&-1i8),
            hx!(&false),
            hx!(""),
            hx!(&Vec::<u8>::new()),
            hx!(&vec![Vec::<u8>::new()]),
            hx!(&(1u8, 2u8)),
            hx!(&1u8, &2u8),
            hx!(&("ab", "c")),
            hx!(&("a", "bc")),
            hx!(&HashMap::<u8, u8>::new()),
            hx!(&BTreeMap::from([(1u8, 2u8)])),
            hx!(&BTreeMap::from([(2u8, 1u8)])),
            hx!(serde_bytes_like()),
        ];
        let mut unique = all.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "{all:#?}");
    }

    fn serde_bytes_like() -> &'static str {
        "\u{0}"
    }

    #[test]
    fn maps_are_order_independent() {
        let a: HashMap<String, Vec<u32>> =
            (0..50).map(|i| (format!("k{i}"), vec![i, i * 2])).collect();
        let b: HashMap<String, Vec<u32>> = (0..50)
            .rev()
            .map(|i| (format!("k{i}"), vec![i, i * 2]))
            .collect();
        let c: BTreeMap<String, Vec<u32>> = a.clone().into_iter().collect();
        let ha = hx!(&a);
        assert_eq!(ha, hx!(&b));
        assert_eq!(ha, hx!(&c));
        // The value still matters.
        let mut d = a.clone();
        d.insert("k0".into(), vec![9]);
        assert_ne!(ha, hx!(&d));
    }

    #[test]
    fn enums_and_structs() {
        #[derive(Serialize)]
        enum Role {
            Admin,
            Scoped(u32),
            Pair(u8, u8),
            Named { level: u8 },
        }
        let variants = [
            hx!(&Role::Admin),
            hx!(&Role::Scoped(1)),
            hx!(&Role::Pair(1, 2)),
            hx!(&Role::Named { level: 1 }),
        ];
        let mut unique = variants.to_vec();
        unique.dedup();
        assert_eq!(unique.len(), 4);

        #[derive(Serialize)]
        struct A {
            x: u8,
        }
        #[derive(Serialize)]
        struct B {
            y: u8,
        }
        assert_ne!(hx!(&A { x: 1 }), hx!(&B { y: 1 }));
    }

    #[test]
    fn failing_serialize_is_an_encode_error() {
        struct Bad;
        impl Serialize for Bad {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("nope"))
            }
        }
        let mut h = ArgsHasher::new();
        h.arg(&1u8).arg(&Bad).arg(&2u8);
        let e = h.finish().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Encode);
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn golden_default_keys() {
        assert_eq!(
            DefaultKey::function("my_app::users", "get_user")
                .arg(&42u64)
                .build()
                .unwrap(),
            "my_app.users:get_user:a81db0d4a908caac9ed4ed07560b0030"
        );
        assert_eq!(
            DefaultKey::method("my_app::users", "UserService", "count")
                .build()
                .unwrap(),
            "my_app.users:UserService.count:99aa06d3014798d86001c324468d497f"
        );
        assert_eq!(
            default_key("top", None, "f", 0xff),
            "top:f:000000000000000000000000000000ff"
        );
    }

    #[test]
    fn type_labels() {
        struct Svc<T>(T);
        assert_eq!(type_label::<Svc<HashMap<u8, u8>>>(), "Svc");
        assert_eq!(type_label::<u64>(), "u64");
        assert_eq!(type_label::<&mut String>(), "String");
        assert_eq!(label_of("a::b::C<d::E>"), "C");
        assert_eq!(label_of("&a::C"), "C");
    }

    #[test]
    fn template_escaping() {
        let mut k = KeyTemplate::key(0);
        k.lit("u:{x}:").value(&"%:*").value(&7);
        assert_eq!(k.finish(), "u:{x}:%25%3A*7");
        let mut p = KeyTemplate::pattern(0);
        p.lit("u:*:").value(&r"a*b?[c]\d%:");
        let p = p.finish();
        assert_eq!(p, r"u:*:a\*b\?\[c\]\\d%25%3A");
        assert!(crate::glob::matches(&p, r"u:x:a*b?[c]\d%25%3A"));
        assert!(!crate::glob::matches(&p, r"u:x:aXb?[c]\d%25%3A"));
    }

    fn unescape(part: &str) -> String {
        part.replace("%3A", ":").replace("%25", "%")
    }

    /// A value made of the characters escaping cares about, and any other.
    fn value() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![r"[:%*?\\\[\]^a3-]{0,6}", ".{0,6}"]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// `user:{a}:{b}`: the key splits on `:` into exactly its three parts and each value
        /// comes back unescaped, so distinct values never share a key.
        #[test]
        fn template_values_are_recoverable(a in value(), b in value()) {
            let mut key = KeyTemplate::key(8);
            key.lit("user:").value(&a).lit(":").value(&b);
            let key = key.finish();
            let parts: Vec<&str> = key.split(':').collect();
            proptest::prop_assert_eq!(parts.len(), 3, "{}", key);
            proptest::prop_assert_eq!(unescape(parts[1]), a);
            proptest::prop_assert_eq!(unescape(parts[2]), b);
        }

        /// The eviction pattern of `user:{a}:*` matches the keys of `user:{a}:{anything}` and
        /// no key built from another value; checked with the Redis-faithful matcher.
        #[test]
        fn template_patterns_match_their_own_values_only(
            a in value(), other in value(), rest in value(),
        ) {
            let mut pattern = KeyTemplate::pattern(8);
            pattern.lit("user:").value(&a).lit(":*");
            let pattern = pattern.finish();
            let key_of = |v: &str| {
                let mut k = KeyTemplate::key(8);
                k.lit("user:").value(v).lit(":").value(&rest);
                k.finish()
            };
            proptest::prop_assert!(crate::glob::matches(&pattern, &key_of(&a)), "{}", pattern);
            proptest::prop_assert_eq!(
                crate::glob::matches(&pattern, &key_of(&other)),
                a == other,
                "{} vs {}", pattern, key_of(&other)
            );
        }
    }
}
