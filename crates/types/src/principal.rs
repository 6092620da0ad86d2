//! Principals: the identities of users, canisters, subnets and nodes.
//!
//! A principal is 0..=29 opaque bytes; its class is encoded in the last byte.
//! The textual form is `Grouped(Base32(CRC32(bytes) · bytes))`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha224};
use std::fmt;
use std::str::FromStr;

/// Maximum length of a principal in bytes.
pub const MAX_PRINCIPAL_LEN: usize = 29;

/// Last byte of a self-authenticating principal (`SHA224(DER key) · 02`).
pub const SELF_AUTHENTICATING_SUFFIX: u8 = 0x02;
/// Last byte of an opaque id minted by the system (e.g. canister ids).
pub const OPAQUE_SUFFIX: u8 = 0x01;
/// The anonymous principal is exactly this single byte.
pub const ANONYMOUS_BYTE: u8 = 0x04;

/// An identity on the Internet Computer: up to 29 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Principal {
    len: u8,
    bytes: [u8; MAX_PRINCIPAL_LEN],
}

/// Why a byte string or text is not a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("principal is {0} bytes long, the maximum is 29")]
    TooLong(usize),
    #[error("principal text is not valid base32: {0}")]
    InvalidBase32(String),
    #[error("principal text is too short to hold a checksum")]
    TooShort,
    #[error("principal text has a wrong checksum")]
    BadChecksum,
    #[error("principal text is not in canonical form (expected {expected})")]
    NotCanonical { expected: String },
}

impl Principal {
    /// The management canister `aaaaa-aa` (the empty principal).
    pub const MANAGEMENT: Principal = Principal { len: 0, bytes: [0; MAX_PRINCIPAL_LEN] };

    /// The anonymous principal `2vxsx-fae`.
    pub const ANONYMOUS: Principal = {
        let mut bytes = [0; MAX_PRINCIPAL_LEN];
        bytes[0] = ANONYMOUS_BYTE;
        Principal { len: 1, bytes }
    };

    /// Builds a principal from raw bytes, rejecting more than 29 bytes.
    pub fn try_from_slice(slice: &[u8]) -> Result<Self, PrincipalError> {
        if slice.len() > MAX_PRINCIPAL_LEN {
            return Err(PrincipalError::TooLong(slice.len()));
        }
        let mut bytes = [0; MAX_PRINCIPAL_LEN];
        bytes[..slice.len()].copy_from_slice(slice);
        Ok(Principal { len: slice.len() as u8, bytes })
    }

    /// The self-authenticating principal of a DER-encoded public key.
    pub fn self_authenticating(der_public_key: &[u8]) -> Self {
        let hash = Sha224::digest(der_public_key);
        let mut bytes = [0; MAX_PRINCIPAL_LEN];
        bytes[..28].copy_from_slice(&hash);
        bytes[28] = SELF_AUTHENTICATING_SUFFIX;
        Principal { len: 29, bytes }
    }

    /// The raw bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Whether this is the anonymous principal.
    pub fn is_anonymous(&self) -> bool {
        self.as_slice() == [ANONYMOUS_BYTE]
    }

    /// Whether this is the management canister's (empty) principal.
    pub fn is_management(&self) -> bool {
        self.len == 0
    }

    /// Whether this is a self-authenticating principal (derived from a key).
    pub fn is_self_authenticating(&self) -> bool {
        self.len as usize == MAX_PRINCIPAL_LEN && self.bytes[28] == SELF_AUTHENTICATING_SUFFIX
    }

    /// Canonical text form, e.g. `rrkah-fqaaa-aaaaa-aaaaq-cai`.
    pub fn to_text(&self) -> String {
        let mut data = Vec::with_capacity(4 + self.len as usize);
        data.extend_from_slice(&crc32fast::hash(self.as_slice()).to_be_bytes());
        data.extend_from_slice(self.as_slice());
        let encoded = data_encoding::BASE32_NOPAD.encode(&data).to_ascii_lowercase();
        let mut text = String::with_capacity(encoded.len() + encoded.len() / 5);
        for (i, c) in encoded.chars().enumerate() {
            if i > 0 && i % 5 == 0 {
                text.push('-');
            }
            text.push(c);
        }
        text
    }

    /// Parses the text form (case-insensitive), checking the CRC and canonical grouping.
    pub fn from_text(text: &str) -> Result<Self, PrincipalError> {
        let compact: String = text.chars().filter(|c| *c != '-').collect::<String>().to_ascii_uppercase();
        let data = data_encoding::BASE32_NOPAD
            .decode(compact.as_bytes())
            .map_err(|e| PrincipalError::InvalidBase32(e.to_string()))?;
        if data.len() < 4 {
            return Err(PrincipalError::TooShort);
        }
        let principal = Self::try_from_slice(&data[4..])?;
        if data[..4] != crc32fast::hash(principal.as_slice()).to_be_bytes() {
            return Err(PrincipalError::BadChecksum);
        }
        let expected = principal.to_text();
        if expected != text.to_ascii_lowercase() {
            return Err(PrincipalError::NotCanonical { expected });
        }
        Ok(principal)
    }
}

impl Default for Principal {
    fn default() -> Self {
        Principal::MANAGEMENT
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for Principal {
    type Err = PrincipalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_text(s)
    }
}

impl TryFrom<&[u8]> for Principal {
    type Error = PrincipalError;
    fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
        Self::try_from_slice(value)
    }
}

impl AsRef<[u8]> for Principal {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_text())
        } else {
            serializer.serialize_bytes(self.as_slice())
        }
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Principal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a principal as bytes or text")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Principal, E> {
                Principal::from_text(v).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Principal, E> {
                Principal::try_from_slice(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Principal, E> {
                self.visit_bytes(&v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Principal, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_text_forms() {
        assert_eq!(Principal::MANAGEMENT.to_text(), "aaaaa-aa");
        assert_eq!(Principal::ANONYMOUS.to_text(), "2vxsx-fae");
        let p = Principal::try_from_slice(&[0xAB, 0xCD, 0x01]).unwrap();
        assert_eq!(p.to_text(), "em77e-bvlzu-aq");
        let canister0 = Principal::try_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 1]).unwrap();
        assert_eq!(canister0.to_text(), "rwlgt-iiaaa-aaaaa-aaaaa-cai");
        let canister1 = Principal::try_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]).unwrap();
        assert_eq!(canister1.to_text(), "rrkah-fqaaa-aaaaa-aaaaq-cai");
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(Principal::from_text("em77e-bvlzu-aa"), Err(PrincipalError::BadChecksum));
        assert!(matches!(Principal::from_text("em77ebvlzuaq"), Err(PrincipalError::NotCanonical { .. })));
        assert!(Principal::from_text("!!!").is_err());
        assert_eq!(Principal::from_text("EM77E-BVLZU-AQ").unwrap().as_slice(), &[0xAB, 0xCD, 0x01]);
        assert!(Principal::try_from_slice(&[0; 30]).is_err());
    }

    proptest! {
        #[test]
        fn text_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..=29)) {
            let p = Principal::try_from_slice(&bytes).unwrap();
            prop_assert_eq!(Principal::from_text(&p.to_text()).unwrap(), p);
        }
    }
}
