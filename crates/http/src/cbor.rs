//! CBOR helpers: a cheap structural pre-check of untrusted bodies, decoding,
//! and the tagged encoding of responses.
//!
//! Request bodies are decoded into a generic [`ciborium::Value`] because the
//! request id must hash *every* field the client sent, including ones this
//! replica does not know. A generic tree costs about 32 bytes per item, so a
//! 4 MiB body made of one-byte items would expand a hundredfold; the
//! [`check_structure`] pass walks the item headers first, without allocating,
//! and refuses bodies with too many items, too deep nesting, or lengths that
//! run past the end of the input.

use ciborium::Value as Cbor;

/// The self-describe tag (prefixes every response), untagging and tagged
/// encoding are the ones the certificate code uses.
pub use cairn_crypto::cbor::{SELF_DESCRIBE_TAG, encode_tagged, untag};

/// Bounds for [`check_structure`].
#[derive(Clone, Copy, Debug)]
pub struct StructureLimits {
    /// Maximum number of data items (every integer, string, array, map key,
    /// map value and tag counts as one).
    pub max_items: usize,
    /// Maximum nesting depth of arrays, maps and tags.
    pub max_depth: usize,
}

impl StructureLimits {
    /// Enough for the largest valid envelopes: 1000 paths of 127 labels,
    /// 20 delegations of 1000 targets each, and their signatures.
    pub const ENVELOPE: StructureLimits = StructureLimits { max_items: 200_000, max_depth: 32 };
}

/// Why a body failed the structural pre-check or decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("the body is empty")]
    Empty,
    #[error("the CBOR is truncated at byte {0}")]
    Truncated(usize),
    #[error("byte {0} holds a reserved CBOR additional-information value")]
    Reserved(usize),
    #[error("byte {0} holds an indefinite length where none is allowed")]
    BadIndefinite(usize),
    #[error("byte {0} holds a break code outside an indefinite-length item")]
    UnexpectedBreak(usize),
    #[error("the CBOR has more than {0} data items")]
    TooManyItems(usize),
    #[error("the CBOR is nested more than {0} levels deep")]
    TooDeep(usize),
    #[error("{0} trailing bytes after the CBOR item")]
    TrailingBytes(usize),
    #[error("{0}")]
    Decode(String),
}

/// One open container while walking.
enum Frame {
    /// A definite-length container with this many items still to come.
    Count(u64),
    /// An indefinite-length container, closed by a break code.
    Indefinite,
}

/// Walks the headers of exactly one CBOR data item spanning all of `bytes`,
/// checking the limits without allocating per item (the stack is bounded by
/// `max_depth`).
pub fn check_structure(bytes: &[u8], limits: StructureLimits) -> Result<(), CborError> {
    if bytes.is_empty() {
        return Err(CborError::Empty);
    }
    let len = bytes.len();
    let mut pos = 0usize;
    let mut items = 0usize;
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let start = pos;
        let Some(&initial) = bytes.get(pos) else {
            return Err(CborError::Truncated(pos));
        };
        pos += 1;
        let major = initial >> 5;
        let info = initial & 0x1f;
        // `completed` is true when this header finished an item (scalar,
        // string, empty container or a break closing an indefinite item).
        let completed = if initial == 0xff {
            match stack.last() {
                Some(Frame::Indefinite) => {
                    stack.pop();
                    true
                }
                _ => return Err(CborError::UnexpectedBreak(start)),
            }
        } else {
            items += 1;
            if items > limits.max_items {
                return Err(CborError::TooManyItems(limits.max_items));
            }
            let arg: Option<u64> = match info {
                0..=23 => Some(u64::from(info)),
                24..=27 => {
                    let n = 1usize << (info - 24);
                    let end = pos.checked_add(n).filter(|&e| e <= len).ok_or(CborError::Truncated(pos))?;
                    let mut v = 0u64;
                    for &b in &bytes[pos..end] {
                        v = (v << 8) | u64::from(b);
                    }
                    pos = end;
                    Some(v)
                }
                28..=30 => return Err(CborError::Reserved(start)),
                _ => None, // 31: indefinite length
            };
            let remaining = (len - pos) as u64;
            match (major, arg) {
                (0 | 1, Some(_)) => true,
                (2 | 3, Some(n)) => {
                    if n > remaining {
                        return Err(CborError::Truncated(len));
                    }
                    pos += n as usize;
                    true
                }
                (2..=5, None) => {
                    stack.push(Frame::Indefinite);
                    false
                }
                (4, Some(n)) | (5, Some(n)) => {
                    let count = if major == 5 { n.checked_mul(2) } else { Some(n) };
                    // Every item takes at least one byte.
                    match count {
                        Some(0) => true,
                        Some(c) if c <= remaining => {
                            stack.push(Frame::Count(c));
                            false
                        }
                        _ => return Err(CborError::Truncated(len)),
                    }
                }
                (6, Some(_)) => {
                    stack.push(Frame::Count(1));
                    false
                }
                (7, Some(_)) => {
                    // Simple values and floats: 24..=27 already skipped their bytes.
                    true
                }
                (_, None) => return Err(CborError::BadIndefinite(start)),
                _ => return Err(CborError::Decode(format!("unknown major type {major} at byte {start}"))),
            }
        };
        if stack.len() > limits.max_depth {
            return Err(CborError::TooDeep(limits.max_depth));
        }
        if completed {
            // Count this item against its parents; finished containers count
            // against theirs in turn.
            while let Some(Frame::Count(n)) = stack.last_mut() {
                *n -= 1;
                if *n == 0 {
                    stack.pop();
                } else {
                    break;
                }
            }
            if stack.is_empty() {
                return if pos == len { Ok(()) } else { Err(CborError::TrailingBytes(len - pos)) };
            }
        }
    }
}

