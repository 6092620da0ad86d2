//! Representation-independent hashing (interface spec "request id").
//!
//! The hash of a structured value must not depend on how it was encoded
//! (field order, CBOR integer widths, tags), so clients and replica compute it
//! over a small value model instead of over bytes:
//!
//! * blob → `H(bytes)`, text → `H(utf8)`,
//! * nat → `H(shortest ULEB128)`, int → `H(shortest SLEB128)`,
//! * array → `H(concat of element hashes)`,
//! * map → `hash_of_map`: for every field `H(key) · H(value)`, sort the 64-byte
//!   strings, concatenate, hash.
//!
//! The request id is `hash_of_map(content)`; delegations and query responses
//! are hashed the same way before being signed.

use crate::{Digest, sha256};
use cairn_types::MessageId;
use ciborium::Value as Cbor;
use sha2::Digest as _;

/// A value in the representation-independent hashing model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A byte string (CBOR major type 2), e.g. `sender`, `arg`, `nonce`.
    Blob(Vec<u8>),
    /// A UTF-8 string, e.g. `request_type`, `method_name`.
    Text(String),
    /// A natural number that fits in 64 bits, e.g. `ingress_expiry`.
    Nat(u64),
    /// An arbitrarily large natural number, as big-endian magnitude bytes
    /// (the payload of CBOR tag 2). Leading zero bytes are ignored, so a
    /// small `BigNat` hashes exactly like the equal [`Value::Nat`].
    BigNat(Vec<u8>),
    /// A (possibly negative) integer; covers every CBOR integer.
    Int(i128),
    /// An array; hashed as the hash of its element hashes (used by `paths`
    /// and delegation `targets`).
    Array(Vec<Value>),
    /// A nested map with text keys (e.g. `reply: {arg}`), hashed with
    /// [`hash_of_map`].
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A blob from anything byte-like.
    pub fn blob(bytes: impl AsRef<[u8]>) -> Value {
        Value::Blob(bytes.as_ref().to_vec())
    }

    /// A text value.
    pub fn text(text: impl Into<String>) -> Value {
        Value::Text(text.into())
    }

    /// A map from `(key, value)` pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Converts decoded CBOR into the hashing model.
    ///
    /// Accepts byte strings, text, integers, bignums (tag 2), arrays and maps
    /// with text keys; self-describe tags are skipped. Floats, booleans, null,
    /// negative bignums, other tags and duplicate map keys have no meaning in
    /// the IC's hashing model and are rejected.
    pub fn from_cbor(value: &Cbor) -> Result<Value, ValueError> {
        Ok(match value {
            Cbor::Bytes(b) => Value::Blob(b.clone()),
            Cbor::Text(t) => Value::Text(t.clone()),
            Cbor::Integer(i) => {
                let i = i128::from(*i);
                if i >= 0 { Value::Nat(i as u64) } else { Value::Int(i) }
            }
            Cbor::Tag(crate::cbor::SELF_DESCRIBE_TAG, inner) => Value::from_cbor(inner)?,
            Cbor::Tag(2, inner) => match inner.as_ref() {
                Cbor::Bytes(b) => Value::BigNat(b.clone()),
                _ => return Err(ValueError::Unsupported("tag 2 without a byte string")),
            },
            Cbor::Tag(tag, _) => return Err(ValueError::UnsupportedTag(*tag)),
            Cbor::Array(items) => Value::Array(items.iter().map(Value::from_cbor).collect::<Result<_, _>>()?),
            Cbor::Map(entries) => {
                let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let Cbor::Text(key) = k else {
                        return Err(ValueError::NonTextKey);
                    };
                    if out.iter().any(|(existing, _)| existing == key) {
                        return Err(ValueError::DuplicateKey(key.clone()));
                    }
                    out.push((key.clone(), Value::from_cbor(v)?));
                }
                Value::Map(out)
            }
            Cbor::Float(_) => return Err(ValueError::Unsupported("floats")),
            Cbor::Bool(_) => return Err(ValueError::Unsupported("booleans")),
            Cbor::Null => return Err(ValueError::Unsupported("null")),
            _ => return Err(ValueError::Unsupported("this CBOR value")),
        })
    }
}

/// Why CBOR could not be turned into a hashable [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("representation-independent hashing does not support {0}")]
    Unsupported(&'static str),
    #[error("representation-independent hashing does not support CBOR tag {0}")]
    UnsupportedTag(u64),
    #[error("map keys must be text strings")]
    NonTextKey,
    #[error("map key {0:?} appears more than once")]
    DuplicateKey(String),
    #[error("the request content must be a map")]
    NotAMap,
}

