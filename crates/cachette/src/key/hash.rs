//! The hash of a default key's arguments: [`ArgsHasher`] and the canonical encoding the
//! [module documentation](super) specifies (a serde serializer feeding xxh3-128).

use std::fmt::{self, Display};

use serde::ser::{self, Serialize};
use xxhash_rust::xxh3::{xxh3_128, Xxh3Default};

use super::{default_key, push_hex};
use crate::error::{Error, ErrorKind};

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
/// the canonical encoding described in the [module documentation](crate::key).
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

    /// `prefix` followed by [`default_key`](Self::default_key), in one allocation: the full
    /// key of a decorated call, under its manager's prefix (what `#[cached]` expands into).
    ///
    /// # Errors
    /// As [`finish`](Self::finish).
    #[doc(hidden)]
    pub fn prefixed_default_key(
        &self,
        prefix: &str,
        module: &str,
        owner: Option<&str>,
        function: &str,
    ) -> Result<String, Error> {
        let hash = self.finish()?;
        let mut out =
            String::with_capacity(prefix.len() + super::default_key_len(module, owner, function));
        out.push_str(prefix);
        super::push_default_key(&mut out, module, owner, function, hash);
        Ok(out)
    }

    /// [`prefixed_default_key`](Self::prefixed_default_key) with the key's stem (the module
    /// path with `.` for `::`, then `:`) built already: what `#[cached]` expands into, with
    /// the stem its function's site keeps (`FnSite::key_stem`).
    ///
    /// # Errors
    /// As [`finish`](Self::finish).
    #[doc(hidden)]
    pub fn prefixed_stem_key(
        &self,
        prefix: &str,
        stem: &str,
        owner: Option<&str>,
        function: &str,
    ) -> Result<String, Error> {
        let hash = self.finish()?;
        let mut out = String::with_capacity(
            prefix.len() + stem.len() + super::stem_rest_len(owner, function),
        );
        out.push_str(prefix);
        out.push_str(stem);
        super::push_after_stem(&mut out, owner, function, hash);
        Ok(out)
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
