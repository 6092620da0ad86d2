//! Ed25519 node signing keys.
//!
//! Each node signs query responses (and later consensus artifacts) with an
//! Ed25519 key. Clients read the key from `/subnet/<sid>/node/<nid>/public_key`
//! as a 44-byte DER blob, and the node id is the self-authenticating principal
//! of exactly those DER bytes.

use crate::der;
use cairn_types::{NodeId, Principal};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// The 12-byte DER prefix of an Ed25519 public key (RFC 8410).
pub const ED25519_DER_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// Length of a DER-encoded Ed25519 public key.
pub const ED25519_DER_LEN: usize = 44;

/// Why an Ed25519 key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ed25519Error {
    #[error("Ed25519 DER public key must be 44 bytes with prefix 302a300506032b6570032100")]
    MalformedDer,
    #[error("Ed25519 public key is not a valid curve point")]
    InvalidPublicKey,
    #[error("Ed25519 signature must be 64 bytes, got {0}")]
    SignatureLength(usize),
    #[error("Ed25519 signature verification failed")]
    VerificationFailed,
}

/// A node's Ed25519 signing key.
#[derive(Clone)]
pub struct NodeSigningKey(SigningKey);

impl std::fmt::Debug for NodeSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeSigningKey({})", self.node_id())
    }
}

impl NodeSigningKey {
    /// The key with this 32-byte secret seed (RFC 8032 private key).
    pub fn from_seed(seed: [u8; 32]) -> NodeSigningKey {
        NodeSigningKey(SigningKey::from_bytes(&seed))
    }

    /// The raw 32-byte public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The 44-byte DER public key, as published in the state tree.
    pub fn public_key_der(&self) -> [u8; ED25519_DER_LEN] {
        ed25519_der_encode(&self.public_key_bytes())
    }

    /// The node id: `self_authenticating(public_key_der)`.
    pub fn node_id(&self) -> NodeId {
        NodeId(Principal::self_authenticating(&self.public_key_der()))
    }

    /// Signs `msg` (callers add the domain separator).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

/// `ED25519_DER_PREFIX · key`.
pub fn ed25519_der_encode(key: &[u8; 32]) -> [u8; ED25519_DER_LEN] {
    let mut out = [0u8; ED25519_DER_LEN];
    out[..12].copy_from_slice(&ED25519_DER_PREFIX);
    out[12..].copy_from_slice(key);
    out
}

/// The raw key inside a 44-byte Ed25519 DER public key.
pub fn ed25519_der_decode(der: &[u8]) -> Result<[u8; 32], Ed25519Error> {
    let spki = der::parse_spki(der).map_err(|_| Ed25519Error::MalformedDer)?;
    if spki.algorithm != der::oid::ED25519 || spki.parameter.is_some() {
        return Err(Ed25519Error::MalformedDer);
    }
    spki.key.try_into().map_err(|_| Ed25519Error::MalformedDer)
}

/// Verifies an Ed25519 signature with a raw 32-byte public key.
///
/// Uses strict verification (canonical encodings, no small-order keys);
/// every honest signer's signatures pass it.
pub fn verify_ed25519(key: &[u8; 32], msg: &[u8], signature: &[u8]) -> Result<(), Ed25519Error> {
    let vk = VerifyingKey::from_bytes(key).map_err(|_| Ed25519Error::InvalidPublicKey)?;
    let sig: &[u8; 64] = signature.try_into().map_err(|_| Ed25519Error::SignatureLength(signature.len()))?;
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig)).map_err(|_| Ed25519Error::VerificationFailed)
}

/// Verifies an Ed25519 signature with a DER public key.
pub fn verify_ed25519_der(der: &[u8], msg: &[u8], signature: &[u8]) -> Result<(), Ed25519Error> {
    verify_ed25519(&ed25519_der_decode(der)?, msg, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1 TEST 1 (empty message).
        let seed: [u8; 32] = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
        let key = NodeSigningKey::from_seed(seed);
        assert_eq!(
            hex::encode(key.public_key_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = key.sign(b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        let der = key.public_key_der();
        assert_eq!(hex::encode(&der[..12]), "302a300506032b6570032100");
        verify_ed25519_der(&der, b"", &sig).unwrap();
        assert_eq!(verify_ed25519_der(&der, b"x", &sig), Err(Ed25519Error::VerificationFailed));
        assert_eq!(verify_ed25519_der(&der[1..], b"", &sig), Err(Ed25519Error::MalformedDer));
        assert_eq!(verify_ed25519_der(&der, b"", &sig[..63]), Err(Ed25519Error::SignatureLength(63)));
        assert_eq!(key.node_id().get(), Principal::self_authenticating(&der));
        assert!(key.node_id().get().is_self_authenticating());
    }
}
