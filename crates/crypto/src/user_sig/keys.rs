//! Sender public keys (DER) and signature verification per scheme.

use super::canister_sig::verify_canister_signature;
use super::webauthn::{CoseKey, verify_webauthn};
use super::{PublicKeyError, SignatureError};
use crate::der::{self, oid};
use cairn_types::{CanisterId, Principal};

/// A parsed sender public key, one variant per supported scheme.
#[derive(Clone, Debug)]
pub enum UserPublicKey {
    /// Ed25519 (RFC 8410 DER); 64-byte signatures.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA on P-256 with SHA-256; raw 64-byte `r‖s` signatures.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// ECDSA on secp256k1 with SHA-256; raw 64-byte `r‖s` signatures.
    EcdsaSecp256k1(k256::ecdsa::VerifyingKey),
    /// A WebAuthn credential: COSE key wrapped in DER.
    WebAuthn(CoseKey),
    /// A canister signature key: the signing canister and its seed.
    CanisterSignature {
        /// The canister whose certified data vouches for signatures.
        canister_id: CanisterId,
        /// Arbitrary seed chosen by the canister (one key per seed).
        seed: Vec<u8>,
    },
}

impl UserPublicKey {
    /// Parses a DER SubjectPublicKeyInfo into one of the IC schemes.
    pub fn from_der(der: &[u8]) -> Result<UserPublicKey, PublicKeyError> {
        let spki = der::parse_spki(der).map_err(PublicKeyError::Der)?;
        match (spki.algorithm, spki.parameter) {
            (a, None) if a == oid::ED25519 => {
                let bytes: &[u8; 32] = spki.key.try_into().map_err(|_| PublicKeyError::Length {
                    scheme: "Ed25519",
                    expected: 32,
                    got: spki.key.len(),
                })?;
                ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .map(UserPublicKey::Ed25519)
                    .map_err(|_| PublicKeyError::InvalidPoint("Ed25519"))
            }
            (a, Some(curve)) if a == oid::EC_PUBLIC_KEY => {
                if spki.key.len() != 65 || spki.key[0] != 0x04 {
                    return Err(PublicKeyError::NotUncompressed);
                }
                if curve == oid::SECP256R1 {
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(spki.key)
                        .map(UserPublicKey::EcdsaP256)
                        .map_err(|_| PublicKeyError::InvalidPoint("ECDSA P-256"))
                } else if curve == oid::SECP256K1 {
                    k256::ecdsa::VerifyingKey::from_sec1_bytes(spki.key)
                        .map(UserPublicKey::EcdsaSecp256k1)
                        .map_err(|_| PublicKeyError::InvalidPoint("ECDSA secp256k1"))
                } else {
                    Err(PublicKeyError::UnsupportedCurve(oid_to_string(curve)))
                }
            }
            (a, None) if a == oid::WEBAUTHN_COSE => CoseKey::from_cbor(spki.key).map(UserPublicKey::WebAuthn),
            (a, None) if a == oid::CANISTER_SIG => {
                let (&len, rest) =
                    spki.key.split_first().ok_or_else(|| PublicKeyError::CanisterKey("empty key".into()))?;
                let len = len as usize;
                if rest.len() < len {
                    return Err(PublicKeyError::CanisterKey(format!(
                        "canister id length {len} exceeds the {} remaining bytes",
                        rest.len()
                    )));
                }
                let canister_id =
                    Principal::try_from_slice(&rest[..len]).map_err(|e| PublicKeyError::CanisterKey(e.to_string()))?;
                Ok(UserPublicKey::CanisterSignature {
                    canister_id: CanisterId(canister_id),
                    seed: rest[len..].to_vec(),
                })
            }
            (a, _) => Err(PublicKeyError::UnsupportedAlgorithm(oid_to_string(a))),
        }
    }

