//! WebAuthn (passkey) sender keys and signatures.
//!
//! The public key is a COSE key wrapped in DER (OID 1.3.6.1.4.1.56387.1.1).
//! The signature is `tag55799({authenticator_data, client_data_json,
//! signature})`: the authenticator signed `authenticator_data ·
//! SHA256(client_data_json)`, and `client_data_json.challenge` must be the
//! base64url (unpadded) encoding of the IC payload being authorized.

use super::{PublicKeyError, SignatureError};
use crate::{cbor, sha256};
use ciborium::Value as Cbor;

/// A COSE public key of a WebAuthn credential.
#[derive(Clone, Debug)]
pub enum CoseKey {
    /// kty EC2, crv P-256, alg ES256 (−7); DER-encoded ECDSA signatures.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// kty OKP, crv Ed25519, alg EdDSA (−8); 64-byte signatures.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// kty RSA, alg RS256 (−257): PKCS#1 v1.5 with SHA-256.
    Rsa(rsa::RsaPublicKey),
}

const KTY: i128 = 1;
const ALG: i128 = 3;
const CRV_OR_N: i128 = -1;
const X_OR_E: i128 = -2;
const Y: i128 = -3;

impl CoseKey {
    /// Parses a CBOR COSE_Key (RFC 9053 labels).
    pub fn from_cbor(bytes: &[u8]) -> Result<CoseKey, PublicKeyError> {
        let bad = |m: &str| PublicKeyError::Cose(m.to_string());
        let value = cbor::decode(bytes).map_err(|e| PublicKeyError::Cose(format!("not CBOR: {e}")))?;
        let Cbor::Map(entries) = cbor::untag(&value) else {
            return Err(bad("not a CBOR map"));
        };
        let get = |label: i128| {
            entries.iter().find(|(k, _)| matches!(k, Cbor::Integer(i) if i128::from(*i) == label)).map(|(_, v)| v)
        };
        let int = |label: i128| match get(label) {
            Some(Cbor::Integer(i)) => Some(i128::from(*i)),
            _ => None,
        };
        let bytes_at = |label: i128, name: &str| {
            get(label).and_then(cbor::bytes).ok_or_else(|| PublicKeyError::Cose(format!("missing or non-bytes {name}")))
        };
        let alg = int(ALG);
        let check_alg = |expected: i128, name: &str| match alg {
            None => Ok(()),
            Some(a) if a == expected => Ok(()),
            Some(a) => Err(PublicKeyError::Cose(format!("{name} key with unsupported alg {a} (expected {expected})"))),
        };
        match int(KTY) {
            Some(2) => {
                check_alg(-7, "EC2")?;
                if int(CRV_OR_N) != Some(1) {
                    return Err(bad("EC2 key is not on P-256 (crv 1)"));
                }
                let (x, y) = (bytes_at(X_OR_E, "x")?, bytes_at(Y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad("EC2 coordinates must be 32 bytes"));
                }
                let mut point = vec![0x04];
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                    .map(CoseKey::EcdsaP256)
                    .map_err(|_| PublicKeyError::InvalidPoint("WebAuthn ECDSA P-256"))
            }
            Some(1) => {
                check_alg(-8, "OKP")?;
                if int(CRV_OR_N) != Some(6) {
                    return Err(bad("OKP key is not Ed25519 (crv 6)"));
                }
                let x: &[u8; 32] =
                    bytes_at(X_OR_E, "x")?.try_into().map_err(|_| bad("Ed25519 key must be 32 bytes"))?;
                ed25519_dalek::VerifyingKey::from_bytes(x)
                    .map(CoseKey::Ed25519)
                    .map_err(|_| PublicKeyError::InvalidPoint("WebAuthn Ed25519"))
            }
            Some(3) => {
                check_alg(-257, "RSA")?;
                let n = rsa::BigUint::from_bytes_be(bytes_at(CRV_OR_N, "n")?);
                let e = rsa::BigUint::from_bytes_be(bytes_at(X_OR_E, "e")?);
                rsa::RsaPublicKey::new(n, e)
                    .map(CoseKey::Rsa)
                    .map_err(|e| PublicKeyError::Cose(format!("invalid RSA key: {e}")))
            }
            Some(k) => Err(PublicKeyError::Cose(format!("unsupported key type kty={k}"))),
            None => Err(bad("missing kty")),
        }
    }

    /// A short name of the scheme, for error messages.
    pub fn scheme(&self) -> &'static str {
        match self {
            CoseKey::EcdsaP256(_) => "WebAuthn ECDSA P-256",
            CoseKey::Ed25519(_) => "WebAuthn Ed25519",
            CoseKey::Rsa(_) => "WebAuthn RSA",
        }
    }
}

/// Verifies a WebAuthn signature envelope over `message`.
pub fn verify_webauthn(key: &CoseKey, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let scheme = key.scheme();
    let bad = |m: String| SignatureError::WebAuthn(m);
    let value = cbor::decode(signature).map_err(|e| bad(format!("signature is not CBOR: {e}")))?;
    let map = cbor::as_map(&value).map_err(|e| bad(format!("signature: {e}")))?;
    let field = |name: &str| {
        cbor::field(map, name).and_then(cbor::bytes_or_text).ok_or_else(|| bad(format!("signature has no {name}")))
    };
    let authenticator_data = field("authenticator_data")?;
    let client_data_json = field("client_data_json")?;
    let raw_signature = field("signature")?;

    let client_data: serde_json::Value =
        serde_json::from_slice(client_data_json).map_err(|e| bad(format!("client_data_json is not JSON: {e}")))?;
    let challenge = client_data
        .get("challenge")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("client_data_json has no challenge string".into()))?;
    let challenge = data_encoding::BASE64URL_NOPAD
        .decode(challenge.trim_end_matches('=').as_bytes())
        .map_err(|e| bad(format!("challenge is not base64url: {e}")))?;
    if challenge != message {
        return Err(SignatureError::ChallengeMismatch { expected: hex::encode(message), got: hex::encode(&challenge) });
    }

    let mut signed = authenticator_data.to_vec();
    signed.extend_from_slice(&sha256(client_data_json));
    match key {
        CoseKey::EcdsaP256(vk) => {
            use p256::ecdsa::signature::Verifier as _;
            let sig = p256::ecdsa::Signature::from_der(raw_signature)
                .map_err(|_| SignatureError::Encoding { scheme, reason: "ECDSA signature is not DER".into() })?;
            vk.verify(&signed, &sig).map_err(|_| SignatureError::Invalid { scheme })
        }
        CoseKey::Ed25519(vk) => {
            super::keys::verify_ed25519_raw(vk, &signed, raw_signature).map_err(|_| SignatureError::Invalid { scheme })
        }
        CoseKey::Rsa(pk) => {
            use rsa::signature::Verifier as _;
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk.clone());
            let sig = rsa::pkcs1v15::Signature::try_from(raw_signature)
                .map_err(|_| SignatureError::Encoding { scheme, reason: "malformed RSA signature".into() })?;
            vk.verify(&signed, &sig).map_err(|_| SignatureError::Invalid { scheme })
        }
    }
}
