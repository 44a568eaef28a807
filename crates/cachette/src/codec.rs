//! How typed values become bytes.

use serde::de::DeserializeOwned;
use serde::ser::{self, Serializer};
use serde::Serialize;

use crate::error::{Error, Result};

/// The value encoding of a manager.
///
/// The default, [`Codec::Json`], stores exactly `serde_json::to_vec(&value)` (except that a
/// value holding a NaN or infinite float is refused instead of stored with `null` for it), so
/// `redis-cli GET cache:user:1` shows JSON that any other service can parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// `serde_json` (the default).
    #[default]
    Json,
    /// MessagePack through `rmp-serde`, with field names (`to_vec_named`); smaller and faster,
    /// not human-readable. Needs the `msgpack` feature.
    #[cfg(feature = "msgpack")]
    MessagePack,
}

impl Codec {
    /// Encodes `value`; `key` only names the value in errors.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the key if the JSON
    /// codec meets a NaN or infinite `f32`/`f64` anywhere in `value` (JSON cannot represent
    /// them, and `serde_json` would write `null`); [`ErrorKind::Encode`](crate::ErrorKind::Encode)
    /// if `value`'s `Serialize` fails. MessagePack stores non-finite floats as they are.
    pub fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>> {
        match self {
            Codec::Json => {
                // As `serde_json::to_vec`, through `Finite`: serde_json writes NaN and the
                // infinities as `null`, which would silently store another value.
                let mut out = Vec::with_capacity(128);
                value
                    .serialize(Finite(&mut serde_json::Serializer::new(&mut out)))
                    .map_err(|e| {
                        if e.to_string().starts_with(NON_FINITE) {
                            Error::invalid(e.to_string()).with_key(key)
                        } else {
                            Error::encode(key, e)
                        }
                    })?;
                Ok(out)
            }
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| Error::encode(key, e)),
        }
    }

    /// Decodes bytes stored at `key`; a failure is an error of kind
    /// [`Decode`](crate::ErrorKind::Decode) naming the key.
    pub fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| Error::decode(key, e)),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| Error::decode(key, e)),
        }
    }

    /// The codec's name as used in configuration (`"json"`, `"msgpack"`).
    pub fn name(&self) -> &'static str {
        match self {
            Codec::Json => "json",
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => "msgpack",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Codec> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Codec::Json),
            #[cfg(feature = "msgpack")]
            "msgpack" | "messagepack" => Some(Codec::MessagePack),
            _ => None,
        }
    }
}

/// The start of the message of a non-finite float refused by the JSON codec.
const NON_FINITE: &str = "non-finite float";

fn non_finite<E: ser::Error>(v: impl std::fmt::Display) -> E {
    E::custom(format_args!(
        "{NON_FINITE} {v} cannot be stored as JSON (JSON has no NaN or infinity, and serde_json \
         would write null)"
    ))
}

/// A serializer that refuses non-finite `f32`/`f64` values and otherwise forwards every call
/// to the serializer it wraps (so the output is byte for byte the wrapped serializer's).
struct Finite<S>(S);

/// A value whose serialization goes through [`Finite`].
struct Checked<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Checked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Finite(serializer))
    }
}

macro_rules! forward {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method(self, v: $ty) -> Result<S::Ok, S::Error> {
            self.0.$method(v)
        }
    )*};
}

impl<S: Serializer> Serializer for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Finite<S::SerializeSeq>;
    type SerializeTuple = Finite<S::SerializeTuple>;
    type SerializeTupleStruct = Finite<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Finite<S::SerializeTupleVariant>;
    type SerializeMap = Finite<S::SerializeMap>;
    type SerializeStruct = Finite<S::SerializeStruct>;
    type SerializeStructVariant = Finite<S::SerializeStructVariant>;

    forward!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.0.serialize_f32(v)
        } else {
            Err(non_finite(v))
        }
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.0.serialize_f64(v)
        } else {
            Err(non_finite(v))
        }
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Checked(value))
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Checked(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Checked(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Finite)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Finite)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Finite)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Finite)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Finite)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Finite)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Finite)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident) => {
        impl<S: ser::$trait> ser::$trait for Finite<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                self.0.$method(&Checked(value))
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);

