//! Hashes and the canonical byte encoding of consensus data.
//!
//! Everything that is hashed or signed goes through [`Encoder`]: an explicit,
//! length-prefixed big-endian encoding that starts with a domain separator.
//! It never depends on what serde happens to emit, so the wire format
//! (postcard) can change without changing a single hash or signature, and a
//! signature made for one purpose can never be replayed for another.

use cairn_types::{Height, NodeId, Time};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::fmt;

/// A SHA-256 digest naming a block, a beacon or an artifact.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CryptoHash(pub [u8; 32]);

impl CryptoHash {
    /// The all-zero hash: the parent of the genesis block.
    pub const ZERO: CryptoHash = CryptoHash([0; 32]);

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CryptoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits identify a hash in logs and test failures.
        write!(f, "{}", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for CryptoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

/// Domain separators, one per hashed or signed structure.
///
/// Each is written length-prefixed (like the IC's `\x0Aic-request`), so no
/// separator is a prefix of another's encoding.
pub mod domain {
    /// Hash of a block.
    pub const BLOCK: &str = "cairn-consensus-block";
    /// Hash of a block payload.
    pub const PAYLOAD: &str = "cairn-consensus-payload";
    /// Bytes a block maker signs for a proposal.
    pub const PROPOSAL_SIG: &str = "cairn-consensus-proposal";
    /// Bytes notaries sign for a notarization share.
    pub const NOTARIZATION_SIG: &str = "cairn-consensus-notarization";
    /// Bytes notaries sign for a finalization share.
    pub const FINALIZATION_SIG: &str = "cairn-consensus-finalization";
    /// Bytes the beacon committee signs for a random beacon share.
    pub const BEACON_SIG: &str = "cairn-consensus-random-beacon";
    /// Bytes the beacon committee signs for a random tape share.
    pub const TAPE_SIG: &str = "cairn-consensus-random-tape";
    /// Hash of a random beacon (seeds the next beacon and the rankings).
    pub const BEACON_HASH: &str = "cairn-consensus-random-beacon-hash";
    /// Randomness handed to execution, derived from a random tape.
    pub const TAPE_RANDOMNESS: &str = "cairn-consensus-random-tape-randomness";
    /// Seed of the ChaCha20 shuffles that rank block makers and sample committees.
    pub const SHUFFLE_SEED: &str = "cairn-consensus-shuffle";
    /// Bytes the high-threshold committee signs for a catch-up package.
    pub const CATCH_UP_SIG: &str = "cairn-consensus-catch-up-package";
    /// Artifact ids (gossip and pool keys).
    pub const ARTIFACT_ID: &str = "cairn-consensus-artifact-id";
    /// Hash of a key-generation summary.
    pub const DKG_SUMMARY: &str = "cairn-consensus-dkg-summary";
    /// Hash of a block's key-generation payload.
    pub const DKG_PAYLOAD: &str = "cairn-consensus-dkg-payload";
    /// Bytes a dealer signs for a dealing (and its hash).
    pub const DKG_DEALING: &str = "cairn-consensus-dkg-dealing";
    /// Bytes a receiver signs for a complaint.
    pub const DKG_COMPLAINT: &str = "cairn-consensus-dkg-complaint";
    /// Binds a dealing's ciphertexts to its interval and key.
    pub const DKG_TAG: &str = "cairn-consensus-dkg-tag";
}

/// Builds the canonical bytes of a structure: a domain separator followed by
/// fixed-width integers and length-prefixed byte strings.
#[derive(Clone, Debug)]
pub struct Encoder(Vec<u8>);

impl Encoder {
    /// Starts an encoding with `domain` (length byte, then the name).
    pub fn new(domain: &str) -> Encoder {
        let d = domain.as_bytes();
        assert!(d.len() < 256, "domain separators are short");
        let mut v = Vec::with_capacity(128);
        v.push(d.len() as u8);
        v.extend_from_slice(d);
        Encoder(v)
    }

    /// Appends a big-endian `u64`.
    pub fn u64(mut self, x: u64) -> Encoder {
        self.0.extend_from_slice(&x.to_be_bytes());
        self
    }

    /// Appends a single byte (enum tags).
    pub fn u8(mut self, x: u8) -> Encoder {
        self.0.push(x);
        self
    }

    /// Appends a height.
    pub fn height(self, h: Height) -> Encoder {
        self.u64(h.0)
    }

    /// Appends a time (nanoseconds).
    pub fn time(self, t: Time) -> Encoder {
        self.u64(t.as_nanos())
    }

    /// Appends a 32-byte hash (fixed width, no prefix).
    pub fn hash(mut self, h: &CryptoHash) -> Encoder {
        self.0.extend_from_slice(&h.0);
        self
    }

    /// Appends a length-prefixed byte string.
    pub fn bytes(mut self, b: &[u8]) -> Encoder {
        self.0.extend_from_slice(&(b.len() as u64).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }

    /// Appends a node id (length-prefixed principal bytes).
    pub fn node(self, n: &NodeId) -> Encoder {
        self.bytes(n.as_slice())
    }

    /// The encoded bytes (what gets signed).
    pub fn finish(self) -> Vec<u8> {
        self.0
    }

    /// SHA-256 of the encoded bytes.
    pub fn digest(self) -> CryptoHash {
        CryptoHash(sha2::Sha256::digest(&self.0).into())
    }
}

/// SHA-256 of `domain · data` without building an intermediate buffer; used
/// for large inputs such as payloads.
pub(crate) struct StreamHasher(sha2::Sha256);

impl StreamHasher {
    pub(crate) fn new(domain: &str) -> StreamHasher {
        let mut h = sha2::Sha256::new();
        h.update([domain.len() as u8]);
        h.update(domain.as_bytes());
        StreamHasher(h)
    }

    pub(crate) fn u64(&mut self, x: u64) {
        self.0.update(x.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.update(b);
    }

    pub(crate) fn finish(self) -> CryptoHash {
        CryptoHash(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate() {
        let a = Encoder::new(domain::NOTARIZATION_SIG).u64(1).finish();
        let b = Encoder::new(domain::FINALIZATION_SIG).u64(1).finish();
        assert_ne!(a, b);
        assert_eq!(a[0] as usize, domain::NOTARIZATION_SIG.len());
    }

    #[test]
    fn length_prefix_prevents_ambiguity() {
        let a = Encoder::new("d").bytes(b"ab").bytes(b"c").digest();
        let b = Encoder::new("d").bytes(b"a").bytes(b"bc").digest();
        assert_ne!(a, b);
    }

    #[test]
    fn stream_hasher_matches_encoder() {
        let mut s = StreamHasher::new("x");
        s.u64(7);
        s.bytes(b"hello");
        assert_eq!(s.finish(), Encoder::new("x").u64(7).bytes(b"hello").digest());
    }
}
