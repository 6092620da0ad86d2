//! A minimal, strict DER reader/writer for SubjectPublicKeyInfo.
//!
//! Every IC public key travels as `SEQUENCE { SEQUENCE { OID, [params] },
//! BIT STRING }`. Only that shape is needed, so a few dozen lines of DER
//! suffice; definite minimal lengths and zero unused bits are enforced.

/// OID content bytes (without tag and length).
pub mod oid {
    /// Ed25519, 1.3.101.112 (RFC 8410).
    pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    /// id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480).
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 / secp256r1, 1.2.840.10045.3.1.7.
    pub const SECP256R1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp256k1, 1.3.132.0.10.
    pub const SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
    /// IC WebAuthn COSE key wrapper, 1.3.6.1.4.1.56387.1.1.
    pub const WEBAUTHN_COSE: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb8, 0x43, 0x01, 0x01];
    /// IC canister signatures, 1.3.6.1.4.1.56387.1.2.
    pub const CANISTER_SIG: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb8, 0x43, 0x01, 0x02];
}

const SEQUENCE: u8 = 0x30;
const OBJECT_IDENTIFIER: u8 = 0x06;
const BIT_STRING: u8 = 0x03;

/// A parsed SubjectPublicKeyInfo.
#[derive(Debug, PartialEq, Eq)]
pub struct Spki<'a> {
    /// Content bytes of the algorithm OID.
    pub algorithm: &'a [u8],
    /// Content bytes of the parameter OID, if the parameter is an OID.
    pub parameter: Option<&'a [u8]>,
    /// The key bytes inside the BIT STRING.
    pub key: &'a [u8],
}

/// Reads one TLV, returning `(tag, content, rest)`.
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("unexpected end of DER")?;
    let (&first, rest) = rest.split_first().ok_or("missing DER length")?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("unsupported DER length encoding".into());
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        if rest[0] == 0 || len < 0x80 {
            return Err("non-minimal DER length".into());
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(format!("DER element claims {len} bytes, {} remain", rest.len()));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(tag: u8, input: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (t, content, rest) = read_tlv(input)?;
    if t != tag {
        return Err(format!("expected {what} (tag 0x{tag:02x}), found tag 0x{t:02x}"));
    }
    Ok((content, rest))
}

/// Parses a SubjectPublicKeyInfo, rejecting trailing data.
pub fn parse_spki(der: &[u8]) -> Result<Spki<'_>, String> {
    let (outer, rest) = expect(SEQUENCE, der, "SEQUENCE")?;
    if !rest.is_empty() {
        return Err("trailing bytes after the public key".into());
    }
    let (alg, after_alg) = expect(SEQUENCE, outer, "AlgorithmIdentifier SEQUENCE")?;
    let (algorithm, params) = expect(OBJECT_IDENTIFIER, alg, "algorithm OID")?;
    let parameter = match params {
        [] => None,
        [0x05, 0x00] => None, // explicit NULL parameters
        _ => {
            let (p, extra) = expect(OBJECT_IDENTIFIER, params, "parameter OID")?;
            if !extra.is_empty() {
                return Err("unexpected data after the parameter OID".into());
            }
            Some(p)
        }
    };
    let (bits, extra) = expect(BIT_STRING, after_alg, "BIT STRING")?;
    if !extra.is_empty() {
        return Err("unexpected data after the BIT STRING".into());
    }
    match bits.split_first() {
        Some((0, key)) => Ok(Spki { algorithm, parameter, key }),
        Some(_) => Err("BIT STRING has unused bits".into()),
        None => Err("empty BIT STRING".into()),
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// Encodes a SubjectPublicKeyInfo (the inverse of [`parse_spki`]).
pub fn encode_spki(algorithm: &[u8], parameter: Option<&[u8]>, key: &[u8]) -> Vec<u8> {
    let mut alg = Vec::new();
    push_tlv(&mut alg, OBJECT_IDENTIFIER, algorithm);
    if let Some(p) = parameter {
        push_tlv(&mut alg, OBJECT_IDENTIFIER, p);
    }
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    let mut body = Vec::new();
    push_tlv(&mut body, SEQUENCE, &alg);
    push_tlv(&mut body, BIT_STRING, &bits);
    let mut out = Vec::new();
    push_tlv(&mut out, SEQUENCE, &body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        // Ed25519: the 12-byte prefix of digest §4.2.
        let der = encode_spki(oid::ED25519, None, &[0xaa; 32]);
        assert_eq!(hex::encode(&der[..12]), "302a300506032b6570032100");
        assert_eq!(der.len(), 44);
        // P-256 and secp256k1 prefixes (RFC 5480).
        let p256 = encode_spki(oid::EC_PUBLIC_KEY, Some(oid::SECP256R1), &[4; 65]);
        assert_eq!(hex::encode(&p256[..26]), "3059301306072a8648ce3d020106082a8648ce3d030107034200");
        let k1 = encode_spki(oid::EC_PUBLIC_KEY, Some(oid::SECP256K1), &[4; 65]);
        assert_eq!(hex::encode(&k1[..23]), "3056301006072a8648ce3d020106052b8104000a034200");
        // Canister signature key from a real Internet Identity delegation.
        let cs = hex::decode("303c300c060a2b0601040183b8430102032c000a00000000006000270101f3ffab2278616508ad5ebfa0cb79a21e08dbb7132f6875b95f81e72067f31302").unwrap();
        let spki = parse_spki(&cs).unwrap();
        assert_eq!(spki.algorithm, oid::CANISTER_SIG);
        assert_eq!(spki.parameter, None);
        assert_eq!(encode_spki(oid::CANISTER_SIG, None, spki.key), cs);
        // Long-form lengths round-trip.
        let big = encode_spki(oid::WEBAUTHN_COSE, None, &[1; 300]);
        assert_eq!(parse_spki(&big).unwrap().key, &[1; 300][..]);
    }

    #[test]
    fn rejects_malformed() {
        let der = encode_spki(oid::ED25519, None, &[0xaa; 32]);
        assert!(parse_spki(&der[..43]).is_err());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(parse_spki(&trailing).is_err());
        let mut unused_bits = der.clone();
        unused_bits[11] = 1;
        assert!(parse_spki(&unused_bits).is_err());
        assert!(parse_spki(&[]).is_err());
        assert!(parse_spki(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err()); // non-minimal length
    }
}