impl<S: ser::SerializeMap> ser::SerializeMap for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Checked(key))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Checked(value))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        self.0.serialize_entry(&Checked(key), &Checked(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

macro_rules! fields {
    ($trait:ident) => {
        impl<S: ser::$trait> ser::$trait for Finite<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), S::Error> {
                self.0.serialize_field(key, &Checked(value))
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
                self.0.skip_field(key)
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    };
}

fields!(SerializeStruct);
fields!(SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
    enum Shape {
        Point,
        Circle(f64),
        Rect { w: f32, h: f64 },
        Pair(f64, Option<f32>),
    }

    #[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
    struct Doc {
        name: String,
        score: Option<f64>,
        shapes: Vec<Shape>,
        weights: BTreeMap<String, (f32, f64)>,
        wrapped: Wrapped,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<f64>,
    }

    #[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
    struct Wrapped(f64);

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => any::<f64>(),
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
        ]
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Point),
            float().prop_map(Shape::Circle),
            (float(), float()).prop_map(|(w, h)| Shape::Rect { w: w as f32, h }),
            (float(), proptest::option::of(float()))
                .prop_map(|(a, b)| Shape::Pair(a, b.map(|b| b as f32))),
        ]
    }

    fn doc() -> impl Strategy<Value = Doc> {
        (
            ".{0,8}",
            proptest::option::of(float()),
            proptest::collection::vec(shape(), 0..4),
            proptest::collection::btree_map(".{0,4}", (float(), float()), 0..3),
            float(),
            proptest::option::of(float()),
        )
            .prop_map(|(name, score, shapes, weights, wrapped, skipped)| Doc {
                name,
                score,
                shapes,
                weights: weights
                    .into_iter()
                    .map(|(k, (a, b))| (k, (a as f32, b)))
                    .collect(),
                wrapped: Wrapped(wrapped),
                skipped,
            })
    }

    fn all_finite(d: &Doc) -> bool {
        let shape_ok = |s: &Shape| match s {
            Shape::Point => true,
            Shape::Circle(r) => r.is_finite(),
            Shape::Rect { w, h } => w.is_finite() && h.is_finite(),
            Shape::Pair(a, b) => a.is_finite() && b.is_none_or(f32::is_finite),
        };
        d.score.is_none_or(f64::is_finite)
            && d.shapes.iter().all(shape_ok)
            && d.weights
                .values()
                .all(|(a, b)| a.is_finite() && b.is_finite())
            && d.wrapped.0.is_finite()
            && d.skipped.is_none_or(f64::is_finite)
    }

    #[test]
    fn non_finite_floats_are_refused_naming_the_key() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = Codec::Json.encode("cache:k", &v).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("cache:k"), "{e}");
            assert!(e.to_string().contains("non-finite float"), "{e}");
            let e = Codec::Json
                .encode("cache:k", &vec![Some(1.0f32), Some(v as f32)])
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            let mut keyed = BTreeMap::new();
            keyed.insert(ordered(v), 1);
            let e = Codec::Json.encode("cache:k", &keyed).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "float map key: {e}");
        }
        assert_eq!(Codec::Json.encode("k", &1.5f64).unwrap(), b"1.5");
        // Not a float: still an Encode error.
        let mut bad = BTreeMap::new();
        bad.insert(vec![1u8], 1);
        assert_eq!(
            Codec::Json.encode("k", &bad).unwrap_err().kind(),
            ErrorKind::Encode
        );
    }

    /// A float usable as a `BTreeMap` key (serialized as the float).
    #[derive(Debug)]
    struct OrderedF64(f64);
    impl PartialEq for OrderedF64 {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other).is_eq()
        }
    }
    impl Eq for OrderedF64 {}
    impl PartialOrd for OrderedF64 {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for OrderedF64 {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&other.0)
        }
    }
    impl Serialize for OrderedF64 {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_f64(self.0)
        }
    }
    fn ordered(v: f64) -> OrderedF64 {
        OrderedF64(v)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any value: encoded byte for byte as `serde_json::to_vec` when every float in it is
        /// finite, else refused as `InvalidInput` naming the key; never `null` for a float.
        #[test]
        fn json_encoding_is_serde_json_or_refuses_non_finite_floats(d in doc()) {
            match Codec::Json.encode("cache:doc", &d) {
                Ok(bytes) => {
                    prop_assert!(all_finite(&d));
                    prop_assert_eq!(bytes, serde_json::to_vec(&d).unwrap());
                }
                Err(e) => {
                    prop_assert!(!all_finite(&d), "{}", e);
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                    prop_assert!(e.to_string().contains("cache:doc"));
                }
            }
        }

        /// Decoding arbitrary bytes never panics; a failure is a `Decode` error naming the key.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let codecs = [
                Codec::Json,
                #[cfg(feature = "msgpack")]
                Codec::MessagePack,
            ];
            for codec in codecs {
                let results = [
                    codec.decode::<Doc>("cache:x", &bytes).err(),
                    codec.decode::<serde_json::Value>("cache:x", &bytes).err(),
                    codec.decode::<Vec<Option<f64>>>("cache:x", &bytes).err(),
                    codec.decode::<BTreeMap<String, u64>>("cache:x", &bytes).err(),
                    codec.decode::<String>("cache:x", &bytes).err(),
                    codec.decode::<(u8, i64, bool)>("cache:x", &bytes).err(),
                ];
                for e in results.into_iter().flatten() {
                    prop_assert_eq!(e.kind(), ErrorKind::Decode);
                    prop_assert!(e.to_string().contains("cache:x"), "{}", e);
                }
            }
        }

        /// Whatever the codec stores, it decodes back (finite floats).
        #[test]
        fn finite_documents_round_trip(d in doc().prop_filter("finite", all_finite)) {
            let codecs = [
                Codec::Json,
                #[cfg(feature = "msgpack")]
                Codec::MessagePack,
            ];
            for codec in codecs {
                let bytes = codec.encode("k", &d).unwrap();
                let back: Doc = codec.decode("k", &bytes).unwrap();
                prop_assert_eq!(back.shapes.len(), d.shapes.len());
                prop_assert_eq!(&back.name, &d.name);
            }
        }
    }
}
