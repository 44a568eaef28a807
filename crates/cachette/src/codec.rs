//! How typed values become bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The value encoding of a manager.
///
/// The default, [`Codec::Json`], stores exactly `serde_json::to_vec(&value)`, so
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
    pub fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| Error::encode(key, e)),
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