/// The representation-independent hash of one value.
pub fn hash_value(value: &Value) -> Digest {
    match value {
        Value::Blob(b) => sha256(b),
        Value::Text(t) => sha256(t.as_bytes()),
        Value::Nat(n) => sha256(&leb128(*n)),
        Value::BigNat(be) => sha256(&leb128_big(be)),
        Value::Int(i) => sha256(&sleb128(*i)),
        Value::Array(items) => {
            let mut h = sha2::Sha256::new();
            for item in items {
                h.update(hash_value(item));
            }
            h.finalize().into()
        }
        Value::Map(entries) => hash_of_map(entries.iter().map(|(k, v)| (k.as_str(), v))),
    }
}

/// `hash_of_map`: sort the `H(key) · H(value)` pairs bytewise, concatenate, hash.
///
/// Callers pass only the fields that are present; absent optional fields
/// must not appear at all (they are not hashed as null).
pub fn hash_of_map<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Digest {
    let mut pairs: Vec<[u8; 64]> = entries
        .into_iter()
        .map(|(k, v)| {
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&sha256(k.as_bytes()));
            pair[32..].copy_from_slice(&hash_value(v));
            pair
        })
        .collect();
    pairs.sort_unstable();
    let mut h = sha2::Sha256::new();
    for pair in &pairs {
        h.update(pair);
    }
    h.finalize().into()
}

/// The request id of an envelope's `content` map.
pub fn request_id(content: &Value) -> Result<MessageId, ValueError> {
    match content {
        Value::Map(_) => Ok(MessageId(hash_value(content))),
        _ => Err(ValueError::NotAMap),
    }
}

/// The request id of CBOR-decoded `content` (tags are skipped).
///
/// Every field present in the CBOR is hashed, exactly as clients hash the
/// fields they sent.
pub fn request_id_of_cbor(content: &Cbor) -> Result<MessageId, ValueError> {
    request_id(&Value::from_cbor(content)?)
}

/// Shortest unsigned LEB128 encoding (also the state-tree encoding of nats
/// such as `/time` and `reject_code`).
pub fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Shortest unsigned LEB128 encoding of a big-endian magnitude.
fn leb128_big(be: &[u8]) -> Vec<u8> {
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    let digits = &be[start..];
    if digits.len() <= 8 {
        let mut buf = [0u8; 8];
        buf[8 - digits.len()..].copy_from_slice(digits);
        return leb128(u64::from_be_bytes(buf));
    }
    // Walk the little-endian bit string seven bits at a time.
    let le: Vec<u8> = digits.iter().rev().copied().collect();
    let total_bits = le.len() * 8 - le.last().map_or(0, |b| b.leading_zeros() as usize);
    let groups = total_bits.div_ceil(7);
    let bit = |i: usize| (le[i / 8] >> (i % 8)) & 1;
    (0..groups)
        .map(|g| {
            let mut byte = 0u8;
            for j in 0..7 {
                let i = g * 7 + j;
                if i < total_bits {
                    byte |= bit(i) << j;
                }
            }
            if g + 1 < groups { byte | 0x80 } else { byte }
        })
        .collect()
}

