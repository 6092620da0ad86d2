//! Small CBOR helpers shared by the modules that parse client-supplied CBOR.
//!
//! Client CBOR is decoded into a generic [`ciborium::Value`] and then read
//! field by field, so that unknown fields are tolerated (forward
//! compatibility) and error messages can name the offending field.

use ciborium::Value as Cbor;

/// The CBOR self-describe tag (`d9d9f7`).
pub const SELF_DESCRIBE_TAG: u64 = 55799;

/// Decodes exactly one CBOR item, rejecting trailing bytes.
pub fn decode(bytes: &[u8]) -> Result<Cbor, String> {
    let mut rest = bytes;
    let value: Cbor = ciborium::de::from_reader(&mut rest).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the CBOR item", rest.len()));
    }
    Ok(value)
}

/// Removes any number of self-describe tags around a value.
pub fn untag(mut value: &Cbor) -> &Cbor {
    while let Cbor::Tag(SELF_DESCRIBE_TAG, inner) = value {
        value = inner;
    }
    value
}

/// Encodes a value with the self-describe tag in front.
pub fn encode_tagged(value: Cbor) -> Vec<u8> {
    encode(&Cbor::Tag(SELF_DESCRIBE_TAG, Box::new(value)))
}

/// Encodes a value as CBOR.
pub fn encode(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// The entries of a (possibly tagged) map with text keys.
pub fn as_map(value: &Cbor) -> Result<&[(Cbor, Cbor)], String> {
    match untag(value) {
        Cbor::Map(entries) => Ok(entries),
        other => Err(format!("expected a CBOR map, found {}", kind(other))),
    }
}

/// Looks up a text key in map entries.
pub fn field<'a>(entries: &'a [(Cbor, Cbor)], key: &str) -> Option<&'a Cbor> {
    entries.iter().find(|(k, _)| matches!(k, Cbor::Text(t) if t == key)).map(|(_, v)| v)
}

/// A byte string; text is accepted too because some clients (the JS WebAuthn
/// identity) send byte-like fields as CBOR text.
pub fn bytes_or_text(value: &Cbor) -> Option<&[u8]> {
    match untag(value) {
        Cbor::Bytes(b) => Some(b),
        Cbor::Text(t) => Some(t.as_bytes()),
        _ => None,
    }
}

/// A byte string (major type 2) only.
pub fn bytes(value: &Cbor) -> Option<&[u8]> {
    match untag(value) {
        Cbor::Bytes(b) => Some(b),
        _ => None,
    }
}

/// A short human-readable name of a CBOR value's kind, for error messages.
pub fn kind(value: &Cbor) -> &'static str {
    match value {
        Cbor::Integer(_) => "an integer",
        Cbor::Bytes(_) => "a byte string",
        Cbor::Float(_) => "a float",
        Cbor::Text(_) => "a text string",
        Cbor::Bool(_) => "a boolean",
        Cbor::Null => "null",
        Cbor::Tag(_, _) => "a tagged value",
        Cbor::Array(_) => "an array",
        Cbor::Map(_) => "a map",
        _ => "an unsupported value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_roundtrip_and_trailing_bytes() {
        let bytes = encode_tagged(Cbor::Text("x".into()));
        assert_eq!(&bytes[..3], &[0xd9, 0xd9, 0xf7]);
        let v = decode(&bytes).unwrap();
        assert_eq!(untag(&v), &Cbor::Text("x".into()));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }
}
