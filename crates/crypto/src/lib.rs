//! Byte-exact Internet Computer cryptography for Cairn.
//!
//! Everything in this crate must agree bit for bit with the real IC clients
//! (`ic-agent`, the JS agent, `ic-py`): they verify what Cairn produces and
//! Cairn verifies what they send. The modules map onto the interface spec:
//!
//! * [`request_id`]: representation-independent hashing (request ids,
//!   delegation hashes, query-response hashes).
//! * [`hash_tree`]: the certified [`HashTree`] wire format, `reconstruct`,
//!   `lookup_path` with the spec's absence semantics.
//! * [`labeled_tree`]: the replica-side builder that computes root hashes and
//!   produces pruned witnesses for `read_state`.
//! * [`certificate`]: certificates (CBOR) and their verification, including
//!   subnet delegations.
//! * [`bls`]: BLS12-381 min-sig signatures, threshold keys and
//!   multi-signatures.
//! * [`dkg`]: threshold keys made and reshared by dealings (verifiable
//!   secret sharing with encrypted shares and publicly checkable complaints).
//! * [`node_key`]: Ed25519 node signing keys.
//! * [`user_sig`]: ingress authentication (all sender key schemes, delegation
//!   chains, sender info) behind one entry point, [`user_sig::authenticate`].
//! * [`query_sig`]: node signatures over query responses.
//!
//! Nothing here performs I/O or reads clocks; callers pass `now` explicitly so
//! the same code can run on the replicated path.

pub mod bls;
pub mod cbor;
pub mod certificate;
mod der;
pub mod dkg;
pub mod hash_tree;
pub mod labeled_tree;
pub mod node_key;
pub mod query_sig;
pub mod request_id;
pub mod user_sig;

pub use certificate::{Certificate, CertificateDelegation, CertificateError, Scope, verify_certificate};
pub use hash_tree::{HashTree, LookupResult};
pub use labeled_tree::LabeledTree;
pub use node_key::NodeSigningKey;
pub use request_id::{Value, hash_of_map};
pub use user_sig::{
    AuthError, AuthOutcome, Delegation, EnvelopeAuth, SignedDelegation, SignedSenderInfo, authenticate,
};

/// A SHA-256 digest: request ids, tree hashes, certified data.
pub type Digest = [u8; 32];

/// Domain separators prepended to signed payloads (first byte = length).
///
/// They keep a signature made for one purpose from being replayed for
/// another; each constant is exactly what the IC clients prepend.
pub mod domain {
    /// Prefix of the bytes signed by `sender_sig`: `"\x0Aic-request" · request_id`.
    pub const REQUEST: &[u8] = b"\x0Aic-request";
    /// Prefix of the bytes signed for a delegation: `· hash_of_map(delegation)`.
    pub const REQUEST_AUTH_DELEGATION: &[u8] = b"\x1Aic-request-auth-delegation";
    /// Prefix of the bytes a node signs for a query response.
    pub const RESPONSE: &[u8] = b"\x0Bic-response";
    /// Prefix of the bytes signed for `sender_info`: `· info`.
    pub const SENDER_INFO: &[u8] = b"\x0Eic-sender-info";
    /// Prefix of the bytes BLS-signed in a certificate: `· root_hash`.
    pub const STATE_ROOT: &[u8] = b"\x0Dic-state-root";

    /// `separator · payload`, the exact byte string that gets signed.
    pub fn with_separator(separator: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(separator.len() + payload.len());
        out.extend_from_slice(separator);
        out.extend_from_slice(payload);
        out
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::domain;

    #[test]
    fn separators_are_length_prefixed() {
        for sep in [
            domain::REQUEST,
            domain::REQUEST_AUTH_DELEGATION,
            domain::RESPONSE,
            domain::SENDER_INFO,
            domain::STATE_ROOT,
        ] {
            assert_eq!(sep[0] as usize, sep.len() - 1);
        }
    }
}