    /// A short name of the scheme, for error messages.
    pub fn scheme(&self) -> &'static str {
        match self {
            UserPublicKey::Ed25519(_) => "Ed25519",
            UserPublicKey::EcdsaP256(_) => "ECDSA P-256",
            UserPublicKey::EcdsaSecp256k1(_) => "ECDSA secp256k1",
            UserPublicKey::WebAuthn(k) => k.scheme(),
            UserPublicKey::CanisterSignature { .. } => "canister signature",
        }
    }

    /// Verifies `signature` on `message` (the full domain-separated bytes).
    ///
    /// `root_key_der` is only used by canister signatures, whose
    /// certificates chain up to the IC root key.
    pub fn verify(&self, message: &[u8], signature: &[u8], root_key_der: &[u8]) -> Result<(), SignatureError> {
        use p256::ecdsa::signature::Verifier as _;
        let scheme = self.scheme();
        match self {
            UserPublicKey::Ed25519(key) => verify_ed25519_raw(key, message, signature),
            UserPublicKey::EcdsaP256(key) => {
                let sig = p256::ecdsa::Signature::from_slice(raw64(scheme, signature)?).map_err(|_| {
                    SignatureError::Encoding { scheme, reason: "r or s is zero or not below the group order".into() }
                })?;
                key.verify(message, &sig).map_err(|_| SignatureError::Invalid { scheme })
            }
            UserPublicKey::EcdsaSecp256k1(key) => {
                let sig = k256::ecdsa::Signature::from_slice(raw64(scheme, signature)?).map_err(|_| {
                    SignatureError::Encoding { scheme, reason: "r or s is zero or not below the group order".into() }
                })?;
                // Accept high-S signatures too (k256 alone would reject them).
                let sig = sig.normalize_s().unwrap_or(sig);
                key.verify(message, &sig).map_err(|_| SignatureError::Invalid { scheme })
            }
            UserPublicKey::WebAuthn(key) => verify_webauthn(key, message, signature),
            UserPublicKey::CanisterSignature { canister_id, seed } => {
                verify_canister_signature(*canister_id, seed, message, signature, root_key_der)
            }
        }
    }
}

fn raw64<'a>(scheme: &'static str, signature: &'a [u8]) -> Result<&'a [u8], SignatureError> {
    if signature.len() == 64 {
        Ok(signature)
    } else {
        Err(SignatureError::Length { scheme, expected: 64, got: signature.len() })
    }
}

/// Strict Ed25519 verification of a raw 64-byte signature.
pub(super) fn verify_ed25519_raw(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let scheme = "Ed25519";
    let sig: &[u8; 64] = raw64(scheme, signature)?.try_into().expect("checked length");
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
        .map_err(|_| SignatureError::Invalid { scheme })
}

/// Dotted form of OID content bytes, for error messages.
fn oid_to_string(content: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() && i < 8 {
                let first = (acc / 40).min(2);
                parts.push(first);
                parts.push(acc - 40 * first);
            } else {
                parts.push(acc);
            }
            acc = 0;
        }
    }
    parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Verifies a signature by a DER-encoded sender key on `message`.
pub fn verify_user_signature(
    public_key_der: &[u8],
    message: &[u8],
    signature: &[u8],
    root_key_der: &[u8],
) -> Result<(), super::UserSigError> {
    let key = UserPublicKey::from_der(public_key_der)?;
    key.verify(message, signature, root_key_der)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_names() {
        assert_eq!(oid_to_string(oid::ED25519), "1.3.101.112");
        assert_eq!(oid_to_string(oid::CANISTER_SIG), "1.3.6.1.4.1.56387.1.2");
        assert_eq!(oid_to_string(oid::SECP256K1), "1.3.132.0.10");
    }

    #[test]
    fn rejects_unsupported_and_malformed_keys() {
        let bls = crate::bls::SecretKey::from_seed([1; 32]).public_key().to_der();
        assert!(matches!(
            UserPublicKey::from_der(&bls),
            Err(PublicKeyError::Der(_)) | Err(PublicKeyError::UnsupportedAlgorithm(_))
        ));
        let compressed = der::encode_spki(oid::EC_PUBLIC_KEY, Some(oid::SECP256R1), &[2; 33]);
        assert_eq!(UserPublicKey::from_der(&compressed).unwrap_err(), PublicKeyError::NotUncompressed);
        let p384 = der::encode_spki(oid::EC_PUBLIC_KEY, Some(&[0x2b, 0x81, 0x04, 0x00, 0x22]), &[4; 65]);
        assert_eq!(
            UserPublicKey::from_der(&p384).unwrap_err(),
            PublicKeyError::UnsupportedCurve("1.3.132.0.34".into())
        );
        let not_on_curve = der::encode_spki(oid::EC_PUBLIC_KEY, Some(oid::SECP256R1), &[4; 65]);
        assert!(matches!(UserPublicKey::from_der(&not_on_curve), Err(PublicKeyError::InvalidPoint(_))));
        let bad_canister = der::encode_spki(oid::CANISTER_SIG, None, &[30, 1, 2]);
        assert!(matches!(UserPublicKey::from_der(&bad_canister), Err(PublicKeyError::CanisterKey(_))));
    }
}
