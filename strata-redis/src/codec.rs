//! How keys and values become bytes in Redis, and back.
//!
//! - A **value** goes through a [`Codec`] the user chooses: [`Postcard`] (serde, compact, the
//!   default) or [`Raw`] (`Vec<u8>` and `String` stored as they are). Decoding bytes that some
//!   other program wrote under our prefix fails with a [`CodecError`]; the layer reports it as a
//!   failure for that key, never a panic.
//! - A **key** is written after the layer's prefix by [`RedisKey`]. Keys travel back from Redis
//!   in invalidation messages, so the encoding must be reversible: [`RedisKey::read_key`] turns
//!   the bytes back into the key whose local copies must be dropped.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// A value that could not be encoded or decoded.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Turns values into bytes and back.
pub trait Codec<V>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out`.
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Decodes a value; any byte string may arrive here (garbage written by another program).
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// serde values, encoded with postcard: compact, and strict when decoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl<V: Serialize + DeserializeOwned> Codec<V> for Postcard {
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let bytes = postcard::to_allocvec(value).map_err(|e| CodecError(e.to_string()))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        match postcard::take_from_bytes(bytes) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => Err(CodecError(format!(
                "{} trailing bytes after the value",
                rest.len()
            ))),
            Err(e) => Err(CodecError(e.to_string())),
        }
    }
}

/// Bytes stored as they are: `Vec<u8>` values, and `String` values (checked to be UTF-8 when
/// read back).
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl Codec<Vec<u8>> for Raw {
    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

impl Codec<String> for Raw {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError(e.to_string()))
    }
}

/// A key as Redis sees it (after the layer's prefix), reversibly.
pub trait RedisKey: Sized {
    /// Appends the key's bytes to `out`.
    fn write_key(&self, out: &mut Vec<u8>);
    /// The key these bytes name, or `None` if no key of this type writes them.
    fn read_key(bytes: &[u8]) -> Option<Self>;
}

impl RedisKey for String {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn read_key(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl RedisKey for Vec<u8> {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }

    fn read_key(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

/// Integers are written in decimal, readable in `redis-cli`.
macro_rules! decimal_keys {
    ($($t:ty),*) => {$(
        impl RedisKey for $t {
            fn write_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.to_string().as_bytes());
            }

            fn read_key(bytes: &[u8]) -> Option<Self> {
                std::str::from_utf8(bytes).ok()?.parse().ok()
            }
        }
    )*};
}
decimal_keys!(u16, u32, u64, u128, i32, i64, i128, usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_round_trips_and_refuses_garbage() {
        let mut out = Vec::new();
        Postcard
            .encode(&("ada".to_string(), 7u32), &mut out)
            .unwrap();
        let back: (String, u32) = Postcard.decode(&out).unwrap();
        assert_eq!(back, ("ada".to_string(), 7));
        assert!(Codec::<(String, u32)>::decode(&Postcard, b"\xff\xff\xff").is_err());
        out.push(0);
        assert!(Codec::<(String, u32)>::decode(&Postcard, &out).is_err());
    }

    #[test]
    fn raw_strings_must_be_utf8() {
        assert_eq!(Codec::<String>::decode(&Raw, b"ok").unwrap(), "ok");
        assert!(Codec::<String>::decode(&Raw, b"\xff").is_err());
    }

    #[test]
    fn keys_round_trip() {
        let mut out = Vec::new();
        42u64.write_key(&mut out);
        assert_eq!(u64::read_key(&out), Some(42));
        assert_eq!(u64::read_key(b"x"), None);
        assert_eq!(String::read_key(b"user:1").as_deref(), Some("user:1"));
    }
}
