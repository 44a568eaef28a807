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
//! `%` (as `%25`), `:` (as `%3A`), `{` (as `%7B`) and `}` (as `%7D`) so that a value can never
//! add a field to the key nor make a hash tag ([`escape_value`]). In eviction *patterns*, substituted values are additionally escaped for
//! Redis globs ([`escape_pattern_value`]), so a user id of `*` matches only the literal key.
//! The literal parts of a template are used as written; `{{` and `}}` are a literal `{` and `}`.
//!
//! # Hash tags (Redis Cluster)
//!
//! Redis Cluster puts a key in the slot of its *hash tag*, the text between its first `{` and
//! the first `}` after it, so keys with one tag share a node (and a pipeline). In a template,
//! write the tag with literal braces: `key = "user:{{{user_id}}}:posts"` stores `user:{42}:posts`,
//! in the same slot as `user:{42}:profile`; a constant tag is `"{{tenant-a}}:config"`. Since
//! only the first `{` counts, the macros refuse at compile time what would not do what it
//! seems to: a second tag, nested or unpaired literal braces, an empty tag `{{}}`, and the
//! ambiguous `{{user_id}}` (the literal text `{user_id}`, not the value) when `user_id` is an
//! argument. Values never contribute braces (they are escaped), and the manager's key prefix
//! comes first, so a prefix with a `{` of its own takes precedence. [`slot`] tells a key's
//! slot; [`companion_key`] describes the lease and metadata keys kept beside a value.
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

use crate::error::Error;

/// The version of the default-key format and argument encoding described in the
/// [module documentation](self). Changing either changes every generated key.
pub const KEY_FORMAT_VERSION: u32 = 1;

mod hash;
mod slot;
mod template;

pub use hash::{ArgsHasher, KeyArg};
pub use slot::{companion_key, has_hash_tag, slot, slot_tag, SLOTS};
pub use template::{escape_pattern_value, escape_value, KeyTemplate};

/// Appends `value` as 32 lowercase hex digits.
fn push_hex(out: &mut String, value: u128) {
    let mut hex = [0u8; 32];
    hex[..16].copy_from_slice(&hex16((value >> 64) as u64));
    hex[16..].copy_from_slice(&hex16(value as u64));
    if let Ok(hex) = std::str::from_utf8(&hex) {
        out.push_str(hex);
    }
}

/// The 16 lowercase hex digits of `x`, most significant first, eight at a time: every nibble
/// spread into a byte of its own, then each byte turned into its ASCII digit without a table
/// or a branch.
fn hex16(x: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&ascii_digits(spread_nibbles((x >> 32) as u32)).to_be_bytes());
    out[8..].copy_from_slice(&ascii_digits(spread_nibbles(x as u32)).to_be_bytes());
    out
}

/// The 8 nibbles of `x`, one per byte, in the same order (the most significant nibble in
/// the most significant byte).
fn spread_nibbles(x: u32) -> u64 {
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f
}

/// Every byte of `x` (a nibble, 0 to 15) as its lowercase hex digit: `'0' + n`, plus the gap
/// from `'9' + 1` to `'a'` where `n >= 10` (no byte carries into the next).
fn ascii_digits(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    x + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'0' - 10)
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
    /// [`ErrorKind::Encode`](crate::ErrorKind::Encode) when an argument's `Serialize` implementation failed.
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
    let mut out = String::with_capacity(default_key_len(module, owner, function));
    push_default_key(&mut out, module, owner, function, hash);
    out
}

/// The length of a default key (what [`push_default_key`] appends): every `::` of the
/// module path becomes one `.`.
pub(crate) fn default_key_len(module: &str, owner: Option<&str>, function: &str) -> usize {
    module.len() - module.matches("::").count() + 1 + stem_rest_len(owner, function)
}

/// The length of what [`push_after_stem`] appends.
pub(crate) fn stem_rest_len(owner: Option<&str>, function: &str) -> usize {
    owner.map_or(0, |o| o.len() + 1) + function.len() + 33
}

/// Appends the default key of these fields to `out` (after a prefix, for the full key of a
/// decorated call built in one allocation).
pub(crate) fn push_default_key(
    out: &mut String,
    module: &str,
    owner: Option<&str>,
    function: &str,
    hash: u128,
) {
    push_stem(out, module);
    push_after_stem(out, owner, function, hash);
}

/// The stem of the default keys of functions defined in `module`: the module path with `.`
/// for `::`, then `:` (what a decorated function's site keeps, built once).
pub(crate) fn key_stem(module: &str) -> String {
    let mut out = String::with_capacity(module.len() - module.matches("::").count() + 1);
    push_stem(&mut out, module);
    out
}

fn push_stem(out: &mut String, module: &str) {
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
}

/// Appends the default key's fields after its stem ([`key_stem`]).
pub(crate) fn push_after_stem(out: &mut String, owner: Option<&str>, function: &str, hash: u128) {
    if let Some(owner) = owner {
        out.push_str(owner);
        out.push('.');
    }
    out.push_str(function);
    out.push(':');
    push_hex(out, hash);
}

#[cfg(test)]
mod tests;