/// Shortest signed LEB128 encoding.
pub fn sleb128(mut n: i128) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Decodes an unsigned LEB128 number that must use exactly all of `bytes`
/// (how certified nats such as `/time` are read back).
pub fn decode_leb128(bytes: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let shift = 7 * i as u32;
        if shift >= 64 || (shift == 63 && (b & 0x7f) > 1) {
            return None;
        }
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (i + 1 == bytes.len()).then_some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_request_id_vector() {
        // Interface spec, "Request ids" example (digest §3).
        let content = Value::map([
            ("request_type", Value::text("call")),
            ("sender", Value::blob([0x04])),
            ("ingress_expiry", Value::Nat(1_685_570_400_000_000_000)),
            ("canister_id", Value::blob(hex::decode("00000000000004D2").unwrap())),
            ("method_name", Value::text("hello")),
            ("arg", Value::blob(b"DIDL\x00\xFD*")),
        ]);
        assert_eq!(
            hex::encode(request_id(&content).unwrap().0),
            "1d1091364d6bb8a6c16b203ee75467d59ead468f523eb058880ae8ec80e2b101"
        );
    }

    #[test]
    fn spec_request_id_vector_from_cbor() {
        // Same content, encoded as CBOR by hand in another field order and
        // with the self-describe tag, must give the same id.
        let cbor = Cbor::Tag(
            55799,
            Box::new(Cbor::Map(vec![
                (Cbor::Text("arg".into()), Cbor::Bytes(b"DIDL\x00\xFD*".to_vec())),
                (Cbor::Text("ingress_expiry".into()), Cbor::Integer(1_685_570_400_000_000_000u64.into())),
                (Cbor::Text("method_name".into()), Cbor::Text("hello".into())),
                (Cbor::Text("sender".into()), Cbor::Bytes(vec![4])),
                (Cbor::Text("canister_id".into()), Cbor::Bytes(hex::decode("00000000000004D2").unwrap())),
                (Cbor::Text("request_type".into()), Cbor::Text("call".into())),
            ])),
        );
        let bytes = crate::cbor::encode(&cbor);
        let decoded = crate::cbor::decode(&bytes).unwrap();
        assert_eq!(
            hex::encode(request_id_of_cbor(&decoded).unwrap().0),
            "1d1091364d6bb8a6c16b203ee75467d59ead468f523eb058880ae8ec80e2b101"
        );
    }

    #[test]
    fn leb128_vectors() {
        assert_eq!(leb128(624_485), vec![0xe5, 0x8e, 0x26]);
        assert_eq!(leb128(0), vec![0x00]);
        assert_eq!(leb128(127), vec![0x7f]);
        assert_eq!(leb128(128), vec![0x80, 0x01]);
        assert_eq!(leb128(u64::MAX).len(), 10);
        assert_eq!(sleb128(-123_456), vec![0xc0, 0xbb, 0x78]);
        assert_eq!(sleb128(0), vec![0x00]);
        assert_eq!(sleb128(-1), vec![0x7f]);
        assert_eq!(sleb128(63), vec![0x3f]);
        assert_eq!(sleb128(64), vec![0xc0, 0x00]);
        assert_eq!(sleb128(-64), vec![0x40]);
        assert_eq!(sleb128(-65), vec![0xbf, 0x7f]);
        assert_eq!(decode_leb128(&[0xe5, 0x8e, 0x26]), Some(624_485));
        assert_eq!(decode_leb128(&[0xe5, 0x8e]), None);
        assert_eq!(decode_leb128(&[0x01, 0x00]), None);
        assert_eq!(decode_leb128(&leb128(u64::MAX)), Some(u64::MAX));
    }

    #[test]
    fn big_nats_hash_like_small_ones_and_extend_beyond_u64() {
        assert_eq!(hash_value(&Value::BigNat(vec![0, 0, 0x09, 0x87, 0x65])), hash_value(&Value::Nat(0x098765)));
        assert_eq!(leb128_big(&[]), vec![0]);
        // 2^64 = 0x1_0000_0000_0000_0000 → LEB128 80 80 80 80 80 80 80 80 80 02.
        assert_eq!(
            leb128_big(&[1, 0, 0, 0, 0, 0, 0, 0, 0]),
            vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]
        );
    }

    #[test]
    fn rejects_values_outside_the_model() {
        assert!(Value::from_cbor(&Cbor::Bool(true)).is_err());
        assert!(Value::from_cbor(&Cbor::Float(1.0)).is_err());
        let dup = Cbor::Map(vec![(Cbor::Text("a".into()), Cbor::Null), (Cbor::Text("a".into()), Cbor::Null)]);
        assert!(Value::from_cbor(&dup).is_err());
        let dup = Cbor::Map(vec![
            (Cbor::Text("a".into()), Cbor::Integer(1.into())),
            (Cbor::Text("a".into()), Cbor::Integer(2.into())),
        ]);
        assert_eq!(Value::from_cbor(&dup), Err(ValueError::DuplicateKey("a".into())));
        assert_eq!(request_id(&Value::Nat(1)), Err(ValueError::NotAMap));
    }

    #[test]
    fn nested_arrays_hash_recursively() {
        // paths: [[b"time"]] hashes as H(H(H("time"))).
        let paths = Value::Array(vec![Value::Array(vec![Value::blob(b"time")])]);
        assert_eq!(hash_value(&paths), sha256(&sha256(&sha256(b"time"))));
    }

    proptest! {
        #[test]
        fn leb128_roundtrip(n in any::<u64>()) {
            prop_assert_eq!(decode_leb128(&leb128(n)), Some(n));
            let be = n.to_be_bytes();
            prop_assert_eq!(leb128_big(&be), leb128(n));
        }

        #[test]
        fn map_hash_is_order_independent(mut entries in proptest::collection::btree_map("[a-z]{1,8}", any::<u64>(), 0..8)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::Nat(v))).collect::<Vec<_>>())) {
            let a = hash_value(&Value::Map(entries.clone()));
            entries.reverse();
            prop_assert_eq!(a, hash_value(&Value::Map(entries)));
        }
    }
}