/// Checks the structure of an untrusted body and decodes it.
pub fn decode(bytes: &[u8], limits: StructureLimits) -> Result<Cbor, CborError> {
    check_structure(bytes, limits)?;
    let mut rest = bytes;
    let value: Cbor = ciborium::de::from_reader(&mut rest).map_err(|e| CborError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CborError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// A CBOR map with text keys, in the given order.
pub fn text_map<'a>(entries: impl IntoIterator<Item = (&'a str, Cbor)>) -> Cbor {
    Cbor::Map(entries.into_iter().map(|(k, v)| (Cbor::Text(k.to_string()), v)).collect())
}

/// A CBOR unsigned integer.
pub fn nat(n: u64) -> Cbor {
    Cbor::Integer(n.into())
}

/// Human-readable name of a CBOR value's type, for error messages.
pub fn kind(value: &Cbor) -> &'static str {
    match value {
        Cbor::Integer(_) => "an integer",
        Cbor::Bytes(_) => "a byte string",
        Cbor::Float(_) => "a float",
        Cbor::Text(_) => "a text string",
        Cbor::Bool(_) => "a boolean",
        Cbor::Null => "null",
        Cbor::Tag(..) => "a tagged value",
        Cbor::Array(_) => "an array",
        Cbor::Map(_) => "a map",
        _ => "an unsupported CBOR value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    const L: StructureLimits = StructureLimits { max_items: 100, max_depth: 4 };

    #[test]
    fn accepts_what_ciborium_writes() {
        let v = Cbor::Tag(
            SELF_DESCRIBE_TAG,
            Box::new(text_map([
                ("a", nat(u64::MAX)),
                ("b", Cbor::Bytes(vec![1; 300])),
                ("c", Cbor::Array(vec![Cbor::Array(vec![]), Cbor::Map(vec![]), Cbor::Float(1.5), Cbor::Null])),
                ("d", Cbor::Integer((-5i64).into())),
            ])),
        );
        check_structure(&enc(&v), L).unwrap();
        assert_eq!(untag(&decode(&enc(&v), L).unwrap()), untag(&v));
    }

    #[test]
    fn indefinite_lengths() {
        // [_ 1, [_ ], "ab" ] as indefinite array containing an indefinite array.
        check_structure(&[0x9f, 0x01, 0x9f, 0xff, 0x62, b'a', b'b', 0xff], L).unwrap();
        // Indefinite byte string with two chunks.
        check_structure(&[0x5f, 0x41, 0x00, 0x41, 0x01, 0xff], L).unwrap();
        // Indefinite map.
        check_structure(&[0xbf, 0x61, b'k', 0x01, 0xff], L).unwrap();
        assert_eq!(check_structure(&[0x9f, 0x01], L), Err(CborError::Truncated(2)));
        assert_eq!(check_structure(&[0xff], L), Err(CborError::UnexpectedBreak(0)));
        assert_eq!(check_structure(&[0x1f], L), Err(CborError::BadIndefinite(0)));
    }

    #[test]
    fn rejects_bad_lengths_limits_and_trailing_bytes() {
        assert_eq!(check_structure(&[], L), Err(CborError::Empty));
        // Byte string claiming 2^64-1 bytes.
        assert!(matches!(
            check_structure(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], L),
            Err(CborError::Truncated(_))
        ));
        // Array claiming 2^32 items.
        assert!(matches!(check_structure(&[0x9a, 0xff, 0xff, 0xff, 0xff, 0x00], L), Err(CborError::Truncated(_))));
        // Map whose doubled count overflows.
        assert!(matches!(
            check_structure(&[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], L),
            Err(CborError::Truncated(_))
        ));
        assert_eq!(check_structure(&[0x1c], L), Err(CborError::Reserved(0)));
        assert_eq!(check_structure(&[0x01, 0x02], L), Err(CborError::TrailingBytes(1)));
        let deep = [0x81u8, 0x81, 0x81, 0x81, 0x81, 0x01];
        assert_eq!(check_structure(&deep, L), Err(CborError::TooDeep(4)));
        let many = enc(&Cbor::Array(vec![nat(1); 100]));
        assert_eq!(check_structure(&many, L), Err(CborError::TooManyItems(100)));
        let ok = enc(&Cbor::Array(vec![nat(1); 99]));
        check_structure(&ok, L).unwrap();
    }
}
